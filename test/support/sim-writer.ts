/**
 * A simulated SQLite writer for the read-protocol simulation: it changes the files of one
 * database exactly as SQLite's pager and WAL do, one file write per {@link SimWriter.step}, so a
 * reader scheduled between steps can land in the middle of any commit, checkpoint or restart.
 *
 * The database content is not a real b-tree (the image reader never parses past the header):
 * every page is filled with the 8-byte pattern (transaction number, page number), and page 1
 * starts with a valid 100-byte header. So every committed state is unique and an image mixing
 * pages of two states, or holding a page of a transaction that never committed, matches no
 * state in {@link SimWriter.states}.
 *
 * What is modelled, after SQLite's pager.c / wal.c:
 *
 * - WAL mode. Opening a connection creates `-wal` (0 bytes) and resets `-shm` to a fresh
 *   wal-index header (identical after every reset: nothing in it survives a reopen). A write
 *   transaction appends frames, each as two writes (24-byte frame header, then the page), the
 *   last one the commit frame carrying the database size; then it updates the `-shm` header
 *   (iChange, mxFrame, nPage, salts). A transaction that rolls back leaves dead frames that the
 *   next one overwrites. When every frame has been checkpointed the next writer may restart the
 *   WAL: `-shm` header with salt-1 + 1 and a new salt-2, then a new WAL header at offset 0 and
 *   frames over the old ones (and sometimes a journal_size_limit truncation). A checkpoint copies
 *   the newest frame of each page up to a commit boundary (all, or fewer when another reader
 *   holds an older snapshot) into the database file one page at a time, sometimes after a size
 *   hint that extends the file with zeros, truncates the file to the last commit's size when it
 *   copied everything, then stores nBackfill in `-shm` bytes 96–99. A TRUNCATE checkpoint then
 *   restarts the `-shm` header and truncates the WAL to 0 bytes. The last connection to close
 *   checkpoints, deletes `-shm`, then deletes `-wal`. Other readers move their read marks
 *   (`-shm` bytes 100–119).
 * - Rollback mode (DELETE, TRUNCATE, PERSIST). A transaction creates `-journal`, writes its
 *   header with the magic zeroed, appends the original of every page it will change, writes the
 *   magic (now the journal is live), writes the database pages one at a time (page 1 with the
 *   change counter + 1), truncates the file if it shrank, and then deactivates the journal
 *   (unlink / truncate to 0 / zero the header). A transaction that spills pages to the database
 *   file and then rolls back (ROLLBACK after a cache spill, or crash recovery of a hot journal)
 *   writes some pages, then plays the journal back: truncate to the original size, restore every
 *   page, deactivate the journal.
 * - Rename-replace: a complete new database (sometimes of another page size) written to a
 *   temporary file and renamed over the database path while no connection is open.
 * - Rename-replace while a WAL connection is open (`renameReplaceOpen`): the deploy script runs
 *   `PRAGMA wal_checkpoint(TRUNCATE)` through the open connection, then renames a new WAL-mode
 *   database over the path. The connection keeps the old inode open, and its `-wal` (now 0 bytes)
 *   and `-shm` stay at their paths beside the new file. SQLite then refuses nothing in WAL mode, but
 *   a commit through the moved connection would put its frames beside a database they do not
 *   belong to (sqlite.org/howtocorrupt.html, "unlinking or renaming a database file while in use"):
 *   no committed state of the file at the path exists then, so the model lets the moved
 *   connection only move read marks and close. Its close neither checkpoints nor deletes `-wal`
 *   and `-shm` (sqlite3PagerClose skips both once databaseIsUnmoved fails); the next connection
 *   opens the new file with the 0-byte `-wal` still there.
 * - A restore renamed over a database whose `-wal` is left behind (`restoreOverWal`, Litestream's
 *   `restore` to a new file and a rename, done without deleting `-wal` and `-shm`): the application
 *   is killed with frames in its WAL (no checkpoint, `-wal` and `-shm` stay), a restored WAL-mode
 *   database is written to a temporary file and renamed over the path, and only some steps later
 *   does the operator delete `-wal` and `-shm`. The restored file is the committed state from the
 *   rename on; SQLite would fold the old frames into it (sqlite.org/howtocorrupt.html, "mispairing
 *   database files"), so an image with them is no committed state. Nothing else runs until the
 *   files are deleted. `restoresLeft` bounds how often it happens.
 * - VACUUM: every page rewritten (and the file usually shorter). In rollback mode one journalled
 *   transaction that writes every page and truncates the file; in WAL mode one transaction whose
 *   frames hold every page, with a commit size below the file's (the file shrinks at the
 *   checkpoint that copies everything).
 * - Page-size change (`pageSize`): `PRAGMA page_size=N; VACUUM` in a rollback mode (SQLite ignores
 *   it in WAL mode: a WAL database changes its page size only after a journal_mode change, which
 *   the mode-switching profiles do). Like backup.c copying into a file of another page size, the
 *   journal keeps every original page at the old size, the new image is written over the file at
 *   the new size, the file is truncated to it, then the journal is deactivated.
 * - Quiet spells (`idle`): a step that writes nothing, so a database whose last connection
 *   closed stays closed for a while, as with writers that come and go.
 * - Large sparse databases (`initialPresent`): a page count past 1 GiB or 4 GiB of which only a
 *   few pages hold data; every other page reads as zeros, and so does the lock-byte page (the one
 *   holding byte offset 2^30), which SQLite never writes: a database that grows across it skips
 *   it (btree.c allocates the next page instead), so the page count never ends on it. Commits
 *   write only pages that hold data and new ones at the end.
 * - journal_mode changes: rollback → WAL (a journalled transaction that writes page 1 with
 *   versions 2/2) and WAL → rollback (checkpoint, delete `-shm` and `-wal`, then a journalled
 *   transaction that writes page 1 with versions 1/1).
 */
import { Buffer } from 'node:buffer';
import type { Rng, Steppable, SimFs, Trace } from './sim-fs.ts';
import { type ChecksumPair, WalBuilder, walChecksum } from './wal-bytes.ts';

export type JournalMode = 'wal' | 'delete' | 'truncate' | 'persist';

export type OpKind =
  | 'open'
  | 'commit'
  | 'abort'
  | 'checkpoint'
  | 'truncateCheckpoint'
  | 'close'
  | 'readMark'
  | 'renameReplace'
  | 'toWal'
  | 'toRollback'
  | 'spillRollback'
  | 'vacuum'
  | 'pageSize'
  | 'renameReplaceOpen'
  | 'idle'
  | 'restoreOverWal';

export const OP_KINDS: readonly OpKind[] = [
  'open',
  'commit',
  'abort',
  'checkpoint',
  'truncateCheckpoint',
  'close',
  'readMark',
  'renameReplace',
  'toWal',
  'toRollback',
  'spillRollback',
  'vacuum',
  'pageSize',
  'renameReplaceOpen',
  'idle',
];

/**
 * Operations that only the replica replays use (test/replicas.test.ts), kept out of
 * {@link OP_KINDS} (whose every kind the read-protocol profiles must exercise). With no weight
 * they are never drawn, so the profiles' random choices are the same as without them.
 */
export const REPLICA_OP_KINDS: readonly OpKind[] = ['restoreOverWal'];
const ALL_OP_KINDS: readonly OpKind[] = [...OP_KINDS, ...REPLICA_OP_KINDS];

export interface WriterConfig {
  readonly path: string;
  readonly pageSize: number;
  readonly mode: JournalMode;
  /** Pages of the initial database; 0 makes a 0-byte file (rollback modes only). */
  readonly initialPages: number;
  readonly maxPages: number;
  /** Relative weights of the operations (an operation that does not apply is skipped). */
  readonly weights: Partial<Record<OpKind, number>>;
  /** Journal modes that rename-replace and journal_mode changes may switch to (default: none). */
  readonly switchModes?: readonly JournalMode[];
  readonly bigEndianChecksums: boolean;
  /**
   * A sparse database: only these pages of the initial ones hold data, the rest read as zeros
   * (default: every page). Then VACUUM, page-size changes, rename-replace and mode changes are off.
   */
  readonly initialPresent?: readonly number[];
}

/** Fixes what a transaction writes (scripted scenarios). */
export interface PlanHints {
  /** Pages the transaction writes (page 1 is added in rollback mode); the page count stays. */
  readonly pages?: readonly number[];
  /** For a checkpoint: copy everything (default: random, as in the simulation). */
  readonly full?: boolean;
}

/** One committed state of the database, in commit order. */
export interface CommittedState {
  /** Position in {@link SimWriter.states}. */
  readonly index: number;
  readonly label: string;
  /** Bytes in the image. */
  readonly size: number;
  readonly pageSize: number;
  /** The pages (a sparse array: a hole is a page of zeros), page 1 with header bytes 18–19 set to 1. */
  readonly pages: readonly Uint8Array[];
  /**
   * The whole database image, header bytes 18–19 set to 1 (as readImage returns it). Only for
   * images up to {@link WHOLE_IMAGE_LIMIT} bytes; larger ones are compared page by page.
   */
  readonly image: Uint8Array;
}

/** Images larger than this are kept as pages only. */
export const WHOLE_IMAGE_LIMIT = 64 << 20;

/** The page that holds byte offset 2^30 (SQLite's PENDING_BYTE page), which SQLite never writes. */
export function lockBytePage(pageSize: number): number {
  return Math.floor(2 ** 30 / pageSize) + 1;
}

const ROLLBACK_MODES: readonly JournalMode[] = ['delete', 'truncate', 'persist'];
const JOURNAL_MAGIC = new Uint8Array([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]);
const JOURNAL_HEADER_SIZE = 512;
const SHM_SIZE = 136;
const WAL_HEADER_SIZE = 32;
const FRAME_HEADER_SIZE = 24;

interface OpInfo {
  readonly id: number;
  readonly kind: OpKind;
  readonly detail: string;
}

/** Marks on the steps that the stuck-writer tests cut at. */
export type StepTag = 'journal-live' | 'finalize' | 'frame' | undefined;

interface Step {
  readonly op: OpInfo;
  /** Performs one file write (plus bookkeeping); returns what it did, for the trace. */
  readonly run: () => string;
  readonly tag?: StepTag;
}

interface WalFrame {
  readonly pgno: number;
  readonly commit: number;
  readonly data: Uint8Array;
}

interface WalState {
  ckptSeq: number;
  salt1: number;
  salt2: number;
  /** Committed frames of this WAL generation; frame i + 1 is frames[i]. */
  frames: WalFrame[];
  mxFrame: number;
  nBackfill: number;
  /** Database size in pages after the last commit of this generation. */
  nPage: number;
  /** Running checksum after frame mxFrame (the header's when mxFrame is 0). */
  running: ChecksumPair;
}

interface ShmHeader {
  iChange: number;
  szPage: number;
  mxFrame: number;
  nPage: number;
  frameChecksum: ChecksumPair;
  salt1: number;
  salt2: number;
}

interface Content {
  /** Transaction number written into every page it changes. */
  readonly seq: number;
  readonly nPages: number;
  /** Pages written, ascending. */
  readonly writes: ReadonlyArray<readonly [number, Uint8Array]>;
  readonly counter: number;
  /** The database after the transaction. */
  readonly pages: Uint8Array[];
}

function freshWal(): WalState {
  return { ckptSeq: 0, salt1: 0, salt2: 0, frames: [], mxFrame: 0, nBackfill: 0, nPage: 0, running: [0, 0] };
}

function freshShm(): ShmHeader {
  return { iChange: 0, szPage: 0, mxFrame: 0, nPage: 0, frameChecksum: [0, 0], salt1: 0, salt2: 0 };
}

/** A page filled with the 8-byte pattern (seq, pgno), big-endian. */
export function patternPage(pageSize: number, seq: number, pgno: number): Uint8Array {
  const page = new Uint8Array(pageSize);
  const view = new DataView(page.buffer);
  for (let i = 0; i < pageSize; i += 8) {
    view.setUint32(i, seq);
    view.setUint32(i + 4, pgno);
  }
  return page;
}

/** Writes a valid 100-byte database header into `page`. */
export function writeDbHeader(page: Uint8Array, pageSize: number, version: 1 | 2, counter: number, pageCount: number): void {
  const magic = 'SQLite format 3\0';
  for (let i = 0; i < magic.length; i++) page[i] = magic.charCodeAt(i);
  const view = new DataView(page.buffer, page.byteOffset, 100);
  view.setUint16(16, pageSize === 65536 ? 1 : pageSize);
  page[18] = version;
  page[19] = version;
  page[20] = 0;
  page[21] = 64;
  page[22] = 32;
  page[23] = 32;
  view.setUint32(24, counter);
  view.setUint32(28, pageCount);
  page.fill(0, 32, 92);
  view.setUint32(92, counter);
  view.setUint32(96, 3046000);
}

/** A short description of an image: size, counter and the (seq, pgno) tag of every page. */
export function describeImage(bytes: Uint8Array, pageSize: number): string {
  if (bytes.length === 0) return 'empty (0 bytes)';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pages = Math.floor(bytes.length / pageSize);
  const tags: string[] = [];
  const lock = lockBytePage(pageSize);
  // A large image: the first pages, the ones around the lock-byte page, and the last ones.
  const shown = pages <= 64 ? undefined : new Set([0, 1, 2, 3, lock - 3, lock - 2, lock - 1, lock, pages - 3, pages - 2, pages - 1]);
  for (let p = 0; p < pages; p++) {
    if (shown !== undefined && !shown.has(p)) {
      if (shown.has(p - 1)) tags.push('...');
      continue;
    }
    const at = p * pageSize + (p === 0 ? 104 : 0);
    tags.push(`p${p + 1}=s${view.getUint32(at)}${view.getUint32(at + 4) === p + 1 ? '' : `!p${view.getUint32(at + 4)}`}`);
  }
  const counter = bytes.length >= 28 ? view.getUint32(24) : -1;
  const headerPages = bytes.length >= 32 ? view.getUint32(28) : -1;
  return `${pages} pages${bytes.length % pageSize === 0 ? '' : ` + ${bytes.length % pageSize} bytes`}, counter ${counter}, header pages ${headerPages}, [${tags.join(' ')}]`;
}

const ZEROS = new Uint8Array(1 << 22);

/** Whether bytes [from, to) of `bytes` are all zero (compared natively, in 4 MiB pieces). */
function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let at = from; at < to; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, to - at);
    if (Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + at, n), Buffer.from(ZEROS.buffer, 0, n)) !== 0) return false;
  }
  return true;
}

/** Whether `bytes` is exactly the image of `pages` (holes are zeros) cut to `size` bytes. */
function matchesPages(bytes: Uint8Array, size: number, pageSize: number, pages: readonly Uint8Array[]): boolean {
  if (bytes.length !== size) return false;
  let end = 0;
  let equal = true;
  pages.forEach((page, i) => {
    if (!equal) return;
    const at = i * pageSize;
    const n = Math.min(pageSize, size - at);
    equal = isZero(bytes, end, at) && Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + at, n), Buffer.from(page.buffer, page.byteOffset, n)) === 0;
    end = at + n;
  });
  return equal && isZero(bytes, end, size);
}

function hashBytes(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return `${bytes.length}:${h >>> 0}`;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The whole images of a simulated writer's committed states, by content: every state must be
 * unique, so that an image a reader returns equals exactly one of them.
 */
export class StateImages {
  readonly #byHash = new Map<string, { readonly index: number; readonly image: Uint8Array }[]>();

  /** Adds `image` as state `index`; throws (a simulator bug) when an earlier state has the same bytes. */
  add(index: number, image: Uint8Array): void {
    const key = hashBytes(image);
    const list = this.#byHash.get(key) ?? [];
    if (list.some((entry) => equalBytes(entry.image, image))) throw new Error(`simulator bug: state #${index} repeats an earlier state`);
    list.push({ index, image });
    this.#byHash.set(key, list);
  }

  /** The index of the state whose image is `bytes`, if any. */
  find(bytes: Uint8Array): number | undefined {
    return this.#byHash.get(hashBytes(bytes))?.find((entry) => equalBytes(entry.image, bytes))?.index;
  }
}

function samePages(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  if (a.length !== b.length) return false;
  let same = true;
  a.forEach((page, i) => {
    if (same && (b[i] === undefined || !equalBytes(page, b[i]))) same = false;
  });
  b.forEach((_, i) => {
    if (a[i] === undefined) same = false;
  });
  return same;
}

function u32(value: number, littleEndian = false): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0, littleEndian);
  return bytes;
}

/** The simulated SQLite writer (one process; at most one connection). */
export class SimWriter implements Steppable {
  /** Every committed state, oldest first; the last is the current one. */
  readonly states: CommittedState[] = [];
  /** How many operations of each kind were started. */
  readonly opCounts = Object.fromEntries(ALL_OP_KINDS.map((kind) => [kind, 0])) as Record<OpKind, number>;
  /** Commits that grew the database across the lock-byte page (from below it to past it). */
  lockPageCrossings = 0;
  /** Kinds of operation that took a step since the caller last cleared it. */
  readonly recentKinds = new Set<OpKind>();
  /** How many more `restoreOverWal` operations may start. */
  restoresLeft = Number.POSITIVE_INFINITY;
  mode: JournalMode;

  readonly #fs: SimFs;
  readonly #rng: Rng;
  readonly #trace: Trace;
  readonly #config: WriterConfig;
  #pageSize: number;
  readonly #path: string;
  readonly #walPath: string;
  readonly #shmPath: string;
  readonly #journalPath: string;
  readonly #tempPath: string;
  readonly #images = new StateImages();

  #queue: Step[] = [];
  #queueAt = 0;
  #opId = 0;
  #stuck = false;
  #pages: Uint8Array[] = [];
  #counter = 1;
  #seq = 0;
  #conn = false;
  /** The open connection's database was renamed over (see renameReplaceOpen). */
  #moved = false;
  #wal: WalState = freshWal();
  #shm: ShmHeader = freshShm();

  constructor(fs: SimFs, rng: Rng, trace: Trace, config: WriterConfig) {
    this.#fs = fs;
    this.#rng = rng;
    this.#trace = trace;
    this.#config = config;
    this.#pageSize = config.pageSize;
    this.#path = config.path;
    this.#walPath = `${config.path}-wal`;
    this.#shmPath = `${config.path}-shm`;
    this.#journalPath = `${config.path}-journal`;
    this.#tempPath = `${config.path}.tmp`;
    this.mode = config.mode;
    if (config.mode === 'wal' && config.initialPages === 0) throw new Error('a WAL database starts with at least one page');

    const version = config.mode === 'wal' ? 2 : 1;
    const present = config.initialPresent ?? Array.from({ length: config.initialPages }, (_, i) => i + 1);
    this.#pages.length = config.initialPages;
    for (const p of present) {
      const page = patternPage(this.#pageSize, 0, p);
      if (p === 1) writeDbHeader(page, this.#pageSize, version, this.#counter, config.initialPages);
      this.#pages[p - 1] = page;
    }
    fs.create(this.#path);
    if (config.initialPresent === undefined) {
      if (this.#pages.length > 0) fs.write(this.#path, 0, this.#image(false));
    } else {
      this.#pages.forEach((page, i) => fs.write(this.#path, i * this.#pageSize, page));
      fs.truncate(this.#path, config.initialPages * this.#pageSize);
    }
    this.#record(`initial ${config.mode} database, ${config.initialPages} pages`);
    trace.log(`W initial ${config.mode} database: ${this.#describeState(this.states[0]!)}`);
  }

  get idle(): boolean {
    return this.#queueAt >= this.#queue.length && !this.#stuck;
  }

  /** Whether the writer stopped forever in the middle of an operation. */
  get stuck(): boolean {
    return this.#stuck;
  }

  /** Steps left in the current operation. */
  get pendingSteps(): number {
    return this.#queue.length - this.#queueAt;
  }

  /** Whether an operation of `kind` can start now. */
  applies(kind: OpKind): boolean {
    return this.#applies(kind);
  }

  get latest(): CommittedState {
    return this.states[this.states.length - 1]!;
  }

  get pageSize(): number {
    return this.#pageSize;
  }

  step(): string | undefined {
    if (this.#queueAt >= this.#queue.length) {
      if (this.#stuck) return undefined;
      this.#queue = this.#planNext();
      this.#queueAt = 0;
    }
    const step = this.#queue[this.#queueAt++]!;
    const what = step.run();
    this.recentKinds.add(step.op.kind);
    this.#trace.log(`W [${step.op.kind}#${step.op.id}${step.op.detail}] ${what}`);
    return what;
  }

  /** Starts an operation of `kind` now (the writer must be idle); `hints` fix a transaction's pages. */
  begin(kind: OpKind, hints: PlanHints = {}): void {
    if (!this.idle) throw new Error('begin needs an idle writer');
    if (!this.#applies(kind)) throw new Error(`${kind} does not apply now (${this.summary()})`);
    this.#queue = this.#plan(kind, hints);
    this.#queueAt = 0;
  }

  /** Runs steps of the current operation until one whose description matches `pattern` has run. */
  stepUntil(pattern: RegExp): void {
    while (this.pendingSteps > 0) {
      if (pattern.test(this.step() ?? '')) return;
    }
    throw new Error(`no step matched ${pattern}`);
  }

  /** Runs the given operation to its end. */
  perform(kind: OpKind, hints: PlanHints = {}): void {
    this.begin(kind, hints);
    this.finishOperation();
  }

  /** Runs steps until the writer is idle (at most `limit`). */
  finishOperation(limit = 10_000): void {
    for (let i = 0; i < limit && !this.idle; i++) this.step();
  }

  /** The committed state whose image equals `bytes`, if any. */
  find(bytes: Uint8Array): CommittedState | undefined {
    if (bytes.length > WHOLE_IMAGE_LIMIT) {
      for (let i = this.states.length - 1; i >= 0; i--) {
        const state = this.states[i]!;
        if (matchesPages(bytes, state.size, state.pageSize, state.pages)) return state;
      }
      return undefined;
    }
    const index = this.#images.find(bytes);
    return index === undefined ? undefined : this.states[index];
  }

  /** Whether `bytes` is the current committed state. */
  equalsLatest(bytes: Uint8Array): boolean {
    const latest = this.latest;
    return matchesPages(bytes, latest.size, latest.pageSize, latest.pages);
  }

  describe(bytes: Uint8Array): string {
    return describeImage(bytes, this.#pageSize);
  }

  /** {@link describe} for a committed state (large ones are never built whole). */
  describeState(state: CommittedState): string {
    return this.#describeState(state);
  }

  #describeState(state: CommittedState): string {
    if (state.size <= WHOLE_IMAGE_LIMIT) return describeImage(state.image, state.pageSize);
    const tags: string[] = [];
    state.pages.forEach((page, i) => tags.push(`p${i + 1}=s${new DataView(page.buffer, page.byteOffset).getUint32(i === 0 ? 104 : 0)}`));
    return `${state.size / state.pageSize} pages of ${state.pageSize} (sparse; pages holding data: [${tags.join(' ')}])`;
  }

  /** A line on where the files are: mode, connection, WAL counters. */
  summary(): string {
    const wal = this.#wal;
    return `mode ${this.mode}, connection ${this.#conn ? 'open' : 'closed'}, WAL ckptSeq ${wal.ckptSeq} mxFrame ${wal.mxFrame} nBackfill ${wal.nBackfill}, ${this.states.length} states, ${this.idle ? 'idle' : this.#stuck ? 'stuck' : 'mid-operation'}`;
  }

  /**
   * Starts an operation of `kind` (which must apply now) and stops forever after the step that
   * `cut` picks: `cut(tags)` gets the steps' tags and returns how many steps to keep.
   */
  startStuck(kind: OpKind, cut: (tags: readonly StepTag[]) => number): void {
    if (!this.idle) throw new Error('startStuck needs an idle writer');
    const steps = this.#plan(kind);
    if (steps.length === 0) throw new Error(`${kind} has nothing to do now`);
    this.#queue = steps.slice(0, cut(steps.map((s) => s.tag)));
    this.#queueAt = 0;
    this.#stuck = true;
    this.#trace.log(`W [${kind}] will stop forever after ${this.#queue.length} of ${steps.length} steps`);
  }

  // ---- choosing operations --------------------------------------------------------------------

  #applies(kind: OpKind): boolean {
    const wal = this.mode === 'wal';
    const switchModes = this.#config.switchModes ?? [];
    const sparse = this.#config.initialPresent !== undefined;
    if (sparse && ['vacuum', 'pageSize', 'renameReplace', 'renameReplaceOpen', 'toWal', 'toRollback'].includes(kind)) return false;
    switch (kind) {
      case 'open':
        return wal && !this.#conn;
      case 'commit':
        return !wal || (this.#conn && !this.#moved);
      case 'close':
      case 'readMark':
        return wal && this.#conn;
      case 'abort':
      case 'truncateCheckpoint':
      case 'renameReplaceOpen':
        return wal && this.#conn && !this.#moved;
      case 'checkpoint':
        return wal && this.#conn && !this.#moved && this.#wal.nBackfill < this.#wal.mxFrame;
      case 'renameReplace':
        // Not beside the 0-byte -wal a moved connection left: the next connection opens (and its
        // close deletes it) first, as SQLite opens any database with a -wal in WAL mode.
        return !wal || (!this.#conn && !this.#fs.exists(this.#walPath));
      case 'toWal':
        return !wal && this.#pages.length > 0 && switchModes.includes('wal');
      case 'toRollback':
        return wal && this.#conn && !this.#moved && switchModes.some((m) => m !== 'wal');
      case 'spillRollback':
        return !wal;
      case 'vacuum':
        return this.#pages.length > 0 && (!wal || (this.#conn && !this.#moved));
      case 'pageSize':
        return !wal && this.#pages.length > 0;
      case 'idle':
        return true;
      case 'restoreOverWal':
        return wal && this.#conn && !this.#moved && this.#wal.mxFrame > 0 && this.restoresLeft > 0;
    }
  }

  #planNext(): Step[] {
    const weights: Partial<Record<OpKind, number>> = {};
    for (const kind of ALL_OP_KINDS) {
      if (!this.#applies(kind)) continue;
      // A closed WAL database can always be opened, or the writer would have nothing to do.
      weights[kind] = kind === 'open' ? (this.#config.weights.open ?? 1) : (this.#config.weights[kind] ?? 0);
    }
    for (;;) {
      const kind = this.#rng.weighted(weights);
      if (kind === undefined) throw new Error(`the writer has nothing to do (${this.summary()})`);
      const steps = this.#plan(kind);
      if (steps.length > 0) return steps;
    }
  }

  #plan(kind: OpKind, hints: PlanHints = {}): Step[] {
    this.opCounts[kind]++;
    const op = (detail: string): OpInfo => ({ id: ++this.#opId, kind, detail: detail === '' ? '' : ` ${detail}` });
    switch (kind) {
      case 'open':
        return this.#openSteps(op(''));
      case 'commit':
        return this.mode === 'wal' ? this.#walTransactionSteps(op, true, hints) : this.#rollbackCommitSteps(op, this.#planContent(this.mode, hints));
      case 'vacuum': {
        const content = this.#vacuumContent(this.mode === 'wal' ? 2 : 1, this.#pageSize);
        const vacuum = (detail: string): OpInfo => op(`VACUUM ${detail}`);
        return this.mode === 'wal' ? this.#walTransactionSteps(vacuum, true, hints, content) : this.#rollbackCommitSteps(vacuum, content, this.mode, `VACUUM s${content.seq} (${content.nPages} pages)`);
      }
      case 'pageSize':
        return this.#pageSizeSteps(op);
      case 'renameReplaceOpen':
        return this.#renameReplaceOpenSteps(op);
      case 'abort':
        return this.#walTransactionSteps(op, false, hints);
      case 'checkpoint':
        return this.#checkpointSteps(op('PASSIVE'), hints.full ?? this.#rng.chance(0.6));
      case 'truncateCheckpoint':
        return this.#truncateCheckpointSteps(op('TRUNCATE'));
      case 'close':
        return this.#moved ? this.#movedCloseSteps(op('moved connection')) : this.#closeSteps(op('last connection'));
      case 'readMark': {
        const info = op('');
        return [
          {
            op: info,
            run: () => {
              this.#fs.write(this.#shmPath, 100, u32(this.#rng.uint32(), true));
              return '-shm: another reader moves its read mark (bytes 100-103)';
            },
          },
        ];
      }
      case 'renameReplace':
        return this.#renameReplaceSteps(op);
      case 'toWal':
        return this.#toWalSteps(op);
      case 'toRollback':
        return this.#toRollbackSteps(op);
      case 'spillRollback':
        return this.#spillRollbackSteps(op, hints);
      case 'idle': {
        const info = op('');
        return [{ op: info, run: () => 'the writer process does nothing for a while' }];
      }
      case 'restoreOverWal':
        return this.#restoreOverWalSteps(op);
    }
  }

  // ---- content --------------------------------------------------------------------------------

  /** A new transaction: page count, pages to write (new ones always), page 1 per the pager's rules. */
  #planContent(mode: JournalMode, hints: PlanHints = {}): Content {
    const seq = ++this.#seq;
    const rng = this.#rng;
    const n0 = this.#pages.length;
    const sparse = this.#config.initialPresent !== undefined;
    const lock = lockBytePage(this.#pageSize);
    let n: number;
    if (hints.pages !== undefined) n = Math.max(n0, ...hints.pages);
    else if (n0 === 0) n = rng.between(1, 3);
    else if (sparse) {
      // Grows at the end (never shrinks: only VACUUM and auto-vacuum do), skipping the lock-byte page.
      n = rng.chance(0.6) ? n0 : n0 + rng.between(1, 2);
      if (n === lock) n++;
    } else {
      const r = rng.float();
      n = r < 0.6 ? n0 : r < 0.85 ? Math.min(this.#config.maxPages, n0 + rng.between(1, 2)) : Math.max(1, n0 - 1);
    }
    const chosen = new Set<number>(hints.pages);
    if (hints.pages === undefined) {
      for (let p = n0 + 1; p <= n; p++) if (p !== lock) chosen.add(p);
      if (sparse) this.#pages.forEach((_, i) => void (rng.chance(0.35) && chosen.add(i + 1)));
      else for (let p = 1; p <= Math.min(n0, n); p++) if (rng.chance(0.35)) chosen.add(p);
    }
    // Rollback mode: every commit rewrites page 1 (change counter). WAL mode: page 1 is in the
    // transaction when the page count changes (header bytes 28-31), or when the b-tree touches it.
    if (mode !== 'wal' || n !== n0 || (hints.pages === undefined && rng.chance(0.4))) chosen.add(1);
    if (chosen.size === 0) chosen.add(sparse ? 1 : rng.between(1, n));
    const counter = chosen.has(1) ? this.#counter + 1 : this.#counter;
    const writes: [number, Uint8Array][] = [];
    for (const p of [...chosen].sort((a, b) => a - b)) {
      const page = patternPage(this.#pageSize, seq, p);
      if (p === 1) writeDbHeader(page, this.#pageSize, mode === 'wal' ? 2 : 1, counter, n);
      writes.push([p, page]);
    }
    const pages = this.#pages.slice(0, n);
    for (const [p, page] of writes) pages[p - 1] = page;
    pages.length = n;
    return { seq, nPages: n, writes, counter, pages };
  }

  /**
   * VACUUM: every page of the database rewritten (new content, so every page differs from
   * before), the page count the same or smaller (freelist pages dropped), at `pageSize`.
   */
  #vacuumContent(version: 1 | 2, pageSize: number): Content {
    const seq = ++this.#seq;
    const n0 = this.#pages.length;
    const bytes0 = n0 * this.#pageSize;
    // At another page size, about the same number of bytes.
    const same = pageSize === this.#pageSize ? n0 : Math.min(this.#config.maxPages, Math.max(1, Math.round(bytes0 / pageSize)));
    const n = Math.max(1, same - this.#rng.int(Math.min(3, same)));
    const counter = this.#counter + 1;
    const pages: Uint8Array[] = [];
    const writes: [number, Uint8Array][] = [];
    for (let p = 1; p <= n; p++) {
      const page = patternPage(pageSize, seq, p);
      if (p === 1) writeDbHeader(page, pageSize, version, counter, n);
      pages.push(page);
      writes.push([p, page]);
    }
    return { seq, nPages: n, writes, counter, pages };
  }

  /** A transaction that only rewrites the file-format versions of page 1 (journal_mode change). */
  #versionContent(version: 1 | 2): Content {
    const page1 = this.#pages[0]!.slice();
    const counter = this.#counter + 1;
    writeDbHeader(page1, this.#pageSize, version, counter, this.#pages.length);
    const pages = this.#pages.slice();
    pages[0] = page1;
    return { seq: this.#seq, nPages: pages.length, writes: [[1, page1]], counter, pages };
  }

  #image(normalise: boolean): Uint8Array {
    const image = new Uint8Array(this.#pages.length * this.#pageSize);
    this.#pages.forEach((page, i) => image.set(page, i * this.#pageSize));
    if (normalise && image.length >= 20) {
      image[18] = 1;
      image[19] = 1;
    }
    return image;
  }

  #record(label: string): void {
    const index = this.states.length;
    const size = this.#pages.length * this.#pageSize;
    const pageSize = this.#pageSize;
    if (size > WHOLE_IMAGE_LIMIT) {
      const pages = this.#pages.slice();
      const page1 = pages[0]!.slice();
      page1[18] = page1[19] = 1;
      pages[0] = page1;
      if (this.states.some((state) => state.size === size && state.pageSize === pageSize && samePages(state.pages, pages))) {
        throw new Error(`simulator bug: state #${index} repeats an earlier state`);
      }
      this.states.push({
        index,
        label,
        size,
        pageSize,
        pages,
        get image(): Uint8Array {
          throw new Error(`state #${index} is ${size} bytes: compare it page by page`);
        },
      });
      return;
    }
    const image = this.#image(true);
    const pages = Array.from({ length: this.#pages.length }, (_, i) => image.subarray(i * pageSize, (i + 1) * pageSize));
    this.#images.add(index, image);
    this.states.push({ index, label, size, pageSize, pages, image });
  }

  #adopt(content: Content, label: string): string {
    const lock = lockBytePage(this.#pageSize);
    if (this.#pages.length < lock && content.pages.length > lock) this.lockPageCrossings++;
    this.#pages = content.pages;
    this.#counter = content.counter;
    this.#record(label);
    return `COMMITTED state #${this.states.length - 1} (${label}): ${this.#describeState(this.latest)}`;
  }

  // ---- rollback journal -----------------------------------------------------------------------

  /** Journal creation, header with the magic zeroed, original pages, then the magic. */
  #journalSteps(op: OpInfo, journalled: readonly number[]): Step[] {
    const fs = this.#fs;
    const path = this.#journalPath;
    const ps = this.#pageSize;
    const steps: Step[] = [];
    const n0 = this.#pages.length;
    const originals = journalled.map((p) => this.#pages[p - 1]!);
    if (!fs.exists(path)) steps.push({ op, run: () => (fs.create(path), 'create -journal (0 bytes)') });
    steps.push({
      op,
      run: () => {
        const header = new Uint8Array(JOURNAL_HEADER_SIZE);
        const view = new DataView(header.buffer);
        view.setUint32(12, this.#rng.uint32()); // checksum nonce
        view.setUint32(16, n0); // database size before the transaction
        view.setUint32(20, JOURNAL_HEADER_SIZE); // sector size
        view.setUint32(24, ps);
        fs.write(path, 0, header);
        return `-journal header, magic still zero (original size ${n0} pages)`;
      },
    });
    journalled.forEach((p, i) => {
      steps.push({
        op,
        run: () => {
          const record = new Uint8Array(ps + 8);
          new DataView(record.buffer).setUint32(0, p);
          record.set(originals[i]!, 4);
          new DataView(record.buffer).setUint32(ps + 4, this.#rng.uint32());
          fs.write(path, JOURNAL_HEADER_SIZE + i * (ps + 8), record);
          return `-journal record ${i + 1}: original page ${p}`;
        },
      });
    });
    steps.push({
      op,
      tag: 'journal-live',
      run: () => {
        const head = new Uint8Array(12);
        head.set(JOURNAL_MAGIC);
        new DataView(head.buffer).setUint32(8, journalled.length);
        fs.write(path, 0, head);
        return `-journal magic written: the journal is live (${journalled.length} records)`;
      },
    });
    return steps;
  }

  /** Makes the journal inactive the way `mode` does it. */
  #deactivate(mode: JournalMode): string {
    const fs = this.#fs;
    switch (mode) {
      case 'delete':
        fs.unlink(this.#journalPath);
        return 'unlink -journal';
      case 'truncate':
        fs.truncate(this.#journalPath, 0);
        return 'truncate -journal to 0 bytes';
      default:
        fs.write(this.#journalPath, 0, new Uint8Array(28));
        return 'zero the -journal header (PERSIST)';
    }
  }

  #rollbackCommitSteps(opOf: (detail: string) => OpInfo, content: Content, mode = this.mode, label?: string, after?: () => void): Step[] {
    const op = opOf(`${mode} seq ${content.seq}`);
    const fs = this.#fs;
    const ps = this.#pageSize;
    const n0 = this.#pages.length;
    const steps = this.#journalSteps(op, content.writes.map(([p]) => p).filter((p) => p <= n0));
    for (const [p, page] of content.writes) {
      steps.push({ op, run: () => (fs.write(this.#path, (p - 1) * ps, page), `db page ${p} <- s${content.seq}${p === 1 ? ` (counter ${content.counter})` : ''}`) });
    }
    if (content.nPages < n0) {
      steps.push({ op, run: () => (fs.truncate(this.#path, content.nPages * ps), `truncate db to ${content.nPages} pages`) });
    }
    steps.push({
      op,
      tag: 'finalize',
      run: () => {
        const what = this.#deactivate(mode);
        after?.();
        return `${what}; ${this.#adopt(content, label ?? `rollback commit s${content.seq}`)}`;
      },
    });
    return steps;
  }

  /** Pages spilled to the database file, then the journal played back (ROLLBACK / hot journal recovery). */
  #spillRollbackSteps(opOf: (detail: string) => OpInfo, hints: PlanHints): Step[] {
    const content = this.#planContent(this.mode, hints);
    const op = opOf(`${this.mode} seq ${content.seq} (never commits)`);
    const fs = this.#fs;
    const ps = this.#pageSize;
    const n0 = this.#pages.length;
    // With hints, exactly the hinted pages spill (not page 1).
    let spilled = hints.pages === undefined ? content.writes.filter(() => this.#rng.chance(0.6)) : content.writes.filter(([p]) => hints.pages!.includes(p));
    if (spilled.length === 0) spilled = [content.writes[0]!];
    const journalled = spilled.map(([p]) => p).filter((p) => p <= n0);
    const originals = journalled.map((p) => this.#pages[p - 1]!);
    const steps = this.#journalSteps(op, journalled);
    for (const [p, page] of spilled) {
      steps.push({ op, run: () => (fs.write(this.#path, (p - 1) * ps, page), `cache spill: db page ${p} <- s${content.seq} (uncommitted)`) });
    }
    steps.push({ op, run: () => (fs.truncate(this.#path, n0 * ps), `rollback: truncate db to the original ${n0} pages`) });
    journalled.forEach((p, i) => {
      steps.push({ op, run: () => (fs.write(this.#path, (p - 1) * ps, originals[i]!), `rollback: restore db page ${p} from the journal`) });
    });
    const mode = this.mode;
    steps.push({ op, tag: 'finalize', run: () => `${this.#deactivate(mode)}; rolled back, still state #${this.states.length - 1}` });
    return steps;
  }

  // ---- WAL ------------------------------------------------------------------------------------

  #shmHeaderBytes(): Uint8Array {
    const h = this.#shm;
    const copy = new Uint8Array(48);
    const view = new DataView(copy.buffer);
    view.setUint32(0, 3007000, true);
    view.setUint32(8, h.iChange, true);
    copy[12] = 1;
    copy[13] = this.#config.bigEndianChecksums ? 1 : 0;
    view.setUint16(14, h.szPage === 65536 ? 1 : h.szPage, true);
    view.setUint32(16, h.mxFrame, true);
    view.setUint32(20, h.nPage, true);
    view.setUint32(24, h.frameChecksum[0], true);
    view.setUint32(28, h.frameChecksum[1], true);
    view.setUint32(32, h.salt1); // the salts are copied as bytes from the WAL header
    view.setUint32(36, h.salt2);
    const sum = walChecksum(copy.subarray(0, 40), false);
    view.setUint32(40, sum[0], true);
    view.setUint32(44, sum[1], true);
    const both = new Uint8Array(96);
    both.set(copy, 0);
    both.set(copy, 48);
    return both;
  }

  #writeShmHeader(): void {
    this.#fs.write(this.#shmPath, 0, this.#shmHeaderBytes());
  }

  #writeBackfill(n: number): void {
    this.#wal.nBackfill = n;
    this.#fs.write(this.#shmPath, 96, u32(n, true));
  }

  #frameOffset(index: number): number {
    return WAL_HEADER_SIZE + index * (FRAME_HEADER_SIZE + this.#pageSize);
  }

  #openSteps(op: OpInfo): Step[] {
    const fs = this.#fs;
    const steps: Step[] = [];
    if (!fs.exists(this.#walPath)) {
      steps.push({ op, run: () => (fs.create(this.#walPath), 'create -wal (0 bytes)') });
    }
    steps.push({
      op,
      run: () => {
        fs.create(this.#shmPath);
        fs.truncate(this.#shmPath, 0);
        return '-shm created / reset to 0 bytes (first connection)';
      },
    });
    steps.push({
      op,
      run: () => {
        this.#wal = freshWal();
        this.#shm = freshShm();
        const shm = new Uint8Array(SHM_SIZE);
        shm.set(this.#shmHeaderBytes());
        fs.write(this.#shmPath, 0, shm);
        this.#conn = true;
        return '-shm: recovery writes a fresh wal-index header (iChange 0, mxFrame 0, nBackfill 0)';
      },
    });
    return steps;
  }

  /** walRestartHdr: new salts in the -shm header, nBackfill back to 0. */
  #restartHeaderSteps(op: OpInfo): Step[] {
    return [
      {
        op,
        run: () => {
          const wal = this.#wal;
          wal.salt1 = (wal.salt1 + 1) >>> 0;
          wal.salt2 = this.#rng.uint32();
          wal.ckptSeq++;
          wal.frames = [];
          wal.mxFrame = 0;
          this.#shm.mxFrame = 0;
          this.#shm.salt1 = wal.salt1;
          this.#shm.salt2 = wal.salt2;
          this.#writeShmHeader();
          return `-shm header: WAL restart (mxFrame 0, salt-1 ${wal.salt1}, salt-2 ${wal.salt2}, ckptSeq ${wal.ckptSeq})`;
        },
      },
      { op, run: () => (this.#writeBackfill(0), '-shm nBackfill = 0') },
    ];
  }

  #walTransactionSteps(opOf: (detail: string) => OpInfo, commit: boolean, hints: PlanHints, planned?: Content): Step[] {
    const rng = this.#rng;
    const fs = this.#fs;
    const wal = this.#wal;
    const content = planned ?? this.#planContent('wal', hints);
    const op = opOf(`seq ${content.seq}${commit ? '' : ' (rolls back)'}`);
    const steps: Step[] = [];
    const restart = wal.mxFrame > 0 && wal.nBackfill === wal.mxFrame && rng.chance(0.75);
    if (restart) steps.push(...this.#restartHeaderSteps(op));
    if (restart || wal.mxFrame === 0) {
      steps.push({
        op,
        run: () => {
          // sqlite3WalFrames writes the header whenever it starts at frame 0; a WAL that was never
          // restarted (nCkpt 0) gets new random salts each time.
          if (wal.ckptSeq === 0) {
            wal.salt1 = rng.uint32();
            wal.salt2 = rng.uint32();
          }
          const builder = new WalBuilder({
            pageSize: this.#pageSize,
            bigEndian: this.#config.bigEndianChecksums,
            checkpointSeq: wal.ckptSeq,
            salt1: wal.salt1,
            salt2: wal.salt2,
          });
          wal.running = builder.headerChecksum;
          fs.write(this.#walPath, 0, builder.build());
          return `-wal header (ckptSeq ${wal.ckptSeq}, salt-1 ${wal.salt1}, salt-2 ${wal.salt2})`;
        },
      });
    }
    let frames: (readonly [number, Uint8Array])[] = [...content.writes];
    if (!commit) frames = frames.filter(() => rng.chance(0.7)).slice(0, Math.max(1, frames.length - 1));
    if (frames.length === 0) frames = [content.writes[0]!];
    let chain: ChecksumPair = [0, 0];
    const written: WalFrame[] = [];
    frames.forEach(([pgno, data], i) => {
      const last = i === frames.length - 1;
      const commitSize = commit && last ? content.nPages : 0;
      steps.push({
        op,
        tag: 'frame',
        run: () => {
          if (i === 0) chain = wal.running;
          const index = wal.mxFrame + i;
          const header = new Uint8Array(FRAME_HEADER_SIZE);
          const view = new DataView(header.buffer);
          view.setUint32(0, pgno);
          view.setUint32(4, commitSize);
          view.setUint32(8, wal.salt1);
          view.setUint32(12, wal.salt2);
          const be = this.#config.bigEndianChecksums;
          chain = walChecksum(data, be, walChecksum(header.subarray(0, 8), be, chain));
          view.setUint32(16, chain[0]);
          view.setUint32(20, chain[1]);
          fs.write(this.#walPath, this.#frameOffset(index), header);
          written.push({ pgno, commit: commitSize, data });
          return `-wal frame ${index + 1} header: page ${pgno}${commitSize ? `, COMMIT size ${commitSize}` : ''}`;
        },
      });
      steps.push({
        op,
        run: () => {
          const index = wal.mxFrame + i;
          fs.write(this.#walPath, this.#frameOffset(index) + FRAME_HEADER_SIZE, data);
          let what = `-wal frame ${index + 1} data: page ${pgno} <- s${content.seq}`;
          if (commitSize !== 0) {
            wal.frames.length = wal.mxFrame;
            wal.frames.push(...written);
            wal.mxFrame += written.length;
            wal.nPage = content.nPages;
            wal.running = chain;
            what += `; ${this.#adopt(content, `WAL commit s${content.seq}`)}`;
          }
          return what;
        },
      });
    });
    if (commit) {
      steps.push({
        op,
        run: () => {
          const shm = this.#shm;
          shm.iChange++;
          shm.szPage = this.#pageSize;
          shm.mxFrame = wal.mxFrame;
          shm.nPage = wal.nPage;
          shm.frameChecksum = wal.running;
          shm.salt1 = wal.salt1;
          shm.salt2 = wal.salt2;
          this.#writeShmHeader();
          return `-shm header: iChange ${shm.iChange}, mxFrame ${shm.mxFrame}, nPage ${shm.nPage}`;
        },
      });
      if (restart && rng.chance(0.3)) {
        steps.push({
          op,
          run: () => {
            const end = this.#frameOffset(wal.mxFrame);
            fs.truncate(this.#walPath, end);
            return `journal_size_limit: truncate -wal to ${end} bytes`;
          },
        });
      }
    } else {
      steps.push({ op, run: () => `rollback: frames after ${wal.mxFrame} are dead (nothing written)` });
    }
    return steps;
  }

  #checkpointSteps(op: OpInfo, full: boolean): Step[] {
    const wal = this.#wal;
    const fs = this.#fs;
    const ps = this.#pageSize;
    if (wal.nBackfill >= wal.mxFrame) return [];
    const boundaries: number[] = [];
    for (let f = wal.nBackfill + 1; f <= wal.mxFrame; f++) if (wal.frames[f - 1]!.commit !== 0) boundaries.push(f);
    const target = full ? wal.mxFrame : this.#rng.pick(boundaries);
    const everything = target === wal.mxFrame;
    const mxPage = wal.nPage;
    const newest = new Map<number, WalFrame>();
    for (let f = wal.nBackfill + 1; f <= target; f++) {
      const frame = wal.frames[f - 1]!;
      if (frame.pgno <= mxPage) newest.set(frame.pgno, frame);
    }
    const steps: Step[] = [];
    const dbSize = fs.sizeOf(this.#path) ?? 0;
    if (everything && dbSize < mxPage * ps && this.#rng.chance(0.5)) {
      steps.push({ op, run: () => (fs.truncate(this.#path, mxPage * ps), `checkpoint size hint: extend db to ${mxPage} pages with zeros`) });
    }
    for (const pgno of [...newest.keys()].sort((a, b) => a - b)) {
      const frame = newest.get(pgno)!;
      steps.push({ op, run: () => (fs.write(this.#path, (pgno - 1) * ps, frame.data), `checkpoint: db page ${pgno} <- WAL copy`) });
    }
    if (everything) {
      steps.push({ op, run: () => (fs.truncate(this.#path, mxPage * ps), `checkpoint: truncate db to ${mxPage} pages`) });
    }
    steps.push({ op, run: () => (this.#writeBackfill(target), `-shm nBackfill = ${target} of mxFrame ${wal.mxFrame}`) });
    return steps;
  }

  #truncateCheckpointSteps(op: OpInfo): Step[] {
    const walSize = this.#fs.sizeOf(this.#walPath) ?? 0;
    if (this.#wal.mxFrame === 0 && walSize === 0) return [];
    return [
      ...this.#checkpointSteps(op, true),
      ...this.#restartHeaderSteps(op),
      { op, run: () => (this.#fs.truncate(this.#walPath, 0), 'truncate -wal to 0 bytes') },
    ];
  }

  #closeSteps(op: OpInfo): Step[] {
    return [
      ...this.#checkpointSteps(op, true),
      { op, run: () => (this.#fs.unlink(this.#shmPath), 'unlink -shm') },
      {
        op,
        run: () => {
          this.#fs.unlink(this.#walPath);
          this.#conn = false;
          this.#wal = freshWal();
          return 'unlink -wal (no connection left)';
        },
      },
    ];
  }

  // ---- whole-file replacement and journal-mode changes ----------------------------------------

  #renameReplaceSteps(opOf: (detail: string) => OpInfo, forceMode?: JournalMode, after?: () => void): Step[] {
    const rng = this.#rng;
    const fs = this.#fs;
    // A restore of another database: sometimes another page size.
    const ps = rng.chance(0.25) ? this.#otherPageSize() : this.#pageSize;
    const switchModes = this.#config.switchModes ?? [];
    const mode = forceMode ?? (switchModes.length > 0 && rng.chance(0.5) ? rng.pick(switchModes) : this.mode);
    const seq = ++this.#seq;
    const n = this.#pages.length > 0 && rng.chance(0.4) ? this.#pages.length : rng.between(1, this.#config.maxPages);
    // Sometimes the same change counter and size as the file it replaces.
    const counter = rng.chance(0.4) ? this.#counter : this.#counter + rng.between(1, 3);
    const pages: Uint8Array[] = [];
    for (let p = 1; p <= n; p++) {
      const page = patternPage(ps, seq, p);
      if (p === 1) writeDbHeader(page, ps, mode === 'wal' ? 2 : 1, counter, n);
      pages.push(page);
    }
    const op = opOf(`-> ${mode} seq ${seq}${ps === this.#pageSize ? '' : `, page size ${ps}`}`);
    const steps: Step[] = [
      {
        op,
        run: () => {
          fs.create(this.#tempPath);
          fs.truncate(this.#tempPath, 0);
          return `create ${this.#tempPath}`;
        },
      },
    ];
    pages.forEach((page, i) => steps.push({ op, run: () => (fs.write(this.#tempPath, i * ps, page), `temp page ${i + 1} <- s${seq}`) }));
    steps.push({
      op,
      tag: 'finalize',
      run: () => {
        fs.rename(this.#tempPath, this.#path);
        this.mode = mode;
        this.#pageSize = ps;
        if (after === undefined) {
          this.#conn = false;
          this.#wal = freshWal();
        } else after();
        return `rename temp over db; ${this.#adopt({ seq, nPages: n, writes: [], counter, pages }, `rename-replace s${seq} (${mode})`)}`;
      },
    });
    return steps;
  }

  /**
   * Rename-replace while a WAL connection is open: a TRUNCATE checkpoint through that connection,
   * a new WAL-mode database written to a temporary file (sometimes at another page size), renamed
   * over the path. The connection stays open on the old inode (see the module comment).
   */
  #renameReplaceOpenSteps(opOf: (detail: string) => OpInfo): Step[] {
    const op = opOf('while a WAL connection is open');
    const checkpoint = this.#truncateCheckpointSteps(op);
    return [...checkpoint, ...this.#renameReplaceSteps(() => op, 'wal', () => (this.#moved = true))];
  }

  /** sqlite3PagerClose on a moved database: no checkpoint, and -wal and -shm stay where they are. */
  #movedCloseSteps(op: OpInfo): Step[] {
    return [
      {
        op,
        run: () => {
          this.#conn = false;
          this.#moved = false;
          this.#wal = freshWal();
          return 'close the moved connection: no checkpoint; -wal and -shm stay beside the new file';
        },
      },
    ];
  }

  /**
   * `litestream restore -o <tmp>` and a rename over a WAL database whose application was killed
   * with frames in its WAL: `-wal` and `-shm` stay beside the restored file until the operator
   * deletes them some steps later (see the module comment).
   */
  #restoreOverWalSteps(opOf: (detail: string) => OpInfo): Step[] {
    this.restoresLeft--;
    const op = opOf(`over a -wal of ${this.#wal.mxFrame} frames`);
    const fs = this.#fs;
    const lingering = this.#rng.between(2, 8);
    const steps: Step[] = [
      {
        op,
        run: () => {
          this.#conn = false;
          return 'the application is killed: no checkpoint, -wal and -shm stay';
        },
      },
      ...this.#renameReplaceSteps(() => op, 'wal', () => {
        this.#conn = false;
        this.#wal = freshWal();
      }),
    ];
    for (let i = 0; i < lingering; i++) steps.push({ op, run: () => 'the old -wal and -shm are still beside the restored file' });
    steps.push({ op, run: () => (fs.unlink(this.#walPath), 'the operator deletes the old -wal') });
    steps.push({ op, run: () => (fs.unlink(this.#shmPath), 'the operator deletes the old -shm') });
    return steps;
  }

  /** A page size other than the current one; 65536 rarely (its states are large to compare). */
  #otherPageSize(): number {
    const sizes = (this.#rng.chance(0.1) ? [65536] : [512, 1024, 4096]).filter((size) => size !== this.#pageSize);
    return sizes.length > 0 ? this.#rng.pick(sizes) : 1024;
  }

  /**
   * PRAGMA page_size=N; VACUUM (rollback mode): every original page journalled at the old size,
   * the new image written at the new size, the file truncated to it, the journal deactivated.
   */
  #pageSizeSteps(opOf: (detail: string) => OpInfo): Step[] {
    const pageSize = this.#otherPageSize();
    const content = this.#vacuumContent(1, pageSize);
    const op = opOf(`page_size ${this.#pageSize} -> ${pageSize}, VACUUM s${content.seq}`);
    const fs = this.#fs;
    const n0 = this.#pages.length;
    const mode = this.mode;
    const steps = this.#journalSteps(op, Array.from({ length: n0 }, (_, i) => i + 1));
    for (const [p, page] of content.writes) {
      steps.push({ op, run: () => (fs.write(this.#path, (p - 1) * pageSize, page), `db page ${p} <- s${content.seq} (page size ${pageSize})`) });
    }
    const size = content.nPages * pageSize;
    if (size < n0 * this.#pageSize) steps.push({ op, run: () => (fs.truncate(this.#path, size), `truncate db to ${content.nPages} pages of ${pageSize}`) });
    steps.push({
      op,
      tag: 'finalize',
      run: () => {
        const what = this.#deactivate(mode);
        this.#pageSize = pageSize;
        return `${what}; ${this.#adopt(content, `page_size ${pageSize} VACUUM s${content.seq}`)}`;
      },
    });
    return steps;
  }

  #toWalSteps(opOf: (detail: string) => OpInfo): Step[] {
    return this.#rollbackCommitSteps(
      (detail) => opOf(`journal_mode=WAL via ${detail}`),
      this.#versionContent(2),
      this.mode,
      'journal_mode=WAL (page 1 versions 2/2)',
      () => {
        this.mode = 'wal';
        this.#conn = false;
        this.#wal = freshWal();
      },
    );
  }

  #toRollbackSteps(opOf: (detail: string) => OpInfo): Step[] {
    const modes = (this.#config.switchModes ?? []).filter((m) => ROLLBACK_MODES.includes(m));
    const mode = this.#rng.pick(modes);
    const op = opOf(`journal_mode=${mode}`);
    // sqlite3PagerCloseWal (checkpoint, delete -shm and -wal), then a journalled transaction
    // that writes page 1 with versions 1/1. Its content is the current one: the checkpoint
    // puts exactly that into the database file.
    return [
      ...this.#closeSteps(op),
      { op, run: () => ((this.mode = mode), `journal mode is now ${mode}`) },
      ...this.#rollbackCommitSteps(() => op, this.#versionContent(1), mode, `journal_mode=${mode} (page 1 versions 1/1)`),
    ];
  }
}
