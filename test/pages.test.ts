// The page-table storage: versions as tables of immutable, shared pages (src/pages/).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PageImage, zeroPage } from '../src/pages/page-image.ts';
import { PageImageBuilder, PageStore } from '../src/pages/page-store.ts';
import { PagedStorage } from '../src/pages/paged-storage.ts';

const PS = 512;

/** `pages` pages of PS bytes, page i filled with (i * 7 + salt) & 255, plus `tail` extra bytes. */
function bytesOf(pages: number, salt = 0, tail = 0): Uint8Array {
  const bytes = new Uint8Array(pages * PS + tail);
  for (let i = 0; i * PS < bytes.length; i++) bytes.fill((i * 7 + salt) & 255, i * PS, Math.min((i + 1) * PS, bytes.length));
  return bytes;
}

test('PageImage: reads within a page are views, across pages copies, and equal the flat bytes', () => {
  const flat = bytesOf(5, 1, 100);
  const image = PageImage.fromBytes(flat, PS);
  assert.equal(image.pages.length, 6);
  assert.equal(image.pages[5]!.length, 100);
  const inside = image.subarray(PS + 10, PS + 20);
  assert.equal(inside.buffer, flat.buffer, 'a read within one page is a view');
  const across = image.subarray(PS - 10, 3 * PS + 5);
  assert.notEqual(across.buffer, flat.buffer, 'a read across pages is a copy');
  assert.deepEqual(across, flat.subarray(PS - 10, 3 * PS + 5));
  assert.deepEqual(image.toBytes(), flat);
  assert.deepEqual(image.subarray(5 * PS + 90, 10 * PS), flat.subarray(5 * PS + 90), 'clamped to the file');
});

test('PageImage.with: a new version shares every page it does not replace, and the old one is unchanged', () => {
  const old = PageImage.fromBytes(bytesOf(4, 0), PS);
  const before = old.toBytes();
  const changed = new Uint8Array(PS).fill(0xee);
  const next = old.with(new Map([[2, changed]]), 6 * PS);
  assert.deepEqual(old.toBytes(), before);
  assert.equal(next.pages[0], old.pages[0]);
  assert.equal(next.pages[2], changed);
  assert.equal(next.page(5), zeroPage(PS), 'pages added and not written are zero');
  assert.equal(next.pages.length, 4, 'they need no table entry past the last page held');
  const far = old.with(new Map([[6, changed]]), 8 * PS);
  assert.deepEqual([far.pages.length, far.pages[5], far.page(7)], [7, zeroPage(PS), zeroPage(PS)], 'a zero page before a page held takes an entry');
  const expected = new Uint8Array(6 * PS);
  expected.set(before);
  expected.set(changed, 2 * PS);
  assert.deepEqual(next.toBytes(), expected);
  const cut = next.with(new Map(), 2 * PS + 7);
  assert.deepEqual(cut.toBytes(), expected.subarray(0, 2 * PS + 7));
  assert.ok(next.equals(PageImage.fromBytes(expected, PS)));
  assert.ok(!next.equals(old));
});

test('PageImage.with: growing past a short last page pads it with zeros', () => {
  const old = PageImage.fromBytes(bytesOf(1, 3, 10), PS);
  const next = old.with(new Map(), 3 * PS);
  const expected = new Uint8Array(3 * PS);
  expected.set(old.toBytes());
  assert.deepEqual(next.toBytes(), expected);
});

test('PagedStorage: copy-on-write before the seal, EIO after, and the image never changes', () => {
  const flat = bytesOf(3, 5);
  const image = PageImage.fromBytes(flat, PS);
  const copy = flat.slice();
  const storage = new PagedStorage(image);
  assert.equal(storage.length, 3 * PS, 'the true length while sql.js copies the image in');
  assert.equal(storage.slice(0, 3 * PS), storage);
  assert.equal(storage.length, Number.MAX_SAFE_INTEGER, 'larger than any write afterwards');
  storage.set(new Uint8Array([1, 2, 3, 4]), PS - 2);
  assert.deepEqual(flat, copy, 'the shared pages were not written');
  assert.deepEqual([...storage.subarray(PS - 2, PS + 2)], [1, 2, 3, 4]);
  assert.equal(storage.pages[2], image.pages[2], 'an untouched page stays shared');
  storage.set(new Uint8Array(PS).fill(9), 4 * PS);
  assert.deepEqual(storage.subarray(3 * PS, 4 * PS), new Uint8Array(PS), 'a write past the end leaves zeros in between');
  assert.deepEqual(storage.subarray(4 * PS, 5 * PS), new Uint8Array(PS).fill(9));
  storage.seal();
  assert.throws(
    () => storage.set(new Uint8Array([1]), 0),
    (error: Error) => error.name === 'ErrnoError' && (error as unknown as Record<string, unknown>).errno === 29,
  );
  assert.deepEqual(flat, copy);
});

test('PageImageBuilder: streamed chunks share the pages equal to the live version and keep the others', () => {
  const store = new PageStore({ slabBytes: 4 * PS });
  const liveBytes = bytesOf(16, 0);
  const live = PageImage.fromBytes(liveBytes, PS);
  const nextBytes = liveBytes.slice();
  nextBytes.fill(0xab, 5 * PS, 6 * PS);
  nextBytes.fill(0xcd, 12 * PS, 16 * PS);
  const builder = new PageImageBuilder(store, PS, live);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < nextBytes.length; at += 4 * PS) {
    const chunk = builder.chunk((size) => new Uint8Array(size));
    chunks.push(chunk);
    chunk.set(nextBytes.subarray(at, at + 4 * PS));
    builder.push(chunk, true);
  }
  const next = builder.finish();
  assert.deepEqual(next.toBytes(), nextBytes);
  assert.equal(builder.shared, 11);
  for (const i of [0, 1, 4, 6, 11]) assert.equal(next.pages[i], live.pages[i], `page ${i} shared`);
  assert.equal(next.pages[12]!.buffer, chunks[3]!.buffer, 'a chunk of new pages becomes a slab as it is');
  assert.notEqual(next.pages[5]!.buffer, chunks[1]!.buffer, 'a lone new page is copied out of a mostly shared chunk');
  // The mostly shared chunks were reused for the next read instead of allocating.
  assert.equal(chunks[1]!.buffer, chunks[0]!.buffer);
});

/** A store of 8-page slabs holding 32 pages (page i filled with i + 1), tracked by one full table. */
function storeOf32Pages(): { store: PageStore; pages: Uint8Array[]; table: PageImage } {
  const store = new PageStore({ slabBytes: 8 * PS });
  const pages: Uint8Array[] = [];
  for (let i = 0; i < 32; i++) pages.push(store.copyPage(new Uint8Array(PS).fill(i + 1), PS));
  const table = new PageImage(PS, 32 * PS, pages.slice());
  store.track(table);
  return { store, pages, table };
}

test('PageStore: compaction moves the few live pages out of sparse slabs and keeps every table equal', () => {
  const { store, pages, table } = storeOf32Pages();
  const before = table.toBytes();
  // A second table keeps every page; then goes, leaving only page 3 and 20 of the others alive.
  const kept = new PageImage(PS, 2 * PS, [pages[3]!, pages[20]!]);
  store.track(kept);
  store.untrack(table);
  // The two slabs with a kept page, and the current one; the third full slab no table uses any more.
  assert.equal(store.stats().slabs, 3);
  const compacted = store.compact();
  assert.equal(compacted, 2, 'the two sparse full slabs (the third one is not tracked, the fourth is current)');
  assert.deepEqual(kept.toBytes(), concat(before.subarray(3 * PS, 4 * PS), before.subarray(20 * PS, 21 * PS)));
  assert.notEqual(kept.pages[0]!.buffer, pages[3]!.buffer);
  assert.ok(store.stats().slabs <= 2, `slabs left: ${store.stats().slabs}`);
});

test('PagedStorage: where a page lies is learnt at its first read, and forgotten when an overlay writes it or compaction moves it', () => {
  // Only pages 3 and 20 stay: their slabs are sparse once the full table goes.
  const { store, pages, table: full } = storeOf32Pages();
  // As in a cache: the live image and its version's storage are both tracked and share one array.
  const image = new PageImage(PS, 2 * PS, [pages[3]!, pages[20]!]);
  store.track(image);
  const storage = new PagedStorage(image, store);
  storage.slice(0, 2 * PS);
  const read = (page: number): Uint8Array => storage.subarray(page * PS, (page + 1) * PS);
  assert.equal(read(0)[0], 4);
  assert.equal(read(1)[0], 21);
  assert.equal(read(0).buffer, pages[3]!.buffer, 'a read is a view of the page\'s slab');
  store.untrack(full);
  assert.ok(store.compact() > 0);
  assert.notEqual(storage.pages[0]!.buffer, pages[3]!.buffer, 'compaction moved the page');
  assert.equal(read(0).buffer, storage.pages[0]!.buffer, 'reads follow the page to its new slab');
  assert.deepEqual([read(0)[0], read(1)[0]], [4, 21]);
  storage.set(new Uint8Array(PS).fill(0x77), PS);
  assert.equal(read(1)[0], 0x77, 'an overlay write is read back');
  assert.equal(pages[20]![0], 21, 'the shared page is unchanged');
  assert.deepEqual(storage.subarray(PS - 2, PS + 2), new Uint8Array([4, 4, 0x77, 0x77]), 'across pages');
  storage.release();
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

test('churn: thousands of versions with scattered changes, leases released out of order, keep slab memory bounded', () => {
  const pageCount = 512;
  const store = new PageStore({ slabBytes: 32 * PS });
  let seed = 12345;
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  // The first version: read whole into adopted slabs, as a full read does.
  const first = new PageImageBuilder(store, PS);
  for (let at = 0; at < pageCount * PS; at += store.slabBytes) {
    const chunk = first.chunk((size) => new Uint8Array(size));
    for (let i = 0; i < chunk.length; i += PS) chunk.fill(((at + i) / PS) & 255, i, i + PS);
    first.push(chunk, true);
  }
  let live = first.finish();
  store.track(live);
  /** Versions still leased, each with a fingerprint of what it must keep reading. */
  const held: Array<{ image: PageImage; sum: number }> = [];
  const sumOf = (image: PageImage): number => image.pages.reduce((sum, page, index) => (sum + page[0]! * (index + 1) + page[PS - 1]!) % 1_000_000_007, 0);
  let peak = 0;
  for (let version = 1; version <= 3000; version++) {
    const changes = new Map<number, Uint8Array>();
    for (let n = random(6) + 1; n > 0; n--) changes.set(random(pageCount), store.copyPage(new Uint8Array(PS).fill(version & 255), PS));
    const next = live.with(changes);
    store.track(next);
    if (random(10) === 0) held.push({ image: live, sum: sumOf(live) });
    else store.untrack(live);
    // Release leases in random order.
    while (held.length > 8 || (held.length > 0 && random(2) === 0)) {
      const [lease] = held.splice(random(held.length), 1);
      assert.equal(sumOf(lease!.image), lease!.sum, `a leased version changed (version ${version})`);
      store.untrack(lease!.image);
    }
    live = next;
    store.collect();
    peak = Math.max(peak, store.stats().slabBytes);
    if (version % 500 === 0) {
      // Right after a scan, every slab but the current ones is at least half alive.
      store.compact();
      const { slabBytes, usedBytes } = store.stats();
      assert.ok(slabBytes <= 2 * usedBytes + 2 * store.slabBytes, `version ${version}: ${slabBytes} bytes of slabs hold ${usedBytes} bytes of live pages`);
    }
  }
  for (const lease of held) assert.equal(sumOf(lease.image), lease.sum);
  const size = pageCount * PS;
  const stats = store.stats();
  // One database, plus up to 8 leased versions' few changed pages, plus sparse slabs awaiting the next scan.
  assert.ok(peak <= 2.5 * size, `slab memory peaked at ${(peak / size).toFixed(2)}x the database (${stats.compacted} slabs compacted)`);
  assert.ok(stats.compacted > 0);
  assert.ok(stats.slabBytes <= 2.5 * size, `${stats.slabBytes} bytes of slabs for a ${size}-byte database`);
});

test('foldWalPages equals foldWal on flat bytes: random databases, WALs that grow, shrink and cross a short last page', async () => {
  const { foldWal, foldWalPages, scanWal } = await import('../src/image/wal.ts');
  const { WalBuilder } = await import('./support/wal-bytes.ts');
  let seed = 7;
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const dbPages = random(12);
    const db = bytesOf(dbPages, round, random(3) === 0 ? random(PS) : 0);
    const wal = new WalBuilder({ pageSize: PS });
    let size = Math.max(1, dbPages);
    for (let commit = random(4); commit > 0; commit--) {
      size = Math.max(1, size + random(7) - 3);
      const touched = random(4) + 1;
      for (let i = 0; i < touched; i++) {
        const pageNumber = random(size + 2) + 1;
        wal.frame(pageNumber, i === touched - 1 ? size : 0, new Uint8Array(PS).fill((round * 31 + commit * 7 + i) & 255));
      }
    }
    const walBytes = wal.build();
    const scan = scanWal(walBytes)!;
    const store = new PageStore({ slabBytes: 4 * PS });
    const live = random(2) === 0 ? undefined : PageImage.fromBytes(foldWal(db.slice(), walBytes, scan), PS);
    const paged = foldWalPages(PageImage.fromBytes(db.slice(), PS), walBytes, scan, store, live);
    assert.deepEqual(paged.toBytes(), foldWal(db.slice(), walBytes, scan), `round ${round}: ${dbPages} pages, ${scan.committedFrames} frames to ${scan.dbPages} pages`);
    if (live !== undefined && scan.committedFrames > 0) {
      for (const [pageNumber] of scan.pages) {
        if (pageNumber <= scan.dbPages) assert.equal(paged.pages[pageNumber - 1], live.pages[pageNumber - 1], `round ${round}: WAL page ${pageNumber} equal to the live one is shared`);
      }
    }
  }
});

test('PageImageBuilder: zero pages at the end of a file (a sparse file) take no table entries; zero pages between others do', () => {
  const store = new PageStore({ slabBytes: 4 * PS });
  const builder = new PageImageBuilder(store, PS);
  const data = bytesOf(3, 1);
  const zeros = new Uint8Array(4 * PS);
  builder.push(data.subarray(0, 2 * PS), false);
  builder.push(zeros, false);
  builder.push(data.subarray(2 * PS), false);
  for (let i = 0; i < 1000; i++) builder.push(zeros, false);
  const image = builder.finish();
  assert.equal(image.length, 4007 * PS);
  assert.equal(image.pages.length, 7, 'two pages, four zero pages, one page; then nothing for 4000 zero pages');
  assert.equal(image.pages[3], zeroPage(PS));
  const expected = new Uint8Array(4007 * PS);
  expected.set(data.subarray(0, 2 * PS));
  expected.set(data.subarray(2 * PS), 6 * PS);
  assert.deepEqual(image.toBytes(), expected);
  assert.ok(image.equals(PageImage.fromBytes(expected, PS)), 'equal to the same bytes with every page in its table');
  assert.ok(PageImage.fromBytes(expected, PS).equals(image));
});

test('PagedStorage over an image whose table ends long before the file: reads past it are zeros, an overlay write there copies only the page it writes', () => {
  const pages = 2 ** 31 - 1;
  const image = PageImage.fromBytes(bytesOf(2, 3), PS).with(new Map(), pages * PS);
  assert.equal(image.pages.length, 2);
  const storage = new PagedStorage(image);
  assert.equal(storage.length, pages * PS);
  storage.slice(0, pages * PS);
  assert.deepEqual(storage.subarray((pages - 1) * PS, pages * PS), new Uint8Array(PS));
  assert.deepEqual(storage.subarray(PS - 4, PS + 4), bytesOf(2, 3).subarray(PS - 4, PS + 4));
  // sql.js appends past the end of the file, as an overlay that inserts would.
  storage.set(new Uint8Array(PS).fill(7), pages * PS);
  assert.deepEqual(storage.subarray(pages * PS, (pages + 1) * PS), new Uint8Array(PS).fill(7));
  assert.deepEqual(storage.subarray((pages - 1) * PS, pages * PS), new Uint8Array(PS), 'the pages in between still read as zeros');
  assert.equal(storage.pages.length, 2, 'the shared table did not grow');
  storage.set(new Uint8Array([9]), 5 * PS + 1);
  assert.deepEqual([...storage.subarray(5 * PS, 5 * PS + 3)], [0, 9, 0]);
  storage.release();
});

test('PageStore: a released table that held pages the live table does not leaves its sparse slabs to the next collect(), with nothing new allocated', () => {
  const { store, pages, table: old } = storeOf32Pages();
  // The live version keeps pages 3 and 20 of the old one and has new copies of all the others.
  const fresh = pages.map((page, i) => (i === 3 || i === 20 ? page : store.copyPage(page, PS)));
  const live = new PageImage(PS, 32 * PS, fresh);
  store.track(live);
  store.setLive(live);
  store.compact();
  const before = store.stats();
  assert.equal(before.compacted, 0, 'the old version still holds every old slab');
  store.untrack(old);
  assert.ok(store.stats().slabBytes < before.slabBytes, 'the slabs no table uses are not counted once it goes');
  // Nothing is published, so nothing is allocated: the release alone makes collect() compact.
  store.collect();
  assert.equal(store.stats().compacted, 2, 'the two old slabs that each keep one live page');
  assert.notEqual(live.pages[3]!.buffer, pages[3]!.buffer);
  assert.deepEqual(live.pages[20], pages[20]);
  assert.ok(store.stats().slabBytes <= 32 * PS + 2 * store.slabBytes, `${store.stats().slabBytes} bytes of slabs for 32 live pages`);
});
