// A published version cannot be changed by anything a caller sends, through any door.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDbCacheError, openDbCache, type DbCache, type Snapshot } from '../src/index.ts';
import { analyzeSql } from '../src/sql-guard.ts';
import { loadSqlJs, openImage } from '../src/sqljs.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

const SETUP = `
db.executescript('''
  CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
  CREATE INDEX t_name ON t(name);
  INSERT INTO t VALUES (1, 'apple'), (2, 'Pear'), (3, 'plum');
''')`;

/** Every way a caller can hand SQL to a published version. */
type Door = (sql: string) => unknown;

function doors(cache: DbCache, snap: Snapshot): Record<string, Door> {
  return {
    'cache.get': (sql) => cache.get(sql),
    'cache.all': (sql) => cache.all(sql),
    'cache.values': (sql) => cache.values(sql),
    'cache.iterate': (sql) => [...cache.iterate(sql)],
    'cache.read': (sql) => cache.read((s) => s.all(sql)),
    'snapshot.get': (sql) => snap.get(sql),
    'snapshot.iterate': (sql) => [...snap.iterate(sql)],
    'statement.get': (sql) => cache.prepare(sql).get(),
    'statement.all': (sql) => snap.prepare(sql).all(),
    'statement.iterate': (sql) => [...cache.prepare(sql).iterate()],
    'statement.run': (sql) => cache.prepare(sql).run(),
    'snapshot statement.run': (sql) => snap.prepare(sql).run(),
    'statement.raw/pluck/columns/reader': (sql) => {
      const statement = cache.prepare(sql);
      return [statement.reader, statement.columns(), statement.raw().get(), statement.pluck().all()];
    },
    'sqlJsDatabase.prepare': (sql) => {
      const statement = snap.sqlJsDatabase().prepare(sql);
      try {
        while (statement.step());
      } finally {
        statement.free();
      }
    },
    'cache.sqlJsDatabase.prepare': (sql) => {
      const statement = cache.sqlJsDatabase().prepare(sql);
      try {
        return [statement.reader, statement.all([]), statement.run([])];
      } finally {
        statement.free();
      }
    },
  };
}

/** What a version shows: its content, its schema (also TEMP and attached), its settings and LIKE's behaviour. */
function fingerprint(q: Pick<Snapshot, 'all' | 'values'>, getters: readonly string[]): string {
  const parts: unknown[] = [
    q.values('SELECT id, name FROM t ORDER BY id'),
    q.values('SELECT type, name, sql FROM sqlite_schema ORDER BY name'),
    q.values('SELECT type, name FROM sqlite_temp_schema ORDER BY name'),
    q.values('PRAGMA database_list'),
    q.values("SELECT 'a' LIKE 'A', count(*) FROM t WHERE name LIKE 'p%'"),
  ];
  for (const name of getters) parts.push(name, q.values(`PRAGMA ${name}`));
  return JSON.stringify(parts, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value));
}

/** PRAGMA getters whose value is a setting or a fact of the version (module_list also lists the pragma_x tables used so far). */
function settingGetters(all: readonly string[]): string[] {
  return all.filter((name) => analyzeSql(`PRAGMA ${name}`).kind === 'read' && !['data_version', 'function_list', 'module_list'].includes(name));
}

describe('a published version cannot be changed', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  let earlier: Snapshot;
  let pragmas: string[];
  let getters: string[];
  let baseline: string;

  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
    earlier = cache.snapshot();
    // SQLite's own list of PRAGMAs, from the sql.js build in use.
    pragmas = cache.values('PRAGMA pragma_list').map(([name]) => String(name));
    getters = settingGetters(pragmas);
    baseline = fingerprint(cache, getters);
  });
  after(async () => {
    earlier.release();
    await cache.close();
    cleanup();
  });

  /** Sends `sql` through every door; returns the doors that did not refuse it. */
  function attempt(sql: string): string[] {
    const snap = cache.snapshot();
    const accepted: string[] = [];
    try {
      for (const [name, door] of Object.entries(doors(cache, snap))) {
        try {
          door(sql);
          accepted.push(name);
        } catch (error) {
          // Refusals are TypeError/RangeError (better-sqlite3's) or a DbCacheError; nothing else escapes.
          const expected = error instanceof TypeError || error instanceof RangeError || isDbCacheError(error);
          assert.ok(expected, `${name}: ${String(error)}`);
        }
      }
      assert.equal(fingerprint(snap, getters), baseline, `${sql} changed the leased snapshot`);
    } finally {
      snap.release();
    }
    assert.equal(fingerprint(cache, getters), baseline, `${sql} changed the live version`);
    return accepted;
  }

  test('sql.js reports SQLite’s pragma list, and the guard lets only getters through', () => {
    assert.ok(pragmas.length > 50, `only ${pragmas.length} pragmas listed`);
    assert.ok(getters.includes('query_only') && getters.includes('cache_size'));
    assert.ok(!getters.includes('optimize') && !getters.includes('case_sensitive_like'));
  });

  test('every PRAGMA in setter form, through every door, changes nothing', () => {
    // A number, a negative, keywords and a name reach every PRAGMA's setter; GUARD_VALUES=all tries more.
    const values =
      process.env.GUARD_VALUES === 'all'
        ? ['0', '1', '-1', '100', 'NORMAL', 'OFF', 'ON', 'FULL', 'MEMORY', 'WAL', 'DELETE', 'EXCLUSIVE', "'utf-16le'", 't', "'t'"]
        : ['0', '1', '-1', 'OFF', 'EXCLUSIVE', 't'];
    let refused = 0;
    let total = 0;
    for (const name of pragmas) {
      for (const value of values) {
        for (const sql of [`PRAGMA ${name} = ${value}`, `PRAGMA main.${name}(${value})`, `SELECT * FROM pragma_${name}(${value})`]) {
          const accepted = attempt(sql);
          total++;
          if (accepted.length === 0) refused++;
          // Only PRAGMAs whose argument names what to report on may run with one.
          if (accepted.length > 0) assert.ok(/table_|index_|foreign_key|integrity_check|quick_check/.test(name), `${sql} was accepted by ${accepted.join(', ')}`);
        }
      }
      // The bare form, which for some PRAGMAs acts (optimize, shrink_memory, incremental_vacuum, wal_checkpoint).
      attempt(`PRAGMA ${name}`);
      attempt(`SELECT * FROM pragma_${name}`);
    }
    assert.ok(refused > total * 0.8, `${refused} of ${total} refused`);
  });

  test('writes, transactions, ATTACH, TEMP objects and multi-statement strings change nothing', () => {
    const attempts = [
      "INSERT INTO t VALUES (99, 'fig')",
      "INSERT INTO t VALUES (98, 'kiwi') RETURNING id",
      "UPDATE t SET name = 'x'",
      'DELETE FROM t',
      "REPLACE INTO t VALUES (1, 'quince')",
      'WITH x AS (SELECT 1) DELETE FROM t',
      "WITH x AS (SELECT 1) INSERT INTO t SELECT 97, 'lime' RETURNING *",
      'BEGIN',
      'BEGIN IMMEDIATE',
      'BEGIN EXCLUSIVE',
      'SAVEPOINT s',
      'COMMIT',
      'ROLLBACK',
      "ATTACH ':memory:' AS other",
      `ATTACH '${path.join(dir, 'other.db')}' AS other`,
      'DETACH main',
      'CREATE TEMP TABLE tt(x)',
      'CREATE TEMPORARY VIEW tv AS SELECT 1',
      'CREATE TABLE z(x)',
      'CREATE INDEX i ON t(name, id)',
      'CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END',
      'DROP TABLE t',
      'DROP INDEX t_name',
      'ALTER TABLE t ADD COLUMN c',
      'VACUUM',
      'ANALYZE',
      'REINDEX',
      'SELECT 1; DELETE FROM t',
      'SELECT 1; PRAGMA query_only = 0',
      'PRAGMA query_only = 0; SELECT 1',
      'EXPLAIN PRAGMA case_sensitive_like = 1',
      'EXPLAIN QUERY PLAN PRAGMA query_only = 0',
      'EXPLAIN DELETE FROM t',
      '/* c */ PRAGMA case_sensitive_like = 1',
      '-- c\nPRAGMA query_only = 0',
      'pRaGmA case_sensitive_like=ON',
      'PRAGMA "query_only" = 0',
      "PRAGMA 'case_sensitive_like' = 1",
      'SELECT * FROM "pragma_optimize"',
      'SELECT * FROM [pragma_shrink_memory]',
    ];
    // After the attempts to turn query_only off, writes are still refused.
    attempt('PRAGMA query_only = 0');
    attempt('PRAGMA query_only(0)');
    for (const sql of attempts) {
      const accepted = attempt(sql);
      const harmless = sql.startsWith('EXPLAIN') || sql.startsWith('SELECT * FROM');
      if (!harmless) assert.deepEqual(accepted, [], `${sql} was accepted by ${accepted.join(', ')}`);
    }
  });

  test('refusals say why: TypeError for statements without data in read methods, READ_ONLY otherwise', () => {
    assert.throws(() => cache.get('BEGIN'), { name: 'TypeError', message: 'This statement does not return data. Use run() instead' });
    assert.throws(() => cache.prepare('BEGIN').run(), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.throws(() => cache.get('PRAGMA query_only = 0'), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.throws(() => cache.snapshot().sqlJsDatabase().prepare('CREATE TEMP TABLE x(y)'), { code: 'READ_ONLY' });
    assert.throws(() => cache.get('SELECT 1; SELECT 2'), { name: 'RangeError' });
    assert.throws(() => cache.iterate('DELETE FROM t'), { name: 'TypeError' });
    // Reads still work everywhere, also PRAGMA getters and the table-valued PRAGMAs that report.
    assert.deepEqual(cache.get('PRAGMA query_only'), { query_only: 1 });
    assert.equal(cache.all('PRAGMA table_info(t)').length, 2);
    assert.equal(cache.all("SELECT name FROM pragma_table_info('t')").length, 2);
    assert.deepEqual(cache.prepare('SELECT count(*) AS n FROM t').run(), { changes: 0, lastInsertRowid: 0 });
  });

  test('an earlier lease and a new reload are unaffected', async () => {
    assert.equal(fingerprint(earlier, getters), baseline);
    sqlite(file, "db.execute(\"INSERT INTO t VALUES (4, 'quince')\")");
    await cache.reload();
    assert.equal(cache.generation, 2);
    assert.deepEqual(cache.values('SELECT id FROM t ORDER BY id'), [[1], [2], [3], [4]]);
    assert.deepEqual(cache.get("SELECT 'a' LIKE 'A' AS ci"), { ci: 1 });
    assert.deepEqual(cache.get('PRAGMA query_only'), { query_only: 1 });
    assert.equal(fingerprint(earlier, getters), baseline);
  });
});

describe('the SQL guard (pure, before prepare)', () => {
  test('classifies statements by their text, comments, quotes and case notwithstanding', () => {
    const kind = (sql: string) => analyzeSql(sql).kind;
    for (const sql of [
      'SELECT 1',
      'values (1), (2)',
      'WITH x(a) AS (SELECT 1) SELECT a FROM x',
      'WITH RECURSIVE x AS (SELECT 1 UNION ALL SELECT 1 FROM x) SELECT * FROM x',
      "SELECT 'DELETE FROM t; PRAGMA query_only=0' AS s",
      'EXPLAIN QUERY PLAN SELECT * FROM t',
      'PRAGMA table_info(t)',
      'PRAGMA main.table_info = "t"',
      'pragma QUERY_ONLY',
      "SELECT * FROM pragma_table_info('t')",
      'SELECT 1; -- the end',
    ]) {
      assert.equal(kind(sql), 'read', sql);
    }
    for (const sql of ['BEGIN', 'CREATE TEMP TABLE x(y)', 'ATTACH ? AS a', "INSERT INTO t VALUES (1, 'x')", 'WITH x AS (SELECT 1) DELETE FROM t', 'VACUUM']) {
      assert.equal(kind(sql), 'none', sql);
    }
    for (const sql of [
      'PRAGMA query_only = 0',
      'PRAGMA case_sensitive_like(1)',
      'PRAGMA optimize',
      'PRAGMA "query_only"',
      'PRAGMA table_info(?)',
      'PRAGMA cache_size = -100',
      'INSERT INTO t VALUES (1) RETURNING *',
      'EXPLAIN PRAGMA query_only = 0',
      'SELECT * FROM pragma_optimize',
      'SELECT * FROM "PRAGMA_SHRINK_MEMORY"',
      'WITH x AS (SELECT * FROM pragma_optimize) SELECT 1',
      "SELECT * FROM 'pragma_optimize'",
      // A comment hides the rest of the line only: 0xe is a whole hexadecimal number.
      'WITH x AS (SELECT 0xe--) SELECT\n) DELETE FROM t RETURNING id',
      // `$a(--)` is one token (Tcl's array element): the comment is the last line's `/*`.
      'WITH x AS (SELECT $a(--)) DELETE FROM t RETURNING id /*\n)) SELECT 1 */',
    ]) {
      assert.equal(kind(sql), 'write', sql);
    }
    // Not a statement: SQLite stops at the first token, so compiling it (for its error) applies nothing.
    for (const sql of ['FROB 1', 'SELEC 1', '1', 'hello world', '\vSELECT 1', '"SELECT" 1', '(SELECT 1)', 'ſELECT 1', 'EXPLAIN', 'EXPLAIN QUERY 1']) {
      assert.equal(kind(sql), 'invalid', JSON.stringify(sql));
    }
    // \v continues a run of space but cannot start one; U+FEFF (a UTF-8 byte-order mark) is space.
    for (const sql of [' \vSELECT 1', '\uFEFFSELECT 1', 'SELECT 1 \0 ; DELETE FROM t']) assert.equal(kind(sql), 'read', JSON.stringify(sql));
    assert.equal(analyzeSql('SELECT 1; SELECT 2').statements, 2);
    assert.equal(analyzeSql('/* only */ ;; -- comments').statements, 0);
    assert.equal(analyzeSql('CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; DELETE FROM t; END;').statements, 1);
    assert.equal(analyzeSql('CREATE TRIGGER begin AFTER INSERT ON t BEGIN SELECT 1 AS end; END; SELECT 2').statements, 2);
    // SQLite reads the text up to its first NUL.
    assert.equal(analyzeSql('SELECT 1;\0 DELETE FROM t').statements, 1);
  });

  test('numbers parameters as SQLite does', () => {
    assert.deepEqual(analyzeSql('SELECT ?, :a, ?, :a, @b').parameters, [null, ':a', null, '@b']);
    assert.deepEqual(analyzeSql('SELECT ?3, ?').parameters, [null, null, '?3', null]);
    assert.deepEqual(analyzeSql("SELECT ':x', \"?\", [@y], `$z` -- ?").parameters, []);
    assert.equal(analyzeSql('SELECT ?, :a, ?').anonymous, 2);
    // Tcl's forms: `::` inside a name, `(…)` up to a space or `)`; `#name` too.
    assert.deepEqual(analyzeSql('SELECT $a(--), :b::c, @d(x), #e, $f::').parameters, ['$a(--)', ':b::c', '@d(x)', '#e', '$f::']);
  });
});

describe('SQL read as SQLite reads it, errors reported as better-sqlite3 reports them', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  /** SQLite's own message for `sql`, from a plain sql.js database. */
  let sqliteError: (sql: string) => string;

  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
    const sqlJs = await loadSqlJs();
    sqliteError = (sql) => {
      const db = new sqlJs.Database(null);
      try {
        db.prepare(sql);
        return 'compiled';
      } catch (error) {
        return (error as Error).message;
      } finally {
        db.close();
      }
    };
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('a statement hidden behind 0xe-- or a Tcl variable is seen, and refused before SQLite compiles it', () => {
    for (const sql of [
      'WITH x AS (SELECT 0xe--) SELECT\n) DELETE FROM t RETURNING id',
      ...['$a', ':a', '@a'].map((name) => `WITH x AS (SELECT ${name}(--)) DELETE FROM t RETURNING id /*\n)) SELECT 1 */`),
    ]) {
      assert.throws(() => cache.get(sql), { name: 'DbCacheError', code: 'READ_ONLY' }, sql);
      assert.throws(() => cache.all(sql), { name: 'DbCacheError', code: 'READ_ONLY' }, sql);
      const statement = cache.prepare(sql);
      assert.equal(statement.readonly, false, sql);
      assert.equal(statement.reader, true, sql);
      assert.deepEqual(statement.columns(), ['id'], sql);
      assert.throws(() => statement.run(), { name: 'DbCacheError', code: 'READ_ONLY' }, sql);
    }
    assert.deepEqual(cache.values('SELECT id FROM t ORDER BY id'), [[1], [2], [3]]);
  });

  test('text that begins no statement gets SQLite’s own error (QUERY) from every method, prepare included', () => {
    for (const sql of ['SELEC 1', '1', 'hello world', '\vSELECT 1', '"SELECT" 1', '(SELECT 1)', 'SELEC 1; SELECT 2', 'EXPLAIN']) {
      const expected = sqliteError(sql);
      const snap = cache.snapshot();
      try {
        for (const [door, call] of Object.entries({
          get: () => cache.get(sql),
          all: () => cache.all(sql),
          values: () => cache.values(sql),
          iterate: () => cache.iterate(sql),
          read: () => cache.read((s) => s.get(sql)),
          prepare: () => cache.prepare(sql),
          'snapshot.prepare': () => snap.prepare(sql),
        })) {
          assert.throws(
            call,
            (error: unknown) => {
              assert.ok(isDbCacheError(error), `${door} ${JSON.stringify(sql)}: ${String(error)}`);
              assert.equal(error.code, 'QUERY', `${door} ${JSON.stringify(sql)}`);
              assert.equal((error.cause as Error).message, expected, `${door} ${JSON.stringify(sql)}`);
              return true;
            },
            `${door} ${JSON.stringify(sql)}`,
          );
        }
      } finally {
        snap.release();
      }
    }
    // \v continues a run of space (it cannot start one).
    assert.deepEqual(cache.get(' \vSELECT 1 AS one'), { one: 1 });
  });

  test('prepare reports bad SQL at once; a statement that must not run is reported, then refused', () => {
    for (const sql of ['SELECT * FROM nosuch', 'DELETE FROM nosuch', 'DELETE FROM nosuch RETURNING *', 'INSERT INTO t VALUES (1, 2, 3)', 'CREATE TABLE t(x)', 'SELECT 1 +']) {
      assert.throws(() => cache.prepare(sql), { name: 'DbCacheError', code: 'QUERY' }, sql);
      assert.throws(() => cache.get(sql), { name: 'DbCacheError', code: 'QUERY' }, sql);
    }
    for (const sql of ['', ' -- only a comment', ';;']) assert.throws(() => cache.prepare(sql), { name: 'RangeError' }, JSON.stringify(sql));
    assert.throws(() => cache.prepare('SELECT 1; SELECT 2'), { name: 'RangeError' });
    assert.throws(() => cache.prepare('SELECT 1; PRAGMA query_only = 0'), { name: 'RangeError' });
    // A setter is not compiled (it would act): prepared, it is refused when it runs.
    const setter = cache.prepare('PRAGMA query_only = 0');
    assert.throws(() => setter.run(), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.throws(() => cache.get('DELETE FROM t'), { name: 'TypeError' });
    assert.throws(() => cache.get('DELETE FROM t RETURNING id'), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.deepEqual(cache.get('PRAGMA query_only'), { query_only: 1 });
    assert.deepEqual(cache.values('SELECT id FROM t ORDER BY id'), [[1], [2], [3]]);
  });
});

describe('the onReload overlay still writes', () => {
  test('its writes and settings are published; afterwards the version refuses them', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const cache = await openDbCache(file, {
      watch: false,
      onReload: (db) => {
        db.exec('CREATE TABLE extra(v TEXT)');
        // Enough rows to grow the database file past the image it was read from.
        for (let i = 0; i < 200; i++) db.run('INSERT INTO extra VALUES (?)', ['x'.repeat(500)]);
        db.prepare('INSERT INTO t VALUES (?, ?)').run(10, 'overlay');
        assert.throws(() => db.get('DELETE FROM t WHERE id = 10'), { name: 'TypeError' });
      },
    });
    try {
      assert.deepEqual(cache.get('SELECT count(*) AS n FROM extra'), { n: 200 });
      assert.deepEqual(cache.get('SELECT name FROM t WHERE id = 10'), { name: 'overlay' });
      assert.throws(() => cache.prepare('INSERT INTO extra VALUES (1)').run(), { code: 'READ_ONLY' });
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('the storage backstop', () => {
  test('a sealed version’s file refuses writes that got past everything else', async () => {
    const sqlJs = await loadSqlJs();
    const maker = new sqlJs.Database(null);
    maker.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('a')");
    // A Buffer, which the storage keeps as a view: what the file holds is visible here.
    const image = Buffer.from((maker as unknown as { export(): Uint8Array }).export());
    maker.close();
    const { db, seal } = openImage(sqlJs, image);
    try {
      // Before sealing (the overlay's time) writes land.
      db.exec("INSERT INTO t VALUES ('b')");
      const count = (): unknown => (db.exec('SELECT count(*) FROM t') as Array<{ values: unknown[][] }>)[0]!.values[0]![0];
      assert.equal(count(), 2);
      seal();
      const sealed = Buffer.from(image);
      // No SQL guard here: sql.js straight, as a bug in dbcache would reach it. The write fails,
      // and the connection fails loudly from then on rather than show a changed version.
      for (const sql of ["INSERT INTO t VALUES ('c')", 'DELETE FROM t', 'CREATE TABLE u(x)', 'INSERT INTO t SELECT hex(randomblob(100000))']) {
        assert.throws(() => db.exec(sql), /disk I\/O error/, sql);
        assert.throws(count, /disk I\/O error/, sql);
      }
      assert.ok(sealed.equals(image), 'the sealed file was written');
    } finally {
      db.close();
    }
  });
});
