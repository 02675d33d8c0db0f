import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCache, type DbCache, type DbCacheEvent, type DbCacheOptions } from '../src/index.ts';
import { holdOpen, inotifyWatches, recordingLogger, runtimeCommand, sqlite, sqliteAsync, tempDir, waitFor } from './support/fixtures.ts';

const COUNT = 'SELECT count(*) AS n FROM t';

async function withCache(
  setup: string,
  options: DbCacheOptions,
  body: (context: { cache: DbCache; file: string; dir: string; events: DbCacheEvent[] }) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  sqlite(file, setup);
  const cache = await openDbCache(file, options);
  const events: DbCacheEvent[] = [];
  cache.subscribe((event) => events.push(event));
  try {
    await body({ cache, file, dir, events });
  } finally {
    await cache.close();
    cleanup();
  }
}

function count(cache: DbCache): number {
  return cache.get<{ n: number }>(COUNT)!.n;
}

const WAL = "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v INTEGER)')";
const DELETE = "db.execute('CREATE TABLE t(v INTEGER)')";

describe('watching', () => {
  test('commits in WAL mode by another process become visible without reload()', async () => {
    await withCache(WAL, {}, async ({ cache, file, events }) => {
      // Another connection stays open, so the commits stay in the -wal file (no checkpoint at close).
      const release = await holdOpen(file);
      try {
        await sqliteAsync(file, "for i in range(30):\n  db.execute('INSERT INTO t VALUES (?)', (i,))\n  time.sleep(0.005)");
        await waitFor(() => count(cache) === 30, 'all 30 WAL commits');
        assert.ok(fs.statSync(`${file}-wal`).size > 0, 'the commits were read from the -wal');
        assert.ok(events.length > 0 && events.every((event) => event.type === 'reload' && event.cause === 'watch'));
      } finally {
        await release();
      }
    });
  });

  test('short-lived WAL connections (the -wal created and deleted each time) are followed', async () => {
    await withCache(WAL, {}, async ({ cache, file }) => {
      const program =
        "for i in range(15):\n  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n  c.execute('INSERT INTO t VALUES (?)', (i,))\n  c.close()\n  time.sleep(0.004)";
      await sqliteAsync(file, program);
      await waitFor(() => count(cache) === 15, 'all 15 commits');
    });
  });

  test('commits in rollback (DELETE) mode become visible without reload()', async () => {
    await withCache(DELETE, {}, async ({ cache, file }) => {
      await sqliteAsync(file, "for i in range(20):\n  db.execute('INSERT INTO t VALUES (?)', (i,))\n  time.sleep(0.003)");
      await waitFor(() => count(cache) === 20, 'all 20 rollback commits');
    });
  });

  // How many reloads a burst takes depends on how fast the writer's commits land; that events
  // within the debounce share one reload is checked on a manual clock (refresh-scheduler.test.ts).
  test('a burst of commits: the last commit is loaded, and no version is published twice', async () => {
    await withCache(WAL, {}, async ({ cache, file, events }) => {
      await sqliteAsync(file, "for i in range(200):\n  db.execute('INSERT INTO t VALUES (?)', (i,))");
      await waitFor(() => count(cache) === 200, 'the final state of the burst');
      const reloads = events.filter((event) => event.type === 'reload');
      assert.ok(reloads.length >= 1 && reloads.length <= 200, `200 commits caused ${reloads.length} reloads`);
      assert.equal(new Set(reloads.map((event) => event.type === 'reload' && event.version)).size, reloads.length, 'a version published twice');
    });
  });

  test('a checkpoint alone changes no content: no new generation', async () => {
    await withCache(WAL, {}, async ({ cache, file }) => {
      await sqliteAsync(file, "db.execute('INSERT INTO t VALUES (1)')\ntime.sleep(0.01)");
      await waitFor(() => count(cache) === 1, 'the commit');
      const generation = cache.generation;
      const noops = cache.stats().noopReloads;
      sqlite(file, "db.execute('PRAGMA wal_checkpoint(TRUNCATE)')");
      await waitFor(() => cache.stats().noopReloads > noops, 'the watcher to look at the checkpoint');
      assert.equal(cache.generation, generation);
      assert.equal(count(cache), 1);
    });
  });

  test('a database replaced by rename is served', async () => {
    await withCache(DELETE, {}, async ({ cache, file, dir }) => {
      const next = path.join(dir, 'next.db');
      sqlite(next, "db.execute('CREATE TABLE t(v INTEGER)'); db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(7)])");
      fs.renameSync(next, file);
      await waitFor(() => count(cache) === 7, 'the replacement database');
    });
  });

  test('deletion keeps the last version serving, warns once, and recovers when the file is back', async () => {
    const { lines, logger } = recordingLogger();
    await withCache(DELETE, { logger }, async ({ cache, file, events }) => {
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await waitFor(() => count(cache) === 1, 'the first commit');
      fs.rmSync(file);
      await waitFor(() => events.some((event) => event.type === 'error' && event.error.code === 'NOT_FOUND'), 'a NOT_FOUND error event');
      await waitFor(() => cache.stats().failures >= 3, 'retries with backoff', 10_000);
      assert.equal(count(cache), 1);
      assert.equal(lines.warn.length, 1, lines.warn.join('\n'));
      sqlite(file, "db.execute('CREATE TABLE t(v INTEGER)'); db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(5)])");
      await waitFor(() => count(cache) === 5, 'the re-created database');
      await waitFor(() => lines.info.length === 1, 'one recovery message');
      assert.equal(lines.warn.length, 1);
    });
  });

  test('a bad file while watching keeps serving, then recovers', async () => {
    const { lines, logger } = recordingLogger();
    await withCache(DELETE, { logger }, async ({ cache, file, events }) => {
      const good = fs.readFileSync(file);
      fs.writeFileSync(file, 'garbage '.repeat(100));
      await waitFor(() => events.some((event) => event.type === 'error' && event.error.code === 'NOT_A_DATABASE'), 'an error event');
      // A change to the bad file is read again (and fails again); the warning is not repeated.
      const failures = cache.stats().failures;
      fs.appendFileSync(file, 'more garbage');
      await waitFor(() => cache.stats().failures > failures, 'the changed bad file to be read again', 10_000);
      assert.equal(lines.warn.length, 1);
      assert.equal(count(cache), 0);
      fs.writeFileSync(file, good);
      sqlite(file, "db.execute('INSERT INTO t VALUES (1)')");
      await waitFor(() => count(cache) === 1, 'recovery');
      assert.equal(lines.info.length, 1);
    });
  });

  test('polling mode sees commits too', async () => {
    await withCache(WAL, { poll: 10 }, async ({ cache, file }) => {
      await sqliteAsync(file, "for i in range(5):\n  db.execute('INSERT INTO t VALUES (?)', (i,))\n  time.sleep(0.02)\ntime.sleep(0.05)");
      await waitFor(() => count(cache) === 5, 'commits seen by polling');
    });
  });

  const watchesBefore = inotifyWatches();
  test(
    'abort closes the cache and stops watching (its inotify watches are removed)',
    { skip: watchesBefore === undefined ? 'no /proc/self/fdinfo to count inotify watches in' : false },
    async () => {
      const controller = new AbortController();
      await withCache(DELETE, { signal: controller.signal }, async ({ cache }) => {
        const watching = inotifyWatches()!;
        assert.ok(watching > watchesBefore!, `watching adds inotify watches (${watchesBefore} -> ${watching})`);
        controller.abort();
        await waitFor(() => cache.closed, 'the cache to close');
        await waitFor(() => inotifyWatches()! <= watchesBefore!, () => `the watches to be removed (${inotifyWatches()} left, ${watchesBefore} before)`);
        assert.throws(() => cache.get(COUNT), { code: 'CLOSED' });
      });
    },
  );
});

describe('process lifetime', () => {
  for (const mode of ['events', 'polling']) {
    test(`an open, watching cache (${mode}) never keeps the process alive`, async () => {
      const script = fileURLToPath(new URL('./scripts/forgotten-cache.ts', import.meta.url));
      const [command, args] = runtimeCommand(script);
      const child = spawn(command, mode === 'polling' ? [...args, '--poll'] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      // Only catches a process kept alive: starting the runtime (and tsx) is most of this time,
      // and on a loaded machine it can take many seconds.
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      try {
        assert.equal(await exited, 0, output);
        assert.match(output, /open generation 1/);
      } finally {
        clearTimeout(timer);
        const dir = /open generation \d+ in (\S+)/.exec(output)?.[1];
        if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
