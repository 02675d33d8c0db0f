// Rows read straight from SQLite's exports (src/sqljs.ts RowReader) equal what sql.js's own
// `get()` returns, for every storage class and the text lengths where decoding changes method.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { openDbCache, type DbCache } from '../src/index.ts';
import { loadSqlJs, rowReader, type SqlJsLike } from '../src/sqljs.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

// Text around the 48-byte boundary of the JavaScript decoder, ASCII and not, NUL inside, bytes
// that are not UTF-8, and the other storage classes at their edges.
const VALUES_SQL = `
  SELECT 1 AS kind, 'a' AS v UNION ALL
  SELECT 2, '' UNION ALL
  SELECT 3, printf('%.47c', 'x') UNION ALL
  SELECT 4, printf('%.48c', 'x') UNION ALL
  SELECT 5, printf('%.49c', 'x') UNION ALL
  SELECT 6, 'é' UNION ALL
  SELECT 7, printf('%.46c', 'x') || 'é' UNION ALL
  SELECT 8, printf('%.47c', 'x') || 'é' UNION ALL
  SELECT 9, 'emoji 😀 and ✓' UNION ALL
  SELECT 10, 'nul' || char(0) || 'inside' UNION ALL
  SELECT 11, CAST(x'61ff62' AS TEXT) UNION ALL
  SELECT 12, printf('%.20000c', 'y') || '✓' UNION ALL
  SELECT 13, 9007199254740991 UNION ALL
  SELECT 14, -9007199254740991 UNION ALL
  SELECT 15, 9223372036854775807 UNION ALL
  SELECT 16, 0.1 UNION ALL
  SELECT 17, -0.0 UNION ALL
  SELECT 18, 1e308 UNION ALL
  SELECT 19, x'' UNION ALL
  SELECT 20, x'00ff7f80' UNION ALL
  SELECT 21, zeroblob(70000) UNION ALL
  SELECT 22, NULL UNION ALL
  SELECT 23, (SELECT name FROM t WHERE id = 2) UNION ALL
  SELECT 24, (SELECT data FROM t WHERE id = 2)`;

let dir: ReturnType<typeof tempDir>;
let fast: DbCache;
let plain: DbCache;

before(async () => {
  dir = tempDir();
  const file = path.join(dir.dir, 'rows.db');
  sqlite(file, `db.executescript("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB); INSERT INTO t VALUES (2, 'grüße', x'0102030405');")`);
  fast = await openDbCache(file, { watch: false });
  // A module the application passes in: dbcache does not know its heap, so sql.js's get() reads.
  plain = await openDbCache(file, { watch: false, sqlJs: await loadSqlJs('inline') });
});

after(async () => {
  await fast.close();
  await plain.close();
  dir.cleanup();
});

test('the package build reads rows directly; a module of unknown heap uses sql.js', async () => {
  assert.notEqual(rowReader(await loadSqlJs('wasm')), undefined);
  assert.equal(rowReader(await loadSqlJs('inline')), undefined);
});

test('every read method returns what sql.js returns, for every storage class', () => {
  assert.deepEqual(fast.all(VALUES_SQL), plain.all(VALUES_SQL));
  assert.deepEqual(fast.values(VALUES_SQL), plain.values(VALUES_SQL));
  assert.deepEqual([...fast.iterate(VALUES_SQL)], plain.all(VALUES_SQL));
  assert.deepEqual(fast.prepare(VALUES_SQL).pluck().all(), plain.prepare(VALUES_SQL).pluck().all());
  for (let kind = 1; kind <= 24; kind++) {
    const one = `SELECT v FROM (${VALUES_SQL}) WHERE kind = ?`;
    assert.deepEqual(fast.get(one, [kind]), plain.get(one, [kind]), `kind ${kind}`);
    assert.deepEqual(fast.prepare(one).pluck().get(kind), plain.prepare(one).pluck().get(kind), `kind ${kind}, pluck`);
  }
  const texts = fast.values(`SELECT kind, v FROM (${VALUES_SQL}) WHERE kind <= 12`);
  assert.equal(texts.find(([kind]) => kind === 5)?.[1], 'x'.repeat(49));
  assert.equal(texts.find(([kind]) => kind === 10)?.[1], 'nul\0inside');
  assert.equal(fast.get<{ v: unknown }>(`SELECT v FROM (${VALUES_SQL}) WHERE kind = 20`)?.v instanceof Uint8Array, true);
});

test('a blob from the reader is a copy: later queries do not change it', () => {
  const first = fast.get<{ data: Uint8Array }>('SELECT data FROM t WHERE id = 2')!.data;
  fast.all(`SELECT randomblob(100000) FROM (${VALUES_SQL})`);
  assert.deepEqual([...first], [1, 2, 3, 4, 5]);
});

test('rows are read correctly after the heap grew during the step', () => {
  // randomblob() allocates 300 MB inside the step, which grows the module's memory (unless an
  // earlier test in this process grew it already) and detaches the reader's view of the heap.
  const sql = "SELECT 'before ✓ growth' AS a, length(randomblob(300000000)) AS n, x'0a0b' AS b, 'after' AS c";
  assert.deepEqual(fast.get(sql), { a: 'before ✓ growth', n: 300000000, b: new Uint8Array([10, 11]), c: 'after' });
  assert.deepEqual(fast.get('SELECT name FROM t'), { name: 'grüße' });
});

test('bigint mode still reads through sql.js, with exact integers', async () => {
  const module: SqlJsLike = await loadSqlJs('wasm');
  assert.notEqual(rowReader(module), undefined);
  const snapshot = fast.snapshot();
  try {
    const statement = snapshot.prepare('SELECT 9223372036854775807 AS big, 1.5 AS real').safeIntegers();
    assert.deepEqual(statement.get(), { big: 9223372036854775807n, real: 1.5 });
  } finally {
    snapshot.release();
  }
});
