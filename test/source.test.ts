import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import initSqlJs from 'sql.js';
import { isDbCacheError, openDbCache, type DatabaseSource } from '../src/index.ts';
import { loadBetterSqlite3 } from './support/better-sqlite3.ts';

declare const Bun: unknown;

/** A writer connection of some SQLite binding, reduced to what the test needs. */
interface Writer {
  exec(sql: string): void;
  source: DatabaseSource;
  close(): void;
}

const writers: Array<[string, () => Promise<Writer | string>]> = [
  [
    'sql.js export()',
    async () => {
      const SQL = await initSqlJs();
      const db = new SQL.Database();
      return { exec: (sql) => db.exec(sql), source: () => db.export(), close: () => db.close() };
    },
  ],
  [
    'better-sqlite3 serialize()',
    async () => {
      if (typeof Bun !== 'undefined') return 'better-sqlite3 is a Node addon';
      const Database = loadBetterSqlite3();
      if (typeof Database === 'string') return Database;
      const db = new Database(':memory:');
      return { exec: (sql) => void db.exec(sql), source: () => db.serialize(), close: () => db.close() };
    },
  ],
  [
    'bun:sqlite serialize()',
    async () => {
      if (typeof Bun === 'undefined') return 'bun:sqlite exists only in Bun';
      const { Database } = (await import('bun:sqlite' as string)) as {
        Database: new (path: string) => { exec(sql: string): void; serialize(): Uint8Array; close(): void };
      };
      const db = new Database(':memory:');
      return { exec: (sql) => db.exec(sql), source: () => db.serialize(), close: () => db.close() };
    },
  ],
];

// Made before the tests are declared, so a writer this runtime lacks is a skip that every runtime
// reports by name (Deno reports a skip made inside a running test as a pass).
const made = await Promise.all(writers.map(async ([name, make]) => [name, await make()] as const));

describe('a source function instead of a path', () => {
  for (const [name, writer] of made) {
    test(name, { skip: typeof writer === 'string' ? writer : false }, async () => {
      if (typeof writer === 'string') return;
      writer.exec('CREATE TABLE t(v INTEGER); INSERT INTO t VALUES (1)');
      let overlays = 0;
      const cache = await openDbCache(writer.source, {
        onReload: (db) => {
          overlays++;
          db.exec('CREATE TABLE derived AS SELECT count(*) AS n FROM t');
        },
      });
      try {
        assert.equal(cache.path, 'source');
        assert.deepEqual(cache.all('SELECT v FROM t'), [{ v: 1 }]);
        assert.deepEqual(cache.all('SELECT n FROM derived'), [{ n: 1 }]);
        // An unchanged image is a no-op, even with an overlay that wrote into the last one.
        await cache.reload();
        assert.equal(cache.generation, 1);
        assert.equal(overlays, 1);
        assert.equal(cache.stats().noopReloads, 1);
        writer.exec('INSERT INTO t VALUES (2)');
        await cache.reload();
        assert.equal(cache.generation, 2);
        assert.deepEqual(cache.all('SELECT n FROM derived'), [{ n: 2 }]);
        assert.throws(() => cache.prepare('INSERT INTO t VALUES (3)').run(), { code: 'READ_ONLY' });
      } finally {
        await cache.close();
        writer.close();
      }
    });
  }

  test('a source that throws or returns something else fails with SOURCE_FAILED', async () => {
    let mode: 'ok' | 'throw' | 'string' | 'garbage' = 'ok';
    const SQL = await initSqlJs();
    const db = new SQL.Database();
    db.exec('CREATE TABLE t(v)');
    const cache = await openDbCache(() => {
      if (mode === 'throw') throw new Error('writer gone');
      if (mode === 'string') return 'not bytes' as never;
      if (mode === 'garbage') return new TextEncoder().encode('x'.repeat(4096));
      return db.export();
    });
    try {
      for (const [next, code] of [['throw', 'SOURCE_FAILED'], ['string', 'SOURCE_FAILED'], ['garbage', 'NOT_A_DATABASE']] as const) {
        mode = next;
        await assert.rejects(cache.reload(), (error: unknown) => {
          assert.ok(isDbCacheError(error, code), String(error));
          assert.match(error.message, /^Reloading source failed: .*; still serving generation 1$/);
          return true;
        });
      }
      assert.deepEqual(cache.all('SELECT * FROM t'), []);
    } finally {
      await cache.close();
      db.close();
    }
  });
});

describe('sql.js builds', () => {
  test("sqlJs: 'inline' and an injected module work like the default", async () => {
    const SQL = await initSqlJs();
    const db = new SQL.Database();
    db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (42)');
    for (const sqlJs of ['inline', SQL, initSqlJs()] as const) {
      const cache = await openDbCache(() => db.export(), { sqlJs });
      try {
        assert.deepEqual(cache.get('SELECT v FROM t'), { v: 42 });
      } finally {
        await cache.close();
      }
    }
    db.close();
    await assert.rejects(openDbCache(() => new Uint8Array(), { sqlJs: 'asm' as never }), { name: 'TypeError', message: /options\.sqlJs/ });
    await assert.rejects(openDbCache(() => new Uint8Array(), { sqlJs: {} as never }), { name: 'TypeError', message: /options\.sqlJs/ });
    await assert.rejects(openDbCache(() => new Uint8Array(), { sqlJs: Promise.resolve({}) as never }), { name: 'TypeError', message: /options\.sqlJs/ });
  });
});
