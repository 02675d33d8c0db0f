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
  _sqlite3_data_count?: (statement: number) => number;
  _sqlite3_column_type?: (statement: number, column: number) => number;
  _sqlite3_column_double?: (statement: number, column: number) => number;
  _sqlite3_column_text?: (statement: number, column: number) => number;
  _sqlite3_column_blob?: (statement: number, column: number) => number;
  _sqlite3_column_bytes?: (statement: number, column: number) => number;
}

/** A value of a row as sql.js returns it without bigints. */
type RowValue = number | string | Uint8Array | null;

/**
 * Reads the current row of a stepped statement straight from SQLite's exports, as sql.js's
 * `get()` does (integers as numbers) but with fewer calls and no intermediate array.
 */
export interface RowReader {
  /** The row's values in column order. */
  values(statement: SqlJsStatement): RowValue[];
  /** The row as an object keyed by `columns`. */
  object(statement: SqlJsStatement, columns: readonly string[]): Record<string, RowValue>;
  /** The first column's value (`null` when the row has none). */
  first(statement: SqlJsStatement): RowValue;
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

/** What dbcache reaches in sql.js beyond its API, found once per module (see {@link fastPath}). */
interface FastPath {
  readonly bindReal: RealBinder | undefined;
  readonly rows: RowReader | undefined;
}

const fastPaths = new WeakMap<SqlJsLike, FastPath>();
const memories = new WeakMap<SqlJsLike, WasmMemory>();

/**
 * A function that binds a whole number as REAL, as better-sqlite3 binds every number (sql.js
 * binds those within 32 bits as INTEGER, the rest as REAL), or `undefined` when this sql.js
 * does not export what it needs.
 */
export function realBinder(sqlJs: SqlJsLike): RealBinder | undefined {
  return fastPath(sqlJs).bindReal;
}

/**
 * A reader of result rows that calls SQLite's column functions directly, or `undefined` when
 * this sql.js does not export them or its heap is unknown (a module the application
 * initialised, the inline build): sql.js's `get()` is used then.
 */
export function rowReader(sqlJs: SqlJsLike): RowReader | undefined {
  return fastPath(sqlJs).rows;
}

/**
 * sql.js keeps a statement's pointer in a minified property: it is found once per module by
 * asking SQLite which property holds a probe statement's text. Each shortcut is then proved on
 * a probe query against sql.js's own answer, and left out if it differs.
 */
function fastPath(sqlJs: SqlJsLike): FastPath {
  let found = fastPaths.get(sqlJs);
  if (found === undefined) {
    found = findFastPath(sqlJs);
    fastPaths.set(sqlJs, found);
  }
  return found;
}

const PROBE_SQL = "SELECT typeof(?) AS dbcache_probe, 7, -2.5, 'a', '', 'dbcache é ✓ probe text past sixteen bytes', x'00ff10', x'', NULL";

function findFastPath(sqlJs: SqlJsLike): FastPath {
  const internals = sqlJs as SqlJsLike & SqlJsInternals;
  const { _sqlite3_sql: sqlOf, UTF8ToString: text } = internals;
  if (typeof sqlOf !== 'function' || typeof text !== 'function') return { bindReal: undefined, rows: undefined };
  let db: SqlJsDatabase | undefined;
  try {
    db = new sqlJs.Database(null);
    const statement = db.prepare(PROBE_SQL);
    const fields = statement as unknown as Record<string, unknown>;
    const key = Object.keys(fields).find((name) => {
      const pointer = fields[name];
      return typeof pointer === 'number' && Number.isInteger(pointer) && pointer >= 4096 && text(sqlOf(pointer)) === PROBE_SQL;
    });
    if (key === undefined) return { bindReal: undefined, rows: undefined };
    const pointerOf = (raw: SqlJsStatement): number => (raw as unknown as Record<string, number>)[key]!;
    const bindReal = makeRealBinder(internals, pointerOf);
    const memory = memories.get(sqlJs);
    const rows = memory === undefined ? undefined : makeRowReader(internals, pointerOf, memory);
    statement.bind([2]);
    bindReal?.(statement, 1, 5);
    statement.step();
    const expected = statement.get();
    const proven = {
      bindReal: expected[0] === 'real' ? bindReal : undefined,
      rows: rows !== undefined && sameRow(rows.values(statement), expected) && rows.first(statement) === expected[0] ? rows : undefined,
    };
    statement.free();
    return proven;
  } catch {
    return { bindReal: undefined, rows: undefined };
  } finally {
    db?.close();
  }
}

function sameRow(actual: readonly unknown[], expected: readonly unknown[]): boolean {
  if (actual.length !== expected.length) return false;
  return actual.every((value, i) => {
    const other = expected[i];
    if (value instanceof Uint8Array && other instanceof Uint8Array) return value.length === other.length && value.every((byte, k) => byte === other[k]);
    return value === other;
  });
}

function makeRealBinder(internals: SqlJsInternals, pointerOf: (raw: SqlJsStatement) => number): RealBinder | undefined {
  const bindDouble = internals._sqlite3_bind_double;
  if (typeof bindDouble !== 'function') return undefined;
  return (raw, index, value) => {
    const code = bindDouble(pointerOf(raw), index, value);
    if (code !== 0) throw new Error(`binding parameter ${index} failed (SQLite code ${code})`);
  };
}

const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
/** Up to this many bytes, ASCII text is decoded in JavaScript: TextDecoder's fixed cost is larger. */
const SHORT_TEXT = 48;

function makeRowReader(internals: SqlJsInternals, pointerOf: (raw: SqlJsStatement) => number, memory: WasmMemory): RowReader | undefined {
  const { _sqlite3_data_count: count, _sqlite3_column_type: type, _sqlite3_column_double: double } = internals;
  const { _sqlite3_column_text: text, _sqlite3_column_blob: blob, _sqlite3_column_bytes: bytes } = internals;
  if (!count || !type || !double || !text || !blob || !bytes) return undefined;
  const decoder = new TextDecoder();
  let heap = new Uint8Array(memory.buffer);
  // The heap's ArrayBuffer is replaced (and the old one detached) whenever the module's memory
  // grows, which a column conversion can do: the view is renewed after the call that may grow it.
  const current = (): Uint8Array => (heap.byteLength === 0 ? (heap = new Uint8Array(memory.buffer)) : heap);
  const decode = (at: number, length: number): string => {
    const view = current();
    if (length <= SHORT_TEXT) {
      let out = '';
      for (let k = at; k < at + length; k++) {
        const byte = view[k]!;
        if (byte >= 0x80) return decoder.decode(view.subarray(at, at + length));
        out += String.fromCharCode(byte);
      }
      return out;
    }
    return decoder.decode(view.subarray(at, at + length));
  };
  const value = (pointer: number, column: number): RowValue => {
    switch (type(pointer, column)) {
      case SQLITE_INTEGER:
      case SQLITE_FLOAT:
        return double(pointer, column);
      case SQLITE_TEXT: {
        const at = text(pointer, column);
        return decode(at, bytes(pointer, column));
      }
      case SQLITE_BLOB: {
        const at = blob(pointer, column);
        const length = bytes(pointer, column);
        return current().slice(at, at + length);
      }
      default:
        return null;
    }
  };
  return {
    values(raw) {
      const pointer = pointerOf(raw);
      const length = count(pointer);
      const row = new Array<RowValue>(length);
      for (let i = 0; i < length; i++) row[i] = value(pointer, i);
      return row;
    },
    object(raw, columns) {
      const pointer = pointerOf(raw);
      const row: Record<string, RowValue> = {};
      for (let i = 0; i < columns.length; i++) row[columns[i]!] = value(pointer, i);
      return row;
    },
    first(raw) {
      const pointer = pointerOf(raw);
      return count(pointer) > 0 ? value(pointer, 0) : null;
    },
  };
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
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
  Memory: abstract new (...args: never[]) => WasmMemory;
}

/** A WebAssembly memory: sql.js's heap. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
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
  let memory: WasmMemory | undefined;
  const module = await new Promise<SqlJsLike>((resolve, reject) => {
    config.instantiateWasm = (imports, receive) => {
      wasm.instantiate(compiled, imports).then((instance) => {
        memory = Object.values(instance.exports).find((value): value is WasmMemory => value instanceof wasm.Memory);
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
  if (memory !== undefined) memories.set(module, memory);
  return module;
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
