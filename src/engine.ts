import { Buffer } from 'node:buffer';
import { DbCacheError, describe, type DbCacheErrorCode } from './errors.ts';
import { missingModuleHint, type SqlJsLike } from './sqljs.ts';

/**
 * SQLite's `SQLITE_MAX_LENGTH` in sql.js 1.16: no string or blob, bound or computed, may be longer
 * (in bytes, a string as UTF-8).
 */
export const MAX_VALUE_BYTES = 1_000_000_000;

/** Told about every engine fault, and once when the engine is found damaged. */
export interface EngineNotice {
  readonly error: DbCacheError;
  /** The engine failed its health check: every call on every cache now fails with `ENGINE_BROKEN`. */
  readonly broken: boolean;
}

type Health = 'ok' | 'unknown' | 'broken';

/** What the health check computes on a scratch database, and the answer it must get. */
const CHECK_SQL =
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) SELECT count(*), sum(i), sum(length(hex(zeroblob(i)))), group_concat(i % 7, '') LIKE '%6012345%' FROM n";
const CHECK_ANSWER = '200,20100,40200,1';

/**
 * The sql.js module every cache in the process shares, and what keeps it sound: the stack
 * pointer restored after a stack overflow, room for big parameters reserved before sql.js
 * copies them in, and a health check after every fault.
 *
 * What a fault means: a stack overflow deep in one of SQLite's recursions (a long LIKE pattern)
 * is contained: the module stays sound, only the interrupted connection's bookkeeping is off, so
 * the version is reopened from its image. An overflow soon after entry (the caller had little
 * stack left), a WebAssembly trap, or a failure nobody could examine may have struck anywhere,
 * mid-way through the allocator say, which no health check can see (measured: after a run of
 * such overflows that passed the health check, a query under memory pressure never returned). The engine is then broken for good: every call fails with
 * `ENGINE_BROKEN`. Recovering onto a fresh module instance (versions' images live in JavaScript
 * memory) is possible but not built: sql.js's `initSqlJs` returns one instance per loaded file.
 *
 * sql.js 1.16 exports what this needs (`stackSave`, `stackRestore`, `_malloc`, `_free`); an
 * injected module without them still works, unguarded.
 */
export class Engine {
  readonly #sqlJs: SqlJsLike;
  readonly #stackSave: (() => number) | undefined;
  readonly #stackRestore: ((pointer: number) => void) | undefined;
  readonly #malloc: ((bytes: number) => number) | undefined;
  readonly #free: ((pointer: number) => void) | undefined;
  /** The stack pointer while no WebAssembly runs: where every call from JavaScript starts. */
  readonly #base: number;
  #broken: string | undefined;
  /** A fault happened and the health check has not passed since: check again at the next entry. */
  #suspect = false;
  #listeners = new Set<(notice: EngineNotice) => void>();
  /** Faults since the module was loaded; for stats and tests. */
  faults = 0;

  constructor(sqlJs: SqlJsLike) {
    this.#sqlJs = sqlJs;
    const { stackSave, stackRestore, _malloc, _free } = sqlJs;
    const hasStack = typeof stackSave === 'function' && typeof stackRestore === 'function';
    this.#stackSave = hasStack ? stackSave : undefined;
    this.#stackRestore = hasStack ? stackRestore : undefined;
    const hasHeap = typeof _malloc === 'function' && typeof _free === 'function';
    this.#malloc = hasHeap ? _malloc : undefined;
    this.#free = hasHeap ? _free : undefined;
    this.#base = hasStack ? stackSave() : -1;
    // The probe's frames shrink once the JIT has compiled it: measure it warm.
    this.#stackDepth = Math.max(stackDepth(), stackDepth(), stackDepth());
  }

  /**
   * Set (with no call, where the stack may be exhausted) when a call into the module threw;
   * cleared when {@link fault} has looked at the error. Still set at the next entry, it means a
   * failure nobody could examine: the engine is then taken as damaged.
   */
  unsettled = false;
  /** How deep the probe recursed with the stack (nearly) empty: what a caller's depth is measured against. */
  readonly #stackDepth: number;
  /** The last fault was examined and contained: the stack pointer it left is put back at the next entry. */
  #unwound = false;
  /** Statements a fault interrupted, freed at the next entry (not where the fault was caught, maybe short of stack). */
  #discarded: Array<{ free(): unknown }> = [];

  /** Why the engine is damaged, or `undefined` while it works. */
  get broken(): string | undefined {
    return this.#broken;
  }

  /** Calls `listener` on every fault; returns the function that stops it. */
  watch(listener: (notice: EngineNotice) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Called before dbcache calls into the module: puts back a stack pointer that an earlier call
   * left unwound, re-checks the engine after a fault, and throws `ENGINE_BROKEN` once it is
   * damaged.
   */
  enter(path: string): void {
    this.#settle(path);
    if (this.#suspect) this.#verify(path);
    if (this.#broken !== undefined) throw this.brokenError(path);
    if (this.#discarded.length > 0) this.#freeDiscarded();
  }

  /** Called where no WebAssembly runs: puts the stack pointer back, and takes a failure nobody examined as damage. */
  #settle(path: string): void {
    if (this.unsettled) {
      this.unsettled = false;
      this.#markBroken('a call into it failed where the stack was too exhausted to examine the failure', path);
    }
    if (this.#watchStack && this.#stackSave!() !== this.#base) {
      // A stack overflow unwound WebAssembly without running its epilogues, so the stack pointer
      // stayed where the overflow left it (each leaks ~100 KiB of the 5 MiB stack until the
      // module is corrupt). No WebAssembly runs now: the stack belongs at its base.
      this.#stackRestore!(this.#base);
      if (!this.#unwound) this.#markBroken('a call into it was unwound where dbcache could not examine it (a caller out of stack)', path);
    }
    this.#unwound = false;
    this.#watchStack = false;
  }

  /** Whether the next entry compares the stack pointer with its base: after a fault dbcache examined. */
  #watchStack = false;

  /** Frees `statement` at the next entry: it was interrupted by a failure (maybe a stack overflow). */
  discard(statement: { free(): unknown }): void {
    this.#discarded.push(statement);
  }

  #freeDiscarded(): void {
    for (const statement of this.#discarded.splice(0)) {
      try {
        statement.free();
      } catch {
        // Its database may be closed already (which freed it).
      }
    }
  }

  /** The error every call gets once the engine is damaged. */
  brokenError(path: string): DbCacheError {
    return new DbCacheError(
      'ENGINE_BROKEN',
      path,
      `The sql.js engine that ${path} runs on (shared by every cache in the process that uses this sql.js) is damaged (${this.#broken ?? 'unknown'}), so no cache on it can be queried, reloaded or opened; restart the process`,
    );
  }

  /**
   * Makes sure sql.js can copy every string and blob of `values` into the module's heap before
   * it binds them: sql.js 1.16 binds a string whose allocation failed as NULL, and copies a blob
   * to address 0 when its allocation failed. Throws `OUT_OF_MEMORY` or `TOO_BIG`.
   */
  reserve(values: readonly unknown[], path: string): void {
    if (this.#malloc !== undefined) this.#reserve(values, path);
  }

  /**
   * Allocates (then frees) what sql.js will allocate, in its order; throws when one does not fit.
   * A short string is first tried at its largest UTF-8 size (3 bytes per UTF-16 unit), which
   * needs no scan; it is measured only when that does not fit.
   */
  #reserve(values: readonly unknown[], path: string): void {
    // The usual case, a few short values: one block as large as all of them (with dlmalloc's
    // per-block overhead) fits if they do, since sql.js carves them out of it once it is free.
    let total = 0;
    for (let i = 0; i < values.length && total >= 0; i++) {
      const value = values[i];
      if (typeof value === 'string') total = value.length > SHORT ? -1 : total + value.length * 3 + 1 + BLOCK_OVERHEAD;
      else if (value instanceof Uint8Array) total = value.length > SHORT ? -1 : total + value.length + BLOCK_OVERHEAD;
    }
    if (total === 0) return;
    if (total > 0) {
      const pointer = this.#malloc!(total);
      if (pointer !== 0) {
        this.#free!(pointer);
        return;
      }
    }
    let sizes: number[] | undefined;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      let bytes: number;
      if (typeof value === 'string') {
        if (value.length > MAX_VALUE_BYTES) throw tooBig(path, i, 'string', value.length);
        bytes = value.length * 3 + 1;
        // A long string is measured: its upper bound could grow the heap (which never shrinks) for nothing.
        if (value.length > 1 << 20) {
          bytes = utf8Length(value);
          if (bytes > MAX_VALUE_BYTES) throw tooBig(path, i, 'string', bytes);
          bytes += 1;
        }
      } else if (value instanceof Uint8Array) {
        bytes = value.length;
        if (bytes > MAX_VALUE_BYTES) throw tooBig(path, i, 'blob', bytes);
      } else {
        continue;
      }
      (sizes ??= new Array<number>(values.length).fill(-1))[i] = bytes;
    }
    if (sizes !== undefined && !this.#fits(sizes)) {
      // Measure the strings exactly before saying no.
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (typeof value === 'string') sizes[i] = utf8Length(value) + 1;
      }
      const index = this.#fits(sizes, true);
      if (index !== true) {
        throw new DbCacheError(
          'OUT_OF_MEMORY',
          path,
          `Binding parameter ${index + 1} (${sizes[index]} bytes) for a query on ${path} failed: the sql.js heap (at most 2 GiB, shared by every cache) has no room for it; nothing was bound and the cache is unchanged`,
        );
      }
    }
  }

  /** Whether blocks of `sizes` (negative: none) can all be allocated at once; with `which`, the first that cannot. */
  #fits(sizes: readonly number[]): boolean;
  #fits(sizes: readonly number[], which: true): number | true;
  #fits(sizes: readonly number[], which = false): boolean | number {
    const malloc = this.#malloc!;
    const free = this.#free!;
    const taken: number[] = [];
    try {
      for (let i = 0; i < sizes.length; i++) {
        const bytes = sizes[i]!;
        if (bytes < 0) continue;
        const pointer = malloc(bytes);
        if (pointer === 0) return which ? i : false;
        taken.push(pointer);
      }
      return true;
    } finally {
      for (let i = taken.length - 1; i >= 0; i--) free(taken[i]!);
    }
  }

  /**
   * Turns what a call into the module threw into a DbCacheError. After a stack overflow or a
   * trap the engine is checked at its next use (and in a microtask, which also tells the
   * watchers): the handler may itself be short of stack.
   */
  fault(error: unknown, path: string, what: string): DbCacheError {
    this.unsettled = false;
    if (error instanceof DbCacheError) return error;
    const trap = trapKind(error);
    if (trap === undefined) {
      const reason = describe(error);
      const code = sqliteCode(error, reason);
      const next = code === 'OUT_OF_MEMORY' ? 'the sql.js heap (at most 2 GiB) is shared by every cache; the cache is unchanged' : 'the cache is unchanged';
      return new DbCacheError(code, path, `${what} failed: ${reason}${missingModuleHint(error)}; ${next}`, { cause: error });
    }
    this.faults++;
    if (trap === 'runtime') {
      this.#markBroken(`a call trapped: ${describe(error)}`, path);
    } else if (trap === 'stack' && stackDepth() < this.#stackDepth / 4) {
      // The engine overflowed soon after it was entered, so the overflow may have struck anywhere
      // in it (mid-way through the allocator, say), not deep in one of SQLite's recursions.
      this.#markBroken('a stack overflow struck it where the caller had left little stack, so it may have been interrupted anywhere', path);
    }
    if (this.#broken !== undefined) return this.brokenError(path);
    this.#suspect = true;
    this.#unwound = true;
    this.#watchStack = this.#base >= 0;
    const reason = trap === 'stack' ? 'it ran out of stack (deep recursion, e.g. a long LIKE or GLOB pattern)' : `it failed (${describe(error)})`;
    const failure = new DbCacheError(
      'ENGINE',
      path,
      `${what} failed inside the sql.js engine: ${reason}; the statement was discarded and the engine is checked before its next use`,
      { cause: error },
    );
    this.#later(failure, path);
    return failure;
  }

  /** One microtask per burst of faults: check the engine on a short stack, then tell the watchers. */
  #later(failure: DbCacheError | undefined, path: string): void {
    if (failure !== undefined) this.#lastFault = failure;
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      const error = this.#lastFault;
      this.#lastFault = undefined;
      this.#settle(path);
      if (this.#suspect) this.#verify(path);
      if (this.#broken !== undefined) {
        if (this.#toldBroken) return;
        this.#toldBroken = true;
        this.#notify({ error: this.brokenError(path), broken: true });
      } else if (error !== undefined) {
        this.#notify({ error, broken: false });
      }
    });
  }

  #queued = false;
  #lastFault: DbCacheError | undefined;
  #toldBroken = false;

  /** Proves the module still computes a known answer; marks it broken if not. */
  #verify(path: string): void {
    const health = this.#check();
    if (health === 'ok') this.#suspect = false;
    else if (health === 'broken') this.#markBroken(this.#lastProblem, path);
  }

  #markBroken(reason: string, path: string): void {
    this.#suspect = false;
    if (this.#broken !== undefined) return;
    this.#broken = reason;
    this.#discarded.length = 0;
    this.#later(undefined, path);
  }

  #lastProblem = '';

  #check(): Health {
    const mark = this.#base;
    let db: { exec(sql: string): unknown; close(): void } | undefined;
    try {
      db = new this.#sqlJs.Database();
      const result = db.exec(CHECK_SQL) as Array<{ values: unknown[][] }>;
      const answer = String(result[0]?.values[0]);
      if (answer !== CHECK_ANSWER) {
        this.#lastProblem = `a health check computed ${answer} instead of ${CHECK_ANSWER}`;
        return 'broken';
      }
      if (mark >= 0 && this.#stackSave!() !== mark) {
        this.#lastProblem = 'its stack pointer moved during a health check';
        return 'broken';
      }
      return 'ok';
    } catch (error) {
      const trap = trapKind(error);
      if (mark >= 0 && trap === 'stack') this.#stackRestore!(mark);
      // Out of memory or out of stack proves nothing either way: check again at the next call.
      if (trap === 'stack' || /out of memory/i.test(describe(error))) return 'unknown';
      this.#lastProblem = `a health check failed: ${describe(error)}`;
      return 'broken';
    } finally {
      try {
        db?.close();
      } catch {
        // A failed check already said what matters.
      }
    }
  }

  #notify(notice: EngineNotice): void {
    for (const listener of this.#listeners) {
      try {
        listener(notice);
      } catch {
        // The caches' listeners log and emit; a failure there must not stop the others.
      }
    }
  }
}

/** Values up to this many bytes (or UTF-16 units) are reserved together in one block. */
const SHORT = 64 * 1024;
/** What dlmalloc adds to each block (header and alignment), generously. */
const BLOCK_OVERHEAD = 32;

const engines = new WeakMap<SqlJsLike, Engine>();

/** The one Engine of a sql.js module. */
export function engineOf(sqlJs: SqlJsLike): Engine {
  let engine = engines.get(sqlJs);
  if (engine === undefined) {
    engine = new Engine(sqlJs);
    engines.set(sqlJs, engine);
  }
  return engine;
}

/** Whether `error` is the runtime's "Maximum call stack size exceeded" (V8, JavaScriptCore). */
export function isStackOverflow(error: unknown): boolean {
  // No regular expression: compiling one can itself overflow where this runs (Deno).
  return (error instanceof RangeError || (error instanceof Error && error.name === 'InternalError')) && (error.message.includes('stack') || error.message.includes('recursion'));
}

/**
 * A stack overflow, a WebAssembly trap (out-of-bounds access, `unreachable`: evidence of damage),
 * or a JavaScript failure inside sql.js's own glue code.
 */
function trapKind(error: unknown): 'stack' | 'runtime' | 'script' | undefined {
  if (!(error instanceof Error)) return undefined; // sql.js throws strings for its own misuse errors
  if (tooLongForJavaScript(error)) return undefined;
  if (error instanceof RangeError || error.name === 'InternalError') return isStackOverflow(error) ? 'stack' : undefined;
  if (error.name === 'RuntimeError') return 'runtime';
  if (error instanceof TypeError || error instanceof ReferenceError) return 'script';
  return undefined;
}

/**
 * A result too long for a JavaScript string: Node's TextDecoder says "Cannot create a string
 * longer than 0x1fffffe8 characters", Deno's "buffer exceeds maximum length".
 */
function tooLongForJavaScript(error: Error): boolean {
  return (error as { code?: unknown }).code === 'ERR_STRING_TOO_LONG' || error.message.includes('exceeds maximum length');
}

let probed = 0;

function probe(): void {
  probed++;
  probe();
}

/** How many frames of a small function still fit on the stack from here. */
function stackDepth(): number {
  probed = 0;
  try {
    probe();
  } catch {
    // the end of the stack
  }
  return probed;
}

/** The code for an error SQLite reported, or JavaScript raised while copying a result out. */
function sqliteCode(error: unknown, reason: string): DbCacheErrorCode {
  if (error instanceof RangeError) {
    // "Invalid string length", "Array buffer allocation failed", "Invalid typed array length".
    return /alloc/i.test(reason) ? 'OUT_OF_MEMORY' : 'TOO_BIG';
  }
  if (error instanceof Error && tooLongForJavaScript(error)) return 'TOO_BIG';
  if (/^out of memory$/i.test(reason)) return 'OUT_OF_MEMORY';
  if (/^string or blob too big$/i.test(reason)) return 'TOO_BIG';
  return 'QUERY';
}

/** UTF-8 bytes of `text`, natively (Emscripten's own count runs in JavaScript: 1 s per 100 M characters). */
function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function tooBig(path: string, index: number, kind: string, bytes: number): DbCacheError {
  return new DbCacheError(
    'TOO_BIG',
    path,
    `Binding parameter ${index + 1} (a ${kind} of ${bytes} bytes) for a query on ${path} failed: SQLite takes at most ${MAX_VALUE_BYTES} bytes; nothing was bound and the cache is unchanged`,
  );
}
