// Runs under Deno without read access to node_modules: sql.js cannot load its .wasm. The caller
// must get the error, and nothing may end the process afterwards.
import { openDbCache } from 'dbcache';

try {
  await openDbCache('data/app.db', { watch: false });
  console.log('opened');
} catch (error) {
  console.log(`caught ${error.name} ${error.code}`);
}
// A stray rejection inside sql.js would end the process with status 1 after this line.
console.log('alive');
