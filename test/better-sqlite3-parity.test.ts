// better-sqlite3's own statement test cases (its repository's test/ at v12.6.2: 13.database.prepare,
// 21.statement.get, 22.statement.all, 23.statement.iterate, 24.statement.bind, 25.statement.columns,
// 40.bigints), rewritten for a read-only database and run side by side: each case against the real
// better-sqlite3 (opened read-only on the same file) and against dbcache, in this process. Cases
// whose outcomes differ must be exactly the rows of the README's parity table.
//
// Where better-sqlite3 does not load (Deno, Bun, a Node without its addon), dbcache's side still
// runs, against better-sqlite3's outcomes recorded in support/better-sqlite3-outcomes.json; where
// it loads, the recording must equal what it does (PARITY_RECORD=1 rewrites the file there).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDbCacheError, openDbCache, type DbCache } from '../src/index.ts';
import { sqlite, tempDir } from './support/fixtures.ts';
import { loadBetterSqlite3 } from './support/better-sqlite3.ts';

const SETUP = `
db.executescript('''
  CREATE TABLE entries (a TEXT, b INTEGER, c REAL, d BLOB, e TEXT);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
    INSERT INTO entries SELECT 'foo', i, 3.14, x'dddddddd', NULL FROM n;
  CREATE TABLE ints (a INTEGER, b REAL, c TEXT);
  INSERT INTO ints VALUES (1006028374637854687, 1006028374637854687, 1006028374637854687);
''')`;

/** The part of a statement the cases use: better-sqlite3's names. */
interface AnyStatement {
  readonly source: string;
  readonly reader: boolean;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  run(...params: unknown[]): unknown;
  raw(toggle?: boolean): AnyStatement;
  pluck(toggle?: boolean): AnyStatement;
  safeIntegers(toggle?: boolean): AnyStatement;
  bind(...params: unknown[]): AnyStatement;
  columns(): unknown[];
  expand?: (toggle?: boolean) => AnyStatement;
}

type Prepare = (sql: unknown) => AnyStatement;

interface Case {
  readonly name: string;
  readonly run: (prepare: Prepare) => unknown;
}

const dd = () => new Uint8Array([0xdd, 0xdd, 0xdd, 0xdd]);
const ROW = (b: number) => ({ a: 'foo', b, c: 3.14, d: dd(), e: null });
const SQL1 = 'SELECT * FROM entries WHERE a=? AND b=? AND c=? AND d=? AND e IS ?';
const SQL2 = 'SELECT * FROM entries WHERE a=@a AND b=@b AND c=@c AND d=@d AND e IS @e';
const BIG = 1006028374637854687n;

/** Every row of an iterator, or what the iterator protocol shows. */
const drain = (iterator: IterableIterator<unknown>) => [...iterator];

const CASES: Case[] = [
  // 13.database.prepare
  { name: 'prepare: a number instead of SQL', run: (p) => p(123) },
  { name: 'prepare: null instead of SQL', run: (p) => p(null) },
  { name: 'prepare: invalid SQL', run: (p) => p('CREATE TABLE people (name TEXT') },
  { name: 'prepare: a missing table', run: (p) => p('INSERT INTO people VALUES (?)') },
  { name: 'prepare: an empty string', run: (p) => p('') },
  { name: 'prepare: only a semicolon', run: (p) => p(';') },
  { name: 'prepare: two statements', run: (p) => p('SELECT 1;SELECT 2') },
  { name: 'prepare: a read, then a delete', run: (p) => p('SELECT 1; DELETE FROM entries') },
  { name: 'prepare: trailing semicolons and comments', run: (p) => p('SELECT 1;; -- done\n').get() },
  { name: 'prepare: source and reader of a non-reader', run: (p) => [p('CREATE TABLE people (name TEXT);').source, p('CREATE TABLE people (name TEXT)').reader] },
  { name: 'prepare: source and reader of an expression', run: (p) => [p('SELECT 555').source, p('SELECT 555').reader] },
  // 21.statement.get
  { name: 'get: on an INSERT', run: (p) => p("INSERT INTO entries VALUES ('foo', 1, 3.14, x'dddddddd', NULL)").get() },
  { name: 'get: on CREATE TABLE IF NOT EXISTS', run: (p) => p('CREATE TABLE IF NOT EXISTS entries (a TEXT)').get() },
  { name: 'get: on BEGIN TRANSACTION', run: (p) => p('BEGIN TRANSACTION').get() },
  { name: 'get: reader of non-readers', run: (p) => ['INSERT INTO entries (a) VALUES (1)', 'BEGIN', 'CREATE TABLE x (y)'].map((sql) => p(sql).reader) },
  { name: 'get: the first matching row', run: (p) => [p('SELECT * FROM entries ORDER BY rowid').get(), p('SELECT * FROM entries WHERE b > 5 ORDER BY rowid').get()] },
  {
    name: 'get: pluck sticks until switched off',
    run: (p) => {
      const s = p('SELECT * FROM entries ORDER BY rowid');
      return [s.get(), s.pluck(true).get(), s.get(), s.pluck(false).get(), s.get(), s.pluck().get(), s.get()];
    },
  },
  { name: 'get: undefined when no rows', run: (p) => [p('SELECT * FROM entries WHERE b == 999').get(), p('SELECT * FROM entries WHERE b == 999').pluck().get()] },
  { name: 'get: spread values', run: (p) => p(SQL1).get('foo', 1, 3.14, dd(), null) },
  { name: 'get: one array', run: (p) => p(SQL1).get(['foo', 1, 3.14, dd(), null]) },
  // eslint-disable-next-line no-sparse-arrays
  { name: 'get: arrays and values mixed, a hole as NULL', run: (p) => p(SQL1).get(['foo', 1], [3.14], dd(), [,]) },
  { name: 'get: named, undefined as NULL', run: (p) => p(SQL2).get({ a: 'foo', b: 1, c: 3.14, d: dd(), e: undefined }) },
  { name: 'get: named, no match', run: (p) => p(SQL2).get({ a: 'foo', b: 1, c: 3.14, d: new Uint8Array(4).fill(0xaa), e: undefined }) },
  { name: 'get: a missing named parameter', run: (p) => p(SQL2).get({ a: 'foo', b: 1, c: 3.14, d: dd() }) },
  { name: 'get: no values for ? parameters', run: (p) => p(SQL1).get() },
  { name: 'get: an empty object for named parameters', run: (p) => p(SQL2).get({}) },
  { name: 'get: nothing for named parameters', run: (p) => p(SQL2).get() },
  { name: 'get: too few values', run: (p) => p('SELECT ? AS a, ? AS b').get(1) },
  { name: 'get: too many values', run: (p) => p('SELECT ? AS a').get(1, 2) },
  { name: 'get: an object for ? parameters', run: (p) => p('SELECT ? AS a').get({ a: 1 }) },
  { name: 'get: a value for a named parameter', run: (p) => p('SELECT :a AS a').get(1) },
  { name: 'get: named plus positional', run: (p) => p('SELECT :a AS a, ? AS b').get({ a: 1 }, 7) },
  { name: 'get: extra keys in the object', run: (p) => p('SELECT :a AS a').get({ a: 1, z: 2 }) },
  { name: 'get: undefined as a value', run: (p) => p('SELECT ? AS a').get(undefined) },
  // 22.statement.all
  { name: 'all: on an INSERT', run: (p) => p("INSERT INTO entries VALUES ('foo', 1, 3.14, x'dddddddd', NULL)").all() },
  { name: 'all: on BEGIN TRANSACTION', run: (p) => p('BEGIN TRANSACTION').all() },
  { name: 'all: every matching row', run: (p) => p('SELECT * FROM entries WHERE b > 5 ORDER BY rowid').all() },
  {
    name: 'all: pluck and raw stick and exclude each other',
    run: (p) => {
      const s = p('SELECT a, b FROM entries WHERE b < 3 ORDER BY rowid');
      return [s.pluck().all(), s.raw().all(), s.pluck().all(), s.pluck(false).all(), s.raw().raw(false).all(), s.raw().pluck(false).all(), s.pluck().raw(false).all()];
    },
  },
  { name: 'all: an empty array when no rows', run: (p) => [p('SELECT * FROM entries WHERE b == 999').all(), p('SELECT * FROM entries WHERE b == 999').pluck().all()] },
  { name: 'all: bind forms', run: (p) => [p(SQL1).all('foo', 1, 3.14, dd(), null), p(SQL2).all({ a: 'foo', b: 2, c: 3.14, d: dd(), e: undefined })] },
  { name: 'all: too few values', run: (p) => p(SQL1).all('foo') },
  { name: 'all: two objects', run: (p) => p(SQL2).all({ a: 'foo' }, { b: 1 }) },
  // 23.statement.iterate
  { name: 'iterate: on an INSERT, at the call', run: (p) => void p("INSERT INTO entries VALUES ('foo', 1, 3.14, x'dddddddd', NULL)").iterate() },
  { name: 'iterate: on BEGIN TRANSACTION, at the call', run: (p) => void p('BEGIN TRANSACTION').iterate() },
  {
    name: 'iterate: the iterator protocol',
    run: (p) => {
      const iterator = p('SELECT * FROM entries ORDER BY rowid').iterate();
      const shape = [typeof iterator.next, typeof iterator.return, typeof (iterator as { throw?: unknown }).throw, iterator[Symbol.iterator]() === iterator];
      return [shape, drain(iterator).length];
    },
  },
  { name: 'iterate: every matching row', run: (p) => drain(p('SELECT * FROM entries WHERE b > 5 ORDER BY rowid').iterate()) },
  {
    name: 'iterate: pluck sticks',
    run: (p) => {
      const s = p('SELECT *, 2 + 3.5 AS c FROM entries WHERE b < 3 ORDER BY rowid');
      return [drain(s.iterate()), drain(s.pluck(true).iterate()), drain(s.pluck(false).iterate())];
    },
  },
  {
    name: 'iterate: break closes the iterator',
    run: (p) => {
      const s = p('SELECT * FROM entries ORDER BY rowid');
      const iterator = s.iterate();
      let count = 0;
      for (const _row of iterator) {
        count++;
        break;
      }
      return [count, iterator.next(), drain(iterator).length, drain(s.iterate()).length];
    },
  },
  {
    name: 'iterate: a throw in for-of closes the iterator',
    run: (p) => {
      const iterator = p('SELECT * FROM entries ORDER BY rowid').iterate();
      try {
        for (const _row of iterator) throw new Error('stop');
      } catch {
        // expected
      }
      return iterator.next();
    },
  },
  { name: 'iterate: return() ends it', run: (p) => { const it = p('SELECT b FROM entries').iterate(); it.next(); return [it.return!(), it.next()]; } },
  { name: 'iterate: empty when no rows', run: (p) => [p('SELECT * FROM entries WHERE b == 999').iterate().next(), drain(p('SELECT * FROM entries WHERE b == 999').pluck().iterate())] },
  { name: 'iterate: spread values', run: (p) => drain(p(SQL1).iterate('foo', 1, 3.14, dd(), null)) },
  // eslint-disable-next-line no-sparse-arrays
  { name: 'iterate: arrays and values mixed', run: (p) => drain(p(SQL1).iterate(['foo', 1], [3.14], dd(), [,])) },
  { name: 'iterate: named', run: (p) => drain(p(SQL2).iterate({ a: 'foo', b: 1, c: 3.14, d: dd(), e: undefined })) },
  { name: 'iterate: a function as a value, at the call', run: (p) => void p(SQL2).iterate(ROW(1), () => {}) },
  { name: 'iterate: a missing named parameter, at the call', run: (p) => void p(SQL2).iterate({ a: 'foo', b: 1, c: 3.14, d: dd() }) },
  { name: 'iterate: no values, at the call', run: (p) => void p(SQL1).iterate() },
  { name: 'iterate: nothing for named parameters, at the call', run: (p) => void p(SQL2).iterate() },
  { name: 'iterate: two objects, at the call', run: (p) => void p(SQL2).iterate(ROW(1), {}) },
  { name: 'iterate: an empty object, at the call', run: (p) => void p(SQL2).iterate({}) },
  { name: 'iterate: a class instance as a value, at the call', run: (p) => void p(SQL1).iterate('foo', 1, new (class Thing {})(), dd(), null) },
  { name: 'iterate: bad SQL, at prepare', run: (p) => void p('SELECT * FROM nowhere').iterate() },
  {
    name: 'iterate: other statements while iterating',
    run: (p) => {
      const other = p('SELECT count(*) AS n FROM entries');
      const seen: unknown[] = [];
      for (const _row of p('SELECT * FROM entries WHERE b < 3').iterate()) seen.push(other.get());
      return seen;
    },
  },
  // 24.statement.bind
  {
    name: 'bind: permanently, copied',
    run: (p) => {
      const buffer = dd();
      const s = p('SELECT b FROM entries WHERE a = ? AND b = ? AND d = ?').bind('foo', 3, buffer);
      const first = s.get();
      buffer.fill(0xaa);
      return [first, s.get()];
    },
  },
  { name: 'bind: later calls may not pass values', run: (p) => p('SELECT ? AS a').bind(1).get(2) },
  { name: 'bind: later calls may not pass null', run: (p) => p('SELECT ? AS a').bind(1).get(null) },
  { name: 'bind: twice', run: (p) => p('SELECT ? AS a').bind(1).bind(1) },
  { name: 'bind: twice without values', run: (p) => p('SELECT 1 AS a').bind().bind() },
  { name: 'bind: after a get', run: (p) => { const s = p('SELECT 1 AS a'); s.get(); return s.bind().get(); } },
  { name: 'bind: too few', run: (p) => p('SELECT ?, ?, ?').bind('foo', 25) },
  { name: 'bind: too many', run: (p) => p('SELECT ?, ?, ?').bind('foo', 25, null, null) },
  { name: 'bind: a Number object', run: (p) => p('SELECT ?, ?, ?').bind('foo', Object(25), null) },
  { name: 'bind: named and positional, positional missing', run: (p) => p('SELECT @a, @a, ?').bind({ a: '123' }) },
  { name: 'bind: a numeric key is not a positional value', run: (p) => p('SELECT @a, @a, ?').bind({ a: '123', 1: null }) },
  { name: 'bind: named plus one positional', run: (p) => p('SELECT @a AS x, @a AS y, ? AS z').bind({ a: '123' }, null).get() },
  { name: 'bind: too many with named', run: (p) => p('SELECT @a, @a, ?').bind({ a: '123' }, null, null) },
  // 25.statement.columns
  { name: 'columns: the names', run: (p) => p('SELECT a, c AS x, 1 + 1 FROM entries').columns().map((c) => (typeof c === 'string' ? c : (c as { name: string }).name)) },
  { name: 'columns: descriptors (table, column, type)', run: (p) => p('SELECT a, c AS x, 1 + 1 FROM entries').columns() },
  { name: 'columns: on a non-reader', run: (p) => p('BEGIN').columns() },
  { name: 'raw: on a non-reader', run: (p) => p('BEGIN').raw() },
  { name: 'pluck: on a non-reader', run: (p) => p('BEGIN').pluck() },
  { name: 'expand: table-qualified rows', run: (p) => p('SELECT a, 1 AS one FROM entries LIMIT 1').expand!().get() },
  // 40.bigints and number binding
  { name: 'bigints: bind within 64 bits', run: (p) => p('SELECT a FROM ints WHERE a = ?').pluck().safeIntegers().get(BIG) },
  {
    name: 'bigints: safeIntegers sticks',
    run: (p) => {
      const s = p('SELECT a FROM ints').pluck();
      return [s.get(), s.safeIntegers().get(), s.get(), s.safeIntegers(false).get(), s.get(), s.safeIntegers(true).get()];
    },
  },
  { name: 'bigints: REAL and TEXT columns are not integers', run: (p) => [p('SELECT b FROM ints').pluck().safeIntegers().get(), p('SELECT c FROM ints').pluck().safeIntegers().get()] },
  { name: 'bigints: beyond 64 bits', run: (p) => p('SELECT ? AS a').get(2n ** 64n) },
  { name: 'bigints: a small bigint is an INTEGER', run: (p) => p('SELECT typeof(?) AS t, ? AS v').get(5n, 5n) },
  { name: 'bigints: beyond 2^53 compare with an integer literal', run: (p) => p('SELECT ? = 9007199254740993 AS eq, typeof(?) AS t').get(9007199254740993n, 9007199254740993n) },
  { name: 'numbers: whole numbers bind as REAL', run: (p) => p('SELECT typeof(?) AS t, ? / 2 AS h').get(5, 5) },
  { name: 'numbers: beyond 2^31 the same', run: (p) => p('SELECT typeof(?) AS t, ? / 2 AS h').get(2147483649, 2147483649) },
  { name: 'numbers: NaN binds NULL', run: (p) => p('SELECT ? IS NULL AS n').get(NaN) },
  { name: 'values: booleans', run: (p) => p('SELECT ? AS t').get(true) },
  { name: 'values: a Date', run: (p) => p('SELECT ? AS t').get(new Date(0)) },
  { name: 'values: a symbol', run: (p) => p('SELECT ? AS t').get(Symbol('x')) },
  // run() on a read-only database
  { name: 'run: a SELECT', run: (p) => p('SELECT 1').run() },
  { name: 'run: an INSERT', run: (p) => p("INSERT INTO entries (a) VALUES ('x')").run() },
  { name: 'run: BEGIN', run: (p) => p('BEGIN').run() },
  { name: 'run: a PRAGMA setter', run: (p) => p('PRAGMA cache_size = 5').run() },
];

/** A case's outcome in a form both libraries can agree on. */
function outcome(run: () => unknown): string {
  try {
    return `value ${JSON.stringify(plain(run()))}`;
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) return error.name;
    const code = (error as { code?: unknown }).code;
    if (isDbCacheError(error, 'READ_ONLY') || (typeof code === 'string' && code.startsWith('SQLITE_READONLY'))) return 'refused: read-only';
    if (isDbCacheError(error, 'QUERY') || (error as Error).name === 'SqliteError') return 'SQLite error';
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

/** Blobs by content whatever their class, bigints as text, statements as their source. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return { blob: [...value] };
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return '(undefined)';
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    if (typeof (value as { get?: unknown }).get === 'function' && 'source' in value) return `statement ${(value as { source: string }).source}`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

type Table = Map<string, [theirs: string, ours: string]>;

/** The README's parity rows: case → [better-sqlite3, dbcache]. */
function readmeRows(): Table {
  const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- parity:start -->');
  const end = readme.indexOf('<!-- parity:end -->');
  assert.ok(start !== -1 && end > start, 'README.md has a parity table between <!-- parity:start --> and <!-- parity:end -->');
  const rows: Table = new Map();
  for (const line of readme.slice(start, end).split('\n')) {
    const cells = line.split(' | ').map((cell) => cell.replace(/^\|\s*|\s*\|$/g, '').replace(/^`|`$/g, ''));
    if (cells.length < 4 || cells[0] === 'case' || cells[0]!.startsWith('---')) continue;
    rows.set(cells[0]!, [cells[1]!, cells[2]!]);
  }
  return rows;
}

const short = (text: string) => (text.length > 60 ? `${text.slice(0, 57)}...` : text).replaceAll('|', '\\|');

const RECORDING = new URL('./support/better-sqlite3-outcomes.json', import.meta.url);
/** better-sqlite3's outcome of every case, as recorded where it loads. */
const recorded = JSON.parse(fs.readFileSync(RECORDING, 'utf8')) as { betterSqlite3: string; outcomes: Record<string, string> };

describe('better-sqlite3 statement cases, side by side', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'parity.db');
  let cache: DbCache;
  const Database = loadBetterSqlite3();
  const skip = typeof Database === 'string' ? Database : false;
  const against = skip === false ? 'better-sqlite3' : `better-sqlite3 ${recorded.betterSqlite3} as recorded`;
  let theirs: Prepare | undefined;
  let closeTheirs = () => {};
  const results = new Map<string, [theirs: string, ours: string]>();

  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
    if (typeof Database !== 'string') {
      const db = new Database(file, { readonly: true });
      theirs = (sql) => db.prepare(sql as string) as unknown as AnyStatement;
      closeTheirs = () => db.close();
    }
  });
  after(async () => {
    closeTheirs();
    await cache.close();
    cleanup();
  });

  const ours: Prepare = (sql) => cache.prepare(sql as string) as unknown as AnyStatement;
  const documented = readmeRows();

  for (const c of CASES) {
    test(c.name, () => {
      const mine = outcome(() => c.run(ours));
      const reference = theirs === undefined ? recorded.outcomes[c.name] : outcome(() => c.run(theirs!));
      assert.ok(reference !== undefined, `no recorded better-sqlite3 outcome for "${c.name}": run PARITY_RECORD=1 where better-sqlite3 loads`);
      results.set(c.name, [reference, mine]);
      const row = documented.get(c.name);
      if (row === undefined) assert.equal(mine, reference, `dbcache differs from ${against} in "${c.name}" and the README does not say so`);
      else assert.deepEqual([short(reference), short(mine)], row, `the README's row for "${c.name}" is out of date (compared with ${against})`);
    });
  }

  test('the recorded outcomes are what better-sqlite3 does (the reference of the cases where it does not load)', { skip }, () => {
    const live = Object.fromEntries(CASES.map((c) => [c.name, results.get(c.name)![0]]));
    const version = (createRequire(import.meta.url)('better-sqlite3/package.json') as { version: string }).version;
    const current = { betterSqlite3: version, outcomes: live };
    if (process.env['PARITY_RECORD'] !== undefined) fs.writeFileSync(RECORDING, `${JSON.stringify(current, null, 2)}\n`);
    assert.deepEqual(recorded, current, 'support/better-sqlite3-outcomes.json is stale: run this file with PARITY_RECORD=1');
  });

  test('the README parity table lists exactly the cases that differ, and the count that match', () => {
    const differing = [...results].filter(([, [reference, mine]]) => reference !== mine);
    const table = differing.map(([name, [reference, mine]]) => `| ${name} | \`${short(reference)}\` | \`${short(mine)}\` |`).join('\n');
    assert.deepEqual([...documented.keys()].sort(), differing.map(([name]) => name).sort(), `README rows should be:\n${table}`);
    const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const summary = `${CASES.length - differing.length} of ${CASES.length} cases`;
    assert.ok(readme.includes(summary), `README.md should say "${summary}"`);
  });
});
