import initSqlJs from 'sql.js';

/** The part of a sql.js prepared statement dbcache uses. */
export interface SqlJsStatement {
  bind(values?: unknown): unknown;
  step(): boolean;
  get(params?: null, config?: { useBigInt?: boolean }): unknown[];
  getColumnNames(): string[];
  reset(): unknown;
  free(): unknown;
}

/** The part of a sql.js `Database` dbcache uses. */
export interface SqlJsDatabase {
  exec(sql: string): unknown;
  run(sql: string, params?: unknown): unknown;
  prepare(sql: string): SqlJsStatement;
  close(): void;
}

/**
 * An initialised sql.js module, as `await initSqlJs()` returns it; described structurally so
 * sql.js's own types stay out of dbcache's public types.
 */
export interface SqlJsLike {
  Database: new (data?: Uint8Array | null) => SqlJsDatabase;
}

let defaultModule: Promise<SqlJsLike> | undefined;

/**
 * The sql.js module to build databases with: the injected one, or sql.js's WebAssembly build,
 * initialised once per process (sql.js keeps the first configuration anyway).
 */
export function loadSqlJs(injected?: SqlJsLike | Promise<SqlJsLike>): Promise<SqlJsLike> {
  if (injected !== undefined) return Promise.resolve(injected);
  defaultModule ??= initSqlJs().catch((error: unknown) => {
    defaultModule = undefined;
    throw error;
  });
  return defaultModule;
}

/**
 * Opens an image as a private in-memory database. sql.js keeps a view of a Node `Buffer`
 * instead of copying it, so the image must not be touched again by anyone.
 */
export function openImage(sqlJs: SqlJsLike, image: Uint8Array): SqlJsDatabase {
  return new sqlJs.Database(image.length === 0 ? null : image);
}
