// Caller-supplied JavaScript values that lie, change, throw or were detached, passed to every read
// door (cache, snapshot, statement, read(), the onReload database), and the result memo. After each
// attempt the version's content, an unrelated cache on the same engine and a fresh open must be
// fine, with no engine fault anywhere. Attempts that could damage the engine use an engine of their
// own (a separate sql.js module).
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineOf } from '../src/engine.ts';
import { isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type OverlayDatabase, type Snapshot } from '../src/index.ts';
import { loadSqlJs, type SqlJsLike } from '../src/sqljs.ts';
import { sqlite, tempDir } from './support/fixtures.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';

const VICTIM_CHECK = 'SELECT count(*) AS n, sum(length(v)) AS s FROM t';
const VICTIM_ROW = { n: 100, s: 4950 };
const BYSTANDER_CHECK = 'SELECT count(*) AS n, sum(length(s)) AS s FROM secret';
const SECRET_ROWS = 2000;
const BYSTANDER_ROW = { n: SECRET_ROWS, s: SECRET_ROWS * 40 };
const WasmRuntimeError = (globalThis as unknown as { WebAssembly: { RuntimeError: new (message: string) => Error } }).WebAssembly.RuntimeError;

let dir: { dir: string; cleanup: () => void };
/** t(id, v): 100 rows, and a view over random(). */
let victimFile: string;
/** secret(id, s): what must never be seen through another cache. */
let bystanderFile: string;
let shared: SqlJsLike;

before(async () => {
  dir = tempDir();
  victimFile = path.join(dir.dir, 'victim.db');
  bystanderFile = path.join(dir.dir, 'bystander.db');
  sqlite(
    victimFile,
    "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t VALUES (?, ?)', [(i, 'x' * i) for i in range(100)]);" +
      " db.execute('CREATE VIEW rv AS SELECT random() AS r'); db.execute('CREATE VIEW tv AS SELECT id FROM t'); db.execute('CREATE VIEW rv2 AS SELECT r FROM rv')",
  );
  sqlite(bystanderFile, `db.execute('CREATE TABLE secret(id INTEGER PRIMARY KEY, s TEXT)'); db.executemany('INSERT INTO secret VALUES (?, ?)', [(i, ('SECRET-%d-' % i).ljust(40, 'z')) for i in range(${SECRET_ROWS})])`);
  shared = await loadSqlJs();
});

after(() => dir?.cleanup());

/** A victim cache and an unrelated bystander cache on one engine, and what they were told. */
interface World {
  readonly sqlJs: SqlJsLike;
  readonly victim: DbCache;
  readonly bystander: DbCache;
  readonly events: DbCacheEvent[];
  /** The engine's fault count when the world was made: a shared engine may have had faults before (Bun runs every test file in one process). */
  readonly faults: number;
  close(): Promise<void>;
}

async function world(own: boolean, options: { memo?: boolean } = {}): Promise<World> {
  const sqlJs = own ? await freshSqlJs() : shared;
  const victim = await openDbCache(victimFile, { watch: false, sqlJs, ...options });
  const bystander = await openDbCache(bystanderFile, { watch: false, sqlJs });
  const events: DbCacheEvent[] = [];
  victim.subscribe((event) => events.push(event));
  bystander.subscribe((event) => events.push(event));
  // Fill the shared heap with the bystander's rows, as a busy process would.
  assert.equal(bystander.all('SELECT * FROM secret').length, SECRET_ROWS);
  return {
    sqlJs,
    victim,
    bystander,
    events,
    faults: engineOf(sqlJs).faults,
    close: async () => {
      await victim.close();
      await bystander.close();
    },
  };
}

/** Lets the engine's microtask (health check, events) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Both caches answer right, and so does one opened now; the engine had no fault, is not broken,
 * and nobody got an `engine` event.
 */
async function assertSound(w: World, faultsBefore = w.faults): Promise<void> {
  await settle();
  assert.deepEqual({ ...(w.victim.get(VICTIM_CHECK) as object) }, VICTIM_ROW);
  assert.deepEqual(w.victim.values('PRAGMA quick_check'), [['ok']]);
  assert.deepEqual({ ...(w.bystander.get(BYSTANDER_CHECK) as object) }, BYSTANDER_ROW);
  assert.deepEqual(w.bystander.get('SELECT s FROM secret WHERE id = ?', [7]), { s: 'SECRET-7-'.padEnd(40, 'z') });
  const fresh = await openDbCache(victimFile, { watch: false, sqlJs: w.sqlJs });
  try {
    assert.deepEqual({ ...(fresh.get(VICTIM_CHECK) as object) }, VICTIM_ROW);
  } finally {
    await fresh.close();
  }
  await settle();
  const engine = engineOf(w.sqlJs);
  assert.equal(engine.broken, undefined, 'the engine is not broken');
  assert.equal(engine.faults, faultsBefore, 'no engine fault');
  assert.deepEqual(
    w.events.filter((event) => event.type !== 'reload'),
    [],
    'no engine or error event',
  );
}

/** The caller's own error, or an error of the caller's kind; never a DbCacheError. */
function assertCallerError(run: () => unknown, expected: Error | (new (...args: never[]) => Error)): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, 'the call threw');
  if (typeof expected === 'function') {
    assert.ok(thrown instanceof expected, `expected a ${expected.name}, got ${String(thrown)}`);
    assert.ok(!isDbCacheError(thrown), `not a DbCacheError: ${String(thrown)}`);
  } else {
    assert.equal(thrown, expected, `the caller's own error object, got ${String(thrown)}`);
  }
}

/** Every read door, as `(sql, params) => first row or rows`. */
function doors(cache: DbCache): Array<[string, (sql: string, params: unknown) => unknown]> {
  return [
    ['cache.get', (sql, params) => cache.get(sql, params as never)],
    ['cache.all', (sql, params) => cache.all(sql, params as never)[0]],
    ['cache.values', (sql, params) => cache.values(sql, params as never)[0]],
    ['cache.iterate', (sql, params) => [...cache.iterate(sql, params as never)][0]],
    ['cache.prepare().get', (sql, params) => cache.prepare(sql).get(params as never)],
    ['cache.prepare().all', (sql, params) => cache.prepare(sql).all(params as never)[0]],
    ['cache.prepare().iterate', (sql, params) => [...cache.prepare(sql).iterate(params as never)][0]],
    ['cache.prepare().bind().get', (sql, params) => cache.prepare(sql).bind(params as never).get()],
    ['snapshot.get', (sql, params) => lease(cache, (snap) => snap.get(sql, params as never))],
    ['snapshot.prepare().values', (sql, params) => lease(cache, (snap) => snap.prepare(sql).values(params as never)[0])],
    ['read(fn)', (sql, params) => cache.read((snap) => snap.all(sql, params as never)[0])],
  ];
}

function lease<T>(cache: DbCache, fn: (snap: Snapshot) => T): T {
  const snap = cache.snapshot();
  try {
    return fn(snap);
  } finally {
    snap.release();
  }
}

/** The first value of a result, however nested (rows, arrays of rows, objects). */
function scalar(result: unknown): unknown {
  let value = result;
  while (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) value = Array.isArray(value) ? value[0] : Object.values(value)[0];
  return value;
}

/** The first value of a row (an object or an array). */
function first(row: unknown): unknown {
  return Array.isArray(row) ? row[0] : Object.values(row as object)[0];
}

function hex(bytes: unknown): string {
  assert.ok(bytes instanceof Uint8Array, `a blob, got ${String(bytes)}`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').toUpperCase();
}

describe('typed arrays bind exactly their real bytes', () => {
  test('a Uint8Array whose length says 200,000 binds its 1 byte (no bytes of another cache)', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        const lying = new Uint8Array([0x42]);
        Object.defineProperty(lying, 'length', { value: 200_000 });
        const row = door('SELECT ? AS x', [lying]);
        assert.equal(hex(first(row)), '42', `${name}: exactly the real byte`);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a Uint8Array of 1,024 bytes whose length says 1 binds its 1,024 bytes, and the heap stays sound', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        const bytes = new Uint8Array(1024).map((_, i) => (i * 7) & 0xff);
        const expected = hex(bytes.slice());
        Object.defineProperty(bytes, 'length', { value: 1 });
        assert.equal(hex(first(door('SELECT ? AS x', [bytes]))), expected, name);
        assert.deepEqual({ ...(w.bystander.get(BYSTANDER_CHECK) as object) }, BYSTANDER_ROW, `${name}: the bystander still answers`);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('lies in byteLength, byteOffset, buffer and subarray change nothing', async () => {
    const w = await world(true);
    try {
      const other = new Uint8Array(4096).fill(0xee);
      const lies: Array<[string, (a: Uint8Array) => void]> = [
        ['byteLength', (a) => Object.defineProperty(a, 'byteLength', { value: 100_000 })],
        ['byteOffset', (a) => Object.defineProperty(a, 'byteOffset', { value: 5000 })],
        ['buffer', (a) => Object.defineProperty(a, 'buffer', { value: other.buffer })],
        ['subarray/slice', (a) => Object.assign(a, { subarray: () => other, slice: () => other })],
        ['every length-like property', (a) => {
          for (const key of ['length', 'byteLength']) Object.defineProperty(a, key, { get: () => 1 << 20 });
        }],
      ];
      for (const [lie, apply] of lies) {
        for (const [name, door] of doors(w.victim)) {
          const bytes = new Uint8Array([1, 2, 3]);
          apply(bytes);
          assert.equal(hex(first(door('SELECT ? AS x', [bytes]))), '010203', `${name}, ${lie}`);
        }
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('subclasses, Buffer, offset views, shared memory, other typed arrays and DataView bind their real bytes (as in better-sqlite3)', async () => {
    const w = await world(false);
    try {
      class Sub extends Uint8Array {
        override get length(): number {
          return 9999;
        }
      }
      const shared = new Uint8Array(new SharedArrayBuffer(4));
      shared.set([9, 8, 7, 6]);
      const base = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]);
      const cases: Array<[string, unknown, string]> = [
        ['a subclass that lies about length', new Sub([7, 8]), '0708'],
        ['a Buffer', Buffer.from('abc'), '616263'],
        ['a view with a byte offset', new Uint8Array(base.buffer, 3, 2), '0304'],
        ['a view of a SharedArrayBuffer', shared.subarray(1, 3), '0807'],
        ['an Int16Array', new Int16Array([1, -2]), '0100FEFF'],
        ['a Float64Array', new Float64Array([1]), '000000000000F03F'],
        ['a DataView with an offset', new DataView(base.buffer, 6, 2), '0607'],
        ['an empty Uint8Array', new Uint8Array(0), ''],
      ];
      for (const [what, value, expected] of cases) {
        for (const [name, door] of doors(w.victim)) {
          const row = door('SELECT typeof(x) AS t, x FROM (SELECT ? AS x)', [value]) as Record<string, unknown> | unknown[];
          const [type, bytes] = Array.isArray(row) ? row : [row.t, row.x];
          assert.equal(type, 'blob', `${name}, ${what}`);
          assert.equal(hex(bytes), expected, `${name}, ${what}`);
        }
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test("a later value's getter that changes or detaches an earlier blob changes nothing: each is copied as it is read", async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        const buffer = new ArrayBuffer(4);
        const bytes = new Uint8Array(buffer);
        bytes.set([1, 2, 3, 4]);
        const params: unknown[] = [bytes];
        Object.defineProperty(params, 1, {
          enumerable: true,
          get: () => {
            bytes.fill(9);
            structuredClone(buffer, { transfer: [buffer] });
            return 5;
          },
        });
        const row = door('SELECT ? AS a, ? AS b', params);
        const [a, b] = Array.isArray(row) ? row : Object.values(row as object);
        assert.equal(hex(a), '01020304', name);
        assert.equal(b, 5, name);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a Proxy around a Uint8Array is refused with a TypeError', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        let trapped = 0;
        const proxy = new Proxy(new Uint8Array([1, 2]), {
          get(target, key) {
            trapped++;
            return key === 'length' ? 100_000 : Reflect.get(target, key);
          },
        });
        assertCallerError(() => door('SELECT ? AS x', [proxy]), TypeError);
        assert.equal(trapped, 0, `${name}: nothing was read through the proxy`);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a view of a detached ArrayBuffer is a TypeError, not an engine fault', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        const buffer = new ArrayBuffer(8);
        const view = new Uint8Array(buffer, 2, 4);
        structuredClone(buffer, { transfer: [buffer] });
        assertCallerError(() => door('SELECT ? AS x', [view]), TypeError);
        assertCallerError(() => door('SELECT :x AS x', { x: new DataView(buffer) }), TypeError);
        assert.ok(name);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });
});

describe('each parameter is read exactly once, before the engine runs', () => {
  test('getters on array indices and named keys are read once (numbers, strings, blobs, mixed)', async () => {
    const w = await world(false);
    try {
      const samples: Array<[string, unknown]> = [
        ['number', 42],
        ['string', 'abc'],
        ['blob', new Uint8Array([5])],
        ['bigint', 7n],
        ['boolean', true],
      ];
      for (const [what, sample] of samples) {
        for (const [name, door] of doors(w.victim)) {
          let reads = 0;
          const array: unknown[] = [];
          Object.defineProperty(array, 0, { enumerable: true, get: () => (reads++, sample) });
          const viaArray = first(door('SELECT ? AS x', array));
          assert.equal(reads, 1, `${name}, ${what} in an array: read ${reads} times`);
          reads = 0;
          const named = Object.defineProperty({}, 'a', { enumerable: true, get: () => (reads++, sample) });
          const viaName = first(door('SELECT :a AS x', named));
          assert.equal(reads, 1, `${name}, ${what} by name: read ${reads} times`);
          assert.deepEqual(viaName, viaArray);
        }
      }
      // Statement arguments in better-sqlite3's mixed forms.
      let reads = 0;
      const named = Object.defineProperty({}, 'a', { enumerable: true, get: () => (reads++, 3) });
      assert.deepEqual(w.victim.prepare('SELECT :a AS a, ? AS b').get(named, 4), { a: 3, b: 4 });
      assert.equal(reads, 1);
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a getter that throws on its second read (WebAssembly.RuntimeError, TypeError) is never read twice', async () => {
    const w = await world(true);
    try {
      for (const make of [() => new WasmRuntimeError('the caller'), () => new TypeError('the caller')]) {
        for (const value of [42, 'abc']) {
          for (const [name, door] of doors(w.victim)) {
            const once = () => {
              let read = false;
              return () => {
                if (read) throw make();
                read = true;
                return value;
              };
            };
            const array: unknown[] = [];
            Object.defineProperty(array, 0, { enumerable: true, get: once() });
            assert.equal(first(door('SELECT ? AS x', array)), value, `${name} (array)`);
            const named = Object.defineProperty({}, 'a', { enumerable: true, get: once() });
            assert.equal(first(door('SELECT :a AS x', named)), value, `${name} (named)`);
          }
        }
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test("an error thrown by the caller's own values is rethrown as it is: no ENGINE, no engine event", async () => {
    const w = await world(true);
    try {
      const errors = [
        new WasmRuntimeError('thrown by a getter'),
        new TypeError('thrown by a getter'),
        new RangeError('Maximum call stack size exceeded'),
        new Error('thrown by a getter'),
      ];
      for (const error of errors) {
        for (const [name, door] of doors(w.victim)) {
          const array: unknown[] = [];
          Object.defineProperty(array, 0, {
            enumerable: true,
            get: () => {
              throw error;
            },
          });
          assertCallerError(() => door('SELECT ? AS x', array), error);
          const named = Object.defineProperty({}, 'a', {
            enumerable: true,
            get: () => {
              throw error;
            },
          });
          assertCallerError(() => door('SELECT :a AS x', named), error);
          assert.ok(name);
        }
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a real stack overflow inside a getter is the caller\'s RangeError', async () => {
    const w = await world(true);
    try {
      const recurse = (n: number): number => (n === -1 ? 0 : recurse(n + 1) + 1);
      const array: unknown[] = [];
      Object.defineProperty(array, 0, { enumerable: true, get: () => recurse(0) });
      for (const [, door] of doors(w.victim)) assertCallerError(() => door('SELECT ? AS x', array), RangeError);
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('Proxies as the params array or object: each trap runs once per value; throwing traps are the caller\'s', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        const gets = new Map<PropertyKey, number>();
        const counting = new Proxy([1, 'two'], {
          get(target, key, receiver) {
            gets.set(key, (gets.get(key) ?? 0) + 1);
            return Reflect.get(target, key, receiver);
          },
        });
        const row = door('SELECT ? AS a, ? AS b', counting);
        assert.deepEqual(Array.isArray(row) ? row : Object.values(row as object), [1, 'two'], name);
        assert.ok((gets.get('0') ?? 0) <= 1 && (gets.get('1') ?? 0) <= 1 && (gets.get('length') ?? 0) <= 1, `${name}: ${JSON.stringify([...gets])}`);

        const named = new Map<PropertyKey, number>();
        const countingObject = new Proxy(
          { a: 1, b: 'two' },
          {
            get(target, key, receiver) {
              named.set(key, (named.get(key) ?? 0) + 1);
              return Reflect.get(target, key, receiver);
            },
          },
        );
        const namedRow = door('SELECT :a AS a, @b AS b', countingObject);
        assert.deepEqual(Array.isArray(namedRow) ? namedRow : Object.values(namedRow as object), [1, 'two'], name);
        assert.ok((named.get('a') ?? 0) === 1 && (named.get('b') ?? 0) === 1, `${name}: ${JSON.stringify([...named])}`);

        // A trap that runs throws the caller's error as it is; one that does not run changes nothing.
        const boom = new Error('trap');
        for (const trap of ['get', 'ownKeys', 'getOwnPropertyDescriptor', 'has', 'getPrototypeOf'] as const) {
          const handler = { [trap]: () => { throw boom; } };
          const inputs: Array<[string, object]> = [['SELECT :a AS a', new Proxy({ a: 1 }, handler)]];
          if (trap !== 'getPrototypeOf') inputs.push(['SELECT ? AS a', new Proxy([1], handler)]);
          for (const [sql, params] of inputs) {
            let outcome: unknown;
            try {
              outcome = scalar(door(sql, params));
            } catch (error) {
              outcome = error;
            }
            assert.ok(outcome === 1 || outcome === boom, `${name}, ${trap} trap: ${String(outcome)}`);
          }
        }
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('a length getter on the params array is read once, and a value that changes it changes nothing', async () => {
    const w = await world(true);
    try {
      for (const [name, door] of doors(w.victim)) {
        let lengthReads = 0;
        const target = [1, 2];
        const proxy = new Proxy(target, {
          get(t, key, receiver) {
            if (key === 'length') {
              lengthReads++;
              return lengthReads === 1 ? 2 : 100_000;
            }
            return Reflect.get(t, key, receiver);
          },
        });
        assert.deepEqual(first(door('SELECT ? + ? AS x', proxy)), 3, name);
        assert.ok(lengthReads <= 1, `${name}: length read ${lengthReads} times`);
      }
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('objects with Symbol.toPrimitive, valueOf or toString are refused without being called', async () => {
    const w = await world(false);
    try {
      let called = 0;
      const sneaky = {
        [Symbol.toPrimitive]: () => (called++, 1),
        valueOf: () => (called++, 1),
        toString: () => (called++, '1'),
      };
      for (const [, door] of doors(w.victim)) {
        for (const value of [sneaky, new Number(1), new String('a'), Object(1n), new Date(0), [1], { a: 1 }, Symbol('s'), () => 1]) {
          if (Array.isArray(value) || (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)) continue;
          assertCallerError(() => door('SELECT ? AS x', [value]), TypeError);
        }
      }
      assert.equal(called, 0);
      await assertSound(w);
    } finally {
      await w.close();
    }
  });

  test('bind() reads each value once and keeps a copy: changing the caller\'s values later changes nothing', async () => {
    const w = await world(false);
    try {
      let reads = 0;
      const array: unknown[] = [];
      const bytes = new Uint8Array([1, 2]);
      Object.defineProperty(array, 0, { enumerable: true, get: () => (reads++, bytes) });
      const statement = w.victim.prepare('SELECT ? AS x').bind(array as never);
      assert.equal(reads, 1);
      bytes[0] = 9;
      assert.equal(hex(statement.pluck().get()), '0102');
      assert.equal(reads, 1);
      await assertSound(w);
    } finally {
      await w.close();
    }
  });
});

describe('a lease released while values are read', () => {
  let file: string;
  let cache: DbCache;
  before(async () => {
    file = path.join(dir.dir, 'leases.db');
    sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY)'); db.execute('INSERT INTO t VALUES (1)')");
    cache = await openDbCache(file, { watch: false });
  });
  after(() => cache?.close());

  const releasing = (snap: Snapshot): unknown[] => {
    const array: unknown[] = [];
    Object.defineProperty(array, 0, { enumerable: true, get: () => (snap.release(), 1) });
    return array;
  };
  const methods: Array<[string, (snap: Snapshot, params: unknown[]) => unknown]> = [
    ['get', (snap, params) => snap.get('SELECT ? AS x', params as never)],
    ['all', (snap, params) => snap.all('SELECT ? AS x', params as never)],
    ['values', (snap, params) => snap.values('SELECT ? AS x', params as never)],
    ['iterate', (snap, params) => [...snap.iterate('SELECT ? AS x', params as never)]],
    ['prepare().get', (snap, params) => snap.prepare('SELECT ? AS x').get(params as never)],
  ];

  test('of the live version: the call throws CLOSED', () => {
    for (const [name, method] of methods) {
      const snap = cache.snapshot();
      assert.throws(() => method(snap, releasing(snap)), (error) => isDbCacheError(error, 'CLOSED'), name);
    }
    assert.deepEqual(cache.get('SELECT count(*) AS n FROM t'), { n: 1 });
  });

  test('of a retired version (its database closes): the call throws CLOSED, never a raw sql.js string', async () => {
    for (const [name, method] of methods) {
      const snap = cache.snapshot();
      sqlite(file, 'db.execute("INSERT INTO t VALUES ((SELECT max(id) + 1 FROM t))")');
      await cache.reload();
      const before = cache.stats().liveSnapshots;
      assert.equal(before, 2, 'the snapshot keeps its version');
      assert.throws(() => method(snap, releasing(snap)), (error) => isDbCacheError(error, 'CLOSED'), name);
      assert.equal(cache.stats().liveSnapshots, 1, `${name}: the version was closed`);
    }
    assert.equal((cache.get('SELECT count(*) AS n FROM t') as { n: number }).n, 1 + methods.length);
  });

  test('a getter that closes the cache: the call throws CLOSED', async () => {
    const own = await openDbCache(file, { watch: false });
    const array: unknown[] = [];
    let closing: Promise<void> | undefined;
    Object.defineProperty(array, 0, { enumerable: true, get: () => ((closing = own.close()), 1) });
    assert.throws(() => own.get('SELECT ? AS x', array as never), (error) => isDbCacheError(error, 'CLOSED'));
    await closing;
  });
});

describe('argument types', () => {
  let cache: DbCache;
  before(async () => {
    cache = await openDbCache(victimFile, { watch: false });
  });
  after(() => cache?.close());

  const notStrings: unknown[] = [undefined, null, 5, ['SELECT 1'], { sql: 'SELECT 1' }, new String('SELECT 1'), Symbol('SELECT')];

  function assertNotString(run: () => unknown, what: string): void {
    assert.throws(run, (error: unknown) => {
      assert.ok(error instanceof TypeError, `${what}: a TypeError, got ${String(error)}`);
      // better-sqlite3's message for the same mistake.
      assert.equal(error.message, 'Expected first argument to be a string', what);
      return true;
    });
  }

  function readers(target: { get: Function; all: Function; values: Function; iterate: Function; prepare: Function }): Array<[string, (sql: unknown, params?: unknown) => unknown]> {
    return [
      ['get', (sql, params) => target.get(sql, params)],
      ['all', (sql, params) => target.all(sql, params)],
      ['values', (sql, params) => target.values(sql, params)],
      ['iterate', (sql, params) => [...target.iterate(sql, params)]],
      ['prepare', (sql) => target.prepare(sql)],
    ];
  }

  test('every read method on the cache and a snapshot checks that the SQL is a string first', () => {
    const snap = cache.snapshot();
    try {
      for (const [owner, target] of [['cache', cache], ['snapshot', snap]] as const) {
        for (const [name, method] of readers(target as never)) {
          for (const sql of notStrings) assertNotString(() => method(sql, [1]), `${owner}.${name}(${String(sql)})`);
        }
      }
    } finally {
      snap.release();
    }
  });

  test('params must be an array, a plain object or undefined: a precise TypeError otherwise', () => {
    for (const [name, method] of readers(cache as never)) {
      if (name === 'prepare') continue;
      for (const params of [5, 'a', true, 1n, null, new Map([['a', 1]]), new Uint8Array(1), new Date(0), () => 1]) {
        assert.throws(
          () => method('SELECT 1', params),
          (error: unknown) => error instanceof TypeError && !isDbCacheError(error),
          `${name}(${String(params)})`,
        );
      }
      assert.equal(scalar(method('SELECT 1 AS x', undefined)), 1);
      assert.equal(scalar(method('SELECT ? AS x', [1])), 1);
      assert.equal(scalar(method('SELECT :a AS x', Object.assign(Object.create(null), { a: 1 }))), 1);
    }
  });

  test('the onReload database checks the same', async () => {
    const seen: string[] = [];
    const overlaid = await openDbCache(victimFile, {
      watch: false,
      onReload: (db: OverlayDatabase) => {
        for (const [name, method] of readers(db as never)) {
          for (const sql of notStrings) {
            try {
              method(sql, [1]);
              seen.push(`${name}: no error`);
            } catch (error) {
              seen.push(error instanceof TypeError && error.message === 'Expected first argument to be a string' ? 'ok' : `${name}: ${String(error)}`);
            }
          }
        }
        for (const call of [() => db.run(5 as never), () => db.exec(5 as never), () => db.run('SELECT ?', 5 as never)]) {
          try {
            call();
            seen.push('run/exec: no error');
          } catch (error) {
            seen.push(error instanceof TypeError ? 'ok' : `run/exec: ${String(error)}`);
          }
        }
      },
    });
    await overlaid.close();
    assert.deepEqual(
      seen.filter((line) => line !== 'ok'),
      [],
    );
  });
});

describe('strings are bound as well-formed UTF-8', () => {
  test('a lone surrogate binds as U+FFFD (EF BF BD), in parameters and in SQL text alike', async () => {
    const cache = await openDbCache(victimFile, { watch: false });
    try {
      for (const [name, door] of doors(cache)) {
        assert.equal(first(door('SELECT hex(?) AS h', ['\uD800'])), 'EFBFBD', name);
        assert.equal(first(door('SELECT hex(?) AS h', ['a\uDC00b\uD83D'])), '61EFBFBD62EFBFBD', name);
        assert.equal(first(door('SELECT ? AS s', ['x\uD800'])), 'x\uFFFD', name);
        // A valid pair is left alone.
        assert.equal(first(door('SELECT hex(?) AS h', ['\uD83D\uDE00'])), 'F09F9880', name);
        assert.equal(first(door("SELECT hex('\uD800') AS h", [])), 'EFBFBD', `${name}, in SQL text`);
        assert.equal(first(door("SELECT '\uD800' AS s", [])), '\uFFFD', `${name}, in SQL text`);
      }
    } finally {
      await cache.close();
    }
  });
});

describe('read(fn) releases its lease however the result settles', () => {
  let file: string;
  before(() => {
    file = path.join(dir.dir, 'read.db');
    sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY)')");
  });

  /** Whether the version read() leased was released: after a reload, only the live version is open. */
  async function released(cache: DbCache): Promise<boolean> {
    sqlite(file, 'db.execute("INSERT INTO t DEFAULT VALUES")');
    await cache.reload();
    return cache.stats().liveSnapshots === 1;
  }

  test('a thenable whose then() throws: read() rethrows and releases', async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      const boom = new Error('then');
      const thenable = { then: () => { throw boom; } };
      assert.throws(() => cache.read(() => thenable), (error) => error === boom);
      assert.equal(await released(cache), true);
    } finally {
      await cache.close();
    }
  });

  test('a thenable whose then getter throws: read() rethrows and releases', async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      const boom = new Error('then getter');
      const thenable = Object.defineProperty({}, 'then', { get: () => { throw boom; } });
      assert.throws(() => cache.read(() => thenable), (error) => error === boom);
      assert.equal(await released(cache), true);
    } finally {
      await cache.close();
    }
  });

  test('a then getter is read once; the thenable is returned as it is and released when it settles', async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      let reads = 0;
      let settle: (() => void) | undefined;
      const thenable = Object.defineProperty({}, 'then', {
        get: () => {
          reads++;
          if (reads > 1) throw new Error('read twice');
          return (resolve: () => void) => {
            settle = resolve;
          };
        },
      });
      assert.equal(cache.read(() => thenable), thenable);
      assert.equal(reads, 1);
      assert.equal(await released(cache), false, 'held until it settles');
      settle!();
      assert.equal(await released(cache), true);
      const promised = cache.read(async (snap) => snap.get('SELECT count(*) AS n FROM t'));
      assert.ok(promised instanceof Promise);
      await promised;
      assert.equal(await released(cache), true);
    } finally {
      await cache.close();
    }
  });
});

describe("a source function's image is read by its real bytes", () => {
  let image: Uint8Array;
  before(async () => {
    const db = new shared.Database(null);
    db.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)");
    image = (db as unknown as { export(): Uint8Array }).export();
    db.close();
  });

  const rows = async (make: () => unknown): Promise<unknown> => {
    const cache = await openDbCache(make as never, { watch: false });
    try {
      return cache.values('SELECT x FROM t');
    } finally {
      await cache.close();
    }
  };

  test('lies in length, subarray or slice change nothing', async () => {
    const lies: Array<(a: Uint8Array) => void> = [
      (a) => Object.defineProperty(a, 'length', { value: a.length * 100 }),
      (a) => Object.defineProperty(a, 'length', { value: 100 }),
      (a) => Object.assign(a, { subarray: () => new Uint8Array(10), slice: () => new Uint8Array(10) }),
      (a) => Object.defineProperty(a, 'byteLength', { value: 3 }),
    ];
    for (const lie of lies) {
      assert.deepEqual(
        await rows(() => {
          const copy = image.slice();
          lie(copy);
          return copy;
        }),
        [[1], [2]],
      );
    }
    const padded = new Uint8Array(image.length + 7);
    padded.set(image, 7);
    assert.deepEqual(await rows(() => padded.subarray(7)), [[1], [2]]);
  });

  test('a detached buffer, a Proxy or another typed array is SOURCE_FAILED (not an empty database)', async () => {
    const makes: Array<() => unknown> = [
      () => {
        const copy = image.slice();
        structuredClone(copy.buffer, { transfer: [copy.buffer] });
        return copy;
      },
      () => new Proxy(image.slice(), {}),
      () => new Int16Array(image.slice().buffer),
    ];
    for (const make of makes) {
      await assert.rejects(
        openDbCache(make as never, { watch: false }),
        (error) => isDbCacheError(error, 'SOURCE_FAILED'),
      );
    }
  });
});

describe('the result memo', () => {
  let w: World;
  before(async () => {
    w = await world(false, { memo: true });
  });
  after(() => w?.close());

  /** Whether the second of two identical calls returned the remembered (same, frozen) result. */
  function remembered(run: () => unknown): boolean {
    const one = run();
    const two = run();
    return one === two && typeof one === 'object' && one !== null;
  }

  test('-0 and 0, NaN, bigints and numbers, booleans and numbers, strings and blobs have keys of their own', () => {
    const { victim } = w;
    assert.equal(first(victim.get('SELECT atan2(0, ?) AS a', [0])), 0);
    assert.equal(first(victim.get('SELECT atan2(0, ?) AS a', [-0])), Math.PI);
    assert.equal(first(victim.get('SELECT atan2(?, ?) AS a', [0, 0])), 0);
    assert.equal(first(victim.get('SELECT atan2(?, ?) AS a', [0, -0])), Math.PI);
    assert.equal(first(victim.get('SELECT atan2(0, :x) AS a', { x: 0 })), 0);
    assert.equal(first(victim.get('SELECT atan2(0, :x) AS a', { x: -0 })), Math.PI);
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [NaN])), 'null');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [5n])), 'integer');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [5])), 'real');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [true])), 'integer');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [1])), 'real');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', ['a'])), 'text');
    assert.equal(first(victim.get('SELECT typeof(?) AS t', [new Uint8Array([97])])), 'blob');
    assert.equal(first(victim.get('SELECT typeof(?) || typeof(?) AS t', [1, true])), 'realinteger');
    assert.equal(first(victim.get('SELECT typeof(?) || typeof(?) AS t', [1, 1])), 'realreal');
    assert.equal(first(victim.get('SELECT typeof(?) || typeof(?) AS t', ['1', 1n])), 'textinteger');
    assert.equal(first(victim.get('SELECT typeof(?) || typeof(?) AS t', [1, '1'])), 'realtext');
  });

  test('clock, random and unknown functions are never remembered, however they are spelt', () => {
    const { victim } = w;
    const never: Array<[string, unknown?]> = [
      ['SELECT strftime(?) AS x', ['%s']],
      ['SELECT strftime(?, ?) AS x', ['%s', 'now']],
      ["SELECT datetime('n' || 'ow') AS x"],
      ["SELECT datetime(?) AS x", ['2020-01-01']],
      ["SELECT date('now') AS x"],
      ["SELECT date(' NOW ') AS x"],
      ["SELECT date('2020-01-01', 'localtime') AS x"],
      ['SELECT date() AS x'],
      ["SELECT strftime('%s') AS x"],
      ['SELECT julianday(id) AS x FROM t'],
      ['SELECT unixepoch() AS x'],
      ['SELECT random/**/() AS x'],
      ['SELECT random\n() AS x'],
      ['SELECT random -- a comment\n() AS x'],
      ['SELECT "random"() AS x'],
      ['SELECT [randomblob](4) AS x'],
      ['SELECT `random`() AS x'],
      ['SELECT RANDOM() AS x'],
      ['SELECT abs(random()) AS x'],
      ['SELECT current_timestamp AS x'],
      ['SELECT CURRENT_DATE AS x'],
      ['SELECT changes() AS x'],
      ['SELECT total_changes() AS x'],
      ['SELECT last_insert_rowid() AS x'],
      ['SELECT r FROM rv'],
      ['SELECT r FROM "rv2"'],
      ['SELECT id FROM t WHERE id IN (SELECT abs(r) % 100 FROM rv)'],
    ];
    for (const [sql, params] of never) {
      assert.equal(remembered(() => victim.get(sql, params as never)), false, `get: ${sql}`);
      assert.equal(remembered(() => victim.all(sql, params as never)), false, `all: ${sql}`);
    }
  });

  test('deterministic reads are remembered', () => {
    const { victim } = w;
    const always: Array<[string, unknown?]> = [
      ['SELECT * FROM t WHERE id = ?', [5]],
      ['SELECT id FROM tv WHERE id = :id', { id: 5 }],
      ["SELECT date('2020-01-01', '+1 day') AS x"],
      ["SELECT strftime('%Y', '2020-01-01') AS x"],
      ['SELECT julianday(2460000.5) AS x'],
      ["SELECT upper(v) AS u, length(v) AS l, abs(-1) AS a, coalesce(NULL, 1) AS c FROM t WHERE id = ?", [3]],
      ['SELECT count(*) AS n, max(id) AS m FROM t WHERE v LIKE ?', ['%x%']],
      ['SELECT id FROM t WHERE id IN (1, 2) AND EXISTS (SELECT 1) ORDER BY id', undefined],
      ['WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) AS s FROM n'],
      ['SELECT CAST(? AS INTEGER) AS x', ['7']],
      ['SELECT row_number() OVER (ORDER BY id) AS r FROM t WHERE id < 3'],
      ["SELECT json_extract('{\"a\":1}', '$.a') AS x"],
      ['SELECT sqlite_version() AS v'],
      ["SELECT 'random()' AS x, \"random\" FROM (SELECT 1 AS random)"],
    ];
    for (const [sql, params] of always) {
      assert.equal(remembered(() => victim.get(sql, params as never)), true, `get: ${sql}`);
      assert.equal(remembered(() => victim.all(sql, params as never)), true, `all: ${sql}`);
    }
  });

  test('a TEMP view made by onReload that calls random() is not remembered either', async () => {
    const overlaid = await openDbCache(victimFile, {
      watch: false,
      memo: true,
      onReload: (db) => {
        db.exec('CREATE TEMP VIEW noise AS SELECT random() AS r; CREATE TEMP VIEW calm AS SELECT 1 AS one');
      },
    });
    try {
      assert.equal(remembered(() => overlaid.get('SELECT r FROM noise')), false);
      assert.equal(remembered(() => overlaid.get('SELECT one FROM temp.calm')), true);
    } finally {
      await overlaid.close();
    }
  });

  test('a hostile value in a memoised query is read once and keyed by what was bound', async () => {
    const { victim } = w;
    let reads = 0;
    const array: unknown[] = [];
    Object.defineProperty(array, 0, { enumerable: true, get: () => (reads++, 5) });
    assert.deepEqual({ ...(victim.get('SELECT id FROM t WHERE id = ?', array as never) as object) }, { id: 5 });
    assert.equal(reads, 1);
    const lying = new Uint8Array([1]);
    Object.defineProperty(lying, 'length', { value: 100_000 });
    assert.equal(hex(first(victim.get('SELECT ? AS x', [lying]))), '01');
    assert.equal(hex(first(victim.get('SELECT ? AS x', [new Uint8Array([1])]))), '01');
    await assertSound(w);
  });
});
