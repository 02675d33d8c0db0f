// The library's calls into user code (the onReload hook, loggers, listeners) cannot change what it
// does next: after every attempt below, the live version, an older lease, an unrelated cache and a
// fresh open answer exactly as before.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DbCacheError, isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type OverlayDatabase, type Snapshot } from '../src/index.ts';
import { engineOf } from '../src/engine.ts';
import { describe as describeValue, toError } from '../src/errors.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';
import { recordingLogger, runtimeCommand, sqlite, tempDir } from './support/fixtures.ts';

const SETUP = `
db.executescript('''
  CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, name TEXT);
  INSERT INTO t VALUES (1, 10, 'apple'), (2, 20, 'Pear'), (3, 30, 'plum');
''')`;

type Hook = (db: OverlayDatabase) => unknown;

/** Settles with `promise`, or fails once `ms` have passed without it settling (a deadlock never settles). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** PRAGMA getters the live version answers (every name in SQLite's list that the guard lets through as a read). */
function settingGetters(q: Pick<DbCache, 'values'>): string[] {
  const names = q.values('PRAGMA pragma_list').map(([name]) => String(name));
  return names.filter((name) => {
    if (['data_version', 'function_list', 'module_list'].includes(name)) return false;
    try {
      q.values(`PRAGMA ${name}`);
      return true;
    } catch {
      return false;
    }
  });
}

/** What a version shows: content, schema, TEMP schema, LIKE's behaviour and every PRAGMA getter. */
function fingerprint(q: Pick<Snapshot, 'values'>, getters: readonly string[]): string {
  const parts: unknown[] = [
    q.values('SELECT id, v, name FROM t ORDER BY id'),
    q.values('SELECT type, name, sql FROM sqlite_schema ORDER BY name'),
    q.values('SELECT type, name, sql FROM sqlite_temp_schema ORDER BY name'),
    q.values('PRAGMA database_list'),
    q.values("SELECT 'a' LIKE 'A', count(*) FROM t WHERE name LIKE 'p%'"),
  ];
  for (const name of getters) parts.push(name, q.values(`PRAGMA ${name}`));
  return JSON.stringify(parts, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value));
}

/** An unrelated cache, open for the whole file: it must keep answering whatever another cache's hook did. */
const bystander = tempDir();
const bystanderFile = path.join(bystander.dir, 'other.db');
let other: DbCache;
let otherGetters: string[];
let otherBaseline: string;

before(async () => {
  sqlite(bystanderFile, SETUP);
  other = await openDbCache(bystanderFile, { watch: false });
  otherGetters = settingGetters(other);
  otherBaseline = fingerprint(other, otherGetters);
});
after(async () => {
  await other.close();
  bystander.cleanup();
});

/**
 * A cache whose hook is `scene.hook` (a no-op at open), an older lease on its first version, and
 * `check()`, which proves nothing changed: the live version and the lease answer as at the start,
 * the bystander too, and a fresh cache opens on the file.
 */
async function stage(options: { quickCheck?: boolean } = {}) {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  sqlite(file, SETUP);
  const events: DbCacheEvent[] = [];
  const scene = {
    file,
    events,
    hook: (() => undefined) as Hook,
    cache: undefined as unknown as DbCache,
    earlier: undefined as unknown as Snapshot,
    getters: [] as string[],
    baseline: '',
    /** Commits a change with a real writer, so the next reload builds a new version (and runs the hook). */
    commit(): void {
      sqlite(file, "db.execute('UPDATE t SET v = v + 1')");
    },
    check(generation = 1): void {
      assert.equal(scene.cache.generation, generation);
      assert.equal(fingerprint(scene.cache, scene.getters), scene.baseline, 'the live version changed');
      assert.equal(fingerprint(scene.earlier, scene.getters), scene.baseline, 'the older lease changed');
      assert.equal(fingerprint(other, otherGetters), otherBaseline, 'an unrelated cache changed');
    },
    /** A fresh cache on the file answers with the committed rows. */
    async fresh(): Promise<unknown[][]> {
      const cache = await openDbCache(file, { watch: false });
      try {
        return cache.values('SELECT id, v FROM t ORDER BY id');
      } finally {
        await cache.close();
      }
    },
    async close(): Promise<void> {
      scene.earlier?.release();
      await within(scene.cache.close(), 20_000, 'close()');
      cleanup();
    },
  };
  scene.cache = await openDbCache(file, { watch: false, quickCheck: options.quickCheck ?? false, onReload: (db) => scene.hook(db) as void });
  scene.cache.subscribe((event) => events.push(event));
  scene.earlier = scene.cache.snapshot();
  scene.getters = settingGetters(scene.cache);
  scene.baseline = fingerprint(scene.cache, scene.getters);
  return scene;
}

type Scene = Awaited<ReturnType<typeof stage>>;

/** The reload fails with OVERLAY_FAILED, names the path and says which generation keeps serving. */
async function refused(scene: Scene, pattern: RegExp): Promise<DbCacheError> {
  let caught: unknown;
  await within(
    scene.cache.reload().then(
      () => assert.fail('the reload was published'),
      (error: unknown) => {
        caught = error;
      },
    ),
    20_000,
    'reload()',
  );
  assert.ok(isDbCacheError(caught, 'OVERLAY_FAILED'), `expected OVERLAY_FAILED, got ${String(caught)}`);
  assert.equal(caught.path, scene.file);
  assert.ok(caught.message.includes(scene.file), caught.message);
  assert.match(caught.message, /still serving generation 1/);
  assert.match(caught.message, pattern);
  const last = scene.events.at(-1);
  assert.equal(last?.type, 'error');
  assert.equal((last as { error: unknown }).error, caught);
  return caught;
}

/** After the refusal a hook that behaves publishes the commit: nothing was left wedged. */
async function recovers(scene: Scene): Promise<void> {
  scene.hook = () => undefined;
  await within(scene.cache.reload(), 20_000, 'the reload after the refusal');
  assert.equal(scene.cache.generation, 2);
  assert.deepEqual(scene.cache.values('SELECT id, v FROM t ORDER BY id'), await scene.fresh());
}

describe('onReload: what the hook leaves open is refused, never published', () => {
  for (const { name, open, after } of [
    {
      name: 'an iterator kept open (UPDATE … RETURNING, stepped once)',
      open: (db: OverlayDatabase) => {
        const rows = db.iterate('UPDATE t SET v = v + 100 RETURNING v');
        rows.next();
        return rows;
      },
      // The refused hook's UPDATE reached no version: the commit published is the writer's alone.
      after: (scene: Scene) => assert.equal(scene.cache.get<{ m: number }>('SELECT max(v) AS m FROM t')!.m, 31),
    },
    {
      name: 'an iterator opened and never started, continued after the hook',
      open: (db: OverlayDatabase) => db.iterate('UPDATE t SET v = v + 100 RETURNING v'),
    },
    {
      name: 'a read iterator from db.prepare(…).iterate() left mid-way',
      open: (db: OverlayDatabase) => {
        const rows = db.prepare('SELECT id FROM t ORDER BY id').iterate();
        rows.next();
        return rows;
      },
    },
  ]) {
    test(name, async () => {
      const scene = await stage();
      try {
        let kept: Iterator<unknown> | undefined;
        scene.hook = (db) => {
          kept = open(db);
        };
        scene.commit();
        await refused(scene, /iterator/);
        scene.check();
        // The kept iterator is finished: continuing it is a typed error, and writes nothing anywhere.
        assert.throws(() => kept!.next(), (error) => isDbCacheError(error, 'CLOSED'));
        scene.check();
        await recovers(scene);
        after?.(scene);
      } finally {
        await scene.close();
      }
    });
  }

  test('iterators finished, returned or broken out of in the hook are fine', async () => {
    const scene = await stage();
    try {
      scene.hook = (db) => {
        const all = [...db.iterate<{ id: number }>('SELECT id FROM t')];
        for (const row of db.iterate('SELECT id FROM t')) if (row) break;
        const [first] = db.iterate('SELECT id FROM t ORDER BY id');
        const manual = db.iterate('SELECT id FROM t');
        manual.next();
        manual.return?.();
        db.exec(`CREATE TABLE derived AS SELECT ${all.length} AS n, ${(first as { id: number }).id} AS first`);
      };
      scene.commit();
      await within(scene.cache.reload(), 20_000, 'reload()');
      assert.deepEqual(scene.cache.get('SELECT n, first FROM derived'), { n: 3, first: 1 });
    } finally {
      await scene.close();
    }
  });

  for (const [name, sql] of [
    ['BEGIN without COMMIT', 'BEGIN; UPDATE t SET v = v + 100'],
    ['BEGIN IMMEDIATE with nothing in it', 'BEGIN IMMEDIATE'],
    ['a SAVEPOINT never released', "SAVEPOINT s; INSERT INTO t VALUES (9, 9, 'fig')"],
  ] as const) {
    test(`a transaction left open: ${name}`, async () => {
      const scene = await stage();
      try {
        scene.hook = (db) => db.exec(sql);
        scene.commit();
        await refused(scene, /transaction/);
        scene.check();
        // A read large enough to spill the page cache (what killed a published version before).
        assert.equal(scene.cache.get<{ n: number }>('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(DISTINCT i) AS n FROM n')!.n, 200000);
        scene.check();
        await recovers(scene);
      } finally {
        await scene.close();
      }
    });
  }

  test('a statement from db.prepare() is unusable after the hook, with a typed error', async () => {
    const scene = await stage();
    try {
      let kept: ReturnType<OverlayDatabase['prepare']> | undefined;
      scene.hook = (db) => {
        kept = db.prepare("INSERT INTO t VALUES (9, 9, 'fig')");
      };
      scene.commit();
      await within(scene.cache.reload(), 20_000, 'reload()');
      scene.baseline = fingerprint(scene.cache, scene.getters);
      for (const use of [() => kept!.run(), () => kept!.get(), () => [...kept!.iterate()], () => kept!.columns()]) {
        assert.throws(use, (error) => isDbCacheError(error, 'CLOSED'));
      }
      assert.equal(fingerprint(scene.cache, scene.getters), scene.baseline);
      assert.equal(scene.cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 3);
    } finally {
      await scene.close();
    }
  });

  // Rewriting the schema needs writable_schema and a schema_version bump, which onReload may not
  // set (test/overlay-guard.test.ts): the hook is refused before its SQL runs. The probe after the
  // hook stays as the backstop for a database left unreadable some other way.
  test('a hook that rewrites the schema to leave the database unreadable is refused', async () => {
    for (const quickCheck of [false, true]) {
      const scene = await stage({ quickCheck });
      try {
        scene.hook = (db) => {
          const version = db.get<{ schema_version: number }>('PRAGMA schema_version')!.schema_version;
          db.exec(`PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = 'CREATE TABLE t(' WHERE name = 't'; PRAGMA schema_version=${version + 1}; PRAGMA writable_schema=OFF`);
        };
        scene.commit();
        await refused(scene, /may not run PRAGMA writable_schema/);
        scene.check();
        await recovers(scene);
      } finally {
        await scene.close();
      }
    }
  });

  test('with quickCheck, a hook that corrupts an index is refused', async () => {
    const scene = await stage({ quickCheck: true });
    try {
      scene.hook = (db) => {
        // An index whose entries disagree with its table (what quick_check exists to find) needs
        // writable_schema, which is refused before anything of that SQL runs.
        db.exec('CREATE INDEX t_v ON t(v); PRAGMA writable_schema=ON');
        const root = db.get<{ rootpage: number }>("SELECT rootpage FROM sqlite_schema WHERE name = 't_v'")!.rootpage;
        const table = db.get<{ rootpage: number }>("SELECT rootpage FROM sqlite_schema WHERE name = 't'")!.rootpage;
        const version = db.get<{ schema_version: number }>('PRAGMA schema_version')!.schema_version;
        db.exec(`UPDATE sqlite_schema SET rootpage = ${table} WHERE name = 't_v'; UPDATE sqlite_schema SET rootpage = ${root} WHERE name = 't'; PRAGMA schema_version=${version + 1}; PRAGMA writable_schema=OFF`);
      };
      scene.commit();
      await refused(scene, /may not run PRAGMA writable_schema/);
      scene.check();
      await recovers(scene);
    } finally {
      await scene.close();
    }
  });
});

describe('onReload: re-entrant calls and hooks that never settle', () => {
  test("a hook that awaits its own cache's reload() gets a TypeError at once, and the reload settles", async () => {
    const scene = await stage();
    try {
      let inner: unknown;
      scene.hook = async () => {
        try {
          await scene.cache.reload();
        } catch (error) {
          inner = error;
        }
      };
      scene.commit();
      await within(scene.cache.reload(), 20_000, 'reload() with a hook awaiting reload()');
      assert.ok(inner instanceof TypeError, `expected a TypeError, got ${String(inner)}`);
      assert.match(inner.message, /onReload/);
      assert.equal(scene.cache.generation, 2);
    } finally {
      await scene.close();
    }
  });

  test('a reload() reached through a promise the hook awaits fails fast too; a reload() from outside waits its turn', async () => {
    const scene = await stage();
    try {
      let inner: unknown;
      let outside: Promise<void> | undefined;
      const helper = async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return scene.cache.reload();
      };
      let release: () => void = () => undefined;
      const outsideCall = new Promise<void>((resolve) => (release = resolve));
      scene.hook = async () => {
        release();
        await helper().catch((error: unknown) => {
          inner = error;
        });
        // A caller outside the hook (here: a timer set up before it ran) calls while it runs.
        await new Promise((resolve) => setTimeout(resolve, 1));
        assert.ok(outside !== undefined);
      };
      void outsideCall.then(() => {
        outside = scene.cache.reload();
      });
      scene.commit();
      await within(scene.cache.reload(), 20_000, 'reload()');
      assert.ok(inner instanceof TypeError, `expected a TypeError, got ${String(inner)}`);
      scene.commit();
      // The outside call is not refused: it resolves with a version that has the commit before it.
      await within(outside!, 20_000, 'the outside reload()');
    } finally {
      await scene.close();
    }
  });

  test("hooks of two caches that await each other's reload(): the inner call back fails fast, nothing hangs", async () => {
    const first = await stage();
    const second = await stage();
    try {
      let inner: unknown;
      second.hook = async () => {
        try {
          await first.cache.reload();
        } catch (error) {
          inner = error;
        }
      };
      first.hook = async () => {
        second.commit();
        await second.cache.reload();
      };
      first.commit();
      await within(first.cache.reload(), 20_000, 'reload() of the first cache');
      assert.ok(inner instanceof TypeError, `expected a TypeError, got ${String(inner)}`);
      assert.equal(first.cache.generation, 2);
      assert.equal(second.cache.generation, 2);
    } finally {
      await first.close();
      await second.close();
    }
  });

  test('a hook that throws a hostile value (revoked proxy, throwing toString) fails with OVERLAY_FAILED', async () => {
    const scene = await stage();
    try {
      const revocable = Proxy.revocable({}, {});
      revocable.revoke();
      for (const value of [
        revocable.proxy,
        {
          toString() {
            throw new Error('toString');
          },
        },
      ]) {
        scene.hook = () => {
          throw value;
        };
        scene.commit();
        await refused(scene, /onReload threw/);
        scene.check();
      }
      await recovers(scene);
    } finally {
      await scene.close();
    }
  });

  test("a hook that awaits its own cache's close(): close resolves, the reload fails with CLOSED", async () => {
    const scene = await stage();
    try {
      let closed = false;
      scene.hook = async () => {
        await scene.cache.close();
        closed = true;
      };
      scene.commit();
      await within(
        scene.cache.reload().then(
          () => assert.fail('published after close'),
          (error: unknown) => assert.ok(isDbCacheError(error, 'CLOSED'), String(error)),
        ),
        20_000,
        'reload() with a hook awaiting close()',
      );
      await within(scene.cache.close(), 20_000, 'close()');
      assert.equal(scene.cache.closed, true);
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(closed, true);
      // The lease taken before still answers from its version.
      assert.equal(fingerprint(scene.earlier, scene.getters), scene.baseline);
      assert.equal(fingerprint(other, otherGetters), otherBaseline);
    } finally {
      await scene.close();
    }
  });

  test('close() called synchronously from inside the hook closes once the reload has stopped', async () => {
    const scene = await stage();
    try {
      let closing: Promise<void> | undefined;
      let after: unknown;
      scene.hook = (db) => {
        closing = scene.cache.close();
        try {
          db.exec('CREATE TABLE late(x)');
        } catch (error) {
          after = error;
        }
      };
      scene.commit();
      await assert.rejects(within(scene.cache.reload(), 20_000, 'reload()'), (error) => isDbCacheError(error, 'CLOSED'));
      await within(closing!, 20_000, 'close() from the hook');
      assert.equal(after, undefined, 'the hook may finish its synchronous work');
      assert.equal(scene.cache.closed, true);
      assert.equal(fingerprint(scene.earlier, scene.getters), scene.baseline);
    } finally {
      await scene.close();
    }
  });

  test('a hook that never settles: queries keep working, close() resolves, the reload fails with CLOSED, and the hook is cut off', async () => {
    const scene = await stage();
    try {
      let resume: () => void = () => undefined;
      let late: unknown;
      scene.hook = async (db) => {
        await new Promise<void>((resolve) => (resume = resolve));
        try {
          db.exec('CREATE TABLE late(x)');
        } catch (error) {
          late = error;
        }
      };
      scene.commit();
      const reloading = scene.cache.reload();
      const second = scene.cache.reload();
      let settled = false;
      void reloading.then(
        () => (settled = true),
        () => (settled = true),
      );
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(settled, false, 'the reload waits for the hook');
      scene.check();
      await within(scene.cache.close(), 20_000, 'close() with a hung hook');
      await assert.rejects(within(reloading, 20_000, 'the hung reload'), (error) => isDbCacheError(error, 'CLOSED'));
      await assert.rejects(within(second, 20_000, 'the queued reload'), (error) => isDbCacheError(error, 'CLOSED'));
      assert.equal(fingerprint(scene.earlier, scene.getters), scene.baseline);
      // The hook wakes up after all: its database is gone, and nothing is published.
      resume();
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.ok(isDbCacheError(late, 'CLOSED'), `expected CLOSED, got ${String(late)}`);
      assert.equal(scene.cache.generation, 1);
    } finally {
      await scene.close();
    }
  });
});

/** A logger whose every method throws, and counts the calls. */
function throwingLogger(thrown: unknown = new Error('logger bug')) {
  const calls = { debug: 0, info: 0, warn: 0, error: 0 };
  const method = (level: keyof typeof calls) => () => {
    calls[level]++;
    throw thrown;
  };
  return { calls, logger: { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') } };
}

describe('loggers cannot change what the cache does', () => {
  test('a failing reload rejects with its DbCacheError and emits the error event, whatever the logger throws', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const { calls, logger } = throwingLogger();
    let fail = false;
    const cache = await openDbCache(file, {
      watch: false,
      logger,
      onReload: () => {
        if (fail) throw new Error('overlay bug');
      },
    });
    const events: DbCacheEvent[] = [];
    cache.subscribe((event) => events.push(event));
    try {
      fail = true;
      sqlite(file, "db.execute('UPDATE t SET v = 0')");
      await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'OVERLAY_FAILED'));
      assert.equal(events.at(-1)?.type, 'error');
      // Once more: the second failure of a streak is logged at debug level.
      await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'OVERLAY_FAILED'));
      assert.equal(events.filter((event) => event.type === 'error').length, 2);
      fail = false;
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.equal(events.at(-1)?.type, 'reload');
      assert.ok(calls.warn >= 1 && calls.debug >= 1 && calls.info >= 1, JSON.stringify(calls));
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('the logger is read once at open: getters, later replacement and async rejections change nothing', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    const reads: string[] = [];
    const { lines, logger: recording } = recordingLogger();
    const target: Record<string, unknown> = {};
    for (const level of ['debug', 'info', 'warn', 'error'] as const) {
      Object.defineProperty(target, level, {
        configurable: true,
        enumerable: true,
        get() {
          reads.push(level);
          // From the second read on, the getter throws.
          if (reads.filter((read) => read === level).length > 1) throw new Error(`second read of ${level}`);
          // An async logger whose promise rejects must not become an unhandled rejection.
          return (...args: unknown[]) => {
            recording[level](...args);
            return Promise.reject(new Error('async logger failed'));
          };
        },
      });
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    let fail = false;
    const cache = await openDbCache(file, {
      watch: false,
      logger: target as never,
      onReload: () => {
        if (fail) throw new Error('overlay bug');
      },
    });
    try {
      const readsAtOpen = reads.length;
      assert.equal(readsAtOpen, 4, `read ${reads.join(', ')}`);
      Object.defineProperty(target, 'warn', {
        value: () => {
          throw new Error('replaced');
        },
      });
      fail = true;
      sqlite(file, "db.execute('UPDATE t SET v = 0')");
      await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'OVERLAY_FAILED'));
      fail = false;
      await cache.reload();
      assert.equal(reads.length, readsAtOpen);
      assert.equal(lines.warn.length, 1);
      assert.equal(lines.info.length, 1);
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await cache.close();
      cleanup();
    }
  });

  test('a logger method that cannot be read at open is a TypeError naming it', async () => {
    const logger = {
      debug() {},
      info() {},
      get warn(): never {
        throw new Error('hostile getter');
      },
      error() {},
    };
    await assert.rejects(openDbCache('app.db', { watch: false, logger }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /logger.*warn/);
      return true;
    });
  });

  test('engine notices reach subscribers even when the logger throws', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    // A private sql.js module: this test marks its engine damaged.
    const sqlJs = await freshSqlJs();
    const { calls, logger } = throwingLogger();
    const cache = await openDbCache(file, { watch: false, sqlJs, logger });
    const events: DbCacheEvent[] = [];
    cache.subscribe((event) => events.push(event));
    try {
      const { RuntimeError } = (globalThis as unknown as { WebAssembly: { RuntimeError: new (message: string) => Error } }).WebAssembly;
      engineOf(sqlJs).fault(new RuntimeError('unreachable'), file, 'A test');
      for (let i = 0; i < 10 && events.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(events.length, 1);
      assert.equal(events[0]!.type, 'engine');
      assert.equal((events[0] as { broken: boolean }).broken, true);
      assert.equal(calls.error, 1);
      assert.throws(() => cache.get('SELECT 1'), (error) => isDbCacheError(error, 'ENGINE_BROKEN'));
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test("a forgotten lease is returned even when the logger's warn() throws (no uncaught exception)", () => {
    const script = fileURLToPath(new URL('./scripts/forgotten-lease-logger.ts', import.meta.url));
    const { dir, cleanup } = tempDir();
    try {
      const [command, args] = runtimeCommand(script, ['-A', '--v8-flags=--expose-gc']);
      const result = spawnSync(command, [...args, path.join(dir, 'app.db')], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(result.status, 0, `exit ${result.status}\n${result.stdout}\n${result.stderr}`);
      assert.match(result.stdout, /^returned liveSnapshots=1 warned=1$/m, result.stdout + result.stderr);
    } finally {
      cleanup();
    }
  });
});

describe('listeners cannot change what the cache does', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  let cache: DbCache;
  const { lines, logger } = recordingLogger();

  before(async () => {
    ({ dir, cleanup } = tempDir());
    file = path.join(dir, 'app.db');
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false, logger });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  const commit = () => sqlite(file, "db.execute('UPDATE t SET v = v + 1')");

  test('listeners that throw strings, hostile proxies and revoked proxies are logged; the others still get the event', async () => {
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    const hostile = new Proxy(new Error('x'), {
      get() {
        throw new Error('property read');
      },
      getPrototypeOf() {
        throw new Error('prototype read');
      },
    });
    const throwingToString = {
      toString() {
        throw new Error('toString');
      },
    };
    const thrown: unknown[] = ['a string', hostile, revocable.proxy, throwingToString, Symbol('s'), undefined, null];
    const offs = thrown.map((value) =>
      cache.subscribe(() => {
        throw value;
      }),
    );
    let seen = 0;
    const offGood = cache.subscribe(() => seen++);
    const errorsBefore = lines.error.length;
    try {
      commit();
      await cache.reload();
      assert.equal(seen, 1);
      assert.equal(lines.error.length - errorsBefore, thrown.length);
      assert.ok(lines.error.slice(errorsBefore).every((line) => line.includes(file)), lines.error.join('\n'));
      assert.match(lines.error.at(-1 - (thrown.length - 1))!, /a string/);
    } finally {
      offs.forEach((off) => off());
      offGood();
    }
  });

  test('unsubscribing and subscribing during an emit: the removed one is not called, the added one from the next event on', async () => {
    const calls: string[] = [];
    let offB: () => void = () => undefined;
    let offC: () => void = () => undefined;
    const offA = cache.subscribe(() => {
      calls.push('a');
      offB();
      offC = cache.subscribe(() => calls.push('c'));
    });
    offB = cache.subscribe(() => calls.push('b'));
    try {
      commit();
      await cache.reload();
      assert.deepEqual(calls, ['a']);
      offA();
      commit();
      await cache.reload();
      assert.deepEqual(calls, ['a', 'c']);
    } finally {
      offA();
      offB();
      offC();
    }
  });

  test('a listener may call reload() and close() synchronously', async () => {
    const { dir: dir2, cleanup: cleanup2 } = tempDir();
    const file2 = path.join(dir2, 'app.db');
    sqlite(file2, SETUP);
    const cache2 = await openDbCache(file2, { watch: false });
    try {
      let again: Promise<void> | undefined;
      const off = cache2.subscribe((event) => {
        if (event.type === 'reload' && again === undefined) again = cache2.reload();
      });
      sqlite(file2, "db.execute('UPDATE t SET v = v + 1')");
      await within(cache2.reload(), 20_000, 'reload()');
      await within(again!, 20_000, 'the reload a listener started');
      off();
      let closing: Promise<void> | undefined;
      cache2.subscribe(() => {
        closing ??= cache2.close();
      });
      sqlite(file2, "db.execute('UPDATE t SET v = v + 1')");
      await within(cache2.reload(), 20_000, 'reload() whose listener closes');
      await within(closing!, 20_000, 'close() from a listener');
      assert.equal(cache2.closed, true);
      assert.throws(() => cache2.get('SELECT 1'), (error) => isDbCacheError(error, 'CLOSED'));
    } finally {
      await cache2.close();
      cleanup2();
    }
  });

  test('a listener cannot change the event the next listener sees', async () => {
    const seen: unknown[] = [];
    const offA = cache.subscribe((event) => {
      try {
        (event as { generation: number }).generation = -1;
      } catch {
        // frozen
      }
    });
    const offB = cache.subscribe((event) => seen.push((event as { generation: number }).generation));
    try {
      commit();
      await cache.reload();
      assert.deepEqual(seen, [cache.generation]);
    } finally {
      offA();
      offB();
    }
  });
});

describe('describe() and toError() never throw', () => {
  test('on hostile values', () => {
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    const revokedFunction = Proxy.revocable(() => undefined, {});
    revokedFunction.revoke();
    const values: unknown[] = [
      new Proxy(
        {},
        {
          get() {
            throw new Error('get');
          },
          getPrototypeOf() {
            throw new Error('getPrototypeOf');
          },
        },
      ),
      new Proxy(new Error('boom'), {
        get() {
          throw new Error('get');
        },
      }),
      revocable.proxy,
      revokedFunction.proxy,
      {
        toString() {
          throw new Error('toString');
        },
      },
      {
        [Symbol.toPrimitive]() {
          return {};
        },
      },
      Object.create(null),
      Object.defineProperty(new Error('e'), 'message', {
        get() {
          throw new Error('message');
        },
      }),
      Object.defineProperty(new Error('e'), 'message', {
        value: {
          toString() {
            throw new Error('inner');
          },
        },
      }),
      Symbol('s'),
      10n,
      undefined,
      null,
    ];
    for (const value of values) {
      const text = describeValue(value);
      assert.equal(typeof text, 'string');
      const error = toError(value);
      assert.ok(error instanceof Error);
      // What claims to be an Error is kept as it is (a cause is the caller's own value); anything else is wrapped.
      if (error !== value) assert.equal(typeof error.message, 'string');
    }
    assert.equal(describeValue('plain'), 'plain');
    assert.equal(describeValue(new Error('message')), 'message');
    const genuine = new Error('kept');
    assert.equal(toError(genuine), genuine);
    // A DbCacheError built with a hostile cause still constructs.
    assert.ok(new DbCacheError('IO', 'x', 'm', { cause: revocable.proxy }).cause instanceof Error);
  });
});
