// Versions that share pages (issue 11) against a real SQLite writer in another process that keeps
// its WAL connection open: most reloads read only the new WAL frames, and every one of them equals
// a fresh full read of the same committed state, byte for byte.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem, type ImageFileSystem } from '../src/image/file-system.ts';
import { readImage, type DatabaseImage, type ReadPolicy } from '../src/image/read.ts';
import { openDbCache, type Snapshot } from '../src/index.ts';
import { PageStore } from '../src/pages/page-store.ts';
import { tempDir } from './support/fixtures.ts';

const WRITER = fileURLToPath(new URL('./support/pages-writer.py', import.meta.url));

/** `pages-writer.py`: one random change per line sent, reported as a JSON line once committed. */
class Writer {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiting: ((line: string) => void) | undefined;
  #buffer = '';

  constructor(db: string, seed: number, steps: number) {
    this.#child = spawn('python3', [WRITER, db, String(seed), String(steps)]);
    this.#child.stdout.setEncoding('utf8');
    this.#child.stdout.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let end = this.#buffer.indexOf('\n'); end >= 0; end = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        const waiting = this.#waiting;
        this.#waiting = undefined;
        if (waiting !== undefined) waiting(line);
        else this.#lines.push(line);
      }
    });
  }

  /** The next report: `{ step, kind }`. */
  next(): Promise<{ step: number; kind: string }> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line));
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`pages-writer.py exited with ${code}`));
      this.#child.once('exit', onExit);
      this.#waiting = (text) => {
        this.#child.off('exit', onExit);
        resolve(JSON.parse(text));
      };
    });
  }

  /** Makes the next change; resolves with its report once it is committed. */
  step(): Promise<{ step: number; kind: string }> {
    this.#child.stdin.write('next\n');
    return this.next();
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin.end();
    await exited;
  }
}

/**
 * This machine's file times are fine-grained: a 10 ms racy window lets the database file settle
 * between steps (the 2 s default would send every read within 2 s of a checkpoint down the full path).
 */
const fineFs: ImageFileSystem = { ...nodeFileSystem, racyWindowNs: 10_000_000n };

const policy: ReadPolicy = { busyTimeoutMs: 5000, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), now: () => performance.now() };

for (const seed of [1, 2, 3]) {
  test(`a WAL writer with its connection open, seed ${seed}: each read from the previous one equals a fresh full read`, async () => {
    const { dir, cleanup } = tempDir();
    const db = path.join(dir, 'app.db');
    // One step more than the test makes: the writer closes its connection (checkpointing) only when stopped.
    const writer = new Writer(db, seed, 81);
    const store = new PageStore({ slabBytes: 64 << 10 });
    const kinds = new Map<string, { incremental: number; full: number }>();
    try {
      await writer.next();
      let previous: DatabaseImage | undefined;
      for (let i = 0; i < 80; i++) {
        const { kind } = await writer.step();
        // As the cache reads: resuming from the previous image's WAL memory, sharing its pages.
        const image: DatabaseImage = await readImage(db, fineFs, policy, {
          store,
          ...(previous?.wal === undefined ? {} : { wal: previous.wal }),
          ...(previous === undefined ? {} : { live: previous.pages }),
        });
        const fresh = await readImage(db, fineFs, policy);
        assert.ok(
          Buffer.from(image.pages.toBytes()).equals(fresh.pages.toBytes()),
          `step ${i} (${kind}): the ${image.read} read differs from a full read (${image.pages.length} vs ${fresh.pages.length} bytes)`,
        );
        assert.equal(image.version.split(':').slice(4).join(':'), fresh.version.split(':').slice(4).join(':'), `step ${i}: the same WAL state`);
        const count = kinds.get(kind) ?? { incremental: 0, full: 0 };
        count[image.read]++;
        kinds.set(kind, count);
        if (previous !== undefined && image.read === 'incremental') {
          // A page whose bytes did not change is the previous image's own page (page 1 aside: its
          // WAL copy says WAL mode in bytes 18–19, so a marked copy is made).
          const prior = previous.pages.pages;
          image.pages.pages.forEach((page, index) => {
            if (index > 0 && index < prior.length && page !== prior[index]) {
              assert.ok(!Buffer.from(page).equals(prior[index]!), `step ${i} (${kind}): page ${index + 1} is unchanged but not shared`);
            }
          });
        }
        previous = image;
      }
      const incremental = [...kinds.values()].reduce((sum, count) => sum + count.incremental, 0);
      // Updates, inserts and deletes with the same WAL read incrementally; restarts and truncations in full.
      assert.ok(incremental >= 20, `only ${incremental} of 80 reads were incremental: ${JSON.stringify(Object.fromEntries(kinds))}`);
      assert.ok((kinds.get('update')?.incremental ?? 0) > 0, JSON.stringify(Object.fromEntries(kinds)));
    } finally {
      await writer.stop();
      cleanup();
    }
  });
}

test('the cache reloads incrementally, and leases on many versions each answer from their own version', async () => {
  const { dir, cleanup } = tempDir();
  const db = path.join(dir, 'app.db');
  const writer = new Writer(db, 7, 61);
  await writer.next();
  const cache = await openDbCacheOn(fineFs, db, { watch: false });
  const leases: Array<{ snapshot: Snapshot; rows: unknown[] }> = [];
  try {
    for (let i = 0; i < 60; i++) {
      await writer.step();
      await cache.reload();
      const rows = cache.all('SELECT id, hex(v) AS v FROM t ORDER BY id');
      if (i % 3 === 0) leases.push({ snapshot: cache.snapshot(), rows });
      // Release some out of order.
      if (i % 7 === 6 && leases.length > 2) leases.splice(1, 1)[0]!.snapshot.release();
    }
    for (const [index, { snapshot, rows }] of leases.entries()) {
      assert.deepEqual(snapshot.all('SELECT id, hex(v) AS v FROM t ORDER BY id'), rows, `lease ${index} (generation ${snapshot.generation})`);
      assert.deepEqual(snapshot.all('PRAGMA quick_check'), [{ quick_check: 'ok' }]);
    }
    const stats = cache.stats();
    assert.ok(stats.incrementalReloads > 10, `incremental reloads: ${stats.incrementalReloads} of ${stats.reloads}`);
  } finally {
    for (const { snapshot } of leases) snapshot.release();
    await cache.close();
    await writer.stop();
    cleanup();
  }
});

const SAMPLE = 'SELECT id, hex(v) AS v FROM t WHERE id % 37 = 0';

test('churn through the cache: 2000 reloads from a source with scattered changes, leases released out of order, memory stays bounded', async () => {
  const { loadSqlJs } = await import('../src/sqljs.ts');
  const sqlJs = await loadSqlJs();
  const writer = new sqlJs.Database(null) as unknown as { exec(sql: string): unknown; export(): Uint8Array; close(): void };
  writer.exec('PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
  writer.exec('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT i, randomblob(300) FROM n');
  let version = 0;
  const cache = await openDbCache(
    () => {
      writer.exec(`UPDATE t SET v = randomblob(300) WHERE id IN (SELECT abs(random()) % 2000 + 1 FROM t LIMIT ${1 + (version++ % 5)})`);
      return writer.export();
    },
    { watch: false },
  );
  const held: Array<{ snapshot: Snapshot; sum: unknown }> = [];
  let seed = 99;
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let peak = 0;
  let size = 0;
  try {
    for (let i = 0; i < 2000; i++) {
      await cache.reload();
      if (random(8) === 0) held.push({ snapshot: cache.snapshot(), sum: cache.all(SAMPLE) });
      while (held.length > 6 || (held.length > 0 && random(3) === 0)) {
        const [lease] = held.splice(random(held.length), 1);
        assert.deepEqual(lease!.snapshot.all(SAMPLE), lease!.sum, `a lease on generation ${lease!.snapshot.generation} changed`);
        lease!.snapshot.release();
      }
      const stats = cache.stats();
      size = stats.liveBytes / Math.max(1, stats.liveSnapshots);
      peak = Math.max(peak, stats.pageBytes);
    }
    const stats = cache.stats();
    assert.equal(stats.reloads, 2001);
    assert.ok(stats.liveSnapshots <= held.length + 1, `${stats.liveSnapshots} versions open with ${held.length} leases`);
    // One database, the leased versions' changed pages, and up to two slabs (1 MiB each) of pages
    // freed since the last scan: bounded, where without compaction every slab stays pinned.
    const slack = 3 << 20;
    assert.ok(peak <= 2 * size + slack, `page memory peaked at ${peak} bytes for a ${size}-byte database over 2000 reloads`);
    assert.ok(stats.pageBytes <= 2 * size + slack, `${stats.pageBytes} bytes of pages at the end`);
  } finally {
    for (const { snapshot } of held) snapshot.release();
    await cache.close();
    writer.close();
  }
});
