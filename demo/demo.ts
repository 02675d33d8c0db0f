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
  console.log(`Mirror open: generation ${cache.generation}, ${mb} MiB. The writer now commits every 5–30 ms; watching for ${seconds} s.`);
  console.log(
    [
      '',
      'What the numbers show. A reload is "full" when it reads and compares the whole file, "incr" when it',
      'reads only the WAL frames committed since the last version. For 2 s after the database file itself',
      'is written (the seed just now, and each checkpoint: every 500 commits here), its file times cannot',
      'prove it unchanged (the racy window, README › Coarse file clocks), so reloads are full; after that',
      'they are incremental. Durations and freshness also include waiting for this thread: the lookups run',
      'here in 5 ms slices (the last line below: 2 s more with the lookups stopped), and the writer and',
      'other programs share the machine.',
      '',
    ].join('\n'),
  );

  interface Reload {
    readonly durationMs: number;
    readonly freshnessMs: number;
    readonly full: boolean;
  }
  const second: Reload[] = [];
  const all: Reload[] = [];
  let incremental = cache.stats().incrementalReloads;
  cache.subscribe((event) => {
    if (event.type !== 'reload') return;
    const now = cache.stats().incrementalReloads;
    const newest = cache.get<{ at: number }>('SELECT max(at_ms) AS at FROM events')!.at;
    const reload = { durationMs: event.durationMs, freshnessMs: Date.now() - newest, full: now === incremental };
    incremental = now;
    second.push(reload);
    all.push(reload);
  });

  const lookup = cache.prepare<{ kind: string }>('SELECT kind, payload FROM events WHERE id = ?');
  let lookups = 0;
  const deadline = performance.now() + seconds * 1000;
  let nextReport = performance.now() + 1000;
  console.log('  s  generation  rows       reloads full+incr  reload p50  freshness p50 / max  lookups/s');
  for (let tick = 1; performance.now() < deadline; ) {
    // Lookups in slices of a few milliseconds, yielding so the watcher's events get through.
    const slice = performance.now() + 5;
    while (performance.now() < slice) {
      for (let i = 0; i < 100; i++) lookup.get([1 + Math.floor(Math.random() * 100_000)]);
      lookups += 100;
    }
    await new Promise((resolve) => setImmediate(resolve));
    if (performance.now() >= nextReport) {
      const rows = cache.get<{ n: number }>('SELECT count(*) AS n FROM events')!.n;
      const full = second.filter((reload) => reload.full).length;
      console.log(
        `${String(tick).padStart(3)}  ${String(cache.generation).padStart(10)}  ${String(rows).padEnd(9)}  ${`${full}+${second.length - full}`.padStart(17)}` +
          `  ${median(second.map((r) => r.durationMs)).toFixed(2).padStart(7)} ms  ${median(second.map((r) => r.freshnessMs)).toFixed(1).padStart(8)} / ${Math.max(0, ...second.map((r) => r.freshnessMs)).toFixed(1)} ms` +
          `  ${Math.round(lookups).toLocaleString('en-US').padStart(10)}`,
      );
      second.length = 0;
      lookups = 0;
      tick++;
      nextReport += 1000;
    }
  }
  // The same writer for 2 s more with this thread idle: what the lookups' slices added to the numbers.
  const busy = all.length;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idle = all.splice(busy);
  console.log('');
  for (const [label, reloads] of [
    ['full reads (racy window)', all.filter((reload) => reload.full)],
    ['incremental (steady state)', all.filter((reload) => !reload.full)],
    ['incremental, no lookups', idle.filter((reload) => !reload.full)],
  ] as const) {
    if (reloads.length === 0) {
      console.log(`${label.padEnd(27)}    none`);
      continue;
    }
    console.log(
      `${label.padEnd(27)} ${String(reloads.length).padStart(4)} reloads, duration p50 ${median(reloads.map((r) => r.durationMs)).toFixed(2)} ms, ` +
        `freshness p50 ${median(reloads.map((r) => r.freshnessMs)).toFixed(1)} ms`,
    );
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
