import { guardLogger, type Logger } from './logger.ts';
import type { SqlJsChoice } from './sqljs.ts';
import type { OverlayDatabase } from './types.ts';

/** What `onReload` learns about the version it is preparing. */
export interface ReloadInfo {
  /** The generation this version will be published as. */
  readonly generation: number;
  /** The version string of the file state it holds. */
  readonly version: string;
}

/**
 * A database image from the application's own writer connection, e.g.
 * `() => db.serialize()` (better-sqlite3, bun:sqlite) or `() => db.export()` (sql.js). The bytes the
 * array really holds are copied (its own `length` or `subarray` are never asked), so the source may
 * reuse the array; a proxy of a Uint8Array, or a view of a detached buffer, is `SOURCE_FAILED`.
 */
export type DatabaseSource = () => Uint8Array | Promise<Uint8Array>;

/**
 * Options of {@link openDbCache}.
 *
 * @example
 * ```ts
 * const cache = await openDbCache('app.db', {
 *   onReload: (db) => db.exec('CREATE INDEX IF NOT EXISTS routes_host ON routes(host)'),
 *   signal: AbortSignal.timeout(60_000),
 * });
 * ```
 */
export interface DbCacheOptions {
  /**
   * Watch the database, its `-wal` and `-journal` and reload on every commit. Ignored for a
   * source function.
   * @defaultValue `true`
   */
  watch?: boolean;
  /**
   * Keep the process alive while the cache watches, as chokidar's `persistent` does: a script
   * whose only work is to follow the database then runs until `close()` (or `signal`). By default
   * an open cache never keeps a process alive by itself.
   * @defaultValue `false`
   */
  persistent?: boolean;
  /**
   * Delay from a file event to the reload it starts, in milliseconds; events in that time share
   * the reload. Events that arrive while a reload runs start one more, `debounceMs` after the
   * last of them (but see `maxWaitMs`).
   * @defaultValue `5`
   */
  debounceMs?: number;
  /**
   * Longest wait from the first event that arrived during a reload to the reload that follows,
   * in milliseconds, however long the events go on.
   * @defaultValue `25`
   */
  maxWaitMs?: number;
  /**
   * Poll with `stat` instead of file-system events (network file systems, some containers);
   * a number sets the interval in milliseconds (`true` = 100).
   * @defaultValue `false`
   */
  poll?: boolean | number;
  /**
   * Runs on every new version before it is published, while no reader can see it: create
   * indexes, views, derived tables. May be async. Before it returns it must finish every iterator
   * it opened and end every transaction; the database it leaves is probed again. If it throws or
   * leaves something open, the reload fails with `OVERLAY_FAILED`, the version is discarded and
   * the previous one keeps serving. `db` throws `CLOSED` once the hook has returned. `reload()`
   * of the same cache from inside the hook rejects with a `TypeError`; `close()` does not wait
   * for a hook still running.
   */
  onReload?: (db: OverlayDatabase, info: ReloadInfo) => void | Promise<void>;
  /**
   * Where dbcache logs (warnings once per failure streak, recovery, forgotten leases, tables
   * whose virtual-table module the sql.js build lacks): any object with `debug`, `info`, `warn`
   * and `error`, such as a tslog `Logger`, pino or `console`. The methods are read once, here (a
   * `TypeError` if one is missing or cannot be read); whatever they throw is ignored.
   * @defaultValue a logger that drops everything (nothing is printed, nothing read from the environment)
   */
  logger?: Logger;
  /** Closes the cache when aborted. */
  signal?: AbortSignal;
  /**
   * Which sql.js to run: `'wasm'` loads `sql-wasm.wasm` from the sql.js package; `'inline'` uses
   * the build that carries its WebAssembly inside the JavaScript (bundlers, Deno without read
   * access to `node_modules`); or pass a module you initialised yourself (`await initSqlJs()`),
   * or a promise of one.
   * @defaultValue `'wasm'`
   */
  sqlJs?: SqlJsChoice;
  /**
   * Return every INTEGER as a `bigint` (exact 64-bit values).
   * @defaultValue `false`
   */
  bigint?: boolean;
  /**
   * How long a reload keeps retrying while writers keep the file changing or a journal hot,
   * in milliseconds, before it fails with `BUSY`.
   * @defaultValue `5000`
   */
  busyTimeoutMs?: number;
  /**
   * Run `PRAGMA quick_check` on every new version before publishing it (costs a full scan).
   * @defaultValue `false`
   */
  quickCheck?: boolean;
  /**
   * Prepared statements cached per snapshot (least recently prepared evicted first).
   * @defaultValue `256`
   */
  maxStatements?: number;
  /**
   * SQLite's page cache per snapshot, in KiB (`PRAGMA cache_size=-N`). Pages that miss it are
   * copied from the image into WebAssembly memory on every read (about 1 µs per page); a cache as
   * large as the hot part of the database makes repeated lookups faster, at the cost of up to that
   * much WebAssembly memory per live snapshot (never more than the database), which never shrinks
   * once grown. The default is better-sqlite3's (SQLite's own is 2000 KiB).
   * @defaultValue `16000` (KiB)
   */
  cacheSize?: number;
  /**
   * Remember the results of identical queries (same call, SQL and parameters) per snapshot: a
   * snapshot never changes, so a repeated lookup costs a map access. Results are then frozen.
   * Queries using `random()`, the clock (`'now'`, `CURRENT_TIMESTAMP`, `date()`) or change
   * counters are never remembered. `true` keeps up to 10,000 results per snapshot; a number sets
   * the limit.
   * @defaultValue `false`
   */
  memo?: boolean | number;
}

/** Options with defaults applied and every value checked. */
export interface ResolvedOptions {
  readonly watch: boolean;
  readonly persistent: boolean;
  readonly debounceMs: number;
  readonly maxWaitMs: number;
  readonly pollMs: number | undefined;
  readonly onReload: DbCacheOptions['onReload'];
  /** The caller's logger behind {@link guardLogger}: its methods read once, its failures ignored. */
  readonly logger: Logger | undefined;
  readonly signal: AbortSignal | undefined;
  readonly sqlJs: DbCacheOptions['sqlJs'];
  readonly bigint: boolean;
  readonly busyTimeoutMs: number;
  readonly quickCheck: boolean;
  readonly maxStatements: number;
  /** 0 when off. */
  readonly memoEntries: number;
  readonly cacheSize: number;
}

function boolean(options: DbCacheOptions, name: keyof DbCacheOptions, fallback: boolean): boolean {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`options.${name} must be a boolean, got ${typeof value}`);
  return value;
}

function number(options: DbCacheOptions, name: keyof DbCacheOptions, fallback: number, min = 0): number {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`options.${name} must be a number, got ${typeof value === 'number' ? 'NaN' : typeof value}`);
  }
  if (value < min || !Number.isFinite(value)) {
    throw new RangeError(`options.${name} must be a finite number >= ${min}, got ${value}`);
  }
  return value;
}

/** better-sqlite3 builds SQLite with this page cache (SQLITE_DEFAULT_CACHE_SIZE=-16000); SQLite's own default is 2000. */
const DEFAULT_CACHE_KIB = 16_000;

function integer(options: DbCacheOptions, name: keyof DbCacheOptions, fallback: number): number {
  const value = number(options, name, fallback, 1);
  if (!Number.isInteger(value)) throw new RangeError(`options.${name} must be an integer, got ${value}`);
  return value;
}

// Typed as a record of every option, so an option added to DbCacheOptions must be added here too.
const OPTION_NAMES: Record<keyof DbCacheOptions, true> = {
  watch: true,
  persistent: true,
  debounceMs: true,
  maxWaitMs: true,
  poll: true,
  onReload: true,
  logger: true,
  signal: true,
  sqlJs: true,
  bigint: true,
  busyTimeoutMs: true,
  quickCheck: true,
  maxStatements: true,
  cacheSize: true,
  memo: true,
};

/** A misspelled option would otherwise be ignored in plain JavaScript: name the closest real one. */
function checkKeys(options: object): void {
  const known = Object.keys(OPTION_NAMES);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(OPTION_NAMES, key)) continue;
    let closest = known[0]!;
    let best = Infinity;
    for (const name of known) {
      const distance = editDistance(key.toLowerCase(), name.toLowerCase());
      if (distance < best) [closest, best] = [name, distance];
    }
    const hint = best <= Math.max(2, Math.floor(key.length / 3)) ? `did you mean ${closest}?` : `the options are ${known.join(', ')}`;
    throw new TypeError(`options.${key} is not an option of openDbCache(); ${hint}`);
  }
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const above = rows[i - 1]!;
      row[j] = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}

/** Every known option of `options` read exactly once, into a plain object of our own. */
function readOnce(options: DbCacheOptions): DbCacheOptions {
  const values: Record<string, unknown> = {};
  for (const name of Object.keys(OPTION_NAMES)) {
    const value: unknown = options[name as keyof DbCacheOptions];
    if (value !== undefined) values[name] = value;
  }
  return values as DbCacheOptions;
}

/** Applies defaults and validates; throws TypeError / RangeError naming the option and the value. */
export function resolveOptions(options: DbCacheOptions | undefined): ResolvedOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  checkKeys(options);
  // Each option read once (a getter may answer differently the second time), inherited ones too.
  options = readOnce(options);
  const { onReload, logger, signal, sqlJs, poll } = options;
  if (onReload !== undefined && typeof onReload !== 'function') {
    throw new TypeError(`options.onReload must be a function, got ${typeof onReload}`);
  }
  // Read once, here: the cache only ever calls this guarded copy.
  const safeLogger = logger === undefined ? undefined : guardLogger(logger);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError('options.signal must be an AbortSignal');
  }
  if (sqlJs !== undefined && sqlJs !== 'wasm' && sqlJs !== 'inline' && (typeof sqlJs !== 'object' || sqlJs === null)) {
    throw new TypeError(`options.sqlJs must be 'wasm', 'inline', an initialised sql.js module or a promise of one, got ${String(sqlJs)}`);
  }
  let pollMs: number | undefined;
  if (poll === true) pollMs = 100;
  else if (typeof poll === 'number') pollMs = number(options, 'poll', 100, 1);
  else if (poll !== undefined && poll !== false) throw new TypeError(`options.poll must be a boolean or a number, got ${typeof poll}`);
  const maxStatements = integer(options, 'maxStatements', 256);
  const { memo } = options;
  let memoEntries = 0;
  if (memo === true) memoEntries = 10_000;
  else if (typeof memo === 'number') memoEntries = integer(options, 'memo', 0);
  else if (memo !== undefined && memo !== false) throw new TypeError(`options.memo must be a boolean or a number, got ${typeof memo}`);
  return {
    watch: boolean(options, 'watch', true),
    persistent: boolean(options, 'persistent', false),
    debounceMs: number(options, 'debounceMs', 5),
    maxWaitMs: number(options, 'maxWaitMs', 25),
    pollMs,
    onReload,
    logger: safeLogger,
    signal,
    sqlJs,
    bigint: boolean(options, 'bigint', false),
    busyTimeoutMs: number(options, 'busyTimeoutMs', 5000),
    quickCheck: boolean(options, 'quickCheck', false),
    maxStatements,
    memoEntries,
    cacheSize: integer(options, 'cacheSize', DEFAULT_CACHE_KIB),
  };
}
