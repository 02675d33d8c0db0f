// npm start: a writer in another process commits continuously while dbcache serves lookups.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openDbCache } from '../src/index.ts';

const seconds = Number(process.env.DEMO_SECONDS ?? 10);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-demo-'));
const file = path.join(dir, 'events.db');
const writer = spawn('python3', [fileURLToPath(new URL('./writer.py', import.meta.url)), file, '100000'], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });

try {
  console.log(`Seeding ${file} with 100,000 rows (python3 sqlite3, WAL mode)…`);
  await new Promise<void>((resolve, reject) => {
    writer.on('exit', (code) => reject(new Error(`the writer exited with ${code}`)));
    createInterface({ input: writer.stdout! }).once('line', () => resolve());
  });

  const cache = await openDbCache(file);
  const mb = (cache.stats().liveBytes / 1024 / 1024).toFixed(1);
  console.log(`Mirror open: generation ${cache.generation}, ${mb} MiB. The writer now commits every 5–30 ms; watching for ${seconds} s.\n`);

  const reloadMs: number[] = [];
  const freshnessMs: number[] = [];
  cache.subscribe((event) => {
    if (event.type !== 'reload') return;
    reloadMs.push(event.durationMs);
    const newest = cache.get<{ at: number }>('SELECT max(at_ms) AS at FROM events')!.at;
    freshnessMs.push(Date.now() - newest);
  });

  const lookup = cache.prepare<{ kind: string }>('SELECT kind, payload FROM events WHERE id = ?');
  let lookups = 0;
  const deadline = performance.now() + seconds * 1000;
  let nextReport = performance.now() + 1000;
  console.log('  s  generation  rows       reloads  reload p50  freshness p50 / max  lookups/s');
  for (let second = 1; performance.now() < deadline; ) {
    // Lookups in slices of a few milliseconds, yielding so the watcher's events get through.
    const slice = performance.now() + 5;
    while (performance.now() < slice) {
      for (let i = 0; i < 100; i++) lookup.get([1 + Math.floor(Math.random() * 100_000)]);
      lookups += 100;
    }
    await new Promise((resolve) => setImmediate(resolve));
    if (performance.now() >= nextReport) {
      const rows = cache.get<{ n: number }>('SELECT count(*) AS n FROM events')!.n;
      console.log(
        `${String(second).padStart(3)}  ${String(cache.generation).padStart(10)}  ${String(rows).padEnd(9)}  ${String(reloadMs.length).padStart(7)}` +
          `  ${median(reloadMs).toFixed(2).padStart(7)} ms  ${median(freshnessMs).toFixed(1).padStart(8)} / ${Math.max(0, ...freshnessMs).toFixed(1)} ms` +
          `  ${Math.round(lookups).toLocaleString('en-US').padStart(10)}`,
      );
      reloadMs.length = 0;
      freshnessMs.length = 0;
      lookups = 0;
      second++;
      nextReport += 1000;
    }
  }
  const { reloads, noopReloads, failures } = cache.stats();
  console.log(`\n${reloads} versions published, ${noopReloads} no-op checks, ${failures} failures. Closing.`);
  await cache.close();
} finally {
  writer.stdin!.end();
  await new Promise((resolve) => (writer.exitCode === null ? writer.on('exit', resolve) : resolve(undefined)));
  cleanup();
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
