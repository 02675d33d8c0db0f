/**
 * The racy-clean rule at the cache level, on a file system whose clock the test sets: inside the
 * racy window a reload reads and compares the content; once the window has passed, one verifying
 * read and then none; an `onReload` overlay does not turn an equal re-read into a new generation.
 * (The real-writer tests in writers.test.ts check commits are never missed; this file checks the
 * cost stays bounded.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem, type ImageFileSystem } from '../src/image/file-system.ts';

const WINDOW_NS = 2_000_000_000n;

/** The real file system, a clock the test moves, and a count of whole-file reads. */
class ClockedFileSystem implements ImageFileSystem {
  nowNs: bigint;
  reads = 0;
  readonly racyWindowNs = WINDOW_NS;

  constructor(nowNs: bigint) {
    this.nowNs = nowNs;
  }

  open = nodeFileSystem.open;
  close = nodeFileSystem.close;
  fstat = nodeFileSystem.fstat;
  stat = nodeFileSystem.stat;
  readSync = nodeFileSystem.readSync;
  allocate = nodeFileSystem.allocate;
  read = (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
    this.reads++;
    return nodeFileSystem.read(fd, into, offset, length, position);
  };
  now = (): bigint => this.nowNs;
}

function sqlite(file: string, sql: string): void {
  execFileSync('python3', ['-c', 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.executescript(sys.argv[2]); c.close()', file, sql]);
}

function withDatabase(body: (file: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-racy-'));
  const file = path.join(dir, 'app.db');
  sqlite(file, 'PRAGMA journal_mode=DELETE; CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, \'one\');');
  return body(file).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

function newestNs(file: string): bigint {
  const stat = fs.statSync(file, { bigint: true });
  return stat.mtimeNs > stat.ctimeNs ? stat.mtimeNs : stat.ctimeNs;
}

test('inside the racy window every reload reads and compares; once it has passed, one verifying read and then none', async () => {
  await withDatabase(async (file) => {
    const clock = new ClockedFileSystem(newestNs(file));
    const cache = await openDbCacheOn(clock, file, { watch: false });
    try {
      assert.equal(cache.generation, 1);
      for (let i = 0; i < 3; i++) {
        const before = clock.reads;
        await cache.reload();
        assert.ok(clock.reads > before, `reload ${i} inside the window did not read the file`);
      }
      assert.equal(cache.generation, 1, 'an equal re-read is a no-op');
      assert.equal(cache.stats().noopReloads, 3);

      clock.nowNs = newestNs(file) + WINDOW_NS + 1n;
      const beforeVerify = clock.reads;
      await cache.reload();
      assert.ok(clock.reads > beforeVerify, 'the first reload after the window verifies by reading');
      const settled = clock.reads;
      for (let i = 0; i < 5; i++) await cache.reload();
      assert.equal(clock.reads, settled, 'settled files are not read again');
      assert.equal(cache.generation, 1);

      // A commit: same size, and the clock still says "long after": the stats differ (fine times
      // here), so it is read and published.
      sqlite(file, "UPDATE t SET v = 'uno' WHERE k = 1;");
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.deepEqual(cache.get('SELECT v FROM t WHERE k = 1'), { v: 'uno' });
    } finally {
      await cache.close();
    }
  });
});

test('with an onReload overlay, equal re-reads inside the window keep the generation (a pristine copy is compared)', async () => {
  await withDatabase(async (file) => {
    const clock = new ClockedFileSystem(newestNs(file));
    let overlays = 0;
    const cache = await openDbCacheOn(clock, file, {
      watch: false,
      onReload: (db) => {
        overlays++;
        db.exec('CREATE TABLE derived AS SELECT k, upper(v) AS v FROM t');
      },
    });
    try {
      for (let i = 0; i < 3; i++) await cache.reload();
      assert.equal(cache.generation, 1);
      assert.equal(overlays, 1);
      sqlite(file, "UPDATE t SET v = 'eins' WHERE k = 1;");
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.deepEqual(cache.get('SELECT v FROM derived WHERE k = 1'), { v: 'EINS' });
      clock.nowNs = newestNs(file) + WINDOW_NS + 1n;
      await cache.reload();
      const reads = clock.reads;
      await cache.reload();
      assert.equal(clock.reads, reads);
      assert.equal(cache.generation, 2);
    } finally {
      await cache.close();
    }
  });
});

test('files stamped in the future are compared by content on every reload, however far ahead', async () => {
  await withDatabase(async (file) => {
    // The file's times are 1 hour ahead of the clock (a server clock running fast).
    const clock = new ClockedFileSystem(newestNs(file) - 3_600_000_000_000n);
    const cache = await openDbCacheOn(clock, file, { watch: false });
    try {
      for (let i = 0; i < 3; i++) {
        const before = clock.reads;
        await cache.reload();
        assert.ok(clock.reads > before, `reload ${i} of a future-stamped file did not read it`);
      }
      assert.equal(cache.generation, 1);
      assert.equal(cache.stats().noopReloads, 3);
      // Once the clock passes the file's times by the window, the rule for settled files applies.
      clock.nowNs = newestNs(file) + WINDOW_NS + 1n;
      await cache.reload();
      const settled = clock.reads;
      await cache.reload();
      assert.equal(clock.reads, settled);
    } finally {
      await cache.close();
    }
  });
});
