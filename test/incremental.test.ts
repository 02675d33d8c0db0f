// Versions that share pages (issue 11) against a real SQLite writer in another process that keeps
// its WAL connection open: most reloads read only the new WAL frames, and every one of them equals
// a fresh full read of the same committed state, byte for byte.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem, type ImageFileSystem } from '../src/image/file-system.ts';
import { readImage, type DatabaseImage, type ReadPolicy } from '../src/image/read.ts';
import { openDbCache, type Snapshot } from '../src/index.ts';
import { PageStore } from '../src/pages/page-store.ts';
import { tempDir, waitFor } from './support/fixtures.ts';
import { collideFrame, getUint32, resealWal, setUint32, walFrames, walPageSize } from './support/wal-bytes.ts';

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

// ---------------------------------------------------------------------------------------------
// Fields read from files, in-place rewrites, and pages returned when versions go (issue 18)
// ---------------------------------------------------------------------------------------------

/**
 * Runs Python with `sqlite3`, `os`, `shutil`, `json` and `sys` imported and `path` bound to
 * `file`; returns what it printed.
 */
function python(file: string, code: string): string {
  return execFileSync('python3', ['-c', `import sqlite3, os, shutil, json, sys\npath = sys.argv[1]\n${code}`, file], { encoding: 'utf8' });
}

/**
 * What SQLite reads from `file` (with its -wal and -journal as they are): each SQL's rows, from a
 * private copy (SQLite would build a -shm or roll back a journal next to the files under test).
 */
function sqliteReads(file: string, sqls: readonly string[]): unknown[][][] {
  const out = python(
    file,
    `import tempfile
d = tempfile.mkdtemp()
for suffix in ('', '-wal', '-journal'):
    if os.path.exists(path + suffix): shutil.copyfile(path + suffix, os.path.join(d, 'app.db' + suffix))
db = sqlite3.connect(os.path.join(d, 'app.db'))
print(json.dumps([[list(r) for r in db.execute(q).fetchall()] for q in json.loads(sys.argv[2])]))
db.close()
shutil.rmtree(d)`.replace('sys.argv[2]', JSON.stringify(JSON.stringify(sqls))),
  );
  return JSON.parse(out) as unknown[][][];
}

/**
 * `file` and its -wal as a reader finds them while a WAL writer's connection is open: t(k, v) with
 * `rows` rows (v = 'row-<k>' padded with dots to 60 bytes), committed in the -wal; no -shm.
 */
function walDatabase(file: string, rows: number): void {
  python(
    file,
    `work = path + '.work'
os.makedirs(work)
db = sqlite3.connect(os.path.join(work, 'app.db'), isolation_level=None)
db.execute('PRAGMA journal_mode=WAL')
db.execute('PRAGMA wal_autocheckpoint=0')
db.execute('CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)')
db.execute('BEGIN')
for k in range(1, ${rows} + 1): db.execute('INSERT INTO t VALUES (?, ?)', (k, ('row-%d' % k).ljust(60, '.')))
db.execute('COMMIT')
shutil.copyfile(os.path.join(work, 'app.db'), path)
shutil.copyfile(os.path.join(work, 'app.db-wal'), path + '-wal')
db.close()
shutil.rmtree(work)`,
  );
}

/** Rewrites `file` in place (same inode) with `bytes`. */
function rewriteInPlace(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, 0);
    fs.ftruncateSync(fd, bytes.length);
  } finally {
    fs.closeSync(fd);
  }
}

/** The real file system with a clock a minute ahead: every file time looks settled (outside the racy window). */
const settledFs: ImageFileSystem = { ...nodeFileSystem, now: () => BigInt(Date.now() + 60_000) * 1_000_000n };

const ROWS = 'SELECT k, v FROM t ORDER BY k';

for (const headerValid of [true, false]) {
  test(`a WAL commit frame that says 2^31 − 1 pages (checksums valid; header page count ${headerValid ? 'valid' : 'not valid'}) opens, reloads and is watched as SQLite reads it, and costs what the files hold`, async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    walDatabase(file, 20);
    const original = new Uint8Array(fs.readFileSync(`${file}-wal`));
    const wal = original.slice();
    const frames = walFrames(wal);
    const commit = frames.filter((frame) => frame.commitSize !== 0).at(-1)!;
    setUint32(wal, commit.offset + 4, 2 ** 31 - 1);
    if (!headerValid) {
      // Bytes 92–95 (version-valid-for) no longer equal the change counter in the committed page 1:
      // SQLite then takes the database's size from the WAL, all 2^31 − 1 pages of it.
      const page1 = frames.filter((frame) => frame.pageNumber === 1 && frame.index <= commit.index).at(-1)!;
      const at = page1.offset + 24 + 92;
      setUint32(wal, at, (getUint32(wal, at) + 1) % 2 ** 32);
    }
    resealWal(wal);
    const sqls = [ROWS, 'PRAGMA page_count'];
    const watched = await openDbCache(file, { watch: true, debounceMs: 0 });
    try {
      fs.writeFileSync(`${file}-wal`, wal);
      const expected = sqliteReads(file, sqls);
      assert.equal(expected[0]!.length, 20, 'SQLite reads the rows');
      const pageCount = expected[1]![0]![0] as number;
      // With a valid header SQLite takes its page count; otherwise the commit frame's.
      if (headerValid) assert.ok(pageCount < 100, `SQLite's page count ${pageCount}`);
      else assert.equal(pageCount, 2 ** 31 - 1);
      // On the code before the fix, each of these aborted the process ("Fatal JavaScript invalid size error").
      const fresh = await openDbCache(file, { watch: false });
      try {
        assert.deepEqual([fresh.values(ROWS), fresh.values('PRAGMA page_count')], expected);
        assert.ok(fresh.stats().pageBytes <= 4 << 20, `${fresh.stats().pageBytes} bytes of pages for a few-page database`);
      } finally {
        await fresh.close();
      }
      // The watching cache sees the rewrite by itself, then an explicit reload finds nothing new.
      await waitFor(() => watched.generation === 2, 'the watcher to publish the rewritten WAL', 20_000);
      await watched.reload();
      assert.deepEqual([watched.values(ROWS), watched.values('PRAGMA page_count')], expected);
      // And back: the image with the real page count, read incrementally or in full.
      fs.writeFileSync(`${file}-wal`, original);
      await watched.reload();
      assert.deepEqual(watched.values(ROWS), expected[0]);
    } finally {
      await watched.close();
      cleanup();
    }
  });
}

for (const mode of ['delete', 'wal'] as const) {
  test(`${mode} mode: a database rewritten in place with its size, change counter and mtime put back is reloaded with the new rows (ctime is in the version)`, async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    python(
      file,
      `db = sqlite3.connect(path, isolation_level=None)
db.execute('PRAGMA journal_mode=${mode}')
db.execute('CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)')
db.executemany('INSERT INTO t VALUES (?, ?)', [(k, 'alpha-%d' % k) for k in range(1, 30)])
db.close()`,
    );
    assert.ok(!fs.existsSync(`${file}-wal`), 'the last connection checkpointed and removed the WAL');
    const cache = await openDbCacheOn(settledFs, file, { watch: false });
    try {
      const before = cache.values(ROWS);
      assert.equal(before[0]![1], 'alpha-1');
      // Deno reports ctime in whole seconds: the rewrite must land in a later second to show in it.
      // (With the real clock the racy window covers that: a version read within 2 s of a file time
      // is compared by content. This file system's clock makes every version settled.)
      const ctimeMs = fs.statSync(file).ctimeMs;
      await waitFor(() => Date.now() >= (Math.floor(ctimeMs / 1000) + 1) * 1000, 'the next second', 5000);
      // What cp -p or rsync --inplace -t do: the same inode and size, other bytes, the old mtime.
      python(
        file,
        `st = os.stat(path)
data = open(path, 'rb').read()
assert data.count(b'alpha') == 29
with open(path, 'r+b') as f: f.write(data.replace(b'alpha', b'omega'))
os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
now = os.stat(path)
assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)`,
      );
      const expected = sqliteReads(file, [ROWS])[0];
      assert.equal(expected![0]![1], 'omega-1', 'SQLite reads the new rows');
      await cache.reload();
      assert.deepEqual(cache.values(ROWS), expected, 'the reload publishes the new rows');
      assert.equal(cache.generation, 2);
      await cache.reload();
      assert.equal(cache.generation, 2, 'and the next reload finds nothing new');
    } finally {
      await cache.close();
      cleanup();
    }
  });
}

test('a WAL frame rewritten in place with colliding checksums: an explicit reload shows its new content', async () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  walDatabase(file, 30);
  const cache = await openDbCacheOn(settledFs, file, { watch: false });
  try {
    const wal = new Uint8Array(fs.readFileSync(`${file}-wal`));
    const pageSize = walPageSize(wal);
    const frames = walFrames(wal);
    const lastCommit = frames.filter((frame) => frame.commitSize !== 0).at(-1)!;
    // The newest committed copy of the page that holds row 7's value.
    const needle = Buffer.from('row-7....');
    const frame = frames.filter((f) => f.index <= lastCommit.index && Buffer.from(wal.subarray(f.offset + 24, f.offset + 24 + pageSize)).includes(needle)).at(-1)!;
    const found = Buffer.from(wal.subarray(frame.offset + 24, frame.offset + 24 + pageSize)).indexOf(needle);
    // A pair of words that starts inside the dots after 'row-7' and ends (with the next word) inside them.
    const pair = Math.ceil((found + 6) / 8) * 8;
    const checksums = frames.map((f) => [getUint32(wal, f.offset + 16), getUint32(wal, f.offset + 20)]);
    collideFrame(wal, frame, pair, 1);
    assert.deepEqual(frames.map((f) => [getUint32(wal, f.offset + 16), getUint32(wal, f.offset + 20)]), checksums, 'the stored checksums are untouched');
    const { scanWal } = await import('../src/image/wal.ts');
    assert.equal(scanWal(wal)!.committedFrames, lastCommit.index + 1, 'and still valid: the rewrite collides');
    rewriteInPlace(`${file}-wal`, wal);
    const expected = sqliteReads(file, [ROWS])[0]!;
    const row7 = expected.find((row) => row[0] === 7)![1] as string;
    assert.notEqual(row7, 'row-7'.padEnd(60, '.'), `SQLite reads the rewritten row: ${row7}`);
    await cache.reload();
    assert.deepEqual(cache.values(ROWS), expected, 'the explicit reload publishes what SQLite reads');
    assert.equal(cache.generation, 2);
  } finally {
    await cache.close();
    cleanup();
  }
});

declare const Bun: { gc(force: boolean): void } | undefined;

/** A full garbage collection, or `undefined` where the runtime offers none from inside a test (Deno without --v8-flags=--expose-gc). */
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

test('released versions give their pages back when the last lease ends, while the file is quiet (pageBytes, and arrayBuffers after a collection)', async () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  python(
    file,
    `db = sqlite3.connect(path, isolation_level=None)
db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')
db.execute('BEGIN')
db.executemany('INSERT INTO t VALUES (?, randomblob(360))', [(i,) for i in range(12000)])
db.execute('COMMIT')
db.close()`,
  );
  const gc = await garbageCollector();
  const arrayBuffers = (): number => {
    gc?.();
    return process.memoryUsage().arrayBuffers ?? 0;
  };
  const cache = await openDbCache(file, { watch: false });
  const leases: Snapshot[] = [];
  try {
    const one = cache.stats().pageBytes;
    const oneBuffers = arrayBuffers();
    for (let i = 0; i < 20; i++) {
      python(file, `db = sqlite3.connect(path, isolation_level=None)\ndb.execute('UPDATE t SET v = randomblob(360) WHERE id % 20 = ${i}')\ndb.close()`);
      await cache.reload();
      leases.push(cache.snapshot());
    }
    const leased = cache.stats().pageBytes;
    const leasedBuffers = arrayBuffers();
    assert.ok(leased > 3 * one, `20 leased versions hold more (${leased} bytes of pages, ${one} for one version)`);
    for (const lease of leases.splice(0)) lease.release();
    await cache.reload();
    const released = cache.stats();
    assert.equal(released.liveSnapshots, 1);
    assert.equal(released.noopReloads, 1, 'nothing was published since');
    assert.ok(released.pageBytes <= 1.5 * one + (2 << 20), `after the leases ended: ${released.pageBytes} bytes of pages, ${one} for one version, ${leased} while leased`);
    if (gc !== undefined && leasedBuffers > 0) {
      // V8 frees array buffers' memory concurrently after a collection: poll.
      let after = arrayBuffers();
      const returned = (): boolean => (after = arrayBuffers()) - oneBuffers <= 0.5 * (leasedBuffers - oneBuffers);
      await waitFor(returned, () => `arrayBuffers: ${oneBuffers} for one version, ${leasedBuffers} leased, ${after} after release and collections`, 10_000);
    }
  } finally {
    for (const lease of leases) lease.release();
    await cache.close();
    cleanup();
  }
});
