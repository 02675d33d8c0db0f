// Opens a watching cache on the database path given first, prints {"count":n} as one JSON line,
// waits (at most 60 s) until the table holds the number of rows given second, prints the count
// again and closes. On failure it prints the error's name and code. Run with Deno's scoped
// --allow-read by test/symlink.test.ts.
import { openDbCache } from '../../src/index.ts';

const [file, wanted] = process.argv.slice(-2) as [string, string];
try {
  const cache = await openDbCache(file);
  const count = (): number => cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n;
  console.log(JSON.stringify({ count: count() }));
  const deadline = Date.now() + 60_000;
  while (count() < Number(wanted) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  console.log(JSON.stringify({ count: count() }));
  await cache.close();
} catch (error) {
  const { name, code, message } = error as { name: string; code?: string; message: string };
  console.log(JSON.stringify({ name, code, message }));
}
