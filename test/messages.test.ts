// Messages that say what to do: a hot journal's BUSY names the fix; a source function that returns
// the wrong thing, ':memory:' and URLs get errors that say what to pass instead; file: URLs work
// as node:fs takes them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isDbCacheError, openDbCache } from '../src/index.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

describe('messages say what to do', () => {
  test('BUSY from a hot journal says how to roll it back; doing so lets the cache open', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    try {
      sqlite(file, "db.execute('PRAGMA journal_mode=DELETE'); db.execute('CREATE TABLE t(v)'); db.execute('BEGIN'); db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(2000)]); db.execute('COMMIT')");
      // A writer that dies mid-transaction, after its one-page cache spilled changes into the
      // database file (so its journal was synced with its magic), leaves the journal hot.
      execFileSync('python3', ['-c', "import os, sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\ndb.execute('PRAGMA cache_size=1')\ndb.execute('BEGIN')\ndb.execute('UPDATE t SET v = v + 1')\nos._exit(0)\n", file]);
      assert.ok(fs.existsSync(`${file}-journal`), 'the crashed writer left no journal');
      const error = await openDbCache(file, { watch: false, busyTimeoutMs: 200 }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.ok(isDbCacheError(error, 'BUSY'), String(error));
      assert.ok(error.message.includes(file));
      assert.match(error.message, /hot journal: open .* once with SQLite.*to roll it back/);
      // The fix the message gives.
      sqlite(file, "db.execute('PRAGMA quick_check').fetchall()");
      const cache = await openDbCache(file, { watch: false });
      try {
        assert.deepEqual(cache.values('SELECT sum(v) FROM t'), [[1999000]]);
      } finally {
        await cache.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a source function that returns a string (or anything but bytes) is told to return a Uint8Array', async () => {
    for (const value of ['CREATE TABLE t(v)', new ArrayBuffer(8), null, [1, 2]]) {
      const error = await openDbCache(() => value as never).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.ok(isDbCacheError(error, 'SOURCE_FAILED'), String(error));
      assert.doesNotMatch(error.message, /\[object /);
      assert.match(error.message, /return the database image as a Uint8Array/);
    }
    const error = await openDbCache(() => 'x' as never).catch((caught: Error) => caught);
    assert.match((error as Error).message, /returned a string;/);
  });

  test("':memory:' is refused at once with a TypeError that says dbcache mirrors a file (or takes a source function)", async () => {
    await assert.rejects(openDbCache(':memory:'), (error: unknown) => error instanceof TypeError && /mirrors a database file/.test(error.message) && /source function/.test(error.message));
  });

  test('a file: URL opens the file as node:fs would; other URLs and buffers are TypeErrors that say what to pass', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'a b#c.db');
    try {
      sqlite(file, "db.execute('CREATE TABLE t(v)'); db.execute('INSERT INTO t VALUES (1)')");
      const url = pathToFileURL(file);
      const cache = await openDbCache(url, { watch: false });
      try {
        assert.equal(cache.path, file);
        assert.deepEqual(cache.values('SELECT v FROM t'), [[1]]);
      } finally {
        await cache.close();
      }
      await assert.rejects(openDbCache(new URL('https://example.com/app.db')), (error: unknown) => error instanceof TypeError && /https:/.test(error.message));
      await assert.rejects(openDbCache(new URL('file://remote-host/app.db')), TypeError);
      await assert.rejects(openDbCache(Buffer.from(file) as never), (error: unknown) => error instanceof TypeError && /Buffer/.test(error.message));
      await assert.rejects(openDbCache({} as never), (error: unknown) => error instanceof TypeError && /file: URL/.test(error.message));
    } finally {
      cleanup();
    }
  });
});
