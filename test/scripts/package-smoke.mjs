// Runs inside a temporary project that installed the packed tarball: plain JavaScript, so
// Node, Bun and Deno all run it as is. The parent test commits and drives it over stdin.
import { createInterface } from 'node:readline';
import process from 'node:process';
import { openDbCache } from 'dbcache';

const file = process.argv[2];
const sqlJs = process.argv[3] === 'inline' ? 'inline' : 'wasm';
const cache = await openDbCache(file, { sqlJs });
const count = () => cache.get('SELECT count(*) AS n FROM t').n;
console.log(`open ${cache.generation} ${count()}`);
cache.subscribe((event) => {
  if (event.type === 'reload') console.log(`${event.cause} ${event.generation} ${count()}`);
  else console.log(`error ${event.error.code}`);
});
// Each "reload" line reloads; the end of input closes the cache, and then nothing may keep the process alive.
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'reload') {
    await cache.reload();
    console.log(`reloaded ${cache.generation} ${count()}`);
  }
}
await cache.close();
console.log('closed');
