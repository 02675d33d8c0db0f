import type { SqlJsStatement } from './sqljs.ts';

/** A value SQLite hands back: integers as `number` (or `bigint` with `bigint: true`), blobs as `Uint8Array`. */
export type SqlValue = number | string | bigint | Uint8Array | null;

/**
 * A value you can bind to a parameter; booleans bind as 1 and 0, and any typed array or
 * `DataView` as a blob of exactly the bytes it covers (as in better-sqlite3).
 */
export type BindValue = SqlValue | boolean | ArrayBufferView;

/**
 * Parameters of a query: an array for positional `?` placeholders, or an object whose keys
 * (without prefix) name `:name`, `@name` or `$name` placeholders, as in better-sqlite3.
 * `undefined` binds as NULL.
 */
export type Params = readonly (BindValue | undefined)[] | Readonly<Record<string, BindValue | undefined>>;

/**
 * One argument of a statement call, in better-sqlite3's forms: a value for the next `?`, an
 * array of them, or one object of named values (`stmt.get(1, 'a')`, `stmt.get([1, 'a'])`,
 * `stmt.get({ id: 1 })`, `stmt.get({ id: 1 }, 'a')`).
 */
export type BindArgument = BindValue | undefined | readonly (BindValue | undefined)[] | Readonly<Record<string, BindValue | undefined>>;

/** A result row keyed by column name. */
export type Row = Record<string, SqlValue>;

/**
 * A prepared query against one snapshot (from `snapshot.prepare`) or against whatever
 * snapshot is live when it runs (from `cache.prepare`), with better-sqlite3's read-side
 * semantics. `R` is what `get`/`all`/`iterate` return; `O` the object row type that
 * `raw(false)` and `pluck(false)` return to.
 *
 * Errors as in better-sqlite3: `RangeError` for too few or too many parameter values, a missing
 * named parameter, or SQL holding more than one statement; `TypeError` for values SQLite cannot
 * hold and for `get`/`all`/`iterate` on a statement that returns no data; `DbCacheError` `QUERY`
 * for SQL that SQLite rejects and `READ_ONLY` for a non-reader run on a published version.
 *
 * @example
 * ```ts
 * const byId = cache.prepare<{ id: number; host: string }>('SELECT id, host FROM routes WHERE id = ?');
 * byId.get(42); // { id: 42, host: '…' } | undefined
 * const hosts = cache.prepare('SELECT host FROM routes').pluck().all(); // SqlValue[]
 * ```
 */
export interface Statement<R = Row, O = R> {
  /** The SQL text (better-sqlite3's `source`). */
  readonly source: string;
  /** The SQL text. */
  readonly sql: string;
  /** The first row, or `undefined` when there is none. */
  get(...params: BindArgument[]): R | undefined;
  /** Every row. */
  all(...params: BindArgument[]): R[];
  /** The rows one at a time; stop early with `break`. Errors in the SQL or parameters throw at the call. */
  iterate(...params: BindArgument[]): IterableIterator<R>;
  /** Every row as an array of values in column order (bun:sqlite's `values()`). */
  values(...params: BindArgument[]): SqlValue[][];
  /** From now on `get`/`all`/`iterate` return arrays of values (and `pluck` is off); `raw(false)` undoes it. */
  raw(toggle?: true): Statement<SqlValue[], O>;
  raw(toggle: false): Statement<O, O>;
  raw(toggle: boolean): Statement<O | SqlValue[], O>;
  /** From now on `get`/`all`/`iterate` return only the first column's value (and `raw` is off). */
  pluck(toggle?: true): Statement<SqlValue, O>;
  pluck(toggle: false): Statement<O, O>;
  pluck(toggle: boolean): Statement<O | SqlValue, O>;
  /** From now on integers come back as `bigint` (`false`: as numbers); the default is the cache's `bigint` option. */
  safeIntegers(toggle?: boolean): this;
  /** Binds parameters for good: later calls take no arguments (better-sqlite3's `bind`). */
  bind(...params: BindArgument[]): this;
  /** The names of the result columns (better-sqlite3 returns descriptors; sql.js cannot tell tables or types). */
  columns(): string[];
  /** Whether the statement returns rows (better-sqlite3's `reader`). */
  readonly reader: boolean;
  /** Whether the statement only reads, i.e. may run on a published version. */
  readonly readonly: boolean;
  /**
   * Runs the statement to completion. On the cache and its snapshots only statements that read
   * may run (others throw `READ_ONLY`); on the `onReload` database it writes and reports the counts.
   */
  run(...params: BindArgument[]): RunResult;
}

/** What `run` reports, as in better-sqlite3. */
export interface RunResult {
  readonly changes: number;
  readonly lastInsertRowid: number;
}

/**
 * The part of a sql.js `Database` that ORMs with a sql.js driver use (Drizzle's `drizzle-orm/sql-js`):
 * real sql.js statements on a leased snapshot, which the caller frees. dbcache cannot guard them:
 * a stack overflow or a failed allocation through them can damage the engine every cache shares
 * (which is then reported as `ENGINE_BROKEN` at the next call).
 */
export interface SqlJsCompatible {
  prepare(sql: string): SqlJsStatement;
}

/**
 * The synchronous read methods shared by the cache, a snapshot and the overlay database.
 *
 * Each takes one SQL statement (more throw `RangeError`) and its parameters as one array or
 * plain object (SQL that is not a string, or other parameters, throw `TypeError`). Each value is
 * read exactly once, before the engine runs; an error thrown by a getter or Proxy trap of the
 * caller's is rethrown as it is, and a getter that releases the lease throws `CLOSED`. SQL
 * that SQLite rejects throws `DbCacheError` `QUERY`; on a published version a statement that
 * returns no data throws `TypeError` and one that would change the version (a `PRAGMA` setter,
 * a write with `RETURNING`) throws `READ_ONLY`. Failures of the engine throw
 * `TOO_BIG`, `OUT_OF_MEMORY`, `ENGINE` or `ENGINE_BROKEN` (see the README's errors table); a
 * closed cache or snapshot throws `CLOSED`.
 *
 * @example
 * ```ts
 * cache.get('SELECT * FROM routes WHERE host = ?', [host]);
 * cache.all('SELECT * FROM routes WHERE zone = :zone', { zone });
 * ```
 */
export interface Queryable {
  /** The first row as an object keyed by column name, or `undefined`. */
  get<R = Row>(sql: string, params?: Params): R | undefined;
  /** All rows as objects. */
  all<R = Row>(sql: string, params?: Params): R[];
  /** The rows one at a time. */
  iterate<R = Row>(sql: string, params?: Params): IterableIterator<R>;
  /** All rows as arrays of values. */
  values(sql: string, params?: Params): SqlValue[][];
  /** A prepared statement; statements are cached per snapshot by SQL text. */
  prepare<R = Row>(sql: string): Statement<R>;
}

/**
 * A lease on one published version of the database: it never changes, and it stays open until
 * released even when newer versions are published.
 *
 * @example
 * ```ts
 * const snap = cache.snapshot();
 * try { snap.all('SELECT * FROM a'); snap.all('SELECT * FROM b'); }
 * finally { snap.release(); }
 * ```
 */
export interface Snapshot extends Queryable {
  /** The generation this snapshot was published as. */
  readonly generation: number;
  /** The version string of the file state it holds. */
  readonly version: string;
  /** Ends the lease (idempotent); the snapshot's memory is freed once no lease holds it. */
  release(): void;
  /**
   * This snapshot as the part of a sql.js `Database` that ORM drivers for sql.js use, valid while
   * the lease is held. Its `prepare` takes only statements that read (others throw `READ_ONLY`).
   * @example
   * ```ts
   * const orm = drizzle(snap.sqlJsDatabase() as unknown as SqlJsDatabase, { schema });
   * ```
   */
  sqlJsDatabase(): SqlJsCompatible;
  [Symbol.dispose](): void;
}

/**
 * The database handed to `onReload` before publication: the read methods plus writes, so the
 * overlay can add or change rows that every reader of this version will see.
 */
export interface OverlayDatabase extends Queryable {
  /** Runs one or more statements without parameters. */
  exec(sql: string): void;
  /** Runs one statement with parameters. */
  run(sql: string, params?: Params): RunResult;
}
