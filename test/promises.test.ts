// The options and guarantees the README promises that no other test pins down: debounceMs and
// maxWaitMs reaching the watcher (on an injected clock), option defaults, quickCheck,
// maxStatements, coalesced reload() calls, and "never older" with watch and calls racing.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem } from '../src/image/file-system.ts';
import { openDbCache, type DbCacheEvent } from '../src/index.ts';
import { resolveOptions } from '../src/options.ts';
import { loadSqlJs, type SqlJsLike } from '../src/sqljs.ts';
import { sqlite, sqliteAsync, tempDir, waitFor } from './support/fixtures.ts';
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
