/**
 * Deterministic simulation of the lock-free read protocol (src/image/read.ts).
 *
 * A simulated SQLite writer (test/support/sim-writer.ts) changes an in-memory file system
 * (test/support/sim-fs.ts) one file write at a time; a seeded scheduler lets it move before and
 * after every call readImage / readFingerprint make, and in the middle of a `read`. Everything,
 * including the reader's backoff (a fake clock), follows from the seed. Each seed runs several
 * schedules (SIM_SCHEDULES, default 4): the same writer history and reads, interleaved by forks
 * of the scheduler's stream; each profile checks that most of them interleaved differently (a
 * hash of the whole trace). The writer models VACUUM, page-size changes, rename-replace (also
 * while a WAL connection is open) and sparse databases past 1 GiB and 4 GiB; a statistics test
 * checks that each of them happens, also inside reads.
 *
 * Checked for every image readImage returns: it equals exactly one committed state byte for byte
 * (so no torn image and no uncommitted page), that state is not older than the newest one
 * committed before the call (read-your-writes), equal versions mean equal images, and a later
 * fingerprint equal to the image's means the image is still current. Descriptors left open are
 * counted across all simulations and checked by a test of their own. Also: BUSY for a journal that
 * stays hot, no BUSY for a WAL writer stuck mid-way, and readFingerprint on its own.
 *
 * Bugs the simulation found and that were fixed (see BUG_* below) are reproduced by scripted
 * interleavings at the end of the file, which now guard against their return.
 *
 * Replay one seed with its whole trace: SIM_PROFILE=<profile key> SIM_SEED=<seed> SIM_SCHEDULE=<k>; run more
 * seeds with SIM_SEEDS=<count>; SIM_VERBOSE=1 prints the per-profile statistics. The failure
 * message of every check prints the seed, the setup, the replay command and the trace.
 * SIM_SAMPLE=1 (set by `npm run test:all` for every runtime but the machine's Node, which runs
 * everything) runs the simulation at two granularities and declares the rest skipped.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import process from 'node:process';
import { Buffer } from 'node:buffer';

import { PipelineFailure } from '../src/errors.ts';
import type { FileStat } from '../src/image/file-system.ts';
import { readFingerprint, readImage, sameFiles, type DatabaseImage, type ReadPolicy, type WalMemory } from '../src/image/read.ts';
import { fakeClockPolicy, GRANULARITIES, granularityLabel, QUIET_SPELLS_NS, report, Rng, Scheduler, SimFs, Trace, type ScheduleOptions } from './support/sim-fs.ts';
import { lockBytePage, OP_KINDS, patternPage, SimWriter, WHOLE_IMAGE_LIMIT, writeDbHeader, type JournalMode, type OpKind, type StepTag } from './support/sim-writer.ts';
import { WalBuilder } from './support/wal-bytes.ts';

const DB = '/data/app.db';
// Seeds per profile and file-time granularity: 24 keep the file at a few seconds per runtime.
const SEEDS = Number(process.env.SIM_SEEDS ?? 24);
/**
 * Schedules per seed: the same writer history (its steps do not depend on the reader) and the
 * same reads, interleaved by differently forked scheduler streams.
 */
const SCHEDULES = Number(process.env.SIM_SCHEDULES ?? 4);
const ONLY_SCHEDULE = process.env.SIM_SCHEDULE === undefined ? undefined : Number(process.env.SIM_SCHEDULE);
const ONLY_GRANULARITY = process.env.SIM_GRANULARITY;

const ONLY_SEED = process.env.SIM_SEED === undefined ? undefined : Number(process.env.SIM_SEED);
const ONLY_PROFILE = process.env.SIM_PROFILE;

/**
 * SIM_SAMPLE=1: the simulation runs at a fine and a coarse granularity only (1ns and 1s; the large
 * profiles at 1s). The simulation is deterministic, so the other runtimes' value is the runtime
 * itself, which the sample exercises; the full run (the statistics floors included) is the
 * machine's Node's. See test/PROMISES.md, "Skips".
 */
const SAMPLE = process.env.SIM_SAMPLE === '1';
const SAMPLE_SKIP = 'SIM_SAMPLE=1: this runtime runs the simulation at 1ns and 1s only; the full run is under the machine\'s Node';
function sampled(label: string, fine = true): { skip?: string } {
  return SAMPLE && !((fine && label === '1ns') || label === '1s') ? { skip: SAMPLE_SKIP } : {};
}

// ---------------------------------------------------------------------------------------------
// Fixed bugs of src/image/read.ts (each reproduced exactly by a scripted test at the end)
// ---------------------------------------------------------------------------------------------

const BUG_WAL_STABILITY =
  'protocol bug: with no WAL header at the first read, readImage requires the database file to be stable only across ' +
  'its own read (fstat before/after), not until the end of the attempt. A commit whose checkpoint is half done before ' +
  'the read and finished after it, followed by the last close (-shm and -wal deleted) or a close + reopen (a fresh -shm ' +
  'header is byte-identical), passes every later check: torn image. The rollback path has the same hole when the file ' +
  'turns into a WAL database during the attempt.';
const BUG_ROLLBACK_ABA =
  'protocol bug: the rollback path compares size and change counter, never mtime/ctime. A transaction that spills pages ' +
  'into the database file and rolls back (ROLLBACK after a cache spill, hot-journal recovery) restores both: a read in ' +
  'between returns pages that were never committed.';
const BUG_MODE_SWITCH =
  'protocol bug: the mode is chosen once per attempt from the header and the -wal. The WAL path never looks at -journal, ' +
  'and neither path re-checks the header versions of what it read; journal_mode changes during the read give ' +
  'uncommitted or torn images, or NOT_A_DATABASE instead of a retry.';

// ---------------------------------------------------------------------------------------------
// Writer profiles
// ---------------------------------------------------------------------------------------------

interface Profile {
  readonly key: string;
  readonly name: string;
  readonly modes: readonly JournalMode[];
  readonly weights: Partial<Record<OpKind, number>>;
  readonly switchModes?: readonly JournalMode[];
  /** Known bugs this profile's writer can run into (named in its failure message). */
  readonly knownBug?: string;
  /** A sparse database whose page count is past 1 GiB (or just below it, growing across) or past 4 GiB. */
  readonly large?: '1GiB' | '4GiB';
}

const WAL_OPEN: Profile = {
  key: 'wal-open',
  name: 'WAL mode, connection kept open: commits, rolled-back transactions, partial and full checkpoints, restarts, TRUNCATE checkpoints, VACUUM',
  modes: ['wal'],
  weights: { commit: 40, abort: 6, checkpoint: 16, truncateCheckpoint: 6, readMark: 4, vacuum: 3 },
};

const WAL_CLOSE: Profile = {
  key: 'wal-close',
  name: 'WAL mode with last-connection close (checkpoint, delete -shm and -wal), quiet spells, reopen, VACUUM, rename-replace while closed and while a connection is open',
  modes: ['wal'],
  weights: { commit: 40, abort: 5, checkpoint: 14, truncateCheckpoint: 5, readMark: 3, close: 15, open: 10, renameReplace: 3, renameReplaceOpen: 4, vacuum: 3, idle: 30 },
  knownBug: BUG_WAL_STABILITY,
};

const WAL_INTERMITTENT: Profile = {
  key: 'wal-intermittent',
  name: 'WAL mode with intermittent writers: open, commit, close (checkpoint, delete -shm and -wal), then quiet',
  modes: ['wal'],
  weights: { commit: 25, checkpoint: 8, close: 40, open: 10, idle: 40 },
  knownBug: BUG_WAL_STABILITY,
};

const ROLLBACK: Profile = {
  key: 'rollback',
  name: 'rollback journal (DELETE, TRUNCATE, PERSIST): commits, VACUUM, page-size changes and rename-replace',
  modes: ['delete', 'truncate', 'persist'],
  weights: { commit: 85, renameReplace: 10, vacuum: 6, pageSize: 5 },
};

const ROLLBACK_SPILL: Profile = {
  key: 'rollback-spill',
  name: 'rollback journal with transactions that spill pages to the database file and roll back (ROLLBACK, hot-journal recovery)',
  modes: ['delete', 'truncate', 'persist'],
  weights: { commit: 60, spillRollback: 30, renameReplace: 5, vacuum: 3 },
  knownBug: BUG_ROLLBACK_ABA,
};

const MODE_SWITCH: Profile = {
  key: 'mode-switch',
  name: 'journal_mode changes WAL <-> rollback (page-size changes in between) and rename-replace across modes (no spills)',
  modes: ['wal', 'delete', 'truncate', 'persist'],
  weights: { commit: 40, abort: 4, checkpoint: 12, truncateCheckpoint: 4, readMark: 2, close: 8, open: 10, renameReplace: 6, renameReplaceOpen: 3, toWal: 6, toRollback: 6, vacuum: 4, pageSize: 4 },
  switchModes: ['wal', 'delete', 'truncate', 'persist'],
  knownBug: `${BUG_MODE_SWITCH} ${BUG_WAL_STABILITY}`,
};

const EVERYTHING: Profile = {
  key: 'everything',
  name: 'every writer operation',
  modes: ['wal', 'delete', 'truncate', 'persist'],
  weights: { commit: 40, abort: 4, checkpoint: 12, truncateCheckpoint: 4, readMark: 3, close: 8, open: 10, renameReplace: 5, renameReplaceOpen: 3, toWal: 6, toRollback: 6, spillRollback: 10, vacuum: 4, pageSize: 3, idle: 10 },
  switchModes: ['wal', 'delete', 'truncate', 'persist'],
  knownBug: `${BUG_ROLLBACK_ABA} ${BUG_MODE_SWITCH} ${BUG_WAL_STABILITY}`,
};

// Few checkpoints: a commit that grows the database across the lock-byte page stays in the WAL for a while.
const LARGE_WEIGHTS: Partial<Record<OpKind, number>> = { commit: 40, abort: 5, checkpoint: 4, truncateCheckpoint: 2, readMark: 2, close: 2, open: 10, spillRollback: 8, idle: 10 };

const LARGE_1G: Profile = {
  key: 'large-1g',
  name: 'a sparse database just below 1 GiB (commits grow it across the lock-byte page) or past it, every journal mode',
  modes: ['wal', 'delete', 'truncate', 'persist'],
  weights: LARGE_WEIGHTS,
  large: '1GiB',
};

const LARGE_4G: Profile = {
  key: 'large-4g',
  name: 'a sparse database past 4 GiB, every journal mode',
  modes: ['wal', 'delete', 'truncate', 'persist'],
  weights: LARGE_WEIGHTS,
  large: '4GiB',
};

/** Whether this runtime holds a typed array past 4 GiB (the checks here compare an image as one flat copy; readImage itself keeps pages). */
const BEYOND_4GIB = ((): boolean => {
  try {
    return new Uint8Array(2 ** 32 + 2 ** 17).length > 2 ** 32;
  } catch {
    return false;
  }
})();

/** Seeds per large profile and granularity: each read of a large image costs a native scan of it. */
const LARGE_SEEDS = Math.max(1, Math.round(SEEDS / 12));

// ---------------------------------------------------------------------------------------------
// One simulated world per seed
// ---------------------------------------------------------------------------------------------

interface World {
  readonly seed: number;
  readonly profile: Profile;
  readonly description: string;
  readonly trace: Trace;
  readonly fs: SimFs;
  readonly writer: SimWriter;
  readonly scheduler: Scheduler;
  /** The reader's own stream (how long to wait between reads, and so on). */
  readonly rng: Rng;
  readonly policy: ReadPolicy;
  /** Fake milliseconds; only the reader's backoff advances it. */
  readonly clock: { now: number; sleeps: number };
}

interface WorldOverrides {
  readonly mode?: JournalMode;
  readonly initialPages?: number;
  /** `false`: the file system's methods are not bound to it (a plain class instance). */
  readonly boundFs?: boolean;
  /** Granularity of file times (default 1 ns). */
  readonly granularityNs?: bigint;
  /** Which of the seed's schedules (default 0): the scheduler's stream is forked this many times more. */
  readonly schedule?: number;
}

function makeWorld(seed: number, profile: Profile, busyTimeoutMs = 60_000, overrides: WorldOverrides = {}): World {
  const root = new Rng(seed);
  const writerRng = root.fork();
  let schedulerRng = root.fork();
  const scheduleIndex = overrides.schedule ?? 0;
  for (let k = 0; k < scheduleIndex; k++) schedulerRng = schedulerRng.fork();
  const rng = root.fork();
  const pickedMode = root.pick(profile.modes);
  // Large databases: odd seeds in WAL mode, even ones in a rollback mode.
  const largeMode = profile.large === undefined ? pickedMode : seed % 2 === 1 ? 'wal' : pickedMode === 'wal' ? 'delete' : pickedMode;
  const mode = overrides.mode ?? largeMode;
  let pageSize = root.chance(0.03) ? 65536 : root.pick([512, 512, 512, 1024, 4096]);
  const pickedPages = mode === 'wal' ? root.between(1, 4) : root.between(0, 4);
  let initialPages = overrides.initialPages ?? pickedPages;
  let initialPresent: number[] | undefined;
  if (profile.large !== undefined) {
    pageSize = profile.large === '4GiB' ? 65536 : root.pick([4096, 65536]);
    const lock = lockBytePage(pageSize);
    if (profile.large === '4GiB') initialPages = Math.floor(2 ** 32 / pageSize) + root.between(1, 3);
    // Seeds 1 and 2 (one WAL, one rollback) start just below the lock-byte page and grow across it.
    else initialPages = root.chance(0.5) || seed <= 2 ? lock - root.between(1, 2) : lock + root.between(1, 3);
    initialPresent = [...new Set([1, 2, 3, lock + 1, initialPages - 1, initialPages])].filter((p) => p <= initialPages && p !== lock).sort((a, b) => a - b);
  }
  const bigEndianChecksums = root.chance(0.3);
  const schedule: ScheduleOptions = {
    // A large file is read in about a thousand chunks, each a scheduling point: at the usual
    // chances the writer would checkpoint before the first read ends, and no WAL fold would cross
    // the lock-byte page while the database file is still below it.
    stepChance: profile.large === undefined ? root.pick([0.03, 0.1, 0.25, 0.5]) : root.pick([0.0005, 0.002, 0.005]),
    burstMax: root.pick([1, 3, 8, 25]),
    tearChance: root.pick([0, 0.3, 0.7]),
    targetedChance: root.pick([0, 0.3, 0.6]),
    phaseMean: root.pick([0, 2, 4, 8]),
    liveKinds: root.pick([1, 0.7, 0.4]),
  };
  const trace = new Trace();
  const granularityNs = overrides.granularityNs ?? 1n;
  const fs = new SimFs(trace, { bound: overrides.boundFs ?? true, granularityNs });
  const writer = new SimWriter(fs, writerRng, trace, {
    path: DB,
    pageSize,
    mode,
    initialPages,
    maxPages: 6,
    weights: profile.weights,
    ...(profile.switchModes === undefined ? {} : { switchModes: profile.switchModes }),
    ...(initialPresent === undefined ? {} : { initialPresent }),
    bigEndianChecksums,
  });
  const scheduler = new Scheduler(schedulerRng, writer, schedule);
  scheduler.attach(fs);
  const { policy, clock } = fakeClockPolicy(fs, scheduler, trace, busyTimeoutMs);
  const description =
    `seed ${seed}, schedule ${scheduleIndex}, profile ${profile.key} (${profile.name}); initial mode ${mode}, page size ${pageSize}, ` +
    `${initialPages} initial pages, ${bigEndianChecksums ? 'big' : 'little'}-endian WAL checksums, file times in steps of ${granularityNs} ns, ` +
    `schedule: step chance ${schedule.stepChance}, bursts of up to ${schedule.burstMax} steps, torn-read chance ${schedule.tearChance}, targeted-burst chance ${schedule.targetedChance}, active/quiet phases of mean ${schedule.phaseMean} points, live point kinds ${schedule.liveKinds}.\n` +
    `Replay: SIM_PROFILE=${profile.key} SIM_SEED=${seed} SIM_SCHEDULE=${scheduleIndex} SIM_GRANULARITY=${granularityLabel(granularityNs)} node --import tsx --test test/read-protocol.test.ts`;
  return { seed, profile, description, trace, fs, writer, scheduler, rng, policy, clock };
}

function describeError(error: unknown): string {
  if (error instanceof PipelineFailure) {
    // SIM_DEBUG=1 adds the stack of the underlying error (an IO failure wraps the real one).
    const cause = process.env.SIM_DEBUG === undefined ? '' : `\n${String((error.cause as Error | undefined)?.stack)}`;
    return `PipelineFailure ${error.code}: ${error.message}${cause}`;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---------------------------------------------------------------------------------------------
// The readImage simulation
// ---------------------------------------------------------------------------------------------

interface Tally {
  seeds: number;
  /** Schedules run (seeds times schedules per seed). */
  schedules: number;
  /** Distinct interleavings among them: per seed, the number of different traces, summed. */
  distinctSchedules: number;
  reads: number;
  /** Reads during which the writer took at least one step. */
  contended: number;
  /** Attempts that were retried (sleeps). */
  retries: number;
  writerSteps: number;
  commits: number;
  opCounts: Record<OpKind, number>;
  /** Reads during which the writer took a step of each kind of operation. */
  insideRead: Record<OpKind, number>;
  /** Images returned past 1 GiB (holding the lock-byte page) and past 4 GiB. */
  past1GiB: number;
  past4GiB: number;
  /** Commits that grew a database across the lock-byte page. */
  lockPageCrossings: number;
  /** WAL images that hold the lock-byte page while the database file read ended before it (the fold grew it). */
  lockPageFolds: number;
  /** `seed/schedule` of each failing run. */
  failedSeeds: string[];
  firstFailure?: string;
  leakedDescriptors: number;
  leakSeeds: Set<string>;
  firstLeak?: string;
  /** Reads that applied only new WAL frames to the previous image (issue 11), and how many of them were compared with a full read. */
  incremental: number;
  differential: number;
}

function newTally(): Tally {
  return {
    seeds: 0,
    schedules: 0,
    distinctSchedules: 0,
    reads: 0,
    contended: 0,
    retries: 0,
    writerSteps: 0,
    commits: 0,
    opCounts: Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>,
    insideRead: Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>,
    past1GiB: 0,
    past4GiB: 0,
    lockPageCrossings: 0,
    lockPageFolds: 0,
    failedSeeds: [],
    leakedDescriptors: 0,
    leakSeeds: new Set(),
    incremental: 0,
    differential: 0,
  };
}

/** FNV-1a over the lines of a trace: equal for two runs exactly when they interleaved alike. */
function traceHash(trace: Trace): string {
  let h = 0x811c9dc5;
  for (const line of trace.lines) {
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 10, 0x01000193);
  }
  return `${trace.lines.length}:${(h >>> 0).toString(16)}`;
}

/**
 * Runs one schedule of a seed: a writer moving freely, and `reads` readImage calls it interleaves
 * with. Returns the hash of the whole trace (every reader call and writer step, in order).
 */
async function simulateReads(seed: number, profile: Profile, granularityNs: bigint, tally: Tally, schedule = 0, reads = 6): Promise<string> {
  const world = makeWorld(seed, profile, 60_000, { granularityNs, schedule });
  const { writer, scheduler, trace, fs, rng } = world;
  const versions = new Map<string, number>();
  let failure: string | undefined;
  tally.schedules++;

  // Like the cache, each read resumes from the previous image's WAL scan.
  let walMemory: WalMemory | undefined;
  // Like the cache, each read may know the previous image (rollback mode skips its second read
  // inside the racy window when it finds exactly those bytes).
  let live: Uint8Array | undefined;
  for (let r = 0; r < reads && failure === undefined; r++) {
    // The writer moves on its own for a while, possibly stopping mid-operation.
    scheduler.enabled = true;
    scheduler.budget = Number.POSITIVE_INFINITY;
    scheduler.run(rng.int(20));
    fs.advance(rng.pick(QUIET_SPELLS_NS));
    const floor = writer.latest.index;
    const mark = trace.mark();
    trace.log(`R ==== readImage #${r}: newest committed state #${floor}; writer: ${writer.summary()}`);
    // During the read the writer gets a budget, then pauses at its next idle point: a reader that
    // keeps retrying finds quiet files eventually, and a BUSY here would be a failure.
    scheduler.budget = 100;
    const stepsBefore = scheduler.steps;
    const sleepsBefore = world.clock.sleeps;
    const descriptorsBefore = fs.openDescriptors();
    const fail = (what: string): void => {
      failure = `${world.description}\n${what}\n--- trace of this readImage call (R = reader call, W = writer step) ---\n${trace.since(mark)}`;
    };

    let image: DatabaseImage;
    writer.recentKinds.clear();
    try {
      image = await readImage(DB, fs, world.policy, { wal: walMemory, ...(live !== undefined && rng.chance(0.7) ? { live } : {}) });
      walMemory = image.wal;
      // A large image is kept as it is: a copy would fill memory the operating system never committed.
      live = image.bytes.length > WHOLE_IMAGE_LIMIT ? image.bytes : image.bytes.slice();
    } catch (error) {
      fail(`readImage #${r} rejected: ${describeError(error)}`);
      break;
    }
    tally.reads++;
    for (const kind of writer.recentKinds) tally.insideRead[kind]++;
    if (image.bytes.length > 2 ** 30) tally.past1GiB++;
    if (image.bytes.length > 2 ** 32) tally.past4GiB++;
    // The version names the size of the database file read: 'w:<ino>:<size>:...'.
    if (image.mode === 'wal' && Number(image.version.split(':')[2]) <= 2 ** 30 && image.bytes.length > 2 ** 30) tally.lockPageFolds++;
    if (scheduler.steps > stepsBefore) tally.contended++;
    tally.retries += world.clock.sleeps - sleepsBefore;

    if (fs.openDescriptors() > descriptorsBefore) {
      // Counted, and failed on only by the descriptor test: the image checks go on regardless.
      tally.leakedDescriptors += fs.openDescriptors() - descriptorsBefore;
      tally.leakSeeds.add(`${seed}/${schedule}`);
      tally.firstLeak ??= `${world.description}\nreadImage #${r} left ${fs.openDescriptors() - descriptorsBefore} descriptor(s) open\n--- trace of this readImage call ---\n${trace.since(mark)}`;
    }
    const state = writer.find(image.bytes);
    if (state === undefined) {
      fail(
        `readImage #${r} returned an image that is no committed state (torn or uncommitted):\n` +
          `  returned:       ${writer.describe(image.bytes)}\n` +
          `  newest before:  #${floor} ${writer.describeState(writer.states[floor]!)}\n` +
          `  newest now:     #${writer.latest.index} ${writer.describeState(writer.latest)}\n` +
          `  version ${image.version}, mode ${image.mode}`,
      );
      break;
    }
    if (state.index < floor) {
      fail(
        `readImage #${r} returned state #${state.index} (${state.label}), older than #${floor} (${writer.states[floor]!.label}) ` +
          `which was committed before the call (read-your-writes)`,
      );
      break;
    }
    trace.log(`R ==== readImage #${r} returned state #${state.index} (${state.label}), version ${image.version}`);
    // An equal version proves equal content only after a settled one (read outside the racy window).
    const seen = versions.get(image.version);
    if (seen !== undefined && seen !== state.index) {
      fail(`readImage #${r}: version ${image.version} was returned settled for state #${seen}, and now for state #${state.index}`);
      break;
    }
    if (image.settled) versions.set(image.version, state.index);

    // Differential check of the incremental path: with the writer held still at the state it
    // returned, a fresh full read (no hints) must find the very same bytes.
    if (image.read === 'incremental') {
      tally.incremental++;
      if (writer.latest.index === state.index) {
        scheduler.enabled = false;
        const full = await readImage(DB, fs, world.policy).catch(() => undefined);
        if (full !== undefined) {
          tally.differential++;
          if (!Buffer.from(full.bytes).equals(image.bytes)) {
            fail(`readImage #${r} read incrementally ${writer.describe(image.bytes)}, a full read of the same state found ${writer.describe(full.bytes)}`);
            break;
          }
        }
      }
    }

    // The no-op check: a later fingerprint equal to the image's must mean nothing was committed since.
    scheduler.enabled = false;
    const extra = rng.pick([0, 0, 1, 3, 10]);
    for (let i = 0; i < extra; i++) writer.step();
    // A fingerprint vouched for by the -shm header speaks for commits that have returned: a commit
    // frame is in the -wal a step before the writer updates the header. Let that commit finish.
    if (image.fingerprint.witnessed) writer.finishOperation();
    fs.advance(rng.pick(QUIET_SPELLS_NS));
    let fingerprint: ReturnType<typeof readFingerprint>;
    try {
      fingerprint = readFingerprint(DB, fs);
    } catch (error) {
      fail(`readFingerprint after readImage #${r} threw: ${describeError(error)}`);
      break;
    }
    if (sameFiles(image.fingerprint, fingerprint) && writer.latest.index !== state.index) {
      fail(
        `readImage #${r} returned state #${state.index} with settled fingerprint ${image.fingerprint.key}; after ${extra} more writer steps ` +
          `state #${writer.latest.index} is committed, yet the fingerprint is unchanged`,
      );
      break;
    }
  }

  tally.writerSteps += scheduler.steps;
  tally.commits += writer.states.length - 1;
  tally.lockPageCrossings += writer.lockPageCrossings;
  for (const kind of OP_KINDS) tally.opCounts[kind] += writer.opCounts[kind];
  if (failure !== undefined) {
    tally.failedSeeds.push(`${seed}/${schedule}`);
    tally.firstFailure ??= failure;
  }
  return traceHash(trace);
}

function schedulesFor(profile: Profile): number[] {
  if (ONLY_SCHEDULE !== undefined) return [ONLY_SCHEDULE];
  // Every read past 4 GiB is checked through a flat copy of the image (seconds each): one schedule.
  const count = profile.large === undefined ? SCHEDULES : profile.large === '4GiB' ? 1 : Math.min(SCHEDULES, 2);
  return Array.from({ length: count }, (_, k) => k);
}

/** Runs every schedule of one seed; counts the distinct interleavings among them. */
async function simulateSeed(seed: number, profile: Profile, granularityNs: bigint, tally: Tally): Promise<void> {
  tally.seeds++;
  const hashes = new Set<string>();
  // Each read of a large image costs native scans of it (the oracle's, and a racy re-read's).
  const reads = profile.large === undefined ? 6 : 3;
  for (const schedule of schedulesFor(profile)) hashes.add(await simulateReads(seed, profile, granularityNs, tally, schedule, reads));
  tally.distinctSchedules += hashes.size;
}

function seedsFor(profile: Profile): number[] {
  if (ONLY_SEED !== undefined) return ONLY_PROFILE === undefined || ONLY_PROFILE === profile.key ? [ONLY_SEED] : [];
  if (ONLY_PROFILE !== undefined && ONLY_PROFILE !== profile.key) return [];
  return Array.from({ length: profile.large === undefined ? SEEDS : profile.large === '4GiB' ? Math.ceil(LARGE_SEEDS / 2) : LARGE_SEEDS }, (_, i) => i + 1);
}

function summarise(profile: Profile, tally: Tally): string {
  const ops = OP_KINDS.filter((kind) => tally.opCounts[kind] > 0)
    .map((kind) => `${kind} ${tally.opCounts[kind]}`)
    .join(', ');
  return (
    `${profile.key}: ${tally.seeds} seeds, ${tally.distinctSchedules} distinct of ${tally.schedules} schedules, ${tally.reads} reads (${tally.contended} with writer steps inside, ${tally.retries} retries), ` +
    `${tally.writerSteps} writer steps at scheduling points, ${tally.commits} commits; operations: ${ops}; ` +
    (profile.large === undefined ? '' : `${tally.past1GiB} images past 1 GiB, ${tally.past4GiB} past 4 GiB, ${tally.lockPageCrossings} commits across the lock-byte page, ${tally.lockPageFolds} WAL folds across it; `) +
    `${tally.failedSeeds.length} failing schedules; ${tally.leakedDescriptors} descriptors leaked in ${tally.leakSeeds.size} schedules`
  );
}

/** Tallies of the profiles that ran, for the descriptor test. */
const tallies = new Map<string, Tally>();

async function runProfile(t: TestContext, profile: Profile, granularity: (typeof GRANULARITIES)[number]): Promise<void> {
  const tally = newTally();
  if (ONLY_GRANULARITY !== undefined && ONLY_GRANULARITY !== granularity.label) return;
  for (const seed of seedsFor(profile)) await simulateSeed(seed, profile, granularity.ns, tally);
  tallies.set(`${profile.key}@${granularity.label}`, tally);
  report(t, `${granularity.label} ${summarise(profile, tally)}`);
  report(t, `${granularity.label} ${profile.key}: ${tally.incremental} incremental reads, ${tally.differential} of them equal to a full read of the same state`);
  if (ONLY_SCHEDULE === undefined && SCHEDULES > 1 && tally.schedules > 0) {
    // A scheduler whose forks all interleave alike runs one schedule per seed: distinct = seeds.
    const floor = Math.ceil(0.75 * tally.schedules);
    assert.ok(
      tally.distinctSchedules >= floor,
      `only ${tally.distinctSchedules} distinct interleavings among ${tally.schedules} schedules of ${tally.seeds} seeds (floor ${floor}): the scheduler's forks do not explore`,
    );
  }
  if (tally.failedSeeds.length > 0) {
    assert.fail(
      `${tally.failedSeeds.length} of ${tally.schedules} schedules failed (seed/schedule ${tally.failedSeeds.slice(0, 40).join(', ')}${tally.failedSeeds.length > 40 ? ', ...' : ''}).\n` +
        (profile.knownBug === undefined ? '' : `Bugs this profile once ran into: ${profile.knownBug}\n`) +
        `First failure:\n${tally.firstFailure}`,
    );
  }
}

for (const profile of [WAL_OPEN, WAL_CLOSE, WAL_INTERMITTENT, ROLLBACK, ROLLBACK_SPILL, MODE_SWITCH, EVERYTHING]) {
  for (const granularity of GRANULARITIES) {
    test(`readImage simulation, file times in steps of ${granularity.label}: ${profile.name}`, sampled(granularity.label), async (t) => {
      await runProfile(t, profile, granularity);
    });
  }
}

// Large images cost native scans: past 1 GiB at a fine and a coarse granularity, past 4 GiB at a coarse one.
for (const granularity of [GRANULARITIES[0]!, GRANULARITIES[3]!]) {
  test(`readImage simulation, file times in steps of ${granularity.label}: ${LARGE_1G.name}`, sampled(granularity.label, false), async (t) => {
    await runProfile(t, LARGE_1G, granularity);
  });
}
test(
  `readImage simulation, file times in steps of ${GRANULARITIES[3]!.label}: ${LARGE_4G.name}`,
  BEYOND_4GIB ? {} : { skip: 'this runtime holds no typed array past 4 GiB, and the checks here compare each image through one flat copy (readImage itself keeps pages)' },
  async (t) => {
    await runProfile(t, LARGE_4G, GRANULARITIES[3]!);
  },
);

/** Operations whose modelling must stay reachable: each is started, and moves inside reads, at least this often. */
const REQUIRED_EVENTS: Partial<Record<OpKind, number>> = {
  vacuum: 200,
  pageSize: 200,
  renameReplace: 200,
  renameReplaceOpen: 200,
  toWal: 200,
  toRollback: 200,
  spillRollback: 200,
  truncateCheckpoint: 200,
  close: 200,
};

test('simulation statistics: VACUUM, page-size changes, rename-replace (also with a WAL connection open), mode changes and files past 1 GiB happen, also inside reads', SAMPLE ? { skip: `${SAMPLE_SKIP} (its floors are counted over the full run)` } : {}, async (t) => {
  const runs = [...tallies.values()];
  if (runs.length === 0) {
    // Run on its own when --test-name-pattern skipped the simulations.
    for (const profile of [WAL_CLOSE, MODE_SWITCH, EVERYTHING, LARGE_1G]) {
      const tally = newTally();
      for (const seed of seedsFor(profile)) await simulateSeed(seed, profile, 1n, tally);
      runs.push(tally);
    }
  }
  const large = { past1GiB: 0, past4GiB: 0, lockPageCrossings: 0, lockPageFolds: 0 };
  for (const tally of runs) {
    large.past1GiB += tally.past1GiB;
    large.past4GiB += tally.past4GiB;
    large.lockPageCrossings += tally.lockPageCrossings;
    large.lockPageFolds += tally.lockPageFolds;
  }
  report(
    t,
    `large files: ${large.past1GiB} images past 1 GiB, ${large.past4GiB} past 4 GiB, ${large.lockPageCrossings} commits across the lock-byte page (counted per schedule), ` +
      `${large.lockPageFolds} images whose WAL fold grew the database file read across it`,
  );
  const started = Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>;
  const inside = Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>;
  for (const tally of runs) {
    for (const kind of OP_KINDS) {
      started[kind] += tally.opCounts[kind];
      inside[kind] += tally.insideRead[kind];
    }
  }
  report(t, `events (started / reads they moved inside): ${OP_KINDS.map((kind) => `${kind} ${started[kind]}/${inside[kind]}`).join(', ')}`);
  // The floors hold for the default run (or a wider one) of every profile.
  if (ONLY_SEED !== undefined || ONLY_PROFILE !== undefined || ONLY_GRANULARITY !== undefined || SEEDS < 24) return;
  assert.ok(large.past1GiB >= 10, `only ${large.past1GiB} images past 1 GiB`);
  assert.ok(large.lockPageCrossings >= 2, `only ${large.lockPageCrossings} commits grew a database across the lock-byte page`);
  // The fold must zero-fill the lock-byte page in memory that allocate() did not zero.
  assert.ok(large.lockPageFolds >= 2, `only ${large.lockPageFolds} WAL folds grew a database file read below the lock-byte page across it`);
  if (BEYOND_4GIB && tallies.has(`${LARGE_4G.key}@${GRANULARITIES[3]!.label}`)) assert.ok(large.past4GiB >= 2, `only ${large.past4GiB} images past 4 GiB`);
  for (const [kind, floor] of Object.entries(REQUIRED_EVENTS) as [OpKind, number][]) {
    assert.ok(started[kind] >= floor, `${kind}: started ${started[kind]} times, fewer than ${floor}`);
    assert.ok(inside[kind] >= floor, `${kind}: moved inside ${inside[kind]} reads, fewer than ${floor}`);
  }
});

test('readImage closes every descriptor it opens, on every retry path (all simulations above)', async (t) => {
  if (tallies.size === 0) {
    // Run on its own when --test-name-pattern skipped the simulations.
    const tally = newTally();
    for (const seed of seedsFor(WAL_INTERMITTENT)) await simulateSeed(seed, WAL_INTERMITTENT, 1_000_000_000n, tally);
    tallies.set(WAL_INTERMITTENT.key, tally);
  }
  const leaky = [...tallies].filter(([, tally]) => tally.leakedDescriptors > 0);
  report(t, `descriptors: ${[...tallies].map(([key, tally]) => `${key} ${tally.leakedDescriptors} leaked in ${tally.leakSeeds.size} of ${tally.schedules} schedules`).join(', ')}`);
  assert.equal(
    leaky.length,
    0,
    `readImage left descriptors open in ${leaky.map(([key, tally]) => `${key} (${tally.leakedDescriptors} in ${tally.leakSeeds.size} schedules)`).join(', ')}.\n` +
      `First leak:\n${leaky[0]?.[1].firstLeak}`,
  );
});

// ---------------------------------------------------------------------------------------------
// A writer stuck forever
// ---------------------------------------------------------------------------------------------

/** Lets the writer run `n` steps and finish its operation, with no reader around. */
function advance(world: World, n: number): void {
  world.scheduler.enabled = true;
  world.scheduler.budget = Number.POSITIVE_INFINITY;
  world.scheduler.run(n);
  world.writer.finishOperation();
}

/** Runs the steps a stuck writer still has, so it is stuck before the reader starts. */
function runUntilStuck(world: World): void {
  for (let i = 0; i < 10_000 && world.writer.pendingSteps > 0; i++) world.writer.step();
}

test('readImage: a hot journal that never clears ends in BUSY after the retry budget, on the fake clock', async () => {
  const seeds = ONLY_SEED === undefined ? Array.from({ length: 60 }, (_, i) => i + 1) : [ONLY_SEED];
  for (const seed of seeds) {
    const world = makeWorld(seed, ROLLBACK, 250);
    advance(world, world.rng.int(60));
    const cutRng = world.rng.fork();
    // Stop somewhere after the journal's magic is written and before it is deactivated.
    world.writer.startStuck('commit', (tags) => cutRng.between(tags.indexOf('journal-live') + 1, tags.indexOf('finalize')));
    runUntilStuck(world);
    const mark = world.trace.mark();
    const context = (): string => `${world.description}\n--- trace ---\n${world.trace.since(mark, 200)}`;
    world.scheduler.budget = Number.POSITIVE_INFINITY;
    let outcome: unknown;
    try {
      const image = await readImage(DB, world.fs, world.policy);
      outcome = `an image: ${world.writer.describe(image.bytes)}`;
    } catch (error) {
      outcome = error;
    }
    assert.ok(outcome instanceof PipelineFailure, `expected BUSY, got ${describeError(outcome)}\n${context()}`);
    assert.equal(outcome.code, 'BUSY', `expected BUSY, got ${describeError(outcome)}\n${context()}`);
    assert.ok(world.clock.now >= 250, `gave up after ${world.clock.now} fake ms, before the 250 ms budget\n${context()}`);
    assert.ok(world.clock.sleeps >= 5 && world.clock.sleeps < 100, `${world.clock.sleeps} backoff sleeps\n${context()}`);
    assert.equal(world.fs.openDescriptors(), 0, `descriptors left open\n${context()}`);
  }
});

test('readImage: a hot journal that appears during the read and never clears ends in BUSY or a committed image', async () => {
  const seeds = ONLY_SEED === undefined ? Array.from({ length: 60 }, (_, i) => i + 1) : [ONLY_SEED];
  let busy = 0;
  for (const seed of seeds) {
    const world = makeWorld(seed, ROLLBACK, 250);
    advance(world, world.rng.int(60));
    const floor = world.writer.latest.index;
    const cutRng = world.rng.fork();
    world.writer.startStuck('commit', (tags) => cutRng.between(tags.indexOf('journal-live') + 1, tags.indexOf('finalize')));
    const mark = world.trace.mark();
    const context = (): string => `${world.description}\n--- trace ---\n${world.trace.since(mark, 200)}`;
    // The stuck transaction's steps run at the reader's scheduling points.
    world.scheduler.budget = Number.POSITIVE_INFINITY;
    try {
      const image = await readImage(DB, world.fs, world.policy);
      const state = world.writer.find(image.bytes);
      assert.ok(state !== undefined, `not a committed state: ${world.writer.describe(image.bytes)}\n${context()}`);
      assert.ok(state.index >= floor, `stale state #${state.index} < #${floor}\n${context()}`);
    } catch (error) {
      assert.ok(error instanceof PipelineFailure && error.code === 'BUSY', `expected BUSY, got ${describeError(error)}\n${context()}`);
      busy++;
    }
  }
  assert.ok(busy > 0, 'no seed ended in BUSY');
});

test('readImage: a WAL writer stuck mid-transaction, mid-checkpoint or mid-close does not make the reader BUSY', async () => {
  const seeds = ONLY_SEED === undefined ? Array.from({ length: 60 }, (_, i) => i + 1) : [ONLY_SEED];
  const kinds: OpKind[] = ['commit', 'abort', 'checkpoint', 'truncateCheckpoint', 'close'];
  const stuckIn = new Map<OpKind, number>();
  for (const seed of seeds) {
    const world = makeWorld(seed, WAL_OPEN, 250);
    advance(world, 5 + world.rng.int(80));
    const writer = world.writer;
    if (!writer.applies('commit')) advance(world, 1); // a closed connection opens first
    const kind = world.rng.pick(kinds.filter((k) => writer.applies(k)));
    const cutRng = world.rng.fork();
    const cut = (tags: readonly StepTag[]): number => {
      if (kind !== 'commit') return cutRng.between(1, tags.length - 1);
      // Never the commit frame's page (the step after the last frame header).
      return cutRng.between(0, tags.lastIndexOf('frame'));
    };
    const expected = writer.latest;
    try {
      writer.startStuck(kind, cut);
    } catch {
      continue; // nothing to do for that kind right now
    }
    runUntilStuck(world);
    const mark = world.trace.mark();
    const context = (): string => `${world.description}\nstuck in ${kind}\n--- trace ---\n${world.trace.since(mark, 200)}`;
    let image: DatabaseImage;
    try {
      image = await readImage(DB, world.fs, world.policy);
    } catch (error) {
      assert.fail(`readImage rejected: ${describeError(error)}\n${context()}`);
    }
    const state = writer.find(image.bytes);
    assert.equal(state?.index, expected.index, `expected state #${expected.index}, got ${state === undefined ? writer.describe(image.bytes) : `#${state.index}`}\n${context()}`);
    stuckIn.set(kind, (stuckIn.get(kind) ?? 0) + 1);
  }
  // Seeds whose writer had nothing to do for the kind drawn are passed over: enough must remain.
  if (ONLY_SEED === undefined) for (const kind of kinds) assert.ok((stuckIn.get(kind) ?? 0) >= 3, `only ${stuckIn.get(kind) ?? 0} seeds got the writer stuck in ${kind}`);
});

// ---------------------------------------------------------------------------------------------
// readFingerprint
// ---------------------------------------------------------------------------------------------

/** The database file's bytes as an image (header bytes 18–19 = 1), to compare with states. */
function fileImage(fs: SimFs): Uint8Array {
  const bytes = fs.contents(DB) ?? new Uint8Array(0);
  if (bytes.length >= 20) {
    bytes[18] = 1;
    bytes[19] = 1;
  }
  return bytes;
}

test('readFingerprint: equal fingerprints before and after a span mean no commit in between, for every writer operation', async (t) => {
  const seeds = ONLY_SEED === undefined ? Array.from({ length: 80 }, (_, i) => i + 1) : [ONLY_SEED];
  const spansWith = Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>;
  const equalSpansWith = Object.fromEntries(OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>;
  let spans = 0;
  let equal = 0;
  let equalWithSteps = 0;
  let equalAcrossJournalCommit = 0;
  let racyAcrossCommit = 0;
  let settledSpans = 0;
  for (const seed of seeds) {
    const world = makeWorld(seed, EVERYTHING, 60_000, { granularityNs: GRANULARITIES[seed % GRANULARITIES.length]!.ns });
    const { writer, scheduler, rng, trace, fs } = world;
    for (let i = 0; i < 16; i++) {
      scheduler.enabled = true;
      scheduler.budget = Number.POSITIVE_INFINITY;
      scheduler.run(rng.int(25));
      fs.advance(rng.pick(QUIET_SPELLS_NS));
      const mark = trace.mark();
      const context = (): string => `${world.description}\n--- trace ---\n${trace.since(mark, 400)}`;
      // Half the time the writer may also move inside the fingerprint calls.
      scheduler.enabled = rng.chance(0.5);
      scheduler.budget = 15;
      const idleBefore = writer.idle;
      const stepsBefore = scheduler.steps;
      trace.log('R ==== fingerprint 1');
      const f1 = readFingerprint(DB, fs);
      // Taken between two operations with nothing moving: the strict property applies.
      const quiet = idleBefore && scheduler.steps === stepsBefore;
      const afterF1 = writer.latest.index;
      const fileAtF1 = fileImage(fs);
      writer.recentKinds.clear();
      const span = rng.pick([0, 0, 1, 1, 2, 4, 8, 30]);
      for (let s = 0; s < span; s++) writer.step();
      const kinds = [...writer.recentKinds];
      const beforeF2 = writer.latest.index;
      trace.log('R ==== fingerprint 2');
      const f2 = readFingerprint(DB, fs);
      assert.equal(fs.openDescriptors(), 0, `descriptors left open\n${context()}`);
      spans++;
      if (f1.settled) settledSpans++;
      for (const kind of kinds) spansWith[kind]++;
      if (f1.key !== f2.key) continue;
      equal++;
      if (span > 0) equalWithSteps++;
      for (const kind of kinds) equalSpansWith[kind]++;
      if (beforeF2 === afterF1) continue;
      // Inside the racy window an equal key proves nothing, and sameFiles says so.
      if (!f1.settled) {
        assert.equal(sameFiles(f1, f2), false);
        racyAcrossCommit++;
        continue;
      }
      const what = `fingerprint ${f1.key} unchanged, yet states #${afterF1 + 1}..#${beforeF2} were committed in between (span of ${span} steps: ${kinds.join(', ')})`;
      // The strict property: taken with no operation in progress, an equal fingerprint means no commit.
      assert.ok(!quiet, `${what}; the first fingerprint was taken with the writer idle\n${context()}`);
      // Taken while a rollback transaction was live, its pages already in the database file: the
      // commit in between only deactivated that journal (another one is live again at F2). The
      // file did not change, so a reader that read it after F1 holds the current state.
      assert.ok(
        f1.key.endsWith(':J') && writer.equalsLatest(fileAtF1),
        `${what}, and the database file changed too (first fingerprint taken mid-operation)\n${context()}`,
      );
      equalAcrossJournalCommit++;
    }
  }
  report(
    t,
    `fingerprint: ${spans} spans, ${equal} with equal fingerprints (${equalWithSteps} of them with writer steps, ` +
      `${equalAcrossJournalCommit} across the deactivation of a journal whose pages were already in the file, ` +
      `${racyAcrossCommit} across commits but taken inside the racy window); ${settledSpans} spans began settled; ` +
      `spans per operation kind (with equal fingerprints): ${OP_KINDS.map((k) => `${k} ${spansWith[k]} (${equalSpansWith[k]})`).join(', ')}`,
  );
  if (ONLY_SEED === undefined) {
    for (const kind of OP_KINDS) assert.ok(spansWith[kind] > 0, `no span contained a ${kind} step`);
    assert.ok(settledSpans > 0 && settledSpans < spans, `${settledSpans} of ${spans} spans began settled: both kinds must occur`);
  }
});

// ---------------------------------------------------------------------------------------------
// Scripted interleavings: minimal reproductions
// ---------------------------------------------------------------------------------------------

interface ScriptEntry {
  /** Fires at the first scheduling point (e.g. `after fstat(fd7)`) matching this, once the entries before it have fired. */
  readonly at: RegExp;
  readonly note: string;
  readonly run?: () => void;
}

/** Replaces the random scheduler with a fixed script; reads are never torn. */
function script(world: World, entries: readonly ScriptEntry[]): () => number {
  const queue = [...entries];
  world.fs.splitRead = (length) => [length];
  world.fs.onPoint = (where) => {
    const next = queue[0];
    if (next === undefined || !next.at.test(where)) return;
    queue.shift();
    world.trace.log(`S ---- at "${where}": ${next.note}`);
    next.run?.();
  };
  return () => queue.length;
}

async function scriptedRead(world: World, entries: readonly ScriptEntry[]): Promise<{ image?: DatabaseImage; error?: unknown; context: string }> {
  const left = script(world, entries);
  const mark = world.trace.mark();
  const floor = world.writer.latest.index;
  world.trace.log(`R ==== readImage: newest committed state #${floor}; writer: ${world.writer.summary()}`);
  let image: DatabaseImage | undefined;
  let error: unknown;
  try {
    image = await readImage(DB, world.fs, world.policy);
  } catch (caught) {
    error = caught;
  }
  assert.equal(left(), 0, `the script did not run to its end:\n${world.trace.since(mark)}`);
  const outcome = image === undefined ? `rejected: ${describeError(error)}` : `returned ${world.writer.describe(image.bytes)}`;
  const context = `${world.description}\nreadImage ${outcome}\nstates: ${world.writer.states.map((s) => `#${s.index} ${world.writer.describeState(s)}`).join('; ')}\n--- trace ---\n${world.trace.since(mark)}`;
  return { ...(image === undefined ? {} : { image }), error, context };
}

/** A writer stuck mid-transaction forever: BUSY is right, and so is a committed state. */
function assertCommittedOrBusy(world: World, result: { image?: DatabaseImage; error?: unknown; context: string }): void {
  if (result.image === undefined && result.error instanceof PipelineFailure && result.error.code === 'BUSY') return;
  assertCommitted(world, result);
}

function assertCommitted(world: World, result: { image?: DatabaseImage; error?: unknown; context: string }): void {
  assert.ok(result.image !== undefined, `readImage rejected\n${result.context}`);
  const state = world.writer.find(result.image.bytes);
  assert.ok(state !== undefined, `readImage returned an image that is no committed state\n${result.context}`);
}

const SHM_OPENED = /^after open\(\/data\/app\.db-shm\)/;

test('scripted: WAL database with no -wal and no -shm; commit + checkpoint + last close around the database read', async () => {
  const world = makeWorld(1, WAL_CLOSE, 60_000, { mode: 'wal', initialPages: 3 });
  const { writer } = world;
  const result = await scriptedRead(world, [
    {
      at: SHM_OPENED,
      note: 'reader saw no -wal header and no -shm; a connection opens, commits pages 2 and 3, and the checkpoint copies page 2',
      run: () => {
        writer.perform('open');
        writer.perform('commit', { pages: [2, 3] });
        writer.begin('checkpoint', { full: true });
        writer.stepUntil(/db page 2/);
      },
    },
    { at: /^after read\(/, note: 'the reader has read the whole database file' },
    {
      at: /^after fstat\(/,
      note: 'its second fstat matches the first; the checkpoint copies page 3, and the last connection closes',
      run: () => {
        writer.finishOperation();
        writer.perform('close');
      },
    },
  ]);
  assertCommitted(world, result);
});

test('scripted: WAL database with an empty -wal; the -shm header a reopen writes is the same as before', async () => {
  const world = makeWorld(1, WAL_CLOSE, 60_000, { mode: 'wal', initialPages: 3 });
  const { writer } = world;
  writer.perform('open');
  const result = await scriptedRead(world, [
    { at: SHM_OPENED, note: 'the reader has read the fresh -shm header' },
    {
      at: /^before open\(\/data\/app\.db\)/,
      note: 'a commit of pages 2 and 3; the checkpoint copies page 2',
      run: () => {
        writer.perform('commit', { pages: [2, 3] });
        writer.begin('checkpoint', { full: true });
        writer.stepUntil(/db page 2/);
      },
    },
    { at: /^after read\(/, note: 'the reader has read the whole database file' },
    {
      at: /^after fstat\(/,
      note: 'its second fstat matches; the checkpoint copies page 3, the last connection closes, a new one opens (fresh -shm, empty -wal)',
      run: () => {
        writer.finishOperation();
        writer.perform('close');
        writer.perform('open');
      },
    },
  ]);
  assertCommitted(world, result);
});

test('scripted: a -wal that appears during the read: the retry closes every descriptor', async () => {
  const world = makeWorld(1, WAL_CLOSE, 60_000, { mode: 'wal', initialPages: 2 });
  const { writer } = world;
  const result = await scriptedRead(world, [
    { at: SHM_OPENED, note: 'reader saw no -wal; a connection opens (creating an empty -wal)', run: () => writer.perform('open') },
  ]);
  assertCommitted(world, result);
  assert.equal(world.fs.openDescriptors(), 0, `readImage left ${world.fs.openDescriptors()} descriptor(s) open\n${result.context}`);
});

test('scripted: rollback journal; a transaction spills pages 1 and 2 into the database file and rolls back around the read', async () => {
  const world = makeWorld(1, ROLLBACK, 60_000, { mode: 'delete', initialPages: 3 });
  const { writer } = world;
  const result = await scriptedRead(world, [
    { at: /^after readSync\(fd\d+, 4 @24\)/, note: 'the reader has read the change counter' },
    {
      at: /^after open\(\/data\/app\.db-journal\)/,
      note: 'no journal; now a transaction journals pages 1 and 2, makes the journal live and spills both into the database file (counter + 1)',
      run: () => {
        writer.begin('spillRollback', { pages: [1, 2] });
        writer.stepUntil(/cache spill: db page 2/);
      },
    },
    {
      at: /^after read\(/,
      note: 'the reader has read the file; the transaction rolls back (truncate, restore pages 1 and 2, delete the journal): counter and size are as before',
      run: () => writer.finishOperation(),
    },
  ]);
  assertCommitted(world, result);
});

test('scripted: PRAGMA journal_mode=WAL in progress: page 1 already says WAL, its journal is still live', async () => {
  const world = makeWorld(1, MODE_SWITCH, 60_000, { mode: 'delete', initialPages: 3 });
  const { writer } = world;
  const result = await scriptedRead(world, [
    {
      at: /^before stat\(\/data\/app\.db\)$/,
      note: 'the journal_mode=WAL transaction makes its journal live and writes page 1 (versions 2/2, counter + 1), then stops for a while',
      run: () => {
        writer.begin('toWal');
        writer.stepUntil(/db page 1/);
      },
    },
  ]);
  // The writer stays there: BUSY is the right answer. A crash now would roll page 1 back from the
  // hot journal, so an image with the new page 1 was never committed.
  assertCommittedOrBusy(world, result);
});

test('scripted: PRAGMA journal_mode=DELETE, then a rollback commit, while a reader is in its WAL path', async () => {
  const world = makeWorld(1, MODE_SWITCH, 60_000, { mode: 'wal', initialPages: 3 });
  const { writer } = world;
  writer.perform('open');
  writer.perform('commit', { pages: [2] });
  // journal_mode=DELETE has checkpointed and deleted -shm and -wal; page 1 still says WAL (2/2).
  writer.begin('toRollback');
  writer.stepUntil(/journal mode is now/);
  const result = await scriptedRead(world, [
    {
      at: SHM_OPENED,
      note: 'the reader chose its WAL path (page 1 said 2/2, no -wal); page 1 is set to versions 1/1 (committed), then a rollback transaction makes its journal live and writes pages 1 and 3',
      run: () => {
        writer.finishOperation();
        writer.begin('commit', { pages: [3] });
        writer.stepUntil(/db page 3/);
      },
    },
  ]);
  assertCommitted(world, result);
});

/**
 * The first steps of both tests below: the reader finds no -wal and takes its rollback path by
 * the header; meanwhile the file turns into a WAL database whose first commit (pages 2 and 3) a
 * checkpoint has copied only up to page 2.
 */
function rollbackPathWhileTurningToWal(writer: SimWriter): ScriptEntry[] {
  const WAL_STAT = /^after stat\(\/data\/app\.db-wal\)/;
  return [
    { at: WAL_STAT, note: '(the fingerprint found no -wal)' },
    { at: WAL_STAT, note: 'no -wal: the reader will read the header to choose its path' },
    {
      at: /^after readSync\(fd\d+, 100 @0\)/,
      note: 'the header says rollback (1/1): the reader takes its rollback path; meanwhile journal_mode=WAL commits, a connection opens and commits pages 2 and 3, and a checkpoint copies page 2',
      run: () => {
        writer.perform('toWal');
        writer.perform('open');
        writer.perform('commit', { pages: [2, 3] });
        writer.begin('checkpoint', { full: true });
        writer.stepUntil(/db page 2/);
      },
    },
  ];
}

test('scripted: rollback path; the database turns into a WAL database, commits, checkpoints and closes around the read', async () => {
  const world = makeWorld(1, MODE_SWITCH, 60_000, { mode: 'delete', initialPages: 3 });
  const { writer } = world;
  const COUNTER_READ = /^after readSync\(fd\d+, 4 @24\)/;
  const result = await scriptedRead(world, [
    ...rollbackPathWhileTurningToWal(writer),
    { at: COUNTER_READ, note: 'the reader has read the change counter (no journal follows: the writer is in WAL mode)' },
    {
      at: COUNTER_READ,
      note: 'the reader read the file, no journal, same size and counter (and the same mtime); the checkpoint copies page 3 and the last connection closes',
      run: () => {
        writer.finishOperation();
        writer.perform('close');
      },
    },
  ]);
  assertCommitted(world, result);
});

test('guard pair: rollback path; the database turns into a WAL database and a checkpoint stops half done before the read starts', async () => {
  // The bytes read are stable and no journal is live, but they are the database file in the middle
  // of a checkpoint: page 2 of the WAL commit copied, page 3 not. Only a check that sees WAL mode
  // ('a WAL appeared during the read', or bytes that say WAL: each covers the other) sends the
  // reader down the WAL path. npm run mutate -- --together 5,7 disables both.
  const world = guardWorld(MODE_SWITCH, { mode: 'delete', initialPages: 3 });
  const result = await scriptedRead(world, rollbackPathWhileTurningToWal(world.writer));
  assertCommitted(world, result);
});

test('scripted: an ImageFileSystem whose methods need their `this` (a plain class instance)', async () => {
  const world = makeWorld(1, WAL_OPEN, 60_000, { mode: 'wal', initialPages: 1, boundFs: false });
  const { writer } = world;
  writer.perform('open');
  // The commit grows the database to 3 pages: folding the WAL needs a bigger buffer from fs.allocate.
  writer.perform('commit', { pages: [1, 2, 3] });
  const result = await scriptedRead(world, []);
  assertCommitted(world, result);
});

test('readImage and readFingerprint close every descriptor when any file-system call throws (each call of an attempt in turn)', async () => {
  for (const mode of ['wal', 'delete'] as const) {
    for (let failAt = 1; ; failAt++) {
      const world = makeWorld(1, mode === 'wal' ? WAL_OPEN : ROLLBACK, 60_000, { mode, initialPages: 3 });
      if (mode === 'wal') {
        world.writer.perform('open');
        world.writer.perform('commit', { pages: [2, 3] });
      }
      world.scheduler.enabled = false;
      const fs = world.fs;
      let calls = 0;
      // Fails the failAt-th call of any kind (open, fstat, stat, reads, close succeed up to then).
      const failing: typeof fs = Object.create(fs) as typeof fs;
      for (const method of ['open', 'fstat', 'stat', 'readSync', 'read', 'allocate'] as const) {
        const real = (fs[method] as (...args: unknown[]) => unknown).bind(fs);
        (failing as unknown as Record<string, unknown>)[method] = (...args: unknown[]): unknown => {
          if (++calls === failAt) throw Object.assign(new Error(`EIO: injected at call ${failAt}`), { code: 'EIO' });
          return real(...args);
        };
      }
      let failed = false;
      try {
        await readImage(DB, failing, world.policy);
      } catch (error) {
        failed = true;
        assert.ok(error instanceof PipelineFailure && error.code === 'IO', `${mode}, call ${failAt}: ${describeError(error)}`);
      }
      assert.equal(fs.openDescriptors(), 0, `${mode}: a failure at call ${failAt} left descriptors open`);
      if (!failed) break; // every call of a successful read has had its turn
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Scripted interleavings: one per guard of readImage (npm run mutate disables each in turn)
// ---------------------------------------------------------------------------------------------

/** File times in whole seconds (HFS+, network file systems): every write of a test lands in one tick. */
const COARSE = 1_000_000_000n;

/**
 * A world for a guard test: while the reader backs off, the writer only finishes the operation
 * it is in (no new random ones), so the guarded reader's next attempt finds quiet files.
 */
function guardWorld(profile: Profile, overrides: WorldOverrides): World {
  const world = makeWorld(1, profile, 60_000, overrides);
  world.scheduler.budget = 0;
  return world;
}

const JOURNAL_OPENED = /^after open\(\/data\/app\.db-journal\)/;
const READ_DONE = /^after read\(/;

test('guard: rollback, coarse file times; a transaction spills pages 1 and 2 and rolls back while the file is read', async () => {
  // Within one file-time tick the stats before and after match and the counter is restored: only
  // re-reading the file shows that the bytes read held pages that were never committed.
  const world = guardWorld(ROLLBACK_SPILL, { mode: 'delete', initialPages: 3, granularityNs: COARSE });
  const { writer } = world;
  const result = await scriptedRead(world, [
    {
      at: JOURNAL_OPENED,
      note: 'no journal; now a transaction makes its journal live and spills pages 1 and 2 (counter + 1)',
      run: () => {
        writer.begin('spillRollback', { pages: [1, 2] });
        writer.stepUntil(/cache spill: db page 2/);
      },
    },
    { at: READ_DONE, note: 'the reader has read the file; the transaction rolls back (pages, counter and size as before)', run: () => writer.finishOperation() },
  ]);
  assertCommitted(world, result);
});

test('guard: rollback, coarse file times; a journal goes live and spills page 2 during the read, and rolls back after the re-read', async () => {
  const world = guardWorld(ROLLBACK_SPILL, { mode: 'delete', initialPages: 3, granularityNs: COARSE });
  const { writer } = world;
  const result = await scriptedRead(world, [
    {
      at: JOURNAL_OPENED,
      note: 'no journal; now a transaction makes its journal live and spills page 2 (the counter stays)',
      run: () => {
        writer.begin('spillRollback', { pages: [2] });
        writer.stepUntil(/cache spill: db page 2/);
      },
    },
    { at: READ_DONE, note: 'the reader has read the file, spilled page 2 included; the journal is still live' },
    {
      at: READ_DONE,
      note: 'the file still holds exactly what was read; now the transaction rolls back (journal gone, counter and size as before)',
      run: () => writer.finishOperation(),
    },
  ]);
  assertCommitted(world, result);
});

test('guard: WAL path with no WAL header; after PRAGMA journal_mode=DELETE a transaction spills page 2 during the read and rolls back after the re-read', async () => {
  const world = guardWorld(MODE_SWITCH, { mode: 'wal', initialPages: 3 });
  const { writer } = world;
  writer.perform('open');
  writer.perform('commit', { pages: [2] });
  // journal_mode=DELETE has checkpointed and deleted -shm and -wal; page 1 still says WAL (2/2).
  writer.begin('toRollback');
  writer.stepUntil(/journal mode is now/);
  const result = await scriptedRead(world, [
    {
      at: SHM_OPENED,
      note: 'the reader chose its WAL path (page 1 said 2/2, no -wal); page 1 is set to versions 1/1 (committed)',
      run: () => writer.finishOperation(),
    },
    {
      at: /^before open\(\/data\/app\.db\)/,
      note: 'no journal was live; now a transaction makes its journal live and spills page 2 (the counter stays)',
      run: () => {
        writer.begin('spillRollback', { pages: [2] });
        writer.stepUntil(/cache spill: db page 2/);
      },
    },
    { at: READ_DONE, note: 'the reader has read the database file, spilled page 2 included' },
    {
      at: READ_DONE,
      note: 'the file still holds exactly what was read; now the transaction rolls back (journal inactive, -shm and -wal still absent)',
      run: () => writer.finishOperation(),
    },
  ]);
  assertCommitted(world, result);
});

// ---- failure guards: fixed files, no writer --------------------------------------------------

/**
 * A file system holding exactly `files` (path → bytes), quiet for `quietNs` since, and a policy
 * whose retries cost no real time (`onSleep` runs at each backoff).
 */
function fixedFiles(
  files: Record<string, Uint8Array>,
  options: { onSleep?: () => void; granularityNs?: bigint; quietNs?: bigint } = {},
): { fs: SimFs; policy: ReadPolicy } {
  const fs = new SimFs(new Trace(), { granularityNs: options.granularityNs ?? 1n });
  for (const [path, bytes] of Object.entries(files)) {
    fs.create(path);
    fs.write(path, 0, bytes);
  }
  fs.advance(options.quietNs ?? 10_000_000_000n);
  let now = 0;
  const policy: ReadPolicy = {
    busyTimeoutMs: 1_000,
    now: () => now,
    sleep: async (ms) => {
      now += ms;
      fs.advance(BigInt(Math.round(ms * 1e6)));
      options.onSleep?.();
    },
  };
  return { fs, policy };
}

/** `fs` with the database path reported as something other than a regular file (a device that reads as empty). */
function asDevice(fs: SimFs): SimFs {
  const device: SimFs = Object.create(fs) as SimFs;
  const notAFile = (stat: FileStat): FileStat => ({ ...stat, isFile: false });
  device.stat = (path) => {
    const stat = fs.stat(path);
    return stat !== undefined && path === DB ? notAFile(stat) : stat;
  };
  const dbFds = new Set<number>();
  device.open = (path) => {
    const fd = fs.open(path);
    if (path === DB) dbFds.add(fd);
    return fd;
  };
  device.fstat = (fd) => (dbFds.has(fd) ? notAFile(fs.fstat(fd)) : fs.fstat(fd));
  return device;
}

/** A rollback-mode database of `pages` pages of `pageSize` bytes whose header says `pageCount`. */
function databaseBytes(pageSize: number, pages: number, pageCount = pages, version: 1 | 2 = 1): Uint8Array {
  const bytes = new Uint8Array(pageSize * pages);
  for (let p = 1; p <= pages; p++) bytes.set(patternPage(pageSize, 1, p), (p - 1) * pageSize);
  writeDbHeader(bytes, pageSize, version, 7, pageCount);
  return bytes;
}

async function failureCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof PipelineFailure, `not a PipelineFailure: ${describeError(error)}`);
    return error.code;
  }
  assert.fail('no failure');
}

test('guard: a missing database file is NOT_FOUND for readFingerprint and readImage', async () => {
  const { fs, policy } = fixedFiles({});
  assert.equal(await failureCode(Promise.resolve().then(() => readFingerprint(DB, fs))), 'NOT_FOUND');
  assert.equal(await failureCode(readImage(DB, fs, policy)), 'NOT_FOUND');
  assert.equal(fs.openDescriptors(), 0);
});

test('guard: a path that is no regular file (a device that reads as empty) is NOT_A_FILE, with or without a fingerprint hint', async () => {
  const { fs, policy } = fixedFiles({ [DB]: new Uint8Array(0) });
  const device = asDevice(fs);
  assert.equal(await failureCode(Promise.resolve().then(() => readFingerprint(DB, device))), 'NOT_A_FILE');
  assert.equal(await failureCode(readImage(DB, device, policy)), 'NOT_A_FILE');
  // The cache passes the fingerprint it took: then the reader's own open must find out.
  const fingerprint = readFingerprint(DB, fs);
  assert.equal(await failureCode(readImage(DB, device, policy, { fingerprint })), 'NOT_A_FILE');
  assert.equal(fs.openDescriptors(), 0);
});

test('guard: a file that is no SQLite database is NOT_A_DATABASE', async () => {
  const garbage = new Uint8Array(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 37 + 11) & 0xff;
  const { fs, policy } = fixedFiles({ [DB]: garbage });
  assert.equal(await failureCode(readImage(DB, fs, policy)), 'NOT_A_DATABASE');
});

test('guard: a database file shorter than the page count its header vouches for is NOT_A_DATABASE', async () => {
  const { fs, policy } = fixedFiles({ [DB]: databaseBytes(1024, 2, 3) });
  assert.equal(await failureCode(readImage(DB, fs, policy)), 'NOT_A_DATABASE');
});

test('guard: a WAL whose page size differs from the database file (page 1 not in the WAL) is NOT_A_DATABASE', async () => {
  const wal = new WalBuilder({ pageSize: 4096 }).frame(2, 2, patternPage(4096, 2, 2)).build();
  const { fs, policy } = fixedFiles({ [DB]: databaseBytes(1024, 2, 2, 2), [`${DB}-wal`]: wal });
  assert.equal(await failureCode(readImage(DB, fs, policy)), 'NOT_A_DATABASE');
});

test('guard: a database file caught mid-extension (not a whole number of pages) is read again first', async () => {
  // A writer without a journal (journal_mode=OFF) extends the file by page 3 in two writes and
  // rewrites page 1 with the new page count: the reader backs off after finding the half page.
  const before = databaseBytes(1024, 2);
  const after = databaseBytes(1024, 3);
  const { fs, policy } = fixedFiles({ [DB]: before }, { onSleep: () => {
    fs.write(DB, 2560, after.subarray(2560));
    fs.write(DB, 0, after.subarray(0, 1024));
  } });
  fs.write(DB, 2048, after.subarray(2048, 2560));
  fs.advance(10_000_000_000n);
  const image = await readImage(DB, fs, policy);
  assert.ok(sameBytesAs(image.bytes, after), `readImage returned ${image.bytes.length} bytes, not the extended database`);
});

function sameBytesAs(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

test('guard: WAL mode; the database and its -wal are replaced (a restore with the same salts) between reading the database and the -wal', async () => {
  // Each pair alone is a committed state; the old database file with the new -wal is neither.
  const pageSize = 1024;
  const pair = (tag: number): { db: Uint8Array; wal: Uint8Array; image: Uint8Array } => {
    const db = new Uint8Array(2 * pageSize);
    db.set(patternPage(pageSize, tag, 1), 0);
    db.set(patternPage(pageSize, tag, 2), pageSize);
    writeDbHeader(db, pageSize, 2, tag, 2);
    const page2 = patternPage(pageSize, tag + 1, 2);
    const wal = new WalBuilder({ pageSize, salt1: 77, salt2: 99 }).frame(2, 2, page2).build();
    const image = db.slice();
    image.set(page2, pageSize);
    image[18] = image[19] = 1;
    return { db, wal, image };
  };
  const older = pair(10);
  const newer = pair(20);
  const { fs, policy } = fixedFiles({ [DB]: older.db, [`${DB}-wal`]: older.wal });
  let databaseRead = false;
  let replaced = false;
  fs.onPoint = (where) => {
    if (where.startsWith('after read(')) databaseRead = true;
    if (!databaseRead || replaced || where !== `before open(${DB}-wal)`) return;
    replaced = true;
    for (const [path, bytes] of [[DB, newer.db], [`${DB}-wal`, newer.wal]] as const) {
      fs.create(`${path}.restore`);
      fs.write(`${path}.restore`, 0, bytes);
      fs.rename(`${path}.restore`, path);
    }
  };
  const image = await readImage(DB, fs, policy);
  assert.ok(replaced, 'the files were never replaced');
  assert.ok(sameBytesAs(image.bytes, older.image) || sameBytesAs(image.bytes, newer.image), 'readImage returned the old database with the new -wal');
  assert.equal(fs.openDescriptors(), 0);
});

/** Runs each entry once, in order, at the first reader call point matching it. Returns how many are left. */
function atPoints(fs: SimFs, entries: readonly { readonly at: RegExp; readonly run: () => void }[]): () => number {
  const queue = [...entries];
  fs.onPoint = (where) => {
    if (queue[0]?.at.test(where) === true) queue.shift()!.run();
  };
  return () => queue.length;
}

const JOURNAL_HEADER = new Uint8Array([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, 0, 0, 0, 1]);

/**
 * A transaction written by hand: `spill` makes a journal live (original of page `pgno`) and
 * writes `data` over the page; `rollBack` restores the page and deletes the journal. The same
 * transaction tried again (an application retrying after ROLLBACK) spills the very same bytes.
 */
function handTransaction(fs: SimFs, pageSize: number, pgno: number, original: Uint8Array, data: Uint8Array) {
  const journal = `${DB}-journal`;
  return {
    spill(): void {
      fs.create(journal);
      fs.write(journal, 0, JOURNAL_HEADER);
      fs.write(journal, 512, original);
      fs.write(DB, (pgno - 1) * pageSize, data);
    },
    rollBack(): void {
      if (!fs.exists(journal)) return;
      fs.write(DB, (pgno - 1) * pageSize, original);
      fs.unlink(journal);
    },
  };
}

function normalised(image: Uint8Array): Uint8Array {
  const copy = image.slice();
  copy[18] = copy[19] = 1;
  return copy;
}

test('guard: rollback, coarse file times; the same transaction spills the same page again between the read and the re-read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3);
  const spilled = patternPage(pageSize, 2, 2);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 2, committed.subarray(pageSize, 2 * pageSize), spilled);
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // no journal was live: now page 2 spills
    { at: READ_DONE, run: () => transaction.rollBack() }, // the file was read with the spilled page; it rolls back
    { at: /^before read\(/, run: () => transaction.spill() }, // tried again: the same bytes spill before the re-read
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, committed), 'readImage returned page 2 of a transaction that never committed');
});

test('guard: WAL path with no WAL header, coarse file times; the journal_mode=DELETE transaction spills page 1, rolls back and spills it again around the read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3, 3, 2);
  const page1 = committed.slice(0, pageSize);
  writeDbHeader(page1, pageSize, 1, 8, 3);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 1, committed.subarray(0, pageSize), page1);
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // the WAL path found no journal: page 1 (versions 1/1) spills
    { at: READ_DONE, run: () => transaction.rollBack() }, // the file was read with the spilled page; it rolls back
    { at: /^before read\(/, run: () => transaction.spill() }, // tried again: the same page 1 spills before the re-read
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, normalised(committed)), 'readImage returned a page 1 that was never committed');
});

test('guard: rollback, coarse file times; a transaction live before the read spills page 2, rolls back, and its retry spills the same bytes around the re-read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 2, committed.subarray(pageSize, 2 * pageSize), patternPage(pageSize, 2, 2));
  transaction.spill(); // live before the reader starts
  const left = atPoints(fs, [
    { at: READ_DONE, run: () => transaction.rollBack() }, // read with the spilled page; it rolls back
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // after the journal check: tried again, the same bytes spill
    { at: READ_DONE, run: () => transaction.rollBack() }, // after the re-read: it rolls back again
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, committed), 'readImage returned page 2 of a transaction that never committed');
});

test('guard: rollback, coarse file times; page 1 spills (counter + 1) during the read, rolls back, and spills again until after the re-read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3);
  const page1 = committed.slice(0, pageSize);
  writeDbHeader(page1, pageSize, 1, 8, 3);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 1, committed.subarray(0, pageSize), page1);
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // no journal was live: page 1 spills (counter 8)
    { at: READ_DONE, run: () => transaction.rollBack() }, // read with the spilled page; it rolls back (counter 7)
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // after the journal check: the same page 1 spills (counter 8)
    { at: READ_DONE, run: () => transaction.rollBack() }, // after the re-read: it rolls back (counter 7)
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, committed), 'readImage returned a page 1 that was never committed');
});

test('guard: rollback, coarse file times; a retried transaction rewrites page 1 with the same bytes before the re-read, then writes page 2 and commits', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3);
  const page1 = committed.slice(0, pageSize);
  writeDbHeader(page1, pageSize, 1, 8, 3);
  const page2 = patternPage(pageSize, 2, 2);
  const next = committed.slice();
  next.set(page1, 0);
  next.set(page2, pageSize);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 1, committed.subarray(0, pageSize), page1);
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // no journal was live: page 1 spills (counter 8)
    { at: READ_DONE, run: () => transaction.rollBack() }, // read with the spilled page; it rolls back (counter 7)
    { at: /^before read\(/, run: () => transaction.spill() }, // tried again: the same page 1 first
    {
      at: READ_DONE,
      run: () => {
        // after the re-read: page 2, and the commit (journal deleted)
        fs.write(DB, pageSize, page2);
        fs.unlink(`${DB}-journal`);
      },
    },
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, committed) || sameBytesAs(image.bytes, next), 'readImage returned page 1 of a commit without its page 2');
});

test('guard: WAL path with no WAL header, coarse file times; a journal_mode=DELETE transaction live before the read spills page 1, rolls back, and spills it again around the re-read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3, 3, 2);
  const page1 = committed.slice(0, pageSize);
  writeDbHeader(page1, pageSize, 1, 8, 3);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n, onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 1, committed.subarray(0, pageSize), page1);
  const left = atPoints(fs, [
    { at: /^after readSync\(fd\d+, 100 @0\)/, run: () => {} }, // the fingerprint reads page 1
    { at: /^after readSync\(fd\d+, 100 @0\)/, run: () => transaction.spill() }, // the attempt reads it (2/2: the WAL path); now page 1 spills
    { at: READ_DONE, run: () => transaction.rollBack() }, // read with the spilled page; it rolls back
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // after the journal check: tried again, the same page 1 spills
    { at: READ_DONE, run: () => transaction.rollBack() }, // after the re-read: it rolls back again
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, normalised(committed)), 'readImage returned a page 1 that was never committed');
});

test('guard: WAL path with no WAL header, fine file times; page 1 spills before the read and rolls back after its fstat, and the same bytes spill again around the re-read', async () => {
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3, 3, 2);
  const page1 = committed.slice(0, pageSize);
  writeDbHeader(page1, pageSize, 1, 8, 3);
  let transaction: ReturnType<typeof handTransaction> | undefined;
  const { fs, policy } = fixedFiles({ [DB]: committed }, { onSleep: () => transaction?.rollBack() });
  transaction = handTransaction(fs, pageSize, 1, committed.subarray(0, pageSize), page1);
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // the WAL path found no journal: page 1 (versions 1/1) spills
    { at: READ_DONE, run: () => {} }, // the file was read with the spilled page
    { at: /^after fstat\(/, run: () => transaction.rollBack() }, // its fstat matched; it rolls back (a newer mtime)
    { at: /^before read\(/, run: () => transaction.spill() }, // tried again: the same page 1 spills before the re-read
    { at: READ_DONE, run: () => transaction.rollBack() }, // after the re-read: it rolls back again
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, normalised(committed)), 'readImage returned a page 1 that was never committed');
});

test('guard: rollback, coarse file times; while the file is read, a restore renames a new database over it and deletes the journal of a transaction still live in the old file', async () => {
  // The descriptor keeps the old file, whose page 2 was spilled by a transaction that never
  // commits (the rename moves its ctime, within the same tick): only the path, now naming another
  // file, shows that the bytes read are no state of it.
  const pageSize = 1024;
  const committed = databaseBytes(pageSize, 3);
  const restored = databaseBytes(pageSize, 2);
  restored.set(patternPage(pageSize, 9, 2), pageSize);
  const { fs, policy } = fixedFiles({ [DB]: committed }, { granularityNs: COARSE, quietNs: 0n });
  const transaction = handTransaction(fs, pageSize, 2, committed.subarray(pageSize, 2 * pageSize), patternPage(pageSize, 2, 2));
  const left = atPoints(fs, [
    { at: JOURNAL_OPENED, run: () => transaction.spill() }, // no journal was live: now page 2 spills
    {
      at: READ_DONE,
      run: () => {
        fs.create(`${DB}.restore`);
        fs.write(`${DB}.restore`, 0, restored);
        fs.rename(`${DB}.restore`, DB);
        fs.unlink(`${DB}-journal`);
      },
    },
  ]);
  const image = await readImage(DB, fs, policy);
  assert.equal(left(), 0, 'the interleaving did not run to its end');
  assert.ok(sameBytesAs(image.bytes, committed) || sameBytesAs(image.bytes, restored), 'readImage returned page 2 of a transaction that never committed');
  assert.equal(fs.openDescriptors(), 0);
});

test('guard pair: incremental WAL read; a checkpoint, a WAL restart and new commits overwrite frames the reader has not read yet', async () => {
  // The WAL is read in two pieces. Between them a checkpoint copies every frame into the database
  // file and the next commits restart the WAL, overwriting the frames not read yet: their new
  // salts end the checksum chain early, at a commit older than the call. Either the salts read
  // again at the end ('the WAL was restarted during the read') or the database file's stat
  // ('changed or was replaced during the read') sends the reader to a full read.
  // npm run mutate -- --together 24,25 disables both.
  const world = guardWorld(WAL_OPEN, { mode: 'wal', initialPages: 3 });
  const { writer, fs } = world;
  writer.perform('open');
  writer.perform('commit', { pages: [2] });
  // The database file is settled (older than the racy window): the next read may be incremental.
  fs.advance(3_000_000_000n);
  const first = await readImage(DB, fs, world.policy);
  assert.ok(first.wal !== undefined, 'the first read remembers the WAL');
  for (let i = 0; i < 4; i++) writer.perform('commit', { pages: [2, 3] });
  const floor = writer.latest.index;
  const frameSize = 24 + first.wal.scan.header.pageSize;
  const firstPiece = 32 + 2 * frameSize;
  const mark = world.trace.mark();
  const left = script(world, [
    {
      at: /^inside read\(fd\d+\)/,
      note: 'the reader has the WAL header and two frames; a full checkpoint runs, then commits restart the WAL and overwrite the frames after them',
      run: () => {
        writer.perform('checkpoint', { full: true });
        for (let i = 0; i < 3; i++) writer.perform('commit', { pages: [2, 3] });
      },
    },
  ]);
  world.fs.splitRead = (length) => (length > firstPiece ? [firstPiece, length - firstPiece] : [length]);
  const image = await readImage(DB, fs, world.policy, { wal: first.wal });
  const context = `${world.description}\nstates: ${writer.states.map((s) => `#${s.index} ${writer.describeState(s)}`).join('; ')}\n--- trace ---\n${world.trace.since(mark)}`;
  assert.equal(left(), 0, `the script did not run to its end:\n${context}`);
  assert.ok(/WAL restart/.test(world.trace.since(mark)), `the commits did not restart the WAL:\n${context}`);
  assert.equal(image.read, 'full', `the restart went unnoticed: the incremental read's image was kept\n${context}`);
  const state = writer.find(image.bytes);
  assert.ok(state !== undefined, `not a committed state\n${context}`);
  assert.ok(state.index >= floor, `state #${state.index} is older than #${floor}, committed before the call (read-your-writes)\n${context}`);
});
