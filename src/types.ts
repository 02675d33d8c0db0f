import type { SqlJsStatement } from './sqljs.ts';

/** A value SQLite hands back: integers as `number` (or `bigint` with `bigint: true`), blobs as `Uint8Array`. */
export type SqlValue = number | string | bigint | Uint8Array | null;

/** A value you can bind to a parameter; booleans bind as 1 and 0. */
export type BindValue = SqlValue | boolean;

/**
 * Parameters of a query: an array for positional `?` placeholders, or an object whose keys
 * (without prefix) name `:name`, `@name` or `$name` placeholders, as in better-sqlite3.
 */
export type Params = readonly BindValue[] | Readonly<Record<string, BindValue>>;

/** A result row keyed by column name. */
export type Row = Record<string, SqlValue>;

/**
 * A prepared query against one snapshot (from `snapshot.prepare`) or against whatever
 * snapshot is live when it runs (from `cache.prepare`).
 *
 * @example
 * ```ts
 * const byId = cache.prepare('SELECT * FROM routes WHERE id = ?');
 * byId.get([42]);
 * ```
 */
export interface Statement<R = Row> {
  /** The SQL text. */
  readonly sql: string;
  /** The first row, or `undefined` when there is none. */
  get(params?: Params): R | undefined;
  /** Every row. */
  all(params?: Params): R[];
  /** The rows one at a time; stop early with `break`. */
  iterate(params?: Params): IterableIterator<R>;
  /** Every row as an array of values in column order (bun:sqlite's `values()`). */
  values(params?: Params): SqlValue[][];
  /** From now on `get`/`all`/`iterate` return arrays of values (better-sqlite3's `raw()`); `raw(false)` undoes it. */
  raw(toggle?: boolean): this;
  /** From now on `get`/`all`/`iterate` return only the first column's value (better-sqlite3's `pluck()`). */
  pluck(toggle?: boolean): this;
  /** The names of the result columns. */
  columns(): string[];
  /** Whether the statement returns rows (better-sqlite3's `reader`). */
  readonly reader: boolean;
  /**
   * Runs the statement to completion. On the cache and its snapshots every write fails with
   * `QUERY`; on the `onReload` database it writes and reports the counts.
   */
  run(params?: Params): RunResult;
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
 * The synchronous read methods shared by the cache, a snapshot and the overlay database. Each
 * throws a DbCacheError: `QUERY` (SQL errors), `TOO_BIG`, `OUT_OF_MEMORY`, `ENGINE`,
 * `ENGINE_BROKEN` or `CLOSED`; arguments that cannot be bound throw `TypeError`/`RangeError`.
 */
export interface Queryable {
  /** The first row as an object keyed by column name, or `undefined`. Throws `QUERY` on SQL errors. */
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
   * the lease is held.
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
