// Watches the database given as argv[2] and does nothing else. With --persistent the cache keeps
// the process alive until a row 'stop' appears, then closes it; without, the process ends at once.
import { openDbCache } from '../../src/index.ts';

const file = process.argv[2]!;
const persistent = process.argv.includes('--persistent');
const cache = await openDbCache(file, { persistent, poll: process.argv.includes('--poll') });
cache.subscribe((event) => {
  if (event.type !== 'reload') return;
  console.log(`reload ${event.generation}`);
  if (cache.get("SELECT 1 AS stop FROM t WHERE v = 'stop'") !== undefined) void cache.close().then(() => console.log('closed'));
});
console.log(`open ${cache.generation}`);
