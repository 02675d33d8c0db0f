/**
 * The LiteFS adapter (`replica: { kind: 'litefs', dataDir, url? }`) and LiteFS's formats.
 *
 * LiteFS does not run here (it needs FUSE and Go), so its files are built by the tests from
 * LiteFS's source (`superfly/litefs`, `superfly/ltx`; see src/replica/ltx.ts): `-pos`, LTX files
 * and the checksum, cross-checked against a bit-at-a-time implementation (test/support/ltx-bytes.ts),
 * one in Python (test/support/ltx-crc.py) and the CRC-64/GO-ISO catalogue values. A replica is a
 * directory laid out as LiteFS lays it out (the database and `-pos` on the "mount", `ltx/` under
 * the data directory) and written as LiteFS applies a transaction: the LTX file renamed into
 * `ltx/`, the pages in place (page 1 first), the truncation, then `-pos`. `/events` and `/export`
 * come from a local HTTP server the tests start and stop.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { PipelineFailure } from '../src/errors.ts';
import type { ReadPolicy } from '../src/image/read.ts';
import { isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type DbCacheOptions } from '../src/index.ts';
import { LiteFsFeed } from '../src/replica/litefs.ts';
import { followEvents } from '../src/replica/litefs-http.ts';
import {
  checksumDatabase,
  checksumPage,
  crc64,
  decodeLtx,
  LtxFormatError,
  parseLtxFilename,
  parseLtxHeader,
  parseLtxTrailer,
  parsePosition,
} from '../src/replica/ltx.ts';
import { databaseChecksum, FLAG, ltxFile, ltxName, pageChecksum, posText, slowCrc64 } from './support/ltx-bytes.ts';
import { ManualClock } from './support/manual-clock.ts';
import { recordingLogger, runtimeCommand, sqlite, tempDir, waitFor } from './support/fixtures.ts';
import { Trace, SimFs } from './support/sim-fs.ts';
import { FuseView } from './support/sim-replica.ts';
import { patternPage, writeDbHeader } from './support/sim-writer.ts';

const text = new TextEncoder();
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const h16 = (value: bigint): string => value.toString(16).padStart(16, '0');

/** Deterministic bytes (xorshift), so failures are reproducible. */
function noise(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Asks test/support/ltx-crc.py. */
function python(request: object): { strings: string[]; pages: string[]; database: string; ltx?: string } {
  const script = fileURLToPath(new URL('./support/ltx-crc.py', import.meta.url));
  return JSON.parse(execFileSync('python3', [script], { input: JSON.stringify(request), encoding: 'utf8' }));
}

describe("LiteFS's formats (src/replica/ltx.ts)", () => {
  test('CRC-64 is Go\'s ISO table: the catalogue values of CRC-64/GO-ISO, and equal to two independent implementations', () => {
    assert.equal(crc64(text.encode('123456789')), 0xb90956c775a41001n);
    assert.equal(crc64(text.encode('123')), 0x4001b32000000000n);
    assert.equal(crc64(new Uint8Array(0)), 0n);
    const strings = [0, 1, 7, 8, 9, 100, 4096].map((length, i) => noise(length, i + 1));
    const fromPython = python({ strings: strings.map(hex) }).strings;
    strings.forEach((bytes, i) => {
      assert.equal(h16(crc64(bytes)), h16(slowCrc64(bytes)), `length ${bytes.length}`);
      assert.equal(h16(crc64(bytes)), fromPython[i], `length ${bytes.length}`);
    });
  });

  test('page and database checksums: bit 63 | CRC-64 of the page number and the page, XOR-folded; equal to Python and to the slow implementation', () => {
    const pageSize = 512;
    const pages = [1, 2, 3, 4, 5].map((seed) => noise(pageSize, seed * 31));
    const fromPython = python({ pageSize, pages: pages.map(hex) });
    pages.forEach((page, i) => {
      assert.equal(h16(checksumPage(i + 1, page)), fromPython.pages[i]);
      assert.equal(checksumPage(i + 1, page), pageChecksum(i + 1, page));
      assert.ok(checksumPage(i + 1, page) >= FLAG, 'bit 63 is set');
    });
    // The same bytes at another page number sum differently: the page number is in the sum.
    assert.notEqual(checksumPage(1, pages[0]!), checksumPage(2, pages[0]!));
    assert.equal(h16(checksumDatabase(pages, pageSize)), fromPython.database);
    assert.equal(checksumDatabase(pages, pageSize), databaseChecksum(pages, pageSize));
    // XOR-folded: the order of the fold does not matter, and two equal page checksums cancel.
    let folded = 0n;
    for (const [i, page] of [...pages.entries()].reverse()) folded ^= checksumPage(i + 1, page);
    assert.equal(checksumDatabase(pages, pageSize), FLAG | folded);
    assert.equal(checksumDatabase([], pageSize), 0n);
  });

  test('the lock-byte page (the one holding byte 2^30) is left out of the database checksum', () => {
    // With 65536-byte pages it is page 16385; the pages here are short stand-ins (only the count matters).
    const pages = Array.from({ length: 16386 }, (_, i) => noise(8, i + 7));
    const sum = checksumDatabase(pages, 65536);
    assert.equal(sum, databaseChecksum(pages, 65536));
    pages[16384] = noise(8, 999);
    assert.equal(checksumDatabase(pages, 65536), sum, 'changing the lock-byte page changes nothing');
    pages[16385] = noise(8, 998);
    assert.notEqual(checksumDatabase(pages, 65536), sum);
  });

  test('-pos: "%016x/%016x" with or without its newline; anything else is an LtxFormatError', () => {
    assert.deepEqual(parsePosition(text.encode(posText(0x27n, 0x83b05248774ce767n))), { txid: 0x27n, checksum: 0x83b05248774ce767n });
    assert.deepEqual(parsePosition(text.encode('00000000000000FF/8000000000000001')), { txid: 255n, checksum: 0x8000000000000001n });
    for (const bad of ['', '0000000000000027', '0000000000000027-83b05248774ce767\n', '000000000000027/83b05248774ce767\n', '000000000000002g/83b05248774ce767', '0000000000000027/83b05248774ce767\n\n']) {
      assert.throws(() => parsePosition(text.encode(bad)), LtxFormatError, JSON.stringify(bad));
    }
  });

  test('LTX file names, headers and trailers; an LTX file built in Python decodes and verifies', () => {
    assert.deepEqual(parseLtxFilename('0000000000000001-00000000000000ff.ltx'), { minTxid: 1n, maxTxid: 255n });
    for (const name of ['0000000000000001-00000000000000ff.ltx.tmp', '1-2.ltx', '0000000000000001-00000000000000FF.ltx', 'database']) {
      assert.equal(parseLtxFilename(name), undefined, name);
    }
    const pageSize = 512;
    const pages: Array<[number, string]> = [[1, hex(noise(pageSize, 1))], [3, hex(noise(pageSize, 3))]];
    const built = python({ pageSize, ltx: { minTxid: 5, maxTxid: 7, commit: 3, post: '8000000000abcdef', pages } });
    const bytes = new Uint8Array(Buffer.from(built.ltx!, 'hex'));
    const file = decodeLtx(bytes);
    assert.equal(file.header.pageSize, pageSize);
    assert.equal(file.header.commit, 3);
    assert.equal(file.header.minTxid, 5n);
    assert.equal(file.header.maxTxid, 7n);
    assert.equal(file.header.timestamp, 1_700_000_000_000n);
    assert.deepEqual(file.pages.map((page) => [page.pgno, hex(page.data)]), pages);
    assert.equal(file.trailer.postApplyChecksum, 0x8000000000abcdefn);
    assert.deepEqual(parseLtxTrailer(bytes.subarray(bytes.length - 16)), file.trailer);
    // The TypeScript encoder of the tests writes the same bytes as the Python one.
    const ours = ltxFile({ pageSize, commit: 3, minTxid: 5n, maxTxid: 7n, postApplyChecksum: 0x8000000000abcdefn, pages: pages.map(([pgno, data]) => [pgno, new Uint8Array(Buffer.from(data, 'hex'))] as const) });
    assert.equal(hex(ours), built.ltx);
    // One flipped byte anywhere fails the file checksum; a bad header fails before it.
    const flipped = bytes.slice();
    flipped[150] ^= 1;
    assert.throws(() => decodeLtx(flipped), LtxFormatError);
    const badMagic = bytes.slice();
    badMagic[0] = 0x4d;
    assert.throws(() => parseLtxHeader(badMagic), /magic/);
    const badSize = bytes.slice();
    new DataView(badSize.buffer).setUint32(8, 1000);
    assert.throws(() => parseLtxHeader(badSize), /page size/);
    const backwards = bytes.slice();
    new DataView(backwards.buffer).setBigUint64(16, 9n);
    assert.throws(() => parseLtxHeader(backwards), /out of order/);
    assert.throws(() => parseLtxHeader(bytes.subarray(0, 99)), LtxFormatError);
  });
});

// ---------------------------------------------------------------------------------------------
// The adapter on the simulated file system (scripted, on a fake clock)
// ---------------------------------------------------------------------------------------------

const MOUNT = '/litefs/app.db';
const DATA = '/var/lib/litefs';
const LTX = `${DATA}/dbs/app.db/ltx`;

/** A LiteFS replica on a SimFs: pages of the simulation's pattern, applied as LiteFS applies them. */
class SimReplica {
  readonly fs = new SimFs(new Trace());
  readonly view = new FuseView(this.fs);
  readonly pageSize = 512;
  txid = 1n;
  pages: Uint8Array[];
  /** Sleeps the reader took (each a retry). */
  sleeps = 0;
  onSleep: () => void = () => {};
  readonly policy: ReadPolicy;
  #now = 0;
  #seq = 0;

  constructor(pageCount = 3) {
    this.pages = Array.from({ length: pageCount }, (_, i) => this.#page(0, i + 1, pageCount));
    this.fs.create(MOUNT);
    this.pages.forEach((page, i) => this.fs.write(MOUNT, i * this.pageSize, page));
    this.fs.mkdir(LTX);
    this.#ltx(1n, this.pages.map((page, i) => [i + 1, page] as const));
    this.#pos(1n);
    this.policy = {
      busyTimeoutMs: 200,
      now: () => this.#now,
      sleep: async (ms) => {
        this.#now += ms;
        this.sleeps++;
        this.onSleep();
      },
    };
  }

  feed(settings: { dataDir?: string } = {}): LiteFsFeed {
    return new LiteFsFeed(MOUNT, this.view, { dataDir: settings.dataDir ?? DATA, name: 'app.db' });
  }

  checksum(pages = this.pages): bigint {
    return checksumDatabase(pages, this.pageSize);
  }

  /** The next transaction's pages (2 and the last), not yet written. */
  next(): Map<number, Uint8Array> {
    const seq = ++this.#seq;
    return new Map([[2, this.#page(seq, 2, this.pages.length)], [this.pages.length, this.#page(seq, this.pages.length, this.pages.length)]]);
  }

  /** Starts applying `changes` as the next transaction: its LTX file into ltx/, and its first `pages` pages. */
  begin(changes: Map<number, Uint8Array>, pages: number): { finish(): void } {
    const txid = this.txid + 1n;
    const sorted = [...changes].sort(([a], [b]) => a - b);
    this.#ltx(txid, sorted);
    sorted.slice(0, pages).forEach(([pgno, page]) => this.fs.write(MOUNT, (pgno - 1) * this.pageSize, page));
    return {
      finish: () => {
        sorted.slice(pages).forEach(([pgno, page]) => this.fs.write(MOUNT, (pgno - 1) * this.pageSize, page));
        for (const [pgno, page] of sorted) this.pages[pgno - 1] = page;
        this.txid = txid;
        this.#pos(txid);
      },
    };
  }

  /** The image bytes of the current pages, as the reader returns them (page 1 marked rollback). */
  image(pages = this.pages): Uint8Array {
    const bytes = new Uint8Array(pages.length * this.pageSize);
    pages.forEach((page, i) => bytes.set(page, i * this.pageSize));
    bytes[18] = 1;
    bytes[19] = 1;
    return bytes;
  }

  writePos(txid: bigint, checksum: bigint): void {
    this.fs.truncate(`${MOUNT}-pos`, 0);
    this.fs.write(`${MOUNT}-pos`, 0, text.encode(posText(txid, checksum)));
  }

  #pos(txid: bigint): void {
    this.fs.create(`${MOUNT}-pos`);
    this.writePos(txid, this.checksum());
  }

  #ltx(txid: bigint, pages: readonly (readonly [number, Uint8Array])[]): void {
    const after = this.pages.slice();
    for (const [pgno, page] of pages) after[pgno - 1] = page;
    const name = `${LTX}/${ltxName(txid, txid)}`;
    this.fs.create(name);
    this.fs.write(name, 0, ltxFile({ pageSize: this.pageSize, commit: after.length, minTxid: txid, maxTxid: txid, postApplyChecksum: this.checksum(after), pages }, crc64));
  }

  #page(seq: number, pgno: number, count: number): Uint8Array {
    const page = patternPage(this.pageSize, seq, pgno);
    if (pgno === 1) writeDbHeader(page, this.pageSize, 2, 1, count);
    return page;
  }
}

async function failure(promise: Promise<unknown>): Promise<PipelineFailure> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PipelineFailure) return error;
    throw error;
  }
  assert.fail('expected the read to fail');
}

describe('the LiteFS adapter, scripted on the simulated file system', () => {
  test('a read is labelled with the TXID and checksum of -pos; an unchanged -pos is a no-op', async () => {
    const replica = new SimReplica();
    const feed = replica.feed();
    const image = await feed.read('open', replica.policy);
    assert.ok(image !== undefined && typeof image !== 'symbol');
    assert.deepEqual(image.bytes, replica.image());
    assert.equal(image.version, `litefs:${h16(1n)}:${h16(replica.checksum())}`);
    assert.equal(feed.position, `${h16(1n)}/${h16(replica.checksum())}`);
    feed.published(image);
    assert.equal(feed.changed(), false);
    assert.equal(await feed.read('call', replica.policy), undefined);
    replica.begin(replica.next(), 2).finish();
    assert.equal(feed.changed(), true);
    const next = await feed.read('watch', replica.policy);
    assert.ok(next !== undefined && typeof next !== 'symbol');
    assert.deepEqual(next.bytes, replica.image());
    assert.equal(next.version, `litefs:${h16(2n)}:${h16(replica.checksum())}`);
    assert.equal(replica.sleeps, 0);
  });

  test('in-flight guard: while ltx/ holds a TXID above -pos, no image is returned (BUSY after the budget); once -pos moves, the new state', async () => {
    const replica = new SimReplica();
    const feed = replica.feed();
    const first = await feed.read('open', replica.policy);
    assert.ok(first !== undefined && typeof first !== 'symbol');
    feed.published(first);
    // While only an apply is in progress, -pos still names the live version: nothing to read.
    const early = replica.begin(replica.next(), 1);
    assert.equal(await feed.read('call', replica.policy), undefined);
    early.finish();
    // Transaction 2 is applied; of transaction 3 only page 2 is written: a torn file.
    const apply = replica.begin(replica.next(), 1);
    const busy = await failure(feed.read('call', replica.policy));
    assert.equal(busy.code, 'BUSY');
    assert.match(busy.message, /LiteFS is applying transaction 0000000000000003/);
    assert.ok(replica.sleeps >= 2);
    apply.finish();
    const next = await feed.read('call', replica.policy);
    assert.ok(next !== undefined && typeof next !== 'symbol');
    assert.deepEqual(next.bytes, replica.image());
    assert.equal(next.version, `litefs:${h16(3n)}:${h16(replica.checksum())}`);
  });

  test('-pos changing between the reads before and after the image: the attempt is retried', async () => {
    const replica = new SimReplica();
    const feed = replica.feed();
    const before = replica.image();
    // The whole next transaction lands after the attempt listed ltx/ the second time: only the
    // second read of -pos shows that the image may be older than the position it would be labelled with.
    const apply = replica.begin(replica.next(), 0);
    const ltxPath = `${LTX}/${ltxName(2n, 2n)}`;
    const ltxBytes = replica.fs.contents(ltxPath)!;
    replica.fs.unlink(ltxPath);
    let readdirs = 0;
    replica.fs.onPoint = (where) => {
      if (where.startsWith('after readdir(') && ++readdirs === 2) {
        replica.fs.create(ltxPath);
        replica.fs.write(ltxPath, 0, ltxBytes);
        apply.finish();
      }
    };
    const image = await feed.read('open', replica.policy);
    assert.equal(readdirs >= 2, true);
    assert.ok(image !== undefined && typeof image !== 'symbol');
    assert.equal(replica.sleeps, 1, 'one retry');
    assert.deepEqual(image.bytes, replica.image());
    assert.notDeepEqual(image.bytes, before);
    assert.equal(image.version, `litefs:${h16(2n)}:${h16(replica.checksum())}`);
  });

  test('a checksum mismatch is retried; the same mismatch to the end of the budget with LiteFS quiet is CORRUPT', async () => {
    const replica = new SimReplica();
    const feed = replica.feed();
    // A page torn by something LiteFS does not announce, put right before the second attempt.
    const good = replica.pages[1]!;
    replica.fs.write(MOUNT, replica.pageSize, noise(replica.pageSize, 5));
    replica.onSleep = () => replica.fs.write(MOUNT, replica.pageSize, good);
    const image = await feed.read('open', replica.policy);
    assert.ok(image !== undefined && typeof image !== 'symbol');
    assert.equal(replica.sleeps, 1);
    assert.deepEqual(image.bytes, replica.image());
    // -pos names a checksum no read can match.
    replica.onSleep = () => {};
    replica.writePos(1n, FLAG | 12345n);
    const corrupt = await failure(replica.feed().read('open', replica.policy));
    assert.equal(corrupt.code, 'CORRUPT');
    assert.match(corrupt.message, /the same on each of the last \d+ attempts/);
    assert.ok(replica.sleeps >= 3, 'retried for the whole budget first');
  });

  test('without the ltx/ guard the checksum alone is fooled by two pages with identical deltas; with it, no image until -pos moves', async () => {
    const replica = new SimReplica(4);
    // Pages 2 and 3 change by the same XOR pattern: their checksum changes cancel in the fold.
    const delta = noise(replica.pageSize, 77);
    const changes = new Map<number, Uint8Array>([
      [2, replica.pages[1]!.map((byte, i) => byte ^ delta[i]!)],
      [3, replica.pages[2]!.map((byte, i) => byte ^ delta[i]!)],
      [4, noise(replica.pageSize, 78)],
    ]);
    const apply = replica.begin(changes, 2);
    const torn = replica.pages.slice();
    torn[1] = changes.get(2)!;
    torn[2] = changes.get(3)!;
    assert.equal(replica.checksum(torn), replica.checksum(), 'the torn file has the checksum -pos holds');
    replica.fs.mkdir('/elsewhere/dbs/app.db/ltx');
    const blind = await replica.feed({ dataDir: '/elsewhere' }).read('open', replica.policy);
    assert.ok(blind !== undefined && typeof blind !== 'symbol');
    assert.deepEqual(blind.bytes, replica.image(torn), 'a torn image passes -pos and the checksum');
    const guarded = await failure(replica.feed().read('open', replica.policy));
    assert.equal(guarded.code, 'BUSY');
    apply.finish();
    const image = await replica.feed().read('open', replica.policy);
    assert.ok(image !== undefined && typeof image !== 'symbol');
    assert.deepEqual(image.bytes, replica.image());
  });

  test('REPLICA: no -pos (not a LiteFS mount), no ltx/ under dataDir, LTX files of another database', async () => {
    const replica = new SimReplica();
    const noLtx = await failure(replica.feed({ dataDir: '/nowhere' }).read('open', replica.policy));
    assert.equal(noLtx.code, 'REPLICA');
    assert.match(noLtx.message, /\/nowhere\/dbs\/app\.db\/ltx does not exist/);
    // ltx/ of another database: its newest file has this TXID but another checksum.
    replica.fs.mkdir('/other/dbs/app.db/ltx');
    replica.fs.create(`/other/dbs/app.db/ltx/${ltxName(1n, 1n)}`);
    replica.fs.write(`/other/dbs/app.db/ltx/${ltxName(1n, 1n)}`, 0, ltxFile({ pageSize: 512, commit: 1, minTxid: 1n, maxTxid: 1n, postApplyChecksum: FLAG | 1n, pages: [[1, replica.pages[0]!]] }, crc64));
    const other = await failure(replica.feed({ dataDir: '/other' }).read('open', replica.policy));
    assert.equal(other.code, 'REPLICA');
    assert.match(other.message, /do not belong to this database/);
    replica.fs.unlink(`${MOUNT}-pos`);
    const notMounted = await failure(replica.feed().read('open', replica.policy));
    assert.equal(notMounted.code, 'REPLICA');
    assert.match(notMounted.message, /not on a LiteFS mount/);
    replica.fs.unlink(MOUNT);
    assert.equal((await failure(replica.feed().read('open', replica.policy))).code, 'NOT_FOUND');
  });
});

// ---------------------------------------------------------------------------------------------
// Through the cache, on real files
// ---------------------------------------------------------------------------------------------

/** Versions of a real SQLite database (Python's sqlite3), as bytes. */
function versions(dir: string, mode: 'delete' | 'wal', steps: readonly string[]): Uint8Array[] {
  const file = path.join(dir, `source-${mode}.db`);
  const out: Uint8Array[] = [];
  for (const step of steps) {
    sqlite(file, `db.execute('PRAGMA journal_mode=${mode}')\n${step}`);
    out.push(new Uint8Array(fs.readFileSync(file)));
  }
  return out;
}

/** A LiteFS replica on real files: `<dir>/mnt/app.db`, its `-pos`, `<dir>/data/dbs/app.db/ltx/`. */
class Replica {
  readonly db: string;
  readonly dataDir: string;
  readonly ltxDir: string;
  readonly pageSize: number;
  txid = 1n;
  bytes: Uint8Array;

  constructor(dir: string, initial: Uint8Array) {
    fs.mkdirSync(path.join(dir, 'mnt'));
    this.db = path.join(dir, 'mnt', 'app.db');
    this.dataDir = path.join(dir, 'data');
    this.ltxDir = path.join(this.dataDir, 'dbs', 'app.db', 'ltx');
    fs.mkdirSync(this.ltxDir, { recursive: true });
    this.pageSize = new DataView(initial.buffer, initial.byteOffset).getUint16(16);
    this.bytes = initial;
    fs.writeFileSync(this.db, initial);
    this.#ltx(1n, initial, this.#pages(initial).map((page, i) => [i + 1, page] as const));
    this.#pos(1n, initial);
  }

  get position(): string {
    return posText(this.txid, this.checksum(this.bytes)).trim();
  }

  checksum(bytes: Uint8Array): bigint {
    return databaseChecksum(this.#pages(bytes), this.pageSize);
  }

  /** Applies `next` as LiteFS does; with `stopAfter`, stops after that many pages (an apply in progress). */
  apply(next: Uint8Array, stopAfter = Number.POSITIVE_INFINITY): { finish(): void } {
    const txid = this.txid + 1n;
    const before = this.#pages(this.bytes);
    const changed = this.#pages(next)
      .map((page, i) => [i + 1, page] as const)
      .filter(([pgno, page]) => before[pgno - 1] === undefined || !Buffer.from(before[pgno - 1]!).equals(page));
    this.#ltx(txid, next, changed);
    const fd = fs.openSync(this.db, 'r+');
    let written = 0;
    const writePages = (upto: number): void => {
      for (; written < Math.min(upto, changed.length); written++) {
        const [pgno, page] = changed[written]!;
        fs.writeSync(fd, page, 0, page.length, (pgno - 1) * this.pageSize);
      }
    };
    writePages(stopAfter);
    const finish = (): void => {
      writePages(changed.length);
      fs.ftruncateSync(fd, next.length);
      fs.closeSync(fd);
      this.txid = txid;
      this.bytes = next;
      this.#pos(txid, next);
    };
    if (stopAfter >= changed.length) finish();
    return { finish };
  }

  #pages(bytes: Uint8Array): Uint8Array[] {
    return Array.from({ length: bytes.length / this.pageSize }, (_, i) => bytes.subarray(i * this.pageSize, (i + 1) * this.pageSize));
  }

  #pos(txid: bigint, bytes: Uint8Array): void {
    fs.writeFileSync(`${this.db}-pos`, posText(txid, this.checksum(bytes)));
  }

  #ltx(txid: bigint, after: Uint8Array, pages: readonly (readonly [number, Uint8Array])[]): void {
    const temp = path.join(this.ltxDir, `${ltxName(txid, txid)}.tmp`);
    fs.writeFileSync(temp, ltxFile({ pageSize: this.pageSize, commit: after.length / this.pageSize, minTxid: txid, maxTxid: txid, postApplyChecksum: this.checksum(after), pages }, crc64));
    fs.renameSync(temp, path.join(this.ltxDir, ltxName(txid, txid)));
  }
}

/** LiteFS's HTTP API for the tests: `/events` (held open) and `/export`; stoppable and restartable on the same port. */
class FakeLiteFs {
  port = 0;
  connections = 0;
  exports = 0;
  exportBytes: Uint8Array = new Uint8Array(0);
  readonly #streams = new Set<http.ServerResponse>();
  readonly #sockets = new Set<Socket>();
  #server: http.Server | undefined;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get open(): number {
    return this.#streams.size;
  }

  async start(): Promise<void> {
    const server = http.createServer((request, response) => {
      if (request.url === '/events') {
        this.connections++;
        response.writeHead(200, { 'content-type': 'application/x-ndjson' });
        response.write('{"type":"init","data":{"isPrimary":false,"hostname":"primary:20202"}}\n');
        this.#streams.add(response);
        response.on('close', () => this.#streams.delete(response));
      } else if (request.url?.startsWith('/export?name=app.db')) {
        this.exports++;
        response.writeHead(200, { 'content-type': 'application/octet-stream' });
        response.end(this.exportBytes);
      } else {
        response.writeHead(404).end();
      }
    });
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** A transaction event for `db`, to every open stream. */
  tx(db: string, txid: bigint): void {
    for (const stream of this.#streams) stream.write(`{"type":"tx","db":"${db}","data":{"txID":"${h16(txid)}","postApplyChecksum":"8000000000000000","pageSize":4096,"commit":2,"timestamp":"2023-09-06T19:12:34.985Z"}}\n`);
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

const STEPS = [
  "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t(v) VALUES (?)', [('x' * 300,)] * 40)",
  "db.execute(\"UPDATE t SET v = 'two' WHERE id = 1\"); db.executemany('INSERT INTO t(v) VALUES (?)', [('y' * 300,)] * 20)",
  "db.execute(\"UPDATE t SET v = 'three' WHERE id = 1\")",
  "db.execute(\"UPDATE t SET v = 'four' WHERE id = 1\")",
];

function valueOf(cache: DbCache): unknown {
  return cache.get('SELECT v FROM t WHERE id = 1')?.v;
}

describe('replica: litefs through the cache (real files)', () => {
  for (const mode of ['delete', 'wal'] as const) {
    test(`opens and follows a replica (${mode === 'wal' ? 'page 1 says WAL' : 'rollback journal'}): versions and stats() name the TXID; an apply in progress is BUSY and the last version serves`, async () => {
      const { dir, cleanup } = tempDir();
      let cache: DbCache | undefined;
      try {
        const [v1, v2, v3, v4] = versions(dir, mode, STEPS);
        const replica = new Replica(dir, v1!);
        const events: DbCacheEvent[] = [];
        cache = await openDbCache(replica.db, { watch: false, busyTimeoutMs: 100, replica: { kind: 'litefs', dataDir: replica.dataDir } });
        cache.subscribe((event) => events.push(event));
        assert.equal(cache.generation, 1);
        assert.equal(cache.version, `litefs:${h16(1n)}:${h16(replica.checksum(v1!))}`);
        assert.equal(cache.stats().replicaPosition, replica.position);
        assert.equal(cache.get('SELECT count(*) AS n FROM t')?.n, 40);

        // While an apply is in progress, -pos still names the live version: a no-op.
        const early = replica.apply(v2!, 1);
        await cache.reload();
        assert.equal(cache.generation, 1);
        early.finish();
        // Transaction 2 applied, transaction 3 announced in ltx/ and not yet written: nothing can be
        // read until it is done (its pages may be written at any moment).
        const apply = replica.apply(v3!, 0);
        await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'BUSY') && /applying transaction 0000000000000003/.test(error.message) && /still serving generation 1/.test(error.message));
        assert.equal(cache.generation, 1);
        assert.equal(cache.get('SELECT count(*) AS n FROM t')?.n, 40);
        assert.equal(events.at(-1)?.type, 'error');

        apply.finish();
        await cache.reload();
        assert.equal(cache.generation, 2);
        assert.equal(valueOf(cache), 'three');
        assert.equal(cache.get('SELECT count(*) AS n FROM t')?.n, 60);
        const reload = events.at(-1);
        assert.ok(reload?.type === 'reload');
        assert.equal(reload.version, `litefs:${h16(3n)}:${h16(replica.checksum(v3!))}`);
        assert.equal(cache.stats().replicaPosition, replica.position);

        replica.apply(v4!);
        await cache.reload();
        assert.equal(valueOf(cache), 'four');
        assert.equal(cache.stats().replicaPosition, `${h16(4n)}/${h16(replica.checksum(v4!))}`);
        // Nothing applied since: a no-op.
        await cache.reload();
        assert.equal(cache.generation, 3);
        assert.equal(cache.stats().noopReloads, 2);
      } finally {
        await cache?.close();
        cleanup();
      }
    });
  }

  test('/events: reloads on a tx event; the stream reconnects after LiteFS goes away and comes back, and the cache reloads then; close() ends it', async () => {
    const { dir, cleanup } = tempDir();
    const litefs = new FakeLiteFs();
    await litefs.start();
    let cache: DbCache | undefined;
    try {
      const [v1, v2, v3, v4] = versions(dir, 'delete', STEPS);
      const replica = new Replica(dir, v1!);
      const { lines, logger } = recordingLogger();
      // A poll far away: only the events stream can start these reloads.
      cache = await openDbCache(replica.db, { logger, poll: 600_000, replica: { kind: 'litefs', dataDir: replica.dataDir, url: litefs.url } });
      await waitFor(() => litefs.open === 1, 'the events stream to connect');

      replica.apply(v2!);
      litefs.tx('app.db', 2n);
      await waitFor(() => valueOf(cache!) === 'two', 'a reload after the tx event');
      // An event for another database does not concern this one.
      replica.apply(v3!);
      litefs.tx('other.db', 3n);
      litefs.tx('app.db', 3n);
      await waitFor(() => valueOf(cache!) === 'three', 'a reload after the second tx event');

      await litefs.stop();
      await waitFor(() => lines.warn.some((line) => line.includes('Following changes')), 'the failure to be logged once');
      // Applied while the stream is down: no event can announce it.
      replica.apply(v4!);
      const connections = litefs.connections;
      await litefs.start();
      await waitFor(() => litefs.connections > connections && litefs.open === 1, 'the stream to reconnect', 15_000);
      await waitFor(() => valueOf(cache!) === 'four', 'the reload that follows the reconnection (init)');
      await waitFor(() => lines.info.some((line) => line.includes('works again')), 'the recovery to be logged');
      assert.equal(lines.warn.filter((line) => line.includes('Following changes')).length, 1, 'warned once per failure streak');

      await cache.close();
      await waitFor(() => litefs.open === 0, 'close() to end the events stream');
    } finally {
      await cache?.close();
      await litefs.stop();
      cleanup();
    }
  });

  test('the events stream on a manual clock: reconnect delays double from 100 ms to 5 s, reset after a connection, and stop() leaves no timer', async () => {
    const litefs = new FakeLiteFs();
    await litefs.start();
    const port = litefs.port;
    await litefs.stop();
    const clock = new ManualClock();
    const errors: number[] = [];
    let changes = 0;
    let reconnected = 0;
    const stop = followEvents(new URL(`http://127.0.0.1:${port}`), 'app.db', clock, {
      onChange: () => changes++,
      onError: (_error, attempt) => errors.push(attempt),
      onReconnect: (failures) => (reconnected = failures),
    });
    try {
      const delays: number[] = [];
      for (let i = 1; i <= 8; i++) {
        await waitFor(() => errors.length === i, `failure ${i}`);
        delays.push(...clock.pending());
        clock.advanceTo(clock.nextAt()!);
      }
      assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
      await waitFor(() => errors.length === 9, 'failure 9');
      litefs.port = port;
      await litefs.start();
      clock.advanceTo(clock.nextAt()!);
      await waitFor(() => changes === 1, 'the init event of the new connection');
      assert.equal(reconnected, 9);
      assert.deepEqual(clock.pending(), [], 'no timer while connected');
      litefs.tx('app.db', 2n);
      await waitFor(() => changes === 2, 'a tx event');
      stop();
      await waitFor(() => litefs.open === 0, 'stop() to close the connection');
      assert.deepEqual(clock.pending(), [], 'no reconnect after stop()');
    } finally {
      stop();
      await litefs.stop();
    }
  });

  test('/export is the fallback when the mount stays busy: a consistent copy, labelled by its checksum', async () => {
    const { dir, cleanup } = tempDir();
    const litefs = new FakeLiteFs();
    await litefs.start();
    let cache: DbCache | undefined;
    try {
      const [v1, v2, v3] = versions(dir, 'delete', STEPS);
      const replica = new Replica(dir, v1!);
      cache = await openDbCache(replica.db, { watch: false, busyTimeoutMs: 100, replica: { kind: 'litefs', dataDir: replica.dataDir, url: litefs.url } });
      assert.equal(litefs.exports, 0);
      // Transaction 2 applied; the apply of transaction 3 on the mount never finishes, and LiteFS's
      // own export (under its locks) has its state.
      replica.apply(v2!);
      replica.apply(v3!, 1);
      litefs.exportBytes = v3!;
      await cache.reload();
      assert.equal(litefs.exports, 1);
      assert.equal(valueOf(cache), 'three');
      assert.equal(cache.version, `litefs:export:${h16(replica.checksum(v3!))}`);
      // With /export failing too, the reload is BUSY and the export's version keeps serving.
      await litefs.stop();
      await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'BUSY') && /\/export failed too/.test(error.message));
      assert.equal(valueOf(cache), 'three');
    } finally {
      await cache?.close();
      await litefs.stop();
      cleanup();
    }
  });

  test('a cache following /events never keeps the process alive', async () => {
    const { dir, cleanup } = tempDir();
    const litefs = new FakeLiteFs();
    await litefs.start();
    try {
      const [v1] = versions(dir, 'delete', STEPS);
      const replica = new Replica(dir, v1!);
      const script = fileURLToPath(new URL('./scripts/litefs-cache.ts', import.meta.url));
      const [command, args] = runtimeCommand(script);
      const child = spawn(command, [...args, replica.db, replica.dataDir, litefs.url], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      try {
        await waitFor(() => output.includes('open 1') && litefs.open === 1, () => `the child to open and connect: ${output}`, 30_000);
        child.stdin.write('go\n');
        assert.equal(await exited, 0, output);
        assert.match(output, /open 1\nreleased\n/);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await litefs.stop();
      cleanup();
    }
  });
});

describe('options.replica', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  before(() => {
    ({ dir, cleanup } = tempDir());
    file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v)')");
  });
  after(() => cleanup());

  test('bad values are TypeError or RangeError naming the option, the value and the closest kind or key', async () => {
    const cases: Array<[unknown, 'TypeError' | 'RangeError', RegExp]> = [
      ['litefss', 'TypeError', /^options\.replica must be 'sqlite', 'litestream' or \{ kind: 'litefs', dataDir \}, got 'litefss'; did you mean 'litefs'\?$/],
      ['sqlit', 'TypeError', /did you mean 'sqlite'\?$/],
      ['litefs', 'TypeError', /^options\.replica 'litefs' needs LiteFS's data directory/],
      [42, 'TypeError', /^options\.replica must be .* got number$/],
      [null, 'TypeError', /got null$/],
      [['litefs'], 'TypeError', /got an array$/],
      [{ kind: 'litestrem' }, 'TypeError', /^options\.replica\.kind must be 'sqlite', 'litestream' or 'litefs', got 'litestrem'; did you mean 'litestream'\?$/],
      [{ kind: 'sqlite', dataDir: '/x' }, 'TypeError', /^options\.replica\.dataDir is not an option of replica kind 'sqlite'/],
      [{ kind: 'litefs' }, 'TypeError', /^options\.replica\.dataDir must be LiteFS's data directory .* got undefined$/],
      [{ kind: 'litefs', dataDir: '' }, 'RangeError', /^options\.replica\.dataDir must not be empty/],
      [{ kind: 'litefs', datadir: '/var/lib/litefs' }, 'TypeError', /^options\.replica\.datadir is not an option of replica kind 'litefs'; did you mean dataDir\?$/],
      [{ kind: 'litefs', dataDir: '/d', url: 'localhost:20202' }, 'RangeError', /^options\.replica\.url must be an http: or https: URL, got 'localhost:20202'$/],
      [{ kind: 'litefs', dataDir: '/d', url: 'not a url' }, 'TypeError', /^options\.replica\.url must be an absolute http: or https: URL/],
      [{ kind: 'litefs', dataDir: '/d', url: 20202 }, 'TypeError', /^options\.replica\.url must be a string or a URL, got number$/],
      [{ kind: 'litefs', dataDir: '/d', name: 'dbs/app.db' }, 'RangeError', /^options\.replica\.name must be a database's file name/],
      [{ kind: 'litefs', dataDir: '/d', name: 7 }, 'TypeError', /^options\.replica\.name must be a string, got number$/],
    ];
    for (const [replica, name, message] of cases) {
      await assert.rejects(openDbCache(file, { watch: false, replica } as DbCacheOptions), { name, message }, JSON.stringify(replica));
    }
    await assert.rejects(openDbCache(file, { replika: 'sqlite' } as DbCacheOptions), { name: 'TypeError', message: /did you mean replica\?/ });
  });

  test("'sqlite', 'litestream' and their object forms open a plain file; each option field is read once", async () => {
    for (const replica of ['sqlite', 'litestream', { kind: 'sqlite' }, { kind: 'litestream' }] as const) {
      const cache = await openDbCache(file, { watch: false, replica });
      assert.equal(cache.generation, 1);
      assert.equal(cache.stats().replicaPosition, undefined);
      await cache.close();
    }
    const reads: Record<string, number> = {};
    const counted = new Proxy({ kind: 'litefs', dataDir: path.join(dir, 'nowhere') } as Record<string, unknown>, {
      get(target, key) {
        reads[String(key)] = (reads[String(key)] ?? 0) + 1;
        return target[key as string];
      },
    });
    await assert.rejects(openDbCache(file, { watch: false, replica: counted as never }), (error) => isDbCacheError(error, 'REPLICA'));
    assert.deepEqual(reads, { kind: 1, dataDir: 1, url: 1, name: 1 });
  });

});
