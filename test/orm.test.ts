// Typed ORM queries through `sqlJsDatabase()`: Drizzle ORM's sql.js driver and Kysely's SQLite
// dialect, live on the cache or pinned to a snapshot; and what a hostile caller can reach through it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eq, gt, relations, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/sql-js';
import { integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { Kysely, SqliteDialect, type Generated } from 'kysely';
import { isDbCacheError, openDbCache, type DbCache, type Snapshot, type SqlJsCompatible } from '../src/index.ts';
import { loadSqlJs } from '../src/sqljs.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';
import { sqlite, tempDir } from './support/fixtures.ts';

const categories = sqliteTable('categories', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
});

const items = sqliteTable('items', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
  price: real('price').notNull(),
  categoryId: integer('category_id').references(() => categories.id),
});

const itemsRelations = relations(items, ({ one }) => ({ category: one(categories, { fields: [items.categoryId], references: [categories.id] }) }));
const categoriesRelations = relations(categories, ({ many }) => ({ items: many(items) }));
const schema = { items, categories, itemsRelations, categoriesRelations };

interface Schema {
  categories: { id: Generated<number>; name: string };
  items: { id: Generated<number>; name: string; price: number; category_id: number | null };
}

const SETUP = `
db.executescript('''
  CREATE TABLE categories(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
  CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, category_id INTEGER REFERENCES categories(id));
  INSERT INTO categories VALUES (1, 'fruit'), (2, 'nut');
  INSERT INTO items VALUES (1, 'apple', 1.5, 1), (2, 'pear', 2.25, 1), (3, 'plum', 0.75, 1), (4, 'pecan', 4.0, 2), (5, 'mystery', 9.0, NULL);
''')`;

const ITEM_COUNT = 5;

/** What a version shows: every table's rows, the schema, the TEMP schema, LIKE's behaviour, settings, a built-in function. */
function fingerprint(q: Pick<Snapshot, 'values'>): string {
  const tables = q.values("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").map(([name]) => String(name));
  return JSON.stringify([
    tables.map((name) => q.values(`SELECT * FROM "${name}"`)),
    q.values('SELECT type, name, sql FROM sqlite_schema ORDER BY name'),
    q.values('SELECT type, name FROM sqlite_temp_schema ORDER BY name'),
    q.values("SELECT 'a' LIKE 'A', upper('x')"),
    q.values('PRAGMA query_only'),
    q.values('PRAGMA foreign_keys'),
    q.values('PRAGMA database_list'),
  ]);
}

/** Runs `fn` and returns what it threw (or `undefined`). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('ORMs through sqlJsDatabase()', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;

  before(async () => {
    sqlite(file, SETUP);
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('Drizzle: selects, joins, .all/.get/.values, placeholders, raw SQL and relational queries', () => {
    const orm = drizzle(cache.sqlJsDatabase(), { schema });
    const pricey = orm.select({ name: items.name }).from(items).where(gt(items.price, 2)).orderBy(items.id).all();
    assert.deepEqual(pricey, [{ name: 'pear' }, { name: 'pecan' }, { name: 'mystery' }]);
    assert.deepEqual(orm.select().from(items).where(eq(items.id, 3)).get(), { id: 3, name: 'plum', price: 0.75, categoryId: 1 });
    assert.equal(orm.select().from(items).where(eq(items.id, 99)).get(), undefined);
    assert.deepEqual(orm.select({ name: items.name, price: items.price }).from(items).where(eq(items.categoryId, 2)).values(), [['pecan', 4]]);
    const joined = orm
      .select({ item: items.name, category: categories.name })
      .from(items)
      .innerJoin(categories, eq(items.categoryId, categories.id))
      .where(gt(items.price, 1))
      .orderBy(items.id)
      .all();
    assert.deepEqual(joined, [
      { item: 'apple', category: 'fruit' },
      { item: 'pear', category: 'fruit' },
      { item: 'pecan', category: 'nut' },
    ]);
    const left = orm.select().from(items).leftJoin(categories, eq(items.categoryId, categories.id)).where(eq(items.id, 5)).get();
    assert.deepEqual(left, { items: { id: 5, name: 'mystery', price: 9, categoryId: null }, categories: null });
    const byId = orm.select({ name: items.name }).from(items).where(eq(items.id, sql.placeholder('id'))).prepare();
    assert.deepEqual(byId.get({ id: 2 }), { name: 'pear' });
    assert.deepEqual(byId.all({ id: 4 }), [{ name: 'pecan' }]);
    assert.deepEqual(orm.all(sql`SELECT name FROM items WHERE id <= ${2} ORDER BY id`), [{ name: 'apple' }, { name: 'pear' }]);
    assert.deepEqual(orm.get(sql`SELECT count(*) AS n FROM items`), { n: ITEM_COUNT });
    assert.deepEqual(orm.values(sql`SELECT id FROM items WHERE price < ${1}`), [[3]]);
  });

  test('Drizzle gets what it gets from sql.js itself, query by query', async () => {
    // The same queries on a sql.js Database opened from the same file.
    const sqlJs = await loadSqlJs();
    const reference = new sqlJs.Database(fs.readFileSync(file));
    try {
      const ours = drizzle(cache.sqlJsDatabase(), { schema });
      const theirs = drizzle(reference as never, { schema });
      const queries: Record<string, (orm: typeof ours) => unknown> = {
        join: (orm) => orm.select().from(items).innerJoin(categories, eq(items.categoryId, categories.id)).orderBy(items.id).all(),
        leftJoin: (orm) => orm.select().from(items).leftJoin(categories, eq(items.categoryId, categories.id)).orderBy(items.id).all(),
        get: (orm) => orm.select().from(items).where(gt(items.price, 2)).get(),
        getNone: (orm) => orm.select().from(items).where(gt(items.price, 100)).get(),
        values: (orm) => orm.select().from(items).values(),
        rawAll: (orm) => orm.all(sql`SELECT * FROM items, categories`),
        rawGet: (orm) => orm.get(sql`SELECT *, ${'x'} AS bound FROM items`),
        rawGetNone: (orm) => orm.get(sql`SELECT * FROM items WHERE 0`),
        rawValues: (orm) => orm.values(sql`SELECT x'00ff', 1.5, NULL, 'é'`),
        findMany: (orm) => orm.query.categories.findMany({ with: { items: true } }).sync(),
        findFirst: (orm) => orm.query.items.findFirst({ where: eq(items.id, 4), with: { category: true } }).sync(),
        count: (orm) => orm.$count(items),
      };
      for (const [name, query] of Object.entries(queries)) {
        let expected = await query(theirs);
        // The one difference: with no row, sql.js's getAsObject() gives every column `undefined`, ours `{}`.
        if (name === 'rawGetNone') expected = Object.fromEntries(Object.entries(expected as object).filter(([, value]) => value !== undefined));
        assert.deepEqual(await query(ours), expected, name);
      }
      // sql.js's run() says `true`; ours reports the counts, which Kysely reads.
      assert.equal(theirs.run(sql`SELECT 1`), true);
      assert.deepEqual(ours.run(sql`SELECT 1`), { changes: 0, lastInsertRowid: 0 });
    } finally {
      reference.close();
    }
  });

  test('Drizzle: writes, RETURNING, settings and transactions are refused with READ_ONLY, and nothing changes', () => {
    const orm = drizzle(cache.sqlJsDatabase(), { schema });
    const before = fingerprint(cache);
    // Drizzle wraps what `orm.run()` and transactions throw in a DrizzleError whose `cause` is ours.
    const refused = (fn: () => unknown) => assert.throws(fn, (error) => isDbCacheError(error, 'READ_ONLY') || isDbCacheError((error as Error).cause, 'READ_ONLY'));
    refused(() => orm.insert(items).values({ name: 'fig', price: 3 }).run());
    refused(() => orm.insert(items).values({ name: 'fig', price: 3 }).returning().get());
    refused(() => orm.insert(items).values({ name: 'fig', price: 3 }).returning({ id: items.id }).all());
    refused(() => orm.update(items).set({ price: 0 }).where(eq(items.id, 1)).run());
    refused(() => orm.update(items).set({ price: 0 }).returning().all());
    refused(() => orm.delete(items).where(eq(items.id, 1)).run());
    refused(() => orm.run(sql`PRAGMA foreign_keys = 1`));
    refused(() => orm.run(sql`CREATE TEMP TABLE x(y)`));
    let ran = false;
    refused(() =>
      orm.transaction((tx) => {
        ran = true;
        tx.insert(items).values({ name: 'fig', price: 3 }).run();
      }),
    );
    assert.equal(ran, false, 'the transaction callback ran although BEGIN was refused');
    assert.equal(fingerprint(cache), before);
    assert.equal(orm.select().from(items).all().length, ITEM_COUNT);
  });

  test('Kysely: selects, joins, executeTakeFirst, streams', async () => {
    const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cache.sqlJsDatabase() }) });
    try {
      const rows = await db.selectFrom('items').select(['name', 'price']).where('price', '<', 2).orderBy('id').execute();
      assert.deepEqual(rows, [
        { name: 'apple', price: 1.5 },
        { name: 'plum', price: 0.75 },
      ]);
      const joined = await db
        .selectFrom('items')
        .innerJoin('categories', 'categories.id', 'items.category_id')
        .select(['items.name as item', 'categories.name as category'])
        .where('categories.name', '=', 'nut')
        .execute();
      assert.deepEqual(joined, [{ item: 'pecan', category: 'nut' }]);
      const first = await db.selectFrom('items').selectAll().where('id', '=', 2).executeTakeFirst();
      assert.deepEqual(first, { id: 2, name: 'pear', price: 2.25, category_id: 1 });
      assert.equal(await db.selectFrom('items').selectAll().where('id', '=', 99).executeTakeFirst(), undefined);
      const count = await db.selectFrom('items').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(count.n, ITEM_COUNT);
      const streamed: string[] = [];
      for await (const row of db.selectFrom('items').select('name').orderBy('id').stream()) streamed.push(row.name);
      assert.deepEqual(streamed, ['apple', 'pear', 'plum', 'pecan', 'mystery']);
    } finally {
      await db.destroy();
    }
    // destroy() closed Kysely's handle only.
    assert.equal(cache.all('SELECT * FROM items').length, ITEM_COUNT);
  });

  test('Kysely: inserts, RETURNING and transactions are refused with READ_ONLY, and nothing changes', async () => {
    const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cache.sqlJsDatabase() }) });
    const before = fingerprint(cache);
    const refused = (error: unknown) => isDbCacheError(error, 'READ_ONLY');
    try {
      await assert.rejects(db.insertInto('items').values({ name: 'kiwi', price: 1, category_id: 1 }).execute(), refused);
      await assert.rejects(db.insertInto('items').values({ name: 'kiwi', price: 1, category_id: 1 }).returning('id').executeTakeFirst(), refused);
      await assert.rejects(db.updateTable('items').set({ price: 0 }).where('id', '=', 1).execute(), refused);
      await assert.rejects(db.deleteFrom('items').returningAll().execute(), refused);
      let ran = false;
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          ran = true;
          await trx.insertInto('items').values({ name: 'kiwi', price: 1, category_id: 1 }).execute();
        }),
        refused,
      );
      assert.equal(ran, false, 'the transaction callback ran although BEGIN was refused');
      assert.equal((await db.selectFrom('items').selectAll().execute()).length, ITEM_COUNT);
    } finally {
      await db.destroy();
    }
    assert.equal(fingerprint(cache), before);
  });

  test('the sql.js cursor and better-sqlite3 methods of a statement', () => {
    const handle = cache.sqlJsDatabase();
    const statement = handle.prepare('SELECT id, name FROM items WHERE id <= ? ORDER BY id');
    assert.equal(statement.reader, true);
    assert.deepEqual(statement.getColumnNames(), ['id', 'name']);
    assert.equal(statement.getSQL(), 'SELECT id, name FROM items WHERE id <= ? ORDER BY id');
    assert.equal(statement.bind([2]), true);
    assert.deepEqual(statement.get(), []);
    assert.equal(statement.step(), true);
    assert.deepEqual(statement.get(), [1, 'apple']);
    assert.deepEqual(statement.getAsObject(), { id: 1, name: 'apple' });
    assert.equal(statement.step(), true);
    assert.equal(statement.step(), false);
    assert.deepEqual(statement.getAsObject(), {});
    // After the end, step() runs the statement again with the same parameters (as SQLite does).
    assert.equal(statement.step(), true);
    assert.deepEqual(statement.get(), [1, 'apple']);
    // get(params) binds and steps.
    assert.deepEqual(statement.get([1]), [1, 'apple']);
    assert.equal(statement.step(), false);
    assert.deepEqual(statement.all([3]).map((row) => row.name), ['apple', 'pear', 'plum']);
    assert.deepEqual([...statement.iterate([1])], [{ id: 1, name: 'apple' }]);
    assert.deepEqual(statement.run([1]), { changes: 0, lastInsertRowid: 0 });
    assert.equal(statement.reset(), true);
    assert.throws(() => statement.step(), RangeError, 'parameters were forgotten by reset()');
    // Parameters are copied when bound, and named ones take better-sqlite3's keys.
    const params = [2];
    statement.bind(params);
    params[0] = 5;
    assert.ok(statement.step() && statement.step() && !statement.step());
    const named = handle.prepare('SELECT :a + $b AS s', { a: 1, b: 2 });
    assert.ok(named.step());
    assert.deepEqual(named.getAsObject(), { s: 3 });
    assert.throws(() => named.bind({ a: 1 }), RangeError);
    assert.throws(() => named.bind([{}] as never), TypeError);
    assert.throws(() => statement.bind(7 as never), TypeError);
    assert.equal(statement.free(), true);
    assert.throws(() => statement.step(), (error) => isDbCacheError(error, 'CLOSED'));
    // SQL errors are reported when prepared.
    assert.throws(() => handle.prepare('SELECT * FROM nowhere'), (error) => isDbCacheError(error, 'QUERY'));
    assert.throws(() => handle.prepare('SELECT 1; SELECT 2'), RangeError);
    assert.throws(() => handle.prepare(1 as never), TypeError);
  });

  test('the cursor returns numbers as sql.js does; all() and iterate() follow the bigint option', async () => {
    const wide = await openDbCache(file, { watch: false, bigint: true });
    try {
      const statement = wide.sqlJsDatabase().prepare('SELECT id FROM items WHERE id = 2');
      assert.deepEqual(statement.get([]), [2]);
      assert.deepEqual(statement.all([]), [{ id: 2n }]);
      assert.deepEqual([...statement.iterate([])], [{ id: 2n }]);
      statement.free();
    } finally {
      await wide.close();
    }
  });

  test('the rest of sql.js’s Database is not offered (TypeError)', () => {
    const handle = cache.sqlJsDatabase() as SqlJsCompatible & Record<string, (...args: unknown[]) => unknown>;
    for (const method of ['exec', 'run', 'each', 'iterateStatements', 'create_function', 'create_aggregate', 'updateHook', 'export', 'getRowsModified', 'handleError']) {
      assert.throws(() => handle[method]!('SELECT 1'), TypeError, method);
    }
    assert.throws(() => handle.prepare('SELECT 1').getNormalizedSQL(), TypeError);
  });

  test('a parameter is read once, and a blob is sized by its own bytes', () => {
    const statement = cache.sqlJsDatabase().prepare('SELECT ? AS a, length(?) AS n');
    let reads = 0;
    const values = [0, new Uint8Array([7])];
    Object.defineProperty(values, 0, {
      get: () => {
        reads++;
        return reads === 1 ? 'first' : 'later';
      },
    });
    Object.defineProperty(values[1], 'length', { value: 200_000 });
    assert.deepEqual(statement.getAsObject(values), { a: 'first', n: 1 });
    assert.equal(reads, 1);
    statement.free();
  });

  test('an array claiming more values than any statement takes is a RangeError, read no further than that', () => {
    const statement = cache.sqlJsDatabase().prepare('SELECT ? AS a');
    let reads = 0;
    const claiming = new Proxy([1], {
      get(target, key, receiver) {
        if (key === 'length') return 2 ** 32 - 1;
        // Reading on would take minutes (and the memory for 2^32 slots): fail the test instead.
        if (typeof key === 'string' && /^\d+$/.test(key) && ++reads > 100_000) throw new Error(`read ${reads} values of one parameter array`);
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const sparse: unknown[] = [1];
    sparse.length = 2 ** 32 - 1;
    for (const params of [claiming, sparse]) {
      for (const use of [() => statement.bind(params), () => statement.get(params), () => statement.all(params), () => statement.run(params)]) {
        assert.throws(use, { name: 'RangeError' });
      }
    }
    assert.equal(reads, 0);
    assert.deepEqual(statement.getAsObject([5]), { a: 5 });
    statement.free();
  });
});

describe('the live pattern: ORMs built once follow commits', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;

  before(async () => {
    sqlite(file, `db.execute('PRAGMA journal_mode=WAL')\n${SETUP}`);
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('Drizzle and Kysely on cache.sqlJsDatabase() see a real writer’s commit after reload(); a snapshot’s stay pinned', async () => {
    const orm = drizzle(cache.sqlJsDatabase(), { schema });
    const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cache.sqlJsDatabase() }) });
    const snap = cache.snapshot();
    const pinned = drizzle(snap.sqlJsDatabase(), { schema });
    const pinnedKysely = new Kysely<Schema>({ dialect: new SqliteDialect({ database: snap.sqlJsDatabase() }) });
    // A statement prepared before the commit runs on the version live when it runs.
    const prepared = orm.select({ name: items.name }).from(items).where(eq(items.id, sql.placeholder('id'))).prepare();
    try {
      const generation = cache.generation;
      assert.equal(orm.select().from(items).all().length, ITEM_COUNT);
      assert.equal((await db.selectFrom('items').selectAll().execute()).length, ITEM_COUNT);
      assert.equal(prepared.get({ id: 6 }), undefined);
      for (let commit = 1; commit <= 3; commit++) {
        sqlite(file, `db.execute("INSERT INTO items(name, price, category_id) VALUES ('new${commit}', ${commit}, 2)")`);
        await cache.reload();
        assert.equal(cache.generation, generation + commit);
        assert.equal(orm.select().from(items).all().length, ITEM_COUNT + commit);
        assert.equal((await db.selectFrom('items').selectAll().execute()).length, ITEM_COUNT + commit);
        const newest = await db.selectFrom('items').select('name').orderBy('id', 'desc').executeTakeFirstOrThrow();
        assert.equal(newest.name, `new${commit}`);
        const nuts = orm.select({ n: items.name }).from(items).innerJoin(categories, eq(items.categoryId, categories.id)).where(eq(categories.name, 'nut')).all();
        assert.equal(nuts.length, 1 + commit);
        assert.deepEqual(prepared.get({ id: 6 }), { name: 'new1' });
        // The snapshot's ORMs keep their version.
        assert.equal(pinned.select().from(items).all().length, ITEM_COUNT);
        assert.equal((await pinnedKysely.selectFrom('items').selectAll().execute()).length, ITEM_COUNT);
      }
    } finally {
      await db.destroy();
      await pinnedKysely.destroy();
      snap.release();
    }
    assert.equal(cache.stats().liveSnapshots, 1);
  });

  test('a run holds its version until it ends; statements hold nothing between runs', async () => {
    const statement = cache.sqlJsDatabase().prepare('SELECT name FROM items ORDER BY id');
    assert.ok(statement.step());
    const first = statement.get()[0];
    sqlite(file, `db.execute("INSERT INTO items(name, price) VALUES ('during', 1)")`);
    await cache.reload();
    // The open run reads the version it started on, which stays open until the run ends.
    assert.equal(cache.stats().liveSnapshots, 2);
    let seen = 1;
    while (statement.step()) seen++;
    assert.equal(first, 'apple');
    assert.equal(seen, cache.get<{ n: number }>('SELECT count(*) AS n FROM items')!.n - 1);
    assert.equal(cache.stats().liveSnapshots, 1);
    // The next run reads the live version.
    let now = 0;
    while (statement.step()) now++;
    assert.equal(now, seen + 1);
    // Ended by free() too.
    assert.ok(statement.step());
    sqlite(file, `db.execute("INSERT INTO items(name, price) VALUES ('during2', 1)")`);
    await cache.reload();
    assert.equal(cache.stats().liveSnapshots, 2);
    statement.free();
    assert.equal(cache.stats().liveSnapshots, 1);
  });
});

describe('CLOSED after release, close() and cache.close()', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');

  before(() => {
    sqlite(file, SETUP);
  });
  after(() => {
    cleanup();
  });

  const closed = (error: unknown) => isDbCacheError(error, 'CLOSED');

  test('a snapshot’s handle and every statement prepared before release throw CLOSED; an open run gives its lease back', async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      const snap = cache.snapshot();
      const handle = snap.sqlJsDatabase();
      const orm = drizzle(handle, { schema });
      const idle = handle.prepare('SELECT name FROM items WHERE id = ?');
      const running = handle.prepare('SELECT name FROM items');
      assert.ok(running.step());
      const iterator = handle.prepare('SELECT id FROM items').iterate([]);
      assert.equal(iterator.next().done, false);
      sqlite(file, `db.execute("INSERT INTO items(name, price) VALUES ('x', 1)")`);
      await cache.reload();
      assert.equal(cache.stats().liveSnapshots, 2, 'the lease, the open run and the iterator hold the old version');
      snap.release();
      assert.equal(cache.stats().liveSnapshots, 1, 'releasing the lease ended the open run and the iterator: the old version was freed');
      assert.throws(() => running.step(), closed);
      assert.throws(() => iterator.next(), closed);
      for (const call of [
        () => idle.bind([1]),
        () => idle.step(),
        () => idle.get([1]),
        () => idle.getAsObject([1]),
        () => idle.all([1]),
        () => idle.iterate([1]),
        () => idle.run([1]),
        () => idle.reader,
        () => idle.getColumnNames(),
        () => idle.reset(),
        () => handle.prepare('SELECT 1'),
        () => orm.select().from(items).all(),
        () => snap.sqlJsDatabase(),
      ]) {
        assert.throws(call, closed);
      }
      assert.equal(idle.free(), true);
    } finally {
      await cache.close();
    }
  });

  test('close() ends the handle and its statements, not the cache or the lease; cache.close() ends the cache’s handles', async () => {
    const cache = await openDbCache(file, { watch: false });
    const snap = cache.snapshot();
    const handle = snap.sqlJsDatabase();
    const statement = handle.prepare('SELECT 1 AS one');
    handle.close();
    assert.throws(() => handle.prepare('SELECT 1'), closed);
    assert.throws(() => statement.get([]), closed);
    assert.deepEqual(snap.sqlJsDatabase().prepare('SELECT 1 AS one').getAsObject([]), { one: 1 });
    snap.release();
    const live = cache.sqlJsDatabase();
    const before = live.prepare('SELECT 1 AS one');
    // A run left open on the cache's handle holds its version until the handle is closed.
    const open = live.prepare('SELECT 1 AS one');
    assert.ok(open.step());
    const rows = live.prepare('SELECT 2 AS two').iterate([]);
    assert.equal(rows.next().done, false);
    sqlite(file, `db.execute("INSERT INTO items(name, price) VALUES ('y', 1)")`);
    await cache.reload();
    assert.equal(cache.stats().liveSnapshots, 2);
    live.close();
    assert.equal(cache.stats().liveSnapshots, 1, 'close() ended the open run and the iterator');
    assert.throws(() => live.prepare('SELECT 1'), closed);
    const again = cache.sqlJsDatabase();
    await cache.close();
    assert.throws(() => again.prepare('SELECT 1'), closed);
    assert.throws(() => before.step(), closed);
    assert.throws(() => cache.sqlJsDatabase(), closed);
  });
});

describe('hostile callers cannot reach or change the engine through sqlJsDatabase()', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  const empty = path.join(dir, 'empty.db');
  const other = path.join(dir, 'other.db');
  let engine: Awaited<ReturnType<typeof freshSqlJs>>;
  let rawStatementPrototype: object;

  before(() => {
    sqlite(file, SETUP);
    sqlite(other, "db.execute('CREATE TABLE o(v)'); db.execute(\"INSERT INTO o VALUES ('other')\")");
    fs.writeFileSync(empty, new Uint8Array(0));
  });
  after(() => {
    cleanup();
  });

  /** Every object reachable from `roots` through properties, getters and prototypes (not the built-in prototypes). */
  function reachable(roots: readonly object[]): object[] {
    const seen = new Set<object>();
    const queue = [...roots];
    const builtIn = new Set<unknown>([Object.prototype, Function.prototype, Array.prototype, Uint8Array.prototype, Object.getPrototypeOf(Uint8Array.prototype)]);
    while (queue.length > 0 && seen.size < 10_000) {
      const value = queue.shift()!;
      if (seen.has(value) || builtIn.has(value)) continue;
      seen.add(value);
      const push = (found: unknown) => {
        if ((typeof found === 'object' && found !== null) || typeof found === 'function') queue.push(found as object);
      };
      push(Object.getPrototypeOf(value));
      for (let holder: object | null = value; holder !== null && !builtIn.has(holder); holder = Object.getPrototypeOf(holder) as object | null) {
        for (const key of Reflect.ownKeys(holder)) {
          const descriptor = Object.getOwnPropertyDescriptor(holder, key)!;
          push(descriptor.value);
          push(descriptor.get);
          const from = holder;
          if (descriptor.get !== undefined) thrown(() => push(Reflect.get(from, key, value)));
        }
      }
    }
    return [...seen];
  }

  /** Everything an attacker holding a handle can reach: the handle, statements (idle, mid-run, freed), iterators and rows. */
  function surface(handle: SqlJsCompatible): object[] {
    const statement = handle.prepare('SELECT * FROM sqlite_schema');
    const stepped = handle.prepare('SELECT 1 AS one');
    stepped.step();
    const iterator = handle.prepare('SELECT 1 AS one').iterate([]);
    iterator.next();
    const freed = handle.prepare('SELECT 1 AS one');
    freed.free();
    const objects = reachable([handle, statement, stepped, iterator, freed, stepped.getAsObject(), stepped.get(), statement.all([])]);
    stepped.free();
    iterator.return?.();
    return objects;
  }

  /** Calls every `name` function reachable with `args`; returns how many did not throw. */
  function callAll(objects: readonly object[], name: string, ...args: unknown[]): number {
    let accepted = 0;
    for (const object of objects) {
      const fn = (object as Record<string, unknown>)[name];
      if (typeof fn !== 'function') continue;
      if (thrown(() => (fn as (...a: unknown[]) => unknown).apply(object, args)) === undefined) accepted++;
    }
    return accepted;
  }

  async function withCaches(db: string, attack: (handles: SqlJsCompatible[], cache: DbCache) => void): Promise<void> {
    // A module of its own for each attack: one that got through could not damage the engine of other tests.
    engine = await freshSqlJs();
    const scratch = new engine.Database();
    rawStatementPrototype = Object.getPrototypeOf(scratch.prepare('SELECT 1')) as object;
    scratch.close();
    const bystander = await openDbCache(other, { watch: false, sqlJs: engine });
    const cache = await openDbCache(db, { watch: false, sqlJs: engine });
    const older = cache.snapshot();
    try {
      if (db === file) {
        // The older lease holds a retired version.
        sqlite(file, "db.execute(\"INSERT INTO items(name, price) VALUES ('later', 1)\")");
        await cache.reload();
        assert.equal(cache.generation, older.generation + 1);
      }
      const baseline = { live: fingerprint(cache), older: fingerprint(older) };
      const handles = [cache.sqlJsDatabase(), older.sqlJsDatabase()];
      for (const handle of handles) {
        const objects = surface(handle);
        assert.equal(objects.filter((o) => o instanceof engine.Database).length, 0, 'a sql.js Database is reachable');
        assert.equal(objects.filter((o) => Object.getPrototypeOf(o) === rawStatementPrototype).length, 0, 'a sql.js statement is reachable');
        assert.deepEqual(Object.getOwnPropertyNames(handle), []);
        assert.deepEqual(Object.getOwnPropertyNames(handle.prepare('SELECT 1')), []);
        assert.equal('db' in handle.prepare('SELECT 1'), false);
      }
      attack(handles, cache);
      assert.equal(fingerprint(cache), baseline.live, 'the live version changed');
      assert.equal(fingerprint(older), baseline.older, 'the older lease changed');
      assert.deepEqual(cache.get("SELECT 'a' LIKE 'A' AS l, upper('x') AS u"), { l: 1, u: 'X' });
      assert.deepEqual(cache.values('PRAGMA query_only'), [[1]]);
      assert.deepEqual(cache.values('PRAGMA foreign_keys'), [[0]]);
      assert.deepEqual(bystander.all('SELECT v, upper(v) AS u FROM o'), [{ v: 'other', u: 'OTHER' }]);
      const fresh = await openDbCache(other, { watch: false, sqlJs: engine });
      try {
        assert.deepEqual(fresh.get("SELECT v, zeroblob(1000000) IS NOT NULL AS big FROM o"), { v: 'other', big: 1 });
      } finally {
        await fresh.close();
      }
    } finally {
      older.release();
      await cache.close();
      await bystander.close();
    }
  }

  const SETTINGS = 'PRAGMA query_only=0; PRAGMA case_sensitive_like=1; PRAGMA foreign_keys=1; CREATE TEMP TABLE x(y)';

  test('settings and TEMP schema: exec and prepare of each setter', async () => {
    await withCaches(file, (handles) => {
      for (const handle of handles) {
        const objects = surface(handle);
        assert.equal(callAll(objects, 'exec', SETTINGS), 0, 'exec ran');
        assert.equal(callAll(objects, 'run', SETTINGS), 0, 'run ran');
        for (const setter of SETTINGS.split('; ')) {
          assert.throws(() => handle.prepare(setter), (error) => isDbCacheError(error, 'READ_ONLY'), setter);
        }
      }
    });
  });

  test('a user function replacing a built-in one', async () => {
    await withCaches(file, (handles) => {
      for (const handle of handles) {
        const objects = surface(handle);
        assert.equal(callAll(objects, 'create_function', 'upper', (_text: unknown) => 'EVIL'), 0, 'create_function ran');
        assert.equal(callAll(objects, 'create_aggregate', 'count', { step: (_state: unknown, _value: unknown) => {}, finalize: () => 42 }), 0, 'create_aggregate ran');
      }
    });
  });

  test('a process-wide heap limit', async () => {
    await withCaches(file, (handles) => {
      for (const handle of handles) {
        const objects = surface(handle);
        assert.equal(callAll(objects, 'exec', 'PRAGMA hard_heap_limit = 100000; PRAGMA soft_heap_limit = 100000'), 0, 'exec ran');
        assert.throws(() => handle.prepare('PRAGMA hard_heap_limit = 100000'), (error) => isDbCacheError(error, 'READ_ONLY'));
      }
    });
  });

  test('closing the database behind the handle', async () => {
    await withCaches(file, (handles) => {
      for (const handle of handles) callAll(surface(handle), 'close');
    });
  });

  test('a version built from an empty (0-byte) file: no table or row lands in it', async () => {
    await withCaches(empty, (handles) => {
      for (const handle of handles) {
        const objects = surface(handle);
        assert.equal(callAll(objects, 'exec', 'PRAGMA query_only=0; CREATE TABLE items(id, name, price, category_id); INSERT INTO items VALUES (1, 2, 3, 4)'), 0);
        assert.equal(callAll(objects, 'run', 'CREATE TABLE t(x)'), 0);
        assert.throws(() => handle.prepare('CREATE TABLE t(x)'), (error) => isDbCacheError(error, 'READ_ONLY'));
        // SQLite's own error comes first (better-sqlite3's order): QUERY, or READ_ONLY where SQLite compiles it.
        assert.throws(
          () => handle.prepare("INSERT INTO sqlite_schema VALUES ('table', 't', 't', 2, 'CREATE TABLE t(x)')"),
          (error) => isDbCacheError(error, 'READ_ONLY') || isDbCacheError(error, 'QUERY'),
        );
      }
    });
  });
});

describe('the README’s ORM snippets type-check with and without @types/sql.js', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

  /** The TypeScript blocks of the README's "ORMs" section. */
  function readmeSnippets(): string[] {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('\n### ORMs\n');
    assert.ok(start >= 0, 'README has an ORMs section');
    const end = readme.indexOf('\n#', start + 10);
    const section = readme.slice(start, end);
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
    assert.ok(blocks.length > 0, 'the ORMs section has TypeScript examples');
    return blocks;
  }

  test('every ORM snippet compiles where @types/sql.js is visible and where it is not', async () => {
    const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
    const { dir, cleanup } = tempDir();
    try {
      // The project resolves packages from the repository's node_modules, and `dbcache` to its source.
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
      fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
      const snippets = readmeSnippets().map((code, i) => {
        const name = path.join(dir, `snippet${i}.ts`);
        fs.writeFileSync(name, code);
        return name;
      });
      // A probe that tells the two setups apart: drizzle() takes anything only when sql.js is untyped.
      const probe = path.join(dir, 'probe.ts');
      fs.writeFileSync(probe, "import { drizzle } from 'drizzle-orm/sql-js';\nexport const orm = drizzle({});\n");
      const sqlJsMain = createRequire(path.join(root, 'package.json')).resolve('sql.js');
      const parsed = new Map<string, import('typescript').SourceFile | undefined>();
      const check = (hideSqlJsTypes: boolean): Record<string, string[]> => {
        const options: import('typescript').CompilerOptions = {
          target: ts.ScriptTarget.ES2022,
          module: ts.ModuleKind.NodeNext,
          moduleResolution: ts.ModuleResolutionKind.NodeNext,
          lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
          types: ['node'],
          strict: true,
          skipLibCheck: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          paths: { dbcache: [path.join(root, 'src/index.ts')], ...(hideSqlJsTypes ? { 'sql.js': [sqlJsMain] } : {}) },
        };
        const host = ts.createCompilerHost(options);
        const getSourceFile = host.getSourceFile.bind(host);
        host.getSourceFile = (name, language) => {
          const key = `${name}\0${JSON.stringify(language)}`;
          if (!parsed.has(key)) parsed.set(key, getSourceFile(name, language));
          return parsed.get(key);
        };
        const program = ts.createProgram({ rootNames: [...snippets, probe], options, host });
        const report: Record<string, string[]> = {};
        for (const name of [...snippets, probe]) {
          const file = program.getSourceFile(name)!;
          const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
          report[path.basename(name)] = diagnostics.map((d) => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
        }
        return report;
      };
      for (const hidden of [false, true]) {
        const report = check(hidden);
        const setup = hidden ? 'without @types/sql.js' : 'with @types/sql.js';
        assert.equal(report['probe.ts']!.length > 0, !hidden, `the probe shows sql.js typed ${setup}: ${report['probe.ts']}`);
        for (const snippet of snippets) assert.deepEqual(report[path.basename(snippet)], [], `${path.basename(snippet)} ${setup}`);
      }
    } finally {
      cleanup();
    }
  });
});
