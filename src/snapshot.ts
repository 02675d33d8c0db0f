import { isStackOverflow, type Engine } from './engine.ts';
import { DbCacheError, describe, illegalConstructor } from './errors.ts';
import type { Logger } from './logger.ts';
import { newOrmHandle, type OrmOwner } from './orm-handle.ts';
import { volatileViews } from './deterministic-sql.ts';
import { applyBinding, type BindInput, BoundValues, describeParams, isNamedObject, type PlainValue, readBinding, type RealBinder, SpreadArgs, wellFormed } from './params.ts';
import { freezeRow, freezeRows, NO_ROW, ResultMemo } from './result-memo.ts';
import { ARRAY, BIGINTS, FIRST, OBJECT, rowObject, type RowMode } from './row-mode.ts';
import { analyzeSql, assertOneStatement, overlayRefusal, type SqlAnalysis } from './sql-guard.ts';
import { insideUserFunction, takeFunctionFailure, type RowReader, type SqlJsDatabase, type SqlJsStatement } from './sqljs.ts';
import { newStatement } from './statement.ts';
import type { OverlayDatabase, Params, Queryable, Row, RunResult, Snapshot, SqlJsCompatible, SqlValue, Statement } from './types.ts';

/** Settings every snapshot of one cache shares. */
export interface QuerySettings {
  readonly path: string;
  readonly bigint: boolean;
  readonly maxStatements: number;
  /** Results memoised per snapshot (0: no memo). */
  readonly memoEntries: number;
  readonly logger: Logger;
  /** The sql.js module every cache shares, and what keeps it sound. */
  readonly engine: Engine;
  /** Told when a version was interrupted by an engine fault and cannot be rebuilt in place. */
  readonly onTainted: (core: SnapshotCore) => void;
  /** Told when a snapshot's database has been closed. */
  readonly onClose: (core: SnapshotCore) => void;
  /** Binds whole numbers as REAL, like better-sqlite3 (absent: sql.js's own binding). */
  readonly bindReal?: RealBinder | undefined;
  /** Reads number-mode rows straight from SQLite (absent: sql.js's `get()`). */
  readonly rows?: RowReader | undefined;
  /** Lower-cased names of user functions not declared deterministic: the memo leaves SQL naming one alone. */
  readonly volatileFunctions?: ReadonlySet<string> | undefined;
  /** Lower-cased names of user functions declared deterministic: the memo may remember SQL that calls them. */
  readonly deterministicFunctions?: ReadonlySet<string> | undefined;
}

/** The memo's slots: `get` in each row mode, then `all` from here on. */
const ALL_SLOTS = 6;
const NUMBER_ROWS = { useBigInt: false };
const BIGINT_ROWS = { useBigInt: true };

const NO_DATA_MESSAGE = 'This statement does not return data. Use run() instead';

/** The views of the main and temp schemas, for the memo. */
const VIEWS_SQL = "SELECT name, sql FROM sqlite_schema WHERE type = 'view' UNION ALL SELECT name, sql FROM temp.sqlite_schema WHERE type = 'view'";

/** Who called a read method: told to throw `CLOSED` if the caller's values released its lease or closed its cache. */
export interface CallOwner {
  assertUsable(): void;
}

/** One sql.js statement with what we learned about it at prepare time. */
class CompiledStatement {
  readonly raw: SqlJsStatement;
  readonly columns: string[];
  readonly analysis: SqlAnalysis;
  /** A column is named `__proto__`: rows are built by {@link rowObject}, never by assignment. */
  readonly protoColumn: boolean;
  busy = false;
  /** A stack overflow or a trap unwound it mid-step: never reused. */
  discarded = false;

  constructor(raw: SqlJsStatement, analysis: SqlAnalysis) {
    this.raw = raw;
    this.columns = raw.getColumnNames();
    this.analysis = analysis;
    this.protoColumn = this.columns.includes('__proto__');
  }
}

/**
 * One version of the database: a private sql.js Database, its statement cache and its lease
 * count. It is closed when it has been retired and no lease holds it any more.
 */
export class SnapshotCore {
  readonly generation: number;
  readonly version: string;
  /** Size of the image it was built from. */
  readonly bytes: number;
  readonly settings: QuerySettings;
  #db: SqlJsDatabase;
  #statements = new Map<string, CompiledStatement>();
  #leases = 0;
  #retired = false;
  #closed = false;
  /** The row mode of the read methods: objects, with bigints when the cache says so. */
  readonly objectMode: RowMode;
  #memo: ResultMemo | undefined;
  /**
   * Until sealed, the overlay may write: no statement may be left mid-result (it would lock its
   * table). Once sealed, only SQL that reads reaches `prepare`, and the file refuses writes.
   */
  #sealed = false;
  #sealStorage: () => void;
  /** What sql.js threw last, set where it was caught (maybe short of stack) and turned into a DbCacheError by the public method. */
  #engineError: unknown = NO_ERROR;
  /** Opens the version's image afresh, set up as it is now; undefined when onReload wrote into it. */
  #reopen: (() => SqlJsDatabase) | undefined;
  /**
   * A stack overflow unwound the database mid-statement: SQLite's own bookkeeping (the count of
   * running statements, say) stays wrong, and the connection would, for instance, never recover
   * from its next out-of-memory. It is reopened from the image before its next use.
   */
  #tainted = false;
  /** Tainted, and it cannot be reopened: every use fails until a reload replaces it. */
  #dead = false;
  /** Makes room for big parameters before sql.js copies them into the shared heap. */
  #reserve = (values: readonly unknown[]): void => this.settings.engine.reserve(values, this.settings.path);

  constructor(db: SqlJsDatabase, generation: number, version: string, bytes: number, settings: QuerySettings, sealStorage: () => void = () => {}) {
    this.#db = db;
    this.generation = generation;
    this.version = version;
    this.bytes = bytes;
    this.settings = settings;
    this.objectMode = settings.bigint ? OBJECT + BIGINTS : OBJECT;
    this.#sealStorage = sealStorage;
  }

  get sealed(): boolean {
    return this.#sealed;
  }

  /**
   * Marks the end of writing (after the overlay and `query_only`): from now on identical queries
   * may return remembered results, only SQL that reads is prepared, and the storage throws on any
   * write. `reopen` opens the same version afresh after an engine fault (none when the overlay
   * wrote into the image).
   */
  seal(reopen: (() => SqlJsDatabase) | undefined): void {
    this.#reopen = reopen;
    // The overlay's statements were admitted under the overlay's rules: prepared again if needed.
    for (const statement of this.#statements.values()) statement.raw.free();
    this.#statements.clear();
    this.#sealStorage();
    this.#sealed = true;
    if (this.settings.memoEntries > 0) {
      const volatile = this.#volatileNames();
      if (volatile !== undefined) this.#memo = new ResultMemo(this.settings.memoEntries, volatile, this.settings.deterministicFunctions);
    }
  }

  /**
   * The names the memo leaves SQL alone for: user functions not declared deterministic, and the
   * views whose rows are not deterministic; `undefined`: no memo.
   */
  #volatileNames(): ReadonlySet<string> | undefined {
    try {
      this.#assertOpen();
      const result = this.#guard(() => this.#db.exec(VIEWS_SQL)) as Array<{ values: unknown[][] }>;
      const views = (result[0]?.values ?? []).map(([name, sql]) => [String(name), String(sql)] as const);
      return volatileViews(views, this.settings.volatileFunctions, this.settings.deterministicFunctions);
    } catch (error) {
      this.settings.logger.warn(`The result memo of ${this.settings.path} is off for generation ${this.generation}: ${String(this.#failure(error))}`);
      return undefined;
    }
  }

  /**
   * The analysis of `sql` if it may be prepared and run here: one statement, and on a sealed
   * version only a reader (`TypeError` for statements that return no data when `forRead`, else
   * `READ_ONLY`). Bad SQL is reported first, in better-sqlite3's order: SQLite's own error for the
   * first statement (`QUERY`), then `RangeError` for no statement or more than one.
   */
  admit(sql: string, forRead: boolean): SqlAnalysis {
    if (!this.#sealed) this.refuseForOverlay(sql);
    const analysis = analyzeSql(sql);
    if (analysis.statements === 1 && (analysis.kind === 'read' || (!this.#sealed && analysis.kind !== 'invalid'))) return analysis;
    if (analysis.statements > 0 && (analysis.compilable || !this.#sealed)) {
      // Callers outside this class (the ORM handle) get SQLite's error as a DbCacheError too.
      try {
        this.#describe(sql, analysis);
      } catch (error) {
        throw this.#failure(error);
      }
    }
    assertOneStatement(analysis);
    if (forRead && analysis.kind === 'none') throw new TypeError(NO_DATA_MESSAGE);
    throw this.#readOnly();
  }

  /**
   * Throws `READ_ONLY` when `sql` holds a statement the `onReload` overlay may not run: one that
   * would reach beyond this version (`ATTACH`, `VACUUM INTO`, a PRAGMA that changes the shared
   * engine or how the version is stored). Checked before any statement of the text runs.
   */
  refuseForOverlay(sql: string): void {
    const reason = overlayRefusal(sql);
    if (reason === undefined) return;
    throw new DbCacheError(
      'READ_ONLY',
      this.settings.path,
      `onReload may not run ${reason}; nothing of that SQL ran on generation ${this.generation} of ${this.settings.path}`,
    );
  }

  #readOnly(): DbCacheError {
    return new DbCacheError(
      'READ_ONLY',
      this.settings.path,
      `Generation ${this.generation} of ${this.settings.path} is read-only: only statements that read may run on it (writes, settings, ATTACH and transactions are refused); the version is unchanged`,
    );
  }

  /**
   * Compiles the first statement of `sql` and drops it (never cached: a cached statement runs
   * without passing the guard again): its result columns, or SQLite's error. Only for SQL the
   * guard says is harmless to compile, or on the still-private version.
   *
   * Compiling a statement the guard calls `invalid` is how its SQLite error is found. That is
   * safe on a published version: its first token (after `EXPLAIN [QUERY PLAN]`) is not a word
   * that begins a statement, so SQLite's parser rejects it at that token, before it has reduced a
   * single rule; what acts at compile time (a PRAGMA setter) does so only when its whole
   * statement has been reduced, which a syntax error later in the text does not prevent. Should
   * SQLite compile such a text after all, it is refused.
   */
  #describe(sql: string, analysis: SqlAnalysis): string[] {
    this.#assertOpen();
    const columns = this.#guard(() => {
      const raw = this.#db.prepare(sql);
      try {
        return raw.getColumnNames();
      } finally {
        raw.free();
      }
    });
    if (analysis.kind === 'invalid') throw this.#readOnly();
    return columns;
  }

  acquire(): void {
    this.#leases++;
  }

  release(): void {
    this.#leases--;
    if (this.#retired && this.#leases === 0) this.#close();
  }

  /** No longer the live version: close now, or when the last lease ends. */
  retire(): void {
    this.#retired = true;
    if (this.#leases === 0) this.#close();
  }

  /** Runs SQL without parameters on the private database (pragmas, the overlay's `exec`). */
  exec(sql: string): void {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    try {
      this.#assertOpen();
      this.#guard(() => this.#db.exec(wellFormed(sql)));
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /**
   * Whether the private database has a transaction open (before `seal`). sql.js 1.16 exports no
   * `sqlite3_get_autocommit`; `BEGIN` fails inside a transaction, and an empty one is rolled back.
   */
  inTransaction(): boolean {
    try {
      this.exec('BEGIN');
    } catch (error) {
      if (error instanceof DbCacheError && error.code === 'QUERY') return true;
      throw error;
    }
    this.exec('ROLLBACK');
    return false;
  }

  /** Runs a statement to completion; the counts matter only on the overlay's writable database. */
  run(sql: string, params?: BindInput, owner?: CallOwner): RunResult {
    assertCall(sql, params);
    let compiled: CompiledStatement;
    try {
      if (this.#sealed) this.admit(sql, false);
      compiled = this.#compiled(sql, false);
    } catch (error) {
      throw this.#failure(error);
    }
    const values = this.#read(compiled, params, owner);
    try {
      const before = this.#counter('total_changes()');
      this.#use(sql, values, (raw) => {
        while (raw.step());
      });
      return { changes: this.#counter('total_changes()') - before, lastInsertRowid: this.#counter('last_insert_rowid()') };
    } catch (error) {
      throw this.#failure(error);
    }
  }

  #counter(call: string): number {
    const result = this.#guard(() => this.#db.exec(`SELECT ${call}`)) as Array<{ values: number[][] }>;
    return result[0]?.values[0]?.[0] ?? 0;
  }

  /** The first row in `mode`, or `undefined`. */
  get(sql: string, params: BindInput, mode: RowMode, owner?: CallOwner): unknown {
    const values = this.#valuesFor(sql, params, owner);
    try {
      const memo = this.#memo;
      const table = memo?.table(mode, sql);
      if (table === undefined) return this.#first(sql, values, mode);
      const [map, key] = ResultMemo.locate(table, values);
      const known = map.get(key);
      if (known !== undefined) return known === NO_ROW ? undefined : known;
      const row = this.#first(sql, values, mode);
      memo!.remember(map, key, row === undefined ? NO_ROW : freezeRow(row));
      return row;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Every row in `mode`. */
  all(sql: string, params: BindInput, mode: RowMode, owner?: CallOwner): unknown[] {
    const values = this.#valuesFor(sql, params, owner);
    try {
      const memo = this.#memo;
      const table = memo?.table(mode + ALL_SLOTS, sql);
      if (table === undefined) return this.#every(sql, values, mode);
      const [map, key] = ResultMemo.locate(table, values);
      const known = map.get(key);
      if (known !== undefined) return known as unknown[];
      const rows = freezeRows(this.#every(sql, values, mode)) as unknown[];
      memo!.remember(map, key, rows);
      return rows;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /**
   * The values of `params` for `sql`, read once and before the engine runs: bad SQL is reported
   * first (as better-sqlite3 reports it at prepare), then statements without data, then the
   * values. Errors from the caller's own values (getters, Proxy traps) propagate as they are.
   */
  #valuesFor(sql: string, params: BindInput, owner: CallOwner | undefined): readonly PlainValue[] {
    assertCall(sql, params);
    let compiled: CompiledStatement;
    try {
      compiled = this.#compiled(sql, true);
    } catch (error) {
      throw this.#failure(error);
    }
    if (compiled.columns.length === 0) throw new TypeError(NO_DATA_MESSAGE);
    return this.#read(compiled, params, owner);
  }

  /**
   * Reads the values (the caller's code may run: getters, Proxy traps), then makes sure that code
   * did not release the caller's lease, close its cache or close this version: `CLOSED` then.
   */
  #read(compiled: CompiledStatement, params: BindInput, owner: CallOwner | undefined): readonly PlainValue[] {
    const values = readBinding(compiled.analysis, params);
    owner?.assertUsable();
    if (this.#closed) this.#assertOpen();
    return values;
  }

  /**
   * The statement for `sql` as compiled on this version (its analysis and columns), compiling and
   * caching it first if needed: SQL that SQLite rejects fails here, before any value is read.
   */
  #compiled(sql: string, forRead: boolean): CompiledStatement {
    this.#assertOpen();
    const cached = this.#statements.get(sql);
    if (cached !== undefined) return cached;
    const statement = this.#checkout(sql, forRead);
    this.#checkin(sql, statement);
    return statement;
  }

  #first(sql: string, values: readonly PlainValue[], mode: RowMode): unknown {
    const statement = this.#checkout(sql, true);
    try {
      const { engine, path } = this.settings;
      try {
        engine.enter(path);
        applyBinding(statement.raw, values, this.settings.bindReal, this.#reserve);
        return statement.raw.step() ? this.#row(statement, mode) : undefined;
      } catch (error) {
        this.#interrupted(error, statement);
        throw error;
      }
    } finally {
      this.#checkin(sql, statement);
    }
  }

  #every(sql: string, values: readonly PlainValue[], mode: RowMode): unknown[] {
    const statement = this.#checkout(sql, true);
    try {
      const { engine, path } = this.settings;
      try {
        engine.enter(path);
        applyBinding(statement.raw, values, this.settings.bindReal, this.#reserve);
        const rows: unknown[] = [];
        while (statement.raw.step()) rows.push(this.#row(statement, mode));
        return rows;
      } catch (error) {
        this.#interrupted(error, statement);
        throw error;
      }
    } finally {
      this.#checkin(sql, statement);
    }
  }

  /**
   * The result columns of `sql` (an empty list for statements that return no data), with bad SQL
   * reported as in {@link admit}. On a sealed version a PRAGMA statement that may not be compiled
   * (a setter would act) throws `READ_ONLY`.
   */
  columns(sql: string): string[] {
    try {
      this.#assertOpen();
      const analysis = analyzeSql(sql);
      if (this.#sealed && analysis.kind !== 'read') {
        if (analysis.statements === 0 || !analysis.compilable) {
          assertOneStatement(analysis);
          throw this.#readOnly();
        }
        const columns = this.#describe(sql, analysis);
        assertOneStatement(analysis);
        return columns;
      }
      const statement = this.#checkout(sql, false);
      this.#checkin(sql, statement);
      return [...statement.columns];
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Whether `sql` returns rows (better-sqlite3's `reader`), also for statements a sealed version refuses to run. */
  reader(sql: string): boolean {
    const analysis = analyzeSql(sql);
    if (this.#sealed && analysis.statements === 1 && !analysis.compilable) return analysis.reader ?? false;
    return this.columns(sql).length > 0;
  }

  /**
   * Reports bad SQL as better-sqlite3's `prepare` does, without running anything: SQLite's error
   * for the first statement (`QUERY`), then `RangeError` for no statement or more than one. A
   * statement that may not be compiled here (a PRAGMA setter) is refused when it runs instead.
   */
  check(sql: string): void {
    const analysis = analyzeSql(sql);
    if (this.#sealed && analysis.statements === 1 && !analysis.compilable) return;
    this.columns(sql);
  }

  /** Reads and checks `params` against the parameters of `sql` without running it (`stmt.bind()`): what later calls bind. */
  checkParams(sql: string, params: BindInput): BoundValues {
    return new BoundValues(readBinding(analyzeSql(sql), params));
  }

  /**
   * Rows one at a time; the caller holds a lease for as long as the iterator is open. Bad SQL,
   * values and parameter counts throw here, at the call, not at the first `next()`.
   */
  iterate(sql: string, params: BindInput, mode: RowMode, owner?: CallOwner): Generator<unknown, void, undefined> {
    const values = this.#valuesFor(sql, params, owner);
    try {
      const { analysis } = this.#compiled(sql, true);
      // A statement of its own: an iterator that is dropped unfinished must not hold the cached
      // one (every later call with this SQL would prepare afresh). Freed with the database.
      const statement = this.#guard(() => new CompiledStatement(this.#db.prepare(wellFormed(sql)), analysis));
      try {
        this.#guard(() => applyBinding(statement.raw, values, this.settings.bindReal, this.#reserve), statement);
      } catch (error) {
        this.#free(statement);
        throw error;
      }
      return this.#steps(statement, mode);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  *#steps(statement: CompiledStatement, mode: RowMode): Generator<unknown, void, undefined> {
    try {
      for (;;) {
        const row = this.#guard(() => (statement.raw.step() ? this.#row(statement, mode) : END), statement);
        if (row === END) return;
        yield row;
      }
    } catch (error) {
      throw this.#failure(error);
    } finally {
      if (!this.#closed) this.#free(statement);
    }
  }

  #row(statement: CompiledStatement, mode: RowMode): unknown {
    const rows = this.settings.rows;
    if (rows !== undefined && mode < BIGINTS) {
      if (mode === OBJECT) return statement.protoColumn ? rowObject(statement.columns, rows.values(statement.raw)) : rows.object(statement.raw, statement.columns);
      return mode === ARRAY ? rows.values(statement.raw) : rows.first(statement.raw);
    }
    const values = statement.raw.get(null, mode >= BIGINTS ? BIGINT_ROWS : NUMBER_ROWS) as SqlValue[];
    const shape = mode >= BIGINTS ? mode - BIGINTS : mode;
    if (shape === ARRAY) return values;
    if (shape === FIRST) return values[0] ?? null;
    return rowObject(statement.columns, values);
  }

  /** Binds `values` (read already) and runs `fn` on the checked-out statement. */
  #use<T>(sql: string, values: readonly PlainValue[], fn: (raw: SqlJsStatement, statement: CompiledStatement) => T): T {
    const statement = this.#checkout(sql, false);
    try {
      return this.#guard(() => {
        applyBinding(statement.raw, values, this.settings.bindReal, this.#reserve);
        return fn(statement.raw, statement);
      }, statement);
    } finally {
      this.#checkin(sql, statement);
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new DbCacheError('CLOSED', this.settings.path, `Snapshot generation ${this.generation} of ${this.settings.path} was already closed; take a new snapshot`);
    }
    if (this.#tainted) this.#rebuild();
    if (this.#dead) {
      throw new DbCacheError(
        'ENGINE',
        this.settings.path,
        `Generation ${this.generation} of ${this.settings.path} was interrupted by a failure inside sql.js and cannot be reopened in place (onReload wrote into it); the next reload replaces it`,
      );
    }
  }

  #taint(): void {
    if (this.#reopen !== undefined) {
      this.#tainted = true;
    } else if (!this.#dead) {
      this.#dead = true;
      this.settings.onTainted(this);
    }
  }

  /** Reopens the image on a new connection; the old one's statements (an open iterator's too) die with it. */
  #rebuild(): void {
    this.#tainted = false;
    const old = this.#db;
    this.#statements.clear();
    try {
      this.settings.engine.enter(this.settings.path);
      old.close();
      this.#db = this.#reopen!();
    } catch (error) {
      this.#dead = true;
      this.settings.onTainted(this);
      throw this.settings.engine.fault(error, this.settings.path, `Reopening generation ${this.generation} of ${this.settings.path} after a fault`);
    }
  }

  /**
   * The cached statement for `sql`, or a private one while the cached one is in use (re-entrancy).
   * Only admitted SQL is prepared, so the guard runs once per SQL text and version, not per call.
   */
  #checkout(sql: string, forRead: boolean): CompiledStatement {
    this.#assertOpen();
    const cached = this.#statements.get(sql);
    if (cached !== undefined && !cached.busy) {
      cached.busy = true;
      return cached;
    }
    const analysis = cached?.analysis ?? this.admit(sql, forRead);
    const statement = this.#guard(() => new CompiledStatement(this.#db.prepare(wellFormed(sql)), analysis));
    if (cached === undefined) {
      if (this.#statements.size >= this.settings.maxStatements) this.#evictOldest();
      this.#statements.set(sql, statement);
    }
    statement.busy = true;
    return statement;
  }

  /**
   * Resets at once (also once sealed): a statement left mid-result would keep its row, and its
   * bound parameters, in the heap that every cache shares.
   */
  #checkin(sql: string, statement: CompiledStatement): void {
    statement.busy = false;
    if (this.#closed) return;
    const cached = this.#statements.get(sql) === statement;
    if (!statement.discarded) {
      if (!cached) {
        this.#guard(() => statement.raw.free(), statement);
        return;
      }
      // Right after the call, which entered the engine: no second entry check.
      try {
        statement.raw.reset();
        return;
      } catch (error) {
        this.settings.engine.unsettled = true;
        statement.discarded = true;
        this.#engineError = error;
        this.#statements.delete(sql);
        this.settings.engine.discard(statement.raw);
        throw error;
      }
    }
    if (cached) this.#statements.delete(sql);
    this.settings.engine.discard(statement.raw);
  }

  /** Frees a statement of its own (an iterator's); one a failure interrupted is freed at the next entry. */
  #free(statement: CompiledStatement): void {
    if (statement.discarded) this.settings.engine.discard(statement.raw);
    else this.#guard(() => statement.raw.free(), statement);
  }

  #evictOldest(): void {
    for (const [sql, statement] of this.#statements) {
      if (statement.busy) continue;
      this.#statements.delete(sql);
      statement.raw.free();
      return;
    }
  }

  /** Runs `fn`, which calls into sql.js (and nothing that throws argument errors of ours). */
  #guard<T>(fn: () => T, statement?: CompiledStatement): T {
    try {
      this.settings.engine.enter(this.settings.path);
      return fn();
    } catch (error) {
      this.#interrupted(error, statement);
      throw error;
    }
  }

  /**
   * Notes what sql.js threw, where it was caught: maybe short of stack, so no calls. A statement
   * interrupted mid-step is never reused.
   */
  #interrupted(error: unknown, statement: CompiledStatement | undefined): void {
    if (!(error instanceof DbCacheError)) {
      this.settings.engine.unsettled = true;
      if (statement !== undefined) statement.discarded = true;
    }
    this.#engineError = error;
  }

  /**
   * What a public method throws: errors from sql.js (often plain strings) as a DbCacheError
   * (`QUERY`, `TOO_BIG`, `OUT_OF_MEMORY`, or `ENGINE` after a stack overflow or a trap); our own
   * argument errors unchanged.
   */
  #failure(error: unknown): unknown {
    const fromEngine = error === this.#engineError;
    this.#engineError = NO_ERROR;
    if (!fromEngine && !isStackOverflow(error)) return error;
    const failure = this.settings.engine.fault(error, this.settings.path, `Query on ${this.settings.path} (generation ${this.generation})`);
    // A user function failed: the query fails with its error as the cause (the caller's, never ENGINE).
    const own = failure.code === 'QUERY' ? takeFunctionFailure(error) : undefined;
    if (own !== undefined) return new DbCacheError(own.code, this.settings.path, failure.message, { cause: own.error });
    if (failure.code === 'ENGINE') this.#taint();
    return failure;
  }

  #close(): void {
    if (this.#closed) return;
    // A lease released by a user function: SQLite is inside a query of this engine; close after it.
    if (insideUserFunction()) {
      queueMicrotask(() => this.#close());
      return;
    }
    this.#closed = true;
    try {
      if (this.settings.engine.broken === undefined) {
        this.settings.engine.enter(this.settings.path);
        for (const statement of this.#statements.values()) statement.raw.free();
        this.#db.close();
      }
    } catch (error) {
      this.settings.logger.warn(`Closing generation ${this.generation} of ${this.settings.path} failed inside sql.js: ${describe(error)}`);
    } finally {
      this.#statements.clear();
      this.#memo = undefined;
      this.settings.onClose(this);
    }
  }
}

/** better-sqlite3's message for SQL that is not a string. */
const NOT_A_STRING = 'Expected first argument to be a string';

/**
 * The argument checks that come before anything else (as in better-sqlite3): the SQL is a
 * string; the parameters an array, a plain object or nothing (or a statement's own forms).
 */
function assertCall(sql: unknown, params: unknown): void {
  if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
  if (params === undefined || Array.isArray(params) || SpreadArgs.is(params) || BoundValues.is(params) || isNamedObject(params)) return;
  throw new TypeError(`Expected the parameters to be an array or a plain object, got ${describeParams(params)}`);
}

/** `iterate`'s marker for "no more rows" (a row may be `undefined` in no shape, but be explicit). */
const END = Symbol('end');

/** `#engineError` when nothing is pending. */
const NO_ERROR = Symbol('no error');

interface Forgotten {
  readonly core: SnapshotCore;
  readonly what: string;
}

// A throw out of this callback would be an uncaught exception: the lease is returned first, and
// nothing after it may throw.
const forgottenLeases = new FinalizationRegistry<Forgotten>(({ core, what }) => {
  let failure: unknown = NO_ERROR;
  try {
    core.release();
  } catch (error) {
    failure = error;
  }
  const { logger, path } = core.settings;
  try {
    logger.warn(
      `A ${what} on generation ${core.generation} of ${path} was garbage-collected without being released; release leases when done so old versions are freed promptly`,
    );
    if (failure !== NO_ERROR) logger.error(`Returning that ${what} failed: ${describe(failure)}`);
  } catch {
    // The cache's logger never throws; a logger passed in some other way might.
  }
});

/** Holds `core` until `release` runs or `owner` is garbage-collected (which is logged). */
function lease(core: SnapshotCore, owner: object, what: string): () => void {
  core.acquire();
  const token = {};
  forgottenLeases.register(owner, { core, what }, token);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    forgottenLeases.unregister(token);
    core.release();
  };
}

/**
 * How the read methods of a cache, a snapshot or the overlay, and the statements and ORM handles
 * they hand out, reach a version. Made inside the class that owns it and held only in private
 * fields: nothing reachable from the public objects leads to a version's database.
 */
export interface QueryAccess extends OrmOwner {
  /**
   * Runs `fn` on the version the owner reads now, held open until `fn` returns (so a lease
   * released meanwhile cannot close it under the query). Throws `CLOSED` once the owner can no
   * longer be queried, and a `TypeError` from inside a user function.
   */
  use<T>(fn: (core: SnapshotCore) => T): T;
  /** Passed to a version's read methods: throws `CLOSED` once the owner can no longer be queried. */
  readonly caller: CallOwner;
}

/** How an owner makes row iterators over `core`. */
type RowsOf = (core: SnapshotCore, sql: string, params: BindInput, mode: RowMode, caller: CallOwner) => IterableIterator<unknown>;

/** Accesses made by {@link queryAccess}: the only ones the read methods accept. */
const accesses = new WeakSet<object>();

/**
 * The access of a cache, a snapshot or the overlay: `current` returns the version it reads now
 * (or throws `CLOSED`), `database` the object itself (`stmt.database`), `rows` how its iterators
 * are made (by default each holds a lease on its version until it ends).
 */
export function queryAccess(current: () => SnapshotCore, database: () => Queryable, rows: RowsOf = leasedRows): QueryAccess {
  const enter = (): SnapshotCore => {
    const core = current();
    if (insideUserFunction()) throw reentrant(core.settings.path);
    return core;
  };
  // Told after the caller's values were read: a getter among them may have released the lease or closed the cache.
  const caller: CallOwner = { assertUsable: () => void current() };
  const use = <T>(fn: (core: SnapshotCore) => T): T => {
    const core = enter();
    core.acquire();
    try {
      return fn(core);
    } finally {
      core.release();
    }
  };
  const access: QueryAccess = {
    use,
    caller,
    getAs: (sql, params, mode) => use((core) => core.get(sql, params, mode, caller)),
    allAs: (sql, params, mode) => use((core) => core.all(sql, params, mode, caller)),
    iterateAs: <R>(sql: string, params: BindInput, mode: RowMode) => rows(enter(), sql, params, mode, caller) as IterableIterator<R>,
    runOf: (sql, params) => use((core) => core.run(sql, params, caller)),
    columnsOf: (sql) => use((core) => core.columns(sql)),
    readerOf: (sql) => use((core) => core.reader(sql)),
    checkParams: (sql, params) => use((core) => core.checkParams(sql, params)),
    database,
    all: (sql, params) => use((core) => core.all(sql, params, core.objectMode, caller) as Row[]),
    iterate: (sql, params) => {
      const core = enter();
      return rows(core, sql, params, core.objectMode, caller) as IterableIterator<Row>;
    },
    checkOpen: () => enter().settings.path,
    admitReader: (sql) =>
      use((core) => {
        core.admit(sql, false);
        core.columns(sql);
      }),
  };
  Object.freeze(access);
  accesses.add(access);
  return access;
}

/** What a query from inside a user function throws: SQLite is in the middle of the query that called it. */
function reentrant(path: string): TypeError {
  return new TypeError(
    `${path} cannot be queried from inside a user function: SQLite is in the middle of the query that called the function; read what it needs before that query (or join it in the SQL)`,
  );
}

/** Rows one at a time, holding a lease on `core` until the iterator ends. */
function leasedRows(core: SnapshotCore, sql: string, params: BindInput, mode: RowMode, caller: CallOwner): IterableIterator<unknown> {
  const rows = core.iterate(sql, params, mode, caller);
  // The iterator keeps its snapshot open even if a reload retires it mid-iteration.
  const end = lease(core, rows, 'row iterator');
  const path = core.settings.path;
  const iterator: IterableIterator<unknown> = {
    next: () => {
      if (insideUserFunction()) throw reentrant(path);
      try {
        const step = rows.next();
        if (step.done === true) end();
        return step;
      } catch (error) {
        end();
        throw error;
      }
    },
    return: (value?: unknown) => {
      // Finishing it frees its statement, which may be the one running the user function.
      if (insideUserFunction()) throw reentrant(path);
      rows.return();
      end();
      return { value, done: true };
    },
    [Symbol.iterator]: () => iterator,
  };
  return iterator;
}

/** Options of `pragma()`, as in better-sqlite3. */
export interface PragmaOptions {
  /** Return only the first column of the first row (`undefined` when there is none). @defaultValue `false` */
  readonly simple?: boolean;
}

/** The read methods over whichever version the owner's access reads when they run. */
export abstract class QueryMethods implements Queryable {
  readonly #access: QueryAccess;

  constructor(access: QueryAccess) {
    if (!accesses.has(access)) throw illegalConstructor();
    this.#access = access;
  }

  get<R = Row>(sql: string, params?: Params): R | undefined {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    return this.#access.use((core) => core.get(sql, params, core.objectMode, this.#access.caller)) as R | undefined;
  }

  all<R = Row>(sql: string, params?: Params): R[] {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    return this.#access.use((core) => core.all(sql, params, core.objectMode, this.#access.caller)) as R[];
  }

  values(sql: string, params?: Params): SqlValue[][] {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    return this.#access.use((core) => core.all(sql, params, core.objectMode - OBJECT + ARRAY, this.#access.caller)) as SqlValue[][];
  }

  iterate<R = Row>(sql: string, params?: Params): IterableIterator<R> {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    return this.#access.iterate(sql, params) as IterableIterator<R>;
  }

  prepare<R = Row>(sql: string): Statement<R> {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    // Bad SQL is reported here, as better-sqlite3 does.
    const bigint = this.#access.use((core) => {
      core.check(sql);
      return core.objectMode >= BIGINTS;
    });
    return newStatement<R>(this.#access, sql, bigint);
  }

  pragma(source: string, options?: PragmaOptions): unknown {
    if (typeof source !== 'string') throw new TypeError(NOT_A_STRING);
    if (options !== undefined && options !== null && typeof options !== 'object') throw new TypeError('Expected second argument to be an options object');
    const simple: unknown = options?.simple;
    if (simple !== undefined && typeof simple !== 'boolean') throw new TypeError('Expected the "simple" option to be a boolean');
    const sql = `PRAGMA ${source}`;
    return this.#access.use((core) => {
      // On a published version a setter is refused here (READ_ONLY), before anything compiles it.
      if (core.columns(sql).length === 0) {
        core.run(sql, undefined);
        return simple === true ? undefined : [];
      }
      return simple === true ? core.get(sql, undefined, FIRST + (core.objectMode >= BIGINTS ? BIGINTS : 0)) : core.all(sql, undefined, core.objectMode);
    });
  }
}

const LEASE = Symbol('SnapshotLease');

/** A lease on `core`, as `cache.snapshot()` and `cache.read()` hand it out. */
export function newLease(core: SnapshotCore): Snapshot {
  return new SnapshotLease(LEASE, core);
}

/** A lease on one snapshot, handed out by `cache.snapshot()` and `cache.read()`. */
class SnapshotLease extends QueryMethods implements Snapshot {
  readonly #core: SnapshotCore;
  #end: (() => void) | undefined;
  readonly #access: QueryAccess;
  /** The ORM handles handed out: closed when the lease ends. */
  readonly #handles: SqlJsCompatible[] = [];

  constructor(key: symbol, core: SnapshotCore) {
    if (key !== LEASE) throw illegalConstructor();
    const access = queryAccess(
      () => this.#usable(),
      () => this,
    );
    super(access);
    this.#access = access;
    this.#core = core;
    this.#end = lease(core, this, 'snapshot lease');
  }

  get generation(): number {
    return this.#core.generation;
  }

  get version(): string {
    return this.#core.version;
  }

  release(): void {
    const end = this.#end;
    this.#end = undefined;
    // Their statements' open cursors hold the version too.
    for (const handle of this.#handles.splice(0)) handle.close();
    end?.();
  }

  [Symbol.dispose](): void {
    this.release();
  }

  sqlJsDatabase(): SqlJsCompatible {
    const handle = newOrmHandle(this.#access);
    this.#handles.push(handle);
    return handle;
  }

  #usable(): SnapshotCore {
    if (this.#end === undefined) {
      throw new DbCacheError(
        'CLOSED',
        this.#core.settings.path,
        `Snapshot generation ${this.#core.generation} of ${this.#core.settings.path} was already released; take a new snapshot`,
      );
    }
    return this.#core;
  }
}

/** A row iterator of the overlay; `cut` once the hook ended with it open. */
interface OverlayRows {
  readonly rows: Generator<unknown, void, undefined>;
  cut: boolean;
}

const OVERLAY = Symbol('Overlay');

/** The database handed to `onReload`, and `end()`, which the cache calls when the hook is over: how many of its iterators were left open. */
export function newOverlay(core: SnapshotCore): { readonly db: OverlayDatabase; readonly end: () => number } {
  const ends: Array<() => number> = [];
  const db = new Overlay(OVERLAY, core, ends);
  return { db, end: ends[0]! };
}

/**
 * The still-private database handed to `onReload`. It keeps track of the row iterators it hands
 * out: one still open when the hook returns would leave a statement mid-result (an uncommitted
 * write, a transaction) in the version about to be published. What it runs is checked first: no
 * statement that reaches beyond the version (see `overlayRefusal`).
 */
class Overlay extends QueryMethods implements OverlayDatabase {
  readonly #core: SnapshotCore;
  readonly #access: QueryAccess;
  #ended = false;
  /** Iterators handed out and not finished yet. */
  readonly #open = new Set<OverlayRows>();

  constructor(key: symbol, core: SnapshotCore, ends: Array<() => number>) {
    if (key !== OVERLAY) throw illegalConstructor();
    const access = queryAccess(
      () => this.#usable(),
      () => this,
      (version, sql, params, mode, caller) => this.#rows(version, sql, params, mode, caller),
    );
    super(access);
    this.#access = access;
    this.#core = core;
    ends.push(() => this.#end());
  }

  exec(sql: string): void {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    this.#access.use((core) => {
      core.refuseForOverlay(sql);
      core.exec(sql);
    });
  }

  run(sql: string, params?: Params): RunResult {
    if (typeof sql !== 'string') throw new TypeError(NOT_A_STRING);
    return this.#access.use((core) => core.run(sql, params, this.#access.caller));
  }

  /**
   * The overlay's iterators take no lease (the version is not published yet) and end with the
   * hook: afterwards `next()` on one that was still open throws `CLOSED`, never stepping a
   * statement of a published version.
   */
  #rows(core: SnapshotCore, sql: string, params: BindInput, mode: RowMode, caller: CallOwner): IterableIterator<unknown> {
    const entry: OverlayRows = { rows: core.iterate(sql, params, mode, caller), cut: false };
    const open = this.#open;
    const path = core.settings.path;
    open.add(entry);
    const iterator: IterableIterator<unknown> = {
      next: () => {
        if (entry.cut) throw this.#endedError();
        if (!open.has(entry)) return { value: undefined, done: true };
        if (insideUserFunction()) throw reentrant(path);
        try {
          const step = entry.rows.next();
          if (step.done === true) open.delete(entry);
          return step;
        } catch (error) {
          open.delete(entry);
          throw error;
        }
      },
      return: (value?: unknown) => {
        if (open.has(entry) && insideUserFunction()) throw reentrant(path);
        if (open.delete(entry)) entry.rows.return();
        return { value, done: true };
      },
      [Symbol.iterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * The hook returned (or was abandoned): nothing kept from it may reach the version any more.
   * Returns how many of its iterators were still open; each is finished here (its statement freed).
   */
  #end(): number {
    this.#ended = true;
    const left = this.#open.size;
    for (const entry of this.#open) {
      entry.cut = true;
      try {
        entry.rows.return();
      } catch {
        // Its statement dies with the version, which is never published with an iterator left open.
      }
    }
    this.#open.clear();
    return left;
  }

  #endedError(): DbCacheError {
    return new DbCacheError(
      'CLOSED',
      this.#core.settings.path,
      `The onReload database of generation ${this.#core.generation} of ${this.#core.settings.path} is only usable while onReload runs`,
    );
  }

  #usable(): SnapshotCore {
    if (this.#ended) throw this.#endedError();
    return this.#core;
  }
}
