// Opens a cache of a LiteFS replica (argv: mount path, data dir, LiteFS URL) that follows /events
// and polls -pos, then waits for a line on stdin (sent once the test's server holds the events
// connection) and lets go of stdin: from then on only the cache is left, and the process must end.
import process from 'node:process';
import { openDbCache } from '../../src/index.ts';

const [file, dataDir, url] = process.argv.slice(2) as [string, string, string];
const cache = await openDbCache(file, { replica: { kind: 'litefs', dataDir, url } });
console.log(`open ${cache.generation}`);
process.stdin.once('data', () => {
  process.stdin.destroy();
  console.log('released');
});
