/**
 * Reload after a one-row commit, by database size, with the writer's connection open (issue 11):
 * in WAL mode a reload reads the WAL and applies the new frames' pages (the database file is not
 * read), so its cost follows the commit, not the database. Side by side in one run: the time to
 * read the whole file in one `fs.read` (the floor of a full reload). The same in rollback mode,
 * where every reload reads the whole file. Also the peak RSS of a fresh process that keeps the
 * previous version leased across reloads, WAL and rollback.
 *
 * Run: npm run bench:incremental (sizes 10, 100, 1024 and 2048 MiB, BENCH_INC_SIZES=10,100 picks others;
 * BENCH_QUICK=1: fewer reps, up to 1 GiB).
 * Prints markdown and writes bench/results/incremental.md and .json (for bench/report.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { openDbCache } from '../src/index.ts';
import { createDatabase, type JournalMode, TinyWriter } from './support/database.ts';
import { environment, saveJson, saveReport, tempDir } from './support/env.ts';
import { readInOneCall } from './support/read-file.ts';
import { waitOutWindow } from './support/window.ts';
import { collect, median, mib, ms, percentile, ratio, table, verdict } from './support/stats.ts';

const MiB = 2 ** 20;
const quick = process.env.BENCH_QUICK === '1';
const SIZES = (process.env.BENCH_INC_SIZES ?? (quick ? '10,100,1024' : '10,100,1024,2048')).split(',').map((mibs) => Number(mibs) * MiB);
/** Rollback reloads read the whole file (twice inside the racy window): fewer of them. */
const ROLLBACK_REPS = quick ? 3 : 8;
const REPS = quick ? 10 : 40;
const here = path.dirname(fileURLToPath(import.meta.url));

/** A writer connection in this process, in `mode`, that commits one row per call. */
function writerOf(file: string, mode: JournalMode): TinyWriter {
  const writer = new TinyWriter(file);
  writer.journalMode(mode);
  return writer;
}

/**
 * Waits until the database file (not its -wal) is older than the racy window, as a long-lived
 * database is between checkpoints: until then a WAL reload cannot trust the file's stat and
 * reads in full. (utimes cannot age a file: it sets ctime to now.)
 */
function age(file: string): Promise<void> {
  return waitOutWindow(file, ['']);
}

interface Row {
  /** The size asked for (the x axis of the chart) and the file's actual size. */
  target: number;
  size: number;
  reloadMs: number[];
  readMs: number[];
  incremental: number;
  reloads: number;
  /** Commit returned → the new value visible in a watching cache (default options). */
  freshMs: number[];
}

async function timeWal(file: string, target: number, size: number): Promise<Row> {
  const writer = writerOf(file, 'wal');
  try {
    const row = await timeReloads(file, target, size, writer, REPS);
    return { ...row, freshMs: await freshness(file, writer) };
  } finally {
    writer.close();
  }
}

/** Rollback mode: every reload reads the file in full (the line page sharing does not flatten). */
async function timeRollback(file: string, target: number, size: number): Promise<Row> {
  const writer = writerOf(file, 'delete');
  try {
    return await timeReloads(file, target, size, writer, ROLLBACK_REPS);
  } finally {
    writer.close();
  }
}

/** `reps` × (one-row commit, timed reload), with a timed read of the whole file every fourth time. */
async function timeReloads(file: string, target: number, size: number, writer: { commit(): void }, reps: number): Promise<Row> {
  writer.commit();
  await age(file);
  const cache = await openDbCache(file, { watch: false });
  try {
    for (let i = 0; i < 5; i++) {
      writer.commit();
      await cache.reload();
    }
    const before = cache.stats();
    const reloadMs: number[] = [];
    const readMs: number[] = [];
    for (let i = 0; i < reps; i++) {
      writer.commit();
      collect();
      let started = performance.now();
      await cache.reload();
      reloadMs.push(performance.now() - started);
      if (i % 4 === 0) {
        collect();
        started = performance.now();
        await readInOneCall(file);
        readMs.push(performance.now() - started);
      }
    }
    const after = cache.stats();
    return { target, size, reloadMs, readMs, incremental: after.incrementalReloads - before.incrementalReloads, reloads: after.reloads - before.reloads, freshMs: [] };
  } finally {
    await cache.close();
  }
}

/** With watch on: from a commit's return to the new value being visible, polled between turns of the event loop. */
async function freshness(file: string, writer: { commit(): void }): Promise<number[]> {
  const cache = await openDbCache(file);
  const value = (): number => (cache.get('SELECT value FROM meta') as { value: number }).value;
  const times: number[] = [];
  try {
    for (let i = 0; i < REPS; i++) {
      const before = value();
      writer.commit();
      const started = performance.now();
      while (value() === before) {
        if (performance.now() - started > 5000) throw new Error('a commit did not become visible within 5 s');
        await new Promise((resolve) => setImmediate(resolve));
      }
      times.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
  } finally {
    await cache.close();
  }
  return times;
}

/** Peak RSS of a fresh process: open, then reloads after one-row commits, the previous version leased each time. */
function peakRss(file: string, mode: JournalMode): { peak: number; base: number } {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(here, 'incremental.ts'), 'child', file, mode], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function child(file: string, mode: JournalMode): Promise<void> {
  const writer = writerOf(file, mode);
  writer.commit();
  await age(file);
  collect();
  const base = process.memoryUsage().rss;
  const cache = await openDbCache(file, { watch: false });
  let lease = cache.snapshot();
  for (let i = 0; i < 5; i++) {
    writer.commit();
    await cache.reload();
    const next = cache.snapshot();
    lease.get('SELECT count(*) FROM items');
    lease.release();
    lease = next;
  }
  lease.release();
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  await cache.close();
  writer.close();
  console.log(JSON.stringify({ peak, base }));
}

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('incremental');
  const rows: Row[] = [];
  const rollback: Row[] = [];
  const memory: string[][] = [];
  const peaks: { fileBytes: number; mode: JournalMode; peak: number; base: number }[] = [];
  try {
    for (const target of SIZES) {
      for (const mode of ['wal', 'delete'] as const) {
        const file = path.join(dir, `inc-${target / MiB}-${mode}.db`);
        const size = createDatabase(file, target, mode);
        if (mode === 'wal') rows.push(await timeWal(file, target, size));
        else rollback.push(await timeRollback(file, target, size));
        const { peak, base } = peakRss(file, mode);
        memory.push([mib(size), mode === 'wal' ? 'WAL' : 'rollback', mib(peak), ratio(peak / size), ratio((peak - base) / size), verdict(peak / size <= 1.3)]);
        peaks.push({ fileBytes: size, mode, peak, base });
        for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(file + suffix, { force: true });
      }
    }
  } finally {
    cleanup();
  }
  const lines = [
    '# Reload after a one-row commit (writer connection open)',
    '',
    environment(),
    '',
    `WAL mode, ${REPS} reloads per size, each after a one-row commit; the floor is reading the whole file in one fs.read.`,
    '',
    table(
      ['database', 'reload p50', 'reload p99', 'read file p50', 'ratio', 'incremental', 'budget ≤ 0.02× at 1 GiB', 'watch: visible p50 / p99', 'budget ≤ 15 / 50 ms'],
      rows.map((row) => [
        mib(row.size),
        ms(median(row.reloadMs)),
        ms(percentile(row.reloadMs, 99)),
        ms(median(row.readMs)),
        ratio(median(row.reloadMs) / median(row.readMs)),
        `${row.incremental}/${row.reloads}`,
        row.size >= 1000 * MiB ? verdict(median(row.reloadMs) / median(row.readMs) <= 0.02) : '',
        `${ms(median(row.freshMs))} / ${ms(percentile(row.freshMs, 99))}`,
        verdict(median(row.freshMs) <= 15 && percentile(row.freshMs, 99) <= 50),
      ]),
    ),
    '',
    `Rollback mode (DELETE journal), ${ROLLBACK_REPS} reloads per size after one-row commits: each reads the whole file, twice when the commit is inside the racy window (always, here).`,
    '',
    table(
      ['database', 'reload p50', 'reload max', 'read file p50', 'ratio'],
      rollback.map((row) => [mib(row.size), ms(median(row.reloadMs)), ms(Math.max(...row.reloadMs)), ms(median(row.readMs)), ratio(median(row.reloadMs) / median(row.readMs))]),
    ),
    '',
    'Peak RSS of a fresh process (VmHWM): open, then 5 reloads after one-row commits with the previous version leased each time.',
    '',
    table(['database', 'mode', 'peak RSS', 'peak / database', '(peak − before open) / database', 'budget ≤ 1.3×'], memory),
  ];
  const markdown = lines.join('\n');
  console.log(markdown);
  saveReport('incremental', markdown);
  saveJson('incremental', {
    wal: rows.map((row) => ({
      targetBytes: row.target,
      fileBytes: row.size,
      reloadMs: median(row.reloadMs),
      readMs: median(row.readMs),
      visibleP50: median(row.freshMs),
      visibleP99: percentile(row.freshMs, 99),
    })),
    rollback: rollback.map((row) => ({ targetBytes: row.target, fileBytes: row.size, reloadMs: median(row.reloadMs), readMs: median(row.readMs) })),
    memory: peaks,
  });
}

if (process.argv[2] === 'child') await child(process.argv[3]!, process.argv[4] as JournalMode);
else await main();
