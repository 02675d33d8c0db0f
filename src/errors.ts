/**
 * What went wrong, as a stable string you can switch on.
 *
 * | code | when |
 * |---|---|
 * | `NOT_FOUND` | the database file does not exist |
 * | `NOT_A_FILE` | the path names a directory or something else that is not a regular file |
 * | `PERMISSION` | the file cannot be opened for reading |
 * | `NOT_A_DATABASE` | the bytes are not an SQLite database (bad header, page size, truncated image) |
 * | `CORRUPT` | the image parsed but SQLite rejected it when probing |
 * | `BUSY` | a writer kept the file changing (or a journal hot) past the retry budget |
 * | `REPLICA` | a replica is written in a way that cannot be read consistently, or its files do not belong together (the `replica` option: a `-wal` older than the database file, Litestream's follow mode, LiteFS files that are not this database's) |
 * | `IO` | any other file-system error |
 * | `ENGINE_UNAVAILABLE` | sql.js could not be loaded: a bundle without `require` (esbuild's ESM output needs a `createRequire` banner), or its files not found from where dbcache runs |
 * | `OVERLAY_FAILED` | the `onReload` hook threw, returned with an iterator unfinished or a transaction open, or left a database SQLite's probe rejects |
 * | `SOURCE_FAILED` | a source function threw or returned something that is not an image |
 * | `QUERY` | SQLite rejected a query (syntax, missing table) |
 * | `READ_ONLY` | a statement that writes, changes a setting, attaches or opens a transaction was sent to a published version; or `onReload` sent one that would reach beyond its version (`ATTACH`, `VACUUM INTO`, a `PRAGMA` that changes the shared engine or how the version is stored) |
 * | `CLOSED` | the cache or the snapshot was used after `close()` / `release()` |
 * | `TOO_BIG` | a parameter or a result exceeds SQLite's 1,000,000,000-byte limit, or a result is too big for a JavaScript string or array |
 * | `OUT_OF_MEMORY` | the sql.js heap (at most 2 GiB, shared by every cache in the process) or JavaScript had no room for the query |
 * | `ENGINE` | the query overflowed the stack or trapped inside sql.js; the statement was discarded, the engine checked, and every cache keeps serving |
 * | `ENGINE_BROKEN` | the shared sql.js engine failed its health check after such a fault: every call on every cache fails with this code until the process restarts |
 */
export type DbCacheErrorCode =
  | 'NOT_FOUND'
  | 'NOT_A_FILE'
  | 'PERMISSION'
  | 'NOT_A_DATABASE'
  | 'CORRUPT'
  | 'BUSY'
  | 'REPLICA'
  | 'IO'
  | 'ENGINE_UNAVAILABLE'
  | 'OVERLAY_FAILED'
  | 'SOURCE_FAILED'
  | 'QUERY'
  | 'READ_ONLY'
  | 'CLOSED'
  | 'TOO_BIG'
  | 'OUT_OF_MEMORY'
  | 'ENGINE'
  | 'ENGINE_BROKEN';

/**
 * The one error class dbcache throws for failures of the database, the file or the cache's state.
 *
 * Misused options throw `TypeError` / `RangeError` instead.
 *
 * @example
 * ```ts
 * try { await cache.reload(); }
 * catch (error) { if (isDbCacheError(error) && error.code === 'BUSY') retryLater(); }
 * ```
 */
export class DbCacheError extends Error {
  /** A stable code for the kind of failure. */
  declare readonly code: DbCacheErrorCode;
  /** The database path (or source name) the failure is about. */
  declare readonly path: string;

  constructor(code: DbCacheErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: toError(options.cause) });
    // Read-only for real: one error reaches every listener and the caller of reload() (and an
    // engine event every cache), so none of them may change what the others are told.
    Object.defineProperties(this, {
      name: { value: 'DbCacheError', enumerable: true },
      code: { value: code, enumerable: true },
      path: { value: path, enumerable: true },
    });
  }
}

/**
 * Whether `value` is a {@link DbCacheError}, also one thrown by a second copy of the package.
 *
 * @example
 * ```ts
 * if (isDbCacheError(error, 'CLOSED')) return;
 * ```
 */
export function isDbCacheError(value: unknown, code?: DbCacheErrorCode): value is DbCacheError {
  if (!(value instanceof Error) || value.name !== 'DbCacheError') return false;
  const actual = (value as { code?: unknown }).code;
  return typeof actual === 'string' && (code === undefined || actual === code);
}

/**
 * sql.js throws strings; everything we keep as a `cause` is an Error. Never throws, whatever
 * `value` is (a revoked proxy, say): what cannot be examined is described instead.
 */
export function toError(value: unknown): Error {
  try {
    if (value instanceof Error) return value;
  } catch {
    // A proxy whose prototype cannot be read: not an Error we can hand on.
  }
  return new Error(describe(value));
}

/**
 * The message of anything thrown, for one-line reports. Never throws: a value whose message or
 * string form cannot be read (a proxy that throws, an object whose `toString` throws) is named by
 * its type instead.
 */
export function describe(value: unknown): string {
  try {
    if (typeof value === 'string') return value;
    if (value instanceof Error) {
      const message: unknown = value.message;
      return typeof message === 'string' ? message : String(message);
    }
    return String(value);
  } catch {
    return `(a thrown ${typeof value} that cannot be shown)`;
  }
}

/**
 * A failure inside the pipeline before it knows how the story ends: the cache turns it into a
 * DbCacheError whose message says what happens next ("still serving generation 7").
 */
export class PipelineFailure extends Error {
  readonly code: DbCacheErrorCode;

  constructor(code: DbCacheErrorCode, reason: string, options?: { cause?: unknown }) {
    super(reason, options?.cause === undefined ? undefined : { cause: toError(options.cause) });
    this.name = 'PipelineFailure';
    this.code = code;
  }
}

/** What `new` on one of dbcache's classes throws: they are made only by dbcache itself. */
export function illegalConstructor(): TypeError {
  return new TypeError('Illegal constructor: dbcache makes these objects itself (openDbCache(), cache.snapshot(), cache.prepare(), sqlJsDatabase())');
}

/**
 * What a caller's value is, for messages ("a string", "null", "an ArrayBuffer"). Never throws, and
 * reads no property of the value (`instanceof` may run a proxy's trap: guarded).
 */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'bigint':
      return 'a bigint';
    case 'boolean':
      return 'a boolean';
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      break;
  }
  try {
    if (Array.isArray(value)) return 'an array';
    if (value instanceof ArrayBuffer) return 'an ArrayBuffer';
    if (ArrayBuffer.isView(value)) return 'a typed array or DataView other than Uint8Array';
  } catch {
    // A proxy whose traps throw: just an object.
  }
  return 'an object';
}
