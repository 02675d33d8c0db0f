import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCacheOn } from '../src/cache.ts';
import { runCli } from '../src/cli.ts';
import { nodeFileSystem } from '../src/image/file-system.ts';
import { inspectDatabase, isDbCacheError, openDbCache, type DbCacheEvent, type Queryable } from '../src/index.ts';
import { holdOpen, pausedPython, runtimeCommand, sqlite, sqliteAsync, tempDir, waitFor } from './support/fixtures.ts';
import { ManualClock } from './support/manual-clock.ts';

/**
 * A database opened through a symbolic link is the file SQLite opens through it: the path is
 * resolved as SQLite's unix VFS resolves it, and the -wal, -shm and -journal beside the real
 * file are read and watched. Every writer here is Python's sqlite3 in another process.
 */

const COUNT = 'SELECT count(*) AS n FROM t';
/** Watch assertions: generous, so that a loaded machine only makes them slower, never fail. */
const WATCH_MS = 30_000;

function count(q: Queryable): number {
  return q.get<{ n: number }>(COUNT)!.n;
}

/**
 * A WAL database with one row in the database file and `inWal` more only in its -wal: the writer
 * exits without closing, so nothing checkpoints them (the reproduction).
 */
function walOnly(file: string, inWal: number): void {
  sqlite(
    file,
    "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA wal_autocheckpoint=0'); db.execute('CREATE TABLE t(v)');" +
      " db.execute('INSERT INTO t VALUES (0)'); db.execute('PRAGMA wal_checkpoint(TRUNCATE)');" +
      ` db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(${inWal})]); import os; os._exit(0)`,
  );
}

/**
 * `real/app.db`, created by `setup` (Python, `db` open on it), and the link `links/app.db` to it
 * (`../real/app.db`), inside `dir`.
 */
function linkedDatabase(dir: string, setup: string): { real: string; link: string } {
  fs.mkdirSync(path.join(dir, 'real'));
  fs.mkdirSync(path.join(dir, 'links'));
  const real = path.join(dir, 'real', 'app.db');
  const link = path.join(dir, 'links', 'app.db');
  sqlite(real, setup);
  fs.symlinkSync('../real/app.db', link);
  return { real, link };
}

/** Commits `rows` rows to `file` (one transaction). */
function insert(file: string, rows: number): void {
  sqlite(file, `db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(${rows})])`);
}

/** Replaces the link at `at` atomically: a new link renamed over it. */
function relink(target: string, at: string): void {
  fs.symlinkSync(target, `${at}.new`);
  fs.renameSync(`${at}.new`, at);
}

/** Each test's own directory; everything opened in `body` is closed by it. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    await body(fs.realpathSync(dir));
  } finally {
    cleanup();
  }
}

/**
 * A writer committing one row at a time to `file` and reporting each commit on stdout: `latest()`
 * is a lower bound of what is committed.
 */
function liveWriter(file: string, commits: number): { latest: () => number; done: Promise<void> } {
  const program =
    'import sqlite3, sys, time\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n' +
    `for i in range(${commits}):\n  db.execute('INSERT INTO t VALUES (?)', (i,))\n  print(i + 1, flush=True)\n  time.sleep(0.003)\ndb.close()\n`;
  const child = spawn('python3', ['-c', program, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let latest = 0;
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    pending += String(chunk);
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line !== '') latest = Number(line);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (status) => (status === 0 ? resolve() : reject(new Error(`python writer exited with ${status}`))));
  });
  return { latest: () => latest, done };
}

/**
 * A rollback-mode writer that stops inside a transaction large enough to spill pages into the
 * database file, so its journal is hot; the returned function commits and closes it.
 */
async function hotTransaction(file: string, rows: number): Promise<() => Promise<void>> {
  const program =
    'import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n' +
    "db.execute('PRAGMA cache_size=10')\ndb.execute('BEGIN IMMEDIATE')\n" +
    `db.executemany('INSERT INTO t(v) VALUES (?)', [(i,) for i in range(${rows})])\n` +
    "db.execute('UPDATE t SET pad = randomblob(2000)')\n" +
    "print('ready', flush=True)\nsys.stdin.read()\ndb.execute('COMMIT')\ndb.close()\n";
  return (await pausedPython(program, file)).resume;
}

function journalIsHot(file: string): boolean {
  const head = Buffer.alloc(8);
  const fd = fs.openSync(`${file}-journal`, 'r');
  try {
    fs.readSync(fd, head, 0, 8, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.equals(Buffer.from([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]));
}

/**
 * Moves the cache's clock on, 200 ms a step, until `condition` holds. On this clock the watcher's
 * re-checks after an event (every 4 ms for 150 ms) end at once: only an event from a watched
 * directory starts a reload.
 */
async function driveUntil(clock: ManualClock, condition: () => boolean, what: () => string): Promise<void> {
  await waitFor(
    () => {
      if (condition()) return true;
      clock.advanceTo(clock.now() + 200);
      return false;
    },
    what,
    WATCH_MS,
  );
}

async function rejectsWith(promise: Promise<unknown>, code: string, given: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isDbCacheError(error), `expected a DbCacheError, got ${String(error)}`);
    assert.equal(error.name, 'DbCacheError');
    assert.equal(error.code, code, error.message);
    assert.equal(error.path, given, 'the error names the path as given');
    return true;
  });
}

describe('a database opened through a symbolic link', () => {
  test('a file link: the -wal beside the real file is read (relative, absolute, other directory, chain, directory link, `..` after a link)', async () => {
    await inTempDir(async (dir) => {
      fs.mkdirSync(path.join(dir, 'data'));
      fs.mkdirSync(path.join(dir, 'data', 'sub'));
      fs.mkdirSync(path.join(dir, 'links'));
      const real = path.join(dir, 'data', 'sl.db');
      walOnly(real, 1);
      fs.symlinkSync('sl.db', path.join(dir, 'data', 'link.db'));
      fs.symlinkSync('../data/sl.db', path.join(dir, 'links', 'rel.db'));
      fs.symlinkSync(real, path.join(dir, 'links', 'abs.db'));
      fs.symlinkSync('rel.db', path.join(dir, 'links', 'chain.db'));
      fs.symlinkSync('data', path.join(dir, 'linkdir'));
      fs.symlinkSync(path.join('data', 'sub'), path.join(dir, 'sublink'));
      const given = [
        path.join(dir, 'data', 'link.db'), // relative target, same directory (the case)
        path.join(dir, 'links', 'rel.db'), // relative target, taken from the link's directory
        path.join(dir, 'links', 'abs.db'), // absolute target
        path.join(dir, 'links', 'chain.db'), // a chain of two links
        path.join(dir, 'linkdir', 'link.db'), // a directory link, then a file link
        `${path.join(dir, 'sublink')}/../sl.db`, // `..` applies to where sublink leads (data/sub), not to the name
      ];
      for (const file of given) {
        const cache = await openDbCache(file, { watch: false });
        try {
          assert.equal(count(cache), 2, `${file}: the row in ${real}-wal`);
          assert.equal(cache.path, file, 'cache.path is the path as given');
        } finally {
          await cache.close();
        }
        const info = await inspectDatabase(file);
        assert.equal(info.journalMode, 'wal');
        assert.equal(info.walCommittedFrames > 0, true, `${file}: inspectDatabase reads ${real}-wal`);
      }
      // The command line goes through the same resolution.
      const out: string[] = [];
      const output = { out: (text: string) => void out.push(text), err: (text: string) => void out.push(text) };
      assert.equal(await runCli(['query', given[1]!, 'SELECT count(*) AS n FROM t', '--json'], output), 0, out.join('\n'));
      assert.equal(await runCli(['info', given[1]!, '--json'], output), 0, out.join('\n'));
      assert.deepEqual(JSON.parse(out[0]!), [{ n: 2 }]);
      assert.equal(JSON.parse(out[1]!).walCommittedFrames > 0, true, out[1]);
      // What Python's SQLite reads through the same links (last: its close checkpoints the WAL).
      for (const file of given) assert.equal(sqlite(file, "print(db.execute('SELECT count(*) FROM t').fetchone()[0])").trim(), '2', file);
    });
  });

  test('a live writer through the real path, the cache on the link: the watch follows and reload() shows every commit made before it', async () => {
    await inTempDir(async (dir) => {
      const { real, link } = linkedDatabase(dir, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
      // Another connection stays open: every commit stays in the -wal.
      const release = await holdOpen(real);
      const cache = await openDbCache(link);
      const events: DbCacheEvent[] = [];
      cache.subscribe((event) => events.push(event));
      try {
        const first = cache.generation;
        const writer = liveWriter(real, 60);
        let finished = false;
        void writer.done.then(() => (finished = true), () => (finished = true));
        while (!finished) {
          const committed = writer.latest();
          await cache.reload();
          assert.ok(count(cache) >= committed, `reload() after commit ${committed} shows ${count(cache)} rows`);
          // A reload that finds nothing new completes without I/O callbacks: let the writer's output in.
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        await writer.done;
        await waitFor(() => count(cache) === 60, () => `all 60 commits through the watch (at ${count(cache)})`, WATCH_MS);
        assert.ok(cache.generation > first, 'the generation followed the commits');
        assert.ok(events.some((event) => event.type === 'reload' && event.cause === 'watch'), 'the watch reloaded');
        // Watched alone: a commit is seen without reload().
        insert(real, 1);
        await waitFor(() => count(cache) === 61, () => `the commit after the writer (at ${count(cache)})`, WATCH_MS);
        assert.ok(fs.statSync(`${real}-wal`).size > 0, 'the commits were read from the -wal');
      } finally {
        await cache.close();
        await release();
      }
    });
  });

  test('a writer that creates the database through a dangling link: the cache on the link reads what it wrote', async () => {
    await inTempDir(async (dir) => {
      fs.mkdirSync(path.join(dir, 'real'));
      const link = path.join(dir, 'app.db');
      fs.symlinkSync('real/app.db', link);
      await rejectsWith(openDbCache(link, { watch: false }), 'NOT_FOUND', link);
      walOnly(link, 3);
      assert.ok(fs.lstatSync(link).isSymbolicLink() && fs.existsSync(path.join(dir, 'real', 'app.db-wal')), 'SQLite created the file and its -wal where the link leads');
      const cache = await openDbCache(link, { watch: false });
      try {
        assert.equal(count(cache), 4);
      } finally {
        await cache.close();
      }
    });
  });

  test('a symbolic link loop is NOT_FOUND (SQLite: SQLITE_CANTOPEN); a chain of 201 links is followed, 202 are not (as SQLite)', async () => {
    await inTempDir(async (dir) => {
      const loop = path.join(dir, 'loop.db');
      fs.symlinkSync('other.db', loop);
      fs.symlinkSync('loop.db', path.join(dir, 'other.db'));
      await rejectsWith(openDbCache(loop, { watch: false }), 'NOT_FOUND', loop);
      await assert.rejects(inspectDatabase(loop), { name: 'DbCacheError', code: 'NOT_FOUND' });

      const real = path.join(dir, 'sl.db');
      walOnly(real, 1);
      let previous = 'sl.db';
      for (let i = 1; i <= 202; i++) {
        fs.symlinkSync(previous, path.join(dir, `l${i}.db`));
        previous = `l${i}.db`;
      }
      // The kernel gives up after 40 links; SQLite reads each link itself, and so does the cache.
      const cache = await openDbCache(path.join(dir, 'l201.db'), { watch: false });
      try {
        assert.equal(count(cache), 2);
      } finally {
        await cache.close();
      }
      await rejectsWith(openDbCache(path.join(dir, 'l202.db'), { watch: false }), 'NOT_FOUND', path.join(dir, 'l202.db'));
    });
  });

  for (const mode of ['events', 'polling'] as const) {
    const watchOptions = mode === 'polling' ? { poll: 20 } : {};

    test(`a link replaced (renamed over) to lead to another database: served after reload() and while watching (${mode}), and the new directory is watched`, async () => {
      await inTempDir(async (dir) => {
        for (const name of ['a', 'b', 'links']) fs.mkdirSync(path.join(dir, name));
        const one = path.join(dir, 'a', 'one.db');
        const two = path.join(dir, 'b', 'two.db');
        const link = path.join(dir, 'links', 'app.db');
        walOnly(one, 1);
        // two.db: ten rows in its -wal, kept there by a connection that stays open.
        sqlite(two, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
        const release = await holdOpen(two);
        insert(two, 10);
        fs.symlinkSync('../a/one.db', link);
        const watching = await openDbCache(link, watchOptions);
        const calling = await openDbCache(link, { watch: false });
        try {
          assert.equal(count(watching), 2);
          assert.equal(count(calling), 2);
          const generation = calling.generation;
          relink('../b/two.db', link);
          await calling.reload();
          assert.equal(count(calling), 10, 'reload() reads where the link leads now');
          assert.equal(calling.generation, generation + 1);
          await waitFor(() => count(watching) === 10, () => `the watch to follow the replaced link (at ${count(watching)})`, WATCH_MS);
          // The watch moved to b/: a commit there is seen without reload().
          insert(two, 1);
          await waitFor(() => count(watching) === 11, () => `a commit to the new target (at ${count(watching)})`, WATCH_MS);
          await calling.reload();
          assert.equal(count(calling), 11);
          // And back: the first database again.
          relink('../a/one.db', link);
          await calling.reload();
          assert.equal(count(calling), 2);
          await waitFor(() => count(watching) === 2, () => `the watch to follow the link back (at ${count(watching)})`, WATCH_MS);
        } finally {
          await watching.close();
          await calling.close();
          await release();
        }
      });
    });

    test(`a directory link in the path, replaced to lead to another directory: watched where it leads (${mode})`, async () => {
      await inTempDir(async (dir) => {
        const first = path.join(dir, 'first', 'app.db');
        const second = path.join(dir, 'second', 'app.db');
        fs.mkdirSync(path.dirname(first));
        fs.mkdirSync(path.dirname(second));
        sqlite(first, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
        sqlite(second, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
        const releaseFirst = await holdOpen(first);
        const releaseSecond = await holdOpen(second);
        insert(first, 5);
        insert(second, 7);
        fs.symlinkSync('first', path.join(dir, 'current'));
        const given = path.join(dir, 'current', 'app.db');
        const clock = new ManualClock();
        const cache = await openDbCacheOn(nodeFileSystem, given, watchOptions, clock);
        try {
          assert.equal(count(cache), 5);
          insert(first, 1);
          await driveUntil(clock, () => count(cache) === 6, () => `a commit in first/ (at ${count(cache)})`);
          relink('second', path.join(dir, 'current'));
          await driveUntil(clock, () => count(cache) === 7, () => `the replaced directory link (at ${count(cache)})`);
          insert(second, 1);
          await driveUntil(clock, () => count(cache) === 8, () => `a commit in second/ (at ${count(cache)})`);
        } finally {
          await cache.close();
          await releaseFirst();
          await releaseSecond();
        }
      });
    });
  }

  test('rollback journal mode through a link: a hot -journal beside the real file means BUSY, as on the real path; commits are watched', async () => {
    await inTempDir(async (dir) => {
      const { real, link } = linkedDatabase(dir, "db.execute('CREATE TABLE t(v, pad)'); db.executemany('INSERT INTO t(v) VALUES (?)', [(i,) for i in range(3)])");
      const cache = await openDbCache(link, { busyTimeoutMs: 200 });
      try {
        assert.equal(count(cache), 3);
        await sqliteAsync(real, "db.execute('INSERT INTO t(v) VALUES (1)')");
        await waitFor(() => count(cache) === 4, () => `a rollback commit through the real path (at ${count(cache)})`, WATCH_MS);

        const commit = await hotTransaction(real, 400);
        try {
          assert.ok(journalIsHot(real), 'the writer left a hot journal beside the real file');
          await rejectsWith(openDbCache(link, { watch: false, busyTimeoutMs: 50 }), 'BUSY', link);
          await rejectsWith(openDbCache(real, { watch: false, busyTimeoutMs: 50 }), 'BUSY', real);
          await rejectsWith(cache.reload(), 'BUSY', link);
          assert.equal(count(cache), 4, 'the last good version keeps serving');
        } finally {
          await commit();
        }
        await waitFor(() => count(cache) === 404, () => `the committed transaction (at ${count(cache)})`, WATCH_MS);
        await cache.reload();
        assert.equal(count(cache), 404);
      } finally {
        await cache.close();
      }
    });
  });

  test('the file a link leads to vanishes (NOT_FOUND, still serving), then a writer creates it through the link: the watch resumes', async () => {
    await inTempDir(async (dir) => {
      const { real, link } = linkedDatabase(dir, "db.execute('CREATE TABLE t(v)'); db.execute('INSERT INTO t VALUES (1)')");
      const cache = await openDbCache(link);
      const errors: string[] = [];
      cache.subscribe((event) => (event.type === 'error' ? errors.push(event.error.code) : undefined));
      try {
        assert.equal(count(cache), 1);
        fs.rmSync(real);
        await rejectsWith(cache.reload(), 'NOT_FOUND', link);
        assert.equal(count(cache), 1, 'still serving');
        walOnly(link, 4);
        await waitFor(() => count(cache) === 5, () => `the database created through the link (at ${count(cache)})`, WATCH_MS);
        assert.ok(errors.includes('NOT_FOUND'));
      } finally {
        await cache.close();
      }
    });
  });

  test('Deno with --allow-read for the link\'s directory only: read and watched through a directory link and a file link', async () => {
    await inTempDir(async (dir) => {
      // app/data is a link to volume/, outside what the process may read; current.db leads to app.db.
      fs.mkdirSync(path.join(dir, 'app'));
      fs.mkdirSync(path.join(dir, 'volume'));
      const real = path.join(dir, 'volume', 'app.db');
      sqlite(real, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
      const release = await holdOpen(real);
      try {
        insert(real, 3);
        fs.symlinkSync(path.join(dir, 'volume'), path.join(dir, 'app', 'data'));
        fs.symlinkSync('app.db', path.join(dir, 'volume', 'current.db'));
        const script = fileURLToPath(new URL('./scripts/symlink-child.ts', import.meta.url));
        const repository = fileURLToPath(new URL('..', import.meta.url));
        const data = path.join(dir, 'app', 'data');
        const [command, args] = runtimeCommand(script, [`--allow-read=${data},${repository}`, '--allow-env', '--allow-sys']);
        const child = spawn(command, [...args, path.join(data, 'current.db'), '5'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += String(chunk)));
        const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
        await waitFor(() => output.includes('\n') || child.exitCode !== null, () => `the child's first line: ${output}`, WATCH_MS);
        assert.deepEqual(JSON.parse(output.split('\n')[0]!), { count: 3 }, output);
        insert(real, 2);
        assert.equal(await exited, 0, output);
        assert.deepEqual(JSON.parse(output.trim().split('\n').at(-1)!), { count: 5 }, `the child saw the commit through its watch: ${output}`);
      } finally {
        await release();
      }
    });
  });
});
