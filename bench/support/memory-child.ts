/**
 * Memory measurements in a fresh process (started with --expose-gc by bench/reload.ts), so
 * nothing else the benchmark allocated blurs RSS. Prints one JSON line on stdout.
 *
 *   memory-child.ts peak  <db>   open, then one full reload while a lease holds the old version
 *   memory-child.ts churn <db>   1000 reloads of a changing database, a lease taken and released each time
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import initSqlJs from 'sql.js';
import { openDbCache } from '../../src/index.ts';
import { collect, gcAvailable, sleep } from './stats.ts';

const [mode, dbPath] = process.argv.slice(2);
if ((mode !== 'peak' && mode !== 'churn') || dbPath === undefined) {
  console.error('usage: memory-child.ts peak|churn <db>');
  process.exit(2);
}
if (!gcAvailable()) {
  console.error('memory-child.ts needs --expose-gc');
  process.exit(2);
}

/** How long the idle process is watched for V8 to free the released image by itself. */
const IDLE_WAIT_MS = Number(process.env.BENCH_IDLE_WAIT_MS ?? 45_000);

interface Sample {
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
  external: number;
}

function settle(): Sample {
  collect();
  collect();
  const usage = process.memoryUsage();
  return { rss: usage.rss, arrayBuffers: usage.arrayBuffers, heapUsed: usage.heapUsed, external: usage.external };
}

function maxRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** A tiny commit by another process (Python's sqlite3, rollback journal). */
function commitElsewhere(path: string): void {
  execFileSync('python3', ['-c', "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\ndb.execute(\"UPDATE meta SET value = value + 1 WHERE key = 'counter'\")\ndb.close()", path]);
}

async function peak(path: string): Promise<void> {
  const SQL = await initSqlJs();
  new SQL.Database().close();
  const dbBytes = fs.statSync(path).size;
  const baseline = settle();

  const cache = await openDbCache(path, { watch: false, sqlJs: SQL });
  const afterOpen = settle();

  commitElsewhere(path);
  await sleep(50);
  const beforeReload = settle();
  const maxBefore = maxRss();
  let sampled = process.memoryUsage.rss();
  const timer = setInterval(() => {
    sampled = Math.max(sampled, process.memoryUsage.rss());
  }, 1);
  // A reader holds the old version through the reload: the worst case (old + new image live).
  const lease = cache.snapshot();
  const started = performance.now();
  await cache.reload();
  const reloadMs = performance.now() - started;
  sampled = Math.max(sampled, process.memoryUsage.rss());
  clearInterval(timer);
  const maxAfter = maxRss();
  const duringStats = cache.stats();
  const afterReloadLeased = { ...process.memoryUsage() };

  lease.release();
  const releasedStats = cache.stats();
  await sleep(1000);
  const releasedNoGc = process.memoryUsage();
  // Left alone (no gc()), when does V8 free the old image? Its Buffer goes only with a GC.
  const releasedAt = performance.now();
  let idleFreedMs: number | null = null;
  while (performance.now() - releasedAt < IDLE_WAIT_MS) {
    if (process.memoryUsage().arrayBuffers < 1.5 * dbBytes) {
      idleFreedMs = 1000 + performance.now() - releasedAt;
      break;
    }
    await sleep(100);
  }
  const afterIdle = process.memoryUsage();
  const afterRelease = settle();

  await cache.close();
  const afterClose = settle();

  console.log(
    JSON.stringify({
      dbBytes,
      baseline,
      afterOpen,
      beforeReload,
      reloadMs,
      peakSampled: sampled,
      maxRssBefore: maxBefore,
      maxRssAfter: maxAfter,
      afterReloadLeased: { rss: afterReloadLeased.rss, arrayBuffers: afterReloadLeased.arrayBuffers },
      duringStats,
      releasedStats,
      releasedNoGc: { rss: releasedNoGc.rss, arrayBuffers: releasedNoGc.arrayBuffers },
      idleWaitMs: IDLE_WAIT_MS + 1000,
      idleFreedMs,
      afterIdle: { rss: afterIdle.rss, arrayBuffers: afterIdle.arrayBuffers },
      afterRelease,
      afterClose,
    }),
  );
}

async function churn(path: string): Promise<void> {
  // Loaded before the baseline so its memory does not count as growth.
  const { TinyWriter } = await import('./database.ts');
  const writer = new TinyWriter(path);
  const SQL = await initSqlJs();
  const cache = await openDbCache(path, { watch: false, sqlJs: SQL });
  const checkpoints = new Set([1, 10, 100, 250, 500, 750, 1000]);
  const samples: { reload: number; rss: number; arrayBuffers: number; heapUsed: number; liveSnapshots: number; liveBytes: number }[] = [];
  const counter = () => (cache.get("SELECT value FROM meta WHERE key = 'counter'") as { value: number }).value;
  const first = counter();
  let wrong = 0;
  const started = performance.now();
  for (let i = 1; i <= 1000; i++) {
    writer.commit();
    const lease = cache.snapshot();
    await cache.reload();
    // The lease still sees the version it was taken on; the cache sees the new commit.
    const old = lease.get("SELECT value FROM meta WHERE key = 'counter'") as { value: number } | undefined;
    if (old?.value !== first + i - 1 || counter() !== first + i) wrong++;
    lease.release();
    if (checkpoints.has(i)) {
      const sample = settle();
      const stats = cache.stats();
      samples.push({ reload: i, rss: sample.rss, arrayBuffers: sample.arrayBuffers, heapUsed: sample.heapUsed, liveSnapshots: stats.liveSnapshots, liveBytes: stats.liveBytes });
    }
  }
  const elapsedMs = performance.now() - started;
  const stats = cache.stats();
  await cache.close();
  writer.close();
  console.log(JSON.stringify({ dbBytes: fs.statSync(path).size, samples, wrong, elapsedMs, stats }));
}

await (mode === 'peak' ? peak(dbPath) : churn(dbPath));
