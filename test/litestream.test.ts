/**
 * `replica: 'litestream'` on real files with real SQLite writers (Python's sqlite3): a restore
 * renamed over a database whose killed application left its `-wal` behind, and Litestream's follow
 * mode (`restore -f`, recognised by its `<db>-txid` file). Litestream itself does not run here;
 * the files are what its documentation and the issue describe it to leave (`litestream restore -o
 * <tmp>` writes a complete database file, the operator renames it into place).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { isDbCacheError, openDbCache, type DbCache, type DbCacheEvent } from '../src/index.ts';
import { pausedPython, sqlite, tempDir, waitFor } from './support/fixtures.ts';

/** A writer that commits in WAL mode and is then killed (no checkpoint): its -wal and -shm stay, with frames. */
async function killedWriter(file: string, rows: readonly string[]): Promise<void> {
  const program =
    "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\ndb.execute('PRAGMA journal_mode=WAL')\n" +
    "db.execute('PRAGMA wal_autocheckpoint=0')\n" +
    `for v in ${JSON.stringify(rows)}: db.execute('INSERT INTO t(v) VALUES (?)', (v,))\n` +
    "print('ready', flush=True)\nsys.stdin.read()\n";
  await (await pausedPython(program, file)).kill();
}

const SCHEMA = "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')";
const WAL_SCHEMA = `db.execute('PRAGMA journal_mode=WAL'); ${SCHEMA}`;

/** An application's WAL database, its writer killed after committing `old-1` and `old-2` (still only in its -wal). */
async function crashedApplication(file: string): Promise<void> {
  sqlite(file, WAL_SCHEMA);
  await killedWriter(file, ['old-1', 'old-2']);
}

/**
 * `litestream restore -o <db>.tmp`, then a rename over `file`: a complete new database holding
 * the row `value`; a -wal and -shm beside `file` stay where they are.
 */
function restoreInto(file: string, value: string, schema = WAL_SCHEMA): void {
  const restored = `${file}.tmp`;
  sqlite(restored, `${schema}; db.execute("INSERT INTO t(v) VALUES ('${value}')")`);
  fs.renameSync(restored, file);
}

function rows(cache: DbCache): unknown[] {
  return cache.all('SELECT v FROM t ORDER BY id').map((row) => row.v);
}

describe("replica: 'litestream'", () => {
  test('a restore renamed over a database whose -wal was left behind is refused with REPLICA, naming the fix, while the last version serves; SQLite itself would read the old frames', async () => {
    const { dir, cleanup } = tempDir();
    let cache: DbCache | undefined;
    try {
      const file = path.join(dir, 'app.db');
      await crashedApplication(file);
      assert.ok(fs.statSync(`${file}-wal`).size > 32, 'the killed writer left frames in its -wal');
      const events: DbCacheEvent[] = [];
      cache = await openDbCache(file, { watch: false, replica: 'litestream' });
      cache.subscribe((event) => events.push(event));
      assert.deepEqual(rows(cache), ['old-1', 'old-2']);

      restoreInto(file, 'restored');
      const leftover = fs.readFileSync(`${file}-wal`);

      await assert.rejects(cache.reload(), (error) => {
        assert.ok(isDbCacheError(error, 'REPLICA'), String(error));
        assert.match(error.message, /delete .*app\.db-wal and .*app\.db-shm before renaming a restored database into place/);
        assert.match(error.message, /still serving generation 1/);
        return true;
      });
      assert.deepEqual(rows(cache), ['old-1', 'old-2']);
      assert.equal(events.at(-1)?.type, 'error');

      // What SQLite does with that pair: it folds the old frames into the new file (checked on a copy).
      const copy = path.join(dir, 'copy.db');
      fs.copyFileSync(file, copy);
      fs.writeFileSync(`${copy}-wal`, leftover);
      let seen: string;
      try {
        seen = sqlite(copy, "print([r[0] for r in db.execute('SELECT v FROM t ORDER BY id')])").trim();
      } catch (error) {
        seen = `SQLite failed: ${String(error)}`;
      }
      assert.notEqual(seen, "['restored']", 'SQLite reads the restored file with the old frames folded in');

      // The fix: delete -wal and -shm. Then the restored database is read.
      fs.rmSync(`${file}-wal`);
      fs.rmSync(`${file}-shm`);
      await cache.reload();
      assert.deepEqual(rows(cache), ['restored']);
      assert.equal(cache.generation, 2);
    } finally {
      await cache?.close();
      cleanup();
    }
  });

  test("the same files with replica: 'sqlite' (the default) never publish the restored database: the old frames are folded in, or the image is rejected", async () => {
    const { dir, cleanup } = tempDir();
    let cache: DbCache | undefined;
    try {
      const file = path.join(dir, 'app.db');
      await crashedApplication(file);
      cache = await openDbCache(file, { watch: false });
      restoreInto(file, 'restored');
      // Either the old rows come back or the image is rejected; never the restored database.
      const outcome = await cache.reload().then(
        () => JSON.stringify(rows(cache!)),
        (error: unknown) => (isDbCacheError(error) ? error.code : String(error)),
      );
      assert.notEqual(outcome, JSON.stringify(['restored']));
    } finally {
      await cache?.close();
      cleanup();
    }
  });

  test('follow mode (restore -f, recognised by <db>-txid) is refused with REPLICA, at open and later; a clean rename-replace is read', async () => {
    const { dir, cleanup } = tempDir();
    let cache: DbCache | undefined;
    try {
      const file = path.join(dir, 'app.db');
      sqlite(file, `${SCHEMA}; db.execute("INSERT INTO t(v) VALUES ('one')")`);
      fs.writeFileSync(`${file}-txid`, '0000000000000001\n');
      await assert.rejects(openDbCache(file, { watch: false, replica: 'litestream' }), (error) => {
        assert.ok(isDbCacheError(error, 'REPLICA'), String(error));
        assert.match(error.message, /litestream restore -f \(follow mode\)/);
        assert.match(error.message, /the cache was not opened/);
        return true;
      });
      fs.rmSync(`${file}-txid`);
      cache = await openDbCache(file, { replica: 'litestream' });
      assert.deepEqual(rows(cache), ['one']);

      // A restore done right (no -wal beside the old file), renamed into place: seen by the watcher.
      restoreInto(file, 'two', SCHEMA);
      await waitFor(() => JSON.stringify(rows(cache!)) === JSON.stringify(['two']), 'the renamed file to be read');

      fs.writeFileSync(`${file}-txid`, '0000000000000002\n');
      await assert.rejects(cache.reload(), (error) => isDbCacheError(error, 'REPLICA') && /still serving generation 2/.test(error.message));
      assert.deepEqual(rows(cache), ['two']);
    } finally {
      await cache?.close();
      cleanup();
    }
  });
});
