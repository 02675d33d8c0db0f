import { MAX_TABLE_PAGES, PageImage, sameBytes } from '../pages/page-image.ts';
import type { PageStore } from '../pages/page-store.ts';
import { ImageFormatError, isValidPageSize } from './header.ts';

/** Table entries for holes a commit may have beyond twice the pages the files hold (512 KiB of table). */
export const HOLE_ENTRIES = 65536;

/** Size of the WAL file header. */
export const WAL_HEADER_SIZE = 32;
/** Size of the header in front of every WAL frame. */
export const WAL_FRAME_HEADER_SIZE = 24;

const MAGIC_LITTLE_ENDIAN = 0x377f0682;
const MAGIC_BIG_ENDIAN = 0x377f0683;
const WAL_FORMAT_VERSION = 3007000;

/** The 32-byte WAL header. */
export interface WalHeader {
  /** Checksums are computed over big-endian 32-bit words (magic 0x377f0683). */
  readonly bigEndian: boolean;
  /** The WAL format version: 3007000, the only one SQLite reads (see {@link checkWalVersion}). */
  readonly version: number;
  readonly pageSize: number;
  readonly checkpointSeq: number;
  /** Incremented by every WAL restart: frames with other salts are stale. */
  readonly salt1: number;
  readonly salt2: number;
  readonly checksum1: number;
  readonly checksum2: number;
}

/** What a scan of the WAL found: the committed frames and where their pages are. */
export interface WalScan {
  readonly header: WalHeader;
  /** Number of frames up to and including the last valid commit frame (0: nothing committed). */
  readonly committedFrames: number;
  /** Database size in pages after the last commit (0 when nothing is committed). */
  readonly dbPages: number;
  /** Cumulative checksum of the last commit frame (the header's when nothing is committed). */
  readonly checksum1: number;
  readonly checksum2: number;
  /** Page number → byte offset in the WAL of the newest committed copy of that page. */
  readonly pages: ReadonlyMap<number, number>;
}

/**
 * Parses the WAL header; `undefined` when there is none (short file, wrong magic or page size,
 * bad checksum): SQLite then ignores the whole log, and so do we. A header that passes those
 * checks is returned whatever its format version: SQLite refuses to open a database whose WAL has
 * another one ({@link checkWalVersion}).
 */
export function parseWalHeader(bytes: Uint8Array): WalHeader | undefined {
  if (bytes.length < WAL_HEADER_SIZE) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, WAL_HEADER_SIZE);
  const magic = view.getUint32(0);
  if (magic !== MAGIC_LITTLE_ENDIAN && magic !== MAGIC_BIG_ENDIAN) return undefined;
  const pageSize = view.getUint32(8);
  if (!isValidPageSize(pageSize)) return undefined;
  const bigEndian = magic === MAGIC_BIG_ENDIAN;
  const sum = new Checksum(0, 0);
  sum.add(bytes, 0, 24, bigEndian);
  const checksum1 = view.getUint32(24);
  const checksum2 = view.getUint32(28);
  if (sum.s1 !== checksum1 || sum.s2 !== checksum2) return undefined;
  return {
    bigEndian,
    version: view.getUint32(4),
    pageSize,
    checkpointSeq: view.getUint32(12),
    salt1: view.getUint32(16),
    salt2: view.getUint32(20),
    checksum1,
    checksum2,
  };
}

/**
 * Walks the frames of a WAL and keeps those up to the last valid commit frame.
 *
 * A frame counts while its salts equal the header's and its cumulative checksum matches;
 * the first frame that fails ends the log (a torn append, a stale frame from before a
 * restart, or garbage). Frames after the last commit frame are an unfinished transaction.
 * Returns `undefined` when the WAL has no valid header. With `resume`, an earlier scan of the
 * same WAL file, frames it already verified under the same header are not checksummed again.
 */
export function scanWal(wal: Uint8Array, resume?: WalScan): WalScan | undefined {
  const header = parseWalHeader(wal);
  if (header === undefined) return undefined;
  const { pageSize, bigEndian, salt1, salt2 } = header;
  const frameSize = WAL_FRAME_HEADER_SIZE + pageSize;
  const view = new DataView(wal.buffer, wal.byteOffset, wal.byteLength);
  // Within one header (same salts), SQLite only appends: frames up to a commit it already
  // verified are still there, unchanged. Only the frames after them need checksumming.
  // A restore or copy tool can rewrite the file in place with the same salts: the last commit
  // frame the earlier scan trusted must still carry the page, size, salts and checksums it had.
  const resumable = resume !== undefined && sameHeader(resume.header, header) && sameLastCommit(view, resume, frameSize);
  const start = resumable ? resume.committedFrames : 0;
  const pages = resumable ? new Map(resume.pages) : new Map<number, number>();
  let committedFrames = start;
  let dbPages = resumable ? resume.dbPages : 0;
  let checksum1 = resumable ? resume.checksum1 : header.checksum1;
  let checksum2 = resumable ? resume.checksum2 : header.checksum2;
  const sum = new Checksum(checksum1, checksum2);
  const pending: number[] = [];

  for (let frame = start, offset = WAL_HEADER_SIZE + start * frameSize; offset + frameSize <= wal.length; frame++, offset += frameSize) {
    const pageNumber = view.getUint32(offset);
    const commitSize = view.getUint32(offset + 4);
    if (pageNumber === 0) break;
    if (view.getUint32(offset + 8) !== salt1 || view.getUint32(offset + 12) !== salt2) break;
    sum.add(wal, offset, offset + 8, bigEndian);
    sum.add(wal, offset + WAL_FRAME_HEADER_SIZE, offset + frameSize, bigEndian);
    if (sum.s1 !== view.getUint32(offset + 16) || sum.s2 !== view.getUint32(offset + 20)) break;
    pending.push(pageNumber, offset + WAL_FRAME_HEADER_SIZE);
    if (commitSize !== 0) {
      for (let i = 0; i < pending.length; i += 2) pages.set(pending[i]!, pending[i + 1]!);
      pending.length = 0;
      committedFrames = frame + 1;
      dbPages = commitSize;
      checksum1 = sum.s1;
      checksum2 = sum.s2;
    }
  }
  return { header, committedFrames, dbPages, checksum1, checksum2, pages };
}

function sameLastCommit(view: DataView, resume: WalScan, frameSize: number): boolean {
  if (resume.committedFrames === 0) return true;
  const offset = WAL_HEADER_SIZE + (resume.committedFrames - 1) * frameSize;
  if (offset + frameSize > view.byteLength) return false;
  return (
    view.getUint32(offset + 4) === resume.dbPages &&
    view.getUint32(offset + 8) === resume.header.salt1 &&
    view.getUint32(offset + 12) === resume.header.salt2 &&
    view.getUint32(offset + 16) === resume.checksum1 &&
    view.getUint32(offset + 20) === resume.checksum2
  );
}

/**
 * Throws ImageFormatError for a WAL header of a format version other than 3007000: SQLite, which
 * checks it after the magic, page size and checksum, then fails to open the database
 * (SQLITE_CANTOPEN) rather than ignore the log.
 */
export function checkWalVersion(header: WalHeader): void {
  if (header.version !== WAL_FORMAT_VERSION) throw new ImageFormatError(`the WAL is of format version ${header.version}, which SQLite does not read`);
}

/** Whether two WAL headers are the same header: same salts, checkpoint sequence, page size, version and checksums. */
export function sameHeader(a: WalHeader, b: WalHeader): boolean {
  return (
    a.version === b.version &&
    a.salt1 === b.salt1 &&
    a.salt2 === b.salt2 &&
    a.checkpointSeq === b.checkpointSeq &&
    a.pageSize === b.pageSize &&
    a.bigEndian === b.bigEndian &&
    a.checksum1 === b.checksum1 &&
    a.checksum2 === b.checksum2
  );
}

/**
 * Whether `wal` still holds the last commit frame `earlier` verified, with the same page count,
 * salts and cumulative checksum: then a valid chain through it (a scan that reaches past it)
 * holds the same frames before it, and the frames after it continue that log.
 */
export function continuesFrom(wal: Uint8Array, earlier: WalScan): boolean {
  return sameLastCommit(new DataView(wal.buffer, wal.byteOffset, wal.byteLength), earlier, WAL_FRAME_HEADER_SIZE + earlier.header.pageSize);
}

/**
 * Builds the database image at the WAL's last commit: the database file's pages with the
 * committed WAL pages written over them, cut (or grown) to the commit's page count.
 *
 * Reads the way SQLite does: a page that is neither in the WAL nor within the database file reads
 * as zeros (always so for the lock-byte page at offset 2^30, which SQLite never writes), and a
 * trailing partial page is zero-padded. Writes into `db` when it is large enough and returns a
 * view of it; otherwise into the array `allocate` returns (uninitialised memory is fine), which
 * may be a longer view of `db`'s own memory (then nothing is copied). The caller checks that the
 * database's page size matches the WAL's. Its allocation is sized by the commit's page count, a
 * field of the file: it is the flat reference for tests of small images; the cache reads through
 * {@link foldWalPages}.
 */
export function foldWal(
  db: Uint8Array,
  wal: Uint8Array,
  scan: WalScan,
  allocate: (size: number) => Uint8Array = (size) => new Uint8Array(size),
): Uint8Array {
  if (scan.committedFrames === 0) return db;
  const { pageSize } = scan.header;
  const size = scan.dbPages * pageSize;
  let image = db;
  if (db.length < size) {
    image = allocate(size);
    // `allocate` may hand back a longer view of the memory `db` already sits in.
    if (image.buffer !== db.buffer || image.byteOffset !== db.byteOffset) image.set(db);
    image.fill(0, db.length, size);
  }
  for (const [pageNumber, offset] of scan.pages) {
    if (pageNumber > scan.dbPages) continue;
    image.set(wal.subarray(offset, offset + pageSize), (pageNumber - 1) * pageSize);
  }
  return image.length === size ? image : image.subarray(0, size);
}

/**
 * The image at a WAL's last commit: the database file's pages with the committed WAL pages in
 * place of theirs, cut (or grown with zero pages) to the commit's page count, as `foldWal` does
 * on flat bytes (the two must agree: test/pages.test.ts). A WAL page equal to the live image's is
 * shared; the others are copied out of the WAL's bytes. Throws ImageFormatError as
 * {@link commitImage} does.
 */
export function foldWalPages(db: PageImage, wal: Uint8Array, scan: WalScan, store: PageStore, live: PageImage | undefined): PageImage {
  if (scan.committedFrames === 0) return db;
  const { pageSize } = scan.header;
  const base = db.pageSize === pageSize ? db : db.repaged(pageSize);
  const sharable = live?.pageSize === pageSize ? live : undefined;
  const changes = new Map<number, Uint8Array>();
  for (const [pageNumber, offset] of scan.pages) {
    if (pageNumber > scan.dbPages) continue;
    changes.set(pageNumber - 1, pageFrom(wal.subarray(offset, offset + pageSize), pageNumber, store, sharable));
  }
  return commitImage(base, changes, scan.dbPages, base.pageCount + scan.committedFrames);
}

/**
 * `base` cut or grown to a commit's `dbPages` pages, with `changes` (page index → page) over it.
 *
 * The page count comes from a frame header, so nothing is sized by it: the pages past the last
 * one the files hold read as zeros without a table entry (SQLite reads them as zeros too, and
 * never reads past the header's page count when that is valid). A commit written by SQLite
 * leaves no other hole: a database grows by pages it writes to the WAL, except the lock-byte
 * page; a damaged file (a database file cut short) can leave more. So `held`, the most pages
 * the files can hold (the database file's pages plus the committed frames), bounds the table: one
 * that would need more than twice that plus {@link HOLE_ENTRIES} entries, zero pages between the
 * pages held, is refused with ImageFormatError, as is one past {@link MAX_TABLE_PAGES}.
 */
export function commitImage(base: PageImage, changes: ReadonlyMap<number, Uint8Array>, dbPages: number, held: number): PageImage {
  let table = Math.min(base.pages.length, dbPages);
  for (const index of changes.keys()) if (index < dbPages && index >= table) table = index + 1;
  if (table > 2 * held + HOLE_ENTRIES || table > MAX_TABLE_PAGES) {
    throw new ImageFormatError(`the WAL commits page ${table} of a database whose files hold at most ${held} pages`);
  }
  return base.with(changes, dbPages * base.pageSize);
}

/** Page `pageNumber` with the bytes of `source` (a WAL frame's page): the live one if equal, else a copy. */
export function pageFrom(source: Uint8Array, pageNumber: number, store: PageStore, live: PageImage | undefined): Uint8Array {
  const old = live?.pages[pageNumber - 1];
  return old !== undefined && sameBytes(old, source) ? old : store.copyPage(source, source.length);
}

/** SQLite's WAL checksum: 32-bit words taken in pairs, `s1 += w0 + s2; s2 += w1 + s1`. */
class Checksum {
  s1: number;
  s2: number;

  constructor(s1: number, s2: number) {
    this.s1 = s1;
    this.s2 = s2;
  }

  add(bytes: Uint8Array, start: number, end: number, bigEndian: boolean): void {
    let s1 = this.s1;
    let s2 = this.s2;
    const absolute = bytes.byteOffset + start;
    if (!bigEndian && HOST_LITTLE_ENDIAN && absolute % 4 === 0) {
      // Fast path: a typed-array view reads host-order (little-endian) words without DataView calls.
      const words = new Uint32Array(bytes.buffer, absolute, (end - start) >>> 2);
      for (let i = 0; i < words.length; i += 2) {
        s1 = (s1 + words[i]! + s2) >>> 0;
        s2 = (s2 + words[i + 1]! + s1) >>> 0;
      }
    } else {
      const view = new DataView(bytes.buffer, absolute, end - start);
      const littleEndian = !bigEndian;
      for (let i = 0; i < end - start; i += 8) {
        s1 = (s1 + view.getUint32(i, littleEndian) + s2) >>> 0;
        s2 = (s2 + view.getUint32(i + 4, littleEndian) + s1) >>> 0;
      }
    }
    this.s1 = s1;
    this.s2 = s2;
  }
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
