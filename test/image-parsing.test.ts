import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  DB_HEADER_SIZE,
  ImageFormatError,
  isValidPageSize,
  marksWal,
  markRollback,
  parseDbHeader,
} from '../src/image/header.ts';
import { JOURNAL_PROBE_SIZE, isJournalActive } from '../src/image/journal.ts';
import { HOLE_ENTRIES, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, checkWalVersion, commitImage, foldWal, foldWalPages, parseWalHeader, scanWal } from '../src/image/wal.ts';
import { PageImage, zeroPage } from '../src/pages/page-image.ts';
import { PageStore } from '../src/pages/page-store.ts';
import {
  WAL_MAGIC_BIG_ENDIAN,
  WAL_MAGIC_LITTLE_ENDIAN,
  WalBuilder,
  getUint32,
  walChecksum,
} from './support/wal-bytes.ts';

// ---------------------------------------------------------------------------------------------
// Crafting bytes
// ---------------------------------------------------------------------------------------------

const SQLITE_MAGIC = 'SQLite format 3\0';
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

interface HeaderFields {
  /** The raw 16-bit page-size field (1 stands for 65536). */
  readonly rawPageSize?: number;
  readonly writeVersion?: number;
  readonly readVersion?: number;
  readonly reserved?: number;
  readonly changeCounter?: number;
  readonly pageCount?: number;
  /** Bytes 92-95, "version-valid-for" (defaults to the change counter, as a current writer leaves it). */
  readonly versionValidFor?: number;
}

/** A valid 100-byte database header (rollback mode, 4096-byte pages) with the given fields replaced. */
function dbHeaderBytes(fields: HeaderFields = {}): Uint8Array {
  const bytes = new Uint8Array(DB_HEADER_SIZE);
  for (let i = 0; i < SQLITE_MAGIC.length; i++) bytes[i] = SQLITE_MAGIC.charCodeAt(i);
  const view = new DataView(bytes.buffer);
  view.setUint16(16, fields.rawPageSize ?? 4096);
  bytes[18] = fields.writeVersion ?? 1;
  bytes[19] = fields.readVersion ?? 1;
  bytes[20] = fields.reserved ?? 0;
  bytes[21] = 64;
  bytes[22] = 32;
  bytes[23] = 32;
  view.setUint32(24, fields.changeCounter ?? 1);
  view.setUint32(28, fields.pageCount ?? 1);
  view.setUint32(92, fields.versionValidFor ?? fields.changeCounter ?? 1);
  view.setUint32(96, 3046000); // SQLITE_VERSION_NUMBER of the last writer
  return bytes;
}

/** A page whose every byte depends on `tag`, so two pages with different tags differ everywhere that matters. */
function makePage(pageSize: number, tag: number): Uint8Array {
  const page = new Uint8Array(pageSize);
  for (let i = 0; i < pageSize; i++) page[i] = (tag * 131 + i * 29 + (i >>> 8)) & 0xff;
  new DataView(page.buffer).setUint32(0, tag);
  return page;
}

/** Page 1 of a database: `makePage` with a database header over its first 100 bytes. */
function makeFirstPage(pageSize: number, tag: number, fields: HeaderFields): Uint8Array {
  const page = makePage(pageSize, tag);
  page.set(dbHeaderBytes({ rawPageSize: pageSize === 65536 ? 1 : pageSize, ...fields }));
  return page;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A copy of `bytes` that starts `shift` bytes into a larger buffer (non-zero byteOffset, possibly unaligned). */
function shifted(bytes: Uint8Array, shift: number): Uint8Array {
  const backing = new Uint8Array(bytes.length + shift + 7);
  backing.fill(0xee);
  backing.set(bytes, shift);
  return backing.subarray(shift, shift + bytes.length);
}

/** Deterministic pseudo-random bytes (xorshift32). */
function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Asserts that page `n` (1-based) of `image` is exactly `expected`; names both tags on failure. */
function assertPage(image: Uint8Array, pageSize: number, n: number, expected: Uint8Array): void {
  const start = (n - 1) * pageSize;
  assert.ok(image.length >= start + pageSize, `the image (${image.length} bytes) has no page ${n}`);
  const actual = image.subarray(start, start + pageSize);
  assert.ok(
    sameBytes(actual, expected),
    `page ${n}: expected the page tagged ${getUint32(expected, 0)}, found the one tagged ${getUint32(actual, 0)}`,
  );
}

function assertImageFormatError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof Error, 'an Error was thrown');
    assert.equal(error.name, 'ImageFormatError');
    assert.ok(error instanceof ImageFormatError);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

/** The scan of `wal`, which must have a valid header. */
function mustScan(wal: Uint8Array) {
  const scan = scanWal(wal);
  assert.ok(scan !== undefined, 'the WAL header is valid');
  return scan;
}

// ---------------------------------------------------------------------------------------------
// Database header
// ---------------------------------------------------------------------------------------------

test('header: a valid header is parsed into its fields', () => {
  const rollbackBytes = dbHeaderBytes({ rawPageSize: 4096, changeCounter: 0x1234_5678, pageCount: 42 });
  const header = parseDbHeader(rollbackBytes);
  assert.deepEqual(header, {
    pageSize: 4096,
    writeVersion: 1,
    readVersion: 1,
    changeCounter: 0x1234_5678,
    pageCount: 42,
    pageCountValid: true,
  });
  assert.equal(marksWal(rollbackBytes), false);

  // WAL mode, the largest 16-bit page size, unsigned 32-bit counters above 2^31.
  const walBytes = dbHeaderBytes({ rawPageSize: 32768, writeVersion: 2, readVersion: 2, changeCounter: 0xffff_fffe, pageCount: 0x8000_0001 });
  const wal = parseDbHeader(walBytes);
  assert.deepEqual(wal, {
    pageSize: 32768,
    writeVersion: 2,
    readVersion: 2,
    changeCounter: 0xffff_fffe,
    pageCount: 0x8000_0001,
    pageCountValid: true,
  });
  assert.equal(marksWal(walBytes), true);
  for (const [at, version] of [[18, 1], [19, 1]] as const) {
    const one = walBytes.slice();
    one[at] = version;
    assert.equal(marksWal(one), true, `only byte ${at} says rollback`);
  }
  assert.equal(marksWal(walBytes.subarray(0, 19)), false);

  // The header is read from page 1 of a larger image living at an odd offset inside its buffer.
  const page1 = makeFirstPage(512, 7, { pageCount: 3, changeCounter: 9, reserved: 32 });
  const image = shifted(concat([page1, makePage(512, 8), makePage(512, 9)]), 3);
  assert.deepEqual(parseDbHeader(image), {
    pageSize: 512,
    writeVersion: 1,
    readVersion: 1,
    changeCounter: 9,
    pageCount: 3,
    pageCountValid: true,
  });
  assert.equal(parseDbHeader(image.subarray(0, DB_HEADER_SIZE)).pageCount, 3);
});

test('header: the page count is valid only when version-valid-for matches the change counter', () => {
  // A legacy writer (or one that changed the file without updating the count) leaves bytes 92-95 stale.
  const stale = parseDbHeader(dbHeaderBytes({ changeCounter: 8, versionValidFor: 7, pageCount: 3 }));
  assert.equal(stale.pageCount, 3);
  assert.equal(stale.pageCountValid, false);
  const current = parseDbHeader(dbHeaderBytes({ changeCounter: 8, versionValidFor: 8, pageCount: 3 }));
  assert.equal(current.pageCountValid, true);
  // A recorded count of 0 is never trusted.
  const zero = parseDbHeader(dbHeaderBytes({ changeCounter: 8, versionValidFor: 8, pageCount: 0 }));
  assert.equal(zero.pageCount, 0);
  assert.equal(zero.pageCountValid, false);
});

test('header: a stored page size of 1 means 65536', () => {
  const header = parseDbHeader(dbHeaderBytes({ rawPageSize: 1, pageCount: 2 }));
  assert.equal(header.pageSize, 65536);
  assert.equal(header.pageCount, 2);
  assert.equal(isValidPageSize(65536), true);
});

test('header: invalid page sizes throw ImageFormatError', () => {
  for (const raw of [1000, 256, 0, 2, 511, 513, 4095, 65535, 0x8001]) {
    assertImageFormatError(() => parseDbHeader(dbHeaderBytes({ rawPageSize: raw })), /page size/);
  }
  for (const valid of [512, 1024, 2048, 4096, 8192, 16384, 32768]) {
    assert.equal(parseDbHeader(dbHeaderBytes({ rawPageSize: valid })).pageSize, valid);
  }
  assert.deepEqual(
    [256, 500, 512, 1000, 65536, 131072].map((size) => isValidPageSize(size)),
    [false, false, true, false, true, false],
  );
});

test('header: other invalid fields (versions, reserved space, payload fractions) throw ImageFormatError', () => {
  // SQLite's rule: a read version above 2 cannot be read; any write version can (above 2: read-only).
  for (const [writeVersion, readVersion] of [[1, 3], [2, 255]] as const) {
    assertImageFormatError(() => parseDbHeader(dbHeaderBytes({ writeVersion, readVersion })), /version/);
  }
  for (const [writeVersion, readVersion] of [[0, 1], [1, 0], [3, 1], [255, 2]] as const) {
    assert.equal(parseDbHeader(dbHeaderBytes({ writeVersion, readVersion })).readVersion, readVersion);
  }
  // Usable size must stay at least 480 bytes: 512 - 32 is fine, 512 - 33 is not.
  assert.equal(parseDbHeader(dbHeaderBytes({ rawPageSize: 512, reserved: 32 })).pageSize, 512);
  assertImageFormatError(() => parseDbHeader(dbHeaderBytes({ rawPageSize: 512, reserved: 33 })), /reserved/);
  for (const at of [21, 22, 23]) {
    const bytes = dbHeaderBytes();
    bytes[at] = 0;
    assertImageFormatError(() => parseDbHeader(bytes), /payload/);
  }
});

test('header: a truncated header (< 100 bytes) throws ImageFormatError', () => {
  const full = dbHeaderBytes({ pageCount: 5 });
  for (const length of [0, 1, 16, 32, 99]) {
    assertImageFormatError(() => parseDbHeader(full.subarray(0, length)), /truncated/);
  }
  assert.equal(parseDbHeader(full.subarray(0, 100)).pageCount, 5);
});

test('header: wrong magic, text and random bytes throw ImageFormatError', () => {
  const oldFormat = dbHeaderBytes();
  oldFormat[14] = '2'.charCodeAt(0); // "SQLite format 2\0"
  assertImageFormatError(() => parseDbHeader(oldFormat), /not a database/);

  const noTerminator = dbHeaderBytes();
  noTerminator[15] = 0x20; // "SQLite format 3 "
  assertImageFormatError(() => parseDbHeader(noTerminator), /not a database/);

  const text = new TextEncoder().encode(
    'CREATE TABLE t(x); INSERT INTO t VALUES (1); -- this is a SQL script, not an SQLite database file at all\n',
  );
  assert.ok(text.length >= DB_HEADER_SIZE);
  assertImageFormatError(() => parseDbHeader(text), /not a database/);

  for (const seed of [1, 0xdeadbeef, 12345]) {
    assertImageFormatError(() => parseDbHeader(pseudoRandomBytes(4096, seed)), /not a database/);
  }
  assertImageFormatError(() => parseDbHeader(new Uint8Array(4096)), /not a database/);

  // A WAL file or a journal given in place of the database is not a database either.
  const walFile = new WalBuilder({ pageSize: 512 }).frame(1, 1, makePage(512, 1)).build();
  assertImageFormatError(() => parseDbHeader(walFile), /not a database/);
});

test('header: markRollback sets bytes 18-19 to 1 and touches nothing else', () => {
  const page1 = makeFirstPage(1024, 3, { writeVersion: 2, readVersion: 2, pageCount: 2 });
  const image = concat([page1, makePage(1024, 4)]);
  const before = image.slice();
  assert.equal(marksWal(image), true);

  markRollback(image);

  assert.equal(image[18], 1);
  assert.equal(image[19], 1);
  for (let i = 0; i < image.length; i++) {
    if (i !== 18 && i !== 19) assert.equal(image[i], before[i], `byte ${i} changed`);
  }
  const header = parseDbHeader(image);
  assert.deepEqual(header, {
    pageSize: 1024,
    writeVersion: 1,
    readVersion: 1,
    changeCounter: 1,
    pageCount: 2,
    pageCountValid: true,
  });
  assert.equal(marksWal(image), false);

  // Also on exactly 20 bytes, and on a view at an offset (only the view's bytes 18-19 change).
  const small = new Uint8Array(20).fill(2);
  markRollback(small);
  assert.deepEqual([...small], [...new Array<number>(18).fill(2), 1, 1]);
  const backing = new Uint8Array(40).fill(2);
  markRollback(backing.subarray(10, 30));
  assert.deepEqual(
    [...backing].flatMap((value, i) => (value === 1 ? [i] : [])),
    [28, 29],
  );
});

// ---------------------------------------------------------------------------------------------
// WAL
// ---------------------------------------------------------------------------------------------

test('wal: the test builder agrees with known checksum arithmetic', () => {
  // Hand-computed: words (LE) 1,2 then 3,4 from seed 0,0 → s1=1,s2=3 → s1=1+3+3=7, s2=3+4+7=14.
  const bytes = new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
  assert.deepEqual(walChecksum(bytes, false), [7, 14]);
  const reversed = new Uint8Array([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
  assert.deepEqual(walChecksum(reversed, true), [7, 14]);
  // Wraps modulo 2^32.
  assert.deepEqual(walChecksum(new Uint8Array(8).fill(0xff), true, [1, 0]), [0, 0xffffffff]);
});

test('wal: committed frames are folded into the database image', () => {
  const ps = 1024;
  const dbPages = [makeFirstPage(ps, 101, { writeVersion: 2, readVersion: 2, pageCount: 4 }), makePage(ps, 102), makePage(ps, 103), makePage(ps, 104)];
  const db = concat(dbPages);
  const newPage1 = makeFirstPage(ps, 201, { writeVersion: 2, readVersion: 2, pageCount: 4, changeCounter: 2 });
  const newPage3 = makePage(ps, 203);
  const builder = new WalBuilder({ pageSize: ps, checkpointSeq: 5, salt1: 0x01020304, salt2: 0xfffffff0 })
    .frame(3, 0, newPage3)
    .frame(1, 4, newPage1);
  const wal = builder.build();

  const header = parseWalHeader(wal);
  assert.deepEqual(header, {
    bigEndian: false,
    version: 3007000,
    pageSize: ps,
    checkpointSeq: 5,
    salt1: 0x01020304,
    salt2: 0xfffffff0,
    checksum1: builder.headerChecksum[0],
    checksum2: builder.headerChecksum[1],
  });

  const scan = mustScan(wal);
  assert.deepEqual(scan.header, header);
  assert.equal(scan.committedFrames, 2);
  assert.equal(scan.dbPages, 4);
  assert.deepEqual(
    scan.pages,
    new Map([
      [3, builder.pageOffset(0)],
      [1, builder.pageOffset(1)],
    ]),
  );
  assert.equal(builder.pageOffset(0), WAL_HEADER_SIZE + WAL_FRAME_HEADER_SIZE);

  const image = foldWal(db.slice(), wal, scan);
  assert.equal(image.length, 4 * ps);
  assertPage(image, ps, 1, newPage1);
  assertPage(image, ps, 2, dbPages[1]!);
  assertPage(image, ps, 3, newPage3);
  assertPage(image, ps, 4, dbPages[3]!);
  assert.equal(parseDbHeader(image).changeCounter, 2);
});

test('wal: the parser reads WALs that start at unaligned offsets (no fast-path dependence)', () => {
  const ps = 512;
  for (const bigEndian of [false, true]) {
    const builder = new WalBuilder({ pageSize: ps, bigEndian })
      .frame(1, 0, makePage(ps, 11))
      .frame(2, 2, makePage(ps, 12))
      .frame(1, 2, makePage(ps, 13));
    const wal = builder.build();
    for (const shift of [0, 1, 2, 3, 4, 5, 8]) {
      const scan = mustScan(shifted(wal, shift));
      assert.equal(scan.committedFrames, 3, `bigEndian=${bigEndian} shift=${shift}`);
      assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[2]);
      const image = foldWal(concat([makePage(ps, 1), makePage(ps, 2)]), shifted(wal, shift), scan);
      assertPage(image, ps, 1, makePage(ps, 13));
      assertPage(image, ps, 2, makePage(ps, 12));
    }
  }
});

test('wal: a torn last frame is ignored', () => {
  const ps = 512;
  const db = concat([makePage(ps, 1), makePage(ps, 2)]);
  const builder = new WalBuilder({ pageSize: ps })
    .frame(1, 0, makePage(ps, 21))
    .frame(2, 2, makePage(ps, 22))
    .frame(2, 3, makePage(ps, 32)) // a second commit, torn below
    .frame(3, 3, makePage(ps, 33));
  const full = builder.build();
  assert.equal(mustScan(full).committedFrames, 4);

  const endOfFirstCommit = builder.frameOffset(2);
  for (const cut of [
    full.length - 1, // the last page lacks one byte
    builder.frameOffset(3) + WAL_FRAME_HEADER_SIZE + 100, // half a page
    builder.frameOffset(3) + 10, // half a frame header
    builder.frameOffset(3), // exactly three frames: the third is a commit
  ]) {
    const scan = mustScan(full.subarray(0, cut));
    assert.equal(scan.committedFrames, 3, `cut at ${cut}`);
    assert.equal(scan.dbPages, 3);
  }
  for (const cut of [builder.frameOffset(3) - 1, endOfFirstCommit + 30]) {
    const torn = full.subarray(0, cut);
    const scan = mustScan(torn);
    assert.equal(scan.committedFrames, 2, `cut at ${cut}`);
    assert.equal(scan.dbPages, 2);
    assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[1]);
    const image = foldWal(db.slice(), torn, scan);
    assert.equal(image.length, 2 * ps);
    assertPage(image, ps, 1, makePage(ps, 21));
    assertPage(image, ps, 2, makePage(ps, 22));
  }
});

test('wal: a bad checksum in the middle ends the log there, even if later commits are valid', () => {
  const ps = 512;
  const db = concat([makePage(ps, 1), makePage(ps, 2), makePage(ps, 3)]);
  const good = new WalBuilder({ pageSize: ps })
    .frame(1, 3, makePage(ps, 41))
    .frame(2, 0, makePage(ps, 42))
    .frame(3, 3, makePage(ps, 43));
  // Frame 2 stores a wrong checksum; the running chain stays correct, so frame 3 (a commit)
  // carries exactly the checksum a scanner that skipped frame 2 would expect.
  const builder = new WalBuilder({ pageSize: ps })
    .frame(1, 3, makePage(ps, 41))
    .frame(2, 0, makePage(ps, 42), { storedChecksum: [(good.frameChecksums[1]![0] ^ 1) >>> 0, good.frameChecksums[1]![1]] })
    .frame(3, 3, makePage(ps, 43));
  assert.deepEqual(builder.frameChecksums[2], good.frameChecksums[2]);
  const wal = builder.build();

  const scan = mustScan(wal);
  assert.equal(scan.committedFrames, 1);
  assert.equal(scan.dbPages, 3);
  assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[0]);
  assert.deepEqual(scan.pages, new Map([[1, builder.pageOffset(0)]]));
  const image = foldWal(db.slice(), wal, scan);
  assertPage(image, ps, 1, makePage(ps, 41));
  assertPage(image, ps, 2, makePage(ps, 2));
  assertPage(image, ps, 3, makePage(ps, 3));

  // The same with a flipped byte in the page data of frame 2 (checksum field intact), and with
  // only checksum-2 wrong.
  const flipped = good.build();
  flipped[good.pageOffset(1) + 200]! ^= 0x40;
  assert.equal(mustScan(flipped).committedFrames, 1);
  const secondWrong = new WalBuilder({ pageSize: ps })
    .frame(1, 3, makePage(ps, 41))
    .frame(2, 0, makePage(ps, 42), { storedChecksum: [good.frameChecksums[1]![0], (good.frameChecksums[1]![1] ^ 0x80000000) >>> 0] })
    .frame(3, 3, makePage(ps, 43))
    .build();
  assert.equal(mustScan(secondWrong).committedFrames, 1);
  // A page number of 0 in the middle also ends the log.
  const zeroPage = good.build();
  zeroPage.fill(0, good.frameOffset(1), good.frameOffset(1) + 4);
  assert.equal(mustScan(zeroPage).committedFrames, 1);
  assert.equal(mustScan(good.build()).committedFrames, 3);
});

test('wal: frames after the last commit frame are ignored', () => {
  const ps = 512;
  const db = concat([makePage(ps, 1), makePage(ps, 2)]);
  const builder = new WalBuilder({ pageSize: ps })
    .frame(2, 2, makePage(ps, 52))
    .frame(1, 0, makePage(ps, 61)) // an unfinished transaction: rewrites page 1 and 2, adds 3
    .frame(2, 0, makePage(ps, 62))
    .frame(3, 0, makePage(ps, 63));
  const wal = builder.build();

  const scan = mustScan(wal);
  assert.equal(scan.committedFrames, 1);
  assert.equal(scan.dbPages, 2);
  assert.deepEqual(scan.pages, new Map([[2, builder.pageOffset(0)]]));
  assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[0]);

  const image = foldWal(db.slice(), wal, scan);
  assert.equal(image.length, 2 * ps);
  assertPage(image, ps, 1, makePage(ps, 1));
  assertPage(image, ps, 2, makePage(ps, 52));
});

test('wal: stale frames from an older salt after the current frames are ignored', () => {
  const ps = 512;
  const db = concat([makePage(ps, 1), makePage(ps, 2), makePage(ps, 3)]);

  // A restarted WAL overwrote the first two frames of an older generation.
  const old = new WalBuilder({ pageSize: ps, checkpointSeq: 3, salt1: 700, salt2: 0x9999 })
    .frame(1, 0, makePage(ps, 71))
    .frame(2, 3, makePage(ps, 72))
    .frame(3, 3, makePage(ps, 73))
    .frame(1, 3, makePage(ps, 74));
  const current = new WalBuilder({ pageSize: ps, checkpointSeq: 4, salt1: 701, salt2: 0x4242 })
    .frame(2, 0, makePage(ps, 82))
    .frame(1, 3, makePage(ps, 81));
  const wal = old.build();
  wal.set(current.build(), 0);
  assert.equal(mustScan(old.build()).committedFrames, 4);

  const scan = mustScan(wal);
  assert.equal(scan.header.salt1, 701);
  assert.equal(scan.header.checkpointSeq, 4);
  assert.equal(scan.committedFrames, 2);
  assert.deepEqual(scan.pages, new Map([[2, current.pageOffset(0)], [1, current.pageOffset(1)]]));
  assert.deepEqual([scan.checksum1, scan.checksum2], current.frameChecksums[1]);
  const image = foldWal(db.slice(), wal, scan);
  assertPage(image, ps, 1, makePage(ps, 81));
  assertPage(image, ps, 2, makePage(ps, 82));
  assertPage(image, ps, 3, makePage(ps, 3));

  // Salts are not part of the checksum: a commit frame with a chain-valid checksum but either
  // salt from another generation must still be rejected.
  for (const salts of [{ salt1: 700 }, { salt2: 0x9999 }, { salt1: 700, salt2: 0x9999 }]) {
    const crafted = new WalBuilder({ pageSize: ps, salt1: 701, salt2: 0x4242 })
      .frame(2, 0, makePage(ps, 82))
      .frame(1, 3, makePage(ps, 81))
      .frame(3, 3, makePage(ps, 93), salts);
    const craftedWal = crafted.build();
    const craftedScan = mustScan(craftedWal);
    assert.equal(craftedScan.committedFrames, 2, JSON.stringify(salts));
    assert.equal(craftedScan.pages.has(3), false);
    assertPage(foldWal(db.slice(), craftedWal, craftedScan), ps, 3, makePage(ps, 3));
  }
});

test('wal: big-endian checksums (magic 0x377f0683) work', () => {
  const ps = 4096;
  const db = concat([makePage(ps, 1), makePage(ps, 2)]);
  const builder = new WalBuilder({ pageSize: ps, bigEndian: true, salt1: 0xcafebabe, salt2: 0x00000001 })
    .frame(2, 0, makePage(ps, 302))
    .frame(1, 2, makePage(ps, 301))
    .frame(2, 2, makePage(ps, 312));
  const wal = builder.build();
  assert.equal(getUint32(wal, 0), WAL_MAGIC_BIG_ENDIAN);

  const scan = mustScan(wal);
  assert.equal(scan.header.bigEndian, true);
  assert.equal(scan.header.salt1, 0xcafebabe);
  assert.deepEqual([scan.header.checksum1, scan.header.checksum2], builder.headerChecksum);
  assert.equal(scan.committedFrames, 3);
  assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[2]);
  const image = foldWal(db.slice(), wal, scan);
  assertPage(image, ps, 1, makePage(ps, 301));
  assertPage(image, ps, 2, makePage(ps, 312));

  // The byte order matters: checksums computed over the other word order are rejected.
  const bigMagicLittleSums = new WalBuilder({ pageSize: ps, bigEndian: false, magic: WAL_MAGIC_BIG_ENDIAN }).build();
  assert.equal(parseWalHeader(bigMagicLittleSums), undefined);
  const littleMagicBigSums = new WalBuilder({ pageSize: ps, bigEndian: true, magic: WAL_MAGIC_LITTLE_ENDIAN }).build();
  assert.equal(parseWalHeader(littleMagicBigSums), undefined);
  // Valid header but frames summed in the wrong order: nothing is committed.
  const header = new WalBuilder({ pageSize: ps, bigEndian: true }).build();
  const littleFrames = new WalBuilder({ pageSize: ps, bigEndian: false }).frame(1, 1, makePage(ps, 5)).build();
  // Both builders use the same default salts, so only the word order of the sums differs.
  const mixed = concat([header, littleFrames.subarray(WAL_HEADER_SIZE)]);
  assert.equal(mustScan(mixed).committedFrames, 0);
});

test('wal: the database shrank (commit page count below the file size cuts the image)', () => {
  const ps = 1024;
  const dbPages = [1, 2, 3, 4, 5].map((n) => makePage(ps, n));
  const db = concat(dbPages);
  const builder = new WalBuilder({ pageSize: ps })
    .frame(2, 0, makePage(ps, 402))
    .frame(5, 0, makePage(ps, 405)) // written, then cut off by the commit below
    .frame(1, 3, makePage(ps, 401));
  const wal = builder.build();

  const scan = mustScan(wal);
  assert.equal(scan.committedFrames, 3);
  assert.equal(scan.dbPages, 3);
  const allocations: number[] = [];
  const image = foldWal(db, wal, scan, (size) => {
    allocations.push(size);
    return new Uint8Array(size);
  });
  assert.deepEqual(allocations, [], 'no allocation when the database file is large enough');
  assert.equal(image.length, 3 * ps);
  assert.equal(image.buffer, db.buffer, 'written into the database bytes');
  assertPage(image, ps, 1, makePage(ps, 401));
  assertPage(image, ps, 2, makePage(ps, 402));
  assertPage(image, ps, 3, dbPages[2]!);
  // Page 5 of the WAL lies beyond the new end and was not written anywhere.
  assertPage(db, ps, 5, dbPages[4]!);
});

test('wal: the database grew (a new, larger image), and a missing page throws ImageFormatError', () => {
  const ps = 512;
  const dbPages = [makeFirstPage(ps, 1, { writeVersion: 2, readVersion: 2, pageCount: 2 }), makePage(ps, 2)];
  const db = concat(dbPages);
  const newPage1 = makeFirstPage(ps, 501, { writeVersion: 2, readVersion: 2, pageCount: 4, changeCounter: 7 });
  const builder = new WalBuilder({ pageSize: ps })
    .frame(3, 0, makePage(ps, 503))
    .frame(4, 0, makePage(ps, 504))
    .frame(1, 4, newPage1);
  const wal = builder.build();

  const scan = mustScan(wal);
  assert.equal(scan.dbPages, 4);
  const allocations: number[] = [];
  const image = foldWal(db, wal, scan, (size) => {
    allocations.push(size);
    return new Uint8Array(size);
  });
  assert.deepEqual(allocations, [4 * ps]);
  assert.equal(image.length, 4 * ps);
  assertPage(image, ps, 1, newPage1);
  assertPage(image, ps, 2, dbPages[1]!);
  assertPage(image, ps, 3, makePage(ps, 503));
  assertPage(image, ps, 4, makePage(ps, 504));
  assertPage(db, ps, 1, dbPages[0]!); // the too-small input is left alone
  const header = parseDbHeader(image);
  assert.equal(header.pageCount, 4);
  assert.equal(header.changeCounter, 7);
  markRollback(image);
  assert.equal(marksWal(image), false);


  // A page between the end of the database file and the commit's page count that the WAL
  // does not hold reads as zeros, as SQLite reads a page past the end of the file (the lock-byte
  // page is one, always). Uninitialised memory from `allocate` is zeroed there.
  const gap = new WalBuilder({ pageSize: ps })
    .frame(4, 0, makePage(ps, 604))
    .frame(1, 4, newPage1)
    .build();
  const gapScan = mustScan(gap);
  assert.equal(gapScan.committedFrames, 2);
  const gapImage = foldWal(db, gap, gapScan, (size) => new Uint8Array(size).fill(0xee));
  assert.equal(gapImage.length, 4 * ps);
  assertPage(gapImage, ps, 3, new Uint8Array(ps));
  assertPage(gapImage, ps, 4, makePage(ps, 604));
  // The same from an empty database file (page 2 is missing now too).
  const fromNothing = foldWal(new Uint8Array(0), wal, scan, (size) => new Uint8Array(size).fill(0xee));
  assertPage(fromNothing, ps, 2, new Uint8Array(ps));
  // A database file that is not a whole number of WAL pages: the partial page is zero-padded.
  const partial = foldWal(db.subarray(0, ps + 100), wal, scan, (size) => new Uint8Array(size).fill(0xee));
  assert.deepEqual(partial.subarray(ps, ps + 100), db.subarray(ps, ps + 100));
  assert.deepEqual(partial.subarray(ps + 100, 2 * ps), new Uint8Array(ps - 100));

  // From an empty database file, a WAL holding every page is enough.
  const complete = new WalBuilder({ pageSize: ps })
    .frame(2, 0, makePage(ps, 702))
    .frame(1, 2, makeFirstPage(ps, 701, { writeVersion: 2, readVersion: 2, pageCount: 2 }))
    .build();
  const fromEmpty = foldWal(new Uint8Array(0), complete, mustScan(complete));
  assert.equal(fromEmpty.length, 2 * ps);
  assertPage(fromEmpty, ps, 2, makePage(ps, 702));
  assert.equal(parseDbHeader(fromEmpty).pageCount, 2);
});

test('wal: page size 65536', () => {
  const ps = 65536;
  const dbPages = [makeFirstPage(ps, 1, { writeVersion: 2, readVersion: 2, pageCount: 2 }), makePage(ps, 2)];
  const db = concat(dbPages);
  assert.equal(parseDbHeader(db).pageSize, 65536);
  const builder = new WalBuilder({ pageSize: ps, salt1: 0xffffffff, salt2: 0x80000000 })
    .frame(3, 0, makePage(ps, 803))
    .frame(2, 3, makePage(ps, 802));
  const wal = builder.build();
  assert.equal(wal.length, WAL_HEADER_SIZE + 2 * (WAL_FRAME_HEADER_SIZE + ps));

  const scan = mustScan(wal);
  assert.equal(scan.header.pageSize, 65536);
  assert.equal(scan.committedFrames, 2);
  assert.equal(scan.dbPages, 3);
  assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[1]);
  const image = foldWal(db, wal, scan);
  assert.equal(image.length, 3 * ps);
  assertPage(image, ps, 1, dbPages[0]!);
  assertPage(image, ps, 2, makePage(ps, 802));
  assertPage(image, ps, 3, makePage(ps, 803));
  assert.equal(parseDbHeader(image).pageSize, 65536);
});

test('wal: a valid header without a commit folds to the unchanged database', () => {
  const ps = 1024;
  const db = concat([makePage(ps, 1), makePage(ps, 2)]);
  const original = db.slice();

  for (const builder of [
    new WalBuilder({ pageSize: ps }), // header only
    new WalBuilder({ pageSize: ps }).frame(1, 0, makePage(ps, 901)).frame(3, 0, makePage(ps, 903)),
  ]) {
    const wal = builder.build();
    const scan = mustScan(wal);
    assert.equal(scan.committedFrames, 0);
    assert.equal(scan.dbPages, 0);
    assert.equal(scan.pages.size, 0);
    assert.deepEqual([scan.checksum1, scan.checksum2], builder.headerChecksum);
    assert.deepEqual([scan.checksum1, scan.checksum2], [scan.header.checksum1, scan.header.checksum2]);
    const image = foldWal(db, wal, scan, () => assert.fail('nothing to allocate'));
    assert.equal(image, db);
    assert.ok(sameBytes(db, original));
  }
  // An empty database with an empty WAL stays empty.
  const empty = new Uint8Array(0);
  assert.equal(foldWal(empty, new WalBuilder({ pageSize: ps }).build(), mustScan(new WalBuilder({ pageSize: ps }).build())), empty);
});

test('wal: an invalid header makes parseWalHeader and scanWal return undefined', () => {
  const ps = 512;
  const frames = (builder: WalBuilder) => builder.frame(1, 1, makePage(ps, 1)).build();
  const valid = frames(new WalBuilder({ pageSize: ps }));
  assert.ok(parseWalHeader(valid) !== undefined);
  assert.equal(mustScan(valid).committedFrames, 1);

  const badChecksum1 = valid.slice();
  badChecksum1[27]! ^= 1;
  const badChecksum2 = valid.slice();
  badChecksum2[28]! ^= 0x80;
  const badMagicByte = valid.slice();
  badMagicByte[3] = 0x84; // 0x377f0684, checksum no longer matches either
  const changedSalt = valid.slice();
  changedSalt[19]! ^= 1; // salt-1 altered after the checksum was computed
  const cases: Record<string, Uint8Array> = {
    'bad magic (valid checksum)': frames(new WalBuilder({ pageSize: ps, magic: 0x377f0684 })),
    'database magic': frames(new WalBuilder({ pageSize: ps, magic: 0x53514c69 })),
    'bad magic byte': badMagicByte,
    'bad header checksum-1': badChecksum1,
    'bad header checksum-2': badChecksum2,
    'header altered after checksumming': changedSalt,
    'invalid page size 1000': new WalBuilder({ pageSize: 1000 }).build(),
    'invalid page size 256': new WalBuilder({ pageSize: 256 }).build(),
    'invalid page size 0': new WalBuilder({ pageSize: 0 }).build(),
    'short file (31 bytes)': valid.subarray(0, 31),
    'empty file': new Uint8Array(0),
    'all zeros': new Uint8Array(WAL_HEADER_SIZE + 536),
    'random bytes': pseudoRandomBytes(4096, 77),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    assert.equal(parseWalHeader(bytes), undefined, name);
    assert.equal(scanWal(bytes), undefined, name);
  }
  // A header that is valid but of another format version is not ignored: SQLite refuses to open
  // the database (SQLITE_CANTOPEN), and so does the reader.
  for (const version of [3007001, 0, 2 ** 32 - 1]) {
    const header = parseWalHeader(frames(new WalBuilder({ pageSize: ps, version })));
    assert.equal(header?.version, version);
    assertImageFormatError(() => checkWalVersion(header!), /format version/);
  }
  checkWalVersion(parseWalHeader(valid)!);
});

test('wal: the same page written in two commits: the newest committed copy wins', () => {
  const ps = 2048;
  const db = concat([makePage(ps, 1), makePage(ps, 2), makePage(ps, 3)]);
  const builder = new WalBuilder({ pageSize: ps })
    .frame(2, 0, makePage(ps, 1002))
    .frame(3, 3, makePage(ps, 1003)) // commit 1
    .frame(2, 0, makePage(ps, 2002))
    .frame(2, 0, makePage(ps, 2102)) // page 2 twice in one transaction: the later frame counts
    .frame(1, 3, makePage(ps, 2001)) // commit 2
    .frame(2, 3, makePage(ps, 3002)) // commit 3
    .frame(2, 0, makePage(ps, 4002)); // uncommitted
  const wal = builder.build();

  const scan = mustScan(wal);
  assert.equal(scan.committedFrames, 6);
  assert.deepEqual(
    scan.pages,
    new Map([
      [2, builder.pageOffset(5)],
      [3, builder.pageOffset(1)],
      [1, builder.pageOffset(4)],
    ]),
  );
  const image = foldWal(db.slice(), wal, scan);
  assertPage(image, ps, 1, makePage(ps, 2001));
  assertPage(image, ps, 2, makePage(ps, 3002));
  assertPage(image, ps, 3, makePage(ps, 1003));

  // Cut after commit 2: the copy from inside commit 2's transaction that was written last wins.
  const upToCommit2 = wal.subarray(0, builder.frameOffset(5));
  const scan2 = mustScan(upToCommit2);
  assert.equal(scan2.committedFrames, 5);
  assertPage(foldWal(db.slice(), upToCommit2, scan2), ps, 2, makePage(ps, 2102));
});

test("wal: the scan's checksums equal the last commit frame's stored checksums", () => {
  const ps = 512;
  const builder = new WalBuilder({ pageSize: ps, salt1: 0x7fffffff, salt2: 0xdeadbeef })
    .frame(1, 0, pseudoRandomBytes(ps, 1))
    .frame(2, 2, pseudoRandomBytes(ps, 2)) // commit
    .frame(1, 0, pseudoRandomBytes(ps, 3))
    .frame(3, 3, pseudoRandomBytes(ps, 4)) // last commit
    .frame(2, 0, pseudoRandomBytes(ps, 5));
  const wal = builder.build();
  const lastCommit = builder.frameOffset(3);

  const scan = mustScan(wal);
  assert.equal(scan.committedFrames, 4);
  assert.equal(scan.dbPages, 3);
  assert.equal(scan.checksum1, getUint32(wal, lastCommit + 16));
  assert.equal(scan.checksum2, getUint32(wal, lastCommit + 20));
  assert.deepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[3]);
  assert.notDeepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[4]);
  assert.notDeepEqual([scan.checksum1, scan.checksum2], builder.frameChecksums[1]);

  // The stored values are the cumulative checksum over header and frames (recomputed here).
  let sum = walChecksum(wal.subarray(0, 24), false);
  for (let i = 0; i <= 3; i++) {
    sum = walChecksum(wal.subarray(builder.frameOffset(i), builder.frameOffset(i) + 8), false, sum);
    sum = walChecksum(wal.subarray(builder.pageOffset(i), builder.pageOffset(i) + ps), false, sum);
  }
  assert.deepEqual([scan.checksum1, scan.checksum2], sum);
});

// ---------------------------------------------------------------------------------------------
// Rollback journal
// ---------------------------------------------------------------------------------------------

test('journal: active exactly when the journal starts with the magic', () => {
  assert.equal(JOURNAL_PROBE_SIZE, 8);
  const magic = Uint8Array.from(JOURNAL_MAGIC);
  assert.equal(isJournalActive(magic), true);

  // A full journal header: magic, then record count, nonce, page count, sector and page size.
  const header = new Uint8Array(512);
  header.set(magic);
  new DataView(header.buffer).setUint32(8, 0xffffffff);
  assert.equal(isJournalActive(header), true);
  assert.equal(isJournalActive(shifted(header, 5)), true);

  // PERSIST: the header is zeroed at commit.
  const zeroed = header.slice();
  zeroed.fill(0, 0, 28);
  assert.equal(isJournalActive(zeroed), false);
  assert.equal(isJournalActive(new Uint8Array(8)), false);
  // TRUNCATE: the journal is empty.
  assert.equal(isJournalActive(new Uint8Array(0)), false);
  // Too short to hold the magic, even when what is there matches.
  for (let length = 1; length < 8; length++) {
    assert.equal(isJournalActive(magic.subarray(0, length)), false, `${length} bytes`);
  }
  // Any byte of the magic altered.
  for (let i = 0; i < 8; i++) {
    const altered = magic.slice();
    altered[i]! ^= 0x01;
    assert.equal(isJournalActive(altered), false, `byte ${i} altered`);
  }
  // The magic somewhere other than at the start does not count.
  const late = new Uint8Array(16);
  late.set(magic, 1);
  assert.equal(isJournalActive(late), false);
});

test('wal: a scan resumed from an earlier scan of the same WAL equals a fresh scan, and skips nothing it must check', () => {
  const ps = 1024;
  const builder = new WalBuilder({ pageSize: ps }).frame(2, 0, makePage(ps, 12)).frame(1, 2, makePage(ps, 11));
  const early = mustScan(builder.build());
  builder.frame(3, 3, makePage(ps, 13)).frame(2, 3, makePage(ps, 22)).frame(4, 0, makePage(ps, 99));
  const grown = builder.build();
  const resumed = scanWal(grown, early)!;
  assert.deepEqual(resumed, mustScan(grown));
  assert.equal(resumed.committedFrames, 4);
  // The earlier scan's map is not modified by the resumed one.
  assert.equal(early.pages.size, 2);

  // A bad frame after the resumed prefix still ends the log.
  const corrupt = grown.slice();
  corrupt[builder.pageOffset(3) + 5]! ^= 0xff;
  assert.equal(scanWal(corrupt, early)!.committedFrames, 3);

  // A WAL restarted with other salts is scanned from the start, whatever the earlier scan said.
  const restarted = new WalBuilder({ pageSize: ps, salt1: 0x11223345, salt2: 7 }).frame(1, 1, makePage(ps, 31)).build();
  const fresh = scanWal(restarted, mustScan(grown))!;
  assert.deepEqual(fresh, mustScan(restarted));
  assert.equal(fresh.committedFrames, 1);

  // An earlier scan longer than the file (truncated since) is not used.
  assert.deepEqual(scanWal(grown.subarray(0, builder.frameOffset(1)), resumed), mustScan(grown.subarray(0, builder.frameOffset(1))));

  // The same file rewritten in place with the same salts (a restore, a copy tool): the last commit
  // frame the earlier scan trusted differs, so nothing of that scan is reused.
  const rewritten = new WalBuilder({ pageSize: ps })
    .frame(2, 0, makePage(ps, 52))
    .frame(1, 2, makePage(ps, 51))
    .frame(3, 3, makePage(ps, 53))
    .frame(2, 3, makePage(ps, 62))
    .build();
  assert.equal(rewritten.length, grown.length - (WAL_FRAME_HEADER_SIZE + ps));
  const again = scanWal(rewritten, resumed)!;
  assert.deepEqual(again, mustScan(rewritten));
  const afterRewrite = scanWal(rewritten, early)!;
  assert.deepEqual(afterRewrite, mustScan(rewritten));
  assert.notEqual(afterRewrite.checksum1, resumed.checksum1);
});

// ---------------------------------------------------------------------------------------------
// Fields that size things: nothing read from a file may size an allocation by itself
// ---------------------------------------------------------------------------------------------

test('wal: a commit frame that says the database has 2^31 − 1 or 2^32 − 1 pages folds to a table of the pages the files hold; the rest read as zeros', () => {
  const ps = 512;
  const page1 = makeFirstPage(ps, 1, { writeVersion: 2, readVersion: 2, pageCount: 2 });
  const db = PageImage.fromBytes(concat([page1, makePage(ps, 2)]), ps);
  for (const size of [2 ** 31 - 1, 2 ** 32 - 1]) {
    const wal = new WalBuilder({ pageSize: ps }).frame(2, size, makePage(ps, 202)).build();
    const scan = mustScan(wal);
    assert.equal(scan.dbPages, size);
    // On the code before the fix this grew a table of `size` entries: V8 aborts the process.
    const image = foldWalPages(db, wal, scan, new PageStore(), undefined);
    assert.equal(image.length, size * ps, 'the image is as long as the commit says');
    assert.equal(image.pageCount, size);
    assert.equal(image.pages.length, 2, 'only the pages the files hold have table entries');
    assert.deepEqual(image.subarray(0, ps), page1);
    assert.deepEqual(image.subarray(ps, 2 * ps), makePage(ps, 202));
    assert.deepEqual(image.subarray((size - 1) * ps, size * ps), new Uint8Array(ps), 'the last page reads as zeros');
    assert.equal(image.page(size - 1), zeroPage(ps));
    assert.ok(image.equals(image.with(new Map())), 'an equal image past the table compares equal');
    // A second commit that cuts the database back needs no more.
    const cut = commitImage(image, new Map(), 3, 2 + 2);
    assert.deepEqual([cut.length, cut.pages.length], [3 * ps, 2]);
  }
});

test('wal: a commit that puts a page far past what the files hold is refused (ImageFormatError); holes up to the allowance read as zeros', () => {
  const ps = 512;
  const db = PageImage.fromBytes(concat([makeFirstPage(ps, 1, { writeVersion: 2, readVersion: 2, pageCount: 4 }), makePage(ps, 2), makePage(ps, 3), makePage(ps, 4)]), ps);
  // The files hold at most 5 pages (4 in the database file, 1 frame).
  const limit = 2 * 5 + HOLE_ENTRIES;
  for (const far of [2 ** 31 - 1, 2 ** 32 - 1, limit + 1]) {
    const wal = new WalBuilder({ pageSize: ps }).frame(far, far, makePage(ps, 9)).build();
    // SQLite writes every page a database grows by: the table would be all holes.
    assertImageFormatError(() => foldWalPages(db, wal, mustScan(wal), new PageStore(), undefined), /files hold at most 5 pages/);
  }
  // The database grows across a page no frame holds, as across the lock-byte page.
  const hole = new WalBuilder({ pageSize: ps }).frame(6, 6, makePage(ps, 6)).build();
  const image = foldWalPages(db, hole, mustScan(hole), new PageStore(), undefined);
  assert.deepEqual([image.pageCount, image.pages.length], [6, 6]);
  assert.equal(image.pages[4], zeroPage(ps));
  assert.deepEqual(image.subarray(5 * ps, 6 * ps), makePage(ps, 6));
  // A database file cut short (damaged) leaves holes under the WAL's pages: up to the limit, they read as zeros.
  const atLimit = new WalBuilder({ pageSize: ps }).frame(limit, limit, makePage(ps, 11)).build();
  const far = foldWalPages(db, atLimit, mustScan(atLimit), new PageStore(), undefined);
  assert.equal(far.pages.length, limit);
  assert.deepEqual(far.subarray((limit - 1) * ps, limit * ps), makePage(ps, 11));
  assert.deepEqual(far.subarray(1000 * ps, 1001 * ps), new Uint8Array(ps));
});
