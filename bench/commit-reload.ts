/**
 * What a reload costs after a one-row commit, against the database's size: the reload a
 * watching cache does after every commit of a writer that keeps its connection open.
 *
 * For each size (10 MiB, 100 MiB, 1 GiB; BENCH_QUICK=1: 10 and 100 MiB) and journal mode (WAL
 * with the writer's connection open, and a rollback journal), alternating repetitions of:
 *   (a) fs.promises.readFile of the database file (the floor of a full read)
 *   (b) a one-row commit by another connection (not timed), then `await cache.reload()`
 * The ratio (b) ÷ (a) is the target of page sharing: a WAL reload should cost what the commit
 * changed, not what the database holds.
 *
 * Run: npm run bench:commit-reload (writes bench/results/commit-reload.md and .json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDbCache } from '../src/index.ts';
import { createDatabase, type JournalMode, TinyWriter } from './support/database.ts';
import { environment, machine, saveJson, saveReport, tempDir } from './support/env.ts';
import { collect, gcAvailable, median, mib, ms, percentile, table } from './support/stats.ts';

const MiB = 2 ** 20;
const quick = process.env.BENCH_QUICK === '1';
const SIZES_MIB = quick ? [10, 100] : [10, 100, 1024];
const MODES: readonly JournalMode[] = ['wal', 'delete'];

interface Row {
  readonly mode: JournalMode;
  readonly sizeMiB: number;
  readonly fileBytes: number;
  readonly reps: number;
  readonly readFileMs: number[];
  readonly reloadMs: number[];
  /** Versions published by the timed reloads (each commit must publish exactly one). */
  readonly published: number;
}

function repsFor(sizeMiB: number): number {
  if (quick) return sizeMiB >= 100 ? 3 : 5;
  return sizeMiB >= 1024 ? 5 : sizeMiB >= 100 ? 10 : 20;
}

async function measure(file: string, mode: JournalMode, sizeMiB: number): Promise<Row> {
  const fileBytes = createDatabase(file, sizeMiB * MiB, mode);
  const writer = new TinyWriter(file);
  writer.journalMode(mode);
  const cache = await openDbCache(file, { watch: false });
  try {
    const reps = repsFor(sizeMiB);
    const readFileMs: number[] = [];
    const reloadMs: number[] = [];
    // One untimed round: the first commit in WAL mode creates the -wal and -shm.
    writer.commit();
    await cache.reload();
    const before = cache.stats().reloads;
    for (let i = 0; i < reps; i++) {
      collect();
      let started = performance.now();
      await fs.promises.readFile(file);
      readFileMs.push(performance.now() - started);
      collect();
      writer.commit();
      started = performance.now();
      await cache.reload();
      reloadMs.push(performance.now() - started);
    }
    return { mode, sizeMiB, fileBytes, reps, readFileMs, reloadMs, published: cache.stats().reloads - before };
  } finally {
    await cache.close();
    writer.close();
  }
}

function report(rows: readonly Row[]): string {
  const out: string[] = [];
  out.push('# dbcache reload after a one-row commit', '', environment(), `- gc() before each timed step: ${gcAvailable() ? 'yes (--expose-gc)' : 'no'}${quick ? '; BENCH_QUICK=1 (few reps, numbers are rough)' : ''}`, '');
  out.push(
    'A writer connection (better-sqlite3) stays open and commits `UPDATE meta SET value = value + 1` (one row, one page); ' +
      'the commit is not timed, `await cache.reload()` is. In WAL mode the writer keeps its `-wal` and `-shm`; in rollback mode ' +
      'each reload falls inside the racy window of coarse file clocks, so the image is read twice and compared. ' +
      'The floor, `fs.promises.readFile` of the database file, alternates with the reloads. Medians over the repetitions.',
    '',
  );
  out.push(
    table(
      ['journal mode', 'DB size', 'reps', 'readFile (median)', 'reload after commit (median)', 'reload p90', 'reload ÷ readFile', 'versions published'],
      rows.map((row) => [
        row.mode === 'wal' ? 'WAL, writer open' : 'DELETE',
        mib(row.fileBytes),
        String(row.reps),
        ms(median(row.readFileMs)),
        ms(median(row.reloadMs)),
        ms(percentile(row.reloadMs, 90)),
        `${(median(row.reloadMs) / median(row.readFileMs)).toFixed(3)}×`,
        `${row.published} of ${row.reps}`,
      ]),
    ),
    '',
  );
  return out.join('\n');
}

async function main(): Promise<void> {
  if (!gcAvailable()) console.error('note: run with --expose-gc (npm run bench:commit-reload does) so gc() runs between measurements');
  const { dir, cleanup } = tempDir('dbcache-bench-commit-');
  try {
    const rows: Row[] = [];
    for (const sizeMiB of SIZES_MIB) {
      for (const mode of MODES) {
        const started = performance.now();
        const file = path.join(dir, `commit-${sizeMiB}-${mode}.db`);
        rows.push(await measure(file, mode, sizeMiB));
        for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(file + suffix, { force: true });
        console.error(`${sizeMiB} MiB ${mode}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
    }
    for (const row of rows) if (row.published !== row.reps) throw new Error(`${row.sizeMiB} MiB ${row.mode}: ${row.published} versions for ${row.reps} commits`);
    const markdown = report(rows);
    console.log(markdown);
    saveReport('commit-reload', markdown);
    saveJson('commit-reload', {
      machine: machine(),
      rows: rows.map((row) => ({ mode: row.mode, sizeMiB: row.sizeMiB, fileBytes: row.fileBytes, readFileMs: median(row.readFileMs), reloadMs: median(row.reloadMs) })),
    });
  } finally {
    cleanup();
  }
}

await main();
