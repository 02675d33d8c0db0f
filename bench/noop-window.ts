/**
 * What a no-op reload (nothing committed since the last one) costs inside and outside the racy
 * window of coarse file clocks (src/image/read.ts: file times newer than 2 s + a clock tick prove
 * nothing, so the content is read and compared instead).
 *
 *   rollback, inside the window   a tiny commit, one reload that publishes it, then no-op reloads
 *                                 while the file's mtime is younger than the window
 *   rollback, outside the window  the same once the window has passed (after one verifying read)
 *   WAL, writer connected         a tiny commit into the -wal with the writer's connection open:
 *                                 the -shm header vouches for the WAL, inside the window or not
 *
 * Run: node --import tsx bench/noop-window.ts (BENCH_NOOP_MIB=100 sets the size; prints markdown
 * and writes bench/results/noop-window.md).
 */
import * as path from 'node:path';
import process from 'node:process';
import { openDbCache, type DbCache } from '../src/index.ts';
import { createDatabase, TinyWriter } from './support/database.ts';
import { environment, saveReport, tempDir } from './support/env.ts';
import { max, median, ms, percentile, table } from './support/stats.ts';
import { newestFileTime, waitOutWindow, WINDOW_MS } from './support/window.ts';

const MiB = 2 ** 20;
const SIZE_MIB = Number(process.env.BENCH_NOOP_MIB ?? 100);

/** `count` no-op reloads, each started before `untilEpochMs` (wall clock, as file times are). */
async function noopReloads(cache: DbCache, count: number, untilEpochMs: number = Infinity): Promise<number[]> {
  const times: number[] = [];
  const generation = cache.generation;
  for (let i = 0; i < count && Date.now() < untilEpochMs; i++) {
    const started = performance.now();
    await cache.reload();
    times.push(performance.now() - started);
  }
  if (cache.generation !== generation) throw new Error('a no-op reload published a new generation');
  return times;
}

function row(label: string, times: readonly number[]): (string | number)[] {
  return [label, times.length, ms(median(times)), ms(percentile(times, 90)), ms(max(times))];
}

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('dbcache-noop-window-');
  const rows: (string | number)[][] = [];
  try {
    const file = path.join(dir, 'app.db');
    createDatabase(file, SIZE_MIB * MiB, 'delete');
    const writer = new TinyWriter(file);
    const cache = await openDbCache(file, { watch: false });
    try {
      // Rollback mode, inside the window: every reload reads the file and compares it. Three
      // commits, each followed by no-op reloads started while the file is younger than the window.
      const inside: number[] = [];
      for (let cycle = 0; cycle < 3; cycle++) {
        await waitOutWindow(file);
        writer.commit();
        await cache.reload();
        inside.push(...(await noopReloads(cache, 50, newestFileTime(file) + WINDOW_MS - 50)));
      }
      rows.push(row('rollback, inside the window', inside));
      // Outside: one verifying read, then stats and a header read only.
      await waitOutWindow(file);
      await cache.reload();
      rows.push(row('rollback, outside the window', await noopReloads(cache, 2000)));

      // WAL mode with the writer connected: the -shm header is a witness that needs no file times.
      writer.journalMode('wal');
      await cache.reload();
      await waitOutWindow(file);
      await cache.reload();
      writer.commit();
      await cache.reload();
      rows.push(row('WAL, writer connected, inside the window', await noopReloads(cache, 2000, newestFileTime(file) + WINDOW_MS - 50)));
      await waitOutWindow(file);
      await cache.reload();
      rows.push(row('WAL, writer connected, outside the window', await noopReloads(cache, 2000)));
    } finally {
      await cache.close();
      writer.close();
    }
  } finally {
    cleanup();
  }
  const markdown = [
    `## No-op reload inside and outside the racy window (${SIZE_MIB} MiB)`,
    '',
    environment(),
    '',
    table(['case', 'reloads', 'median', 'p90', 'max'], rows),
    '',
  ].join('\n');
  console.log(markdown);
  saveReport('noop-window', markdown);
}

await main();
