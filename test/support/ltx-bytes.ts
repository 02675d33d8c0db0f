/**
 * LiteFS's files, written byte by byte for the tests: LTX files (ltx v0.3 layout, uncompressed),
 * `-pos` text, and a bit-at-a-time CRC-64 (Go's ISO table) written independently of
 * `src/replica/ltx.ts` (which is table-driven over 32-bit halves), so that a bug there cannot
 * cancel itself out in the tests. `test/support/ltx-crc.py` is a third implementation, in Python.
 *
 * Layout (from `superfly/ltx`, `ltx.go` `Header.MarshalBinary`, `Trailer.MarshalBinary`,
 * `encoder.go`): a 100-byte header, big-endian: "LTX1", flags u32, page size u32, commit u32,
 * min TXID u64, max TXID u64, timestamp u64 (ms), pre-apply checksum u64, WAL offset u64, WAL size
 * u64, WAL salt-1 u32, WAL salt-2 u32, node ID u64, 20 zero bytes; then each page as its number
 * (u32) and its bytes; a zero page number; then the trailer: post-apply checksum u64 and the file
 * checksum u64 = bit 63 | CRC-64 of every byte before it.
 */

const ISO_REFLECTED = 0xd800000000000000n;
const MASK = 0xffffffffffffffffn;
export const FLAG = 1n << 63n;

/** CRC-64/GO-ISO one bit at a time (BigInt): reflected ISO polynomial, init and final XOR all ones. */
export function slowCrc64(bytes: Uint8Array, crc = 0n): bigint {
  let value = ~crc & MASK;
  for (const byte of bytes) {
    value ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) value = (value & 1n) === 1n ? (value >> 1n) ^ ISO_REFLECTED : value >> 1n;
  }
  return ~value & MASK;
}

function be32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0);
  return bytes;
}

function be64(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, value & MASK);
  return bytes;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export type Crc = (bytes: Uint8Array) => bigint;

/** LiteFS's page checksum: bit 63 | CRC-64 of the page number (u32) and the page. */
export function pageChecksum(pgno: number, page: Uint8Array, crc: Crc = slowCrc64): bigint {
  return FLAG | crc(concat([be32(pgno), page]));
}

/** LiteFS's database checksum over pages 1..n (the lock-byte page, at byte 2^30, left out). */
export function databaseChecksum(pages: readonly Uint8Array[], pageSize: number, crc: Crc = slowCrc64): bigint {
  const lock = Math.floor(2 ** 30 / pageSize) + 1;
  let sum = 0n;
  pages.forEach((page, index) => {
    if (index + 1 !== lock) sum = FLAG | (sum ^ pageChecksum(index + 1, page, crc));
  });
  return sum;
}

export interface LtxSpec {
  readonly pageSize: number;
  readonly commit: number;
  readonly minTxid: bigint;
  readonly maxTxid: bigint;
  readonly timestamp?: bigint;
  readonly preApplyChecksum?: bigint;
  readonly postApplyChecksum: bigint;
  readonly flags?: number;
  readonly nodeId?: bigint;
  readonly pages: readonly (readonly [number, Uint8Array])[];
}

/** An LTX file, uncompressed, with a correct file checksum. */
export function ltxFile(spec: LtxSpec, crc: Crc = slowCrc64): Uint8Array {
  const header = new Uint8Array(100);
  header.set([0x4c, 0x54, 0x58, 0x31]);
  header.set(be32(spec.flags ?? 0), 4);
  header.set(be32(spec.pageSize), 8);
  header.set(be32(spec.commit), 12);
  header.set(be64(spec.minTxid), 16);
  header.set(be64(spec.maxTxid), 24);
  header.set(be64(spec.timestamp ?? 1_700_000_000_000n), 32);
  header.set(be64(spec.preApplyChecksum ?? 0n), 40);
  header.set(be64(spec.nodeId ?? 0n), 72);
  const parts: Uint8Array[] = [header];
  for (const [pgno, data] of spec.pages) parts.push(be32(pgno), data);
  parts.push(be32(0), be64(spec.postApplyChecksum));
  const body = concat(parts);
  return concat([body, be64(FLAG | crc(body))]);
}

/** The text of `-pos`: `"%016x/%016x\n"`. */
export function posText(txid: bigint, checksum: bigint): string {
  return `${txid.toString(16).padStart(16, '0')}/${checksum.toString(16).padStart(16, '0')}\n`;
}

/** LiteFS's name for an LTX file: `%016x-%016x.ltx`. */
export function ltxName(minTxid: bigint, maxTxid: bigint): string {
  return `${minTxid.toString(16).padStart(16, '0')}-${maxTxid.toString(16).padStart(16, '0')}.ltx`;
}
