// The onReload overlay may shape its own version (tables, indexes, views, triggers, rows,
// ANALYZE, transactions, settings that change how the version answers), but nothing that reaches
// beyond it: settings of the sql.js engine every cache in the process shares, files in that
// engine's file system (ATTACH, VACUUM INTO, a WAL), how the version is stored or locked. Each
// refused statement is refused before any of its text runs, through every method of the overlay,
// and leaves an unrelated cache, the published version and a fresh open unaffected.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDbCacheError, openDbCache, type DbCache, type OverlayDatabase, type SqlJsLike } from '../src/index.ts';
import { overlayRefusal } from '../src/sql-guard.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

const REFUSED = [
  'PRAGMA hard_heap_limit = 100000',
  'PRAGMA soft_heap_limit = 100000',
  'PRAGMA main.hard_heap_limit(100000)',
  "PRAGMA temp_store_directory = '/tmp'",
  'PRAGMA threads = 4',
  "ATTACH 'extra.db' AS extra",
  "ATTACH ':memory:' AS scratch",
  'PRAGMA journal_mode = WAL',
  'PRAGMA locking_mode = NORMAL',
  'PRAGMA query_only = 0',
  'PRAGMA writable_schema = ON',
  'PRAGMA schema_version = 99',
  'PRAGMA mmap_size = 1000000',
  'PRAGMA cache_size = -2000000',
  'PRAGMA page_size = 512',
  "VACUUM INTO 'copy.db'",
  'EXPLAIN PRAGMA hard_heap_limit = 100000',
  // Several statements: the refused one is found before the first runs.
  'CREATE TABLE first(x); PRAGMA hard_heap_limit = 100000',
  "CREATE TABLE first(x); ATTACH 'extra.db' AS extra",
  "ATTACH 'extra.db' AS extra; CREATE TABLE extra.leak(x)",
];

const ALLOWED = [
  'CREATE TABLE extra(x); INSERT INTO extra VALUES (1); CREATE INDEX extra_x ON extra(x); CREATE VIEW extra_v AS SELECT x FROM extra',
  'CREATE TEMP TABLE scratch(x); DROP TABLE scratch',
  'CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; END',
  'BEGIN; UPDATE t SET v = v; COMMIT',
  'ANALYZE',
  'PRAGMA case_sensitive_like = 1',
  'PRAGMA foreign_keys = 1',
  'PRAGMA user_version = 7',
  'PRAGMA optimize',
  'PRAGMA hard_heap_limit',
  "SELECT * FROM pragma_table_info('t')",
];

describe('overlayRefusal (pure)', () => {
  test('refuses what reaches beyond the version, lets the overlay shape it', () => {
    for (const sql of REFUSED) assert.notEqual(overlayRefusal(sql), undefined, sql);
    for (const sql of ALLOWED) assert.equal(overlayRefusal(sql), undefined, sql);
    // Comments, case and quoting do not hide a statement.
    assert.notEqual(overlayRefusal('/* x */ pragma HARD_HEAP_LIMIT\n=\n1'), undefined);
    assert.notEqual(overlayRefusal('-- x\n attach "f.db" as f'), undefined);
    assert.equal(overlayRefusal("SELECT 'ATTACH x'"), undefined);
  });
});

describe('the onReload overlay cannot reach beyond its version', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  const other = path.join(dir, 'other.db');
  // An engine of its own: on code without the guard, what gets through damages only this one.
  let engine: SqlJsLike;
  let bystander: DbCache;

  /**
   * What an unrelated cache, a fresh open and the engine's process-wide settings show, and what
   * files named by the refused statements hold in the engine's file system (any connection of the
   * engine can ATTACH them).
   */
  async function world(): Promise<string> {
    const fresh = await openDbCache(file, { watch: false, sqlJs: engine });
    const raw = new engine.Database();
    try {
      raw.exec("ATTACH 'extra.db' AS e; ATTACH 'copy.db' AS c");
      const files = raw.exec('SELECT (SELECT count(*) FROM e.sqlite_schema), (SELECT count(*) FROM c.sqlite_schema)');
      return JSON.stringify([
        files,
        bystander.values('SELECT v FROM o'),
        bystander.values('PRAGMA hard_heap_limit'),
        bystander.values('PRAGMA soft_heap_limit'),
        bystander.values('SELECT name, file FROM pragma_database_list'),
        bystander.get("SELECT count(*) AS n FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) SELECT zeroblob(1000) FROM c)"),
        fresh.values('SELECT id, v FROM t ORDER BY id'),
        fresh.values('SELECT name FROM pragma_database_list'),
        fresh.values('PRAGMA journal_mode'),
      ]);
    } finally {
      raw.close();
      await fresh.close();
    }
  }

  before(async () => {
    sqlite(file, "db.executescript('CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 10), (2, 20);')");
    sqlite(other, "db.executescript('CREATE TABLE o(v); INSERT INTO o VALUES (7);')");
    engine = await freshSqlJs();
    bystander = await openDbCache(other, { watch: false, sqlJs: engine });
  });
  after(async () => {
    await bystander.close();
    cleanup();
  });

  const runners: Array<[string, (db: OverlayDatabase, sql: string) => unknown]> = [
    ['exec', (db, sql) => db.exec(sql)],
    ['run', (db, sql) => db.run(sql)],
    ['get', (db, sql) => db.get(sql)],
    ['prepare().run()', (db, sql) => db.prepare(sql).run()],
    [
      'iterate',
      (db, sql) => {
        const rows = db.iterate(sql);
        rows.next();
        rows.return?.();
      },
    ],
  ];

  test('each refused statement is READ_ONLY through every method, runs nothing, and changes nothing outside', async () => {
    const baseline = await world();
    for (const sql of REFUSED) {
      const outcomes: string[] = [];
      const cache = await openDbCache(file, {
        watch: false,
        sqlJs: engine,
        onReload: (db) => {
          for (const [how, run] of runners) {
            // Several statements are for exec() only: the others refuse them (RangeError) or the guard does first.
            if (how !== 'exec' && sql.includes(';')) continue;
            try {
              run(db, sql);
              outcomes.push(`${how}: ran`);
            } catch (error) {
              if (!isDbCacheError(error, 'READ_ONLY')) outcomes.push(`${how}: ${String(error)}`);
            }
          }
          if (sql.startsWith('PRAGMA') && !sql.includes(';')) {
            try {
              db.pragma(sql.slice('PRAGMA '.length));
              outcomes.push('pragma: ran');
            } catch (error) {
              if (!isDbCacheError(error, 'READ_ONLY')) outcomes.push(`pragma: ${String(error)}`);
            }
          }
        },
      });
      try {
        assert.deepEqual(outcomes, [], sql);
        assert.deepEqual(cache.values("SELECT name FROM sqlite_schema WHERE name = 'first'"), [], `${sql}: part of the text ran`);
        assert.deepEqual(cache.values('PRAGMA database_list').length, 1, sql);
        assert.deepEqual(cache.values('PRAGMA query_only'), [[1]], sql);
        assert.deepEqual(cache.values('SELECT id, v FROM t ORDER BY id'), [
          [1, 10],
          [2, 20],
        ]);
      } finally {
        await cache.close();
      }
      assert.equal(await world(), baseline, `${sql} changed something outside its version`);
    }
  });

  test('a hook that lets a refusal escape fails the reload with OVERLAY_FAILED; the previous version keeps serving', async () => {
    let hook: (db: OverlayDatabase) => void = () => undefined;
    const cache = await openDbCache(file, { watch: false, sqlJs: engine, onReload: (db) => hook(db) });
    try {
      hook = (db) => db.exec("ATTACH 'extra.db' AS extra");
      sqlite(file, "db.execute('UPDATE t SET v = v + 1')");
      const error = await cache.reload().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.ok(isDbCacheError(error, 'OVERLAY_FAILED'), String(error));
      assert.ok(isDbCacheError((error as Error).cause, 'READ_ONLY'));
      assert.equal(cache.generation, 1);
      assert.deepEqual(cache.values('SELECT v FROM t ORDER BY id'), [[10], [20]]);
    } finally {
      await cache.close();
      sqlite(file, "db.execute('UPDATE t SET v = v - 1')");
    }
  });

  test('what the overlay is for still works, and its settings hold for the version it publishes', async () => {
    const cache = await openDbCache(file, {
      watch: false,
      sqlJs: engine,
      onReload: (db) => {
        for (const sql of ALLOWED) db.exec(sql);
        assert.deepEqual(db.pragma('foreign_keys = 0'), []);
        assert.equal(db.pragma('foreign_keys', { simple: true }), 0);
        db.pragma('foreign_keys = 1');
      },
    });
    try {
      assert.deepEqual(cache.values('SELECT x FROM extra_v'), [[1]]);
      assert.equal(cache.pragma('user_version', { simple: true }), 7);
      assert.equal(cache.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(cache.get<{ r: number }>("SELECT 'a' LIKE 'A' AS r")!.r, 0);
      assert.deepEqual(cache.values('PRAGMA hard_heap_limit'), [[0]]);
    } finally {
      await cache.close();
    }
  });
});
