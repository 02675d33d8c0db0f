/**
 * Reload cost of dbcache, side by side with its floor and its peers, on 1, 10 and 100 MiB files.
 *
 *   (a) fs.promises.readFile of the file (the floor)
 *   (b) a full dbcache reload after a tiny commit (the commit is not timed)
 *   (c) better-sqlite3: readFileSync + new Database(buffer) + one query
 *   (d) the old Go package's way: dump as SQL text, replay into a new sql.js Database
 *   (e) no-op reloads (nothing changed)
 *   (f) memory at 100 MiB, in a fresh child process
 *   (g) 1000 reloads with a lease each: live snapshots and RSS
 *
 * Run: npm run bench:reload (prints markdown and writes bench/results/reload.md, and the medians
 * as JSON to bench/results/reload.json for bench/charts.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import initSqlJs from 'sql.js';
import { openDbCache, type DbCache } from '../src/index.ts';
import { BetterSqlite3 } from './support/better-sqlite3.ts';
import { createDatabase, dumpSql, TinyWriter } from './support/database.ts';
import { environment, machine, saveJson, saveReport, tempDir } from './support/env.ts';
import { readInOneCall } from './support/read-file.ts';
import { waitOutWindow } from './support/window.ts';
import { collect, gcAvailable, max, mean, median, mib, ms, percentile, ratio, table, verdict } from './support/stats.ts';

const MiB = 2 ** 20;
const quick = process.env.BENCH_QUICK === '1';

interface Size {
  readonly label: string;
  readonly bytes: number;
  /** Alternating repetitions of readFile / reload / better-sqlite3. */
  readonly reps: number;
  /** Dump + replay repetitions (slow). */
  readonly replayReps: number;
}

const ALL_SIZES: readonly Size[] = [
  { label: '1 MiB', bytes: 1 * MiB, reps: quick ? 5 : 20, replayReps: quick ? 1 : 5 },
  { label: '10 MiB', bytes: 10 * MiB, reps: quick ? 5 : 20, replayReps: quick ? 1 : 3 },
  { label: '100 MiB', bytes: 100 * MiB, reps: quick ? 3 : 10, replayReps: quick ? 1 : 2 },
];
/** BENCH_SIZES=1,10 runs only those sizes (MiB); the memory and churn parts always run. */
const SIZES = ALL_SIZES.filter((size) => process.env.BENCH_SIZES?.split(',').includes(String(size.bytes / MiB)) ?? true);
const NOOP_CALLS = quick ? 200 : 2000;

type Approach = 'readFile' | 'oneRead' | 'reload' | 'better';

interface SizeResult {
  size: Size;
  fileBytes: number;
  rows: number;
  times: Record<Approach, number[]>;
  dumpMs: number[];
  replayMs: number[];
  sqlChars: number;
  noopMs: number[];
  /** The same in WAL mode: a writer connection open, committed frames in the -wal. */
  noopWalMs: number[];
}

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * No-op reloads with the file in WAL mode (the writer's connection keeps -wal and -shm, with
 * committed frames, in place): the check then also reads the WAL header. Switches back to a
 * rollback journal afterwards.
 */
async function noopInWalMode(cache: DbCache, writer: TinyWriter): Promise<number[]> {
  writer.journalMode('wal');
  writer.commit();
  await cache.reload();
  // Outside the racy window of coarse file clocks (bench/noop-window.ts measures inside it).
  await waitOutWindow(cache.path);
  for (let i = 0; i < 200; i++) await cache.reload();
  collect();
  const before = cache.stats();
  const times: number[] = [];
  for (let i = 0; i < NOOP_CALLS; i++) {
    const started = performance.now();
    await cache.reload();
    times.push(performance.now() - started);
  }
  const after = cache.stats();
  if (after.reloads !== before.reloads || after.noopReloads !== before.noopReloads + NOOP_CALLS) {
    throw new Error(`no-op reloads in WAL mode published ${after.reloads - before.reloads} versions`);
  }
  writer.journalMode('delete');
  await cache.reload();
  return times;
}

async function benchSize(size: Size, dir: string): Promise<SizeResult> {
  const file = path.join(dir, `reload-${size.bytes / MiB}mib.db`);
  const fileBytes = createDatabase(file, size.bytes, 'delete');
  const writer = new TinyWriter(file);
  const cache = await openDbCache(file, { watch: false });
  const SQL = await initSqlJs();
  const rows = (cache.get('SELECT count(*) AS n FROM items') as { n: number }).n;
  try {
    const runners: Record<Approach, () => Promise<number>> = {
      async readFile() {
        collect();
        const started = performance.now();
        const bytes = await fs.promises.readFile(file);
        const elapsed = performance.now() - started;
        if (bytes.length !== fileBytes) throw new Error(`readFile returned ${bytes.length} bytes, expected ${fileBytes}`);
        return elapsed;
      },
      async oneRead() {
        collect();
        const started = performance.now();
        const bytes = await readInOneCall(file);
        const elapsed = performance.now() - started;
        if (bytes.length !== fileBytes) throw new Error(`fs.read returned ${bytes.length} bytes, expected ${fileBytes}`);
        return elapsed;
      },
      async reload() {
        writer.commit();
        const before = cache.stats().reloads;
        collect();
        const started = performance.now();
        await cache.reload();
        const elapsed = performance.now() - started;
        if (cache.stats().reloads !== before + 1) throw new Error('the reload after a commit did not publish a new version');
        return elapsed;
      },
      async better() {
        collect();
        const started = performance.now();
        const db = new BetterSqlite3(fs.readFileSync(file));
        const row = db.prepare('SELECT id, name FROM items WHERE id = ?').get(42);
        const elapsed = performance.now() - started;
        db.close();
        if (row === undefined) throw new Error('better-sqlite3 found no row 42');
        return elapsed;
      },
    };
    const order: Approach[] = ['readFile', 'oneRead', 'reload', 'better'];
    const times: Record<Approach, number[]> = { readFile: [], oneRead: [], reload: [], better: [] };
    for (let rep = -2; rep < size.reps; rep++) {
      // Rotate the order each rep so no approach always runs right after the same neighbour.
      const shift = ((rep % order.length) + order.length) % order.length;
      for (const approach of [...order.slice(shift), ...order.slice(0, shift)]) {
        const elapsed = await runners[approach]();
        if (rep >= 0) times[approach].push(elapsed); // the first two rounds warm up
      }
    }

    // (e) No-op reloads: nothing changed since the last one, and the files are older than the
    // racy window of coarse file clocks (bench/noop-window.ts measures inside it).
    await waitOutWindow(cache.path);
    for (let i = 0; i < 200; i++) await cache.reload();
    collect();
    const before = cache.stats();
    const noopMs: number[] = [];
    for (let i = 0; i < NOOP_CALLS; i++) {
      const started = performance.now();
      await cache.reload();
      noopMs.push(performance.now() - started);
    }
    const after = cache.stats();
    if (after.reloads !== before.reloads || after.noopReloads !== before.noopReloads + NOOP_CALLS) {
      throw new Error(`no-op reloads published ${after.reloads - before.reloads} versions`);
    }
    const noopWalMs = await noopInWalMode(cache, writer);

    // (d) The old way: dump as SQL text, replay into a new sql.js Database.
    const dumpMs: number[] = [];
    const replayMs: number[] = [];
    let sqlChars = 0;
    for (let rep = 0; rep < size.replayReps; rep++) {
      collect();
      let started = performance.now();
      let chunks: string[] | undefined = dumpSql(file);
      dumpMs.push(performance.now() - started);
      sqlChars = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      collect();
      started = performance.now();
      const db = new SQL.Database();
      for (const chunk of chunks) db.exec(chunk);
      const count = db.exec('SELECT count(*) FROM items')[0]?.values[0]?.[0];
      replayMs.push(performance.now() - started);
      db.close();
      chunks = undefined;
      if (count !== rows) throw new Error(`the replayed database has ${String(count)} rows, expected ${rows}`);
    }
    return { size, fileBytes, rows, times, dumpMs, replayMs, sqlChars, noopMs, noopWalMs };
  } finally {
    await cache.close();
    writer.close();
  }
}

/** Runs bench/support/memory-child.ts in a fresh Node process with --expose-gc; returns its JSON. */
function child<T>(mode: 'peak' | 'churn', file: string): T {
  const script = path.join(here, 'support', 'memory-child.ts');
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', script, mode, file], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_IDLE_WAIT_MS: process.env.BENCH_IDLE_WAIT_MS ?? (quick ? '3000' : '45000') },
    maxBuffer: 16 * MiB,
  });
  const lines = output.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

interface MemorySample {
  rss: number;
  arrayBuffers: number;
}

interface PeakResult {
  dbBytes: number;
  baseline: MemorySample;
  afterOpen: MemorySample;
  beforeReload: MemorySample;
  reloadMs: number;
  peakSampled: number;
  maxRssBefore: number;
  maxRssAfter: number;
  afterReloadLeased: MemorySample;
  duringStats: { liveSnapshots: number; liveBytes: number };
  releasedStats: { liveSnapshots: number; liveBytes: number };
  releasedNoGc: MemorySample;
  idleWaitMs: number;
  idleFreedMs: number | null;
  afterIdle: MemorySample;
  afterRelease: MemorySample;
  afterClose: MemorySample;
}

interface ChurnResult {
  dbBytes: number;
  samples: { reload: number; rss: number; arrayBuffers: number; heapUsed: number; liveSnapshots: number; liveBytes: number }[];
  wrong: number;
  elapsedMs: number;
  stats: { reloads: number; noopReloads: number; failures: number; liveSnapshots: number; liveBytes: number };
}

function report(results: SizeResult[], memory: PeakResult, churn: ChurnResult): string {
  const out: string[] = [];
  const p50p90 = (values: number[]) => `${ms(median(values))} / ${ms(percentile(values, 90))}`;
  out.push('# dbcache reload benchmark', '', environment(), `- gc() between measurements: ${gcAvailable() ? 'yes (--expose-gc)' : 'no'}${quick ? '; BENCH_QUICK=1 (few reps, numbers are rough)' : ''}`, '');

  out.push('## Full reload vs the floor and better-sqlite3 (ms, median / p90)', '');
  out.push(
    'Alternating in one run on the same file (rollback journal), order rotated every rep, gc() before each measurement. ' +
      'dbcache: `await cache.reload()` after a tiny commit by another connection (the commit is not timed). ' +
      '"One fs.read": open, fstat, one asynchronous `fs.read` of the whole file into a fresh buffer, close (the I/O a reload does). ' +
      'better-sqlite3: `fs.readFileSync` + `new Database(buffer)` + one point query.',
    '',
  );
  out.push(
    table(
      ['DB size', 'rows', 'reps', 'fs.promises.readFile (floor)', 'one fs.read (tight floor)', 'dbcache reload', 'better-sqlite3 read + deserialize + query'],
      results.map((r) => [
        `${r.size.label} (${mib(r.fileBytes)})`,
        r.rows,
        r.size.reps,
        p50p90(r.times.readFile),
        p50p90(r.times.oneRead),
        p50p90(r.times.reload),
        p50p90(r.times.better),
      ]),
    ),
    '',
  );

  out.push('## Ratios (medians)', '');
  out.push(
    table(
      ['DB size', 'reload / readFile', 'budget ≤ 1.10× (100 MiB)', 'reload / one fs.read', 'reload / better-sqlite3', 'budget ≤ 0.7×', 'replay / reload'],
      results.map((r) => {
        const reload = median(r.times.reload);
        const vsFloor = reload / median(r.times.readFile);
        const vsBetter = reload / median(r.times.better);
        return [
          r.size.label,
          ratio(vsFloor),
          r.size.bytes === 100 * MiB ? verdict(vsFloor <= 1.1) : `(${vsFloor <= 1.1 ? 'within' : 'over'})`,
          ratio(reload / median(r.times.oneRead)),
          ratio(vsBetter),
          verdict(vsBetter <= 0.7),
          ratio(median(r.replayMs) / reload),
        ];
      }),
    ),
    '',
  );

  out.push('## The old way: SQL text dump + replay into sql.js (ms)', '');
  out.push(
    'Dump: better-sqlite3 walks `sqlite_schema` and every row into `INSERT` statements (blobs as hex), like `iterdump`. ' +
      'Replay: `new SQL.Database()` then `exec` of the text in ~8 MiB chunks inside one transaction, plus a count query.',
    '',
  );
  out.push(
    table(
      ['DB size', 'reps', 'SQL text', 'dump (median)', 'replay (median)', 'dbcache reload (median)', 'replay / reload', '(dump + replay) / reload'],
      results.map((r) => {
        const reload = median(r.times.reload);
        return [
          r.size.label,
          r.replayMs.length,
          `${(r.sqlChars / 1e6).toFixed(0)} M chars`,
          ms(median(r.dumpMs)),
          ms(median(r.replayMs)),
          ms(reload),
          ratio(median(r.replayMs) / reload),
          ratio((median(r.dumpMs) + median(r.replayMs)) / reload),
        ];
      }),
    ),
    '',
  );

  out.push('## No-op reload (nothing changed), per `await cache.reload()` (ms)', '');
  out.push(
    'Rollback journal as above; then the same file switched to WAL with the writer connection open (a -wal with committed frames and a -shm exist). ' +
      'gc() once before the timed calls.',
    '',
  );
  out.push(
    table(
      ['DB size', 'journal', 'calls', 'mean', 'p50', 'p99', 'max', 'budget ≤ 0.2 ms (100 MiB)'],
      results.flatMap((r) =>
        (['rollback', 'WAL'] as const).map((mode) => {
          const times = mode === 'WAL' ? r.noopWalMs : r.noopMs;
          return [
            r.size.label,
            mode,
            times.length,
            ms(mean(times)),
            ms(median(times)),
            ms(percentile(times, 99)),
            ms(max(times)),
            r.size.bytes === 100 * MiB ? `${verdict(mean(times) <= 0.2 && percentile(times, 99) <= 0.2)} (mean and p99)` : '',
          ];
        }),
      ),
    ),
    '',
  );

  const db = memory.dbBytes;
  const base = memory.baseline.rss;
  const over = (rss: number) => ratio((rss - base) / db);
  const maxDelta = memory.maxRssAfter > memory.maxRssBefore ? memory.maxRssAfter : Number.NaN;
  const peak = Math.max(memory.peakSampled, Number.isNaN(maxDelta) ? 0 : maxDelta);
  out.push(`## Memory at 100 MiB (fresh process, --expose-gc; DB = ${mib(db)})`, '');
  out.push(
    'Baseline: after sql.js init and a gc(). The reload runs while a lease holds the old version (the worst case: old and new image both live). ' +
      'Peak = max of RSS sampled every 1 ms and `resourceUsage().maxRSS` when it rose during the reload.',
    '',
  );
  out.push(
    table(
      ['point', 'RSS', 'arrayBuffers', 'RSS above baseline, × DB', 'budget'],
      [
        ['baseline (sql.js initialised)', mib(base), mib(memory.baseline.arrayBuffers), '0', ''],
        ['after open (gc)', mib(memory.afterOpen.rss), mib(memory.afterOpen.arrayBuffers), over(memory.afterOpen.rss), ''],
        [
          `peak during reload (${ms(memory.reloadMs)} ms; sampled ${mib(memory.peakSampled)}, maxRSS ${Number.isNaN(maxDelta) ? 'did not rise' : mib(maxDelta)})`,
          mib(peak),
          '',
          over(peak),
          `≤ 2.2×: ${verdict((peak - base) / db <= 2.2)}`,
        ],
        [
          `right after reload, old version still leased (liveSnapshots ${memory.duringStats.liveSnapshots}, liveBytes ${mib(memory.duringStats.liveBytes)})`,
          mib(memory.afterReloadLeased.rss),
          mib(memory.afterReloadLeased.arrayBuffers),
          over(memory.afterReloadLeased.rss),
          '',
        ],
        [
          `lease released, 1 s later, no gc (liveSnapshots ${memory.releasedStats.liveSnapshots})`,
          mib(memory.releasedNoGc.rss),
          mib(memory.releasedNoGc.arrayBuffers),
          over(memory.releasedNoGc.rss),
          '',
        ],
        [
          memory.idleFreedMs === null
            ? `lease released, idle, no gc: still not freed after ${(memory.idleWaitMs / 1000).toFixed(0)} s`
            : `lease released, idle, no gc: V8 freed the old image by itself after ${(memory.idleFreedMs / 1000).toFixed(1)} s`,
          mib(memory.afterIdle.rss),
          mib(memory.afterIdle.arrayBuffers),
          over(memory.afterIdle.rss),
          '',
        ],
        ['lease released + gc()', mib(memory.afterRelease.rss), mib(memory.afterRelease.arrayBuffers), over(memory.afterRelease.rss), `≤ 1.2×: ${verdict((memory.afterRelease.rss - base) / db <= 1.2)}`],
        ['after close + gc()', mib(memory.afterClose.rss), mib(memory.afterClose.arrayBuffers), over(memory.afterClose.rss), ''],
      ],
    ),
    '',
  );

  const at = (n: number) => churn.samples.find((s) => s.reload === n)!;
  const growth = at(1000).rss - at(100).rss;
  out.push(`## 1000 reloads of a changing ${mib(churn.dbBytes)} database, a lease taken and released around each (fresh process)`, '');
  out.push(
    `Each iteration: tiny commit, \`snapshot()\`, \`await reload()\`, read through the old lease and the cache, \`release()\`. ` +
      `Took ${ms(churn.elapsedMs)} ms; ${churn.stats.reloads} reloads published, ${churn.stats.failures} failures, ${churn.wrong} wrong reads. RSS after gc().`,
    '',
  );
  out.push(
    table(
      ['after reload #', 'RSS', 'arrayBuffers', 'heapUsed', 'liveSnapshots', 'liveBytes'],
      churn.samples.map((s) => [s.reload, mib(s.rss), mib(s.arrayBuffers), mib(s.heapUsed), s.liveSnapshots, mib(s.liveBytes)]),
    ),
    '',
  );
  out.push(
    `RSS growth from reload 100 to 1000: ${(growth / MiB).toFixed(1)} MiB (${((growth / at(100).rss) * 100).toFixed(1)}%); ` +
      `liveSnapshots at the end: ${at(1000).liveSnapshots}. Budget "no growth beyond noise": ${verdict(at(1000).liveSnapshots === 1 && growth < Math.max(8 * MiB, 0.05 * at(100).rss))} ` +
      '(taken as: one live snapshot and under max(8 MiB, 5%) RSS growth).',
    '',
  );
  return out.join('\n');
}

/** The medians the report is made of, as raw numbers (milliseconds) for bench/charts.ts. */
function rawResults(results: SizeResult[], memory: PeakResult, churn: ChurnResult): unknown {
  const summary = (values: number[]) => ({ median: median(values), p90: percentile(values, 90), n: values.length });
  return {
    benchmark: 'reload',
    quick,
    machine: machine(),
    unit: 'ms',
    sizes: results.map((r) => ({
      label: r.size.label,
      targetBytes: r.size.bytes,
      fileBytes: r.fileBytes,
      rows: r.rows,
      readFile: summary(r.times.readFile),
      oneRead: summary(r.times.oneRead),
      dbcacheReload: summary(r.times.reload),
      betterSqlite3Deserialize: summary(r.times.better),
      dump: summary(r.dumpMs),
      replay: summary(r.replayMs),
      dumpPlusReplay: median(r.dumpMs) + median(r.replayMs),
      sqlChars: r.sqlChars,
      noopRollback: { mean: mean(r.noopMs), p50: median(r.noopMs), p99: percentile(r.noopMs, 99) },
      noopWal: { mean: mean(r.noopWalMs), p50: median(r.noopWalMs), p99: percentile(r.noopWalMs, 99) },
    })),
    memory,
    churn,
  };
}

async function main(): Promise<void> {
  if (!gcAvailable()) console.error('note: run with --expose-gc (npm run bench:reload does) so gc() runs between measurements');
  const { dir, cleanup } = tempDir('dbcache-bench-reload-');
  const started = performance.now();
  try {
    const results: SizeResult[] = [];
    for (const size of SIZES) {
      const t = performance.now();
      results.push(await benchSize(size, dir));
      console.error(`${size.label}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    // The databases of the 100 MiB and 1 MiB runs (made here when BENCH_SIZES skipped them).
    const big = path.join(dir, 'reload-100mib.db');
    const small = path.join(dir, 'reload-1mib.db');
    if (!fs.existsSync(big)) createDatabase(big, 100 * MiB, 'delete');
    if (!fs.existsSync(small)) createDatabase(small, 1 * MiB, 'delete');
    const memory = child<PeakResult>('peak', big);
    console.error('memory: done');
    const churn = child<ChurnResult>('churn', small);
    console.error('churn: done');
    const markdown = report(results, memory, churn);
    console.log(markdown);
    const saved = saveReport('reload', markdown);
    const json = saveJson('reload', rawResults(results, memory, churn));
    console.error(`wrote ${path.relative(process.cwd(), saved)} and ${path.relative(process.cwd(), json)}; total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    cleanup();
  }
}

await main();
