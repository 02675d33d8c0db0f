import { guardLogger, type Logger } from './logger.ts';
import type { SqlJsChoice } from './sqljs.ts';
import type { BindValue, OverlayDatabase, SqlValue } from './types.ts';

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
 * What keeps the database file up to date when it is a replica (see the README's "Scaling out"):
 *
 * - `'sqlite'`: SQLite itself writes it (your application, rqlite, a libSQL embedded replica,
 *   `sqlite3_rsync`, or a database renamed into place): the lock-free protocol of plain files.
 * - `'litestream'`: as `'sqlite'`, for a database that `litestream restore` writes to a new file
 *   and renames into place; also refuses (`REPLICA`) a `-wal` left from the file it replaced, and
 *   `litestream restore -f` (follow mode), which no lock-free reader can read consistently.
 * - `{ kind: 'litefs', dataDir, url? }`: a database on a LiteFS mount, each read proved against
 *   LiteFS's position (`-pos`) and checksum; see {@link LiteFsReplica}.
 *
 * @example
 * ```ts
 * await openDbCache('/litefs/app.db', { replica: { kind: 'litefs', dataDir: '/var/lib/litefs', url: 'http://localhost:20202' } });
 * ```
 */
export type ReplicaOption = 'sqlite' | 'litestream' | { readonly kind: 'sqlite' | 'litestream' } | LiteFsReplica;

/**
 * A database on a LiteFS mount (the path is the file on the mount, e.g. `/litefs/app.db`).
 *
 * @example
 * ```ts
 * const replica: LiteFsReplica = { kind: 'litefs', dataDir: '/var/lib/litefs', url: 'http://localhost:20202' };
 * ```
 */
export interface LiteFsReplica {
  readonly kind: 'litefs';
  /**
   * LiteFS's `data.dir` (from `litefs.yml`), where LiteFS keeps `dbs/<name>/ltx/`: a transaction
   * file there newer than `-pos` means LiteFS is writing pages, and the cache waits. Required.
   */
  readonly dataDir: string;
  /**
   * LiteFS's HTTP API (`http.addr` in `litefs.yml`), e.g. `'http://localhost:20202'`. With it the
   * cache follows `GET /events` and reloads on each transaction (a FUSE replica raises no file
   * events), polls `-pos` only as a safety net (every second, or at the `poll` interval when `poll`
   * is set), and reads `GET /export` when the mount stays busy past `busyTimeoutMs`.
   * @defaultValue none: the cache polls `-pos` every `poll` milliseconds (100 without `poll`)
   */
  readonly url?: string | URL;
  /**
   * The database's name in LiteFS.
   * @defaultValue the file name of the path
   */
  readonly name?: string;
}

/**
 * Options of {@link openDbCache}.
 *
 * @example
 * ```ts
 * const shutdown = new AbortController(); // abort it when the application stops
 * const cache = await openDbCache('app.db', {
 *   onReload: (db) => db.exec('CREATE INDEX IF NOT EXISTS routes_host ON routes(host)'),
 *   signal: shutdown.signal,
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
  /**
   * Closes the cache when aborted: pass the signal of an `AbortController` that your shutdown
   * aborts. (`AbortSignal.timeout(ms)` would close the cache after `ms`, however busy it is.)
   */
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
   * Remember the results of identical queries (same call, SQL and bound values) per snapshot: a
   * snapshot never changes, so a repeated lookup costs a map access. Results are then frozen.
   * Only SQL proven deterministic from its tokens is remembered: every function it calls is a
   * deterministic SQLite built-in, date and time functions take only literals that name no clock
   * (`date('2024-01-01')` yes; `date('now')`, `date()`, `date(?)` no), no `CURRENT_*` keyword, no
   * view that calls anything else, no PRAGMA or EXPLAIN. `random()`, `changes()`, functions of the
   * application and anything unknown are never remembered. Values are keyed by what binds
   * (`-0` apart from `0`, `5n` from `5`, `true` from `1`). `true` keeps up to 10,000 results per
   * snapshot; a number sets the limit.
   * @defaultValue `false`
   * @example
   * ```ts
   * const cache = await openDbCache('data/app.db', { memo: true });
   * cache.get('SELECT * FROM routes WHERE host = ?', [host]); // SQLite runs
   * cache.get('SELECT * FROM routes WHERE host = ?', [host]); // the same frozen row, from the memo
   * ```
   */
  memo?: boolean | number;
  /**
   * How the file is written when it is a replica kept by a replication engine, which decides how
   * it is read and what tells the cache a new version exists: see {@link ReplicaOption}. Ignored
   * for a source function.
   * @defaultValue `'sqlite'`
   */
  replica?: ReplicaOption;
  /**
   * SQL functions written in JavaScript, registered on every version before `onReload` runs (so
   * the overlay and every reader can call them), as better-sqlite3's `db.function(name, fn)`
   * registers them on its connection. A function takes as many arguments as its `length` (or any
   * number with `varargs: true`), gets integers as numbers, text as strings, blobs as
   * `Uint8Array` and NULL as `null`, and returns a number (REAL), string (at most 1 MiB of UTF-8),
   * bigint (within ±2^53, as REAL), boolean (1/0), `Uint8Array`, `null` or `undefined` (NULL).
   * What it throws, or returning anything else, fails the query with `QUERY` (`cause`: the
   * error); it may not query dbcache (that throws a `TypeError` inside it). The result memo
   * never remembers SQL that names a function unless it is declared `deterministic`.
   * @defaultValue none
   * @example
   * ```ts
   * functions: { slug: (text: string) => text.toLowerCase().replace(/\W+/g, '-'),
   *              score: { fn: (a: number, b: number) => a * 2 + b, deterministic: true } }
   * ```
   */
  functions?: Readonly<Record<string, UserFunction | UserFunctionDefinition>>;
  /**
   * Aggregate functions written in JavaScript (better-sqlite3's `db.aggregate(name, options)`),
   * registered like `functions`: `start` (a value, or a function returning one per group; default
   * `null`), `step(total, ...args)` returning the new total (`undefined` keeps it), `result(total)`
   * (default: the total). Window functions (`inverse`) are not supported: sql.js cannot register
   * them.
   * @defaultValue none
   * @example
   * ```ts
   * aggregates: { product: { start: 1, step: (total: number, value: number) => total * value } }
   * ```
   */
  aggregates?: Readonly<Record<string, UserAggregate>>;
}

/**
 * A SQL function written in JavaScript: called with the SQL arguments (each a {@link SqlValue}:
 * integers as numbers), returns the result.
 */
// The arguments are typed loosely, as better-sqlite3 types them: a function declares what it expects.
export type UserFunction = (...args: any[]) => BindValue | undefined;

/** A {@link UserFunction} with better-sqlite3's options. */
export interface UserFunctionDefinition {
  readonly fn: UserFunction;
  /** The function returns the same result for the same arguments: the result memo may remember SQL that calls it. @defaultValue `false` */
  readonly deterministic?: boolean;
  /** Any number of arguments, instead of `fn.length`. @defaultValue `false` */
  readonly varargs?: boolean;
}

/** An aggregate function written in JavaScript, with better-sqlite3's options. */
export interface UserAggregate<T = any> {
  /** The total each group starts from, or a function returning it (called once per group). @defaultValue `null` */
  readonly start?: T | (() => T);
  /** Folds one row's arguments (each a {@link SqlValue}) into the total and returns the new total; `undefined` keeps the total. */
  readonly step: (total: T, ...args: any[]) => T | undefined | void;
  /** The aggregate's value from the final total. @defaultValue the total itself */
  readonly result?: (total: T) => BindValue | undefined;
  /** As for {@link UserFunctionDefinition}. @defaultValue `false` */
  readonly deterministic?: boolean;
  /** Any number of arguments, instead of `step.length - 1`. @defaultValue `false` */
  readonly varargs?: boolean;
}

/** A user function or aggregate, read once and checked. */
export interface FunctionDefinition {
  readonly name: string;
  /** How many arguments SQLite passes (-1: any number). */
  readonly args: number;
  readonly deterministic: boolean;
  readonly scalar: Function | undefined;
  readonly aggregate: { readonly start: unknown; readonly startIsFunction: boolean; readonly step: Function; readonly result: Function | undefined } | undefined;
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
  readonly replica: ResolvedReplica;
  readonly functions: readonly FunctionDefinition[];
}

/** The `replica` option, checked. */
export type ResolvedReplica =
  | { readonly kind: 'sqlite' | 'litestream' }
  | { readonly kind: 'litefs'; readonly dataDir: string; readonly url: URL | undefined; readonly name: string | undefined };

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
  replica: true,
  functions: true,
  aggregates: true,
};

/** A misspelled option would otherwise be ignored in plain JavaScript: name the closest real one. */
function checkKeys(options: object): void {
  const known = Object.keys(OPTION_NAMES);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(OPTION_NAMES, key)) continue;
    const closest = closestName(key, known);
    const hint = closest !== undefined ? `did you mean ${closest}?` : `the options are ${known.join(', ')}`;
    throw new TypeError(`options.${key} is not an option of openDbCache(); ${hint}`);
  }
}

/** The name in `known` nearest to `key`, if it is near enough to be a misspelling of it. */
function closestName(key: string, known: readonly string[]): string | undefined {
  let closest: string | undefined;
  let best = Infinity;
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance < best) [closest, best] = [name, distance];
  }
  return best <= Math.max(2, Math.floor(key.length / 3)) ? closest : undefined;
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
    replica: resolveReplica(options.replica),
    functions: userFunctions(options.functions, options.aggregates),
  };
}

const REPLICA_KINDS = ['sqlite', 'litestream', 'litefs'] as const;
const LITEFS_KEYS = ['kind', 'dataDir', 'url', 'name'];

/** Checks the `replica` option, reading each field once. */
function resolveReplica(replica: unknown): ResolvedReplica {
  if (replica === undefined) return { kind: 'sqlite' };
  const expected = `'sqlite', 'litestream' or { kind: 'litefs', dataDir }`;
  if (typeof replica === 'string') {
    if (replica === 'sqlite' || replica === 'litestream') return { kind: replica };
    if (replica === 'litefs') {
      throw new TypeError(`options.replica 'litefs' needs LiteFS's data directory: pass { kind: 'litefs', dataDir: '/var/lib/litefs' } (data.dir in litefs.yml)`);
    }
    const closest = closestName(replica, REPLICA_KINDS);
    throw new TypeError(`options.replica must be ${expected}, got '${replica}'${closest === undefined ? '' : `; did you mean '${closest}'?`}`);
  }
  if (typeof replica !== 'object' || replica === null || Array.isArray(replica)) {
    throw new TypeError(`options.replica must be ${expected}, got ${replica === null ? 'null' : Array.isArray(replica) ? 'an array' : typeof replica}`);
  }
  const fields = replica as Record<string, unknown>;
  const kind = fields.kind;
  if (kind === 'sqlite' || kind === 'litestream') {
    for (const key of Object.keys(fields)) {
      if (key !== 'kind') throw new TypeError(`options.replica.${key} is not an option of replica kind '${kind}'; it takes only kind`);
    }
    return { kind };
  }
  if (kind !== 'litefs') {
    const closest = typeof kind === 'string' ? closestName(kind, REPLICA_KINDS) : undefined;
    throw new TypeError(
      `options.replica.kind must be 'sqlite', 'litestream' or 'litefs', got ${typeof kind === 'string' ? `'${kind}'` : String(kind)}${closest === undefined ? '' : `; did you mean '${closest}'?`}`,
    );
  }
  for (const key of Object.keys(fields)) {
    if (LITEFS_KEYS.includes(key)) continue;
    const closest = closestName(key, LITEFS_KEYS);
    throw new TypeError(`options.replica.${key} is not an option of replica kind 'litefs'; ${closest === undefined ? `the options are ${LITEFS_KEYS.join(', ')}` : `did you mean ${closest}?`}`);
  }
  const { dataDir, url, name } = fields;
  if (typeof dataDir !== 'string') throw new TypeError(`options.replica.dataDir must be LiteFS's data directory (data.dir in litefs.yml) as a string, got ${dataDir === null ? 'null' : typeof dataDir}`);
  if (dataDir === '') throw new RangeError("options.replica.dataDir must not be empty (LiteFS's data.dir, e.g. '/var/lib/litefs')");
  let parsed: URL | undefined;
  if (url !== undefined) {
    if (typeof url !== 'string' && !(url instanceof URL)) throw new TypeError(`options.replica.url must be a string or a URL, got ${url === null ? 'null' : typeof url}`);
    const text = String(url);
    try {
      parsed = new URL(text);
    } catch {
      throw new TypeError(`options.replica.url must be an absolute http: or https: URL such as 'http://localhost:20202', got '${text}'`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new RangeError(`options.replica.url must be an http: or https: URL, got '${text}'`);
    }
  }
  if (name !== undefined) {
    if (typeof name !== 'string') throw new TypeError(`options.replica.name must be a string, got ${name === null ? 'null' : typeof name}`);
    if (name === '' || name.includes('/') || name.includes('\\') || name === '.' || name === '..') {
      throw new RangeError(`options.replica.name must be a database's file name on the mount, got '${name}'`);
    }
  }
  return { kind: 'litefs', dataDir, url: parsed, name };
}

/** better-sqlite3's limit; SQLite's own in sql.js is 1000. */
const MAX_FUNCTION_ARGS = 100;

/** Reads a definition object's fields once each, refusing fields it does not know. */
function fields(value: object, where: string, known: readonly string[]): Map<string, unknown> {
  const read = new Map<string, unknown>();
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new TypeError(`${where}.${key} is not an option of a user function here; the options are ${known.join(', ')}`);
    read.set(key, (value as Record<string, unknown>)[key]);
  }
  return read;
}

function flag(read: Map<string, unknown>, where: string, key: string): boolean {
  const value = read.get(key);
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${where}.${key} must be a boolean, got ${typeof value}`);
  return value;
}

function argumentCount(fn: Function, where: string, minus: number): number {
  const length: unknown = fn.length;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) throw new TypeError(`${where}: expected the function's length to be a whole number, got ${String(length)}`);
  const count = Math.max(0, length - minus);
  if (count > MAX_FUNCTION_ARGS) throw new RangeError(`${where}: user functions cannot have more than ${MAX_FUNCTION_ARGS} arguments, got ${count}`);
  return count;
}

function definitionsOf(value: unknown, option: 'functions' | 'aggregates'): Array<[string, unknown]> {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`options.${option} must be an object mapping SQL function names to ${option === 'functions' ? 'functions' : 'aggregate definitions'}, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return Object.keys(value).map((name) => [name, (value as Record<string, unknown>)[name]]);
}

/** The user functions and aggregates, each read once and checked (as better-sqlite3 checks them). */
function userFunctions(functions: unknown, aggregates: unknown): FunctionDefinition[] {
  const definitions: FunctionDefinition[] = [];
  const seen = new Map<string, string>();
  const named = (name: string, where: string): void => {
    if (name === '' || name.includes('\0')) throw new TypeError(`${where}: a SQL function name must be non-empty and hold no NUL character`);
    if (new TextEncoder().encode(name).length > 255) throw new RangeError(`${where}: SQLite takes function names of at most 255 bytes`);
    const key = name.toLowerCase();
    const other = seen.get(key);
    if (other !== undefined) throw new TypeError(`${where} and ${other} name the same SQL function (SQLite ignores case)`);
    seen.set(key, where);
  };
  for (const [name, value] of definitionsOf(functions, 'functions')) {
    const where = `options.functions.${name}`;
    named(name, where);
    let fn = value;
    let deterministic = false;
    let varargs = false;
    if (typeof value !== 'function') {
      if (typeof value !== 'object' || value === null) throw new TypeError(`${where} must be a function or { fn, deterministic?, varargs? }, got ${value === null ? 'null' : typeof value}`);
      const read = fields(value, where, ['fn', 'deterministic', 'varargs']);
      fn = read.get('fn');
      if (typeof fn !== 'function') throw new TypeError(`${where}.fn must be a function, got ${typeof fn}`);
      deterministic = flag(read, where, 'deterministic');
      varargs = flag(read, where, 'varargs');
    }
    const scalar = fn as Function;
    definitions.push({ name, args: varargs ? -1 : argumentCount(scalar, where, 0), deterministic, scalar, aggregate: undefined });
  }
  for (const [name, value] of definitionsOf(aggregates, 'aggregates')) {
    const where = `options.aggregates.${name}`;
    named(name, where);
    if (typeof value !== 'object' || value === null) throw new TypeError(`${where} must be { start?, step, result?, deterministic?, varargs? }, got ${value === null ? 'null' : typeof value}`);
    const read = fields(value, where, ['start', 'step', 'result', 'inverse', 'deterministic', 'varargs']);
    if (read.get('inverse') !== undefined) throw new TypeError(`${where}.inverse: window functions are not supported (sql.js cannot register them)`);
    const step = read.get('step');
    if (typeof step !== 'function') throw new TypeError(`${where}.step must be a function, got ${typeof step}`);
    const result = read.get('result');
    if (result !== undefined && typeof result !== 'function') throw new TypeError(`${where}.result must be a function, got ${typeof result}`);
    const start = read.has('start') ? read.get('start') : null;
    const varargs = flag(read, where, 'varargs');
    definitions.push({
      name,
      args: varargs ? -1 : argumentCount(step, `${where}.step`, 1),
      deterministic: flag(read, where, 'deterministic'),
      scalar: undefined,
      aggregate: { start, startIsFunction: typeof start === 'function', step, result: result as Function | undefined },
    });
  }
  return definitions;
}
