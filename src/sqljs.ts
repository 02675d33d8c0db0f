import type { RealBinder } from './params.ts';
import { PageImage } from './pages/page-image.ts';
import { PagedStorage } from './pages/paged-storage.ts';
import type { PageStore } from './pages/page-store.ts';

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
  /** Emscripten's stack pointer: saved before a query, restored after a stack overflow unwound it. */
  stackSave?: () => number;
  stackRestore?: (pointer: number) => void;
  /** The module's allocator: room for a big parameter is reserved before sql.js copies it in. */
  _malloc?: (bytes: number) => number;
  _free?: (pointer: number) => void;
}

/** The low-level exports of sql.js that binding a whole number as REAL needs. */
interface SqlJsInternals {
  _sqlite3_bind_double?: (statement: number, index: number, value: number) => number;
  _sqlite3_sql?: (statement: number) => number;
  UTF8ToString?: (pointer: number) => string;
}

/** Which sql.js to use: a build of the package, or a module the application initialised. */
export type SqlJsChoice = 'wasm' | 'inline' | SqlJsLike | Promise<SqlJsLike>;

type InitSqlJs = (config?: SqlJsConfig) => Promise<SqlJsLike>;

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
    loading = imported.then((module) => initialise(module.default, choice));
    loading.catch(() => builds.delete(choice));
    builds.set(choice, loading);
  }
  return loading;
}

/** A version opened in sql.js: its connection, and its storage's seal and release. */
export interface OpenedImage {
  readonly db: SqlJsDatabase;
  /** From now on the version's file refuses writes. */
  readonly seal: () => void;
  /** The version is closed: its pages stop counting as live in `store`. */
  readonly release: () => void;
}

/**
 * Opens an image as a private in-memory database whose file is a page table over `image`
 * (written copy-on-write, so `image` itself never changes) and refuses writes after `seal()`.
 * A `Uint8Array` is used as pages in place (not copied), so it must not be touched again.
 */
export function openImage(sqlJs: SqlJsLike, image: Uint8Array | PageImage, store?: PageStore): OpenedImage {
  if (image.length === 0) return { db: new sqlJs.Database(null), seal: () => {}, release: () => {} };
  const storage = new PagedStorage(image instanceof PageImage ? image : PageImage.fromBytes(image), store);
  try {
    const db = new sqlJs.Database(storage as unknown as Uint8Array);
    return { db, seal: () => storage.seal(), release: () => storage.release() };
  } catch (error) {
    storage.release();
    throw error;
  }
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

/** The part of Emscripten's module configuration that dbcache sets when it initialises sql.js. */
interface SqlJsConfig {
  print(text: string): void;
  printErr(text: string): void;
  useOldExtensionFunctions: boolean;
  instantiateWasm?(imports: object, receive: (instance: object) => void): object;
}

/** The two calls of the WebAssembly API used here (the project's type libraries do not declare it). */
interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<object>;
}

const ignore = (): void => undefined;

/**
 * Initialises one of sql.js's builds so that it prints nothing and cannot crash the process
 * afterwards. sql.js 1.16 prints a deprecation warning on the first call of a legacy math
 * function (`sqrt`, `pow`, …): SQLite's own math functions (this build has them) replace those,
 * which drops the legacy extras (`reverse`, `median`, `stdev`, …). For the `wasm` build the
 * `.wasm` is read and instantiated here: when sql.js does it and fails (Deno without read access
 * to node_modules), it rejects our promise and then aborts once more in a promise nobody can
 * catch, which ends the process.
 */
async function initialise(init: InitSqlJs, choice: 'wasm' | 'inline'): Promise<SqlJsLike> {
  const config: SqlJsConfig = { print: ignore, printErr: ignore, useOldExtensionFunctions: false };
  if (choice === 'inline') return init(config);
  const { createRequire } = await import('node:module');
  const { readFileSync } = await import('node:fs');
  const bytes = readFileSync(createRequire(import.meta.url).resolve('sql.js/dist/sql-wasm.wasm'));
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const compiled = await wasm.compile(bytes);
  return new Promise<SqlJsLike>((resolve, reject) => {
    config.instantiateWasm = (imports, receive) => {
      wasm.instantiate(compiled, imports).then((instance) => {
        try {
          receive(instance);
        } catch (error) {
          reject(error);
        }
      }, reject);
      return {};
    };
    init(config).then(resolve, reject);
  });
}

/** A virtual table whose module this sql.js build does not have. */
export interface MissingModule {
  readonly table: string;
  readonly module: string;
}

/**
 * The virtual tables in `db`'s schema whose module (fts5, rtree, …) the engine lacks; a query on
 * one fails with "no such module". `rows` runs a query and returns its rows as arrays.
 */
export function findMissingModules(rows: (sql: string) => unknown[][]): MissingModule[] {
  const virtual = rows("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'");
  if (virtual.length === 0) return [];
  const known = new Set(rows('SELECT name FROM pragma_module_list').map((row) => String(row[0]).toLowerCase()));
  const missing: MissingModule[] = [];
  for (const [table, sql] of virtual) {
    const module = /\bUSING\s+["'`\[]?(\w+)/i.exec(String(sql))?.[1]?.toLowerCase();
    if (module !== undefined && !known.has(module)) missing.push({ table: String(table), module });
  }
  return missing;
}

/** For a "no such module: x" error from SQLite, the sentence that says how to get a build with x. */
export function missingModuleHint(error: unknown): string {
  const module = /no such module: (\w+)/.exec(typeof error === 'string' ? error : String((error as Error | null)?.message ?? error))?.[1];
  return module === undefined ? '' : ` (the sql.js build in use has no ${module} module: pass a sql.js build that has it as the sqlJs option)`;
}
