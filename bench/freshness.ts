/**
 * Freshness: how long after another process commits does the row show up in a watching cache
 * (default options), in WAL and in DELETE journal mode, on a 10 MiB database.
 *
 * The writer (bench/support/writer.py, Python's sqlite3) commits when told to over stdin and
 * answers "committed" as soon as the commit returned; the commit time is when that line arrives
 * here (performance.now()). Meanwhile the cache is polled in a tight loop (`setImmediate`
 * between polls) until the row is visible. Then bursts of back-to-back commits: reloads per
 * burst and whether the last commit always became visible.
 *
 * Run: npm run bench:freshness (prints markdown and writes bench/results/freshness.md).
 */
import { spawn, execFileSync, type ChildProcessByStdio } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openDbCache, type DbCache, type DbCacheEvent } from '../src/index.ts';
import { createDatabase, type JournalMode } from './support/database.ts';
import { environment, saveReport, tempDir } from './support/env.ts';
import { random } from './support/query-workload.ts';
import { max, mean, median, mib, min, ms, nextTurn, percentile, table, sleep, verdict } from './support/stats.ts';

const MiB = 2 ** 20;
const quick = process.env.BENCH_QUICK === '1';
const COMMITS = quick ? 40 : 200;
const WARMUP = 10;
const BURSTS = quick ? 3 : 10;
const BURST_SIZE = 50;
const QUIET_MS = 300;
const TIMEOUT_MS = 5000;
const here = path.dirname(fileURLToPath(import.meta.url));


/** The Python writer process; each command resolves with the arrival time of its answer. */
class Writer {
  #child: ChildProcessByStdio<Writable, Readable, null>;
  #waiting = new Map<string, (at: number) => void>();
  #exited: Promise<number | null>;
  sqliteVersion = '';

  private constructor(file: string, mode: JournalMode) {
    this.#child = spawn('python3', [path.join(here, 'support', 'writer.py'), file, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      const at = performance.now();
      const [word, value] = line.split(' ');
      const key = `${word} ${value}`;
      const resolve = this.#waiting.get(word === 'ready' ? 'ready' : key);
      if (word === 'ready') this.sqliteVersion = value ?? '';
      if (resolve === undefined) throw new Error(`unexpected line from the writer: ${line}`);
      this.#waiting.delete(word === 'ready' ? 'ready' : key);
      resolve(at);
    });
  }

  static async start(file: string, mode: JournalMode): Promise<Writer> {
    const writer = new Writer(file, mode);
    await Promise.race([
      writer.#expect('ready'),
      writer.#exited.then((code) => Promise.reject(new Error(`the writer exited with ${code} before it was ready`))),
    ]);
    return writer;
  }

  #expect(key: string): Promise<number> {
    return new Promise((resolve) => this.#waiting.set(key, resolve));
  }

  commit(seq: number): Promise<number> {
    const answer = this.#expect(`committed ${seq}`);
    this.#child.stdin.write(`commit ${seq}\n`);
    return answer;
  }

  burst(first: number, count: number): Promise<number> {
    const answer = this.#expect(`burst-done ${first + count - 1}`);
    this.#child.stdin.write(`burst ${first} ${count}\n`);
    return answer;
  }

  async quit(): Promise<void> {
    this.#child.stdin.end('quit\n');
    const code = await this.#exited;
    if (code !== 0) throw new Error(`the writer exited with ${code}`);
  }
}

interface ModeResult {
  mode: JournalMode;
  fileBytes: number;
  sqliteVersion: string;
  freshness: number[];
  /** Visible − "commit now" sent: an upper bound that includes the writer's own commit time. */
  sinceSent: number[];
  commitLatency: number[];
  early: number;
  reloadsDuringCommits: number;
  reloadMs: number[];
  regressions: number;
  bursts: { reloads: number; visible: boolean; lagMs: number; burstMs: number }[];
  stats: ReturnType<DbCache['stats']>;
  errors: string[];
}

/** Polls the cache (yielding to the event loop between polls) until `seq` is visible; returns when. */
async function waitVisible(read: () => number, seq: number, since: number): Promise<number> {
  for (;;) {
    if (read() >= seq) return performance.now();
    if (performance.now() - since > TIMEOUT_MS) throw new Error(`seq ${seq} was not visible after ${TIMEOUT_MS} ms`);
    await nextTurn();
  }
}

async function benchMode(mode: JournalMode, dir: string): Promise<ModeResult> {
  const file = path.join(dir, `freshness-${mode}.db`);
  const fileBytes = createDatabase(file, 10 * MiB, mode);
  const writer = await Writer.start(file, mode);
  const cache = await openDbCache(file); // watch on, default options
  const reloads: { at: number; durationMs: number; cause: string }[] = [];
  const errors: string[] = [];
  cache.subscribe((event: DbCacheEvent) => {
    if (event.type === 'reload') reloads.push({ at: performance.now(), durationMs: event.durationMs, cause: event.cause });
    else errors.push(`${event.error.code}: ${event.error.message}`);
  });
  let seen = 0;
  let regressions = 0;
  const read = (): number => {
    const seq = (cache.get('SELECT max(seq) AS seq FROM events') as { seq: number | null }).seq ?? 0;
    if (seq < seen) regressions++;
    seen = Math.max(seen, seq);
    return seq;
  };
  const gap = random(mode === 'wal' ? 1 : 2);
  const freshness: number[] = [];
  const sinceSent: number[] = [];
  const commitLatency: number[] = [];
  let early = 0;
  let seq = 0;
  try {
    await sleep(QUIET_MS);
    const firstReload = reloads.length;
    const startedAt = performance.now();
    for (let i = 0; i < WARMUP + COMMITS; i++) {
      await sleep(5 + gap() * 25);
      seq++;
      const sentAt = performance.now();
      const committed = writer.commit(seq);
      const visibleAt = await waitVisible(read, seq, sentAt);
      const committedAt = await committed;
      if (i < WARMUP) continue;
      freshness.push(visibleAt - committedAt);
      sinceSent.push(visibleAt - sentAt);
      commitLatency.push(committedAt - sentAt);
      if (visibleAt < committedAt) early++;
    }
    const reloadMs = reloads.filter((r) => r.at >= startedAt).map((r) => r.durationMs);
    const reloadsDuringCommits = reloads.length - firstReload;

    const bursts: ModeResult['bursts'] = [];
    for (let b = 0; b < BURSTS; b++) {
      // Quiet first, so the scheduler's re-check window after the previous burst has closed.
      await sleep(QUIET_MS);
      const before = reloads.length;
      const first = seq + 1;
      seq += BURST_SIZE;
      const sentAt = performance.now();
      const done = writer.burst(first, BURST_SIZE);
      let visible = true;
      let visibleAt = Number.NaN;
      try {
        visibleAt = await waitVisible(read, seq, sentAt);
      } catch {
        visible = false;
      }
      const doneAt = await done;
      await sleep(QUIET_MS); // trailing reloads of this burst
      visible &&= read() === seq;
      bursts.push({ reloads: reloads.length - before, visible, lagMs: visibleAt - doneAt, burstMs: doneAt - sentAt });
    }
    return {
      mode,
      fileBytes,
      sqliteVersion: writer.sqliteVersion,
      freshness,
      sinceSent,
      commitLatency,
      early,
      reloadsDuringCommits,
      reloadMs,
      regressions,
      bursts,
      stats: cache.stats(),
      errors,
    };
  } finally {
    await cache.close();
    await writer.quit();
  }
}

function report(results: ModeResult[]): string {
  const out: string[] = [];
  const python = execFileSync('python3', ['--version'], { encoding: 'utf8' }).trim();
  out.push('# dbcache freshness benchmark', '', environment(), `- Writer: ${python}, sqlite3 module on SQLite ${results[0]?.sqliteVersion ?? '?'} (default settings: synchronous=FULL)`);
  if (quick) out.push('- BENCH_QUICK=1 (few commits, numbers are rough)');
  out.push('');

  out.push(`## Commit by another process → visible in the cache (ms), ${COMMITS} commits per mode, 5–30 ms apart`, '');
  out.push(
    'Cache: `openDbCache(path)` with default options (watch on, debounce 5 ms, max wait 25 ms). ' +
      'Freshness = first poll that sees the row − arrival of the writer\'s "committed" line (pipe latency is not counted against dbcache). ' +
      'Upper bound = first poll that sees the row − sending "commit now" (includes the writer\'s own commit, fsyncs and all). ' +
      '"Commit" = "commit now" sent → "committed" line arrived. 10 warm-up commits are not counted.',
    '',
  );
  out.push(
    table(
      ['journal mode', 'DB', 'p50', 'p90', 'p99', 'max', 'budget p50 ≤ 15, p99 ≤ 50', 'upper bound p50 / p99', 'commit p50 / p99', 'reloads / commit', 'reload duration p50 / p99', 'retries, failures'],
      results.map((r) => [
        r.mode.toUpperCase(),
        mib(r.fileBytes),
        ms(percentile(r.freshness, 50)),
        ms(percentile(r.freshness, 90)),
        ms(percentile(r.freshness, 99)),
        ms(max(r.freshness)),
        `${verdict(percentile(r.freshness, 50) <= 15)} / ${verdict(percentile(r.freshness, 99) <= 50)}`,
        `${ms(percentile(r.sinceSent, 50))} / ${ms(percentile(r.sinceSent, 99))}`,
        `${ms(percentile(r.commitLatency, 50))} / ${ms(percentile(r.commitLatency, 99))}`,
        (r.reloadsDuringCommits / (WARMUP + COMMITS)).toFixed(2),
        `${ms(percentile(r.reloadMs, 50))} / ${ms(percentile(r.reloadMs, 99))}`,
        `${r.stats.retries}, ${r.stats.failures}`,
      ]),
    ),
    '',
  );
  for (const r of results) {
    const notes: string[] = [];
    if (r.early > 0) {
      notes.push(
        `${r.early} of ${r.freshness.length} commits were visible before their "committed" line arrived (freshness ≤ 0 ms)` +
          (r.mode === 'wal'
            ? ': dbcache reads committed frames from the -wal file, which the writer writes before its fsync and before its COMMIT returns'
            : ': the journal was already gone (the commit point) while the writer had not yet reported'),
      );
    }
    if (r.regressions > 0) notes.push(`**${r.regressions} polls saw a smaller max(seq) than an earlier poll**`);
    if (r.errors.length > 0) notes.push(`${r.errors.length} error events, first: ${r.errors[0]}`);
    if (notes.length > 0) out.push(`- ${r.mode.toUpperCase()}: ${notes.join('; ')}`);
  }
  if (results.some((r) => r.early > 0 || r.regressions > 0 || r.errors.length > 0)) out.push('');

  out.push(`## Bursts of ${BURST_SIZE} back-to-back commits (${BURSTS} per mode, ${QUIET_MS} ms quiet before and after each)`, '');
  out.push(
    'Reloads = `reload` events from `subscribe` between sending the burst and the end of the quiet time after it. ' +
      'Lag = last commit visible − arrival of the writer\'s "burst-done" line.',
    '',
  );
  out.push(
    table(
      ['journal mode', 'burst duration p50', 'reloads per burst: mean (min–max)', 'final commit visible', 'lag after last commit p50 / max'],
      results.map((r) => {
        const counts = r.bursts.map((b) => b.reloads);
        const lags = r.bursts.filter((b) => b.visible).map((b) => b.lagMs);
        return [
          r.mode.toUpperCase(),
          ms(median(r.bursts.map((b) => b.burstMs))),
          `${mean(counts).toFixed(1)} (${min(counts)}–${max(counts)})`,
          `${r.bursts.filter((b) => b.visible).length} of ${r.bursts.length}`,
          `${ms(median(lags))} / ${ms(max(lags))}`,
        ];
      }),
    ),
    '',
  );
  return out.join('\n');
}

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('dbcache-bench-freshness-');
  const started = performance.now();
  try {
    const results: ModeResult[] = [];
    for (const mode of ['wal', 'delete'] as const) {
      const t = performance.now();
      results.push(await benchMode(mode, dir));
      console.error(`${mode}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    const markdown = report(results);
    console.log(markdown);
    const saved = saveReport('freshness', markdown);
    console.error(`wrote ${path.relative(process.cwd(), saved)}; total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    cleanup();
  }
}

await main();
