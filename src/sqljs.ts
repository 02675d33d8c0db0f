import type { RealBinder } from './params.ts';
import { SealableImage } from './sealed-image.ts';

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

/** The low-level exports of sql.js that binding a whole number as REAL needs. */
interface SqlJsInternals {
  _sqlite3_bind_double?: (statement: number, index: number, value: number) => number;
  _sqlite3_sql?: (statement: number) => number;
  UTF8ToString?: (pointer: number) => string;
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
 * Opens an image as a private in-memory database whose file refuses writes after `seal()`.
 * A Node `Buffer` is kept as a view instead of copied, so the image must not be touched again.
 */
export function openImage(sqlJs: SqlJsLike, image: Uint8Array): { db: SqlJsDatabase; seal: () => void } {
  if (image.length === 0) return { db: new sqlJs.Database(null), seal: () => {} };
  const storage = new SealableImage(image);
  const db = new sqlJs.Database(storage as unknown as Uint8Array);
  return { db, seal: () => storage.seal() };
}

const realBinders = new WeakMap<SqlJsLike, RealBinder | null>();

/**
 * A function that binds a whole number as REAL, as better-sqlite3 binds every number (sql.js
 * binds those within 32 bits as INTEGER, the rest as REAL), or `undefined` when this sql.js
 * does not export what it needs. sql.js keeps a statement's pointer in a minified property: it
 * is found once per module by asking SQLite which pointer holds a probe statement's text.
 */
export function realBinder(sqlJs: SqlJsLike): RealBinder | undefined {
  let binder = realBinders.get(sqlJs);
  if (binder === undefined) {
    binder = findRealBinder(sqlJs) ?? null;
    realBinders.set(sqlJs, binder);
  }
  return binder ?? undefined;
}

function findRealBinder(sqlJs: SqlJsLike): RealBinder | undefined {
  const { _sqlite3_bind_double: bindDouble, _sqlite3_sql: sqlOf, UTF8ToString: text } = sqlJs as SqlJsLike & SqlJsInternals;
  if (typeof bindDouble !== 'function' || typeof sqlOf !== 'function' || typeof text !== 'function') return undefined;
  const probeSql = 'SELECT typeof(?) AS dbcache_probe';
  let db: SqlJsDatabase | undefined;
  try {
    db = new sqlJs.Database(null);
    const statement = db.prepare(probeSql) as unknown as Record<string, unknown>;
    for (const key of Object.keys(statement)) {
      const pointer = statement[key];
      if (typeof pointer !== 'number' || !Number.isInteger(pointer) || pointer < 4096) continue;
      if (text(sqlOf(pointer)) !== probeSql) continue;
      const binder: RealBinder = (raw, index, value) => {
        const code = bindDouble((raw as unknown as Record<string, number>)[key]!, index, value);
        if (code !== 0) throw new Error(`binding parameter ${index} failed (SQLite code ${code})`);
      };
      // Prove it: the probe must now return a REAL.
      (statement as unknown as SqlJsStatement).bind([2]);
      binder(statement as unknown as SqlJsStatement, 1, 5);
      (statement as unknown as SqlJsStatement).step();
      const [value] = (statement as unknown as SqlJsStatement).get();
      (statement as unknown as SqlJsStatement).free();
      return value === 'real' ? binder : undefined;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

function checkModule(module: SqlJsLike): SqlJsLike {
  if (typeof (module as Partial<SqlJsLike> | null)?.Database !== 'function') {
    throw new TypeError('options.sqlJs must be an initialised sql.js module (the result of `await initSqlJs()`, with a Database class)');
  }
  return module;
}
