// Opens the database named on the command line and prints how that went as one JSON line:
// {"opened":true} or the error's name and code.
import { openDbCache } from '../../src/index.ts';

try {
  const cache = await openDbCache(process.argv.at(-1)!, { watch: false });
  await cache.close();
  console.log(JSON.stringify({ opened: true }));
} catch (error) {
  const { name, code, message } = error as { name: string; code?: string; message: string };
  console.log(JSON.stringify({ opened: false, name, code, message }));
}
