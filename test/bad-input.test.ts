import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCacheOn } from '../src/cache.ts';
import { nodeFileSystem, type ImageFileSystem } from '../src/image/file-system.ts';
import { isDbCacheError, openDbCache, type DbCacheErrorCode } from '../src/index.ts';
import { runtimeCommand, sqlite, tempDir } from './support/fixtures.ts';

declare const Deno: unknown;

const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/** A real database of a dozen 4 KiB pages. */
function makeDatabase(file: string): Buffer {
  sqlite(file, "db.execute('CREATE TABLE t(v BLOB)'); db.executemany('INSERT INTO t VALUES (?)', [(bytes(1000),)] * 40)");
  return fs.readFileSync(file);
}

function assertFailure(code: DbCacheErrorCode, file: string, next: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(isDbCacheError(error), `expected a DbCacheError, got ${String(error)}`);
    assert.equal(error.name, 'DbCacheError');
    assert.equal(error.code, code, error.message);
    assert.equal(error.path, file);
    assert.ok(error.message.includes(file), `message names the path: ${error.message}`);
    assert.match(error.message, next);
    return true;
  };
}

const NOT_OPENED = /the cache was not opened$/;

describe('opening bad input rejects with a DbCacheError', () => {
  const cases: Array<[string, DbCacheErrorCode, (file: string, dir: string) => string]> = [
    ['a missing file', 'NOT_FOUND', (file) => file],
    ['a directory', 'NOT_A_FILE', (_file, dir) => dir],
    ['text', 'NOT_A_DATABASE', (file) => (fs.writeFileSync(file, 'id,name\n1,apple\n'.repeat(20)), file)],
    ['random bytes', 'NOT_A_DATABASE', (file) => (fs.writeFileSync(file, Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) % 251))), file)],
    ['a truncated header', 'NOT_A_DATABASE', (file) => (fs.writeFileSync(file, makeDatabase(file).subarray(0, 60)), file)],
    ['a body cut at a page boundary', 'NOT_A_DATABASE', (file) => (fs.writeFileSync(file, makeDatabase(file).subarray(0, 4096 * 3)), file)],
    ['a body cut mid-page', 'NOT_A_DATABASE', (file) => (fs.writeFileSync(file, makeDatabase(file).subarray(0, 4096 * 3 + 100)), file)],
    [
      'an invalid page size',
      'NOT_A_DATABASE',
      (file) => {
        const bytes = makeDatabase(file);
        bytes.writeUInt16BE(1000, 16);
        fs.writeFileSync(file, bytes);
        return file;
      },
    ],
    [
      'pages that are garbage behind a valid header',
      'CORRUPT',
      (file) => {
        const bytes = makeDatabase(file);
        bytes.fill(0xa5, 100);
        fs.writeFileSync(file, bytes);
        return file;
      },
    ],
  ];
  for (const [what, code, make] of cases) {
    test(what, async () => {
      const { dir, cleanup } = tempDir();
      try {
        const target = make(path.join(dir, 'app.db'), dir);
        await assert.rejects(openDbCache(target, { watch: false }), assertFailure(code, target, NOT_OPENED));
      } finally {
        cleanup();
      }
    });
  }

  test('a 0-byte file is a valid empty database', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'empty.db');
    fs.writeFileSync(file, '');
    const cache = await openDbCache(file, { watch: false });
    try {
      assert.equal(cache.generation, 1);
      assert.deepEqual(cache.all('SELECT name FROM sqlite_schema'), []);
    } finally {
      await cache.close();
      cleanup();
    }
  });

  test('no read permission, in a process that really lacks it (another user, or Deno without --allow-read)', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    makeDatabase(file);
    const script = fileURLToPath(new URL('./scripts/open-code.ts', import.meta.url));
    const repository = fileURLToPath(new URL('..', import.meta.url));
    try {
      fs.chmodSync(dir, 0o755);
      fs.chmodSync(file, 0o600);
      const isRoot = process.getuid?.() === 0;
      if (!isRoot) fs.chmodSync(file, 0o000);
      // Deno: read access to the repository only, not to the database's directory.
      const [command, args] = runtimeCommand(script, [`--allow-read=${repository}`, '--allow-env', '--allow-sys']);
      const child = spawnSync(command, [...args, file], {
        encoding: 'utf8',
        // Root reads every file: run as nobody, to whom a root-owned 0600 file is closed.
        ...(isRoot && typeof Deno === 'undefined' ? { uid: 65534, gid: 65534, env: { ...process.env, HOME: dir } } : {}),
      });
      const line = child.stdout.trim().split('\n').at(-1) ?? '';
      assert.ok(line.startsWith('{'), `no result from the child: ${child.stdout}${child.stderr}`);
      assert.deepEqual(JSON.parse(line).code, 'PERMISSION', line);
    } finally {
      cleanup();
    }
  });

  test('no read permission', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    makeDatabase(file);
    try {
      if (process.getuid?.() !== 0) {
        fs.chmodSync(file, 0o000);
        await assert.rejects(openDbCache(file, { watch: false }), assertFailure('PERMISSION', file, NOT_OPENED));
      }
      // As root the kernel ignores modes, so the same path is also driven through the file system seam.
      const denied: ImageFileSystem = {
        ...nodeFileSystem,
        open: (target) => {
          throw Object.assign(new Error(`EACCES: permission denied, open '${target}'`), { code: 'EACCES' });
        },
      };
      await assert.rejects(openDbCacheOn(denied, file, { watch: false }), assertFailure('PERMISSION', file, NOT_OPENED));
    } finally {
      cleanup();
    }
  });

  test('a hot journal that never clears gives BUSY after the retry budget', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    makeDatabase(file);
    fs.writeFileSync(`${file}-journal`, Buffer.from([...JOURNAL_MAGIC, ...new Array(504).fill(0)]));
    try {
      await assert.rejects(openDbCache(file, { watch: false, busyTimeoutMs: 30 }), assertFailure('BUSY', file, NOT_OPENED));
    } finally {
      cleanup();
    }
  });
});

describe('a live cache keeps serving when the file turns bad', () => {
  test('each kind of failure rejects reload(), emits an error event, and leaves the last good version live', async () => {
    const { dir, cleanup } = tempDir();
    const file = path.join(dir, 'app.db');
    const good = makeDatabase(file);
    let ioFails = false;
    const flaky: ImageFileSystem = {
      ...nodeFileSystem,
      read: (fd, into, offset, length, position) =>
        ioFails ? Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) : nodeFileSystem.read(fd, into, offset, length, position),
    };
    const cache = await openDbCacheOn(flaky, file, { watch: false, busyTimeoutMs: 30 });
    const errors: string[] = [];
    cache.subscribe((event) => {
      if (event.type === 'error') errors.push(event.error.code);
    });
    const still = /still serving generation 1$/;
    const breakages: Array<[DbCacheErrorCode, () => void]> = [
      ['NOT_A_DATABASE', () => fs.writeFileSync(file, 'this is not a database '.repeat(50))],
      ['NOT_A_DATABASE', () => fs.writeFileSync(file, good.subarray(0, 4096 * 2 + 7))],
      ['CORRUPT', () => fs.writeFileSync(file, Buffer.concat([good.subarray(0, 100), Buffer.alloc(good.length - 100, 0xa5)]))],
      ['NOT_FOUND', () => fs.rmSync(file)],
      ['NOT_A_FILE', () => (fs.rmSync(file), fs.mkdirSync(file))],
      [
        'BUSY',
        () => {
          fs.writeFileSync(file, good);
          fs.writeFileSync(`${file}-journal`, Buffer.from([...JOURNAL_MAGIC, 0, 0, 0, 0]));
        },
      ],
      [
        'IO',
        () => {
          fs.rmSync(`${file}-journal`);
          fs.appendFileSync(file, Buffer.alloc(0));
          fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
          ioFails = true;
        },
      ],
    ];
    try {
      for (const [code, breakIt] of breakages) {
        fs.rmSync(file, { recursive: true, force: true });
        fs.writeFileSync(file, good);
        breakIt();
        await assert.rejects(cache.reload(), assertFailure(code, file, still));
        assert.equal(cache.generation, 1);
        assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n, 40);
      }
      assert.deepEqual(errors, breakages.map(([code]) => code));
      assert.equal(cache.stats().failures, breakages.length);
      ioFails = false;
      fs.rmSync(file, { recursive: true, force: true });
      sqlite(file, "db.execute('CREATE TABLE t(v BLOB)'); db.execute('INSERT INTO t VALUES (1)')");
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.equal(cache.get<{ n: number }>('SELECT count(*) AS n FROM t')?.n, 1);
    } finally {
      await cache.close();
      cleanup();
    }
  });
});
