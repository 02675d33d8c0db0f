// The public surface is exactly the documented one: what a caller can reach from a cache, a
// snapshot, a statement, the onReload database, an ORM handle and their iterators (own property
// names and symbols along the prototype chain, getters invoked, methods called) is the API in the
// README and no more; nothing reachable writes to a published version. And what a closed cache
// still answers.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDbCacheError, openDbCache, type DbCache, type OverlayDatabase } from '../src/index.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

const QUERY = ['get', 'all', 'iterate', 'values', 'prepare', 'pragma'];
const CACHE = [...QUERY, 'read', 'snapshot', 'sqlJsDatabase', 'reload', 'subscribe', 'stats', 'close', Symbol.asyncDispose];
const CACHE_PROPERTIES = ['generation', 'version', 'path', 'name', 'closed', 'open', 'readonly', 'inTransaction'];
const SNAPSHOT = [...QUERY, 'generation', 'version', 'release', 'sqlJsDatabase', Symbol.dispose];
const OVERLAY = [...QUERY, 'exec', 'run'];
const STATEMENT = ['source', 'sql', 'database', 'busy', 'reader', 'readonly', 'get', 'all', 'iterate', 'values', 'raw', 'pluck', 'safeIntegers', 'bind', 'columns', 'run'];
const ITERATOR = ['next', 'return', Symbol.iterator];
const ORM = ['prepare', 'close', 'exec', 'run', 'each', 'iterateStatements', 'create_function', 'create_aggregate', 'updateHook', 'export', 'getRowsModified', 'handleError'];
const ORM_STATEMENT = ['reader', 'bind', 'step', 'get', 'getAsObject', 'getColumnNames', 'getSQL', 'getNormalizedSQL', 'run', 'all', 'iterate', 'reset', 'freemem', 'free'];

/** Prototypes of the language: their members are not dbcache's surface. */
const BUILT_IN = new Set<unknown>([Object.prototype, Function.prototype, Array.prototype, Object.getPrototypeOf(Uint8Array.prototype), Uint8Array.prototype]);

/** Every own property name and symbol of `value` and of its prototypes, up to the built-in ones. */
function names(value: object): string[] {
  const found = new Set<string>();
  for (let holder: object | null = value; holder !== null && !BUILT_IN.has(holder); holder = Object.getPrototypeOf(holder) as object | null) {
    for (const key of Reflect.ownKeys(holder)) found.add(typeof key === 'symbol' ? key.toString() : key);
  }
  return [...found].sort();
}

/** The documented names, as {@link names} spells them; a class instance also reaches its `constructor`. */
function documented(members: readonly (string | symbol)[], classInstance = true): string[] {
  const all = members.map((key) => (typeof key === 'symbol' ? key.toString() : key));
  if (classInstance) all.push('constructor');
  return [...new Set(all)].sort();
}

/** Runs `fn` and returns what it threw (or `undefined`). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Calls that end or change a lifecycle: never made by the walk. */
const LIFECYCLE = new Set<string>(['close', 'release', 'reload', 'free', 'reset', 'constructor', Symbol.dispose.toString(), Symbol.asyncDispose.toString()]);

/**
 * Every object reachable from `roots`: through properties and prototypes, by invoking every getter,
 * and by calling every method (except those that end a lifecycle) with no arguments and with a SQL
 * text that reads. What an attacker holding these objects could lay hands on.
 */
function reachable(roots: readonly object[]): object[] {
  const seen = new Set<object>();
  const queue = [...roots];
  while (queue.length > 0 && seen.size < 5_000) {
    const value = queue.shift()!;
    if (seen.has(value) || BUILT_IN.has(value)) continue;
    seen.add(value);
    const push = (found: unknown): void => {
      if ((typeof found === 'object' && found !== null) || typeof found === 'function') queue.push(found as object);
    };
    push(Object.getPrototypeOf(value));
    for (let holder: object | null = value; holder !== null && !BUILT_IN.has(holder); holder = Object.getPrototypeOf(holder) as object | null) {
      for (const key of Reflect.ownKeys(holder)) {
        const descriptor = Object.getOwnPropertyDescriptor(holder, key)!;
        if (descriptor.get !== undefined) {
          const from = holder;
          thrown(() => push(Reflect.get(from, key, value)));
        }
        const member = descriptor.value as unknown;
        if (typeof member !== 'function' || LIFECYCLE.has(typeof key === 'symbol' ? key.toString() : key)) {
          push(member);
          continue;
        }
        // A method: what it returns is reachable too (a statement, an iterator, an internal object).
        for (const args of [[], ['SELECT 1 AS one']]) {
          thrown(() => {
            const result: unknown = Reflect.apply(member as (...a: unknown[]) => unknown, value, args);
            if (typeof (result as { then?: unknown } | null)?.then === 'function') (result as Promise<unknown>).catch(() => undefined);
            push(result);
          });
        }
      }
    }
  }
  return [...seen];
}

describe('the public surface is exactly the documented one', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  const inHook: Record<string, string[]> = {};
  let overlay: OverlayDatabase | undefined;

  before(async () => {
    sqlite(file, `db.executescript("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');")`);
    cache = await openDbCache(file, {
      watch: false,
      onReload: (db) => {
        overlay = db;
        inHook.overlay = names(db);
        const statement = db.prepare('SELECT v FROM t');
        inHook.statement = names(statement);
        inHook.database = [String(statement.database === db)];
        const rows = db.iterate('SELECT v FROM t');
        inHook.iterator = names(rows);
        rows.return?.();
      },
    });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('each object offers exactly its documented members', () => {
    assert.deepEqual(names(cache), documented([...CACHE, ...CACHE_PROPERTIES]));
    const snap = cache.snapshot();
    try {
      assert.deepEqual(names(snap), documented(SNAPSHOT));
      assert.deepEqual(names(snap.prepare('SELECT v FROM t')), documented(STATEMENT));
      assert.deepEqual(names(snap.sqlJsDatabase()), documented(ORM));
    } finally {
      snap.release();
    }
    assert.deepEqual(names(cache.prepare('SELECT v FROM t')), documented(STATEMENT));
    const rows = cache.iterate('SELECT v FROM t');
    assert.deepEqual(names(rows), documented(ITERATOR, false));
    rows.return?.();
    const statementRows = cache.prepare('SELECT v FROM t').iterate();
    assert.deepEqual(names(statementRows), documented(ITERATOR, false));
    statementRows.return?.();
    const handle = cache.sqlJsDatabase();
    assert.deepEqual(names(handle), documented(ORM));
    const ormStatement = handle.prepare('SELECT v FROM t');
    assert.deepEqual(names(ormStatement), documented(ORM_STATEMENT));
    assert.deepEqual(names(ormStatement.iterate()), documented(ITERATOR, false));
    assert.deepEqual(inHook.overlay, documented(OVERLAY));
    assert.deepEqual(inHook.statement, documented(STATEMENT));
    assert.deepEqual(inHook.iterator, documented(ITERATOR, false));
    assert.deepEqual(inHook.database, ['true']);
  });

  test("nothing reachable writes to a published version, and dbcache's classes cannot be constructed from outside", () => {
    const snap = cache.snapshot();
    const before = JSON.stringify([cache.values('PRAGMA query_only'), cache.values('SELECT type, name FROM temp.sqlite_schema')]);
    try {
      const roots: object[] = [cache, snap, cache.prepare('SELECT v FROM t'), snap.prepare('SELECT v FROM t'), cache.sqlJsDatabase(), snap.sqlJsDatabase(), overlay!];
      const objects = reachable(roots);
      let writes = 0;
      let tried = 0;
      for (const object of objects) {
        const exec = (object as { exec?: unknown }).exec;
        if (typeof exec !== 'function') continue;
        tried++;
        for (const sql of ['PRAGMA query_only=0', 'CREATE TEMP TABLE evil(x)', 'PRAGMA query_only=0; CREATE TEMP TABLE evil(x)']) {
          if (thrown(() => Reflect.apply(exec, object, [sql])) === undefined) writes++;
        }
      }
      // The ORM handles' exec() (refused) and the onReload database's (ended with its hook) at least.
      assert.ok(tried >= 3, `only ${tried} objects with exec() reached`);
      assert.equal(writes, 0, 'an exec() reachable from the public objects ran');
      assert.equal(JSON.stringify([cache.values('PRAGMA query_only'), cache.values('SELECT type, name FROM temp.sqlite_schema')]), before);
      assert.deepEqual(cache.values('PRAGMA query_only'), [[1]]);
      // The only constructors reachable are dbcache's classes, and none builds an object from outside.
      const constructors = new Set(objects.map((object) => (object as { constructor?: unknown }).constructor).filter((c) => typeof c === 'function' && c !== Object && c !== Function && c !== Array && c !== Uint8Array));
      assert.ok(constructors.size >= 6, `found ${constructors.size} constructors`);
      for (const constructor of constructors) {
        const made = thrown(() => Reflect.construct(constructor as new () => unknown, []));
        assert.ok(made instanceof TypeError && /Illegal constructor/.test(made.message), `new ${(constructor as { name: string }).name}() gave ${String(made)}`);
        for (const key of Reflect.ownKeys(constructor as object)) assert.ok(['length', 'name', 'prototype'].includes(String(key)), `${(constructor as { name: string }).name}.${String(key)}`);
      }
    } finally {
      snap.release();
    }
  });

  test('better-sqlite3 properties: open is a boolean, name the path, readonly true, inTransaction false', () => {
    assert.equal(cache.open, true);
    assert.equal(cache.closed, false);
    assert.equal(cache.name, file);
    assert.equal(cache.path, file);
    assert.equal(cache.readonly, true);
    assert.equal(cache.inTransaction, false);
  });

  test('stmt.database is the cache, snapshot or onReload database it came from; stmt.busy while an iterator is open', () => {
    const statement = cache.prepare('SELECT v FROM t ORDER BY id');
    assert.equal(statement.database, cache);
    const snap = cache.snapshot();
    try {
      assert.equal(snap.prepare('SELECT 1').database, snap);
    } finally {
      snap.release();
    }
    assert.equal(statement.busy, false);
    const rows = statement.iterate();
    assert.equal(statement.busy, true);
    assert.deepEqual(rows.next().value, { v: 'a' });
    assert.equal(statement.busy, true);
    assert.deepEqual([...rows], [{ v: 'b' }]);
    assert.equal(statement.busy, false);
    const stopped = statement.iterate();
    stopped.next();
    stopped.return?.();
    assert.equal(statement.busy, false);
    for (const _ of statement.iterate()) break;
    assert.equal(statement.busy, false);
  });

  test('pragma(): getters as rows or simple, setters refused READ_ONLY on a published version, arguments checked as better-sqlite3 does', () => {
    assert.equal(cache.pragma('user_version', { simple: true }), 0);
    assert.deepEqual(cache.pragma('user_version'), [{ user_version: 0 }]);
    assert.deepEqual(
      (cache.pragma('table_info(t)') as Array<{ name: string }>).map((column) => column.name),
      ['id', 'v'],
    );
    assert.equal(cache.pragma('query_only', { simple: true }), 1);
    for (const setter of ['user_version = 3', 'query_only = 0', 'case_sensitive_like = 1', 'foreign_keys(1)']) {
      assert.throws(() => cache.pragma(setter), (error) => isDbCacheError(error, 'READ_ONLY'), setter);
    }
    assert.equal(cache.pragma('user_version', { simple: true }), 0);
    assert.equal(cache.get<{ r: number }>("SELECT 'a' LIKE 'A' AS r")!.r, 1);
    assert.throws(() => cache.pragma('user_version; DELETE FROM t'), RangeError);
    assert.throws(() => cache.pragma(5 as unknown as string), TypeError);
    assert.throws(() => cache.pragma('user_version', 'simple' as never), TypeError);
    assert.throws(() => cache.pragma('user_version', { simple: 1 as unknown as boolean }), TypeError);
    assert.throws(() => cache.pragma('no_such_table_info(t)'), (error) => isDbCacheError(error, 'READ_ONLY') || isDbCacheError(error, 'QUERY'));
    const snap = cache.snapshot();
    try {
      assert.equal(snap.pragma('user_version', { simple: true }), 0);
    } finally {
      snap.release();
    }
  });
});

describe('after close()', () => {
  test('every query, read, snapshot, prepare, reload, subscribe and sqlJsDatabase throws CLOSED; the properties and stats() keep the final state', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    try {
      sqlite(file, "db.executescript('CREATE TABLE t(v); INSERT INTO t VALUES (1);')");
      const cache = await openDbCache(file, { watch: false });
      sqlite(file, "db.execute('INSERT INTO t VALUES (2)')");
      await cache.reload();
      const prepared = cache.prepare('SELECT v FROM t');
      const handle = cache.sqlJsDatabase();
      const events: unknown[] = [];
      const unsubscribe = cache.subscribe((event) => events.push(event));
      const final = { generation: cache.generation, version: cache.version, stats: cache.stats() };
      await cache.close();
      const closed = (error: unknown) => isDbCacheError(error, 'CLOSED');
      for (const [what, call] of [
        ['subscribe', () => cache.subscribe(() => undefined)],
        ['get', () => cache.get('SELECT 1')],
        ['all', () => cache.all('SELECT 1')],
        ['values', () => cache.values('SELECT 1')],
        ['iterate', () => cache.iterate('SELECT 1')],
        ['prepare', () => cache.prepare('SELECT 1')],
        ['pragma', () => cache.pragma('user_version')],
        ['read', () => cache.read(() => 1)],
        ['snapshot', () => cache.snapshot()],
        ['sqlJsDatabase', () => cache.sqlJsDatabase()],
        ['a statement prepared before: get', () => prepared.get()],
        ['a statement prepared before: all', () => prepared.all()],
        ['a statement prepared before: iterate', () => prepared.iterate()],
        ['a statement prepared before: columns', () => prepared.columns()],
        ['a statement prepared before: reader', () => prepared.reader],
        ['an ORM handle taken before', () => handle.prepare('SELECT 1')],
      ] as const) {
        assert.throws(call, closed, what);
      }
      await assert.rejects(cache.reload(), closed);
      assert.equal(cache.closed, true);
      assert.equal(cache.open, false);
      assert.equal(cache.path, file);
      assert.equal(cache.name, file);
      assert.equal(cache.generation, final.generation);
      assert.equal(cache.generation, 2);
      assert.equal(cache.version, final.version);
      assert.equal(prepared.source, 'SELECT v FROM t');
      const stats = cache.stats();
      assert.equal(stats.reloads, final.stats.reloads);
      assert.equal(stats.failures, final.stats.failures);
      assert.equal(stats.liveSnapshots, 0);
      unsubscribe();
      await cache.close();
      assert.deepEqual(events, []);
    } finally {
      cleanup();
    }
  });
});
