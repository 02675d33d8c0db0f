// A database past 4 GiB (one Buffer's limit on Node 20) opens, answers and reloads: no single
// allocation holds the database. The file is a valid SQLite database of 5 GiB whose free pages
// are holes (support/huge-db.py); reading it still walks all 5 GiB. Set DBCACHE_HUGE=1 to run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import process from 'node:process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem } from '../src/image/file-system.ts';
import { tempDir } from './support/fixtures.ts';

const HUGE_DB = fileURLToPath(new URL('./support/huge-db.py', import.meta.url));
const PAGES = 81920; // 5 GiB of 64 KiB pages
const skip = process.env.DBCACHE_HUGE === '1' ? false : 'set DBCACHE_HUGE=1 to read a 5 GiB database (sparse on disk, about 1 minute)';

test('a 5 GiB database opens, answers and reloads (incrementally too)', { skip, timeout: 900_000 }, async (t) => {
  const { dir, cleanup } = tempDir();
  const db = path.join(dir, 'huge.db');
  const child = spawn('python3', [HUGE_DB, db, String(PAGES)], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  const lines: string[] = [];
  let waiting: (() => void) | undefined;
  let pending = '';
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    lines.push(...parts);
    waiting?.();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    while (lines.length === 0) await new Promise<void>((resolve) => (waiting = resolve));
    return JSON.parse(lines.shift()!);
  };
  // Fine-grained file times here: a short racy window lets the WAL path go incremental soon.
  const fs = { ...nodeFileSystem, racyWindowNs: 10_000_000n };
  try {
    const ready = (await next())['ready'] as { pages: number; check: string };
    assert.deepEqual(ready, { pages: PAGES, check: 'ok' });
    let started = performance.now();
    const cache = await openDbCacheOn(fs, db, { watch: false });
    const openMs = performance.now() - started;
    try {
      assert.deepEqual(cache.all('SELECT k, v FROM t'), [{ k: 0, v: 'first' }]);
      for (let n = 1; n <= 3; n++) {
        child.stdin.write(`put ${n} 200000\n`);
        assert.equal((await next())['ok'], n);
        started = performance.now();
        await cache.reload();
        t.diagnostic(`reload after put ${n}: ${(performance.now() - started).toFixed(1)} ms`);
        assert.deepEqual(cache.get('SELECT length(v) AS length, hex(substr(v, 1, 2)) AS head FROM t WHERE k = ?', [n]), {
          length: 200000,
          head: (n % 256).toString(16).padStart(2, '0').repeat(2).toUpperCase(),
        });
        // Wait out the racy window once, so that the next read may apply only the new frames.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(cache.get('SELECT count(*) AS n, max(k) AS k FROM t'), { n: 4, k: 3 });
      assert.deepEqual(cache.get('PRAGMA quick_check'), { quick_check: 'ok' });
      const stats = cache.stats();
      assert.equal(stats.liveBytes, PAGES * 65536);
      assert.ok(stats.incrementalReloads >= 1, `incremental reloads: ${stats.incrementalReloads}`);
      const memory = process.memoryUsage();
      t.diagnostic(
        `open ${openMs.toFixed(0)} ms; ${stats.reloads} reloads (${stats.incrementalReloads} incremental); page memory ${(stats.pageBytes / 2 ** 20).toFixed(1)} MiB; ` +
          `rss ${(memory.rss / 2 ** 20).toFixed(0)} MiB, array buffers ${(memory.arrayBuffers / 2 ** 20).toFixed(0)} MiB; node ${process.version}`,
      );
    } finally {
      await cache.close();
    }
  } finally {
    child.stdin.end();
    await new Promise((resolve) => child.once('exit', resolve));
    cleanup();
  }
});
