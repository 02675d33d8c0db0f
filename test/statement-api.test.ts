// Every row of the README's parity table, and the result memo.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDbCache, type DbCache, type SqlValue } from '../src/index.ts';
import { loadBetterSqlite3 } from './support/better-sqlite3.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

declare const Bun: unknown;

const SETUP = `
db.executescript('''
  CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, big INTEGER, data BLOB);
  INSERT INTO items VALUES (1, 'apple', 1.5, 9007199254740993, x'0102');
  INSERT INTO items VALUES (2, 'pear', 2.25, -5, NULL);
  INSERT INTO items VALUES (3, 'plum', 0.75, 3, x'');
''')`;

/** The same read-only operations on better-sqlite3 (Node) or bun:sqlite (Bun), when it loads. */
interface Peer {
  name: string;
  get(sql: string, params: unknown[]): unknown;
  all(sql: string, params: unknown[]): unknown[];
  values(sql: string, params: unknown[]): unknown[][];
  named(sql: string, params: Record<string, unknown>): unknown;
  close(): void;
}

async function openPeer(file: string): Promise<Peer | undefined> {
  if (typeof Bun !== 'undefined') {
    const { Database } = (await import('bun:sqlite' as string)) as {
      Database: new (file: string, options: object) => {
        query(sql: string): { get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[]; values(...p: unknown[]): unknown[][] };
        close(): void;
      };
    };
    const db = new Database(file, { readonly: true, strict: true });
    return {
      name: 'bun:sqlite',
      get: (sql, params) => db.query(sql).get(...params) ?? undefined,
      all: (sql, params) => db.query(sql).all(...params),
      values: (sql, params) => db.query(sql).values(...params),
      named: (sql, params) => db.query(sql).get(params) ?? undefined,
      close: () => db.close(),
    };
  }
  if (BetterSqlite3 === undefined || typeof BetterSqlite3 === 'string') return undefined;
  const db = new BetterSqlite3(file, { readonly: true });
  return {
    name: 'better-sqlite3',
    get: (sql, params) => db.prepare(sql).get(...params),
    all: (sql, params) => db.prepare(sql).all(...params),
    values: (sql, params) => db.prepare(sql).raw().all(...params) as unknown[][],
    named: (sql, params) => db.prepare(sql).get(params),
    close: () => db.close(),
  };
}

const BetterSqlite3 = typeof Bun === 'undefined' ? loadBetterSqlite3() : undefined;
/** Why the comparisons with a peer cannot run in this runtime, or false. */
const noPeer = typeof BetterSqlite3 === 'string' ? BetterSqlite3 : false;

/** Blobs compare by content whatever their class (Buffer in better-sqlite3). */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

describe('statement API parity', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  let peer: Peer | undefined;

  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
    peer = await openPeer(file);
  });
  after(async () => {
    peer?.close();
    await cache.close();
    cleanup();
  });

  let compared = 0;
  const same = (ours: unknown, theirs: () => unknown) => {
    if (peer === undefined) return; // reported by the test at the end of this block
    compared++;
    assert.deepEqual(plain(ours), plain(theirs()), `differs from ${peer.name}`);
  };

  test('get: the first row as an object, undefined when none', () => {
    const sql = 'SELECT id, name, price FROM items WHERE id = ?';
    assert.deepEqual(cache.prepare(sql).get([1]), { id: 1, name: 'apple', price: 1.5 });
    assert.equal(cache.prepare(sql).get([9]), undefined);
    same(cache.get(sql, [2]), () => peer!.get(sql, [2]));
    same(cache.get(sql, [9]), () => peer!.get(sql, [9]));
  });

  test('all and iterate', () => {
    const sql = 'SELECT id, name FROM items WHERE price > ? ORDER BY id';
    const statement = cache.prepare(sql);
    assert.deepEqual([...statement.iterate([1])], statement.all([1]));
    same(statement.all([1]), () => peer!.all(sql, [1]));
  });

  test('raw() and values(): rows as arrays', () => {
    const sql = 'SELECT id, name, data FROM items ORDER BY id';
    const statement = cache.prepare(sql);
    assert.deepEqual(statement.raw().all(), statement.values());
    assert.deepEqual(statement.get(), [1, 'apple', new Uint8Array([1, 2])]);
    assert.deepEqual(statement.raw(false).get(), { id: 1, name: 'apple', data: new Uint8Array([1, 2]) });
    same(cache.values(sql), () => peer!.values(sql, []));
  });

  test('pluck(): the first column only', () => {
    const statement = cache.prepare('SELECT name, id FROM items ORDER BY id').pluck();
    assert.deepEqual(statement.all(), ['apple', 'pear', 'plum']);
    assert.equal(statement.get(), 'apple');
    assert.deepEqual([...statement.iterate()], ['apple', 'pear', 'plum']);
    assert.deepEqual(statement.pluck(false).get(), { name: 'apple', id: 1 });
  });

  test('columns(): result column names', () => {
    assert.deepEqual(cache.prepare('SELECT id AS key, name, price * 2 FROM items').columns(), ['key', 'name', 'price * 2']);
  });

  test('named parameters :x, @x, $x from a prefix-less object', () => {
    for (const prefix of [':', '@', '$']) {
      const sql = `SELECT name FROM items WHERE id = ${prefix}id`;
      assert.deepEqual(cache.get(sql, { id: 3 }), { name: 'plum' });
      same(cache.get(sql, { id: 3 }), () => peer!.named(sql, { id: 3 }));
    }
  });

  test('bigint mode returns exact 64-bit integers; bigint parameters bind', async () => {
    const exact = await openDbCache(file, { watch: false, bigint: true });
    try {
      assert.deepEqual(exact.get('SELECT id, big FROM items WHERE id = 1'), { id: 1n, big: 9007199254740993n });
      assert.deepEqual(exact.get('SELECT name FROM items WHERE big = ?', [-5n]), { name: 'pear' });
    } finally {
      await exact.close();
    }
    // Beyond 2^53 a bigint binds as its decimal text, which an INTEGER column matches exactly.
    const exactAgain = await openDbCache(file, { watch: false, bigint: true });
    try {
      assert.deepEqual(exactAgain.get('SELECT id FROM items WHERE big = ?', [9007199254740993n]), { id: 1n });
      assert.equal(exactAgain.get('SELECT id FROM items WHERE big = ?', [9007199254740992n]), undefined);
    } finally {
      await exactAgain.close();
    }
  });

  test('blobs are Uint8Array, in and out; empty blobs and NULL stay distinct', () => {
    const rows = cache.all<{ id: number; data: Uint8Array | null }>('SELECT id, data FROM items ORDER BY id');
    assert.ok(rows[0]!.data instanceof Uint8Array);
    assert.equal(rows[1]!.data, null);
    assert.deepEqual(rows[2]!.data, new Uint8Array());
    assert.deepEqual(cache.get('SELECT id FROM items WHERE data = ?', [new Uint8Array([1, 2])]), { id: 1 });
  });

  test('writes fail: the mirror is read-only', () => {
    assert.throws(() => cache.prepare('UPDATE items SET name = ?').all(['x']), { name: 'TypeError' });
    assert.throws(() => cache.prepare('UPDATE items SET name = ?').run(['x']), { code: 'READ_ONLY' });
  });

  test('the comparisons above ran against better-sqlite3 or bun:sqlite', { skip: noPeer }, () => {
    assert.ok(peer !== undefined && compared >= 5, `${compared} comparisons ran`);
  });
});

describe("better-sqlite3's statement semantics (in every runtime)", () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('binding forms: spread, one scalar, arrays, one object, named plus positional; undefined as NULL', () => {
    const pair = cache.prepare('SELECT ? AS a, ? AS b');
    assert.deepEqual(pair.get(1, 'x'), { a: 1, b: 'x' });
    assert.deepEqual(pair.get([1, 'x']), { a: 1, b: 'x' });
    assert.deepEqual(pair.get([1], 'x'), { a: 1, b: 'x' });
    assert.deepEqual(pair.get(undefined, null), { a: null, b: null });
    assert.deepEqual(cache.prepare('SELECT name FROM items WHERE id = ?').get(2), { name: 'pear' });
    assert.deepEqual(cache.prepare('SELECT :a AS a, ? AS b').get({ a: 1 }, 7), { a: 1, b: 7 });
    assert.deepEqual(cache.prepare('SELECT @a AS a, $a AS b').get({ a: 'n' }), { a: 'n', b: 'n' });
  });

  test('wrong counts and types throw RangeError / TypeError, never bind NULL silently', () => {
    const pair = cache.prepare('SELECT ? AS a, ? AS b');
    assert.throws(() => pair.get(1), { name: 'RangeError', message: 'Too few parameter values were provided' });
    assert.throws(() => cache.get('SELECT ? AS a, ? AS b', [1]), { name: 'RangeError' });
    assert.throws(() => pair.get(1, 2, 3), { name: 'RangeError', message: 'Too many parameter values were provided' });
    assert.throws(() => pair.get({ a: 1 }), { name: 'RangeError' });
    assert.throws(() => cache.prepare('SELECT :a AS a').get(), { name: 'TypeError' });
    assert.throws(() => cache.prepare('SELECT :a AS a').get({ b: 1 }), { name: 'RangeError' });
    assert.throws(() => cache.prepare('SELECT :a AS a, :b AS b').get({ a: 1, b: 1 }, { b: 2 }), { name: 'TypeError' });
    assert.throws(() => pair.get(1, new Date() as never), { name: 'TypeError' });
    assert.throws(() => pair.get(1, 2n ** 64n), { name: 'RangeError' });
  });

  test('one statement per string; non-readers throw TypeError in get/all/iterate, at the call', () => {
    assert.throws(() => cache.prepare('SELECT 1; DELETE FROM items'), { name: 'RangeError' });
    assert.throws(() => cache.get('SELECT 1; SELECT 2'), { name: 'RangeError' });
    assert.throws(() => cache.prepare(''), { name: 'RangeError' });
    assert.deepEqual(cache.prepare('SELECT 1 AS one;; -- end').get(), { one: 1 });
    const begin = cache.prepare('BEGIN');
    assert.equal(begin.reader, false);
    assert.throws(() => begin.get(), { name: 'TypeError' });
    assert.throws(() => begin.iterate(), { name: 'TypeError' });
    assert.throws(() => begin.raw(), { name: 'TypeError' });
    assert.throws(() => cache.prepare('SELECT * FROM nowhere'), { code: 'QUERY' });
    // iterate() reports bad values and counts when called, not at the first next().
    assert.throws(() => cache.prepare('SELECT ? AS a').iterate(), { name: 'RangeError' });
    assert.throws(() => cache.iterate('SELECT * FROM nowhere'), { code: 'QUERY' });
    assert.deepEqual(cache.prepare('SELECT 1').run(), { changes: 0, lastInsertRowid: 0 });
  });

  test('raw, pluck and safeIntegers stick until switched off; raw and pluck exclude each other', () => {
    const statement = cache.prepare('SELECT id, big FROM items WHERE id = ?');
    const raw = statement.raw();
    const values: SqlValue[] | undefined = raw.get(1);
    assert.deepEqual(values, [1, 9007199254740992]);
    assert.deepEqual(raw.get(1), [1, 9007199254740992]);
    const plucked: SqlValue | undefined = statement.pluck().get(1);
    assert.equal(plucked, 1);
    assert.deepEqual(statement.raw(false).get(1), 1, 'raw(false) leaves pluck on');
    assert.deepEqual(statement.pluck(false).get(1), { id: 1, big: 9007199254740992 });
    assert.deepEqual(statement.safeIntegers().get(1), { id: 1n, big: 9007199254740993n });
    assert.deepEqual(statement.get(1), { id: 1n, big: 9007199254740993n });
    assert.deepEqual(statement.safeIntegers(false).get(1), { id: 1, big: 9007199254740992 });
    assert.equal(statement.source, 'SELECT id, big FROM items WHERE id = ?');
    assert.equal(statement.readonly, true);
  });

  test('bind() fixes the parameters once', () => {
    const blob = new Uint8Array([1, 2]);
    const statement = cache.prepare('SELECT id FROM items WHERE data = ?').pluck().bind(blob);
    blob.fill(9);
    assert.equal(statement.get(), 1);
    assert.throws(() => statement.get(blob), { name: 'TypeError' });
    assert.throws(() => statement.bind(blob), { name: 'TypeError' });
    assert.throws(() => cache.prepare('SELECT ? AS a').bind(), { name: 'RangeError' });
  });

  test('numbers bind as REAL across the whole range; bigints exactly', () => {
    assert.deepEqual(cache.get('SELECT typeof(?) AS t, ? / 2 AS h', [5, 5]), { t: 'real', h: 2.5 });
    assert.deepEqual(cache.get('SELECT typeof(?) AS t, ? / 2 AS h', [2147483649, 2147483649]), { t: 'real', h: 1073741824.5 });
    assert.deepEqual(cache.prepare('SELECT typeof(?) AS t, ? / 2 AS h').get(5n, 5n), { t: 'integer', h: 2 });
    assert.deepEqual(cache.get('SELECT name FROM items WHERE id = ?', [2]), { name: 'pear' });
    assert.deepEqual(cache.get('SELECT id FROM items WHERE big = ?', [9007199254740993n]), { id: 1 });
  });
});

describe('result memo', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  before(() => sqlite(file, SETUP));
  after(cleanup);

  test('identical queries on one snapshot return the same frozen result', async () => {
    const cache = await openDbCache(file, { watch: false, memo: true });
    try {
      const first = cache.get<{ name: string }>('SELECT name FROM items WHERE id = ?', [1]);
      const again = cache.get<{ name: string }>('SELECT name FROM items WHERE id = ?', [1]);
      assert.equal(first, again);
      assert.ok(Object.isFrozen(first));
      assert.throws(() => {
        (first as { name: string }).name = 'changed';
      }, TypeError);
      const all = cache.all('SELECT id FROM items ORDER BY id');
      assert.equal(cache.all('SELECT id FROM items ORDER BY id'), all);
      assert.ok(Object.isFrozen(all) && Object.isFrozen(all[0]));
      // Different parameters, shapes and misses are separate entries.
      assert.deepEqual(cache.get('SELECT name FROM items WHERE id = ?', [2]), { name: 'pear' });
      assert.equal(cache.get('SELECT name FROM items WHERE id = ?', [99]), undefined);
      assert.equal(cache.prepare('SELECT name FROM items WHERE id = ?').pluck().get([1]), 'apple');
      // A blob value on its own is remembered as it is (typed arrays cannot be frozen).
      const blob = cache.prepare('SELECT data FROM items WHERE id = ?').pluck();
      assert.deepEqual(blob.get([1]), new Uint8Array([1, 2]));
      assert.equal(blob.get([1]), blob.get([1]));
      assert.ok(Object.isFrozen(cache.prepare('SELECT id, name FROM items WHERE id = ?').raw().get([1])));
      // A positional value for a named parameter is refused (as in better-sqlite3), never remembered.
      assert.throws(() => cache.get('SELECT :id AS v', ['{"id":1}']), { name: 'RangeError' });
      assert.deepEqual(cache.get('SELECT :id AS v', { id: 1 }), { v: 1 });
      // A new version starts with an empty memo.
      sqlite(file, "db.execute(\"UPDATE items SET name = 'APPLE' WHERE id = 1\")");
      await cache.reload();
      assert.deepEqual(cache.get('SELECT name FROM items WHERE id = ?', [1]), { name: 'APPLE' });
    } finally {
      await cache.close();
    }
  });

  test('non-deterministic SQL is never memoised; without the option nothing is frozen', async () => {
    const cache = await openDbCache(file, { watch: false, memo: 4 });
    try {
      for (const sql of ['SELECT random() AS v', "SELECT datetime('now') AS v, 1 AS x", 'SELECT CURRENT_TIMESTAMP AS v', 'SELECT randomblob(4) AS v']) {
        assert.notEqual(cache.get(sql), cache.get(sql), sql);
      }
      // Parameters that JSON would confuse get separate entries; the clock through a parameter is never remembered.
      assert.deepEqual(cache.get('SELECT ? AS a, ? AS b', [null, 1]), { a: null, b: 1 });
      assert.deepEqual(cache.get('SELECT ? AS a, ? AS b', [Infinity, 1]), { a: Infinity, b: 1 });
      assert.deepEqual(cache.get('SELECT ? AS a, ? AS b', ['1', 1]), { a: '1', b: 1 });
      assert.deepEqual(cache.get('SELECT ? AS a, ? AS b', [1, 1]), { a: 1, b: 1 });
      assert.notEqual(cache.get("SELECT datetime(?, 'subsec') AS v", ['now']), cache.get("SELECT datetime(?, 'subsec') AS v", ['now']));
      // Past the limit, the oldest entries are dropped and recomputed (a new object); the newest stay.
      const oldest = cache.get('SELECT ? AS id', [1]);
      assert.equal(cache.get('SELECT ? AS id', [1]), oldest);
      for (let id = 2; id <= 6; id++) cache.get('SELECT ? AS id', [id]);
      const newest = cache.get('SELECT ? AS id', [6]);
      const recomputed = cache.get('SELECT ? AS id', [1]);
      assert.deepEqual(recomputed, { id: 1 });
      assert.notEqual(recomputed, oldest);
      assert.equal(cache.get('SELECT ? AS id', [6]), newest);
    } finally {
      await cache.close();
    }
    const plainCache = await openDbCache(file, { watch: false });
    try {
      const row = plainCache.get('SELECT name FROM items WHERE id = 1');
      assert.ok(!Object.isFrozen(row));
      assert.notEqual(plainCache.get('SELECT name FROM items WHERE id = 1'), row);
    } finally {
      await plainCache.close();
    }
    await assert.rejects(openDbCache(file, { memo: 'yes' as never }), { name: 'TypeError', message: /options\.memo/ });
  });

  test('cacheSize sets the page cache of every version (16000 KiB, better-sqlite3\'s, by default)', async () => {
    const cache = await openDbCache(file, { watch: false, cacheSize: 65536 });
    try {
      assert.deepEqual(cache.get('PRAGMA cache_size'), { cache_size: -65536 });
      sqlite(file, "db.execute(\"UPDATE items SET name = 'PLUM' WHERE id = 3\")");
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.deepEqual(cache.get('PRAGMA cache_size'), { cache_size: -65536 });
    } finally {
      await cache.close();
    }
    const byDefault = await openDbCache(file, { watch: false });
    try {
      assert.deepEqual(byDefault.get('PRAGMA cache_size'), { cache_size: -16000 });
    } finally {
      await byDefault.close();
    }
    await assert.rejects(openDbCache(file, { cacheSize: 0.5 }), { name: 'RangeError', message: /options\.cacheSize/ });
  });
});
