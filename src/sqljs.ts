import { Buffer } from 'node:buffer';
import { describe } from './errors.ts';
import type { FunctionDefinition } from './options.ts';
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
  /** Registers a scalar function; SQLite passes `fn.length` arguments (-1: any number). */
  create_function?(name: string, fn: (...args: never[]) => unknown): unknown;
  /** Registers an aggregate; SQLite passes `step.length - 1` arguments. */
  create_aggregate?(name: string, functions: { init(): unknown; step(...args: never[]): unknown; finalize(state: never): unknown }): unknown;
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
    // The inline build is imported (a bundler carries it, .wasm and all). The wasm build reads its
    // .wasm from node_modules anyway, so it is loaded from there too, with the runtime's own
    // require: a bundle (esbuild's ESM output) cannot give sql.js's glue the `require` and
    // `__dirname` it uses in Node, but the runtime's loader can.
    const imported: Promise<InitSqlJs> =
      choice === 'inline'
        ? import('sql.js/dist/sql-wasm-inline.js').then((module: { default: InitSqlJs }) => module.default)
        : import('node:module').then(({ createRequire }) => createRequire(import.meta.url)('sql.js') as InitSqlJs);
    loading = imported.then((init) => initialise(init, choice));
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
export function openImage(sqlJs: SqlJsLike, image: Uint8Array | PageImage, store?: PageStore, functions?: FunctionSet): OpenedImage {
  if (image.length === 0) {
    const db = new sqlJs.Database(null);
    registerOn(db, functions);
    return { db, seal: () => {}, release: () => {} };
  }
  const storage = new PagedStorage(image instanceof PageImage ? image : PageImage.fromBytes(image), store);
  try {
    const db = new sqlJs.Database(storage as unknown as Uint8Array);
    registerOn(db, functions);
    return { db, seal: () => storage.seal(), release: () => storage.release() };
  } catch (error) {
    storage.release();
    throw error;
  }
}

function registerOn(db: SqlJsDatabase, functions: FunctionSet | undefined): void {
  if (functions === undefined) return;
  try {
    functions.register(db);
  } catch (error) {
    db.close();
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

/** User functions, wrapped once per cache, registered on the connection of every version it opens. */
export interface FunctionSet {
  /** Lower-cased names of the functions not declared deterministic: the result memo leaves SQL naming one alone. */
  readonly volatile: ReadonlySet<string>;
  /** Lower-cased names of the functions declared deterministic: the result memo may remember SQL that calls them. */
  readonly deterministic: ReadonlySet<string>;
  /** Registers every function on `db`. */
  register(db: SqlJsDatabase): void;
}

/** How the query that a user function's failure ended should fail. */
export interface FunctionFailure {
  readonly code: 'QUERY' | 'TOO_BIG' | 'OUT_OF_MEMORY';
  /** What the function threw, or the TypeError/RangeError for what it returned. */
  readonly error: unknown;
}

/** User functions running now (SQLite called into JavaScript): while one runs, no query may enter the engine. */
let userCode = 0;

/** Whether a user function is running: dbcache is inside a query, and must not be entered again. */
export function insideUserFunction(): boolean {
  return userCode > 0;
}

/** The last failure of a user function, and the text SQLite was handed for it. */
let pending: { readonly text: string; readonly failure: FunctionFailure } | undefined;

/**
 * The failure of a user function that ended the query which threw `error` (sql.js's Error, whose
 * message is what the function's wrapper handed SQLite), or `undefined` when `error` is not one.
 */
export function takeFunctionFailure(error: unknown): FunctionFailure | undefined {
  const last = pending;
  if (last === undefined || !(error instanceof Error) || error.message !== last.text) return undefined;
  pending = undefined;
  return last.failure;
}

/** Text of a failure, short and without NUL (sql.js copies it onto the stack as a C string). */
function failureText(text: string): string {
  const clean = text.replaceAll('\0', '\\0');
  return clean.length > 500 ? `${clean.slice(0, 500)}…` : clean;
}

/**
 * Ends the user function's call with an error SQLite reports for the query: sql.js hands what a
 * function throws to `sqlite3_result_error`, so a short string of ours is thrown, and the real
 * failure is kept for {@link takeFunctionFailure}.
 */
function fail(text: string, error: unknown, code: FunctionFailure['code'] = 'QUERY'): never {
  const message = failureText(text);
  pending = { text: message, failure: { code, error } };
  throw message;
}

/** What sql.js copies text onto: the module's stack (5 MiB in sql.js's builds), which nothing checks. */
const STACK_BYTES = 5 * 1024 * 1024;
/** Stack left for sql.js's own frames after a text result is copied. */
const STACK_MARGIN = 64 * 1024;
/** The longest text a user function may return (UTF-8 bytes); a Uint8Array may be longer. */
const MAX_TEXT_RESULT = 1024 * 1024;
/** SQLite's `SQLITE_MAX_LENGTH` in sql.js. */
const MAX_VALUE_BYTES = 1_000_000_000;

const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, Symbol.toStringTag)!.get!;

/** Whether `value` is a real Uint8Array (or Buffer): asks the internal slot, which no proxy or prototype can fake. */
function isUint8Array(value: unknown): value is Uint8Array {
  return typedArrayTag.call(value) === 'Uint8Array';
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * What a user function returned, as a value sql.js can hand SQLite safely: sql.js sizes a blob by
 * its `length` property and copies text onto its stack, so a blob is copied into an array of its
 * own (sized by the real buffer) and text is bounded. Anything else ends the query.
 */
function resultValue(sqlJs: SqlJsLike, stack: StackBounds | undefined, name: string, value: unknown): unknown {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return value;
    case 'undefined':
      return null;
    case 'string':
      return textResult(stack, name, value);
    case 'bigint':
      if (value >= -MAX_SAFE && value <= MAX_SAFE) return Number(value);
      return fail(
        `the function ${name}() returned ${value}n, an integer beyond 2^53, which sql.js cannot return exactly; return it as a string`,
        new RangeError(`${name}() returned a bigint beyond 2^53`),
      );
    default:
      break;
  }
  if (value === null) return null;
  if (isUint8Array(value)) {
    const copy = new Uint8Array(value);
    if (copy.length > MAX_VALUE_BYTES) {
      return fail(`the function ${name}() returned ${copy.length} bytes; SQLite takes at most ${MAX_VALUE_BYTES}`, new RangeError(`${name}() returned too many bytes`), 'TOO_BIG');
    }
    // sql.js copies a blob to the address its allocation returned, 0 when it failed: try first.
    if (copy.length > 0 && sqlJs._malloc !== undefined && sqlJs._free !== undefined) {
      const pointer = sqlJs._malloc(copy.length);
      if (pointer === 0) {
        return fail(
          `the function ${name}() returned ${copy.length} bytes, for which the sql.js heap (shared by every cache) has no room`,
          new RangeError(`${name}() returned more bytes than the heap has room for`),
          'OUT_OF_MEMORY',
        );
      }
      sqlJs._free(pointer);
    }
    return copy;
  }
  return fail(
    `the function ${name}() returned ${describeResult(value)}; return a number, string, bigint, boolean, Uint8Array or null`,
    new TypeError(`${name}() returned an unsupported value`),
  );
}

/** {@link resultValue}, with anything unforeseen (a detached buffer, say) ending the query as the caller's failure too. */
function safeResult(sqlJs: SqlJsLike, stack: StackBounds | undefined, name: string, value: unknown): unknown {
  try {
    return resultValue(sqlJs, stack, name, value);
  } catch (error) {
    if (typeof error === 'string') throw error;
    return fail(`the function ${name}() returned a value that cannot be read: ${describe(error)}`, error);
  }
}

function describeResult(value: unknown): string {
  try {
    if (Array.isArray(value)) return 'an array';
    if (typeof value === 'function') return 'a function';
    if (typeof value === 'symbol') return 'a symbol';
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return 'a buffer other than a Uint8Array';
    if (value instanceof Promise) return 'a promise (user functions run synchronously)';
  } catch {
    // A proxy whose traps throw.
  }
  return 'an object';
}

/** Where the module's stack ends, from the stack pointer at rest. */
interface StackBounds {
  readonly save: () => number;
  readonly end: number;
}

function textResult(stack: StackBounds | undefined, name: string, value: string): string {
  // Lone surrogates become U+FFFD, as TextEncoder does (sql.js would write them as invalid UTF-8).
  const wellFormed = value as string & { isWellFormed(): boolean; toWellFormed(): string };
  const text = wellFormed.isWellFormed() ? value : wellFormed.toWellFormed();
  // SQLite gets text as UTF-8: at most 3 bytes per UTF-16 unit, measured only when that is too many.
  const room = Math.min(MAX_TEXT_RESULT, stack === undefined ? Infinity : stack.save() - stack.end - STACK_MARGIN);
  if (text.length * 3 + 1 <= room) return text;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes + 1 <= room) return text;
  return fail(
    `the function ${name}() returned ${bytes} bytes of text; a user function may return at most ${Math.max(0, room - 1)} (sql.js copies text onto its stack): return a Uint8Array for more`,
    new RangeError(`${name}() returned too much text`),
    'TOO_BIG',
  );
}

/** Calls the user's `fn` with `args`, counted as user code; a throw ends the query with it. */
function callUser(fn: Function, args: unknown[], what: string): unknown {
  userCode++;
  try {
    return Reflect.apply(fn, undefined, args);
  } catch (error) {
    return fail(`${what} threw: ${describe(error)}`, error);
  } finally {
    userCode--;
  }
}

/** A function object whose `length` is `length`: what sql.js takes as the number of arguments. */
function withLength<T extends Function>(fn: T, length: number): T {
  Object.defineProperty(fn, 'length', { value: length });
  return fn;
}

/** The accumulator of a group whose `start()` threw. */
class StartFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

/**
 * Wraps `definitions` for `sqlJs`. Every wrapper catches whatever the user's code throws (sql.js
 * lets a throw from an aggregate's start escape into WebAssembly), counts as user code while it
 * runs (a query from inside is refused), and hands SQLite only plain values.
 */
export function prepareFunctions(sqlJs: SqlJsLike, definitions: readonly FunctionDefinition[]): FunctionSet | undefined {
  if (definitions.length === 0) return undefined;
  const { stackSave } = sqlJs;
  // Called where no WebAssembly runs: the stack pointer is at its base.
  const stack = typeof stackSave === 'function' ? { save: stackSave, end: stackSave() - STACK_BYTES } : undefined;
  const registrations: Array<(db: SqlJsDatabase) => void> = [];
  for (const definition of definitions) {
    const { name, args } = definition;
    const label = `the function ${name}()`;
    if (definition.scalar !== undefined) {
      const fn = definition.scalar;
      const wrapper = withLength((...values: unknown[]): unknown => safeResult(sqlJs, stack, name, callUser(fn, values, label)), args);
      registrations.push((db) => {
        if (typeof db.create_function !== 'function') throw new TypeError(`The sql.js module in use cannot register user functions (${name}): its Database has no create_function`);
        db.create_function(name, wrapper);
      });
    } else if (definition.aggregate !== undefined) {
      const { start, startIsFunction, step, result } = definition.aggregate;
      const failures = new WeakSet<object>();
      const init = (): unknown => {
        if (!startIsFunction) return start;
        userCode++;
        try {
          return Reflect.apply(start as Function, undefined, []);
        } catch (error) {
          const failure = new StartFailure(error);
          failures.add(failure);
          return failure;
        } finally {
          userCode--;
        }
      };
      const startFailed = (total: unknown): void => {
        if (typeof total === 'object' && total !== null && failures.has(total)) fail(`the start() of ${label} threw: ${describe((total as StartFailure).error)}`, (total as StartFailure).error);
      };
      const stepWrapper = withLength((total: unknown, ...values: unknown[]): unknown => {
        startFailed(total);
        const next = callUser(step, [total, ...values], `the step() of ${label}`);
        // As in better-sqlite3: a step that returns nothing keeps the accumulator.
        return next === undefined ? total : next;
      }, args === -1 ? 0 : args + 1);
      const finalize = (total: unknown): unknown => {
        startFailed(total);
        return safeResult(sqlJs, stack, name, result === undefined ? total : callUser(result, [total], `the result() of ${label}`));
      };
      registrations.push((db) => {
        if (typeof db.create_aggregate !== 'function') throw new TypeError(`The sql.js module in use cannot register user aggregates (${name}): its Database has no create_aggregate`);
        db.create_aggregate(name, { init, step: stepWrapper, finalize });
      });
    }
  }
  const volatile = new Set(definitions.filter((definition) => !definition.deterministic).map((definition) => definition.name.toLowerCase()));
  const deterministic = new Set(definitions.filter((definition) => definition.deterministic).map((definition) => definition.name.toLowerCase()));
  return {
    volatile,
    deterministic,
    register(db: SqlJsDatabase): void {
      for (const register of registrations) register(db);
    },
  };
}
