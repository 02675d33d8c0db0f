import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDbCacheError, openDbCache, type DbCache, type DbCacheEvent } from '../src/index.ts';
import { PagedStorage } from '../src/pages/paged-storage.ts';
import { holdOpen, recordingLogger, sqlite, tempDir, waitFor } from './support/fixtures.ts';

const SCHEMA = `
db.executescript('''
  CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, big INTEGER, data BLOB);
  INSERT INTO items VALUES (1, 'apple', 1.5, 9007199254740993, x'0102');
  INSERT INTO items VALUES (2, 'pear', 2.25, 2, NULL);
  INSERT INTO items VALUES (3, 'plum', 0.75, 3, x'');
''')`;

describe('read API', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;

  before(async () => {
    sqlite(file, SCHEMA);
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('get returns the first row as an object, or undefined', () => {
    assert.deepEqual(cache.get('SELECT id, name FROM items ORDER BY id'), { id: 1, name: 'apple' });
    assert.equal(cache.get('SELECT * FROM items WHERE id = ?', [99]), undefined);
  });

  test('all, values and iterate agree', () => {
    const rows = cache.all<{ id: number; name: string }>('SELECT id, name FROM items ORDER BY id');
    assert.deepEqual(rows.map((row) => row.name), ['apple', 'pear', 'plum']);
    assert.deepEqual(cache.values('SELECT id, name FROM items ORDER BY id'), rows.map((row) => [row.id, row.name]));
    assert.deepEqual([...cache.iterate('SELECT id, name FROM items ORDER BY id')], rows);
  });

  test('positional and prefix-less named parameters', () => {
    assert.equal(cache.get<{ name: string }>('SELECT name FROM items WHERE id = ?', [2])?.name, 'pear');
    for (const prefix of [':', '@', '$']) {
      const row = cache.get<{ name: string }>(`SELECT name FROM items WHERE id = ${prefix}id AND price > ${prefix}min`, { id: 3, min: 0.5 });
      assert.equal(row?.name, 'plum', `prefix ${prefix}`);
    }
    // A placeholder-looking text inside a string literal is not a parameter.
    assert.equal(cache.get<{ s: string }>("SELECT ':id' AS s WHERE 1 = :one", { one: 1 })?.s, ':id');
  });

  test('missing named parameters and unbindable values throw RangeError / TypeError; undefined binds NULL', () => {
    assert.throws(() => cache.get('SELECT :a AS a', {}), { name: 'RangeError' });
    assert.throws(() => cache.get('SELECT ? AS a', [{} as never]), { name: 'TypeError' });
    assert.throws(() => cache.get('SELECT ? AS a', 5 as never), { name: 'TypeError' });
    assert.deepEqual(cache.get('SELECT ? AS a', [undefined]), { a: null });
  });

  test('booleans bind as 1/0, bigints within 2^53 bind exactly, blobs round-trip', () => {
    assert.deepEqual(cache.get('SELECT ? AS t, ? AS f', [true, false]), { t: 1, f: 0 });
    assert.deepEqual(cache.get('SELECT ? + 1 AS n', [41n]), { n: 42 });
    const blob = cache.get<{ data: Uint8Array }>('SELECT data FROM items WHERE id = 1')!.data;
    assert.ok(blob instanceof Uint8Array);
    assert.deepEqual([...blob], [1, 2]);
    assert.equal(cache.get<{ id: number }>('SELECT id FROM items WHERE data = ?', [new Uint8Array([1, 2])])?.id, 1);
  });

  test('prepare returns a reusable statement with columns and pluck', () => {
    const byId = cache.prepare<{ name: string }>('SELECT name, price FROM items WHERE id = ?');
    assert.deepEqual(byId.columns(), ['name', 'price']);
    assert.equal(byId.get([1])?.name, 'apple');
    assert.equal(byId.get([2])?.name, 'pear');
    assert.deepEqual(cache.prepare('SELECT name FROM items ORDER BY id').pluck().all(), ['apple', 'pear', 'plum']);
    assert.deepEqual(byId.all([3]), [{ name: 'plum', price: 0.75 }]);
  });

  test('nested use of the same SQL works (the cached statement is busy)', () => {
    const sql = 'SELECT id FROM items ORDER BY id';
    const pairs: number[][] = [];
    for (const outer of cache.iterate<{ id: number }>(sql)) {
      for (const inner of cache.iterate<{ id: number }>(sql)) pairs.push([outer.id, inner.id]);
      assert.equal(cache.all(sql).length, 3);
    }
    assert.equal(pairs.length, 9);
  });

  test('breaking out of iterate frees the statement for the next call', () => {
    for (const row of cache.iterate('SELECT id FROM items ORDER BY id')) {
      assert.equal(row.id, 1);
      break;
    }
    assert.equal(cache.all('SELECT id FROM items ORDER BY id').length, 3);
  });

  test('SQL errors throw DbCacheError QUERY naming the path; writes are refused', () => {
    assert.throws(() => cache.get('SELECT * FROM nope'), (error: unknown) => {
      assert.ok(isDbCacheError(error, 'QUERY'));
      assert.equal(error.name, 'DbCacheError');
      assert.ok(error.message.includes(file));
      return true;
    });
    assert.throws(() => cache.all("INSERT INTO items(name) VALUES ('x')"), { name: 'TypeError' });
    assert.throws(() => cache.prepare('DELETE FROM items').run(), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.throws(() => cache.get("INSERT INTO items(name) VALUES ('x') RETURNING id"), { name: 'DbCacheError', code: 'READ_ONLY' });
    assert.equal(cache.all('SELECT * FROM items').length, 3);
  });
});

describe('bigint option', () => {
  test('returns every integer as bigint, exactly', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SCHEMA);
    const cache = await openDbCache(file, { watch: false, bigint: true });
    try {
      const row = cache.get('SELECT id, big, price FROM items WHERE id = 1');
      assert.deepEqual(row, { id: 1n, big: 9007199254740993n, price: 1.5 });
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('snapshots, reloads and generations', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  const events: DbCacheEvent[] = [];

  before(async () => {
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1)')");
    cache = await openDbCache(file, { watch: false });
    cache.subscribe((event) => events.push(event));
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('an unchanged file is a no-op reload: same generation, no event', async () => {
    const generation = cache.generation;
    const noops = cache.stats().noopReloads;
    await cache.reload();
    await cache.reload();
    assert.equal(cache.generation, generation);
    assert.equal(cache.stats().noopReloads, noops + 2);
    assert.equal(events.length, 0);
  });

  test('a lease keeps its version while newer ones are published, and frees it on release', async () => {
    const lease = cache.snapshot();
    const generation = lease.generation;
    sqlite(file, "db.execute('INSERT INTO t VALUES (2)')");
    await cache.reload();
    assert.equal(cache.generation, generation + 1);
    assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n, 2);
    assert.equal(lease.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n, 1);
    assert.equal(cache.stats().liveSnapshots, 2);
    lease.release();
    lease.release();
    assert.equal(cache.stats().liveSnapshots, 1);
    assert.throws(() => lease.get('SELECT 1'), { name: 'DbCacheError', code: 'CLOSED' });
    const event = events.at(-1);
    assert.equal(event?.type, 'reload');
    assert.equal(event.type === 'reload' && event.cause, 'call');
    assert.equal(event.type === 'reload' && event.generation, generation + 1);
  });

  test('Symbol.dispose releases a lease', async () => {
    const lease = cache.snapshot();
    lease[Symbol.dispose]();
    assert.throws(() => lease.all('SELECT 1'), { code: 'CLOSED' });
  });

  test('read(fn) gives one version to several queries and keeps it through an async callback', async () => {
    const done = cache.read(async (snap) => {
      const before = snap.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n;
      sqlite(file, "db.execute('INSERT INTO t VALUES (3)')");
      await cache.reload();
      return [before, snap.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, snap.generation];
    });
    const [before, afterReload, generation] = await done;
    assert.equal(before, afterReload);
    assert.equal(cache.generation, generation! + 1);
    assert.equal(cache.stats().liveSnapshots, 1);
  });

  test('an iterator keeps its version open across a reload', async () => {
    const rows = cache.iterate<{ v: number }>('SELECT v FROM t ORDER BY v');
    assert.equal(rows.next().value?.v, 1);
    sqlite(file, "db.execute('INSERT INTO t VALUES (4)')");
    await cache.reload();
    assert.deepEqual([...rows].map((row) => row.v), [2, 3]);
    assert.equal(cache.stats().liveSnapshots, 1);
  });

  test('breaking out of an iterator releases its version', async () => {
    const rows = cache.iterate<{ v: number }>('SELECT v FROM t ORDER BY v');
    sqlite(file, "db.execute('INSERT INTO t VALUES (8)')");
    await cache.reload();
    assert.equal(cache.stats().liveSnapshots, 2, 'the unfinished iterator holds the previous version');
    for (const row of rows) {
      assert.equal(row.v, 1);
      break;
    }
    assert.equal(cache.stats().liveSnapshots, 1);
  });

  test('a checkpoint changes the files but not the content: same generation', async () => {
    // Another connection stays open, so the commit below stays in the -wal until the checkpoint.
    const release = await holdOpen(file);
    try {
      sqlite(file, "db.execute('INSERT INTO t VALUES (6)')");
      await cache.reload();
      const generation = cache.generation;
      const noops = cache.stats().noopReloads;
      assert.ok(fs.statSync(`${file}-wal`).size > 0, 'the commit is in the -wal');
      sqlite(file, "db.execute('PRAGMA wal_checkpoint(TRUNCATE)')");
      assert.equal(fs.statSync(`${file}-wal`).size, 0, 'the checkpoint emptied the -wal');
      await cache.reload();
      assert.equal(cache.generation, generation);
      assert.equal(cache.stats().noopReloads, noops + 1);
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t WHERE v = 6')!.n, 1);
    } finally {
      await release();
    }
  });

  test('a listener that throws does not break reloads or other listeners', async () => {
    let seen = 0;
    const offBad = cache.subscribe(() => {
      throw new Error('listener bug');
    });
    const offGood = cache.subscribe(() => seen++);
    sqlite(file, "db.execute('INSERT INTO t VALUES (5)')");
    await cache.reload();
    offBad();
    offGood();
    assert.equal(seen, 1);
    // Unsubscribed: the next reload is not delivered.
    const generation = cache.generation;
    sqlite(file, "db.execute('INSERT INTO t VALUES (7)')");
    await cache.reload();
    assert.equal(cache.generation, generation + 1);
    assert.equal(seen, 1);
  });
});

describe('onReload overlay', () => {
  test('runs on the private database before publication; readers never see it without the overlay', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1)')");
    const infos: number[] = [];
    const cache = await openDbCache(file, {
      watch: false,
      onReload: async (db, info) => {
        infos.push(info.generation);
        db.exec('CREATE TABLE derived AS SELECT sum(v) AS total FROM t');
        await Promise.resolve();
        assert.deepEqual(db.run('INSERT INTO derived VALUES (?)', [-1]), { changes: 1, lastInsertRowid: 2 });
      },
    });
    try {
      const check = () => {
        const rows = cache.values('SELECT total FROM derived ORDER BY total');
        const total = cache.get<{ s: number }>('SELECT sum(v) AS s FROM t')!.s;
        assert.deepEqual(rows, [[-1], [total]]);
      };
      check();
      for (let i = 2; i <= 5; i++) {
        sqlite(file, `db.execute('INSERT INTO t VALUES (${i})')`);
        const reloading = cache.reload();
        check();
        await reloading;
        check();
      }
      assert.deepEqual(infos, [1, 2, 3, 4, 5]);
      assert.throws(() => cache.all('INSERT INTO derived VALUES (0)'), { name: 'TypeError' });
      assert.throws(() => cache.prepare('INSERT INTO derived VALUES (0)').run(), { code: 'READ_ONLY' });
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('the overlay can change a table right after reading it', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1), (2)')");
    const cache = await openDbCache(file, {
      watch: false,
      onReload: (db) => {
        const first = db.get<{ v: number }>('SELECT v FROM t ORDER BY v');
        db.exec(`CREATE TABLE first AS SELECT ${first!.v} AS v; DROP TABLE t`);
      },
    });
    try {
      assert.deepEqual(cache.all('SELECT v FROM first'), [{ v: 1 }]);
      assert.equal(cache.get("SELECT count(*) AS n FROM sqlite_schema WHERE name = 't'")!.n, 0);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('a throwing overlay fails the reload with OVERLAY_FAILED and keeps the previous version', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    let fail = false;
    let kept: unknown;
    const cache = await openDbCache(file, {
      watch: false,
      onReload: (db) => {
        kept = db;
        if (fail) throw new Error('overlay bug');
      },
    });
    const errors: DbCacheEvent[] = [];
    cache.subscribe((event) => errors.push(event));
    try {
      fail = true;
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await assert.rejects(cache.reload(), (error: unknown) => {
        assert.ok(isDbCacheError(error, 'OVERLAY_FAILED'));
        assert.match(error.message, /still serving generation 1/);
        assert.equal((error.cause as Error).message, 'overlay bug');
        return true;
      });
      assert.equal(cache.generation, 1);
      assert.equal(cache.all('SELECT * FROM t').length, 0);
      assert.equal(errors[0]?.type, 'error');
      assert.equal(cache.stats().liveSnapshots, 1);
      // The overlay database is unusable once its hook has returned.
      assert.throws(() => (kept as { exec(sql: string): void }).exec('SELECT 1'), { code: 'CLOSED' });
      fail = false;
      await cache.reload();
      assert.equal(cache.all('SELECT * FROM t').length, 1);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('close', () => {
  test('is idempotent; every call after it throws CLOSED; asyncDispose and abort close too', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    try {
      const cache = await openDbCache(file, { watch: false });
      const lease = cache.snapshot();
      await Promise.all([cache.close(), cache.close()]);
      assert.equal(cache.closed, true);
      assert.throws(() => cache.get('SELECT 1'), { name: 'DbCacheError', code: 'CLOSED' });
      assert.throws(() => cache.snapshot(), { code: 'CLOSED' });
      assert.throws(() => cache.read(() => 1), { code: 'CLOSED' });
      await assert.rejects(cache.reload(), { code: 'CLOSED' });
      // A lease taken before close still reads its version until released.
      assert.deepEqual(lease.all('SELECT * FROM t'), []);
      lease.release();
      assert.equal(cache.stats().liveSnapshots, 0);

      const disposed = await openDbCache(file, { watch: false });
      await disposed[Symbol.asyncDispose]();
      assert.equal(disposed.closed, true);

      const controller = new AbortController();
      const aborted = await openDbCache(file, { signal: controller.signal });
      controller.abort();
      await assert.rejects(aborted.reload(), { code: 'CLOSED' });

      await assert.rejects(openDbCache(file, { signal: AbortSignal.abort() }), { name: 'DbCacheError', code: 'CLOSED' });
    } finally {
      cleanup();
    }
  });
});

describe('options', () => {
  test('bad options throw TypeError / RangeError naming the option', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    fs.writeFileSync(file, '');
    try {
      await assert.rejects(openDbCache(file, { watch: 'yes' as never }), { name: 'TypeError', message: /options\.watch/ });
      await assert.rejects(openDbCache(file, { debounceMs: -1 }), { name: 'RangeError', message: /options\.debounceMs/ });
      await assert.rejects(openDbCache(file, { busyTimeoutMs: Number.NaN }), { name: 'TypeError', message: /options\.busyTimeoutMs/ });
      await assert.rejects(openDbCache(file, { onReload: 5 as never }), { name: 'TypeError', message: /options\.onReload/ });
      await assert.rejects(openDbCache(file, { logger: {} as never }), { name: 'TypeError', message: /options\.logger/ });
      await assert.rejects(openDbCache(file, { maxStatements: 1.5 }), { name: 'RangeError', message: /options\.maxStatements/ });
      await assert.rejects(openDbCache(42 as never), { name: 'TypeError' });
    } finally {
      cleanup();
    }
  });

  test('the default logger prints nothing and installs no process handlers', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    fs.writeFileSync(file, '');
    const events = ['exit', 'beforeExit', 'uncaughtException', 'unhandledRejection', 'SIGINT', 'SIGTERM'] as const;
    const listenersBefore = events.map((event) => process.listenerCount(event));
    // What the cache (tslog, sql.js's Emscripten output) would print goes through the console.
    // Direct writes to stdout and stderr are checked in a child process, whose whole output is
    // known, in sqljs-build.test.ts; here the test runner itself may be writing to them.
    const printed: string[] = [];
    const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
    const consoleBefore = methods.map((name) => console[name]);
    for (const name of methods) console[name] = (...args: unknown[]) => void printed.push(`console.${name}: ${args.map(String).join(' ')}`);
    let cache: DbCache | undefined;
    try {
      cache = await openDbCache(file, { watch: false });
      fs.writeFileSync(file, 'not a database at all, but long enough to have a header of one hundred bytes.........................');
      await cache.reload().catch((error: unknown) => printed.push(`(rejected ${(error as { code: string }).code})`));
      fs.rmSync(file);
      await cache.reload().catch((error: unknown) => printed.push(`(rejected ${(error as { code: string }).code})`));
      await cache.close();
      // The control: the same failure with `logger: console` is printed, so the capture works.
      sqlite(file, "db.execute('CREATE TABLE t(v)')");
      cache = await openDbCache(file, { watch: false, logger: console });
      fs.rmSync(file);
      await cache.reload().catch(() => undefined);
    } finally {
      methods.forEach((name, i) => (console[name] = consoleBefore[i]!));
      await cache?.close();
      cleanup();
    }
    assert.deepEqual(printed.slice(0, 2), ['(rejected NOT_A_DATABASE)', '(rejected NOT_FOUND)']);
    assert.ok(printed.length > 2 && printed.slice(2).every((line) => line.startsWith('console.')), printed.join('\n'));
    assert.deepEqual(events.map((event) => process.listenerCount(event)), listenersBefore);
  });
});

declare const Bun: { gc(force: boolean): void } | undefined;

/**
 * A full garbage collection, or `undefined` where the runtime offers none from inside a test (Deno
 * has one when run with `--v8-flags=--expose-gc`, as `npm test` does).
 */
async function garbageCollector(): Promise<(() => void) | undefined> {
  if (typeof Bun !== 'undefined') return () => Bun!.gc(true);
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  if (typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined') return undefined;
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

const collectGarbage = await garbageCollector();

describe('forgotten leases', () => {
  const noGc = collectGarbage === undefined ? 'this runtime offers no garbage collection from inside a test' : false;
  test('a lease garbage-collected without release() is logged and frees its version', { skip: noGc }, async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const { lines, logger } = recordingLogger();
    const cache = await openDbCache(file, { watch: false, logger });
    try {
      (() => {
        cache.snapshot(); // dropped on the floor
      })();
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await cache.reload();
      // (The runtime may already have collected it here: only "eventually" is checked.)
      await waitFor(
        () => {
          collectGarbage!();
          return cache.stats().liveSnapshots === 1;
        },
        'the forgotten lease to be collected',
        10_000,
      );
      assert.equal(lines.warn.length, 1);
      assert.match(lines.warn[0]!, /garbage-collected without being released/);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('images handed to sql.js', () => {
  test('are page tables over the image (no flat copy of it), also when the WAL grew the database', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    const { default: initSqlJs } = await import('sql.js');
    const SQL = await initSqlJs();
    const seen: boolean[] = [];
    const recording = {
      Database: class extends SQL.Database {
        constructor(data?: Uint8Array | null) {
          // dbcache hands sql.js its write-refusing page table, never one array holding the image.
          seen.push(data == null || (data instanceof PagedStorage && !(data instanceof Uint8Array)));
          super(data);
        }
      },
    };
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v BLOB)')");
    const cache = await openDbCache(file, { watch: false, sqlJs: recording });
    // The writer keeps its connection open until stdin closes, so its commits (which add pages) stay in -wal.
    const writer = spawn('python3', [
      '-c',
      "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\ndb.executemany('INSERT INTO t VALUES (?)', [(bytes(3000),)] * 50)\nprint('committed', flush=True)\nsys.stdin.read()\n",
      file,
    ]);
    try {
      await new Promise((resolve) => writer.stdout.once('data', resolve));
      assert.ok(fs.statSync(`${file}-wal`).size > 0);
      await cache.reload();
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 50);
      assert.ok(seen.length >= 2);
      assert.deepEqual(seen, seen.map(() => true));
    } finally {
      writer.stdin.end();
      await new Promise((resolve) => writer.once('exit', resolve));
      await cache.close();
      cleanup();
    }
  });
});
