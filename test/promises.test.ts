// The options and guarantees the README promises that no other test pins down: debounceMs and
// maxWaitMs reaching the watcher (on an injected clock), option defaults, quickCheck,
// maxStatements, coalesced reload() calls, "never older" with watch and calls racing,
// busyTimeoutMs, the event and stats fields, isDbCacheError, statements and versions,
// inspectDatabase, and what watch: false and poll watch with. test/PROMISES.md maps every promise.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem, type ImageFileSystem } from '../src/image/file-system.ts';
import { inspectDatabase, isDbCacheError, openDbCache, type DbCacheEvent } from '../src/index.ts';
import { resolveOptions } from '../src/options.ts';
import { loadSqlJs, type SqlJsLike } from '../src/sqljs.ts';
import { holdOpen, inotifyWatches, recordingLogger, sqlite, sqliteAsync, tempDir, waitFor } from './support/fixtures.ts';
import { ManualClock } from './support/manual-clock.ts';

describe('debounceMs and maxWaitMs reach the watcher', () => {
  test('a commit waits for the debounce timer of the configured length, then becomes visible', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const clock = new ManualClock();
    const cache = await openDbCacheOn(nodeFileSystem, file, { debounceMs: 1000, maxWaitMs: 60_000 }, clock);
    try {
      // Opening notifies once (a commit may have landed before the watcher started).
      assert.deepEqual(clock.pending(), [1000]);
      clock.advanceTo(1000);
      await waitFor(() => cache.stats().noopReloads === 1, 'the reload after open');
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await waitFor(() => clock.pending().includes(1000), 'the watcher to schedule a reload');
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 0);
      clock.advanceTo(clock.now() + 1000);
      await waitFor(() => cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n === 1, 'the commit to be loaded');
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('maxWaitMs caps the wait when it is shorter than the debounce', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const clock = new ManualClock();
    const cache = await openDbCacheOn(nodeFileSystem, file, { debounceMs: 1000, maxWaitMs: 300 }, clock);
    try {
      assert.deepEqual(clock.pending(), [300]);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('the watcher\'s timing, on an injected clock', () => {
  test('after a reload the cheap check runs every 4 ms until 150 ms after the last event; failed reloads retry after 50 ms, doubling to 2 s', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    // Failures come from this seam, not from changing the file: no file event may move the schedule.
    let failing = false;
    const seam: ImageFileSystem = {
      ...nodeFileSystem,
      open: (target) => {
        if (failing) throw Object.assign(new Error(`EIO: i/o error, open '${target}'`), { code: 'EIO' });
        return nodeFileSystem.open(target);
      },
    };
    const clock = new ManualClock();
    const cache = await openDbCacheOn(seam, file, {}, clock);
    const next = async (what: string): Promise<number> => {
      await waitFor(() => clock.pending().length === 1, what);
      return clock.pending()[0]!;
    };
    try {
      // Opening notifies once (at 0): the default debounce.
      assert.equal(await next('the reload after open'), 5);
      clock.advanceTo(5);
      await waitFor(() => cache.stats().noopReloads === 1, 'the reload after open');
      const checks: number[] = [];
      while ((await next('the next re-check')) === 4) {
        checks.push(clock.now());
        clock.advanceTo(clock.now() + 4);
      }
      // Re-checks were scheduled from 5 to 149, each 4 ms later; the one at 153 was the last.
      assert.equal(checks[0], 5);
      assert.equal(checks.at(-1), 149);
      assert.equal(clock.now(), 153);

      failing = true;
      const delays: number[] = [];
      clock.advanceTo(clock.now() + (await next('the verification after the racy window')));
      for (let failures = 1; failures <= 8; failures++) {
        await waitFor(() => cache.stats().failures === failures, `failure ${failures}`);
        const delay = await next(`the retry after failure ${failures}`);
        // (The verification time is fractional: the clock's sums are not exact.)
        delays.push(Math.round(delay));
        if (failures === 8) failing = false;
        clock.advanceTo(clock.now() + delay);
      }
      assert.deepEqual(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
      await waitFor(() => cache.stats().reloads + cache.stats().noopReloads === 2, 'the retry that works again');
      assert.equal(cache.stats().failures, 8);
    } finally {
      failing = false;
      await cache.close();
      cleanup();
    }
  });
});

describe('option defaults', () => {
  test('are the ones the README and the TSDoc state', () => {
    const resolved = resolveOptions(undefined);
    assert.equal(resolved.watch, true);
    assert.equal(resolved.debounceMs, 5);
    assert.equal(resolved.maxWaitMs, 25);
    assert.equal(resolved.pollMs, undefined);
    assert.equal(resolved.busyTimeoutMs, 5000);
    assert.equal(resolved.maxStatements, 256);
    assert.equal(resolved.memoEntries, 0);
    assert.equal(resolved.quickCheck, false);
    assert.equal(resolved.bigint, false);
    assert.equal(resolveOptions({ poll: true }).pollMs, 100);
    assert.equal(resolveOptions({ poll: 7 }).pollMs, 7);
    assert.equal(resolveOptions({ memo: true }).memoEntries, 10_000);
  });
});

describe('quickCheck', () => {
  test('rejects an image whose damage the schema probe does not reach; without it the image opens', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v TEXT)')\nfor i in range(400): db.execute('INSERT INTO t VALUES (?)', ('x' * 100,))");
    const good = fs.readFileSync(file);
    const cache = await openDbCache(file, { watch: false, quickCheck: true });
    try {
      // Page 3 is a leaf of t: an invalid b-tree page type there is damage only a scan finds.
      const damaged = Buffer.from(good);
      damaged[2 * 4096] = 0x7f;
      damaged.writeUInt32BE(damaged.readUInt32BE(24) + 1, 24);
      fs.writeFileSync(file, damaged);
      await assert.rejects(cache.reload(), { name: 'DbCacheError', code: 'CORRUPT' });
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 400);
      const unchecked = await openDbCache(file, { watch: false });
      await unchecked.close();
      await assert.rejects(openDbCache(file, { watch: false, quickCheck: true }), { name: 'DbCacheError', code: 'CORRUPT' });
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('maxStatements', () => {
  test('bounds the statement cache: the least recently prepared statement is prepared again', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const base = await loadSqlJs('wasm');
    const prepared: string[] = [];
    const counting: SqlJsLike = {
      Database: class extends (base.Database as unknown as new (data?: Uint8Array | null) => { prepare(sql: string): unknown }) {
        override prepare(sql: string): unknown {
          prepared.push(sql);
          return super.prepare(sql);
        }
      } as unknown as SqlJsLike['Database'],
    };
    const queries = ['SELECT 1 AS a', 'SELECT 2 AS a', 'SELECT 3 AS a'];
    const count = async (maxStatements?: number): Promise<number> => {
      const cache = await openDbCache(file, { watch: false, sqlJs: counting, ...(maxStatements === undefined ? {} : { maxStatements }) });
      try {
        prepared.length = 0;
        for (let round = 0; round < 3; round++) for (const sql of queries) cache.get(sql);
        return prepared.filter((sql) => queries.includes(sql)).length;
      } finally {
        await cache.close();
      }
    };
    try {
      assert.equal(await count(), 3);
      assert.equal(await count(3), 3);
      assert.equal(await count(2), 9);
    } finally {
      cleanup();
    }
  });
});

describe('reload() calls', () => {
  test('calls made while a reload runs share the next one', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    let release!: () => void;
    let entered!: () => void;
    const inOverlay = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    let overlays = 0;
    const cache = await openDbCache(file, {
      watch: false,
      onReload: async () => {
        overlays++;
        if (overlays === 2) {
          entered();
          await gate;
        }
      },
    });
    try {
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      const before = cache.stats();
      const first = cache.reload();
      await inOverlay;
      sqlite(file, "db.execute('INSERT INTO t VALUES (2)')");
      const waiting = [cache.reload(), cache.reload(), cache.reload(), cache.reload(), cache.reload()];
      release();
      await Promise.all([first, ...waiting]);
      const after = cache.stats();
      assert.equal(after.reloads + after.noopReloads - before.reloads - before.noopReloads, 2);
      assert.equal(overlays, 3);
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 2);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('with watch on and calls racing, no published version is older than one before it, and each call sees what was committed before it', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE seq(n INTEGER)'); db.execute('INSERT INTO seq VALUES (0)')");
    const cache = await openDbCache(file);
    const published: number[] = [];
    const current = (): number => cache.get<{ n: number }>('SELECT n FROM seq')!.n;
    const off = cache.subscribe((event: DbCacheEvent) => {
      if (event.type === 'reload') published.push(current());
    });
    try {
      const writer = sqliteAsync(
        file,
        `for i in range(1, 301):\n  db.execute('UPDATE seq SET n = ?', (i,))\n  open(sys.argv[1] + '.progress', 'w').write(str(i))\n  time.sleep(0.002)`,
      );
      let calls = 0;
      let done = false;
      void writer.finally(() => (done = true));
      while (!done) {
        const committed = fs.existsSync(`${file}.progress`) ? Number(fs.readFileSync(`${file}.progress`, 'utf8') || 0) : 0;
        // A no-op reload settles without a macrotask: let the watcher and the writer's exit in.
        await new Promise((resolve) => setImmediate(resolve));
        await cache.reload();
        calls++;
        assert.ok(current() >= committed, `reload() after commit ${committed} serves ${current()}`);
      }
      await writer;
      await cache.reload();
      assert.equal(current(), 300);
      assert.ok(calls > 0);
      assert.ok(published.length > 1, 'some versions were published');
      for (let i = 1; i < published.length; i++) assert.ok(published[i]! >= published[i - 1]!, `published ${published.join(',')}`);
    } finally {
      off();
      await cache.close();
      cleanup();
    }
  });
});

describe('busyTimeoutMs', () => {
  test('bounds how long a reload retries: a 30 ms budget gives up after a handful of retries, not the default 5 s', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1)')");
    const cache = await openDbCache(file, { watch: false, busyTimeoutMs: 30 });
    try {
      // A hot journal (a writer that crashed mid-transaction) keeps every attempt retrying.
      fs.writeFileSync(`${file}-journal`, Buffer.from([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, 0, 0, 0, 0]));
      await assert.rejects(cache.reload(), { name: 'DbCacheError', code: 'BUSY' });
      // Retries sleep 1, 2, 4, 8, 16 ms …: 30 ms of sleeping takes at most 6 of them (the default
      // budget would take about 55), however slow the machine is.
      const { retries } = cache.stats();
      assert.ok(retries >= 1 && retries <= 10, `${retries} retries within a 30 ms budget`);
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n, 1);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});

describe('events and stats', () => {
  test('reload events carry generation, version, durationMs, bytes and cause; error events the error and its cause', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v BLOB)')");
    const cache = await openDbCache(file);
    const events: DbCacheEvent[] = [];
    const off = cache.subscribe((event) => events.push(event));
    try {
      sqlite(file, "db.execute('INSERT INTO t VALUES (zeroblob(20000))')");
      await cache.reload();
      const byCall = events.find((event) => event.type === 'reload' && event.generation === cache.generation);
      assert.ok(byCall?.type === 'reload', JSON.stringify(events));
      assert.equal(byCall.cause, 'call');
      assert.equal(byCall.version, cache.version);
      assert.equal(byCall.bytes, fs.statSync(file).size);
      assert.ok(Number.isFinite(byCall.durationMs) && byCall.durationMs >= 0);
      assert.equal(cache.stats().lastReloadMs, byCall.durationMs);

      const generation = cache.generation;
      sqlite(file, "db.execute('INSERT INTO t VALUES (zeroblob(40000))')");
      await waitFor(() => cache.generation === generation + 1, 'the watcher to publish the commit');
      const byWatch = events.at(-1);
      assert.ok(byWatch?.type === 'reload' && byWatch.cause === 'watch' && byWatch.generation === generation + 1, JSON.stringify(byWatch));
      assert.equal(byWatch.bytes, fs.statSync(file).size);

      fs.writeFileSync(file, 'not a database '.repeat(100));
      await assert.rejects(cache.reload(), { code: 'NOT_A_DATABASE' });
      const failed = events.find((event) => event.type === 'error' && event.cause === 'call');
      assert.ok(failed?.type === 'error', JSON.stringify(events.map((event) => [event.type, 'cause' in event ? event.cause : undefined])));
      assert.equal(failed.error.name, 'DbCacheError');
      assert.equal(failed.error.code, 'NOT_A_DATABASE');
    } finally {
      off();
      await cache.close();
      cleanup();
    }
  });

  test('stats() counts reloads, no-ops, failures and live leases, and the image bytes they hold', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v BLOB)')");
    const cache = await openDbCache(file, { watch: false });
    try {
      const first = fs.statSync(file).size;
      const opened = cache.stats();
      assert.deepEqual(
        { ...opened, lastReloadMs: 0, pageBytes: 0 },
        { reloads: 1, incrementalReloads: 0, noopReloads: 0, failures: 0, retries: 0, lastReloadMs: 0, liveSnapshots: 1, liveBytes: first, pageBytes: 0 },
      );
      assert.ok(opened.pageBytes >= first, `pageBytes ${opened.pageBytes} holds the ${first}-byte image`);
      const lease = cache.snapshot();
      assert.equal(lease.generation, 1);
      assert.equal(lease.version, cache.version);
      sqlite(file, "db.execute('INSERT INTO t VALUES (zeroblob(50000))')");
      await cache.reload();
      await cache.reload();
      const second = fs.statSync(file).size;
      assert.notEqual(second, first);
      const held = cache.stats();
      assert.equal(held.reloads, 2);
      assert.equal(held.noopReloads, 1);
      assert.equal(held.liveSnapshots, 2);
      assert.equal(held.liveBytes, first + second);
      lease.release();
      assert.equal(cache.stats().liveBytes, second);
      fs.writeFileSync(file, 'not a database '.repeat(100));
      await assert.rejects(cache.reload(), { code: 'NOT_A_DATABASE' });
      assert.equal(cache.stats().failures, 1);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('a listener that throws is logged through the logger, and the other listeners still get the event', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const { lines, logger } = recordingLogger();
    const cache = await openDbCache(file, { watch: false, logger });
    const seen: number[] = [];
    cache.subscribe(() => {
      throw new Error('listener bug');
    });
    cache.subscribe((event) => void (event.type === 'reload' && seen.push(event.generation)));
    try {
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await cache.reload();
      assert.deepEqual(seen, [2]);
      assert.equal(lines.error.length, 1, lines.error.join('\n'));
      assert.match(lines.error[0]!, /listener bug/);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('isDbCacheError recognises an error of a second copy of the package by name and code', async () => {
    // What a second copy's class looks like from here: another class, the same name and code.
    class DbCacheError extends Error {
      override name = 'DbCacheError';
      code = 'BUSY';
    }
    const foreign = new DbCacheError('from another copy');
    assert.equal(isDbCacheError(foreign), true);
    assert.equal(isDbCacheError(foreign, 'BUSY'), true);
    assert.equal(isDbCacheError(foreign, 'CLOSED'), false);
    assert.equal(isDbCacheError(Object.assign(new Error('x'), { code: 'BUSY' })), false);
    assert.equal(isDbCacheError({ name: 'DbCacheError', code: 'BUSY' }), false);
    const { dir, cleanup } = tempDir();
    try {
      const error = await openDbCache(path.join(dir, 'missing.db'), { watch: false }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.equal(isDbCacheError(error, 'NOT_FOUND'), true);
      assert.equal(isDbCacheError(error, 'IO'), false);
    } finally {
      cleanup();
    }
  });
});

describe('errors', () => {
  test('carry their cause: the SQLite message (QUERY), the file-system error (IO), what the source threw (SOURCE_FAILED)', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const caught = async (run: () => unknown): Promise<{ code?: string; cause?: { message?: string; code?: string } }> => {
      try {
        await run();
      } catch (error) {
        assert.ok(isDbCacheError(error), String(error));
        return error as never;
      }
      assert.fail('no error');
    };
    const cache = await openDbCache(file, { watch: false });
    try {
      const query = await caught(() => cache.get('SELECT * FROM nowhere'));
      assert.equal(query.code, 'QUERY');
      assert.match(query.cause?.message ?? '', /no such table: nowhere/);
    } finally {
      await cache.close();
    }
    const failing: ImageFileSystem = {
      ...nodeFileSystem,
      read: () => Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })),
    };
    const io = await caught(() => openDbCacheOn(failing, file, { watch: false }));
    assert.equal(io.code, 'IO');
    assert.equal(io.cause?.code, 'EIO');
    const source = await caught(() =>
      openDbCache(() => {
        throw new Error('writer gone');
      }),
    );
    assert.equal(source.code, 'SOURCE_FAILED');
    assert.equal(source.cause?.message, 'writer gone');
    cleanup();
  });
});

describe('statements and versions', () => {
  test('a statement from cache.prepare runs on the live version; one from snapshot.prepare stays on its snapshot', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
    const cache = await openDbCache(file, { watch: false });
    const snap = cache.snapshot();
    try {
      const live = cache.prepare('SELECT count(*) AS n FROM t').pluck();
      const pinned = snap.prepare('SELECT count(*) AS n FROM t').pluck();
      assert.equal(live.get(), 0);
      assert.equal(pinned.get(), 0);
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await cache.reload();
      assert.equal(live.get(), 1);
      assert.equal(pinned.get(), 0);
      assert.equal(snap.generation, cache.generation - 1);
    } finally {
      snap.release();
      await cache.close();
      cleanup();
    }
  });
});

describe('inspectDatabase', () => {
  test('describes a WAL database with pending frames, then after a checkpoint, and a rollback database', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v BLOB)')");
    // Another connection stays open, so the commits stay in the -wal until the checkpoint.
    const release = await holdOpen(file);
    try {
      const pages = Number(sqlite(file, "db.executemany('INSERT INTO t VALUES (zeroblob(5000))', [()] * 3)\nprint(db.execute('PRAGMA page_count').fetchone()[0])").trim());
      const frames = (fs.statSync(`${file}-wal`).size - 32) / (4096 + 24);
      const info = await inspectDatabase(file);
      assert.deepEqual(
        { ...info, version: undefined },
        {
          journalMode: 'wal',
          pageSize: 4096,
          pages,
          fileBytes: fs.statSync(file).size,
          walFrames: frames,
          walCommittedFrames: frames,
          walPendingFrames: frames,
          version: undefined,
        },
      );
      const cache = await openDbCache(file, { watch: false });
      try {
        assert.equal(info.version, cache.version);
      } finally {
        await cache.close();
      }
      sqlite(file, "db.execute('PRAGMA wal_checkpoint(PASSIVE)')");
      const checkpointed = await inspectDatabase(file);
      assert.equal(checkpointed.walFrames, frames);
      assert.equal(checkpointed.walPendingFrames, 0);
      assert.equal(checkpointed.pages, pages);
    } finally {
      await release();
    }
    const rollback = path.join(dir, 'rollback.db');
    sqlite(rollback, "db.execute('CREATE TABLE t(v BLOB)'); db.execute('INSERT INTO t VALUES (zeroblob(9000))')");
    const info = await inspectDatabase(rollback);
    assert.equal(info.journalMode, 'rollback');
    assert.equal(info.pages * info.pageSize, fs.statSync(rollback).size);
    assert.equal(info.walFrames, 0);
    await assert.rejects(inspectDatabase(path.join(dir, 'missing.db')), { name: 'DbCacheError', code: 'NOT_FOUND' });
    cleanup();
  });
});

const inotifyBefore = inotifyWatches();
describe('watch and poll', { skip: inotifyBefore === undefined ? 'no /proc/self/fdinfo to count inotify watches in' : false }, () => {
  for (const [label, options] of [
    ['watch: false watches nothing', { watch: false }],
    ['poll: 10 follows commits with stat, not file-system events', { poll: 10 }],
    ['poll: true follows commits with stat, not file-system events', { poll: true }],
    ['the default (file-system events) adds inotify watches, the measure the cases above rely on', {}],
  ] as const) {
    test(label, async () => {
      const { dir, cleanup } = tempDir();
      const file = path.join(dir, 'app.db');
      sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)')");
      const before = inotifyWatches()!;
      const cache = await openDbCache(file, options);
      try {
        const during = inotifyWatches()!;
        if ('watch' in options || 'poll' in options) {
          assert.ok(during <= before, `${during} inotify watches, ${before} before opening`);
        } else {
          assert.ok(during > before, `${during} inotify watches, ${before} before opening`);
        }
        if (!('watch' in options)) {
          sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
          await waitFor(() => cache.get<{ n: number }>('SELECT count(*) AS n FROM t')!.n === 1, 'the commit to be seen without reload()');
        }
      } finally {
        await cache.close();
        cleanup();
      }
    });
  }
});
