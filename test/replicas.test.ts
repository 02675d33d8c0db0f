/**
 * Replays of how each replication engine writes a reader machine's replica, in the deterministic
 * simulation of test/read-protocol.test.ts (test/support/sim-fs.ts: every file operation a
 * scheduling point, torn reads, file times floored to 1 ns … 2 s), read through the feed the
 * `replica` option selects, exactly as the cache reads (read, then `unchanged` or `published`).
 *
 * Engines that write through SQLite are SimWriter profiles (test/support/sim-writer.ts): rqlite
 * (WAL, TRUNCATE checkpoints, a snapshot installed by closing, renaming a new file over the path
 * and reopening), libSQL's embedded replica (WAL frames, checkpoints, a generation change that
 * replaces the file, also while a connection is open), sqlite3_rsync (each sync one transaction
 * writing pages one by one, rollback journal or WAL), Litestream's restore to a new file and a
 * rename (clean, and over a -wal left by a killed application: `restoreOverWal`). Engines that
 * write pages in place are ApplyWriter flavours (test/support/sim-replica.ts): Litestream's
 * `restore -f` and a LiteFS replica (LTX file, pages page 1 first, `-pos` after, LTX files pending,
 * applies stalled after two pages with identical deltas, a mount with no file times).
 *
 * Every image a read returns must equal one committed state (else "torn": a state never
 * committed) not older than the newest state committed before the read began (else "stale";
 * for the in-place writers, the newest one `-pos` or `-txid` named); a no-op read must leave the
 * live state at least that new. Supported engines: 0 torn, 0 stale,
 * no error. Guarded hazards: 0 torn, 0 stale, refused with `REPLICA` while the hazard lasts.
 * Unsupported combinations (the plain reader on in-place writers or a leftover -wal): their torn
 * and stale counts are measured and must stay above 0, so the README's numbers stay reproducible
 * (printed with SIM_VERBOSE=1).
 *
 * Replay one run: REPLICA_CASE=<key> SIM_SEED=<seed> SIM_SCHEDULE=<k> SIM_GRANULARITY=<label>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import process from 'node:process';

import type { ReloadCause } from '../src/cache.ts';
import { PipelineFailure } from '../src/errors.ts';
import type { DatabaseImage, ReadPolicy } from '../src/image/read.ts';
import { FileFeed, SAME_BAD_FILE, type ImageFeed } from '../src/live-image.ts';
import { LiteFsFeed } from '../src/replica/litefs.ts';
import { LitestreamFeed } from '../src/replica/litestream.ts';
import { fakeClockPolicy, GRANULARITIES, granularityLabel, QUIET_SPELLS_NS, report, Rng, Scheduler, SimFs, Trace, type ScheduleOptions, type Steppable } from './support/sim-fs.ts';
import { ApplyWriter, FuseView } from './support/sim-replica.ts';
import { SimWriter, type CommittedState, type JournalMode, type OpKind } from './support/sim-writer.ts';

const SEEDS = Number(process.env.REPLICA_SEEDS ?? 8);
const SCHEDULES = Number(process.env.SIM_SCHEDULES ?? 4);
const READS = 6;
const ONLY_CASE = process.env.REPLICA_CASE;
const ONLY_SEED = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);
const ONLY_SCHEDULE = process.env.SIM_SCHEDULE === undefined ? undefined : Number(process.env.SIM_SCHEDULE);
const ONLY_GRANULARITY = process.env.SIM_GRANULARITY;

const DB = '/data/app.db';
const MOUNT_DB = '/litefs/app.db';
const DATA_DIR = '/var/lib/litefs';
const LTX_DIR = `${DATA_DIR}/dbs/app.db/ltx`;

/** What a run's writer is to the checks. */
interface Oracle extends Steppable {
  readonly states: readonly CommittedState[];
  readonly latest: CommittedState;
  /** The newest state a reader must see, when it is not the latest (an apply not yet announced). */
  readonly visible?: CommittedState;
  find(bytes: Uint8Array): CommittedState | undefined;
  describe(bytes: Uint8Array): string;
  summary(): string;
}

interface World {
  readonly description: string;
  readonly trace: Trace;
  readonly fs: SimFs;
  readonly writer: Oracle;
  readonly scheduler: Scheduler;
  readonly rng: Rng;
  readonly policy: ReadPolicy;
  readonly clock: { now: number; sleeps: number };
  readonly feed: ImageFeed;
}

type Reader = 'sqlite' | 'litestream' | 'litefs' | 'litefs-blind';
type Expectation = 'consistent' | 'refused' | 'unsupported';

interface Case {
  readonly key: string;
  readonly name: string;
  readonly reader: Reader;
  readonly expect: Expectation;
  /** A SimWriter profile, or an in-place flavour. */
  readonly writer:
    | { readonly kind: 'sqlite'; readonly modes: readonly JournalMode[]; readonly weights: Partial<Record<OpKind, number>>; readonly switchModes?: readonly JournalMode[]; readonly leftover?: boolean }
    | { readonly kind: 'apply'; readonly flavour: 'litefs' | 'litestream-follow'; readonly identicalDeltas: number; readonly stallChance: number; readonly headerVersion?: 1 | 2 };
}

const RQLITE = { kind: 'sqlite', modes: ['wal'], weights: { commit: 40, abort: 3, truncateCheckpoint: 12, readMark: 3, close: 4, open: 8, renameReplace: 4, idle: 10 } } as const;
const LIBSQL = {
  kind: 'sqlite',
  modes: ['wal'],
  weights: { commit: 40, abort: 2, checkpoint: 12, truncateCheckpoint: 4, readMark: 2, close: 4, open: 8, renameReplace: 3, renameReplaceOpen: 3, idle: 8 },
} as const;
const RSYNC_ROLLBACK = { kind: 'sqlite', modes: ['delete', 'truncate', 'persist'], weights: { commit: 60, vacuum: 10, idle: 10 } } as const;
const RSYNC_WAL = { kind: 'sqlite', modes: ['wal'], weights: { commit: 50, vacuum: 8, checkpoint: 10, truncateCheckpoint: 3, readMark: 2, close: 3, open: 6, idle: 5 } } as const;
const LITESTREAM_RENAME = { kind: 'sqlite', modes: ['delete', 'wal'], weights: { renameReplace: 10, close: 4, idle: 6 }, switchModes: ['delete', 'wal'] } as const;
const LITESTREAM_LEFTOVER = { kind: 'sqlite', modes: ['wal'], weights: { commit: 10, idle: 4, restoreOverWal: 6 }, leftover: true } as const;
const LITESTREAM_FOLLOW = { kind: 'apply', flavour: 'litestream-follow', identicalDeltas: 0, stallChance: 0.2 } as const;
const LITEFS = { kind: 'apply', flavour: 'litefs', identicalDeltas: 0.25, stallChance: 0.2 } as const;
const LITEFS_IDENTICAL = { kind: 'apply', flavour: 'litefs', identicalDeltas: 0.6, stallChance: 0, headerVersion: 2 } as const;

const CASES: readonly Case[] = [
  { key: 'rqlite', name: 'rqlite read-only node (WAL, TRUNCATE checkpoints, snapshot install by rename)', reader: 'sqlite', expect: 'consistent', writer: RQLITE },
  { key: 'libsql', name: 'libSQL embedded replica (WAL frames, checkpoints, generation change replaces the file)', reader: 'sqlite', expect: 'consistent', writer: LIBSQL },
  { key: 'rsync-rollback', name: 'sqlite3_rsync to a rollback-journal replica (pages one by one in a transaction)', reader: 'sqlite', expect: 'consistent', writer: RSYNC_ROLLBACK },
  { key: 'rsync-wal', name: 'sqlite3_rsync to a WAL replica (pages one by one in a transaction)', reader: 'sqlite', expect: 'consistent', writer: RSYNC_WAL },
  { key: 'litestream-rename', name: "Litestream restore to a new file, renamed into place (replica: 'sqlite')", reader: 'sqlite', expect: 'consistent', writer: LITESTREAM_RENAME },
  { key: 'litestream-rename-guarded', name: "Litestream restore to a new file, renamed into place (replica: 'litestream')", reader: 'litestream', expect: 'consistent', writer: LITESTREAM_RENAME },
  { key: 'litestream-leftover', name: "Litestream restore renamed over a leftover -wal (replica: 'litestream'): refused until -wal and -shm are deleted", reader: 'litestream', expect: 'refused', writer: LITESTREAM_LEFTOVER },
  { key: 'litestream-leftover-plain', name: "Litestream restore renamed over a leftover -wal (replica: 'sqlite'): unsupported, torn rate measured", reader: 'sqlite', expect: 'unsupported', writer: LITESTREAM_LEFTOVER },
  { key: 'litestream-follow', name: "Litestream restore -f (replica: 'litestream'): refused", reader: 'litestream', expect: 'refused', writer: LITESTREAM_FOLLOW },
  { key: 'litestream-follow-plain', name: "Litestream restore -f (replica: 'sqlite'): unsupported, torn rate measured", reader: 'sqlite', expect: 'unsupported', writer: LITESTREAM_FOLLOW },
  { key: 'litefs', name: "LiteFS replica (replica: { kind: 'litefs' }): pages in place, -pos after, LTX files pending, stalled applies with identical deltas", reader: 'litefs', expect: 'consistent', writer: LITEFS },
  { key: 'litefs-plain', name: "LiteFS replica (replica: 'sqlite'): unsupported, torn rate measured", reader: 'sqlite', expect: 'unsupported', writer: LITEFS },
  {
    key: 'litefs-no-ltx-guard',
    name: 'LiteFS replica read with -pos and the checksum but an ltx/ directory that never shows a pending apply: identical deltas defeat the checksum (why dataDir is required)',
    reader: 'litefs-blind',
    expect: 'unsupported',
    writer: LITEFS_IDENTICAL,
  },
];

function makeWorld(seed: number, spec: Case, granularityNs: bigint, schedule: number): World {
  const root = new Rng(seed * 7919 + spec.key.length);
  const writerRng = root.fork();
  let schedulerRng = root.fork();
  for (let k = 0; k < schedule; k++) schedulerRng = schedulerRng.fork();
  const rng = root.fork();
  const trace = new Trace();
  const fs = new SimFs(trace, { granularityNs });
  const options: ScheduleOptions = {
    stepChance: root.pick([0.03, 0.1, 0.25, 0.5]),
    burstMax: root.pick([1, 3, 8, 25]),
    tearChance: root.pick([0, 0.3, 0.7]),
    targetedChance: root.pick([0, 0.3, 0.6]),
    phaseMean: root.pick([0, 2, 4, 8]),
    liveKinds: root.pick([1, 0.7, 0.4]),
  };
  const pageSize = root.pick([512, 512, 1024, 4096]);
  let writer: Oracle;
  let feed: ImageFeed;
  let setup = '';
  const w = spec.writer;
  if (w.kind === 'sqlite') {
    const mode = root.pick(w.modes);
    const simWriter = new SimWriter(fs, writerRng, trace, {
      path: DB,
      pageSize,
      mode,
      initialPages: root.between(1, 4),
      maxPages: 6,
      weights: w.weights,
      ...(w.switchModes === undefined ? {} : { switchModes: w.switchModes }),
      bigEndianChecksums: root.chance(0.3),
    });
    writer = simWriter;
    feed = spec.reader === 'litestream' ? new LitestreamFeed(DB, fs) : new FileFeed(DB, fs);
    if (w.leftover === true) {
      // The application runs and commits while dbcache follows it; only then is it killed and a
      // restore renamed over its database (once per run).
      simWriter.perform('open');
      const commits = root.between(1, 3);
      for (let i = 0; i < commits; i++) simWriter.perform('commit');
      simWriter.restoresLeft = 1;
      setup = `; the application opened and committed ${commits} times before the first read`;
    }
  } else {
    const litefs = w.flavour === 'litefs';
    const path = litefs ? MOUNT_DB : DB;
    writer = new ApplyWriter(fs, writerRng, trace, {
      flavour: w.flavour,
      path,
      ltxDir: LTX_DIR,
      pageSize,
      initialPages: w.identicalDeltas > 0.5 ? root.between(4, 6) : root.between(1, 5),
      maxPages: 6,
      headerVersion: w.headerVersion ?? root.pick([1, 2] as const),
      identicalDeltas: w.identicalDeltas,
      stallChance: w.stallChance,
    });
    const view = litefs ? new FuseView(fs) : fs;
    if (spec.reader === 'litefs') feed = new LiteFsFeed(path, view as FuseView, { dataDir: DATA_DIR, name: 'app.db' });
    else if (spec.reader === 'litefs-blind') {
      fs.mkdir('/var/lib/elsewhere/dbs/app.db/ltx');
      feed = new LiteFsFeed(path, view as FuseView, { dataDir: '/var/lib/elsewhere', name: 'app.db' });
    } else if (spec.reader === 'litestream') feed = new LitestreamFeed(path, view);
    else feed = new FileFeed(path, view);
  }
  const scheduler = new Scheduler(schedulerRng, writer, options);
  scheduler.attach(fs);
  const { policy, clock } = fakeClockPolicy(fs, scheduler, trace, 60_000);
  const label = granularityLabel(granularityNs);
  const description =
    `case ${spec.key} (${spec.name}), seed ${seed}, schedule ${schedule}, page size ${pageSize}, file times in steps of ${granularityNs} ns${setup}; ` +
    `schedule: ${JSON.stringify(options)}.\nReplay: REPLICA_CASE=${spec.key} SIM_SEED=${seed} SIM_SCHEDULE=${schedule} SIM_GRANULARITY=${label} node --import tsx --test test/replicas.test.ts`;
  return { description, trace, fs, writer, scheduler, rng, policy, clock, feed };
}

interface Tally {
  runs: number;
  reads: number;
  images: number;
  noops: number;
  torn: number;
  stale: number;
  refused: number;
  busy: number;
  /** Other failures, by code. */
  errors: Record<string, number>;
  /** Runs with at least one torn image. */
  tornRuns: number;
  /** Runs with at least one torn or stale read. */
  badRuns: number;
  writerSteps: number;
  firstFailure?: string;
}

function newTally(): Tally {
  return { runs: 0, reads: 0, images: 0, noops: 0, torn: 0, stale: 0, refused: 0, busy: 0, errors: {}, tornRuns: 0, badRuns: 0, writerSteps: 0 };
}

async function run(spec: Case, seed: number, schedule: number, granularityNs: bigint, tally: Tally): Promise<void> {
  const world = makeWorld(seed, spec, granularityNs, schedule);
  const { writer, scheduler, trace, fs, rng, feed } = world;
  tally.runs++;
  let live: CommittedState | undefined;
  let tornHere = 0;
  let staleHere = 0;
  const fail = (what: string, mark: number): void => {
    tally.firstFailure ??= `${world.description}\n${what}\n--- trace of this read (R = reader call, W = writer step) ---\n${trace.since(mark)}`;
  };
  for (let r = 0; r < READS; r++) {
    // The first read is quiet: the cache opens on files at rest (the leftover case needs the
    // application's WAL seen once, as a running cache would have).
    const quiet = r === 0;
    scheduler.enabled = !quiet;
    scheduler.budget = Number.POSITIVE_INFINITY;
    if (!quiet) scheduler.run(rng.int(20));
    fs.advance(rng.pick(QUIET_SPELLS_NS));
    const floor = (writer.visible ?? writer.latest).index;
    const mark = trace.mark();
    trace.log(`R ==== read #${r}: newest committed state #${floor}; writer: ${writer.summary()}`);
    scheduler.budget = 100;
    const cause: ReloadCause = r === 0 ? 'open' : rng.pick(['call', 'watch'] as const);
    let outcome: DatabaseImage | typeof SAME_BAD_FILE | undefined;
    tally.reads++;
    try {
      outcome = await feed.read(cause, world.policy);
    } catch (error) {
      if (!(error instanceof PipelineFailure)) throw error;
      trace.log(`R ==== read #${r} failed: ${error.code}: ${error.message}`);
      if (error.code === 'REPLICA') tally.refused++;
      else if (error.code === 'BUSY') tally.busy++;
      else tally.errors[error.code] = (tally.errors[error.code] ?? 0) + 1;
      if (spec.expect !== 'unsupported' && error.code !== 'REPLICA') fail(`read #${r} failed: ${error.code}: ${error.message}`, mark);
      if (error.code === 'NOT_A_DATABASE' || error.code === 'CORRUPT') feed.rejected();
      continue;
    }
    if (outcome === SAME_BAD_FILE || outcome === undefined) {
      tally.noops++;
      if (live !== undefined && live.index < floor) {
        tally.stale++;
        if (spec.expect === 'unsupported') staleHere++;
        else fail(`read #${r} found nothing new, but the live state #${live.index} is older than #${floor}, committed before the read began`, mark);
      }
      continue;
    }
    tally.images++;
    const state = writer.find(outcome.bytes);
    if (state === undefined) {
      tally.torn++;
      tornHere++;
      if (spec.expect !== 'unsupported') {
        fail(`read #${r} returned an image that is no committed state:\n  returned: ${writer.describe(outcome.bytes)}\n  newest before: #${floor}\n  version ${outcome.version}`, mark);
      }
      // The cache would publish it: go on as it would.
      if (!feed.unchanged(outcome)) feed.published(outcome);
      live = undefined;
      continue;
    }
    if (state.index < floor) {
      tally.stale++;
      if (spec.expect === 'unsupported') staleHere++;
      else fail(`read #${r} returned state #${state.index} (${state.label}), older than #${floor}, committed before the read began`, mark);
    }
    trace.log(`R ==== read #${r} returned state #${state.index} (${state.label}), version ${outcome.version}`);
    if (!feed.unchanged(outcome)) feed.published(outcome);
    live = state;
  }
  if (tornHere > 0) tally.tornRuns++;
  if (tornHere > 0 || staleHere > 0) tally.badRuns++;
  tally.writerSteps += scheduler.steps;
}

function seeds(): number[] {
  return ONLY_SEED !== undefined ? [ONLY_SEED] : Array.from({ length: SEEDS }, (_, i) => i + 1);
}

function schedules(): number[] {
  return ONLY_SCHEDULE !== undefined ? [ONLY_SCHEDULE] : Array.from({ length: SCHEDULES }, (_, k) => k);
}

/** Every case's tally, per granularity, for the summary. */
const results = new Map<string, Map<string, Tally>>();

for (const spec of CASES) {
  if (ONLY_CASE !== undefined && ONLY_CASE !== spec.key) continue;
  for (const granularity of GRANULARITIES) {
    if (ONLY_GRANULARITY !== undefined && ONLY_GRANULARITY !== granularity.label) continue;
    test(`replica replay, file times in steps of ${granularity.label}: ${spec.name}`, async (t) => {
      const tally = newTally();
      for (const seed of seeds()) for (const schedule of schedules()) await run(spec, seed, schedule, granularity.ns, tally);
      const byGranularity = results.get(spec.key) ?? new Map<string, Tally>();
      byGranularity.set(granularity.label, tally);
      results.set(spec.key, byGranularity);
      const errors = Object.entries(tally.errors).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
      report(
        t,
        `${granularity.label} ${spec.key}: ${tally.runs} runs, ${tally.reads} reads (${tally.images} images, ${tally.noops} no-ops), ${tally.writerSteps} writer steps; ` +
          `torn ${tally.torn} (in ${tally.tornRuns} runs), stale ${tally.stale} (torn or stale in ${tally.badRuns} runs), refused ${tally.refused}, busy ${tally.busy}, other errors ${errors}`,
      );
      const failure = `\nFirst failure:\n${tally.firstFailure ?? '(none)'}`;
      if (spec.expect === 'unsupported') {
        // The hazard must stay reproducible: the README quotes these rates.
        if (ONLY_SEED === undefined && ONLY_SCHEDULE === undefined) assert.ok(tally.badRuns > 0, `the replay no longer goes wrong: ${JSON.stringify(tally)}`);
        return;
      }
      assert.equal(tally.stale, 0, `stale reads${failure}`);
      assert.equal(tally.torn, 0, `torn images${failure}`);
      assert.equal(tally.busy, 0, `BUSY reads${failure}`);
      assert.deepEqual(tally.errors, {}, `failed reads${failure}`);
      if (spec.expect === 'consistent') assert.equal(tally.refused, 0, `refused reads${failure}`);
      else if (ONLY_SEED === undefined && ONLY_SCHEDULE === undefined) assert.ok(tally.refused > 0, `nothing was refused: ${JSON.stringify(tally)}`);
    });
  }
}

// The totals the README quotes. It also checks that every replay above ran to its end: a case
// that stopped early (or was skipped) would be missing from the totals.
test('replica replays: torn and stale per engine, over every granularity', (t) => {
  const filtered = ONLY_CASE !== undefined || ONLY_GRANULARITY !== undefined;
  if (!filtered) {
    assert.deepEqual([...results.keys()].sort(), CASES.map((spec) => spec.key).sort(), 'every case has results');
    for (const [key, byGranularity] of results) assert.equal(byGranularity.size, GRANULARITIES.length, `${key} ran at every granularity`);
  }
  for (const [key, byGranularity] of results) {
    const total = newTally();
    for (const tally of byGranularity.values()) {
      total.runs += tally.runs;
      total.reads += tally.reads;
      total.torn += tally.torn;
      total.tornRuns += tally.tornRuns;
      total.badRuns += tally.badRuns;
      total.stale += tally.stale;
      total.refused += tally.refused;
    }
    report(
      t,
      `${key}: torn in ${total.tornRuns} of ${total.runs} runs (${total.torn} of ${total.reads} reads), stale ${total.stale} reads, torn or stale in ${total.badRuns} runs, refused ${total.refused} reads`,
    );
  }
});
