/**
 * What bench/query.ts (Node) and bench/query-bun.ts (Bun) both measure: the SQL, the key
 * sequences and the alternating timing loop. Runtime-neutral: no Node-only imports.
 */
import { median } from './stats.ts';

/** A point lookup by primary key: a few columns, not the ~1 KB blob. */
export const POINT_SQL = 'SELECT id, name, category, created_at FROM items WHERE id = ?';
/** A 1000-row range scan in key order. */
export const SCAN_SQL = 'SELECT id, name, category, created_at FROM items WHERE id > ? ORDER BY id LIMIT 1000';
export const SCAN_ROWS = 1000;

/** The keys every contender gets, in the same order; written to a file for the Bun process. */
export interface Workload {
  /** Rows in `items`; ids are 1..rows. */
  rows: number;
  /** Uniformly random ids over the whole table. */
  random: number[];
  /** `hotKeys` distinct random ids, cycled. */
  hot: number[];
  hotKeys: number;
  /** Start ids of the range scans (`id > start`), each with 1000 rows after it. */
  scans: number[];
  /** Ids checked for equal rows before timing (two of them do not exist). */
  verifyKeys: number[];
  /** Scan starts checked for equal rows before timing. */
  verifyScans: number[];
  rounds: number;
  warmup: number;
}

/** mulberry32: a small seeded generator, so every run and runtime sees the same keys. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeWorkload(rows: number, sizes: { lookups: number; hotKeys: number; scans: number; rounds: number; warmup: number }): Workload {
  const next = random(20261125);
  const id = () => 1 + Math.floor(next() * rows);
  const random_ = Array.from({ length: sizes.lookups }, id);
  const hotSet = Array.from({ length: sizes.hotKeys }, id);
  const hot = Array.from({ length: sizes.lookups }, (_, i) => hotSet[i % hotSet.length]!);
  const scans = Array.from({ length: sizes.scans }, () => Math.floor(next() * (rows - SCAN_ROWS)));
  const verifyKeys = [...Array.from({ length: 100 }, id), ...hotSet.slice(0, 20), 0, rows + 1000];
  const verifyScans = [0, rows - SCAN_ROWS, rows - 10, ...scans.slice(0, 5)];
  return { rows, random: random_, hot, hotKeys: sizes.hotKeys, scans, verifyKeys, verifyScans, rounds: sizes.rounds, warmup: sizes.warmup };
}

/**
 * One way of running a workload. `run` is a function literal of its own for each contender (so
 * each loop gets its own inline caches) and returns a checksum (sum of ids seen) that must match
 * every other contender's; `one` returns what a single call returns, for the equality check.
 */
export interface Contender {
  readonly id: string;
  readonly label: string;
  readonly run: (keys: readonly number[]) => number;
  readonly one: (key: number) => unknown;
}

/** Median and spread of one contender's per-operation times over the measured rounds. */
export interface Timing {
  id: string;
  label: string;
  runtime: 'node' | 'bun';
  /** Median over rounds of (round time / operations), in nanoseconds. */
  medianNs: number;
  minNs: number;
  maxNs: number;
  /** 1e9 / medianNs: lookups (or scans) per second. */
  perSecond: number;
  roundsNs: number[];
}

/** Rows as plain objects (frozen or not, any class), `null` (bun:sqlite's "no row") as `undefined`. */
export function normalise(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(normalise);
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
  return value;
}

/**
 * Runs every contender over `keys` once per round, in the same process, the order rotated each
 * round; `warmup` rounds first are not counted. Throws when checksums differ.
 */
export function measure(
  contenders: readonly Contender[],
  keys: readonly number[],
  rounds: number,
  warmup: number,
  runtime: 'node' | 'bun',
  beforeEach: () => void = () => undefined,
): Timing[] {
  const times = new Map<string, number[]>(contenders.map((c) => [c.id, []]));
  let expected: number | undefined;
  for (let round = -warmup; round < rounds; round++) {
    const shift = (((round + warmup) % contenders.length) + contenders.length) % contenders.length;
    for (const contender of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
      beforeEach();
      const started = performance.now();
      const checksum = contender.run(keys);
      const elapsed = performance.now() - started;
      expected ??= checksum;
      if (checksum !== expected) throw new Error(`${contender.label}: checksum ${checksum}, expected ${expected}`);
      if (round >= 0) times.get(contender.id)!.push((elapsed * 1e6) / keys.length);
    }
  }
  return contenders.map((c) => {
    const ns = times.get(c.id)!;
    const med = median(ns);
    return { id: c.id, label: c.label, runtime, medianNs: med, minNs: Math.min(...ns), maxNs: Math.max(...ns), perSecond: 1e9 / med, roundsNs: ns };
  });
}

/** The read methods the dbcache contenders call (a cache, or a leased snapshot for `prepare`). */
interface DbcacheReader {
  get<R>(sql: string, params?: readonly number[]): R | undefined;
  all<R>(sql: string, params?: readonly number[]): R[];
}

interface IdRow {
  id: number;
}

/** The first, last and count of a scan's rows: cheap, and it differs when the rows do. */
export function scanDigest(rows: readonly IdRow[]): number {
  return rows.length + (rows[0]?.id ?? 0) + (rows[rows.length - 1]?.id ?? 0);
}

/** A point-lookup contender: `get` for every key, summing the ids (every key must exist). */
export function pointContender(id: string, label: string, get: (key: number) => IdRow | undefined): Contender {
  return {
    id,
    label,
    run(keys) {
      let sum = 0;
      for (let i = 0; i < keys.length; i++) sum += get(keys[i]!)!.id;
      return sum;
    },
    one: get,
  };
}

/**
 * The dbcache contenders both runtimes measure: `cache.get` / `cache.all`, a prepared snapshot
 * statement, and `cache.get` on a cache opened with `memo: true`. Ids start with `prefix`.
 */
export function dbcacheContenders(
  prefix: string,
  cache: DbcacheReader,
  memo: DbcacheReader,
  snapshot: { prepare<R>(sql: string): { get(params?: readonly number[]): R | undefined; all(params?: readonly number[]): R[] } },
): { points: Record<string, Contender>; scans: Record<string, Contender> } {
  const prepared = snapshot.prepare<IdRow>(POINT_SQL);
  const preparedScan = snapshot.prepare<IdRow>(SCAN_SQL);
  const lookups = (id: string, label: string, get: (key: number) => IdRow | undefined): Contender => pointContender(`${prefix}${id}`, label, get);
  const scan = (id: string, label: string, all: (start: number) => IdRow[]): Contender => ({
    id: `${prefix}${id}`,
    label,
    run(starts) {
      let sum = 0;
      for (let i = 0; i < starts.length; i++) sum += scanDigest(all(starts[i]!));
      return sum;
    },
    one: all,
  });
  const points = [
    lookups('dbcache-get', 'dbcache `cache.get(sql, [id])`', (key) => cache.get<IdRow>(POINT_SQL, [key])),
    lookups('dbcache-prepared', 'dbcache `snapshot.prepare(sql)` → `stmt.get([id])`', (key) => prepared.get([key])),
    lookups('dbcache-memo', 'dbcache `cache.get` with `memo: true`', (key) => memo.get<IdRow>(POINT_SQL, [key])),
  ];
  const scans = [
    scan('dbcache-all', 'dbcache `cache.all(sql, [start])`', (start) => cache.all<IdRow>(SCAN_SQL, [start])),
    scan('dbcache-prepared', 'dbcache `snapshot.prepare(sql)` → `stmt.all([start])`', (start) => preparedScan.all([start])),
  ];
  return {
    points: Object.fromEntries(points.map((contender) => [contender.id, contender])),
    scans: Object.fromEntries(scans.map((contender) => [contender.id, contender])),
  };
}
