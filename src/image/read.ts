import { Buffer } from 'node:buffer';
import { PipelineFailure } from '../errors.ts';
import { DEFAULT_RACY_WINDOW_NS, fileClockNs, type FileStat, type ImageFileSystem } from './file-system.ts';
import { DB_HEADER_SIZE, ImageFormatError, markRollback, marksWal, parseDbHeader } from './header.ts';
import { isJournalActive, JOURNAL_PROBE_SIZE } from './journal.ts';
import { foldWal, parseWalHeader, scanWal, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader, type WalScan } from './wal.ts';

/** A consistent, committed image of a database file, ready to hand to the engine. */
export interface DatabaseImage {
  /** The image, header bytes 18–19 set to 1; owned by the caller from now on. */
  readonly bytes: Uint8Array;
  /**
   * Changes whenever the committed content may have changed. An equal later version means equal
   * content only when this image is {@link DatabaseImage.settled}.
   */
  readonly version: string;
  /** Whether the file times in the version were older than the racy window when it was read. */
  readonly settled: boolean;
  readonly mode: 'wal' | 'rollback';
  /** The cheap fingerprint taken before the read: see {@link readFingerprint}. */
  readonly fingerprint: Fingerprint;
  /** The WAL scan behind this image, for the next read of the same file to resume from. */
  readonly wal?: WalMemory;
}

/** A verified scan of one WAL file (by inode). */
export interface WalMemory {
  readonly ino: bigint;
  readonly scan: WalScan;
  /**
   * The WAL's bytes up to the scan's last commit frame: a later scan trusts those frames only if
   * the file still starts with exactly these bytes (a restore or copy tool can rewrite a WAL in
   * place with the same salts).
   */
  readonly trusted: Uint8Array;
}

/** What the caller already knows, to save work on the first attempt. */
export interface ReadHints {
  /** A fingerprint taken just before the call. */
  readonly fingerprint?: Fingerprint;
  /** The WAL scan of the previous image. */
  readonly wal?: WalMemory;
  /**
   * The live image as it was read (never written to). In rollback mode a read inside the racy
   * window that finds exactly these bytes found a committed state and needs no second read.
   */
  readonly live?: Uint8Array;
}

/** How hard {@link readImage} tries before it gives up with `BUSY`. */
export interface ReadPolicy {
  /** Total time budget for retries in milliseconds. */
  readonly busyTimeoutMs: number;
  /** Waits between attempts; injectable so tests need no real time. */
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
}

const MAX_CHUNK = 1 << 30;
/** Largest WAL whose bytes are kept so that the next scan can resume: see {@link WalMemory}. */
const MAX_TRUSTED_WAL = 64 << 20;
const SHM_HEADER_SIZE = 100;

/**
 * A cheap summary of the files' state (stats and a few header bytes). Equal keys prove that
 * nothing changed in between only when the earlier one is {@link Fingerprint.settled}: see
 * {@link sameFiles}.
 */
export interface Fingerprint {
  readonly key: string;
  /**
   * Whether the key was taken when every file time in it was older than the racy window (or a
   * stat-free witness covers it): then any later write shows in the key.
   */
  readonly settled: boolean;
  /**
   * Settled by the `-shm` header of a connected WAL writer rather than by file times. It speaks
   * for commits whose `COMMIT` has returned: the writer updates the header right after appending
   * the commit frame, so a commit caught between the two shows once it completes.
   */
  readonly witnessed: boolean;
  /** File-clock time (ns) after which a key equal to this one would be settled. */
  readonly settlesAtNs: bigint;
}

/** Whether `later` proves that nothing changed since `earlier` was taken (git's "racy clean" rule). */
export function sameFiles(earlier: Fingerprint | undefined, later: Fingerprint): boolean {
  return earlier !== undefined && earlier.settled && earlier.key === later.key;
}

/** State kept across the attempts of one {@link readImage} call. */
interface Attempts {
  /** The stat of a database file last seen with a size that is not a whole number of pages. */
  oddSize?: string;
}

/** Outcome of one attempt that saw a writer move underneath it. */
class Retry {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

/**
 * Reads a consistent image of the database at `path` (with its `-wal` folded in) without taking
 * locks: read, prove that nothing moved underneath, else retry with backoff until the budget is
 * spent. Throws PipelineFailure (`NOT_FOUND`, `NOT_A_FILE`, `PERMISSION`, `IO`,
 * `NOT_A_DATABASE`, `BUSY`).
 */
export async function readImage(path: string, fs: ImageFileSystem, policy: ReadPolicy, hints: ReadHints = {}): Promise<DatabaseImage> {
  const started = policy.now();
  let delay = 1;
  let attempts = 0;
  const state: Attempts = {};
  for (;;) {
    attempts++;
    const fingerprint = attempts === 1 ? hints.fingerprint : undefined;
    const outcome = await guardIo(() => readOnce(path, fs, fingerprint, hints, state));
    if (!(outcome instanceof Retry)) return outcome;
    const elapsed = policy.now() - started;
    // A second attempt always: a file seen once at an odd size is accepted when seen again unchanged.
    if (elapsed >= policy.busyTimeoutMs && attempts >= 2) {
      throw new PipelineFailure('BUSY', `${outcome.reason} on each of ${attempts} attempts over ${Math.round(elapsed)} ms`);
    }
    await policy.sleep(Math.max(0, Math.min(delay, policy.busyTimeoutMs - elapsed)));
    delay = Math.min(delay * 2, 100);
  }
}

/**
 * A cheap summary of the files' state, from stats and a few header bytes: see {@link Fingerprint}.
 * Costs no full read. Throws PipelineFailure like {@link readImage}.
 */
export function readFingerprint(path: string, fs: ImageFileSystem): Fingerprint {
  return guardIoSync(() => {
    // Taken before the stats: a write after them is stamped no earlier than this.
    const now = fileClockNs(fs);
    const db = statDatabase(path, fs);
    const wal = fs.stat(`${path}-wal`);
    const parts = [statKey(db)];
    let newest = newestTime(db);
    let witnessed = false;
    if (wal !== undefined) {
      newest = maxTime(newest, newestTime(wal));
      const walHead = readHead(fs, `${path}-wal`, WAL_HEADER_SIZE);
      const header = walHead === undefined ? undefined : parseWalHeader(walHead);
      // After a WAL restart, commits overwrite old frames in place: the size stays, and file
      // times are too coarse to tell two commits apart. The wal-index header in -shm changes with
      // every commit while a writer is connected.
      const shm = readShm(path, fs);
      parts.push('w', statKey(wal), headerKey(header), shm.key);
      witnessed = header !== undefined && shm.witnesses(header);
    }
    const dbHead = db.size === 0 ? undefined : readHead(fs, path, DB_HEADER_SIZE);
    parts.push('c', dbHead === undefined || dbHead.length < 28 ? '-' : String(new DataView(dbHead.buffer, dbHead.byteOffset).getUint32(24)));
    // The journal's own stat too: one live journal committing and the next going live look alike otherwise.
    const journal = fs.stat(`${path}-journal`);
    if (journal !== undefined) {
      newest = maxTime(newest, newestTime(journal));
      const journalHead = readHead(fs, `${path}-journal`, JOURNAL_PROBE_SIZE);
      parts.push('j', statKey(journal), journalHead !== undefined && isJournalActive(journalHead) ? 'J' : '-');
    }
    const settlesAtNs = newest + racyWindow(fs);
    return { key: parts.join(':'), settled: witnessed || settlesAtNs <= now, witnessed, settlesAtNs };
  });
}

async function readOnce(
  path: string,
  fs: ImageFileSystem,
  knownFingerprint: Fingerprint | undefined,
  hints: ReadHints,
  state: Attempts,
): Promise<DatabaseImage | Retry> {
  const fingerprint = knownFingerprint ?? readFingerprint(path, fs);
  // Taken before any stat of this attempt, so that a write after that stat is stamped later than
  // `now - racyWindow`: a file time older than that proves the file unchanged since.
  const now = fileClockNs(fs);
  const walExists = fs.stat(`${path}-wal`) !== undefined;
  const head = readHead(fs, path, DB_HEADER_SIZE);
  const walMode = walExists || (head !== undefined && marksWal(head));
  const clock = { now, window: racyWindow(fs) };
  return walMode ? readWalMode(path, fs, fingerprint, hints.wal, clock, state) : readRollbackMode(path, fs, fingerprint, clock, state, hints.live);
}

/** Rollback journal mode: change counter, no active journal, whole file, then all of it again. */
async function readRollbackMode(
  path: string,
  fs: ImageFileSystem,
  fingerprint: Fingerprint,
  clock: Clock,
  state: Attempts,
  live: Uint8Array | undefined,
): Promise<DatabaseImage | Retry> {
  const fd = openDatabase(path, fs);
  try {
    const before = fs.fstat(fd);
    // The counter is read before the journal is checked: a commit that starts in between
    // then shows up as a changed counter at the end.
    const counterBefore = readCounter(fs, fd, before.size);
    if (journalActive(path, fs)) return new Retry('a rollback journal is active');
    const bytes = await readInto(fs, fd, fs.allocate(before.size), before.size);
    if (journalActive(path, fs)) return new Retry('a rollback journal became active during the read');
    const after = fs.fstat(fd);
    if (readCounter(fs, fd, after.size) !== counterBefore || statKey(after) !== statKey(before)) {
      return new Retry('the database changed during the read');
    }
    if (fs.stat(`${path}-wal`) !== undefined) return new Retry('a WAL appeared during the read');
    const now = fs.stat(path);
    if (now === undefined || statKey(now) !== statKey(before)) return new Retry('the database file changed or was replaced during the read');
    // This check and 'a WAL appeared during the read' above are not needed for a committed image,
    // and each covers the other (npm run mutate: either alone can go). The checks before prove the
    // bytes were the file's content at a moment of this attempt when no journal was live. A -wal
    // that appears while they still say rollback (1/1) holds only commits made after that moment
    // (SQLite writes frames once page 1 says WAL, which the stat and content checks would see, or a
    // tool put it there during the call). Bytes that say WAL (2/2) with no -wal at the check above
    // are a WAL database's whole state: a checkpoint runs only while its -wal exists, and one that
    // finished after the read wrote the file. Both send the next attempt down the WAL path. Without
    // both, a checkpoint stopped half done before the read passes every check (test 'guard pair').
    if (marksWal(bytes)) return new Retry('the database is in WAL mode now');
    const settled = !isRacy(before, clock);
    // Equal stats prove nothing about a file written within the racy window (a transaction that
    // spills pages and rolls back, a writer in locking_mode=EXCLUSIVE that never bumps the change
    // counter): the content itself must not have moved, unless it is exactly the live image.
    if (!settled && !(live !== undefined && equalBytes(bytes, live))) {
      if (!(await sameAsFile(fs, fd, bytes))) return new Retry('the database changed during the read');
      if (journalActive(path, fs)) return new Retry('a rollback journal became active during the read');
      if (readCounter(fs, fd, before.size) !== counterBefore) return new Retry('the database changed during the read');
    }
    const odd = oddSize(bytes, before, state);
    if (odd !== undefined) return odd;
    const image = validate(bytes);
    return {
      bytes: image,
      version: `r:${before.ino}:${before.size}:${counterBefore}:${before.mtimeNs}`,
      settled,
      mode: 'rollback',
      fingerprint,
    };
  } finally {
    fs.close(fd);
  }
}

/**
 * WAL mode: WAL header, whole database, whole WAL, WAL header again; the salts must agree in all
 * three, since a WAL restart can land anywhere in between.
 */
async function readWalMode(
  path: string,
  fs: ImageFileSystem,
  fingerprint: Fingerprint,
  memory: WalMemory | undefined,
  clock: Clock,
  state: Attempts,
): Promise<DatabaseImage | Retry> {
  const walPath = `${path}-wal`;
  const walHeadBefore = readHead(fs, walPath, WAL_HEADER_SIZE);
  const headerBefore = walHeadBefore === undefined ? undefined : parseWalHeader(walHeadBefore);
  // Without a live WAL header the database file alone must be stable: a writer can commit,
  // checkpoint and truncate the WAL while we read, which would leave a torn image behind.
  const shmBefore = headerBefore === undefined ? readShm(path, fs).key : undefined;
  if (headerBefore === undefined && journalActive(path, fs)) return new Retry('a rollback journal is active');

  const fd = openDatabase(path, fs);
  let dbStat: FileStat;
  let dbBytes: Uint8Array;
  let allocation: Uint8Array;
  try {
    dbStat = fs.fstat(fd);
    allocation = fs.allocate(dbStat.size + growthRoom(dbStat.size, headerBefore, fs.stat(walPath)?.size ?? 0));
    dbBytes = await readInto(fs, fd, allocation, dbStat.size);
    if (headerBefore === undefined && statKey(fs.fstat(fd)) !== statKey(dbStat)) {
      return new Retry('the database file changed while no WAL protected it');
    }
  } finally {
    fs.close(fd);
  }

  let walBytes: Uint8Array | undefined;
  let walStat: FileStat | undefined;
  let walFd: number | undefined;
  try {
    walFd = fs.open(walPath);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
  if ((walFd !== undefined) !== (walHeadBefore !== undefined)) {
    if (walFd !== undefined) fs.close(walFd);
    return new Retry('the WAL appeared or vanished during the read');
  }
  if (walFd !== undefined) {
    try {
      walStat = fs.fstat(walFd);
      walBytes = await readInto(fs, walFd, fs.allocate(walStat.size), walStat.size);
    } finally {
      fs.close(walFd);
    }
  }
  const walHeadAfter = readHead(fs, walPath, WAL_HEADER_SIZE);
  const headerAfter = walHeadAfter === undefined ? undefined : parseWalHeader(walHeadAfter);
  const resume = walBytes !== undefined && walStat !== undefined && memory?.ino === walStat.ino && holds(walBytes, memory.trusted) ? memory.scan : undefined;
  const scanned = walBytes === undefined ? undefined : scanWal(walBytes, resume);
  // SQLite ignores (and deletes) a WAL next to an empty database file.
  const scan = dbStat.size === 0 ? undefined : scanned;
  if (!sameSalts(headerBefore, scanned?.header) || !sameSalts(headerBefore, headerAfter)) {
    return new Retry('the WAL was restarted during the read');
  }
  if (headerBefore === undefined && readShm(path, fs).key !== shmBefore) {
    return new Retry('a checkpoint ran during the read');
  }
  if (headerBefore === undefined && journalActive(path, fs)) return new Retry('a rollback journal became active');
  // Also covers the fstat right after the database read ('the database file changed while no WAL
  // protected it' there): on one inode file times and ctime only move forward, so a stat that
  // differed then differs now, and a replaced file has another inode number (or, the descriptor
  // being closed, the freed number reused by a file created after the change: a later ctime, or
  // within one tick of the racy window, the content check below). Also covers 'a
  // checkpoint ran during the read' (the -shm check above) with the content check below: a
  // checkpoint that tore the read writes the file after it (it copies pages and never puts an old
  // one back), and one with pages left to copy still has its WAL header, which the salts check sees.
  if (headerBefore === undefined && statKey(statDatabase(path, fs)) !== statKey(dbStat)) {
    return new Retry('the database file changed after it was read while no WAL protected it');
  }
  if (fs.stat(path)?.ino !== dbStat.ino || (walStat !== undefined && fs.stat(walPath)?.ino !== walStat.ino)) {
    return new Retry('the database or its WAL was replaced during the read');
  }

  const settled = !isRacy(dbStat, clock);
  if (headerBefore === undefined && !settled) {
    // The checks above compared stats that a checkpoint within the racy window can leave equal.
    if (!(await samePathContent(fs, path, dbStat.ino, dbBytes))) return new Retry('the database file changed while no WAL protected it');
    const walHeadNow = readHead(fs, walPath, WAL_HEADER_SIZE);
    // Not needed for a committed image: a WAL header that was absent at both reads of the header
    // above belongs to commits after the second one, and a checkpoint of them writes the file,
    // which the content check just before sees. An early exit towards the WAL path.
    if (walHeadNow !== undefined && parseWalHeader(walHeadNow) !== undefined) return new Retry('a WAL appeared during the read');
    if (readShm(path, fs).key !== shmBefore || journalActive(path, fs)) return new Retry('a writer moved during the read');
  }

  let image = dbBytes;
  const folding = scan !== undefined && scan.committedFrames > 0;
  if (folding) {
    // Page 1 from the WAL is what SQLite reads: then the database file's header does not matter.
    const pageOneInWal = scan.pages.has(1);
    if (!pageOneInWal && dbBytes.length >= DB_HEADER_SIZE && parse(dbBytes).pageSize !== scan.header.pageSize) {
      throw new PipelineFailure('NOT_A_DATABASE', `the WAL page size ${scan.header.pageSize} differs from the database's`);
    }
    if (!pageOneInWal) {
      const odd = oddSize(dbBytes, dbStat, state);
      if (odd !== undefined) return odd;
    }
    // `subarray` of the allocation keeps its class: sql.js adopts a Buffer without copying it.
    image = foldWal(dbBytes, walBytes!, scan, (size) => (size <= allocation.length ? allocation.subarray(0, size) : fs.allocate(size)));
  } else {
    const odd = oddSize(dbBytes, dbStat, state);
    if (odd !== undefined) return odd;
  }
  const version = [
    'w',
    dbStat.ino,
    dbStat.size,
    dbStat.mtimeNs,
    headerKey(scan?.header),
    scan?.committedFrames ?? 0,
    scan?.checksum1 ?? 0,
    scan?.checksum2 ?? 0,
  ].join(':');
  // The next scan may skip checksumming the frames it finds byte-for-byte unchanged; proving
  // that needs the bytes, so a WAL larger than the cap is scanned whole every time instead.
  const wal =
    scan !== undefined && walStat !== undefined && walBytes !== undefined && trustedEnd(scan) <= MAX_TRUSTED_WAL
      ? { ino: walStat.ino, scan, trusted: walBytes.subarray(0, trustedEnd(scan)) }
      : undefined;
  return { bytes: validate(image), version, settled, mode: 'wal', fingerprint, wal };
}

/**
 * Checks that an image is a whole SQLite database (or empty) and marks it as a rollback database
 * in place. Throws PipelineFailure `NOT_A_DATABASE`.
 */
export function validate(image: Uint8Array): Uint8Array {
  if (image.length === 0) return image;
  const header = parse(image);
  // SQLite counts a trailing partial page as a page (it reads as zero-padded).
  const pages = Math.ceil(image.length / header.pageSize);
  if (header.pageCountValid && header.pageCount > pages) {
    throw new PipelineFailure('NOT_A_DATABASE', `the file is truncated (${pages} of ${header.pageCount} pages)`);
  }
  markRollback(image);
  return image;
}

function parse(image: Uint8Array) {
  return guardFormat(() => parseDbHeader(image));
}

function guardFormat<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ImageFormatError) throw new PipelineFailure('NOT_A_DATABASE', error.message, { cause: error });
    throw error;
  }
}

function sameSalts(a: WalHeader | undefined, b: WalHeader | undefined): boolean {
  return headerKey(a) === headerKey(b);
}

function headerKey(header: WalHeader | undefined): string {
  return header === undefined ? '-' : `${header.salt1}.${header.salt2}.${header.checkpointSeq}`;
}

function statKey(stat: FileStat): string {
  return `${stat.ino}.${stat.size}.${stat.mtimeNs}.${stat.ctimeNs}`;
}

function statDatabase(path: string, fs: ImageFileSystem): FileStat {
  const stat = fs.stat(path);
  if (stat === undefined) throw new PipelineFailure('NOT_FOUND', 'the file does not exist');
  if (!stat.isFile) throw new PipelineFailure('NOT_A_FILE', 'the path is not a regular file');
  return stat;
}

function openDatabase(path: string, fs: ImageFileSystem): number {
  const fd = fs.open(path);
  let isFile = false;
  try {
    isFile = fs.fstat(fd).isFile;
  } finally {
    if (!isFile) fs.close(fd);
  }
  if (!isFile) throw new PipelineFailure('NOT_A_FILE', 'the path is not a regular file');
  return fd;
}

interface Clock {
  /** File-clock time (ns) taken before the attempt's first stat. */
  readonly now: bigint;
  readonly window: bigint;
}

function racyWindow(fs: ImageFileSystem): bigint {
  return fs.racyWindowNs ?? DEFAULT_RACY_WINDOW_NS;
}

function newestTime(stat: FileStat): bigint {
  return maxTime(stat.mtimeNs, stat.ctimeNs);
}

function maxTime(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** Whether a write after `clock.now` could leave this stat unchanged (git's "racy clean"). */
function isRacy(stat: FileStat, clock: Clock): boolean {
  return newestTime(stat) + clock.window > clock.now;
}

/**
 * A database file whose size is not a whole number of pages is being extended (a checkpoint
 * writing large pages): retry once. Seen again unchanged, it is read as SQLite reads it.
 */
function oddSize(bytes: Uint8Array, stat: FileStat, state: Attempts): Retry | undefined {
  if (bytes.length < DB_HEADER_SIZE) return undefined;
  let pageSize: number;
  try {
    pageSize = parseDbHeader(bytes).pageSize;
  } catch {
    return undefined;
  }
  if (bytes.length % pageSize === 0) return undefined;
  const key = statKey(stat);
  if (state.oddSize === key) return undefined;
  state.oddSize = key;
  return new Retry(`the database file size ${bytes.length} is not a whole number of ${pageSize}-byte pages`);
}

/** Bytes of the WAL up to the end of the last commit frame a scan verified. */
function trustedEnd(scan: WalScan): number {
  return WAL_HEADER_SIZE + scan.committedFrames * (scan.header.pageSize + WAL_FRAME_HEADER_SIZE);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Whether `bytes` starts with `prefix`: the frames an earlier scan verified are still there. */
function holds(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && Buffer.from(bytes.buffer, bytes.byteOffset, prefix.length).equals(prefix);
}

const COMPARE_CHUNK = 1 << 20;

/** Whether the file behind `fd` still holds exactly `bytes`, re-read in chunks. */
async function sameAsFile(fs: ImageFileSystem, fd: number, bytes: Uint8Array): Promise<boolean> {
  if (fs.fstat(fd).size !== bytes.length) return false;
  const chunk = new Uint8Array(Math.min(COMPARE_CHUNK, Math.max(bytes.length, 1)));
  for (let at = 0; at < bytes.length; at += chunk.length) {
    const length = Math.min(chunk.length, bytes.length - at);
    let done = 0;
    while (done < length) {
      const n = await fs.read(fd, chunk, done, length - done, at + done);
      if (n === 0) return false;
      done += n;
    }
    if (!Buffer.from(chunk.buffer, chunk.byteOffset, length).equals(bytes.subarray(at, at + length))) return false;
  }
  return true;
}

/** {@link sameAsFile} for the file at `path`, which must still be inode `ino`. */
async function samePathContent(fs: ImageFileSystem, path: string, ino: bigint, bytes: Uint8Array): Promise<boolean> {
  let fd: number;
  try {
    fd = fs.open(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
  try {
    return fs.fstat(fd).ino === ino && (await sameAsFile(fs, fd, bytes));
  } finally {
    fs.close(fd);
  }
}

/** The first `length` bytes of a file (fewer if it is shorter), or `undefined` if it does not exist. */
export function readHead(fs: ImageFileSystem, path: string, length: number): Uint8Array | undefined {
  let fd: number;
  try {
    fd = fs.open(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const head = new Uint8Array(length);
    return head.subarray(0, readFully(fs, fd, head, 0));
  } finally {
    fs.close(fd);
  }
}

function readFully(fs: ImageFileSystem, fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function readCounter(fs: ImageFileSystem, fd: number, size: number): number {
  if (size < 28) return -1;
  const bytes = new Uint8Array(4);
  if (readFully(fs, fd, bytes, 24) < 4) return -1;
  return new DataView(bytes.buffer).getUint32(0);
}

function journalActive(path: string, fs: ImageFileSystem): boolean {
  const head = readHead(fs, `${path}-journal`, JOURNAL_PROBE_SIZE);
  return head !== undefined && isJournalActive(head);
}

/** What the `-shm` file says: a key of its header, and whether it vouches for a WAL's commits. */
interface Shm {
  readonly key: string;
  /**
   * Whether this wal-index header, while unchanged, proves that no commit happened in a WAL with
   * `header`: a connected writer rewrites it with every commit. Only an index with frames counts:
   * a fresh one after a close and reopen is byte-identical to the one before.
   */
  witnesses(header: WalHeader): boolean;
}

const NO_SHM: Shm = { key: '-', witnesses: () => false };

/** The wal-index header and backfill count from `-shm`: they change with every commit and checkpoint. */
function readShm(path: string, fs: ImageFileSystem): Shm {
  const head = readHead(fs, `${path}-shm`, SHM_HEADER_SIZE);
  if (head === undefined) return NO_SHM;
  // Bytes 0–47: the first wal-index header copy; 96–99: nBackfill. The read marks after it change
  // whenever readers come and go, so they stay out of the key.
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const words: number[] = [];
  for (const offset of [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 96]) {
    words.push(offset + 4 <= head.length ? view.getUint32(offset) : -1);
  }
  const key = words.join('.');
  return {
    key,
    witnesses(header) {
      if (head.length < SHM_HEADER_SIZE) return false;
      // The two header copies agree, it is initialised, holds frames, and carries the WAL's salts
      // (stored in the WAL's byte order, native to the writer).
      for (let i = 0; i < 48; i++) if (head[i] !== head[48 + i]) return false;
      const little = new DataView(head.buffer, head.byteOffset, 48);
      const le = HOST_IS_LITTLE_ENDIAN;
      const mxFrame = little.getUint32(16, le);
      const isInit = head[12] === 1;
      const salt1 = view.getUint32(32);
      const salt2 = view.getUint32(36);
      return isInit && mxFrame > 0 && salt1 === header.salt1 && salt2 === header.salt2;
    },
  };
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads `size` bytes from the start of a file into `target`, in chunks below 2 GiB; returns the part read. */
async function readInto(fs: ImageFileSystem, fd: number, target: Uint8Array, size: number): Promise<Uint8Array> {
  let done = 0;
  while (done < size) {
    const n = await fs.read(fd, target, done, Math.min(size - done, MAX_CHUNK), done);
    if (n === 0) break;
    done += n;
  }
  return target.subarray(0, done);
}

/**
 * Spare room after the database file's bytes for pages the WAL adds: commits usually grow the
 * database, and with room the fold writes in place instead of copying the whole image. Capped,
 * because every snapshot keeps its whole allocation alive and a WAL can be as large as the
 * database (after a VACUUM) while adding no pages at all.
 */
function growthRoom(dbSize: number, header: WalHeader | undefined, walSize: number): number {
  if (header === undefined) return 0;
  const frames = Math.max(0, Math.floor((walSize - WAL_HEADER_SIZE) / (header.pageSize + WAL_FRAME_HEADER_SIZE)));
  return Math.min(frames * header.pageSize, Math.max(dbSize >>> 3, 1 << 20));
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function toFailure(error: unknown): PipelineFailure {
  if (error instanceof PipelineFailure) return error;
  // Deno's permission system denies with an error that has a name and no code.
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'NotCapable' || name === 'PermissionDenied') {
    return new PipelineFailure('PERMISSION', 'permission to read the file was denied', { cause: error });
  }
  const code = errorCode(error);
  switch (code) {
    case 'ENOENT':
      return new PipelineFailure('NOT_FOUND', 'the file does not exist', { cause: error });
    case 'EACCES':
    case 'EPERM':
      return new PipelineFailure('PERMISSION', 'permission to read the file was denied', { cause: error });
    case 'EISDIR':
      return new PipelineFailure('NOT_A_FILE', 'the path is not a regular file', { cause: error });
    default:
      return new PipelineFailure('IO', `the file could not be read (${code ?? String(error)})`, { cause: error });
  }
}

async function guardIo<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toFailure(error);
  }
}

function guardIoSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw toFailure(error);
  }
}
