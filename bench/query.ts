/**
 * Read speed of dbcache against better-sqlite3 (and, in a Bun child process, bun:sqlite) on one
 * ~100 MiB database, and what each of dbcache's read-path levers buys:
 *
 *   - point lookups by primary key returning objects, on uniformly random keys and on 1000 hot
 *     keys cycled (where the result memo applies);
 *   - 1000-row range scans returning objects;
 *   - the levers, measured on raw sql.js next to dbcache: exclusive locking, the statement
 *     cache, cached column names, the memo, SQLite's page cache size (`onReload` pragma).
 *
 * Every contender runs in this process on the same key sequence, alternating (order rotated each
 * round), after warm-up rounds; medians over rounds. Rows are checked equal before timing, and
 * every timed pass must return the same checksum.
 *
 * Run: npm run bench:query (prints markdown, writes bench/results/query.md and query.json).
 * BENCH_QUICK=1: few rounds (a smoke test). BENCH_BUN=0 skips the Bun process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import initSqlJs, { type Database as SqlJsDatabase, type Statement as SqlJsStatement } from 'sql.js';
import { openDbCache, type DbCache } from '../src/index.ts';
import { BetterSqlite3, type BetterDatabase, type BetterStatement } from './support/better-sqlite3.ts';
import { createDatabase } from './support/database.ts';
import { environment, machine, projectRoot, saveJson, saveReport, tempDir } from './support/env.ts';
import { dbcacheContenders, makeWorkload, measure, normalise, pointContender, scanDigest, POINT_SQL, SCAN_ROWS, SCAN_SQL, type Contender, type Timing, type Workload } from './support/query-workload.ts';
import { collect, gcAvailable, table } from './support/stats.ts';

const MiB = 2 ** 20;
const quick = process.env.BENCH_QUICK === '1';
const SIZES = quick
  ? { lookups: 5000, hotKeys: 1000, scans: 10, rounds: 3, warmup: 1 }
  : { lookups: 25_000, hotKeys: 1000, scans: 40, rounds: 11, warmup: 2 };
/** The memo's default size (`memo: true`). */
const MEMO_ENTRIES = 10_000;
/**
 * PRAGMA cache_size levels tried on both engines (KiB): SQLite's own default, and more than the
 * whole database. dbcache's default is better-sqlite3's, 16000 KiB.
 */
const CACHE_SIZES_KIB = [2000, 131_072];
/** dbcache's `cacheSize` default (checked against the cache's own PRAGMA before timing). */
const DBCACHE_DEFAULT_CACHE_KIB = 16_000;

interface Row {
  id: number;
}

/** How a cache size shows in contender ids: 2000 KiB as 2, 131072 KiB as 128 (MiB). */
function sizeTag(kib: number): number {
  return kib < 4096 ? Math.round(kib / 1000) : kib >> 10;
}

type WorkloadName = 'random' | 'hot' | 'scan';

/** What the Bun process reports (bench/query-bun.ts). */
export interface BunResults {
  bun: string;
  sqlite: string;
  timings: Record<WorkloadName, Timing[]>;
  /** Normalised rows of `verifyKeys` / `verifyScans`, checked against better-sqlite3 here. */
  rows: { points: unknown[]; scans: unknown[] };
  seconds: number;
}

/** better-sqlite3 `stmt.get(id)` over the keys, rows as objects. */
function betterPoint(id: string, label: string, stmt: BetterStatement): Contender {
  return pointContender(id, label, (key) => stmt.get(key) as Row | undefined);
}

/** sql.js statement loops; the same calls dbcache makes, or the plain sql.js way. */
function sqlJsPoint(id: string, label: string, stmt: SqlJsStatement): Contender {
  return {
    id,
    label,
    run(keys) {
      let sum = 0;
      for (let i = 0; i < keys.length; i++) {
        stmt.bind([keys[i]!]);
        if (stmt.step()) sum += (stmt.getAsObject() as unknown as Row).id;
      }
      return sum;
    },
    one(key) {
      stmt.bind([key]);
      return stmt.step() ? stmt.getAsObject() : undefined;
    },
  };
}

/**
 * Opens `bytes` in sql.js with dbcache's default page cache (so the levers compare like with like),
 * optionally with the exclusive locking dbcache sets on its snapshots.
 */
function openSqlJs(SQL: { Database: new (data?: Uint8Array) => SqlJsDatabase }, bytes: Buffer, exclusive: boolean): SqlJsDatabase {
  const db = new SQL.Database(bytes);
  db.exec(`PRAGMA cache_size=-${DBCACHE_DEFAULT_CACHE_KIB}`);
  if (exclusive) db.exec('PRAGMA locking_mode=EXCLUSIVE');
  db.exec('SELECT count(*) FROM sqlite_schema');
  return db;
}

/** Share of lookups that miss a FIFO memo of `entries` (as ResultMemo evicts) in steady state, `keys` cycled. */
function memoMissRate(keys: readonly number[], entries: number): number {
  const fifo = new Set<number>();
  const order: number[] = [];
  let head = 0;
  let misses = 0;
  for (let pass = 0; pass < 3; pass++) {
    for (const key of keys) {
      if (fifo.has(key)) continue;
      if (pass === 2) misses++;
      if (fifo.size >= entries) fifo.delete(order[head++]!);
      fifo.add(key);
      order.push(key);
    }
  }
  return misses / keys.length;
}

function pragma(cache: DbCache, name: string): unknown {
  return (cache.values(`PRAGMA ${name}`)[0] ?? [])[0];
}

/** Runs bench/query-bun.ts under node_modules/.bin/bun on the same file and keys. */
function runBun(file: string, workloadFile: string): BunResults | string {
  const bun = path.join(projectRoot, 'node_modules', '.bin', process.platform === 'win32' ? 'bun.exe' : 'bun');
  if (process.env.BENCH_BUN === '0') return 'skipped (BENCH_BUN=0)';
  if (!fs.existsSync(bun)) return `skipped (${bun} not installed)`;
  const output = execFileSync(bun, [path.join(projectRoot, 'bench', 'query-bun.ts'), file, workloadFile], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * MiB,
    cwd: projectRoot,
  });
  const lines = output.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as BunResults;
}

interface NodeResults {
  timings: Record<WorkloadName, Timing[]>;
  points: unknown[];
  scans: unknown[];
  cacheSizes: Record<string, unknown>;
  sqlJsSqlite: string;
}

async function runNode(file: string, workload: Workload): Promise<NodeResults> {
  const image = () => fs.readFileSync(file);
  const betterFile: BetterDatabase = new BetterSqlite3(file, { readonly: true });
  const betterMemory: BetterDatabase = new BetterSqlite3(image());
  // The same page-cache sizes on in-memory better-sqlite3: both engines copy a page into their
  // cache on a miss, so this separates the engine from the cache size.
  const betterSized = new Map<number, BetterDatabase>();
  for (const kib of CACHE_SIZES_KIB) {
    const db = new BetterSqlite3(image());
    db.pragma(`cache_size=-${kib}`);
    betterSized.set(kib, db);
  }
  const cache = await openDbCache(file, { watch: false });
  const memo = await openDbCache(file, { watch: false, memo: true });
  const sized = new Map<number, DbCache>();
  for (const kib of CACHE_SIZES_KIB) {
    sized.set(kib, await openDbCache(file, { watch: false, cacheSize: kib }));
  }
  const SQL = await initSqlJs();
  const shared = openSqlJs(SQL, image(), false);
  const exclusive = openSqlJs(SQL, image(), true);
  const snapshot = cache.snapshot();
  try {
    const cacheSizes: Record<string, unknown> = { default: pragma(cache, 'cache_size'), betterDefault: betterMemory.pragma('cache_size', { simple: true }) };
    if (cacheSizes.default !== -DBCACHE_DEFAULT_CACHE_KIB) throw new Error(`dbcache's default cache_size is ${String(cacheSizes.default)}, wanted -${DBCACHE_DEFAULT_CACHE_KIB}`);
    for (const [kib, c] of sized) {
      cacheSizes[`${kib}`] = pragma(c, 'cache_size');
      if (cacheSizes[`${kib}`] !== -kib) throw new Error(`cache_size is ${String(cacheSizes[`${kib}`])}, wanted -${kib}`);
      const better = betterSized.get(kib)!.pragma('cache_size', { simple: true });
      if (better !== -kib) throw new Error(`better-sqlite3 cache_size is ${String(better)}, wanted -${kib}`);
    }
    const sqlJsSqlite = String(exclusive.exec('SELECT sqlite_version()')[0]?.values[0]?.[0]);

    const betterFileGet = betterFile.prepare(POINT_SQL);
    const betterMemoryGet = betterMemory.prepare(POINT_SQL);
    const sharedGet = shared.prepare(POINT_SQL);
    const exclusiveGet = exclusive.prepare(POINT_SQL);
    const exclusiveRows = exclusive.prepare(POINT_SQL);
    const columns = exclusiveRows.getColumnNames();
    const sized128 = sized.get(131_072)!;

    const ours = dbcacheContenders('', cache, memo, snapshot);
    const points: Record<string, Contender> = {
      ...ours.points,
      'better-file': betterPoint('better-file', 'better-sqlite3 `stmt.get(id)`, file (readonly)', betterFileGet),
      'better-memory': betterPoint('better-memory', 'better-sqlite3 `stmt.get(id)`, in memory (`new Database(buffer)`)', betterMemoryGet),
      ...Object.fromEntries(
        [...betterSized].map(([kib, db]) => {
          const id = `better-memory-cache${sizeTag(kib)}`;
          return [id, betterPoint(id, `better-sqlite3 \`stmt.get(id)\`, in memory, \`PRAGMA cache_size=-${kib}\``, db.prepare(POINT_SQL))];
        }),
      ),
      'sqljs-shared': sqlJsPoint('sqljs-shared', 'raw sql.js, reused statement, default locking (`getAsObject`)', sharedGet),
      'sqljs-exclusive': sqlJsPoint('sqljs-exclusive', 'raw sql.js, reused statement, `locking_mode=EXCLUSIVE` (`getAsObject`)', exclusiveGet),
      'sqljs-prepare-each': {
        id: 'sqljs-prepare-each',
        label: 'raw sql.js, exclusive, `prepare` + `free` per call (no statement cache)',
        run(keys) {
          let sum = 0;
          for (let i = 0; i < keys.length; i++) {
            const stmt = exclusive.prepare(POINT_SQL);
            stmt.bind([keys[i]!]);
            if (stmt.step()) sum += (stmt.getAsObject() as unknown as Row).id;
            stmt.free();
          }
          return sum;
        },
        one(key) {
          const stmt = exclusive.prepare(POINT_SQL);
          try {
            stmt.bind([key]);
            return stmt.step() ? stmt.getAsObject() : undefined;
          } finally {
            stmt.free();
          }
        },
      },
      'sqljs-columns': {
        id: 'sqljs-columns',
        label: 'raw sql.js, exclusive, reused, `get()` + cached column names (sql.js\'s fastest public path)',
        run(keys) {
          let sum = 0;
          for (let i = 0; i < keys.length; i++) {
            exclusiveRows.bind([keys[i]!]);
            if (exclusiveRows.step()) {
              const values = exclusiveRows.get();
              const row: Record<string, unknown> = {};
              for (let c = 0; c < columns.length; c++) row[columns[c]!] = values[c];
              sum += (row as unknown as Row).id;
            }
          }
          return sum;
        },
        one(key) {
          exclusiveRows.bind([key]);
          if (!exclusiveRows.step()) return undefined;
          const values = exclusiveRows.get();
          return Object.fromEntries(columns.map((name, c) => [name, values[c]]));
        },
      },
      ...Object.fromEntries(
        [...sized].map(([kib, c]) => {
          const id = `dbcache-cache${sizeTag(kib)}`;
          const label = `dbcache \`cache.get\`, \`cacheSize: ${kib}\`${kib === 2000 ? " (SQLite's default, 2 MiB)" : ` (${kib >> 10} MiB)`}`;
          return [id, pointContender(id, label, (key) => c.get<Row>(POINT_SQL, [key]))];
        }),
      ),
    };

    const betterFileScan = betterFile.prepare(SCAN_SQL);
    const betterMemoryScan = betterMemory.prepare(SCAN_SQL);
    const exclusiveScan = exclusive.prepare(SCAN_SQL);
    const sharedScan = shared.prepare(SCAN_SQL);
    const scanColumns = exclusiveScan.getColumnNames();
    /** A checksum of one scan: row count, first and last id. */
    const sqlJsScan = (stmt: SqlJsStatement, start: number): Row[] => {
      stmt.bind([start]);
      const rows: Row[] = [];
      while (stmt.step()) {
        const values = stmt.get();
        const row: Record<string, unknown> = {};
        for (let c = 0; c < scanColumns.length; c++) row[scanColumns[c]!] = values[c];
        rows.push(row as unknown as Row);
      }
      return rows;
    };
    const scans: Record<string, Contender> = {
      ...ours.scans,
      'dbcache-values': {
        id: 'dbcache-values',
        label: 'dbcache `cache.values(sql, [start])` (arrays, not objects)',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) {
            const rows = cache.values(SCAN_SQL, [starts[i]!]);
            sum += rows.length + ((rows[0]?.[0] as number | undefined) ?? 0) + ((rows[rows.length - 1]?.[0] as number | undefined) ?? 0);
          }
          return sum;
        },
        one: (start) => cache.values(SCAN_SQL, [start]).map((values) => Object.fromEntries(scanColumns.map((name, c) => [name, values[c]]))),
      },
      'better-file': {
        id: 'better-file',
        label: 'better-sqlite3 `stmt.all(start)`, file (readonly)',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(betterFileScan.all(starts[i]) as Row[]);
          return sum;
        },
        one: (start) => betterFileScan.all(start),
      },
      'better-memory': {
        id: 'better-memory',
        label: 'better-sqlite3 `stmt.all(start)`, in memory',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(betterMemoryScan.all(starts[i]) as Row[]);
          return sum;
        },
        one: (start) => betterMemoryScan.all(start),
      },
      'sqljs-shared': {
        id: 'sqljs-shared',
        label: 'raw sql.js, default locking, `get()` + cached column names',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(sqlJsScan(sharedScan, starts[i]!));
          return sum;
        },
        one: (start) => sqlJsScan(sharedScan, start),
      },
      'sqljs-columns': {
        id: 'sqljs-columns',
        label: 'raw sql.js, exclusive, `get()` + cached column names',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(sqlJsScan(exclusiveScan, starts[i]!));
          return sum;
        },
        one: (start) => sqlJsScan(exclusiveScan, start),
      },
      'dbcache-cache128': {
        id: 'dbcache-cache128',
        label: 'dbcache `cache.all`, `cacheSize: 131072` (128 MiB)',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(sized128.all<Row>(SCAN_SQL, [starts[i]!]));
          return sum;
        },
        one: (start) => sized128.all(SCAN_SQL, [start]),
      },
    };

    // Equal rows from every contender before anything is timed (better-sqlite3 on the file is the reference).
    const reference = points['better-file']!;
    const referencePoints = workload.verifyKeys.map((key) => normalise(reference.one(key)));
    for (const contender of Object.values(points)) {
      workload.verifyKeys.forEach((key, i) => assert.deepStrictEqual(normalise(contender.one(key)), referencePoints[i], `${contender.label}, id ${key}`));
    }
    const referenceScans = workload.verifyScans.map((start) => normalise(scans['better-file']!.one(start)));
    for (const contender of Object.values(scans)) {
      workload.verifyScans.forEach((start, i) => assert.deepStrictEqual(normalise(contender.one(start)), referenceScans[i], `${contender.label}, id > ${start}`));
    }
    console.error(`rows checked: ${workload.verifyKeys.length} keys × ${Object.keys(points).length} point contenders, ${workload.verifyScans.length} scans × ${Object.keys(scans).length}`);

    const pick = (from: Record<string, Contender>, ids: string[]) => ids.map((id) => from[id]!);
    const { rounds, warmup } = workload;
    let t = performance.now();
    const random = measure(Object.values(points), workload.random, rounds, warmup, 'node', collect);
    console.error(`random lookups: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const hot = measure(
      pick(points, ['dbcache-get', 'dbcache-prepared', 'dbcache-memo', 'better-file', 'better-memory', 'sqljs-shared', 'sqljs-exclusive', 'sqljs-columns', 'dbcache-cache2', 'dbcache-cache128', 'better-memory-cache2', 'better-memory-cache128']),
      workload.hot,
      rounds,
      warmup,
      'node',
      collect,
    );
    console.error(`hot lookups: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const scan = measure(Object.values(scans), workload.scans, rounds, warmup, 'node', collect);
    console.error(`scans: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return { timings: { random, hot, scan }, points: referencePoints, scans: referenceScans, cacheSizes, sqlJsSqlite };
  } finally {
    snapshot.release();
    for (const c of [cache, memo, ...sized.values()]) await c.close();
    shared.close();
    exclusive.close();
    betterFile.close();
    betterMemory.close();
    for (const db of betterSized.values()) db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Ratio {
  what: string;
  /** contender ops/s ÷ baseline ops/s (> 1: the contender is faster). */
  value: number;
  budget?: number;
}

function find(timings: readonly Timing[], id: string, runtime: 'node' | 'bun' = 'node'): Timing | undefined {
  return timings.find((t) => t.id === id && t.runtime === runtime);
}

/** How many times faster `a` is than `b` (ratio of operations per second). */
function speedup(timings: readonly Timing[], a: string, b: string, runtime: 'node' | 'bun' = 'node'): number {
  const x = find(timings, a, runtime);
  const y = find(timings, b, runtime);
  return x === undefined || y === undefined ? Number.NaN : y.medianNs / x.medianNs;
}

function fmtRatio(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function fmtNs(ns: number): string {
  if (ns >= 100_000) return `${(ns / 1e6).toFixed(3)} ms`;
  if (ns >= 1000) return `${(ns / 1000).toFixed(2)} µs`;
  return `${ns.toFixed(0)} ns`;
}

function fmtRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(0)} k`;
  return perSecond.toFixed(0);
}

function timingTable(timings: readonly Timing[], unit: string, perRow?: number): string {
  const baseline = (id: string, runtime: 'node' | 'bun') => find(timings, id, runtime);
  return table(
    ['contender', 'runtime', `median per ${unit}`, 'min – max over rounds', `${unit}s / s`, 'vs better-sqlite3 file', 'vs better-sqlite3 in-memory', 'vs bun:sqlite file', 'vs bun:sqlite in-memory'],
    timings.map((t) => {
      const vs = (id: string, runtime: 'node' | 'bun') => {
        const b = baseline(id, runtime);
        return b === undefined ? '' : fmtRatio(b.medianNs / t.medianNs);
      };
      return [
        t.label,
        t.runtime === 'bun' ? 'Bun' : 'Node',
        fmtNs(t.medianNs),
        `${fmtNs(t.minNs)} – ${fmtNs(t.maxNs)}`,
        perRow === undefined ? fmtRate(t.perSecond) : `${fmtRate(t.perSecond)} (${fmtRate(t.perSecond * perRow)} rows/s)`,
        t.runtime === 'node' ? vs('better-file', 'node') : '',
        t.runtime === 'node' ? vs('better-memory', 'node') : '',
        t.runtime === 'bun' ? vs('bun-sqlite-file', 'bun') : '',
        t.runtime === 'bun' ? vs('bun-sqlite-memory', 'bun') : '',
      ];
    }),
  );
}

interface Report {
  markdown: string;
  budgets: { name: string; against: string; ratio: number; budget: number; met: boolean }[];
  levers: Ratio[];
}

function report(node: NodeResults, bun: BunResults | string, workload: Workload, fileBytes: number): Report {
  const all = (name: WorkloadName) => [...node.timings[name], ...(typeof bun === 'string' ? [] : bun.timings[name])];
  const random = all('random');
  const hot = all('hot');
  const scan = all('scan');
  const out: string[] = [];
  out.push('# dbcache query benchmark', '', environment());
  out.push(
    typeof bun === 'string'
      ? `- Bun: ${bun}`
      : `- Bun ${bun.bun} (bun:sqlite on SQLite ${bun.sqlite}), a child process on the same file and keys (${bun.seconds.toFixed(0)} s)`,
    `- sql.js's SQLite: ${node.sqlJsSqlite}; gc() before each timed pass: ${gcAvailable() ? 'yes (--expose-gc)' : 'no'}${quick ? '; BENCH_QUICK=1 (few rounds, numbers are rough)' : ''}`,
    `- Database: ${(fileBytes / MiB).toFixed(1)} MiB, ${workload.rows} rows of \`items(id INTEGER PRIMARY KEY, name TEXT, category TEXT, created_at INTEGER, payload BLOB ~1 KB)\` (bench/support/database.ts), rollback journal; the blob is not selected`,
    `- ${workload.warmup} warm-up + ${workload.rounds} measured rounds; each round runs every contender once over the same keys, the order rotated; medians over rounds`,
    '',
  );

  out.push('## Point lookups, uniformly random keys', '');
  out.push(
    `\`${POINT_SQL}\` with ${workload.random.length} random ids per round (the same sequence for every contender), rows returned as objects. ` +
      'Ratios are operations per second of the contender ÷ the baseline: above 1 is faster than the baseline. ' +
      `The memo contender cycles ${workload.random.length} keys through its ${MEMO_ENTRIES} entries: ${(memoMissRate(workload.random, MEMO_ENTRIES) * 100).toFixed(0)}% of its lookups miss (what a miss costs).`,
    '',
    timingTable(random, 'lookup'),
    '',
  );
  out.push(`## Point lookups, ${workload.hotKeys} hot keys cycled`, '');
  out.push(
    `The same statement on ${workload.hotKeys} distinct random ids repeated for ${workload.hot.length} lookups per round: what the result memo is for ` +
      '(every lookup after the first warm-up pass is a memo hit).',
    '',
    timingTable(hot, 'lookup'),
    '',
  );
  out.push(`## Range scans of ${SCAN_ROWS} rows`, '');
  out.push(`\`${SCAN_SQL}\`, ${workload.scans.length} random start ids per round, rows as objects.`, '', timingTable(scan, 'scan', SCAN_ROWS), '');

  const budgets: Report['budgets'] = [];
  const budget = (name: string, timings: Timing[], a: string, b: string, against: string, limit: number) => {
    const value = speedup(timings, a, b);
    budgets.push({ name, against, ratio: value, budget: limit, met: value >= limit });
  };
  for (const [against, id] of [['better-sqlite3 file (readonly)', 'better-file'], ['better-sqlite3 in-memory', 'better-memory']] as const) {
    budget('point lookup, random keys: `cache.get`', random, 'dbcache-get', id, against, 1);
    budget('point lookup, random keys: prepared snapshot statement', random, 'dbcache-prepared', id, against, 1);
    budget('point lookup, hot keys: `cache.get` (no memo)', hot, 'dbcache-get', id, against, 1);
    budget('1000-row scan: `cache.all`', scan, 'dbcache-all', id, against, 1);
    budget('1000-row scan: prepared snapshot statement', scan, 'dbcache-prepared', id, against, 1);
    budget('memo, repeated lookups (hot keys)', hot, 'dbcache-memo', id, against, 5);
  }
  out.push('## Budgets', '');
  out.push(
    'Ratio = dbcache operations per second ÷ better-sqlite3 operations per second (`stmt.get` / `stmt.all`, objects), each against both better-sqlite3 variants.',
    '',
    table(
      ['budget', 'against', 'ratio', 'needed', ''],
      budgets.map((b) => [b.name, b.against, fmtRatio(b.ratio), `≥ ${b.budget}×`, b.met ? 'met' : '**NOT met**']),
    ),
    '',
  );

  const levers: Ratio[] = [
    { what: 'exclusive locking, random lookups (raw sql.js: exclusive ÷ default locking)', value: speedup(random, 'sqljs-exclusive', 'sqljs-shared') },
    { what: 'exclusive locking, hot lookups', value: speedup(hot, 'sqljs-exclusive', 'sqljs-shared') },
    { what: 'exclusive locking, 1000-row scans', value: speedup(scan, 'sqljs-columns', 'sqljs-shared') },
    { what: 'statement cache, random lookups (raw sql.js exclusive: reused ÷ prepare + free per call)', value: speedup(random, 'sqljs-exclusive', 'sqljs-prepare-each') },
    { what: 'cached column names, random lookups (raw sql.js exclusive: `get()` + names ÷ `getAsObject`)', value: speedup(random, 'sqljs-columns', 'sqljs-exclusive') },
    { what: 'cached column names, hot lookups', value: speedup(hot, 'sqljs-columns', 'sqljs-exclusive') },
    { what: 'memo, hot keys (`cache.get` with memo ÷ without)', value: speedup(hot, 'dbcache-memo', 'dbcache-get') },
    {
      what: `memo, random keys (${workload.random.length} keys a round through ${MEMO_ENTRIES} memo entries: ${(memoMissRate(workload.random, MEMO_ENTRIES) * 100).toFixed(0)}% misses; with ÷ without, < 1 is a cost)`,
      value: speedup(random, 'dbcache-memo', 'dbcache-get'),
    },
    { what: "cacheSize 2000 KiB (SQLite's default), random lookups (÷ dbcache's default 16000 KiB)", value: speedup(random, 'dbcache-cache2', 'dbcache-get') },
    { what: 'cacheSize 2000 KiB, hot lookups', value: speedup(hot, 'dbcache-cache2', 'dbcache-get') },
    { what: 'cacheSize 128 MiB, random lookups', value: speedup(random, 'dbcache-cache128', 'dbcache-get') },
    { what: 'cacheSize 128 MiB, hot lookups', value: speedup(hot, 'dbcache-cache128', 'dbcache-get') },
    { what: 'cacheSize 128 MiB, 1000-row scans', value: speedup(scan, 'dbcache-cache128', 'dbcache-all') },
    { what: "in-memory better-sqlite3, cache_size 2000 KiB, random lookups (÷ its default 16000 KiB)", value: speedup(random, 'better-memory-cache2', 'better-memory') },
    { what: 'in-memory better-sqlite3, cache_size 2000 KiB, hot lookups', value: speedup(hot, 'better-memory-cache2', 'better-memory') },
    { what: 'in-memory better-sqlite3, cache_size 128 MiB, random lookups', value: speedup(random, 'better-memory-cache128', 'better-memory') },
    { what: 'at an equal page cache of 2000 KiB, random lookups (dbcache `cache.get` ÷ in-memory better-sqlite3)', value: speedup(random, 'dbcache-cache2', 'better-memory-cache2') },
    { what: 'at an equal page cache of 2000 KiB, hot lookups', value: speedup(hot, 'dbcache-cache2', 'better-memory-cache2') },
    { what: 'at an equal page cache of 128 MiB (the whole database), random lookups', value: speedup(random, 'dbcache-cache128', 'better-memory-cache128') },
    { what: 'at an equal page cache of 128 MiB, hot lookups', value: speedup(hot, 'dbcache-cache128', 'better-memory-cache128') },
    { what: 'arrays instead of objects, 1000-row scans (`cache.values` ÷ `cache.all`)', value: speedup(scan, 'dbcache-values', 'dbcache-all') },
    { what: "dbcache's own layer, random lookups (prepared snapshot statement ÷ raw sql.js doing the same calls; < 1 is its cost)", value: speedup(random, 'dbcache-prepared', 'sqljs-columns') },
    { what: "dbcache's own layer, hot lookups", value: speedup(hot, 'dbcache-prepared', 'sqljs-columns') },
    { what: "dbcache's own layer, 1000-row scans (`stmt.all` ÷ raw sql.js)", value: speedup(scan, 'dbcache-prepared', 'sqljs-columns') },
    { what: '`cache.get` ÷ prepared snapshot statement, random lookups', value: speedup(random, 'dbcache-get', 'dbcache-prepared') },
  ];
  if (typeof bun !== 'string') {
    levers.push(
      { what: 'Bun: dbcache `cache.get` ÷ bun:sqlite file `db.query(sql).get(id)`, random lookups', value: speedup(random, 'bun-dbcache-get', 'bun-sqlite-file', 'bun') },
      { what: 'Bun: dbcache `cache.get` ÷ bun:sqlite in-memory, random lookups', value: speedup(random, 'bun-dbcache-get', 'bun-sqlite-memory', 'bun') },
      { what: 'Bun: dbcache memo ÷ bun:sqlite in-memory, hot lookups', value: speedup(hot, 'bun-dbcache-memo', 'bun-sqlite-memory', 'bun') },
      { what: 'Bun: dbcache `cache.all` ÷ bun:sqlite in-memory, scans', value: speedup(scan, 'bun-dbcache-all', 'bun-sqlite-memory', 'bun') },
      { what: 'dbcache `cache.get` under Bun ÷ under Node, random lookups', value: (find(random, 'dbcache-get')?.medianNs ?? Number.NaN) / (find(random, 'bun-dbcache-get', 'bun')?.medianNs ?? Number.NaN) },
    );
  }
  out.push('## Levers (ratios of medians; > 1: the lever makes it faster)', '');
  out.push(table(['lever', 'speed-up'], levers.map((l) => [l.what, fmtRatio(l.value)])), '');
  out.push(
    `PRAGMA cache_size read back: dbcache's default ${String(node.cacheSizes.default)}, better-sqlite3's default ${String(node.cacheSizes.betterDefault)}, ` +
      CACHE_SIZES_KIB.map((kib) => `${String(node.cacheSizes[`${kib}`])}`).join(', ') +
      ' (negative: KiB). A page cache costs up to its size in memory per connection (WebAssembly heap for dbcache) on top of the image.',
    '',
  );
  return { markdown: out.join('\n'), budgets, levers };
}

async function main(): Promise<void> {
  if (!gcAvailable()) console.error('note: run with --expose-gc (npm run bench:query does) so gc() runs before each timed pass');
  const started = performance.now();
  const { dir, cleanup } = tempDir('dbcache-bench-query-');
  try {
    const file = path.join(dir, 'query-100mib.db');
    const fileBytes = createDatabase(file, 100 * MiB, 'delete');
    const counter = new BetterSqlite3(file, { readonly: true });
    const rows = (counter.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n;
    const maxId = (counter.prepare('SELECT max(id) AS n FROM items').get() as { n: number }).n;
    counter.close();
    if (maxId !== rows) throw new Error(`ids are not 1..${rows} (max ${maxId})`);
    const workload = makeWorkload(rows, SIZES);
    const workloadFile = path.join(dir, 'workload.json');
    fs.writeFileSync(workloadFile, JSON.stringify(workload));
    console.error(`database: ${(fileBytes / MiB).toFixed(1)} MiB, ${rows} rows (${((performance.now() - started) / 1000).toFixed(1)} s)`);

    const node = await runNode(file, workload);
    collect();
    const bun = runBun(file, workloadFile);
    if (typeof bun !== 'string') {
      // The Bun process ran the same keys: its rows must equal better-sqlite3's.
      assert.deepStrictEqual(bun.rows.points, JSON.parse(JSON.stringify(node.points)), 'bun:sqlite / dbcache under Bun: point rows differ from better-sqlite3');
      assert.deepStrictEqual(bun.rows.scans, JSON.parse(JSON.stringify(node.scans)), 'bun:sqlite / dbcache under Bun: scan rows differ from better-sqlite3');
    } else {
      console.error(`bun: ${bun}`);
    }

    const { markdown, budgets, levers } = report(node, bun, workload, fileBytes);
    console.log(markdown);
    const saved = saveReport('query', markdown);
    const json = saveJson('query', {
      benchmark: 'query',
      quick,
      machine: machine(),
      sqlJsSqlite: node.sqlJsSqlite,
      bun: typeof bun === 'string' ? { skipped: bun } : { version: bun.bun, sqlite: bun.sqlite },
      database: { bytes: fileBytes, rows, pointSql: POINT_SQL, scanSql: SCAN_SQL, scanRows: SCAN_ROWS },
      config: { ...SIZES, cacheSizesKiB: CACHE_SIZES_KIB, gc: gcAvailable() },
      cacheSizes: node.cacheSizes,
      memo: { entries: MEMO_ENTRIES, missRate: { random: memoMissRate(workload.random, MEMO_ENTRIES), hot: memoMissRate(workload.hot, MEMO_ENTRIES) } },
      unit: 'ns per operation (a lookup, or a whole scan)',
      workloads: {
        random: [...node.timings.random, ...(typeof bun === 'string' ? [] : bun.timings.random)],
        hot: [...node.timings.hot, ...(typeof bun === 'string' ? [] : bun.timings.hot)],
        scan: [...node.timings.scan, ...(typeof bun === 'string' ? [] : bun.timings.scan)],
      },
      budgets,
      levers,
    });
    console.error(`wrote ${path.relative(process.cwd(), saved)} and ${path.relative(process.cwd(), json)}; total ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    cleanup();
  }
}

await main();
