// The sql.js contract page tables rest on: `new SQL.Database(storage)` touches only `length`,
// `buffer`, `slice`, `subarray` and `set` of the object it is given (sql.js 1.16, pinned). An
// upgrade of sql.js that touches anything else, or stops adopting the object, fails here.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import { PageImage } from '../src/pages/page-image.ts';
import { PagedStorage } from '../src/pages/paged-storage.ts';
import { loadSqlJs, type SqlJsDatabase } from '../src/sqljs.ts';

interface Recorder {
  readonly storage: PagedStorage;
  /** Every property read: `name` for values, `name()` for calls. */
  readonly touched: Set<string>;
  readonly calls: Array<{ name: string; args: unknown[] }>;
}

function recorded(image: PageImage): Recorder {
  const target = new PagedStorage(image);
  const touched = new Set<string>();
  const calls: Array<{ name: string; args: unknown[] }> = [];
  const proxy: PagedStorage = new Proxy(target, {
    get(object, key) {
      const value = Reflect.get(object, key, object) as unknown;
      if (typeof value !== 'function') {
        touched.add(String(key));
        return value;
      }
      touched.add(`${String(key)}()`);
      return (...args: unknown[]) => {
        calls.push({ name: String(key), args: args.map((arg) => (typeof arg === 'number' ? arg : Object.prototype.toString.call(arg))) });
        const result = (value as (...a: unknown[]) => unknown).apply(object, args);
        return result === object ? proxy : result;
      };
    },
    has(object, key) {
      touched.add(`in ${String(key)}`);
      return Reflect.has(object, key);
    },
    set(object, key, value) {
      touched.add(`${String(key)}=`);
      return Reflect.set(object, key, value, object);
    },
  });
  return { storage: proxy, touched, calls };
}

function rows(db: SqlJsDatabase, sql: string): unknown[][] {
  const result = db.exec(sql) as Array<{ values: unknown[][] }>;
  return result[0]?.values ?? [];
}

async function sampleImage(): Promise<PageImage> {
  const sqlJs = await loadSqlJs();
  const maker = new sqlJs.Database(null);
  maker.exec('PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v)');
  maker.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT i, printf('value-%05d', i) FROM n");
  const bytes = (maker as unknown as { export(): Uint8Array }).export();
  maker.close();
  return PageImage.fromBytes(bytes.slice(), 1024);
}

test('sql.js contract: opening and querying touch only length, buffer, slice(0, length) and subarray', async () => {
  const sqlJs = await loadSqlJs();
  const image = await sampleImage();
  const { storage, touched, calls } = recorded(image);
  const db = new sqlJs.Database(storage as unknown as Uint8Array);
  try {
    assert.deepEqual(rows(db, 'SELECT count(*), sum(id) FROM t'), [[2000, 2001000]]);
    assert.deepEqual(rows(db, "SELECT id FROM t WHERE v = 'value-01234'"), [[1234]]);
    assert.deepEqual(rows(db, 'PRAGMA quick_check'), [['ok']]);
    assert.deepEqual([...touched].sort(), ['buffer', 'length', 'slice()', 'subarray()']);
    const slices = calls.filter((call) => call.name === 'slice');
    assert.deepEqual(slices, [{ name: 'slice', args: [0, image.length] }], 'slice(0, length) exactly once, at open');
    assert.equal(calls[0]?.name, 'slice');
    // Every read after the open goes through the adopted object: sql.js kept it as the file.
    assert.ok(calls.filter((call) => call.name === 'subarray').length > 0);
  } finally {
    db.close();
  }
});

test('sql.js contract: overlay writes go through set(bytes, offset) after a length check, and leave the image alone', async () => {
  const sqlJs = await loadSqlJs();
  const image = await sampleImage();
  const pristine = image.toBytes();
  const { storage, touched, calls } = recorded(image);
  const db = new sqlJs.Database(storage as unknown as Uint8Array);
  try {
    db.exec("PRAGMA locking_mode=EXCLUSIVE; UPDATE t SET v = 'changed' WHERE id = 7; INSERT INTO t(v) SELECT hex(randomblob(3000)) FROM t WHERE id <= 50");
    assert.deepEqual(rows(db, "SELECT count(*) FROM t WHERE v = 'changed'"), [[1]]);
    assert.deepEqual([...touched].sort(), ['buffer', 'length', 'set()', 'slice()', 'subarray()']);
    for (const call of calls.filter((c) => c.name === 'set')) {
      assert.equal(call.args.length, 2, 'set(bytes, offset)');
      // A view of sql.js's heap (HEAP8).
      assert.equal(call.args[0], '[object Int8Array]');
      assert.equal(typeof call.args[1], 'number');
    }
    assert.deepEqual(image.toBytes(), pristine, 'the shared pages were copied, not written');
    storage.seal();
    assert.throws(() => db.exec("UPDATE t SET v = 'again' WHERE id = 8"), /disk I\/O error/);
    assert.deepEqual(image.toBytes(), pristine);
  } finally {
    db.close();
  }
});

test('sql.js contract: VACUUM in the overlay still answers (sql.js truncates by copying the file out of the storage)', async () => {
  const sqlJs = await loadSqlJs();
  const image = await sampleImage();
  const pristine = image.toBytes();
  const { storage, touched } = recorded(image);
  const db = new sqlJs.Database(storage as unknown as Uint8Array);
  try {
    db.exec('DELETE FROM t WHERE id > 100; VACUUM');
    assert.deepEqual(rows(db, 'SELECT count(*), max(id) FROM t'), [[100, 100]]);
    assert.deepEqual(rows(db, 'PRAGMA quick_check'), [['ok']]);
    // Truncation reads the kept bytes with subarray(0, size) across pages: one copy, as documented.
    assert.deepEqual([...touched].sort(), ['buffer', 'length', 'set()', 'slice()', 'subarray()']);
    assert.deepEqual(image.toBytes(), pristine);
  } finally {
    db.close();
  }
});

test('sql.js contract: two Databases over page tables that share pages each answer from their own version', async () => {
  const sqlJs = await loadSqlJs();
  const image = await sampleImage();
  const first = new sqlJs.Database(new PagedStorage(image) as unknown as Uint8Array);
  const writer = new sqlJs.Database(image.toBytes());
  writer.exec("UPDATE t SET v = 'second' WHERE id = 1999");
  const secondBytes = (writer as unknown as { export(): Uint8Array }).export();
  writer.close();
  // Share every page equal to the first version's.
  const second = PageImage.fromBytes(secondBytes, 1024);
  const shared = second.pages.map((page, i) => (image.pages[i] !== undefined && Buffer.from(page).equals(image.pages[i]!) ? image.pages[i]! : page));
  const sharedImage = new PageImage(1024, second.length, shared);
  const sharedCount = shared.filter((page, i) => page === image.pages[i]).length;
  assert.ok(sharedCount >= shared.length - 3, `${sharedCount} of ${shared.length} pages shared`);
  const db2 = new sqlJs.Database(new PagedStorage(sharedImage) as unknown as Uint8Array);
  try {
    assert.deepEqual(rows(first, 'SELECT v FROM t WHERE id = 1999'), [['value-01999']]);
    assert.deepEqual(rows(db2, 'SELECT v FROM t WHERE id = 1999'), [['second']]);
    assert.deepEqual(rows(db2, 'PRAGMA quick_check'), [['ok']]);
    assert.deepEqual(rows(first, 'PRAGMA quick_check'), [['ok']]);
  } finally {
    first.close();
    db2.close();
  }
});
