// A snapshot dropped without release() on a cache whose logger's warn() throws: the finalizer must
// return the lease (liveSnapshots back to 1) and the process must not die of an uncaught exception.
// Prints one line: "returned liveSnapshots=<n> warned=<calls>".
import { openDbCache } from '../../src/index.ts';
import { sqlite } from '../support/fixtures.ts';

declare const Bun: { gc(force: boolean): void } | undefined;

async function collector(): Promise<() => void> {
  if (typeof Bun !== 'undefined') return () => Bun!.gc(true);
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

const file = process.argv[2]!;
sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
let warned = 0;
const logger = {
  debug() {},
  info() {},
  warn() {
    warned++;
    throw new Error('logger bug');
  },
  error() {},
};
const cache = await openDbCache(file, { watch: false, logger });
(() => {
  cache.snapshot(); // dropped on the floor
})();
sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
await cache.reload();
const gc = await collector();
const deadline = performance.now() + 60_000;
while ((cache.stats().liveSnapshots !== 1 || warned === 0) && performance.now() < deadline) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const live = cache.stats().liveSnapshots;
await cache.close();
process.stdout.write(`returned liveSnapshots=${live} warned=${warned}\n`);
