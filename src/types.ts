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
  /**
   * The names of the result columns (better-sqlite3 returns descriptors; sql.js cannot tell tables
   * or types). Throws `TypeError` for a statement that returns no data, and `READ_ONLY` on a
   * published version for a PRAGMA setter (compiling it would apply it).
   */
  columns(): string[];
  /** Whether the statement returns rows (better-sqlite3's `reader`). */
  readonly reader: boolean;
  /** Whether the statement only reads, i.e. may run on a published version. */
  readonly readonly: boolean;
  /** The cache, snapshot or `onReload` database it was prepared on (better-sqlite3's `stmt.database`). */
  readonly database: Queryable;
  /** Whether an iterator of this statement is still open (better-sqlite3's `stmt.busy`); dbcache still runs other calls meanwhile. */
  readonly busy: boolean;
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

/** A value as sql.js's statements return it: integers as numbers (beyond 2^53 they lose precision, as in sql.js), blobs as `Uint8Array`. */
export type SqlJsValue = number | string | Uint8Array | null;

/**
 * Parameters of an ORM handle's statement: an array for positional `?`, or an object whose keys
 * (without prefix) name `:name`, `@name` or `$name` placeholders, as for {@link Params}; `null` or
 * nothing for none. Values are checked when bound (`TypeError`/`RangeError`, as for `Params`).
 */
export type SqlJsParams = readonly unknown[] | Readonly<Record<string, unknown>> | null;

/**
 * What `sqlJsDatabase()` hands to ORM drivers: the part of a sql.js `Database` that Drizzle ORM's
 * sql.js driver (`drizzle-orm/sql-js`) and Kysely's `SqliteDialect` call, over dbcache's own read
 * path. Every statement is admitted by the same check as `cache.prepare` (one statement that
 * reads; anything else throws `READ_ONLY`), its parameters are bound and its rows read by
 * dbcache, and no sql.js object is reachable from it.
 *
 * Only `prepare` and `close` work. The other methods of sql.js's `Database` are present so that
 * the handle type-checks where sql.js's typings (`@types/sql.js`) are installed, and throw
 * `TypeError`: they would reach the sql.js database that the cache and every reader share.
 *
 * From `cache.sqlJsDatabase()` each run of a statement reads the version live when it starts (an
 * ORM built once follows every reload); from `snapshot.sqlJsDatabase()` every statement reads
 * that snapshot. Throws `CLOSED` once the cache is closed, the snapshot released or the handle
 * closed, also from statements prepared before.
 *
 * @example
 * ```ts
 * import { drizzle } from 'drizzle-orm/sql-js';
 * const orm = drizzle(cache.sqlJsDatabase());
 * ```
 */
export interface SqlJsCompatible {
  /**
   * A statement for `sql`, with `params` bound if given. Throws `READ_ONLY` unless `sql` is one
   * statement that reads, `RangeError` for several, `QUERY` for SQL that SQLite rejects, `CLOSED`
   * after close or release.
   */
  prepare(sql: string, params?: SqlJsParams): SqlJsCompatibleStatement;
  /**
   * Closes this handle only (Kysely's `destroy()` calls it): its statements throw `CLOSED` from
   * now on; the cache, or the snapshot's lease, stays open.
   */
  close(): void;
  /** Not offered: throws `TypeError` (would run SQL on the shared sql.js database). */
  exec(...args: unknown[]): never;
  /** Not offered: throws `TypeError`; use `prepare(sql).run(params)`. */
  run(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  each(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  iterateStatements(...args: unknown[]): never;
  /** Not offered: throws `TypeError` (a function would change what every reader of the version computes). */
  create_function(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  create_aggregate(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  updateHook(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  export(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  getRowsModified(...args: unknown[]): never;
  /** Not offered: throws `TypeError`. */
  handleError(...args: unknown[]): never;
}

/**
 * A statement of a {@link SqlJsCompatible} handle: sql.js's cursor (`bind`, `step`, `get`,
 * `getAsObject`, `reset`, `free`), which returns integers as numbers as sql.js does, and
 * better-sqlite3's `reader`, `all`, `iterate` and `run`, which return rows as the cache does
 * (`bigint` option included). A run holds a lease on its version from its first `step()` until
 * `step()` returns `false`, or `reset`, `bind` or `free` is called.
 *
 * @example
 * ```ts
 * const statement = cache.sqlJsDatabase().prepare('SELECT id, host FROM routes WHERE zone = ?');
 * statement.bind([zone]);
 * while (statement.step()) console.log(statement.getAsObject()); // { id: 1, host: '…' }
 * statement.free();
 * ```
 */
export interface SqlJsCompatibleStatement {
  /** Whether the statement returns rows. */
  readonly reader: boolean;
  /** Binds `params` for the next run (and ends the current one); always `true`. */
  bind(params?: SqlJsParams): boolean;
  /** Moves to the next row: `false` when there is none (the next call runs the statement again). */
  step(): boolean;
  /** The current row's values (`[]` when there is none); with `params`, binds them and steps first. */
  get(params?: SqlJsParams): SqlJsValue[];
  /** The current row keyed by column name (`{}` when there is none, where sql.js maps each column to `undefined`); with `params`, binds them and steps first. */
  getAsObject(params?: SqlJsParams): Record<string, SqlJsValue>;
  /** The result column names. */
  getColumnNames(): string[];
  /** The SQL text. */
  getSQL(): string;
  /** Not offered: throws `TypeError`. */
  getNormalizedSQL(): never;
  /** Runs the statement to completion with `params` (or what `bind` bound) and reports the counts. */
  run(params?: SqlJsParams): RunResult;
  /** Every row, as objects keyed by column name. */
  all(params?: SqlJsParams): Row[];
  /** The rows one at a time. */
  iterate(params?: SqlJsParams): IterableIterator<Row>;
  /** Ends the current run and forgets the bound parameters; always `true`. */
  reset(): boolean;
  /** Does nothing: dbcache keeps no copies of bound values between calls. */
  freemem(): void;
  /** Ends the statement: later calls throw `CLOSED`. Returns `true`. */
  free(): boolean;
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
  /**
   * Runs `PRAGMA <source>` as better-sqlite3's `db.pragma()` does: its rows, or with
   * `{ simple: true }` the first column of the first row. On a published version only getters
   * run (`pragma('user_version')`, `pragma('table_info(t)')`); a setter throws `READ_ONLY`.
   */
  pragma(source: string, options?: { readonly simple?: boolean }): unknown;
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
   * This snapshot for ORM drivers with a sql.js driver (Drizzle ORM's `drizzle-orm/sql-js`, and
   * Kysely's `SqliteDialect`): every statement reads this version, and throws `CLOSED` once the
   * lease is released. Throws `CLOSED` when called after release. See {@link SqlJsCompatible}.
   * @example
   * ```ts
   * const snap = cache.snapshot();
   * try {
   *   const orm = drizzle(snap.sqlJsDatabase());
   *   const [a, b] = [orm.select().from(orders).all(), orm.select().from(lines).all()]; // one version
   * } finally {
   *   snap.release();
   * }
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
