/** The part of a sql.js prepared statement dbcache uses. */
export interface SqlJsStatement {
  bind(values?: unknown): unknown;
  step(): boolean;
  get(params?: unknown, config?: { useBigInt?: boolean }): unknown[];
  getAsObject(params?: unknown, config?: { useBigInt?: boolean }): Record<string, unknown>;
  getColumnNames(): string[];
  run(values?: unknown): unknown;
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

/** Which sql.js to use: a build of the package, or a module the application initialised. */
export type SqlJsChoice = 'wasm' | 'inline' | SqlJsLike | Promise<SqlJsLike>;

type InitSqlJs = () => Promise<SqlJsLike>;

const builds = new Map<'wasm' | 'inline', Promise<SqlJsLike>>();

/**
 * The sql.js module to build databases with, initialised once per process and build: `wasm`
 * reads `sql-wasm.wasm` next to sql.js; `inline` carries the WebAssembly inside its JavaScript
 * (no file read: bundlers, Deno without read access to node_modules).
 */
export function loadSqlJs(choice: SqlJsChoice = 'wasm'): Promise<SqlJsLike> {
  if (choice !== 'wasm' && choice !== 'inline') return Promise.resolve(choice).then(checkModule);
  let loading = builds.get(choice);
  if (loading === undefined) {
    // Imported lazily: a bundle that only uses one build does not carry the other.
    const imported: Promise<{ default: InitSqlJs }> =
      choice === 'inline' ? import('sql.js/dist/sql-wasm-inline.js') : import('sql.js');
    loading = imported.then((module) => module.default());
    loading.catch(() => builds.delete(choice));
    builds.set(choice, loading);
  }
  return loading;
}

/**
 * Opens an image as a private in-memory database. sql.js keeps a view of a Node `Buffer`
 * instead of copying it, so the image must not be touched again by anyone.
 */
export function openImage(sqlJs: SqlJsLike, image: Uint8Array): SqlJsDatabase {
  return new sqlJs.Database(image.length === 0 ? null : image);
}

function checkModule(module: SqlJsLike): SqlJsLike {
  if (typeof (module as Partial<SqlJsLike> | null)?.Database !== 'function') {
    throw new TypeError('options.sqlJs must be an initialised sql.js module (the result of `await initSqlJs()`, with a Database class)');
  }
  return module;
}
