/**
 * LiteFS's file formats, as pure functions over bytes (no I/O): the `-pos` file, LTX file names,
 * headers and trailers, and the rolling database checksum that `-pos` and every LTX trailer carry.
 *
 * Facts from LiteFS's source (`superfly/litefs`, `superfly/ltx`):
 *
 * - `<db>-pos` on the mount reads `"%016x/%016x\n"`: the TXID of the last applied transaction and
 *   the database checksum after it (`fuse/pos_node.go`, `ltx.Pos.String`).
 * - A page checksum is CRC-64 with Go's ISO table (`crc64.MakeTable(crc64.ISO)`: reflected
 *   polynomial 0xD800000000000000, initial value and final XOR all ones) over the page number as
 *   4 big-endian bytes followed by the page, with bit 63 set (`ltx.ChecksumPage`). The database
 *   checksum XORs the page checksums of pages 1 to the page count, the lock-byte page (the one
 *   holding byte offset 2^30) counting as 0, and sets bit 63 again (`DB.checksum`).
 * - An LTX file is a 100-byte header (magic `LTX1`, then big-endian flags, page size, commit
 *   size in pages, min and max TXID, timestamp in ms, pre-apply checksum, WAL offset, WAL size,
 *   WAL salts, node ID), the pages, and a 16-byte trailer (post-apply checksum, file checksum).
 *   LiteFS names it `%016x-%016x.ltx` (min and max TXID) in `<data dir>/dbs/<db>/ltx/`.
 */

/** Bit 63, set on every LiteFS checksum so that a real one is never 0. */
export const CHECKSUM_FLAG = 1n << 63n;

/** Size of `<db>-pos`: two 16-digit hex numbers, a slash and a newline. */
export const POS_FILE_SIZE = 34;
export const LTX_HEADER_SIZE = 100;
export const LTX_TRAILER_SIZE = 16;
const LTX_MAGIC = 'LTX1';
/** ltx's only flag that changes the layout: the page block is one LZ4 stream (ltx v0.3, which LiteFS uses). */
export const LTX_FLAG_COMPRESS_LZ4 = 0x1;
const LTX_PAGE_HEADER_SIZE = 4;
const PENDING_BYTE = 2 ** 30;

/** A replication position: the TXID of the last applied transaction and the database checksum after it. */
export interface LiteFsPosition {
  readonly txid: bigint;
  readonly checksum: bigint;
}

/** A malformed LiteFS file. */
export class LtxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LtxFormatError';
  }
}

const HEX16 = /^[0-9a-fA-F]{16}$/;

/** Parses the text of `<db>-pos` (`"%016x/%016x"`, a trailing newline allowed). Throws LtxFormatError. */
export function parsePosition(bytes: Uint8Array): LiteFsPosition {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end !== 33 || bytes[16] !== 0x2f) throw new LtxFormatError(`a position is 33 characters "<txid>/<checksum>", got ${end} bytes`);
  const text = String.fromCharCode(...bytes.subarray(0, end));
  const txid = text.slice(0, 16);
  const checksum = text.slice(17);
  if (!HEX16.test(txid) || !HEX16.test(checksum)) throw new LtxFormatError(`a position holds two 16-digit hex numbers, got ${JSON.stringify(text)}`);
  return { txid: BigInt(`0x${txid}`), checksum: BigInt(`0x${checksum}`) };
}

/** A position as `-pos` and LiteFS's logs write it. */
export function formatPosition(position: LiteFsPosition): string {
  return `${hex16(position.txid)}/${hex16(position.checksum)}`;
}

/** A 64-bit value as 16 lowercase hex digits (Go's `%016x`). */
export function hex16(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}

/** The TXID range an LTX file name states, or `undefined` for any other name (`.tmp` files included). */
export function parseLtxFilename(name: string): { readonly minTxid: bigint; readonly maxTxid: bigint } | undefined {
  const match = /^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$/.exec(name);
  if (match === null) return undefined;
  return { minTxid: BigInt(`0x${match[1]}`), maxTxid: BigInt(`0x${match[2]}`) };
}

/** The fields of an LTX header. */
export interface LtxHeader {
  readonly flags: number;
  readonly pageSize: number;
  /** The database size in pages after the transaction (0: the database was deleted). */
  readonly commit: number;
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: bigint;
  readonly preApplyChecksum: bigint;
  readonly walOffset: bigint;
  readonly walSize: bigint;
  readonly walSalt1: number;
  readonly walSalt2: number;
  readonly nodeId: bigint;
}

/** The fields of an LTX trailer. */
export interface LtxTrailer {
  /** The database checksum after the file is applied: what `-pos` says once it is. */
  readonly postApplyChecksum: bigint;
  /** CRC-64 (ISO) of the file up to this field, with bit 63 set. */
  readonly fileChecksum: bigint;
}

/** Parses the first 100 bytes of an LTX file. Throws LtxFormatError. */
export function parseLtxHeader(bytes: Uint8Array): LtxHeader {
  if (bytes.length < LTX_HEADER_SIZE) throw new LtxFormatError(`an LTX header is ${LTX_HEADER_SIZE} bytes, got ${bytes.length}`);
  if (String.fromCharCode(...bytes.subarray(0, 4)) !== LTX_MAGIC) throw new LtxFormatError('the file does not start with the LTX magic "LTX1"');
  const view = new DataView(bytes.buffer, bytes.byteOffset, LTX_HEADER_SIZE);
  const header: LtxHeader = {
    flags: view.getUint32(4),
    pageSize: view.getUint32(8),
    commit: view.getUint32(12),
    minTxid: view.getBigUint64(16),
    maxTxid: view.getBigUint64(24),
    timestamp: view.getBigUint64(32),
    preApplyChecksum: view.getBigUint64(40),
    walOffset: view.getBigUint64(48),
    walSize: view.getBigUint64(56),
    walSalt1: view.getUint32(64),
    walSalt2: view.getUint32(68),
    nodeId: view.getBigUint64(72),
  };
  if (!isPageSize(header.pageSize)) throw new LtxFormatError(`the LTX page size ${header.pageSize} is not a power of two from 512 to 65536`);
  if (header.minTxid === 0n || header.minTxid > header.maxTxid) {
    throw new LtxFormatError(`the LTX transaction range ${hex16(header.minTxid)}-${hex16(header.maxTxid)} is empty or out of order`);
  }
  return header;
}

/** Parses the last 16 bytes of an LTX file (pass the whole file or just its tail). Throws LtxFormatError. */
export function parseLtxTrailer(bytes: Uint8Array): LtxTrailer {
  if (bytes.length < LTX_TRAILER_SIZE) throw new LtxFormatError(`an LTX trailer is ${LTX_TRAILER_SIZE} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - LTX_TRAILER_SIZE, LTX_TRAILER_SIZE);
  return { postApplyChecksum: view.getBigUint64(0), fileChecksum: view.getBigUint64(8) };
}

/** An uncompressed LTX file, decoded and verified: for tests and tools (dbcache itself reads only headers and trailers). */
export interface LtxFile {
  readonly header: LtxHeader;
  readonly pages: ReadonlyArray<{ readonly pgno: number; readonly data: Uint8Array }>;
  readonly trailer: LtxTrailer;
}

/**
 * Decodes an uncompressed LTX file (ltx v0.3 layout: header, pages each behind a 4-byte page
 * number, a zero page number, trailer) and verifies its file checksum. Throws LtxFormatError.
 */
export function decodeLtx(bytes: Uint8Array): LtxFile {
  const header = parseLtxHeader(bytes);
  if ((header.flags & LTX_FLAG_COMPRESS_LZ4) !== 0) throw new LtxFormatError('the LTX file is LZ4-compressed');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const pages: { pgno: number; data: Uint8Array }[] = [];
  let at = LTX_HEADER_SIZE;
  for (;;) {
    if (at + LTX_PAGE_HEADER_SIZE > bytes.length - LTX_TRAILER_SIZE) throw new LtxFormatError('the LTX page block has no end marker');
    const pgno = view.getUint32(at);
    at += LTX_PAGE_HEADER_SIZE;
    if (pgno === 0) break;
    if (at + header.pageSize > bytes.length - LTX_TRAILER_SIZE) throw new LtxFormatError(`the LTX page ${pgno} is cut short`);
    pages.push({ pgno, data: bytes.subarray(at, at + header.pageSize) });
    at += header.pageSize;
  }
  if (at !== bytes.length - LTX_TRAILER_SIZE) throw new LtxFormatError(`${bytes.length - LTX_TRAILER_SIZE - at} bytes follow the LTX page block`);
  const trailer = parseLtxTrailer(bytes);
  const expected = CHECKSUM_FLAG | crc64(bytes.subarray(0, bytes.length - 8));
  if (trailer.fileChecksum !== expected) {
    throw new LtxFormatError(`the LTX file checksum ${hex16(trailer.fileChecksum)} does not match its content (${hex16(expected)})`);
  }
  return { header, pages, trailer };
}

function isPageSize(size: number): boolean {
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0;
}

/** The page that holds byte offset 2^30, which SQLite never writes and LiteFS never checksums. */
export function lockPageNumber(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}

// CRC-64 in two 32-bit halves (BigInt per byte would be about 50 times slower).
const TABLE_HI = new Uint32Array(256);
const TABLE_LO = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let hi = 0;
  let lo = n;
  for (let k = 0; k < 8; k++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi >>>= 1;
    // The reflected ISO polynomial 0xD800000000000000: only its high half is non-zero.
    if (carry !== 0) hi = (hi ^ 0xd8000000) >>> 0;
  }
  TABLE_HI[n] = hi;
  TABLE_LO[n] = lo;
}

/** A running CRC-64 state, as the two halves Go's `crc64.Update` keeps complemented. */
interface Crc {
  hi: number;
  lo: number;
}

function update(crc: Crc, bytes: Uint8Array): void {
  let { hi, lo } = crc;
  for (let i = 0; i < bytes.length; i++) {
    const index = (lo ^ bytes[i]!) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index]!;
    hi = (hi >>> 8) ^ TABLE_HI[index]!;
  }
  crc.hi = hi;
  crc.lo = lo;
}

function start(): Crc {
  return { hi: 0xffffffff, lo: 0xffffffff };
}

function finish(crc: Crc): bigint {
  return (BigInt((~crc.hi) >>> 0) << 32n) | BigInt((~crc.lo) >>> 0);
}

/** CRC-64 of `bytes` with Go's ISO table (`crc64.Checksum(bytes, crc64.MakeTable(crc64.ISO))`). */
export function crc64(bytes: Uint8Array): bigint {
  const crc = start();
  update(crc, bytes);
  return finish(crc);
}

/** LiteFS's checksum of one page (`ltx.ChecksumPage`). */
export function checksumPage(pgno: number, page: Uint8Array): bigint {
  const crc = start();
  const number = new Uint8Array(4);
  new DataView(number.buffer).setUint32(0, pgno);
  update(crc, number);
  update(crc, page);
  return CHECKSUM_FLAG | finish(crc);
}

/**
 * LiteFS's checksum of a database given as pages 1 to `pages.length` (`DB.checksum`): the XOR of
 * the page checksums, the lock-byte page left out, with bit 63 set. 0 for an empty database.
 * `pageChecksum` lets a caller reuse checksums of pages it has seen before.
 */
export function checksumDatabase(
  pages: readonly Uint8Array[],
  pageSize: number,
  pageChecksum: (pgno: number, page: Uint8Array) => bigint = checksumPage,
): bigint {
  const lock = lockPageNumber(pageSize);
  let sum = 0n;
  for (let index = 0; index < pages.length; index++) {
    if (index + 1 === lock) continue;
    sum = CHECKSUM_FLAG | (sum ^ pageChecksum(index + 1, pages[index]!));
  }
  return sum;
}
