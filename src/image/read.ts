import { PipelineFailure } from '../errors.ts';
import { DEFAULT_RACY_WINDOW_NS, fileClockNs, type FileStat, type ImageFileSystem } from './file-system.ts';
import { DB_HEADER_SIZE, ImageFormatError, markRollback, marksWal, parseDbHeader } from './header.ts';
import { isJournalActive, JOURNAL_PROBE_SIZE } from './journal.ts';
import { FALLBACK_PAGE_SIZE, PageImage, pageSizeOf, sameBytes } from '../pages/page-image.ts';
import { PageImageBuilder, PageStore } from '../pages/page-store.ts';
import { checkWalVersion, commitImage, continuesFrom, foldWalPages, pageFrom, parseWalHeader, sameHeader, scanWal, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader, type WalScan } from './wal.ts';

/** A consistent, committed image of a database file, ready to hand to the engine. */
export interface DatabaseImage {
  /** The image as a table of immutable pages (header bytes 18–19 set to 1), sharing pages with the live image. */
  readonly pages: PageImage;
  /**
   * The image in one new array, made on first use: for tests and small tools. It is the single
   * allocation pages avoid (and cannot exist past 4 GiB on Node 20): the cache never uses it.
   */
  readonly bytes: Uint8Array;
  /** How the image was read: only the WAL frames appended since the previous image, or the files whole. */
  readonly read: 'incremental' | 'full';
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
   * The WAL's bytes up to the scan's last commit frame: a later scan of the whole WAL trusts those
   * frames only if the file still starts with exactly these bytes (a restore or copy tool can
   * rewrite a WAL in place with the same salts). Absent for a WAL longer than 64 MiB: then the
   * next read compares every committed page with the image's instead.
   */
  readonly trusted?: Uint8Array;
  /**
   * The database file's stat key when the image was read, and whether it was outside the racy
   * window then (so that any later write to the file changes the key).
   */
  readonly db?: { readonly key: string; readonly settled: boolean };
  /**
   * The image at the scan's last commit: the next read of the same WAL (same header, the chain
   * continuing from that commit) applies only the frames appended since onto it.
   */
  readonly image?: PageImage;
}

/** What the caller already knows, to save work on the first attempt. */
export interface ReadHints {
  /** A fingerprint taken just before the call. */
  readonly fingerprint?: Fingerprint;
  /** The WAL scan of the previous image. */
  readonly wal?: WalMemory;
  /**
   * The live image as it was read (never written to). A full read shares every page equal to
   * this image's. In rollback mode a read inside the racy window that finds exactly these bytes
   * found a committed state and needs no second read.
   */
  readonly live?: PageImage | Uint8Array;
  /** Where new pages go; a store of its own per call by default. */
  readonly store?: PageStore;
}

/** How hard {@link readImage} tries before it gives up with `BUSY`. */
export interface ReadPolicy {
  /** Total time budget for retries in milliseconds. */
  readonly busyTimeoutMs: number;
  /** Waits between attempts; injectable so tests need no real time. */
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
}

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

/** What one {@link readImage} call reads against. */
interface ReadContext {
  readonly store: PageStore;
  readonly live: PageImage | undefined;
  readonly memory: WalMemory | undefined;
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
  const store = hints.store ?? new PageStore();
  const live = hints.live instanceof Uint8Array ? PageImage.fromBytes(hints.live) : hints.live;
  const context: ReadContext = { store, live, memory: hints.wal };
  for (;;) {
    attempts++;
    const fingerprint = attempts === 1 ? hints.fingerprint : undefined;
    const outcome = await guardIo(() => readOnce(path, fs, fingerprint, context, state));
    if (!(outcome instanceof Retry)) return outcome;
    const elapsed = policy.now() - started;
    // A second attempt always: a file seen once at an odd size is accepted when seen again unchanged.
    if (elapsed >= policy.busyTimeoutMs && attempts >= 2) {
      throw new PipelineFailure(
        'BUSY',
        `${outcome.reason} on each of ${attempts} attempts over ${Math.round(elapsed)} ms${outcome.reason.includes('journal') ? ` (if no writer is running, one crashed mid-transaction and left a hot journal: open ${path} once with SQLite, e.g. sqlite3 ${path} 'PRAGMA quick_check', to roll it back)` : ''}`,
      );
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
    // The path too: a symbolic link that now leads to another file changes the fingerprint.
    const parts = [JSON.stringify(path), statKey(db)];
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
  context: ReadContext,
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
  if (!walMode) return readRollbackMode(path, fs, fingerprint, clock, state, context);
  if (walExists) {
    const increment = await readWalIncrement(path, fs, fingerprint, clock, context);
    if (increment !== undefined) return increment;
  }
  return readWalMode(path, fs, fingerprint, clock, state, context);
}

/** Rollback journal mode: change counter, no active journal, whole file, then all of it again. */
async function readRollbackMode(
  path: string,
  fs: ImageFileSystem,
  fingerprint: Fingerprint,
  clock: Clock,
  state: Attempts,
  context: ReadContext,
): Promise<DatabaseImage | Retry> {
  const { live, store } = context;
  const fd = openDatabase(path, fs);
  try {
    const before = fs.fstat(fd);
    // The counter is read before the journal is checked: a commit that starts in between
    // then shows up as a changed counter at the end.
    const counterBefore = readCounter(fs, fd, before.size);
    if (journalActive(path, fs)) return new Retry('a rollback journal is active');
    const refused = refusedHeader(path, fs, fd, before, counterBefore, clock);
    if (refused !== undefined) return refused;
    const bytes = await readPages(fs, fd, before.size, store, live);
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
    if (marksWal(bytes.pages[0] ?? new Uint8Array(0))) return new Retry('the database is in WAL mode now');
    const settled = !isRacy(before, clock);
    // Equal stats prove nothing about a file written within the racy window (a transaction that
    // spills pages and rolls back, a writer in locking_mode=EXCLUSIVE that never bumps the change
    // counter): the content itself must not have moved, unless it is exactly the live image.
    if (!settled && !(live !== undefined && bytes.equals(live))) {
      if (!(await sameAsFile(fs, fd, bytes))) return new Retry('the database changed during the read');
      if (journalActive(path, fs)) return new Retry('a rollback journal became active during the read');
      if (readCounter(fs, fd, before.size) !== counterBefore) return new Retry('the database changed during the read');
    }
    const odd = oddSize(bytes, before, state);
    if (odd !== undefined) return odd;
    return databaseImage({
      pages: validatePages(bytes, store),
      read: 'full',
      version: `r:${before.ino}:${before.size}:${counterBefore}:${before.mtimeNs}:${before.ctimeNs}`,
      settled,
      mode: 'rollback',
      fingerprint,
    });
  } finally {
    fs.close(fd);
  }
}

/**
 * A rollback-mode file whose first 100 bytes are not an SQLite header is refused whatever follows
 * them (SQLite refuses it at the header too): instead of reading it whole, the header alone is
 * read, under the same checks a whole read gets (no journal, the same counter and stats after it;
 * within the racy window, the header read again), and refused with `NOT_A_DATABASE`. `undefined`
 * when the header is valid (or the file empty): read the file.
 */
function refusedHeader(path: string, fs: ImageFileSystem, fd: number, before: FileStat, counterBefore: number, clock: Clock): Retry | undefined {
  if (before.size === 0) return undefined;
  const head = readHeaderBytes(fs, fd, before.size);
  let failure: PipelineFailure;
  try {
    parse(head);
    return undefined;
  } catch (error) {
    if (!(error instanceof PipelineFailure)) throw error;
    failure = error;
  }
  if (journalActive(path, fs)) return new Retry('a rollback journal became active during the read');
  const after = fs.fstat(fd);
  if (readCounter(fs, fd, after.size) !== counterBefore || statKey(after) !== statKey(before)) return new Retry('the database changed during the read');
  if (fs.stat(`${path}-wal`) !== undefined) return new Retry('a WAL appeared during the read');
  const now = fs.stat(path);
  if (now === undefined || statKey(now) !== statKey(before)) return new Retry('the database file changed or was replaced during the read');
  if (marksWal(head)) return new Retry('the database is in WAL mode now');
  if (isRacy(before, clock) && !sameBytes(readHeaderBytes(fs, fd, before.size), head)) return new Retry('the database changed during the read');
  throw failure;
}

/** The first 100 bytes of the file behind `fd` (fewer when it is shorter). */
function readHeaderBytes(fs: ImageFileSystem, fd: number, size: number): Uint8Array {
  const head = new Uint8Array(Math.min(size, DB_HEADER_SIZE));
  return head.subarray(0, readFully(fs, fd, head, 0));
}

/**
 * WAL mode: WAL header, whole database, whole WAL, WAL header again; the salts must agree in all
 * three, since a WAL restart can land anywhere in between.
 */
async function readWalMode(
  path: string,
  fs: ImageFileSystem,
  fingerprint: Fingerprint,
  clock: Clock,
  state: Attempts,
  context: ReadContext,
): Promise<DatabaseImage | Retry> {
  const { memory, store, live } = context;
  const walPath = `${path}-wal`;
  const walHeadBefore = readHead(fs, walPath, WAL_HEADER_SIZE);
  const headerBefore = walHeadBefore === undefined ? undefined : parseWalHeader(walHeadBefore);
  // Without a live WAL header the database file alone must be stable: a writer can commit,
  // checkpoint and truncate the WAL while we read, which would leave a torn image behind.
  const shmBefore = headerBefore === undefined ? readShm(path, fs).key : undefined;
  if (headerBefore === undefined && journalActive(path, fs)) return new Retry('a rollback journal is active');

  const fd = openDatabase(path, fs);
  let dbStat: FileStat;
  let dbBytes: PageImage;
  try {
    dbStat = fs.fstat(fd);
    dbBytes = await readPages(fs, fd, dbStat.size, store, live);
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
  const resume =
    walBytes !== undefined && walStat !== undefined && memory?.ino === walStat.ino && memory.trusted !== undefined && holds(walBytes, memory.trusted)
      ? memory.scan
      : undefined;
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

  if (scan !== undefined) guardFormat(() => checkWalVersion(scan.header));
  let image = dbBytes;
  const folding = scan !== undefined && scan.committedFrames > 0;
  if (folding) {
    // Page 1 from the WAL is what SQLite reads: then the database file's header does not matter.
    const pageOneInWal = scan.pages.has(1);
    if (!pageOneInWal && dbBytes.length >= DB_HEADER_SIZE && parse(dbBytes.subarray(0, DB_HEADER_SIZE)).pageSize !== scan.header.pageSize) {
      throw new PipelineFailure('NOT_A_DATABASE', `the WAL page size ${scan.header.pageSize} differs from the database's`);
    }
    if (!pageOneInWal) {
      const odd = oddSize(dbBytes, dbStat, state);
      if (odd !== undefined) return odd;
    }
    image = guardFormat(() => foldWalPages(dbBytes, walBytes!, scan, store, live));
  } else {
    const odd = oddSize(dbBytes, dbStat, state);
    if (odd !== undefined) return odd;
  }
  const version = walVersion(dbStat, scan, walStat);
  // The next scan may skip checksumming the frames it finds byte-for-byte unchanged; proving
  // that needs the bytes, so a WAL larger than the cap is scanned whole every time instead.
  const pages = validatePages(image, store);
  const wal: WalMemory | undefined =
    scan !== undefined && walStat !== undefined && walBytes !== undefined
      ? {
          ino: walStat.ino,
          scan,
          db: { key: statKey(dbStat), settled: !isRacy(dbStat, clock) },
          image: pages,
          ...(trustedEnd(scan) <= MAX_TRUSTED_WAL ? { trusted: walBytes.subarray(0, trustedEnd(scan)) } : {}),
        }
      : undefined;
  return databaseImage({ pages, read: 'full', version, settled, mode: 'wal', fingerprint, ...(wal === undefined ? {} : { wal }) });
}

/**
 * WAL mode, the same WAL as the previous image's (same inode and header, its last commit frame
 * still in place, the checksum chain continuing from it) and the database file untouched since
 * (same stat, taken outside the racy window): applies only the pages of the frames committed
 * since to the previous image. The database file is not read. The WAL is read whole, as SQLite's
 * recovery reads it, so that frames already applied are verified too (against the bytes the
 * previous scan trusted, or by their checksums): a tool that rewrote them in place is seen. A
 * WAL is bounded by checkpoints (about 4 MB with SQLite's defaults). Runs the same end checks
 * as a full read (WAL header again, both inodes). Returns `undefined` when continuity is not
 * proven: then the caller reads in full.
 */
async function readWalIncrement(
  path: string,
  fs: ImageFileSystem,
  fingerprint: Fingerprint,
  clock: Clock,
  context: ReadContext,
): Promise<DatabaseImage | Retry | undefined> {
  const { memory, store } = context;
  const base = memory?.image;
  if (memory === undefined || base === undefined || memory.db === undefined || !memory.db.settled) return undefined;
  const previous = memory.scan;
  const { pageSize } = previous.header;
  if (base.pageSize !== pageSize) return undefined;
  const walPath = `${path}-wal`;
  const walHead = readHead(fs, walPath, WAL_HEADER_SIZE);
  const header = walHead === undefined ? undefined : parseWalHeader(walHead);
  if (header === undefined || !sameHeader(header, previous.header)) return undefined;
  // Untouched: no checkpoint copied pages into it (harmless) and no other program wrote it.
  const dbStat = fs.stat(path);
  if (dbStat === undefined || !dbStat.isFile || statKey(dbStat) !== memory.db.key || dbStat.size === 0) return undefined;

  let walFd: number;
  try {
    walFd = fs.open(walPath);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return new Retry('the WAL appeared or vanished during the read');
    throw error;
  }
  let walStat: FileStat;
  let walBytes: Uint8Array;
  try {
    walStat = fs.fstat(walFd);
    if (walStat.ino !== memory.ino) return undefined;
    walBytes = await readInto(fs, walFd, new Uint8Array(walStat.size), walStat.size);
  } finally {
    fs.close(walFd);
  }
  const resume = memory.trusted !== undefined && holds(walBytes, memory.trusted) ? previous : undefined;
  const scan = scanWal(walBytes, resume);
  if (scan === undefined || !sameHeader(scan.header, previous.header) || scan.committedFrames < previous.committedFrames) return undefined;
  if (!continuesFrom(walBytes, previous)) return undefined;
  // These two checks cover each other (test 'guard pair: incremental WAL read'). A restart during
  // the read needs a checkpoint first, which writes the database file (its stat was settled, so
  // any write changes it); a checkpoint with nothing left to copy writes nothing, but then the
  // salts change. Without both, frames overwritten after the restart end the checksum chain
  // early: the image is a committed state, but it can miss commits made before the call.
  const walHeadAfter = readHead(fs, walPath, WAL_HEADER_SIZE);
  if (!sameSalts(header, walHeadAfter === undefined ? undefined : parseWalHeader(walHeadAfter))) {
    return new Retry('the WAL was restarted during the read');
  }
  const dbAfter = fs.stat(path);
  if (dbAfter === undefined || statKey(dbAfter) !== memory.db.key || fs.stat(walPath)?.ino !== walStat.ino) {
    return new Retry('the database or its WAL changed or was replaced during the read');
  }

  const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
  const firstNew = WAL_HEADER_SIZE + previous.committedFrames * frameSize;
  // The frames already applied are proven unchanged when the WAL still starts with the bytes the
  // previous scan trusted. Otherwise (a WAL past the cap on trusted bytes, or frames rewritten in
  // place, whose checksums can still match) every committed page is compared with the image's.
  const verified = resume !== undefined;
  if (!verified) {
    // A page that left the WAL is the database file's again: unproven here.
    for (const pageNumber of previous.pages.keys()) if (pageNumber <= previous.dbPages && !scan.pages.has(pageNumber)) return undefined;
  }
  let image = base;
  if (scan.committedFrames !== previous.committedFrames || !verified) {
    const basePages = base.pageCount;
    if (scan.dbPages > basePages) {
      // A page past the previous end that no new frame holds is in an older frame or the file: unproven here.
      let added = 0;
      for (const [pageNumber, offset] of scan.pages) if (pageNumber > basePages && pageNumber <= scan.dbPages && offset >= firstNew) added++;
      if (added !== scan.dbPages - basePages || base.length % pageSize !== 0) return undefined;
    }
    const changes = new Map<number, Uint8Array>();
    for (const [pageNumber, offset] of scan.pages) {
      if ((verified && offset < firstNew) || pageNumber > scan.dbPages) continue;
      const page = imagePage(walBytes.subarray(offset, offset + pageSize), pageNumber, store, base);
      if (page !== base.pages[pageNumber - 1]) changes.set(pageNumber - 1, page);
    }
    if (changes.size > 0 || scan.dbPages * pageSize !== base.length) {
      image = guardFormat(() => commitImage(base, changes, scan.dbPages, Math.ceil(dbStat.size / pageSize) + scan.committedFrames));
    }
    if (changes.has(0)) parse(image.pages[0]!);
  }
  const version = walVersion(dbStat, scan, walStat);
  const settled = !isRacy(dbStat, clock);
  const wal: WalMemory = {
    ino: walStat.ino,
    scan,
    db: memory.db,
    image,
    ...(trustedEnd(scan) <= MAX_TRUSTED_WAL ? { trusted: walBytes.subarray(0, trustedEnd(scan)) } : {}),
  };
  return databaseImage({ pages: image, read: 'incremental', version, settled, mode: 'wal', fingerprint, wal });
}

/**
 * Page `pageNumber` of an image, from a WAL frame's bytes: `base`'s own page when the bytes are
 * equal, else a copy. Page 1 is marked as a rollback database (its WAL copy says WAL mode).
 */
function imagePage(source: Uint8Array, pageNumber: number, store: PageStore, base: PageImage): Uint8Array {
  if (pageNumber !== 1) return pageFrom(source, pageNumber, store, base);
  const old = base.pages[0];
  if (old !== undefined && old.length === source.length && old[18] === 1 && old[19] === 1 && sameBytes(old.subarray(0, 18), source.subarray(0, 18)) && sameBytes(old.subarray(20), source.subarray(20))) {
    return old;
  }
  const page = store.copyPage(source, source.length);
  markRollback(page);
  return page;
}

/**
 * Checks that a page image is a whole SQLite database (or empty) and marks it as a rollback
 * database: page 1 is replaced by a marked copy when it is not marked yet (pages are shared and
 * never written). Throws PipelineFailure `NOT_A_DATABASE`.
 */
export function validatePages(image: PageImage, store: PageStore): PageImage {
  if (image.length === 0) return image;
  const first = image.page(0);
  const header = parse(first);
  const pages = Math.ceil(image.length / header.pageSize);
  if (header.pageCountValid && header.pageCount > pages) {
    throw new PipelineFailure('NOT_A_DATABASE', `the file is truncated (${pages} of ${header.pageCount} pages)`);
  }
  if (header.pageSize !== image.pageSize) {
    // Only bytes whose header was unreadable when they were split (the fallback page size) get here.
    return validatePages(image.repaged(header.pageSize), store);
  }
  if (first[18] === 1 && first[19] === 1) return image;
  const marked = store.copyPage(first, image.pageSize).subarray(0, first.length);
  markRollback(marked);
  return image.with(new Map([[0, marked]]));
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

/**
 * The version of a WAL-mode image: the database file's stat, the WAL's last commit, and the WAL's
 * stat. File times and sizes are in it as they are, ctime included: a program that rewrites a file
 * in place and puts its mtime back (`cp -p`, `rsync --inplace -t`, a restore tool) cannot put
 * ctime back, and frames rewritten in place can keep every checksum (SQLite's sum is not a hash).
 * A version that changes with the content unchanged costs a comparison of the pages, never a new
 * generation.
 */
function walVersion(dbStat: FileStat, scan: WalScan | undefined, walStat: FileStat | undefined): string {
  return [
    'w',
    dbStat.ino,
    dbStat.size,
    dbStat.mtimeNs,
    headerKey(scan?.header),
    scan?.committedFrames ?? 0,
    scan?.checksum1 ?? 0,
    scan?.checksum2 ?? 0,
    dbStat.ctimeNs,
    walStat === undefined ? '-' : statKey(walStat),
  ].join(':');
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
function oddSize(bytes: PageImage, stat: FileStat, state: Attempts): Retry | undefined {
  if (bytes.length < DB_HEADER_SIZE) return undefined;
  let pageSize: number;
  try {
    pageSize = parseDbHeader(bytes.subarray(0, DB_HEADER_SIZE)).pageSize;
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

/** Whether `bytes` starts with `prefix`: the frames an earlier scan verified are still there. */
function holds(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && sameBytes(bytes.subarray(0, prefix.length), prefix);
}

const COMPARE_CHUNK = 1 << 20;

/** Whether the file behind `fd` still holds exactly `bytes`, re-read in chunks. */
async function sameAsFile(fs: ImageFileSystem, fd: number, bytes: PageImage): Promise<boolean> {
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
    if (!matches(bytes, chunk.subarray(0, length), at)) return false;
  }
  return true;
}

/** {@link sameAsFile} for the file at `path`, which must still be inode `ino`. */
async function samePathContent(fs: ImageFileSystem, path: string, ino: bigint, bytes: PageImage): Promise<boolean> {
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

/** Reads `size` bytes from the start of a file into `target`; returns the part read. */
async function readInto(fs: ImageFileSystem, fd: number, target: Uint8Array, size: number, position = 0): Promise<Uint8Array> {
  let done = 0;
  while (done < size) {
    const n = await fs.read(fd, target, done, size - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return target.subarray(0, done);
}

/**
 * Reads `size` bytes from the start of a file as pages, in chunks of a slab's size: every page
 * equal to the same page of `live` is shared with it, and only the others are kept. Memory
 * never holds the file twice, and no allocation holds all of it.
 */
async function readPages(fs: ImageFileSystem, fd: number, size: number, store: PageStore, live: PageImage | undefined): Promise<PageImage> {
  if (size === 0) return new PageImage(live?.pageSize ?? FALLBACK_PAGE_SIZE, 0, []);
  const chunkSize = Math.min(size, store.slabBytes);
  const first = await readInto(fs, fd, fs.allocate(chunkSize), chunkSize);
  // Chunks are a whole number of pages of any size SQLite allows (a slab is), except the last.
  const pageSize = pageSizeOf(first) ?? live?.pageSize ?? FALLBACK_PAGE_SIZE;
  const builder = new PageImageBuilder(store, pageSize, live);
  builder.push(first, true);
  while (builder.length < size && builder.length % store.slabBytes === 0) {
    const length = Math.min(size - builder.length, store.slabBytes);
    const chunk = builder.chunk((bytes) => fs.allocate(bytes));
    const read = await readInto(fs, fd, chunk, length, builder.length);
    if (read.length === 0) break;
    builder.push(read, true);
  }
  return builder.finish();
}

/** Whether `bytes` equals the image's bytes from `start`, compared page by page (no copy). */
function matches(image: PageImage, bytes: Uint8Array, start: number): boolean {
  if (start + bytes.length > image.length) return false;
  const pageSize = image.pageSize;
  for (let at = 0; at < bytes.length; ) {
    const index = Math.floor((start + at) / pageSize);
    const from = start + at - index * pageSize;
    const page = image.page(index);
    const length = Math.min(page.length - from, bytes.length - at);
    if (!sameBytes(page.subarray(from, from + length), bytes.subarray(at, at + length))) return false;
    at += length;
  }
  return true;
}

/** An image whose flat bytes are made only if someone asks (tests). */
export function databaseImage(fields: Omit<DatabaseImage, 'bytes'>): DatabaseImage {
  let bytes: Uint8Array | undefined;
  return {
    ...fields,
    get bytes() {
      return (bytes ??= fields.pages.toBytes());
    },
  };
}
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A file-system error as the PipelineFailure a read reports for it. */
export function toFailure(error: unknown): PipelineFailure {
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
    case 'ELOOP':
      return new PipelineFailure('NOT_FOUND', 'the symbolic links in the path form a loop', { cause: error });
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
