import { PipelineFailure } from '../errors.ts';
import type { FileStat, ImageFileSystem } from './file-system.ts';
import { DB_HEADER_SIZE, ImageFormatError, markRollback, marksWal, parseDbHeader } from './header.ts';
import { isJournalActive, JOURNAL_PROBE_SIZE } from './journal.ts';
import { foldWal, parseWalHeader, scanWal, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader, type WalScan } from './wal.ts';

/** A consistent, committed image of a database file, ready to hand to the engine. */
export interface DatabaseImage {
  /** The image, header bytes 18–19 set to 1; owned by the caller from now on. */
  readonly bytes: Uint8Array;
  /** Changes whenever the committed content may have changed; equal versions mean equal content. */
  readonly version: string;
  readonly mode: 'wal' | 'rollback';
  /** The cheap fingerprint taken before the read: see {@link readFingerprint}. */
  readonly fingerprint: string;
  /** The WAL scan behind this image, for the next read of the same file to resume from. */
  readonly wal?: WalMemory;
}

/** A verified scan of one WAL file (by inode). */
export interface WalMemory {
  readonly ino: bigint;
  readonly scan: WalScan;
}

/** What the caller already knows, to save work on the first attempt. */
export interface ReadHints {
  /** A fingerprint taken just before the call. */
  readonly fingerprint?: string;
  /** The WAL scan of the previous image. */
  readonly wal?: WalMemory;
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
const SHM_HEADER_SIZE = 100;

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
  for (;;) {
    attempts++;
    const fingerprint = attempts === 1 ? hints.fingerprint : undefined;
    const outcome = await guardIo(() => readOnce(path, fs, fingerprint, hints.wal));
    if (!(outcome instanceof Retry)) return outcome;
    const elapsed = policy.now() - started;
    if (elapsed >= policy.busyTimeoutMs) {
      throw new PipelineFailure('BUSY', `${outcome.reason} on each of ${attempts} attempts over ${Math.round(elapsed)} ms`);
    }
    await policy.sleep(Math.min(delay, policy.busyTimeoutMs - elapsed));
    delay = Math.min(delay * 2, 100);
  }
}

/**
 * A cheap summary of the files' state, from stats and a few header bytes: if it is unchanged, so
 * is the committed content. Costs no full read. Throws PipelineFailure like {@link readImage}.
 */
export function readFingerprint(path: string, fs: ImageFileSystem): string {
  return guardIoSync(() => {
    const db = statDatabase(path, fs);
    const wal = fs.stat(`${path}-wal`);
    const parts = [statKey(db)];
    if (wal !== undefined) {
      const walHead = readHead(fs, `${path}-wal`, WAL_HEADER_SIZE);
      // After a WAL restart, commits overwrite old frames in place: the size stays, and file
      // times are too coarse to tell two commits apart (1 ms in Deno, a clock tick in some
      // kernels). The wal-index header in -shm changes with every commit.
      parts.push('w', statKey(wal), headerKey(walHead === undefined ? undefined : parseWalHeader(walHead)), readShmKey(path, fs));
    }
    const dbHead = db.size === 0 ? undefined : readHead(fs, path, DB_HEADER_SIZE);
    parts.push('c', dbHead === undefined || dbHead.length < 28 ? '-' : String(new DataView(dbHead.buffer, dbHead.byteOffset).getUint32(24)));
    // The journal's own stat too: one live journal committing and the next going live look alike otherwise.
    const journal = fs.stat(`${path}-journal`);
    if (journal !== undefined) {
      const journalHead = readHead(fs, `${path}-journal`, JOURNAL_PROBE_SIZE);
      parts.push('j', statKey(journal), journalHead !== undefined && isJournalActive(journalHead) ? 'J' : '-');
    }
    return parts.join(':');
  });
}

async function readOnce(path: string, fs: ImageFileSystem, knownFingerprint: string | undefined, wal: WalMemory | undefined): Promise<DatabaseImage | Retry> {
  const fingerprint = knownFingerprint ?? readFingerprint(path, fs);
  const walExists = fs.stat(`${path}-wal`) !== undefined;
  const head = readHead(fs, path, DB_HEADER_SIZE);
  const walMode = walExists || (head !== undefined && marksWal(head));
  return walMode ? readWalMode(path, fs, fingerprint, wal) : readRollbackMode(path, fs, fingerprint);
}

/** Rollback journal mode: change counter, no active journal, whole file, then all of it again. */
async function readRollbackMode(path: string, fs: ImageFileSystem, fingerprint: string): Promise<DatabaseImage | Retry> {
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
    if (marksWal(bytes)) return new Retry('the database is in WAL mode now');
    const image = validate(bytes);
    return {
      bytes: image,
      version: `r:${before.ino}:${before.size}:${counterBefore}:${before.mtimeNs}`,
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
async function readWalMode(path: string, fs: ImageFileSystem, fingerprint: string, memory: WalMemory | undefined): Promise<DatabaseImage | Retry> {
  const walPath = `${path}-wal`;
  const walHeadBefore = readHead(fs, walPath, WAL_HEADER_SIZE);
  const headerBefore = walHeadBefore === undefined ? undefined : parseWalHeader(walHeadBefore);
  // Without a live WAL header the database file alone must be stable: a writer can commit,
  // checkpoint and truncate the WAL while we read, which would leave a torn image behind.
  const shmBefore = headerBefore === undefined ? readShmKey(path, fs) : undefined;
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
  const resume = walStat !== undefined && memory?.ino === walStat.ino ? memory.scan : undefined;
  const scan = walBytes === undefined ? undefined : scanWal(walBytes, resume);
  if (!sameSalts(headerBefore, scan?.header) || !sameSalts(headerBefore, headerAfter)) {
    return new Retry('the WAL was restarted during the read');
  }
  if (headerBefore === undefined && readShmKey(path, fs) !== shmBefore) {
    return new Retry('a checkpoint ran during the read');
  }
  if (headerBefore === undefined && journalActive(path, fs)) return new Retry('a rollback journal became active');
  if (headerBefore === undefined && statKey(statDatabase(path, fs)) !== statKey(dbStat)) {
    return new Retry('the database file changed after it was read while no WAL protected it');
  }
  if (fs.stat(path)?.ino !== dbStat.ino || (walStat !== undefined && fs.stat(walPath)?.ino !== walStat.ino)) {
    return new Retry('the database or its WAL was replaced during the read');
  }

  let image = dbBytes;
  if (scan !== undefined && scan.committedFrames > 0) {
    if (dbBytes.length >= DB_HEADER_SIZE && parse(dbBytes).pageSize !== scan.header.pageSize) {
      throw new PipelineFailure('NOT_A_DATABASE', `the WAL page size ${scan.header.pageSize} differs from the database's`);
    }
    // `subarray` of the allocation keeps its class: sql.js adopts a Buffer without copying it.
    image = guardFormat(() => foldWal(dbBytes, walBytes!, scan, (size) => (size <= allocation.length ? allocation.subarray(0, size) : fs.allocate(size))));
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
  const wal = scan !== undefined && walStat !== undefined ? { ino: walStat.ino, scan } : undefined;
  return { bytes: validate(image), version, mode: 'wal', fingerprint, wal };
}

/**
 * Checks that an image is a whole SQLite database (or empty) and marks it as a rollback database
 * in place. Throws PipelineFailure `NOT_A_DATABASE`.
 */
export function validate(image: Uint8Array): Uint8Array {
  if (image.length === 0) return image;
  const header = parse(image);
  if (image.length % header.pageSize !== 0) {
    throw new PipelineFailure('NOT_A_DATABASE', `the file size ${image.length} is not a multiple of the page size ${header.pageSize}`);
  }
  const pages = image.length / header.pageSize;
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
  if (!fs.fstat(fd).isFile) {
    fs.close(fd);
    throw new PipelineFailure('NOT_A_FILE', 'the path is not a regular file');
  }
  return fd;
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

/** The wal-index header and backfill count from `-shm`: they change with every commit and checkpoint. */
function readShmKey(path: string, fs: ImageFileSystem): string {
  const head = readHead(fs, `${path}-shm`, SHM_HEADER_SIZE);
  if (head === undefined) return '-';
  // Bytes 0–47: the first wal-index header copy; 96–99: nBackfill. The read marks after it change
  // whenever readers come and go, so they stay out of the key.
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const words: number[] = [];
  for (const offset of [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 96]) {
    words.push(offset + 4 <= head.length ? view.getUint32(offset) : -1);
  }
  return words.join('.');
}

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
