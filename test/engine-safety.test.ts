// Hostile queries, parameters and results against the sql.js engine that every cache in a process
// shares: each kind runs many times in one process, then a second cache and a fresh open must work.
// DBCACHE_ENGINE_SCALE=N repeats every kind N times as often.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineOf, isStackOverflow } from '../src/engine.ts';
import { DbCacheError, isDbCacheError, openDbCache, type DbCache, type DbCacheErrorCode, type DbCacheEvent } from '../src/index.ts';
import { loadSqlJs, type SqlJsLike } from '../src/sqljs.ts';
import { recordingLogger, sqlite, tempDir } from './support/fixtures.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';

const SCALE = Math.max(1, Number(process.env.DBCACHE_ENGINE_SCALE ?? 1) || 1);
const MiB = 2 ** 20;
const CHECK_SQL = 'SELECT count(*) AS n, sum(length(v)) AS s FROM t';
const CHECK_ROW = { n: 100, s: 4950 };

let dir: { dir: string; cleanup: () => void };
let file: string;
/** The cache the hostile inputs go to. */
let victim: DbCache;
/** A second cache on the same engine that only ever runs harmless queries. */
let bystander: DbCache;
const bystanderEvents: DbCacheEvent[] = [];
let sqlJs: SqlJsLike & { _malloc(bytes: number): number; _free(pointer: number): void };

before(async () => {
  dir = tempDir();
  file = path.join(dir.dir, 'engine.db');
  sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t VALUES (?, ?)', [(i, 'x' * i) for i in range(100)])");
  victim = await openDbCache(file, { watch: false });
  bystander = await openDbCache(file, { watch: false });
  bystander.subscribe((event) => bystanderEvents.push(event));
  sqlJs = (await loadSqlJs()) as typeof sqlJs;
  assert.equal(typeof sqlJs._malloc, 'function', 'sql.js exports _malloc');
});

after(async () => {
  await victim?.close();
  await bystander?.close();
  dir?.cleanup();
});

/** Both caches, the victim's database, and a cache opened now all answer right; the engine is not broken. */
async function assertEngineWorks(): Promise<void> {
  assert.deepEqual(victim.get(CHECK_SQL) as object, CHECK_ROW);
  assert.deepEqual(bystander.get(CHECK_SQL) as object, CHECK_ROW);
  assert.deepEqual(bystander.get('SELECT v FROM t WHERE id = ?', [7]), { v: 'xxxxxxx' });
  assert.deepEqual(victim.values('PRAGMA quick_check'), [['ok']]);
  const fresh = await openDbCache(file, { watch: false });
  try {
    assert.deepEqual(fresh.get(CHECK_SQL) as object, CHECK_ROW);
  } finally {
    await fresh.close();
  }
  assert.equal(engineOf(sqlJs).broken, undefined);
}

/** Runs `query`: a right answer gives 'ok', a DbCacheError with one of `codes` its code; anything else fails the test. */
function outcome(query: () => unknown, right: (result: never) => boolean, codes: readonly DbCacheErrorCode[]): string {
  let result: unknown;
  try {
    result = query();
  } catch (error) {
    assert.ok(isDbCacheError(error), `expected a DbCacheError, got ${String(error)}`);
    assert.ok(codes.includes(error.code), `unexpected ${error.code}: ${error.message}`);
    assert.equal(error.path, file);
    return error.code;
  }
  assert.ok(right(result as never), `wrong answer: ${JSON.stringify(result)?.slice(0, 200)}`);
  return 'ok';
}

function tally(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Lets the engine's microtask (health check, events) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Fills the shared heap until it has no room left but `holes` free blocks of `size` bytes, kept
 * apart (so they cannot merge) by full blocks; returns the function that frees it all.
 */
function squeezeHeap(size: number, holes: number): () => void {
  const blocks: number[] = [];
  for (let pointer = sqlJs._malloc(size); pointer !== 0; pointer = sqlJs._malloc(size)) blocks.push(pointer);
  assert.ok(blocks.length >= 2 * holes, `the heap has room for ${2 * holes} blocks of ${size} bytes`);
  const rest: number[] = [];
  for (let bytes = size / 2; bytes >= 64 * 1024; bytes /= 2) {
    for (let pointer = sqlJs._malloc(bytes); pointer !== 0; pointer = sqlJs._malloc(bytes)) rest.push(pointer);
  }
  // Every other block of the first ones: a full block between any two holes.
  for (let i = 0; i < holes; i++) {
    sqlJs._free(blocks[2 * i]!);
    blocks[2 * i] = 0;
  }
  return () => {
    for (const pointer of [...blocks, ...rest]) if (pointer !== 0) sqlJs._free(pointer);
  };
}

describe('the shared engine survives hostile input', () => {
  test('LIKE and GLOB patterns near the 50,000-byte limit, as parameters and in the SQL', async () => {
    const subject = 'a'.repeat(20_000);
    const like = '%a'.repeat(24_000) + 'b';
    const glob = '*a'.repeat(24_000) + 'b';
    const counts = new Map<string, number>();
    const eventsBefore = bystanderEvents.length;
    const faultsBefore = engineOf(sqlJs).faults;
    const snapshot = victim.snapshot();
    try {
      for (let i = 0; i < 100 * SCALE; i++) {
        tally(counts, outcome(() => victim.get('SELECT ? LIKE ? AS v', [subject, like]), (row: { v: number }) => row.v === 0, ['ENGINE']));
        tally(counts, outcome(() => victim.values('SELECT :s GLOB :p', { s: subject, p: glob }), (rows: number[][]) => rows[0]![0] === 0, ['ENGINE']));
        tally(counts, outcome(() => snapshot.all('SELECT count(*) AS c FROM t WHERE ? LIKE ?', [subject, like]), (rows: Array<{ c: number }>) => rows[0]!.c === 0, ['ENGINE']));
        if (i % 10 === 0) {
          tally(counts, outcome(() => victim.get(`SELECT '${subject}' LIKE '${like}' AS v`), (row: { v: number }) => row.v === 0, ['ENGINE']));
        }
        if (i % 25 === 0) assert.deepEqual(bystander.get(CHECK_SQL) as object, CHECK_ROW);
      }
      // Over the limit SQLite refuses the pattern itself.
      assert.throws(() => victim.get('SELECT ? LIKE ? AS v', ['a', '%'.repeat(50_001)]), (error) => isDbCacheError(error, 'QUERY'));
      assert.deepEqual(snapshot.get(CHECK_SQL) as object, CHECK_ROW);
    } finally {
      snapshot.release();
    }
    await settle();
    const engineFaults = counts.get('ENGINE') ?? 0;
    assert.equal(engineFaults + (counts.get('ok') ?? 0), [...counts.values()].reduce((a, b) => a + b));
    // Bun's JIT may finish the match within its deeper stack; then there is nothing to report.
    assert.equal(engineOf(sqlJs).faults - faultsBefore >= engineFaults, true);
    const told = bystanderEvents.slice(eventsBefore);
    // The loop above runs without yielding: all its faults are one burst, told once.
    assert.equal(told.length, engineFaults > 0 ? 1 : 0, `the other cache was told ${told.length} times about ${engineFaults} faults in one burst`);
    for (const event of told) {
      assert.equal(event.type, 'engine');
      if (event.type === 'engine') {
        assert.equal(event.broken, false);
        assert.equal(event.error.code, 'ENGINE');
      }
    }
    await assertEngineWorks();
  });

  test('stack overflows at every depth (callers that are already deep): right answers, or the engine fails loudly', async () => {
    // An engine of its own: this may well damage it.
    const engine = await freshSqlJs();
    const deepVictim = await openDbCache(file, { watch: false, sqlJs: engine });
    const deepBystander = await openDbCache(file, { watch: false, sqlJs: engine });
    try {
      const LIMIT = 40_000;
      const results = new Array<unknown>(LIMIT).fill(undefined);
      const failed = new Array<boolean>(LIMIT).fill(false);
      let count = 0;
      let deepest = 0;
      const window = 4000;
      // Nothing here calls a function besides the query: this runs where the stack is nearly exhausted.
      const attempt = (n: number): void => {
        if (count >= LIMIT) return;
        const k = count++;
        try {
          results[k] =
            n % 2 === 0 ? deepVictim.get('SELECT v FROM t WHERE id = ?', [42]) : deepVictim.all('SELECT id FROM t WHERE v LIKE ? ORDER BY id DESC', ['%xxxxxxxxx%']);
        } catch (error) {
          failed[k] = true;
          results[k] = error;
        }
      };
      const dive = (n: number): void => {
        if (n > deepest) deepest = n;
        try {
          dive(n + 1);
        } catch {
          // the bottom
        }
        if (n > deepest - window) attempt(n);
      };
      for (let round = 0; round < 4 * SCALE; round++) {
        deepest = 0;
        dive(0);
      }
      const counts = new Map<string, number>();
      for (let k = 0; k < count; k++) {
        const result = results[k] as Array<{ id: number }> | DbCacheError | Error | undefined;
        if (failed[k]) {
          if (isDbCacheError(result)) {
            assert.ok(result.code === 'ENGINE' || result.code === 'ENGINE_BROKEN', result.message);
            tally(counts, result.code);
          } else {
            // The caller's own stack ran out in dbcache's JavaScript, before or after the engine.
            assert.ok(isStackOverflow(result), `unexpected ${String(result)}`);
            tally(counts, 'caller overflow');
          }
        } else if (Array.isArray(result)) {
          assert.equal(result.length, 91);
          assert.equal(result[0]!.id, 99);
          assert.equal(result[90]!.id, 9);
          tally(counts, 'ok');
        } else {
          assert.deepEqual(result, { v: 'x'.repeat(42) });
          tally(counts, 'ok');
        }
      }
      await settle();
      if (engineOf(engine).broken === undefined) {
        // Still trusted: it must answer right, also when its heap is tight.
        assert.deepEqual(deepBystander.get(CHECK_SQL), CHECK_ROW);
        assert.deepEqual(deepVictim.values('PRAGMA quick_check'), [['ok']]);
      } else {
        // Taken as damaged: every call on every cache of that engine fails at once, and says so.
        assert.ok((counts.get('ENGINE_BROKEN') ?? 0) > 0, JSON.stringify([...counts]));
        assert.throws(() => deepBystander.get(CHECK_SQL), (error) => isDbCacheError(error, 'ENGINE_BROKEN'));
        await assert.rejects(openDbCache(file, { watch: false, sqlJs: engine }), (error) => isDbCacheError(error, 'ENGINE_BROKEN'));
      }
      // SQLite's own depth limits are errors, not overflows.
      const nested = `SELECT ${'('.repeat(5000)}1${')'.repeat(5000)} AS v`;
      assert.throws(() => victim.get(nested), (error) => isDbCacheError(error, 'QUERY'));
      assert.throws(() => victim.get('SELECT json(?) AS j', ['['.repeat(5000) + ']'.repeat(5000)]), (error) => isDbCacheError(error, 'QUERY'));
    } finally {
      await deepVictim.close();
      await deepBystander.close();
    }
    await assertEngineWorks();
  });

  test('huge blobs and strings under heap pressure: an error, never NULL, never a write at address 0', async () => {
    const blob = new Uint8Array(100 * MiB).fill(7);
    const text = 'y'.repeat(100 * MiB);
    const counts = new Map<string, number>();
    const release = squeezeHeap(64 * MiB, 2);
    try {
      for (let i = 0; i < 10 * SCALE; i++) {
        const oom = ['OUT_OF_MEMORY'] as const;
        const never = (): boolean => false;
        tally(counts, outcome(() => victim.get('SELECT length(:v) AS l, typeof(:v) AS t', { v: blob }), never, oom));
        tally(counts, outcome(() => victim.get('SELECT length(:v) AS l, typeof(:v) AS t', { v: text }), never, oom));
        tally(counts, outcome(() => victim.all('SELECT id FROM t WHERE ? IS NULL', [text]), never, oom));
        tally(counts, outcome(() => victim.values('SELECT length(:s), typeof(:s)', { s: text }), never, oom));
        tally(counts, outcome(() => [...victim.iterate('SELECT length(?) AS l', [blob])], never, oom));
        tally(counts, outcome(() => victim.prepare('SELECT ? IS NULL AS n').pluck().get([blob]), never, oom));
        tally(counts, outcome(() => victim.get('SELECT ? AS a, ? AS b', ['tiny', blob]), never, oom));
        assert.deepEqual(bystander.get('SELECT v FROM t WHERE id = ?', ['5']), { v: 'xxxxx' });
      }
      assert.deepEqual([...counts.keys()], ['OUT_OF_MEMORY']);
      // A parameter that fits, in a query that then needs more than the heap has: SQLite says so.
      const third = 'z'.repeat(30 * MiB);
      for (let i = 0; i < 2; i++) {
        outcome(() => victim.get('SELECT length(:v || :v || :v) AS l', { v: third }), (row: { l: number }) => row.l === 90 * MiB, ['OUT_OF_MEMORY']);
      }
    } finally {
      release();
    }
    // With room again the same parameters bind whole.
    assert.deepEqual(victim.get('SELECT length(:v) AS l, typeof(:v) AS t, sum(:v = zeroblob(0)) AS z', { v: blob }), { l: 100 * MiB, t: 'blob', z: 0 });
    assert.deepEqual(victim.get('SELECT length(:v) AS l, typeof(:v) AS t', { v: 'y'.repeat(20 * MiB) }), { l: 20 * MiB, t: 'text' });
    // Past SQLite's 1,000,000,000-byte limit: TOO_BIG, whether bound or computed.
    assert.throws(() => victim.get('SELECT length(?) AS l', [new Uint8Array(1_000_000_001)]), (error) => isDbCacheError(error, 'TOO_BIG'));
    assert.throws(() => victim.get('SELECT zeroblob(1000000001) AS b'), (error) => isDbCacheError(error, 'TOO_BIG'));
    await assertEngineWorks();
  });

  test('huge results through every read method leave nothing pinned in the shared heap', async () => {
    const size = 12 * MiB;
    // Two 20 MiB holes: two results left in the heap would fill them, and the third query would fail.
    const release = squeezeHeap(20 * MiB, 2);
    let k = 0;
    const sql = (): string => `SELECT zeroblob(${size}) AS b, ${k++} AS k`;
    const isBig = (value: unknown): boolean => value instanceof Uint8Array && value.length === size;
    try {
      for (let i = 0; i < 3 * SCALE; i++) {
        assert.ok(isBig((victim.get(sql()) as { b: unknown }).b));
        assert.ok(isBig((victim.all(sql())[0] as { b: unknown }).b));
        assert.ok(isBig(victim.values(sql())[0]![0]));
        assert.ok(isBig(([...victim.iterate(sql())][0] as { b: unknown }).b));
        assert.ok(isBig(victim.prepare(sql()).pluck().get()));
        assert.ok(isBig((victim.prepare(sql()).raw().all()[0] as unknown as unknown[])[0]));
        assert.ok(isBig(victim.read((snapshot) => (snapshot.get(sql()) as { b: unknown }).b)));
        // An iterator stopped early frees its statement too.
        const rows = victim.iterate(`SELECT zeroblob(${size}) AS b FROM t WHERE id < 3 AND ${k++} >= 0`);
        assert.ok(isBig((rows.next().value as { b: unknown }).b));
        rows.return?.();
        assert.deepEqual(bystander.get('SELECT v FROM t WHERE id = ?', [3]), { v: 'xxx' });
      }
    } finally {
      release();
    }
    // A text result longer than a JavaScript string may be (V8: 2^29 - 24 characters) is TOO_BIG.
    const long = 600_000_000;
    outcome(() => victim.get('SELECT printf(\'%.*c\', ?, \'x\') AS s', [long]), (row: { s: string }) => row.s.length === long, ['TOO_BIG']);
    await assertEngineWorks();
  });

  test('a damaged engine fails every call loudly with ENGINE_BROKEN; other engines keep working', async () => {
    const engine = await freshSqlJs();
    const { lines, logger } = recordingLogger();
    const doomed = await openDbCache(file, { watch: false, sqlJs: engine, logger });
    const events: DbCacheEvent[] = [];
    doomed.subscribe((event) => events.push(event));
    try {
      assert.deepEqual(doomed.get(CHECK_SQL) as object, CHECK_ROW);
      // The damage sql.js 1.16 itself does when a blob's allocation fails, done with sql.js directly
      // on the module the cache runs on (dbcache hands out no raw statements): the blob is copied to address 0.
      const raw = new engine.Database().prepare('SELECT length(?)');
      const malloc = engine._malloc as (bytes: number) => number;
      for (let size = 256 * MiB; size >= MiB; size /= 2) while (malloc(size) !== 0);
      assert.throws(() => raw.bind([new Uint8Array(300 * MiB).fill(0xff)]));
      for (let i = 0; i < 5; i++) {
        assert.throws(() => doomed.get(CHECK_SQL), (error) => isDbCacheError(error, 'ENGINE_BROKEN') && error.message.includes('restart the process'));
      }
      assert.throws(() => doomed.values('SELECT 1'), (error) => isDbCacheError(error, 'ENGINE_BROKEN'));
      await assert.rejects(doomed.reload(), (error) => isDbCacheError(error));
      await assert.rejects(openDbCache(file, { watch: false, sqlJs: engine }), (error) => isDbCacheError(error, 'ENGINE_BROKEN'));
      await settle();
      const broken = events.filter((event) => event.type === 'engine');
      assert.equal(broken.length, 1);
      assert.ok(broken[0]!.type === 'engine' && broken[0]!.broken && broken[0]!.error.code === 'ENGINE_BROKEN');
      assert.equal(lines.error.length, 1);
      assert.match(lines.error[0]!, /damaged/);
    } finally {
      await doomed.close();
    }
    // The engine every other cache uses is another module instance, unharmed.
    await assertEngineWorks();
  });
});
