// An adversarial pass over every public door (issue 18): SQL through every method, the ORM handle,
// onReload hooks, listeners, options objects, source functions, odd paths and the command line.
// Each test pins an attack that changed nothing (or one fixed here), so that a regression fails it.
// Attacks that still succeed are in test/adversarial-failing.test.ts.txt, one case each.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '../src/cli.ts';
import { isDbCacheError, openDbCache, type DbCache, type DbCacheError, type DbCacheEvent, type OverlayDatabase, type Snapshot } from '../src/index.ts';
import { loadSqlJs } from '../src/sqljs.ts';
import { inotifyWatches, runtimeCommand, sqlite, tempDir, waitFor } from './support/fixtures.ts';

const SETUP = `
db.executescript('''
  CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
  CREATE INDEX t_name ON t(name);
  INSERT INTO t VALUES (1, 'apple'), (2, 'Pear'), (3, 'plum');
''')`;

/** What a version shows: content, schema (TEMP too), LIKE's behaviour and its settings. Nothing that names its sql.js file. */
function fingerprint(q: Pick<Snapshot, 'values'>): string {
  const parts = [
    q.values('SELECT id, name FROM t ORDER BY id'),
    q.values('SELECT type, name, sql FROM sqlite_schema ORDER BY name'),
    q.values('SELECT type, name FROM sqlite_temp_schema ORDER BY name'),
    q.values("SELECT 'a' LIKE 'A', count(*) FROM t WHERE name LIKE 'p%'"),
    ...['query_only', 'cache_size', 'hard_heap_limit', 'soft_heap_limit', 'foreign_keys', 'journal_mode', 'locking_mode', 'case_sensitive_like'].map((name) =>
      analyzeGetter(q, name),
    ),
  ];
  return JSON.stringify(parts, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value));
}

function analyzeGetter(q: Pick<Snapshot, 'values'>, name: string): unknown {
  try {
    return [name, q.values(`PRAGMA ${name}`)];
  } catch (error) {
    // case_sensitive_like has no getter: refused, and that refusal is part of the picture.
    return [name, (error as DbCacheError).code ?? String(error)];
  }
}

const commit = (file: string): void => void sqlite(file, "db.execute(\"INSERT INTO t(name) VALUES ('x')\")");

/** Rejects if `promise` has not settled within `ms` (a hang guard, not a duration check). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms))),
  ]);
}

function code(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    if (isDbCacheError(error)) return error.code;
    return (error as Error).name;
  }
  return 'ok';
}

describe('SQL: functions and limits reach nothing beyond the query', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  const otherFile = path.join(dir, 'other.db');
  let cache: DbCache;
  let other: DbCache;
  let earlier: Snapshot;
  let baseline: string;
  let otherBaseline: string;

  before(async () => {
    sqlite(file, SETUP);
    sqlite(otherFile, SETUP);
    cache = await openDbCache(file, { watch: false });
    other = await openDbCache(otherFile, { watch: false });
    earlier = cache.snapshot();
    baseline = fingerprint(cache);
    otherBaseline = fingerprint(other);
  });
  after(async () => {
    earlier.release();
    await cache.close();
    await other.close();
    cleanup();
  });

  /** Runs `sql` through the cache, a statement and the ORM handle; each must fail with `expected`, and nothing anywhere may change. */
  async function attempt(sql: string, expected: string): Promise<void> {
    const handle = cache.sqlJsDatabase();
    const doors: Record<string, () => unknown> = {
      'cache.get': () => cache.get(sql),
      'statement.all': () => cache.prepare(sql).all(),
      'iterate': () => [...cache.iterate(sql)],
      'sqlJsDatabase': () => {
        const statement = handle.prepare(sql);
        try {
          return statement.step();
        } finally {
          statement.free();
        }
      },
    };
    for (const [door, call] of Object.entries(doors)) assert.equal(code(call), expected, `${door}: ${sql.slice(0, 80)}`);
    assert.equal(fingerprint(cache), baseline, `${sql.slice(0, 80)} changed the live version`);
    assert.equal(fingerprint(earlier), baseline, `${sql.slice(0, 80)} changed an earlier lease`);
    assert.equal(fingerprint(other), otherBaseline, `${sql.slice(0, 80)} changed another cache`);
  }

  test('functions that act or are internal are absent or refused by SQLite itself', async () => {
    for (const sql of [
      "SELECT load_extension('/tmp/x.so')",
      "SELECT fts3_tokenizer('evil', x'0000000000000000')",
      "SELECT fts3_tokenizer('simple', fts3_tokenizer('porter'))",
      'SELECT sqlite_offset(id) FROM t',
      "SELECT sqlite_rename_table('main', 't', 'table', 'x', 'y', 0)",
      "SELECT sqlite_rename_column('CREATE TABLE t(a)', 'table', 't', 'main', 't', 0, 'b', 0, 0)",
      "SELECT sqlite_drop_column(0, 'CREATE TABLE t(a, b)', 1)",
      "SELECT sqlite_rename_test('main', 'CREATE TABLE t(a)', 'table', 't', 0, 0, 0)",
      'SELECT implies_nonnull_row(1, 2)',
      'SELECT expr_compare(1, 2)',
    ]) {
      await attempt(sql, 'QUERY');
    }
    // The one-argument fts3_tokenizer only reports (NULL: no pointer is disclosed).
    assert.deepEqual(cache.values("SELECT fts3_tokenizer('simple')"), [[null]]);
  });

  test('sizes past SQLite’s limits are TOO_BIG before anything is allocated; depth and width limits are QUERY', async () => {
    for (const sql of [
      'SELECT zeroblob(1000000001)',
      "SELECT printf('%*d', 2147483647, 1)",
      "SELECT printf('%2147483647d', 1)",
      'SELECT randomblob(1000000001)',
    ]) {
      await attempt(sql, 'TOO_BIG');
    }
    for (const sql of [
      `SELECT ${'('.repeat(5000)}1${')'.repeat(5000)}`,
      `SELECT ${'abs('.repeat(3000)}1${')'.repeat(3000)}`,
      `SELECT ${'(SELECT '.repeat(200)}1${')'.repeat(200)}`,
      `SELECT 1${' UNION ALL SELECT 1'.repeat(1000)}`,
      `SELECT ${Array.from({ length: 2001 }, (_, i) => i).join(', ')}`,
      `SELECT * FROM ${Array.from({ length: 70 }, (_, i) => `t AS t${i}`).join(', ')}`,
      `SELECT json('${'['.repeat(2000)}${']'.repeat(2000)}')`,
    ]) {
      await attempt(sql, 'QUERY');
    }
    // The engine was never taken as damaged: a fresh cache opens and answers.
    const fresh = await openDbCache(otherFile, { watch: false });
    try {
      assert.equal(fingerprint(fresh), otherBaseline);
    } finally {
      await fresh.close();
    }
  });

  test('a column named __proto__ or constructor pollutes no shared prototype', () => {
    const row = cache.get<Record<string, unknown>>('SELECT 1 AS __proto__, 2 AS constructor, 3 AS b')!;
    assert.equal(Object.getPrototypeOf(row), Object.prototype);
    assert.equal(row.b, 3);
    cache.all("SELECT x'00' AS __proto__, 'p' AS toString");
    cache.values("SELECT x'00' AS __proto__");
    const plain: Record<string, unknown> = {};
    assert.equal(plain.constructor, Object);
    assert.equal(typeof plain.toString, 'function');
    assert.deepEqual(Object.keys(Object.prototype), []);
  });
});

describe('column names', () => {
  // `row["__proto__"] = value` would set the row's prototype (a blob: the row inherits Uint8Array's
  // methods and bytes as indexes) or drop the value. better-sqlite3 12.6 does that; dbcache keeps
  // the column as an own property like any other (README, "Compared with better-sqlite3").
  test('a column named __proto__ is an own property of the row, never its prototype, through every door', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE p(\"__proto__\" BLOB, b INTEGER)'); db.execute(\"INSERT INTO p VALUES (x'0102', 7)\")");
    const cache = await openDbCache(file, { watch: false });
    const big = await openDbCache(file, { watch: false, bigint: true, memo: true });
    try {
      const rows = [
        cache.get<Record<string, unknown>>('SELECT * FROM p')!,
        cache.all<Record<string, unknown>>('SELECT * FROM p')[0]!,
        [...cache.iterate<Record<string, unknown>>('SELECT * FROM p')][0]!,
        cache.prepare('SELECT * FROM p').get() as Record<string, unknown>,
        cache.sqlJsDatabase().prepare('SELECT * FROM p').getAsObject([]),
        big.get<Record<string, unknown>>('SELECT * FROM p')!,
        big.get<Record<string, unknown>>('SELECT * FROM p')!,
      ];
      for (const row of rows) {
        assert.equal(Object.getPrototypeOf(row), Object.prototype);
        assert.deepEqual(Object.keys(row), ['__proto__', 'b']);
        assert.deepEqual(Object.getOwnPropertyDescriptor(row, '__proto__')?.value, new Uint8Array([1, 2]));
      }
    } finally {
      await cache.close();
      await big.close();
      cleanup();
    }
  });
});

describe('SQL: views stored in the database file', () => {
  test('a view over a PRAGMA function that acts is stopped by query_only; the others do not exist as tables', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(
      file,
      `${SETUP}
db.executescript('''
  CREATE VIEW v_optimize AS SELECT * FROM pragma_optimize;
  CREATE VIEW v_shrink AS SELECT * FROM pragma_shrink_memory;
  CREATE VIEW v_checkpoint AS SELECT * FROM pragma_wal_checkpoint;
  CREATE VIEW v_vacuum AS SELECT * FROM pragma_incremental_vacuum;
  CREATE VIEW v_info AS SELECT name FROM pragma_table_info('t');
''')`,
    );
    const cache = await openDbCache(file, { watch: false });
    const earlier = cache.snapshot();
    try {
      const baseline = fingerprint(cache);
      for (let round = 0; round < 2; round++) {
        // ANALYZE writes sqlite_stat1: refused by the version's query_only (SQLite's own error).
        assert.equal(code(() => cache.all('SELECT * FROM v_optimize')), 'QUERY');
        for (const view of ['v_shrink', 'v_checkpoint', 'v_vacuum']) assert.equal(code(() => cache.all(`SELECT * FROM ${view}`)), 'QUERY', view);
      }
      assert.deepEqual(cache.values('SELECT * FROM v_info'), [['id'], ['name']]);
      assert.equal(code(() => cache.all('SELECT * FROM sqlite_stat1')), 'QUERY');
      assert.equal(fingerprint(cache), baseline);
      assert.equal(fingerprint(earlier), baseline);
    } finally {
      earlier.release();
      await cache.close();
      cleanup();
    }
  });
});

describe('the ORM handle', () => {
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

  test('holds nothing reachable: no own properties, nothing to serialise, no SQL but a string', () => {
    const handle = cache.sqlJsDatabase();
    const statement = handle.prepare('SELECT id FROM t');
    for (const object of [handle, statement]) {
      assert.deepEqual(Reflect.ownKeys(object), []);
      assert.equal(JSON.stringify(object), '{}');
      assert.deepEqual(structuredClone(object), {});
    }
    for (const sql of [{ [Symbol.toPrimitive]: () => 'SELECT 1' }, new String('SELECT 1'), { toString: () => 'SELECT 1' }, null]) {
      assert.throws(() => handle.prepare(sql as unknown as string), { name: 'TypeError' });
    }
    for (const method of ['exec', 'run', 'each', 'iterateStatements', 'create_function', 'create_aggregate', 'updateHook', 'export', 'getRowsModified', 'handleError'] as const) {
      assert.throws(() => (handle[method] as () => unknown)(), { name: 'TypeError' }, method);
    }
    statement.free();
  });

  test('a cursor stepping across a reload keeps its version; a new statement reads the new one', async () => {
    const handle = cache.sqlJsDatabase();
    const cursor = handle.prepare('SELECT id, name FROM t ORDER BY id');
    assert.equal(cursor.step(), true);
    assert.deepEqual(cursor.getAsObject(), { id: 1, name: 'apple' });
    const rowsBefore = cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n;
    commit(file);
    await cache.reload();
    const count = handle.prepare('SELECT count(*) AS n FROM t');
    assert.equal(count.step(), true);
    assert.deepEqual(count.getAsObject(), { n: rowsBefore + 1 });
    let rows = 1;
    while (cursor.step()) rows++;
    assert.equal(rows, rowsBefore);
    cursor.free();
    count.free();
    assert.equal(cache.stats().liveSnapshots, 1);
  });

  test('after close(), a lease’s release() or the cache’s close(), statements throw CLOSED (free() still works)', async () => {
    const closedCode = (call: () => unknown) => code(call);
    const handle = cache.sqlJsDatabase();
    const open = handle.prepare('SELECT 1 AS x');
    open.step();
    handle.close();
    for (const [name, call] of Object.entries({ step: () => open.step(), get: () => open.get(), getAsObject: () => open.getAsObject(), columns: () => open.getColumnNames(), all: () => open.all(), prepare: () => handle.prepare('SELECT 1') })) {
      assert.equal(closedCode(call), 'CLOSED', name);
    }
    assert.equal(open.free(), true);

    const snap = cache.snapshot();
    const pinned = snap.sqlJsDatabase();
    const stepping = pinned.prepare('SELECT * FROM t');
    stepping.step();
    const rows = pinned.prepare('SELECT * FROM t').iterate();
    rows.next();
    snap.release();
    assert.equal(closedCode(() => stepping.step()), 'CLOSED');
    assert.equal(closedCode(() => rows.next()), 'CLOSED');
    assert.equal(closedCode(() => pinned.prepare('SELECT 1')), 'CLOSED');
    assert.equal(cache.stats().liveSnapshots, 1);

    const { dir: dir2, cleanup: cleanup2 } = tempDir();
    const file2 = path.join(dir2, 'app.db');
    sqlite(file2, SETUP);
    const closing = await openDbCache(file2, { watch: false });
    const live = closing.sqlJsDatabase();
    const midway = live.prepare('SELECT * FROM t');
    midway.step();
    const iterator = live.prepare('SELECT * FROM t').iterate();
    iterator.next();
    await closing.close();
    try {
      assert.equal(closedCode(() => midway.step()), 'CLOSED');
      assert.equal(closedCode(() => iterator.next()), 'CLOSED');
      assert.equal(closedCode(() => live.prepare('SELECT 1')), 'CLOSED');
      assert.equal(closedCode(() => closing.sqlJsDatabase()), 'CLOSED');
    } finally {
      cleanup2();
    }
  });
});

describe('onReload hooks doing strange but legal things', () => {
  let dir: string;
  let cleanup: () => void;
  before(() => ({ dir, cleanup } = tempDir()));
  after(() => cleanup());
  let n = 0;
  const newFile = (): string => {
    const file = path.join(dir, `hook-${n++}.db`);
    sqlite(file, SETUP);
    return file;
  };

  test('thenables that throw, hostile rejections and thrown non-errors: OVERLAY_FAILED, and the previous version keeps serving', async () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const failing: Record<string, () => unknown> = {
      'then throws': () => ({
        then() {
          throw new Error('then threw');
        },
      }),
      'then getter throws': () => ({
        get then() {
          throw new Error('then getter');
        },
      }),
      'rejects with a revoked proxy': () => ({ then: (_: unknown, reject: (value: unknown) => void) => reject(revoked.proxy) }),
      'throws null': () => {
        throw null;
      },
      'throws undefined': () => {
        throw undefined;
      },
      'rejects with a symbol': () => Promise.reject(Symbol('s')),
    };
    for (const [name, second] of Object.entries(failing)) {
      const file = newFile();
      let calls = 0;
      const cache = await openDbCache(file, { watch: false, onReload: () => (++calls === 1 ? undefined : second()) as void });
      try {
        commit(file);
        await assert.rejects(cache.reload(), (error: unknown) => isDbCacheError(error, 'OVERLAY_FAILED'), name);
        assert.equal(cache.generation, 1, name);
        assert.deepEqual(cache.get('SELECT count(*) AS n FROM t'), { n: 3 }, name);
      } finally {
        await cache.close();
      }
    }
    // Settled ones publish: resolved, then threw (ignored, as by await), resolved twice.
    for (const second of [
      () => ({
        then(resolve: () => void) {
          resolve();
          throw new Error('after resolve');
        },
      }),
      () => ({
        then(resolve: () => void) {
          resolve();
          resolve();
        },
      }),
    ]) {
      const file = newFile();
      let calls = 0;
      const cache = await openDbCache(file, { watch: false, onReload: () => (++calls === 1 ? undefined : second()) as unknown as void });
      try {
        commit(file);
        await cache.reload();
        assert.equal(cache.generation, 2);
      } finally {
        await cache.close();
      }
    }
  });

  test('the db kept past the hook throws CLOSED from a listener and a timer; nothing it tried landed', async () => {
    const file = newFile();
    let kept: OverlayDatabase | undefined;
    const cache = await openDbCache(file, {
      watch: false,
      onReload: (db) => {
        kept = db;
        db.exec('CREATE TABLE IF NOT EXISTS o(x)');
      },
    });
    try {
      const seen: string[] = [];
      cache.subscribe(() => {
        seen.push(code(() => kept!.exec('INSERT INTO o VALUES (1)')), code(() => kept!.get('SELECT 1')));
      });
      commit(file);
      await cache.reload();
      await new Promise((resolve) => setTimeout(resolve, 1));
      seen.push(code(() => kept!.run('INSERT INTO o VALUES (1)')), code(() => kept!.prepare('SELECT 1')), code(() => kept!.iterate('SELECT 1')));
      assert.deepEqual(seen, ['CLOSED', 'CLOSED', 'CLOSED', 'CLOSED', 'CLOSED']);
      assert.deepEqual(cache.get('SELECT count(*) AS n FROM o'), { n: 0 });
    } finally {
      await cache.close();
    }
  });

  test('signal aborted while an async hook waits: the reload fails with CLOSED and the cache is closed', async () => {
    const file = newFile();
    const controller = new AbortController();
    let calls = 0;
    const cache = await openDbCache(file, {
      watch: false,
      signal: controller.signal,
      onReload: async (db) => {
        if (++calls !== 2) return;
        controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 5));
        db.exec('CREATE TABLE late(x)');
      },
    });
    commit(file);
    await assert.rejects(within(cache.reload(), 60_000, 'reload'), (error: unknown) => isDbCacheError(error, 'CLOSED'));
    assert.equal(cache.closed, true);
  });

  test('a hook may reload, open and close other caches', async () => {
    const otherFile = newFile();
    const other = await openDbCache(otherFile, { watch: false });
    const file = newFile();
    let calls = 0;
    let opened: DbCache | undefined;
    const cache = await openDbCache(file, {
      watch: false,
      onReload: async () => {
        if (++calls !== 2) return;
        await other.reload();
        opened = await openDbCache(otherFile, { watch: false });
        await other.close();
      },
    });
    try {
      commit(file);
      await within(cache.reload(), 60_000, 'reload');
      assert.equal(cache.generation, 2);
      assert.equal(other.closed, true);
      assert.deepEqual(opened!.get('SELECT count(*) AS n FROM t'), { n: 3 });
    } finally {
      await opened?.close();
      await cache.close();
    }
  });
});

describe('listeners', () => {
  test('a listener cannot rewrite the error that other listeners and the caller of reload() receive', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    let fail = false;
    const cache = await openDbCache(file, {
      watch: false,
      onReload: () => {
        if (fail) throw new Error('boom');
      },
    });
    try {
      fail = true;
      const tried: string[] = [];
      cache.subscribe((event) => {
        if (event.type !== 'error') return;
        const error = event.error as unknown as Record<string, unknown>;
        for (const [key, value] of [
          ['code', 'FORGED'],
          ['path', '/etc/passwd'],
          ['name', 'Error'],
        ] as const) {
          try {
            error[key] = value;
          } catch {
            tried.push(`${key} refused`);
          }
          try {
            Object.defineProperty(error, key, { value });
          } catch {
            tried.push(`${key} redefinition refused`);
          }
        }
      });
      const seen: unknown[] = [];
      cache.subscribe((event) => event.type === 'error' && seen.push([event.error.code, event.error.path, event.error.name]));
      commit(file);
      await assert.rejects(cache.reload(), (error: unknown) => {
        assert.ok(isDbCacheError(error, 'OVERLAY_FAILED'), String(error));
        assert.equal((error as DbCacheError).path, file);
        return true;
      });
      assert.deepEqual(seen, [['OVERLAY_FAILED', file, 'DbCacheError']]);
      assert.equal(tried.length, 6);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('a listener that unsubscribes 10,000 others: none of them is called; one that leases every version pins only what it holds', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const cache = await openDbCache(file, { watch: false });
    try {
      const offs: Array<() => void> = [];
      let calls = 0;
      offs.push(cache.subscribe(() => offs.forEach((off) => off())));
      for (let i = 0; i < 10_000; i++) offs.push(cache.subscribe(() => void calls++));
      commit(file);
      await cache.reload();
      assert.equal(calls, 0);
      const held: Snapshot[] = [];
      const off = cache.subscribe((event: DbCacheEvent) => event.type === 'reload' && held.push(cache.snapshot()));
      for (let i = 0; i < 3; i++) {
        commit(file);
        await cache.reload();
      }
      off();
      assert.equal(cache.stats().liveSnapshots, 3);
      for (const snapshot of held) snapshot.release();
      assert.equal(cache.stats().liveSnapshots, 1);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('options objects', () => {
  // Before the fix, close() called the signal's method first: it rejected with 'remove' and the
  // watcher kept its inotify watch for the life of the process.
  test('a signal whose removeEventListener throws cannot keep a closed cache watching', { skip: inotifyWatches() === undefined && 'counts inotify watches (Linux)' }, async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const before = inotifyWatches()!;
    const controller = new AbortController();
    Object.defineProperty(controller.signal, 'removeEventListener', {
      value: () => {
        throw new Error('remove');
      },
    });
    const cache = await openDbCache(file, { signal: controller.signal });
    try {
      await cache.close();
      assert.equal(cache.closed, true);
      await waitFor(() => inotifyWatches() === before, () => `${inotifyWatches()} inotify watches instead of ${before} after close()`, 5000);
    } finally {
      cleanup();
    }
  });

  test('a getter that throws is the caller’s error; proxies, null-prototype, frozen, inherited options work; changes after open change nothing', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    try {
      const thrown = new Error('getter');
      await assert.rejects(
        openDbCache(file, {
          get watch(): boolean {
            throw thrown;
          },
        }),
        (error) => error === thrown,
      );
      const ownKeys = new Error('ownKeys');
      await assert.rejects(
        openDbCache(
          file,
          new Proxy(
            {},
            {
              ownKeys() {
                throw ownKeys;
              },
            },
          ),
        ),
        (error) => error === ownKeys,
      );
      for (const options of [
        new Proxy({ watch: false }, { get: (_target, key) => (key === 'watch' ? false : undefined) }),
        Object.assign(Object.create(null) as object, { watch: false }),
        Object.freeze({ watch: false }),
        Object.create({ watch: false }) as object,
        { watch: false, [Symbol('x')]: 1 },
      ]) {
        const cache = await openDbCache(file, options);
        try {
          assert.deepEqual(cache.get('SELECT count(*) AS n FROM t'), { n: 3 });
        } finally {
          await cache.close();
        }
      }
      const options: Record<string, unknown> = { watch: false, memo: true };
      const cache = await openDbCache(file, options);
      try {
        options.memo = false;
        options.bigint = true;
        options.onReload = () => {
          throw new Error('added later');
        };
        commit(file);
        await cache.reload();
        assert.equal(cache.generation, 2);
        assert.equal(typeof cache.get<{ x: unknown }>('SELECT 1 AS x')!.x, 'number');
        assert.ok(Object.isFrozen(cache.get('SELECT 1 AS x')), 'memo stays on: results are frozen');
      } finally {
        await cache.close();
      }
    } finally {
      cleanup();
    }
  });
});

describe('options read once', () => {
  test('each option is read exactly once, so a getter cannot pass validation with one value and be used with another', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const reads: Record<string, number> = {};
    const options = {};
    const values = { watch: false, poll: 50, memo: 5, debounceMs: 3, maxWaitMs: 30, bigint: false, cacheSize: 2000, maxStatements: 10, busyTimeoutMs: 100, quickCheck: false };
    for (const [name, value] of Object.entries(values)) {
      Object.defineProperty(options, name, {
        enumerable: true,
        get() {
          reads[name] = (reads[name] ?? 0) + 1;
          // A second read would answer something that fails validation.
          return reads[name] === 1 ? value : 'changed';
        },
      });
    }
    const cache = await openDbCache(file, options);
    try {
      assert.deepEqual(cache.get('SELECT count(*) AS n FROM t'), { n: 3 });
      assert.deepEqual(reads, Object.fromEntries(Object.keys(values).map((name) => [name, 1])));
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('source functions', () => {
  let image: Uint8Array;
  before(async () => {
    const sqlJs = await loadSqlJs();
    const maker = new sqlJs.Database(null) as unknown as { exec(sql: string): unknown; export(): Uint8Array; close(): void };
    maker.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'apple'), (2, 'Pear'), (3, 'plum')");
    image = maker.export();
    maker.close();
  });

  async function rows(source: () => Uint8Array): Promise<unknown> {
    const cache = await openDbCache(source, { watch: false });
    try {
      return cache.values('SELECT id FROM t ORDER BY id');
    } finally {
      await cache.close();
    }
  }

  test('a length, byteLength or subarray that lies cannot size or cut the image: the real bytes are read', async () => {
    const lying: Record<string, Uint8Array> = {};
    for (const value of [0, Number.NaN, 100, 1e12, 2 ** 53, -1]) {
      lying[`length ${value}`] = Object.defineProperty(image.slice(), 'length', { value });
    }
    lying['byteLength 0'] = Object.defineProperty(image.slice(), 'byteLength', { value: 0 });
    class ShortLength extends Uint8Array {
      override get length(): number {
        return 5;
      }
    }
    lying['a subclass whose length says 5'] = new ShortLength(image);
    class OtherBytes extends Uint8Array {
      override subarray(): Uint8Array<ArrayBuffer> {
        return new Uint8Array(40_960).fill(7);
      }
    }
    lying['a subclass whose subarray returns other bytes'] = new OtherBytes(image);
    lying['an own subarray that is no function'] = Object.defineProperty(image.slice(), 'subarray', { value: 1 });
    for (const [name, bytes] of Object.entries(lying)) {
      assert.deepEqual(await rows(() => bytes), [[1], [2], [3]], name);
    }
  });

  test('a proxy of a Uint8Array and a view of a detached buffer are SOURCE_FAILED (not an empty database)', async () => {
    const proxy = new Proxy(image.slice(), {});
    const detached = image.slice();
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    assert.equal(detached.byteLength, 0);
    for (const [name, bytes] of Object.entries({ proxy, detached })) {
      await assert.rejects(rows(() => bytes), (error: unknown) => isDbCacheError(error, 'SOURCE_FAILED'), name);
    }
    // An empty array is still an empty database.
    const cache = await openDbCache(() => new Uint8Array(0), { watch: false });
    try {
      assert.deepEqual(cache.values('SELECT count(*) FROM sqlite_schema'), [[0]]);
    } finally {
      await cache.close();
    }
  });

  test('bytes the source changes after returning them (a SharedArrayBuffer too) do not change the version', async () => {
    const reused = image.slice();
    const shared = new Uint8Array(new SharedArrayBuffer(image.length));
    shared.set(image);
    for (const bytes of [reused, shared]) {
      const cache = await openDbCache(() => bytes, { watch: false });
      const lease = cache.snapshot();
      try {
        bytes.fill(0, 100);
        bytes.fill(0x5a, 4096);
        assert.deepEqual(cache.values('SELECT id, name FROM t ORDER BY id'), [[1, 'apple'], [2, 'Pear'], [3, 'plum']]);
        assert.deepEqual(lease.values('PRAGMA quick_check'), [['ok']]);
      } finally {
        lease.release();
        await cache.close();
      }
    }
  });
});

const posix = process.platform !== 'win32';

describe('paths that are not database files', () => {
  const { dir, cleanup } = tempDir();
  after(cleanup);

  test('a FIFO, a directory, a socket, /dev/zero and /proc/self/mem as the database are typed errors, at once', { skip: !posix && 'no FIFOs, sockets or /dev on Windows' }, async () => {
    const fifo = path.join(dir, 'fifo.db');
    spawnSync('mkfifo', [fifo]);
    const directory = path.join(dir, 'dir.db');
    fs.mkdirSync(directory);
    const socket = path.join(dir, 'sock.db');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    const zero = path.join(dir, 'zero.db');
    fs.symlinkSync('/dev/zero', zero);
    const cases: Array<[string, string[]]> = [
      [fifo, ['NOT_A_FILE']],
      [directory, ['NOT_A_FILE']],
      [socket, ['NOT_A_FILE']],
      [zero, ['NOT_A_FILE']],
    ];
    if (fs.existsSync('/proc/self/mem')) {
      const mem = path.join(dir, 'mem.db');
      fs.symlinkSync('/proc/self/mem', mem);
      cases.push([mem, ['IO', 'NOT_A_DATABASE']]);
    }
    try {
      for (const [file, codes] of cases) {
        await assert.rejects(
          within(openDbCache(file, { watch: false }), 60_000, file),
          (error: unknown) => isDbCacheError(error) && codes.includes(error.code),
          file,
        );
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a FIFO beside the database (as -journal, -wal or -shm) does not block the process', { skip: !posix && 'no FIFOs on Windows' }, () => {
    const script = fileURLToPath(new URL('./scripts/open-code.ts', import.meta.url));
    for (const suffix of ['-journal', '-wal', '-shm']) {
      const file = path.join(dir, `beside${suffix}.db`);
      sqlite(file, SETUP);
      spawnSync('mkfifo', [`${file}${suffix}`]);
      const [command, args] = runtimeCommand(script);
      // Before the fix the child blocked for good in open(2) and ignored SIGTERM (its event loop never ran).
      const result = spawnSync(command, [...args, file], { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
      assert.equal(result.status, 0, `${suffix}: exit ${result.status} (signal ${result.signal})\n${result.stdout}\n${result.stderr}`);
      const outcome = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { opened: boolean; code?: string };
      // SQLite reads such a database when it does not need the FIFO, and cannot when it does (a -journal).
      assert.ok(outcome.opened || outcome.code === 'IO' || outcome.code === 'NOT_A_FILE', `${suffix}: ${result.stdout}`);
    }
  });
});

describe('the command line', () => {
  const { dir, cleanup } = tempDir();
  after(cleanup);

  function capture() {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, output: { out: (text: string) => void out.push(text), err: (text: string) => void err.push(text) } };
  }

  const RAW_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

  test('text from the database reaches the terminal without control characters: errors, verbose logs, tables and JSON', async () => {
    const file = path.join(dir, 'ansi.db');
    // A virtual table whose module name carries ESC [31m and an OSC that sets the terminal title;
    // rows with ESC, a C1 CSI (U+009B), a line separator and a bidirectional override.
    sqlite(
      file,
      `db.execute('CREATE TABLE t(x)')
db.execute("INSERT INTO t VALUES (char(27) || '[31mRED' || char(27) || '[0m'), (char(155) || '31mC1'), (char(8232)), (char(8238) || 'abc')")
db.execute('PRAGMA writable_schema=ON')
db.execute("INSERT INTO sqlite_master VALUES ('table', 'evil', 'evil', 0, 'CREATE VIRTUAL TABLE evil USING \\"x' || char(27) || '[31mRED' || char(27) || ']0;PWNED' || char(7) || '\\"')")`,
    );
    const runs: Array<[string[], 'err' | 'out']> = [
      [['query', file, 'SELECT * FROM evil'], 'err'],
      [['query', file, 'SELECT * FROM evil', '--json'], 'err'],
      [['query', file, 'SELECT * FROM evil', '--verbose'], 'err'],
      [['query', file, 'SELECT x, x AS "h\u001b[1mB\u009b" FROM t'], 'out'],
      [['query', file, 'SELECT x, x AS "h\u001b[1mB\u009b" FROM t', '--json'], 'out'],
      [['query', file, 'SELECT x, x AS "h\u001b[1mB\u009b" FROM t', '--jsonl'], 'out'],
    ];
    for (const [args, stream] of runs) {
      const run = capture();
      await runCli(args, run.output);
      const text = run[stream].join('\n');
      assert.ok(text.length > 0, args.join(' '));
      assert.doesNotMatch(text.replaceAll('\n', ' '), RAW_CONTROLS, `${args.join(' ')}: ${JSON.stringify(text)}`);
    }
    // JSON stays exact: the escapes read back as the same characters.
    const run = capture();
    await runCli(['query', file, 'SELECT x FROM t', '--jsonl'], run.output);
    assert.deepEqual(
      run.out.join('\n').split('\n').map((line) => (JSON.parse(line) as { x: string }).x),
      ['\u001b[31mRED\u001b[0m', '\u009b31mC1', '\u2028', '\u202eabc'],
    );
  });

  test('odd arguments: "-" is a path, "--" makes names that start with "-" values, deep --params is USAGE, __proto__ is a name', async () => {
    const dash = path.join(dir, '-');
    const optionLike = path.join(dir, '--json');
    sqlite(dash, SETUP);
    sqlite(optionLike, SETUP);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      let run = capture();
      assert.equal(await runCli(['query', '-', 'SELECT count(*) AS n FROM t', '--jsonl'], run.output), 0);
      assert.deepEqual(JSON.parse(run.out.join('\n')), { n: 3 });
      run = capture();
      assert.equal(await runCli(['query', '--jsonl', '--', '--json', 'SELECT count(*) AS n FROM t'], run.output), 0);
      assert.deepEqual(JSON.parse(run.out.join('\n')), { n: 3 });
      run = capture();
      assert.equal(await runCli(['query', '-x.db', 'SELECT 1'], run.output), 2);
      run = capture();
      assert.equal(await runCli(['query', '-', 'SELECT :a', '--params', `{"a":${'['.repeat(100)}${']'.repeat(100)}}`, '--json'], run.output), 2);
      assert.equal((JSON.parse(run.err.join('\n')) as { error: { code: string } }).error.code, 'USAGE');
      run = capture();
      assert.equal(await runCli(['query', '-', 'SELECT :__proto__ AS p, :constructor AS c', '--params', '{"__proto__":5,"constructor":6}', '--jsonl'], run.output), 0);
      assert.deepEqual(JSON.parse(run.out.join('\n')), { p: 5, c: 6 });
    } finally {
      process.chdir(cwd);
    }
  });
});
