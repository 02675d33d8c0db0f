/**
 * Writes SQLite WAL files byte by byte for the parser tests.
 *
 * The checksum here is written independently of `src/image/wal.ts` (words assembled from single
 * bytes, sums kept exact and reduced with `%`), so a bug in the parser's checksum cannot cancel
 * itself out in the tests.
 */

export const WAL_MAGIC_LITTLE_ENDIAN = 0x377f0682;
export const WAL_MAGIC_BIG_ENDIAN = 0x377f0683;
export const WAL_FORMAT_VERSION = 3007000;
export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;

/** A pair of running checksums `[s1, s2]`. */
export type ChecksumPair = readonly [number, number];

const TWO_32 = 2 ** 32;

function word(bytes: Uint8Array, at: number, bigEndian: boolean): number {
  const b0 = bytes[at]!;
  const b1 = bytes[at + 1]!;
  const b2 = bytes[at + 2]!;
  const b3 = bytes[at + 3]!;
  return bigEndian
    ? b0 * 0x1000000 + b1 * 0x10000 + b2 * 0x100 + b3
    : b3 * 0x1000000 + b2 * 0x10000 + b1 * 0x100 + b0;
}

/**
 * SQLite's WAL checksum over `bytes` (a multiple of 8 bytes long): 32-bit words in pairs,
 * `s1 += w0 + s2; s2 += w1 + s1`, modulo 2^32, starting from `seed`.
 */
export function walChecksum(bytes: Uint8Array, bigEndian: boolean, seed: ChecksumPair = [0, 0]): [number, number] {
  if (bytes.length % 8 !== 0) throw new Error(`checksummed length ${bytes.length} is not a multiple of 8`);
  let s1 = seed[0];
  let s2 = seed[1];
  for (let i = 0; i < bytes.length; i += 8) {
    s1 = (s1 + word(bytes, i, bigEndian) + s2) % TWO_32;
    s2 = (s2 + word(bytes, i + 4, bigEndian) + s1) % TWO_32;
  }
  return [s1, s2];
}

function putUint32(bytes: Uint8Array, at: number, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_32) throw new Error(`${value} is not a uint32`);
  bytes[at] = Math.floor(value / 0x1000000) & 0xff;
  bytes[at + 1] = Math.floor(value / 0x10000) & 0xff;
  bytes[at + 2] = Math.floor(value / 0x100) & 0xff;
  bytes[at + 3] = value & 0xff;
}

/** Reads a big-endian uint32 (the byte order of every WAL header field). */
export function getUint32(bytes: Uint8Array, at: number): number {
  return word(bytes, at, true);
}

export interface WalOptions {
  readonly pageSize: number;
  /** Checksums over big-endian words (default false: little-endian words). */
  readonly bigEndian?: boolean;
  readonly checkpointSeq?: number;
  readonly salt1?: number;
  readonly salt2?: number;
  /** Store this magic instead of the one `bigEndian` implies (the checksums still follow `bigEndian`). */
  readonly magic?: number;
  /** Store this format version instead of 3007000. */
  readonly version?: number;
}

export interface FrameOptions {
  /** Store these salts instead of the header's (the checksum chain is unaffected: salts are not summed). */
  readonly salt1?: number;
  readonly salt2?: number;
  /** Store these checksums instead of the correct ones; the running chain continues with the correct ones. */
  readonly storedChecksum?: ChecksumPair;
}

/** Appends a WAL header and frames with correct cumulative checksums. */
export class WalBuilder {
  readonly pageSize: number;
  readonly bigEndian: boolean;
  readonly salt1: number;
  readonly salt2: number;
  /** The checksum stored in the header. */
  readonly headerChecksum: ChecksumPair;
  /** The checksum stored in each frame, in order. */
  readonly frameChecksums: ChecksumPair[] = [];
  private readonly parts: Uint8Array[] = [];
  private running: ChecksumPair;

  constructor(options: WalOptions) {
    this.pageSize = options.pageSize;
    this.bigEndian = options.bigEndian ?? false;
    this.salt1 = options.salt1 ?? 0x11223344;
    this.salt2 = options.salt2 ?? 0xa5b6c7d8;
    const header = new Uint8Array(WAL_HEADER_BYTES);
    putUint32(header, 0, options.magic ?? (this.bigEndian ? WAL_MAGIC_BIG_ENDIAN : WAL_MAGIC_LITTLE_ENDIAN));
    putUint32(header, 4, options.version ?? WAL_FORMAT_VERSION);
    putUint32(header, 8, this.pageSize);
    putUint32(header, 12, options.checkpointSeq ?? 0);
    putUint32(header, 16, this.salt1);
    putUint32(header, 20, this.salt2);
    this.headerChecksum = walChecksum(header.subarray(0, 24), this.bigEndian);
    putUint32(header, 24, this.headerChecksum[0]);
    putUint32(header, 28, this.headerChecksum[1]);
    this.parts.push(header);
    this.running = this.headerChecksum;
  }

  /** Number of frames appended so far. */
  get frameCount(): number {
    return this.frameChecksums.length;
  }

  /** Byte offset in the WAL of frame `index` (0-based). */
  frameOffset(index: number): number {
    return WAL_HEADER_BYTES + index * (WAL_FRAME_HEADER_BYTES + this.pageSize);
  }

  /** Byte offset in the WAL of the page data of frame `index` (0-based). */
  pageOffset(index: number): number {
    return this.frameOffset(index) + WAL_FRAME_HEADER_BYTES;
  }

  /**
   * Appends a frame holding `data` for page `pageNumber`; `commitSize` is the database size in
   * pages for a commit frame, 0 otherwise.
   */
  frame(pageNumber: number, commitSize: number, data: Uint8Array, options: FrameOptions = {}): this {
    if (data.length !== this.pageSize) throw new Error(`page data is ${data.length} bytes, not ${this.pageSize}`);
    const frame = new Uint8Array(WAL_FRAME_HEADER_BYTES + this.pageSize);
    putUint32(frame, 0, pageNumber);
    putUint32(frame, 4, commitSize);
    putUint32(frame, 8, options.salt1 ?? this.salt1);
    putUint32(frame, 12, options.salt2 ?? this.salt2);
    frame.set(data, WAL_FRAME_HEADER_BYTES);
    this.running = walChecksum(data, this.bigEndian, walChecksum(frame.subarray(0, 8), this.bigEndian, this.running));
    const stored = options.storedChecksum ?? this.running;
    putUint32(frame, 16, stored[0]);
    putUint32(frame, 20, stored[1]);
    this.frameChecksums.push(stored);
    this.parts.push(frame);
    return this;
  }

  /** The WAL file so far, in a fresh array. */
  build(): Uint8Array {
    const size = this.parts.reduce((total, part) => total + part.length, 0);
    const wal = new Uint8Array(size);
    let at = 0;
    for (const part of this.parts) {
      wal.set(part, at);
      at += part.length;
    }
    return wal;
  }
}

/** One frame of a WAL file, as its header says. */
export interface FrameInfo {
  readonly index: number;
  /** Byte offset of the frame (its 24-byte header) in the WAL. */
  readonly offset: number;
  readonly pageNumber: number;
  readonly commitSize: number;
}

/** The page size a WAL header records (bytes 8–11). */
export function walPageSize(wal: Uint8Array): number {
  return getUint32(wal, 8);
}

/** Whether a WAL's checksums are over big-endian words (magic 0x377f0683; bit 0 of the magic). */
export function walBigEndian(wal: Uint8Array): boolean {
  return (getUint32(wal, 0) & 1) === 1;
}

/** Every whole frame of `wal` (valid or not), for a page size of `pageSize` (default: the header's). */
export function walFrames(wal: Uint8Array, pageSize = walPageSize(wal)): FrameInfo[] {
  const frames: FrameInfo[] = [];
  const size = WAL_FRAME_HEADER_BYTES + pageSize;
  for (let index = 0, offset = WAL_HEADER_BYTES; offset + size <= wal.length; index++, offset += size) {
    frames.push({ index, offset, pageNumber: getUint32(wal, offset), commitSize: getUint32(wal, offset + 4) });
  }
  return frames;
}

/** Writes a big-endian uint32 (the byte order of every WAL and database header field). */
export function setUint32(bytes: Uint8Array, at: number, value: number): void {
  putUint32(bytes, at, value);
}

/**
 * Makes the checksums of `wal` valid again after its fields or pages were edited: the header's
 * checksum over bytes 0–23, then every frame's cumulative checksum in turn (salts are left as they
 * are). `pageSize` and `bigEndian` default to what the header says.
 */
export function resealWal(wal: Uint8Array, pageSize = walPageSize(wal), bigEndian = walBigEndian(wal)): void {
  let running = walChecksum(wal.subarray(0, 24), bigEndian);
  putUint32(wal, 24, running[0]);
  putUint32(wal, 28, running[1]);
  for (const { offset } of walFrames(wal, pageSize)) {
    running = walChecksum(wal.subarray(offset + WAL_FRAME_HEADER_BYTES, offset + WAL_FRAME_HEADER_BYTES + pageSize), bigEndian, walChecksum(wal.subarray(offset, offset + 8), bigEndian, running));
    putUint32(wal, offset + 16, running[0]);
    putUint32(wal, offset + 20, running[1]);
  }
}

/**
 * Changes three words of a frame's page so that every checksum stays what it was: SQLite's sum
 * takes words in pairs (`s1 += w0 + s2; s2 += w1 + s1`), so adding `delta` to the first word of a
 * pair and subtracting it from the second and from the first word of the next pair leaves both
 * sums unchanged after the next pair. `pageOffset` (a multiple of 8) is where the pair starts in
 * the page; words are taken in the WAL's checksum byte order.
 */
export function collideFrame(wal: Uint8Array, frame: FrameInfo, pageOffset: number, delta: number, bigEndian = walBigEndian(wal)): void {
  if (pageOffset % 8 !== 0) throw new Error(`pageOffset ${pageOffset} is not the start of a pair of words`);
  const at = frame.offset + WAL_FRAME_HEADER_BYTES + pageOffset;
  const add = (offset: number, d: number): void => {
    const value = (word(wal, offset, bigEndian) + d + TWO_32) % TWO_32;
    if (bigEndian) putUint32(wal, offset, value);
    else for (let i = 0; i < 4; i++) wal[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  };
  add(at, delta);
  add(at + 4, -delta);
  add(at + 8, -delta);
}
