// Typed ORM queries on a leased snapshot: Drizzle ORM's sql.js driver and Kysely's SQLite dialect.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq, gt } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/sql-js';
import { integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { Kysely, SqliteDialect, type Generated, type SqliteStatement } from 'kysely';
import type { Database as SqlJsDatabase } from 'sql.js';
import { openDbCache, type DbCache } from '../src/index.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

const items = sqliteTable('items', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
  price: real('price').notNull(),
});

interface Schema {
  items: { id: Generated<number>; name: string; price: number };
}

describe('ORMs on a snapshot', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;

  before(async () => {
    sqlite(
      file,
      "db.execute('CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL)'); db.executemany('INSERT INTO items(name, price) VALUES (?, ?)', [('apple', 1.5), ('pear', 2.25), ('plum', 0.75)])",
    );
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('Drizzle ORM (drizzle-orm/sql-js) runs typed queries against a leased snapshot', async () => {
    const snap = cache.snapshot();
    try {
      const orm = drizzle(snap.sqlJsDatabase() as unknown as SqlJsDatabase);
      const pricey = orm.select({ name: items.name }).from(items).where(gt(items.price, 1)).orderBy(items.id).all();
      assert.deepEqual(pricey, [{ name: 'apple' }, { name: 'pear' }]);
      const one = orm.select().from(items).where(eq(items.id, 3)).get();
      assert.deepEqual(one, { id: 3, name: 'plum', price: 0.75 });
      // The snapshot is read-only through the ORM too.
      assert.throws(() => orm.insert(items).values({ name: 'fig', price: 3 }).run(), { code: 'READ_ONLY' });
      // It keeps its version while the cache moves on.
      sqlite(file, "db.execute(\"INSERT INTO items(name, price) VALUES ('fig', 3)\")");
      await cache.reload();
      assert.equal(orm.select().from(items).all().length, 3);
      assert.equal(cache.all('SELECT * FROM items').length, 4);
    } finally {
      snap.release();
    }
    assert.throws(() => snap.sqlJsDatabase().prepare('SELECT 1'), { code: 'CLOSED' });
  });

  test('Kysely (SqliteDialect) runs typed queries against a leased snapshot', async () => {
    const snap = cache.snapshot();
    const db = new Kysely<Schema>({
      // dbcache types parameters as SQL values; Kysely's interface says `unknown[]`.
      dialect: new SqliteDialect({ database: { prepare: (sql) => snap.prepare(sql) as SqliteStatement, close: () => snap.release() } }),
    });
    try {
      const rows = await db.selectFrom('items').select(['name', 'price']).where('price', '<', 2).orderBy('id').execute();
      assert.deepEqual(rows, [{ name: 'apple', price: 1.5 }, { name: 'plum', price: 0.75 }]);
      const count = await db.selectFrom('items').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(count.n, snap.get<{ n: number }>('SELECT count(*) AS n FROM items')!.n);
      await assert.rejects(db.insertInto('items').values({ name: 'kiwi', price: 1 }).execute(), { code: 'READ_ONLY' });
    } finally {
      await db.destroy();
    }
    assert.throws(() => snap.get('SELECT 1'), { code: 'CLOSED' });
  });
});
