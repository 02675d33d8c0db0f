import { isStackOverflow, type Engine } from './engine.ts';
import { DbCacheError } from './errors.ts';
import type { Logger } from './logger.ts';
import { namedParameters, toSqlJsParams } from './params.ts';
import { freezeRow, freezeRows, NO_ROW, ResultMemo } from './result-memo.ts';
import type { SqlJsDatabase, SqlJsStatement } from './sqljs.ts';
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
}

/** How a row is returned: an object keyed by column, an array of values, or the first value alone. */
export type RowShape = 'object' | 'array' | 'first';

/** The memo's slot for each shape (`get`; `all` adds 3). */
const SHAPE_SLOT: Record<RowShape, number> = { object: 0, array: 1, first: 2 };

/** One sql.js statement with what we learned about it at prepare time. */
class CompiledStatement {
  readonly raw: SqlJsStatement;
  readonly columns: string[];
  readonly named: string[];
  busy = false;
  /** A stack overflow or a trap unwound it mid-step: never reused. */
  discarded = false;

  constructor(raw: SqlJsStatement, sql: string) {
    this.raw = raw;
    this.columns = raw.getColumnNames();
    this.named = namedParameters(sql);
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
  #rowConfig: { useBigInt: boolean };
  /** What sql.js threw last, set where it was caught (maybe short of stack) and turned into a DbCacheError by the public method. */
  #engineError: unknown = NO_ERROR;
  #memo: ResultMemo | undefined;
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

  constructor(db: SqlJsDatabase, generation: number, version: string, bytes: number, settings: QuerySettings) {
    this.#db = db;
    this.generation = generation;
    this.version = version;
    this.bytes = bytes;
    this.settings = settings;
    this.#rowConfig = { useBigInt: settings.bigint };
  }

  /**
   * Marks the end of writing (after the overlay and `query_only`): from now on identical queries
   * may return remembered results.
   */
  seal(reopen: (() => SqlJsDatabase) | undefined): void {
    this.#reopen = reopen;
    if (this.settings.memoEntries > 0) this.#memo = new ResultMemo(this.settings.memoEntries);
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
    this.#assertOpen();
    try {
      this.#guard(() => this.#db.exec(sql));
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Runs a statement to completion; the counts matter only on the overlay's writable database. */
  run(sql: string, params?: Params): RunResult {
    try {
      const before = this.#counter('total_changes()');
      this.#use(sql, params, (raw) => {
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

  /** A new sql.js statement that the caller owns (frees), for ORMs that drive sql.js themselves. */
  prepareRaw(sql: string): SqlJsStatement {
    this.#assertOpen();
    this.settings.engine.exposeRaw();
    try {
      return this.#guard(() => this.#db.prepare(sql));
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** The first row in `shape`, or `undefined`. */
  get(sql: string, params: Params | undefined, shape: RowShape): unknown {
    try {
      const memo = this.#memo;
      if (memo === undefined) return this.#first(sql, params, shape);
      const place = this.#memoPlace(memo, SHAPE_SLOT[shape], sql, params);
      if (place === undefined) return this.#first(sql, params, shape);
      const [map, key] = place;
      const known = map.get(key);
      if (known !== undefined) return known === NO_ROW ? undefined : known;
      const row = this.#first(sql, params, shape);
      memo.remember(map, key, row === undefined ? NO_ROW : freezeRow(row));
      return row;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Every row in `shape`. */
  all(sql: string, params: Params | undefined, shape: RowShape): unknown[] {
    try {
      const memo = this.#memo;
      if (memo === undefined) return this.#every(sql, params, shape);
      const place = this.#memoPlace(memo, SHAPE_SLOT[shape] + 3, sql, params);
      if (place === undefined) return this.#every(sql, params, shape);
      const [map, key] = place;
      const known = map.get(key);
      if (known !== undefined) return known as unknown[];
      const rows = freezeRows(this.#every(sql, params, shape)) as unknown[];
      memo.remember(map, key, rows);
      return rows;
    } catch (error) {
      throw this.#failure(error);
    }
  }

  #memoPlace(memo: ResultMemo, slot: number, sql: string, params: Params | undefined): [Map<unknown, unknown>, unknown] | undefined {
    const table = memo.table(slot, sql);
    return table === undefined ? undefined : ResultMemo.locate(table, params);
  }

  #first(sql: string, params: Params | undefined, shape: RowShape): unknown {
    const statement = this.#checkout(sql);
    try {
      const values = toSqlJsParams(params, statement.named);
      const { engine, path } = this.settings;
      try {
        engine.enter(path);
        engine.bind(statement.raw, values, path);
        return statement.raw.step() ? this.#row(statement, shape) : undefined;
      } catch (error) {
        // Maybe short of stack here: no calls.
        if (!(error instanceof DbCacheError)) {
          engine.unsettled = true;
          statement.discarded = true;
        }
        this.#engineError = error;
        throw error;
      }
    } finally {
      this.#checkin(sql, statement);
    }
  }

  #every(sql: string, params: Params | undefined, shape: RowShape): unknown[] {
    const statement = this.#checkout(sql);
    try {
      const values = toSqlJsParams(params, statement.named);
      const { engine, path } = this.settings;
      try {
        engine.enter(path);
        engine.bind(statement.raw, values, path);
        const rows: unknown[] = [];
        while (statement.raw.step()) rows.push(this.#row(statement, shape));
        return rows;
      } catch (error) {
        // Maybe short of stack here: no calls.
        if (!(error instanceof DbCacheError)) {
          engine.unsettled = true;
          statement.discarded = true;
        }
        this.#engineError = error;
        throw error;
      }
    } finally {
      this.#checkin(sql, statement);
    }
  }

  columns(sql: string): string[] {
    try {
      return this.#use(sql, undefined, (_raw, statement) => [...statement.columns]);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /** Rows one at a time; the caller holds a lease for as long as the iterator is open. */
  *iterate(sql: string, params: Params | undefined, shape: RowShape): Generator<unknown, void, undefined> {
    // A statement of its own: an iterator that is dropped unfinished must not hold the cached
    // one (every later call with this SQL would prepare afresh). Freed with the database.
    this.#assertOpen();
    let statement: CompiledStatement | undefined;
    try {
      const prepared = this.#guard(() => new CompiledStatement(this.#db.prepare(sql), sql));
      statement = prepared;
      const values = toSqlJsParams(params, prepared.named);
      this.#guard(() => this.settings.engine.bind(prepared.raw, values, this.settings.path), prepared);
      for (;;) {
        const row = this.#guard(() => (prepared.raw.step() ? this.#row(prepared, shape) : END), prepared);
        if (row === END) return;
        yield row;
      }
    } catch (error) {
      throw this.#failure(error);
    } finally {
      if (statement !== undefined && !this.#closed) this.#free(statement);
    }
  }

  #row(statement: CompiledStatement, shape: RowShape): unknown {
    const values = statement.raw.get(null, this.#rowConfig) as SqlValue[];
    if (shape === 'array') return values;
    if (shape === 'first') return values[0] ?? null;
    const row: Row = {};
    const { columns } = statement;
    for (let i = 0; i < columns.length; i++) row[columns[i]!] = values[i]!;
    return row;
  }

  /** Binds `params` (which also resets the statement) and runs `fn` on the checked-out statement. */
  #use<T>(sql: string, params: Params | undefined, fn: (raw: SqlJsStatement, statement: CompiledStatement) => T): T {
    const statement = this.#checkout(sql);
    try {
      const values = toSqlJsParams(params, statement.named);
      return this.#guard(() => {
        this.settings.engine.bind(statement.raw, values, this.settings.path);
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

  /** The cached statement for `sql`, or a private one while the cached one is in use (re-entrancy). */
  #checkout(sql: string): CompiledStatement {
    this.#assertOpen();
    const cached = this.#statements.get(sql);
    if (cached !== undefined && !cached.busy) {
      cached.busy = true;
      return cached;
    }
    const statement = this.#guard(() => new CompiledStatement(this.#db.prepare(sql), sql));
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
    const { engine, path } = this.settings;
    try {
      engine.enter(path);
      return fn();
    } catch (error) {
      // Maybe short of stack here: no calls. A statement interrupted mid-step is never reused.
      if (!(error instanceof DbCacheError)) {
        engine.unsettled = true;
        if (statement !== undefined) statement.discarded = true;
      }
      this.#engineError = error;
      throw error;
    }
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
    if (failure.code === 'ENGINE') this.#taint();
    return failure;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.settings.engine.broken === undefined) {
        this.settings.engine.enter(this.settings.path);
        for (const statement of this.#statements.values()) statement.raw.free();
        this.#db.close();
      }
    } catch (error) {
      this.settings.logger.warn(`Closing generation ${this.generation} of ${this.settings.path} failed inside sql.js: ${String(error)}`);
    } finally {
      this.#statements.clear();
      this.#memo = undefined;
      this.settings.onClose(this);
    }
  }
}

/** `iterate`'s marker for "no more rows" (a row may be `undefined` in no shape, but be explicit). */
const END = Symbol('end');

/** `#engineError` when nothing is pending. */
const NO_ERROR = Symbol('no error');

interface Forgotten {
  readonly core: SnapshotCore;
  readonly what: string;
}

const forgottenLeases = new FinalizationRegistry<Forgotten>(({ core, what }) => {
  core.settings.logger.warn(
    `A ${what} on generation ${core.generation} of ${core.settings.path} was garbage-collected without being released; release leases when done so old versions are freed promptly`,
  );
  core.release();
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

/** The read methods over whichever snapshot `core()` returns when they run. */
export abstract class QueryMethods implements Queryable {
  protected abstract core(): SnapshotCore;

  get<R = Row>(sql: string, params?: Params): R | undefined {
    return this.core().get(sql, params, 'object') as R | undefined;
  }

  all<R = Row>(sql: string, params?: Params): R[] {
    return this.core().all(sql, params, 'object') as R[];
  }

  values(sql: string, params?: Params): SqlValue[][] {
    return this.core().all(sql, params, 'array') as SqlValue[][];
  }

  iterate<R = Row>(sql: string, params?: Params): IterableIterator<R> {
    return this.iterateAs<R>(sql, params, 'object');
  }

  prepare<R = Row>(sql: string): Statement<R> {
    this.core().columns(sql);
    return new BoundStatement<R>(this, sql);
  }

  /** @internal `get` in any shape, for statements. */
  getAs(sql: string, params: Params | undefined, shape: RowShape): unknown {
    return this.core().get(sql, params, shape);
  }

  /** @internal `all` in any shape, for statements. */
  allAs(sql: string, params: Params | undefined, shape: RowShape): unknown[] {
    return this.core().all(sql, params, shape);
  }

  /** @internal runs `sql` to completion (writes fail on published snapshots). */
  runOf(sql: string, params?: Params): RunResult {
    return this.core().run(sql, params);
  }

  /** @internal the columns of `sql` on the current snapshot. */
  columnsOf(sql: string): string[] {
    return this.core().columns(sql);
  }

  /** @internal rows one at a time in any shape. */
  iterateAs<R>(sql: string, params: Params | undefined, shape: RowShape): IterableIterator<R> {
    const core = this.core();
    const rows = core.iterate(sql, params, shape);
    // The iterator keeps its snapshot open even if a reload retires it mid-iteration.
    const end = lease(core, rows, 'row iterator');
    const iterator: IterableIterator<R> = {
      next: () => {
        try {
          const step = rows.next();
          if (step.done === true) end();
          return step as IteratorResult<R>;
        } catch (error) {
          end();
          throw error;
        }
      },
      return: (value?: unknown) => {
        rows.return();
        end();
        return { done: true, value: value as R };
      },
      [Symbol.iterator]: () => iterator,
    };
    return iterator;
  }
}

/**
 * A prepared statement; like better-sqlite3's, `raw()` and `pluck()` switch what its `get`, `all`
 * and `iterate` return.
 */
class BoundStatement<R> implements Statement<R> {
  readonly sql: string;
  #owner: QueryMethods;
  #shape: RowShape = 'object';

  constructor(owner: QueryMethods, sql: string) {
    this.#owner = owner;
    this.sql = sql;
  }

  get(params?: Params): R | undefined {
    return this.#owner.getAs(this.sql, params, this.#shape) as R | undefined;
  }

  all(params?: Params): R[] {
    return this.#owner.allAs(this.sql, params, this.#shape) as R[];
  }

  iterate(params?: Params): IterableIterator<R> {
    return this.#owner.iterateAs<R>(this.sql, params, this.#shape);
  }

  values(params?: Params): SqlValue[][] {
    return this.#owner.allAs(this.sql, params, 'array') as SqlValue[][];
  }

  raw(toggle = true): this {
    this.#shape = toggle ? 'array' : 'object';
    return this;
  }

  pluck(toggle = true): this {
    this.#shape = toggle ? 'first' : 'object';
    return this;
  }

  columns(): string[] {
    return this.#owner.columnsOf(this.sql);
  }

  get reader(): boolean {
    return this.columns().length > 0;
  }

  run(params?: Params): RunResult {
    return this.#owner.runOf(this.sql, params);
  }
}

/** A lease on one snapshot, handed out by `cache.snapshot()` and `cache.read()`. */
export class SnapshotLease extends QueryMethods implements Snapshot {
  #core: SnapshotCore;
  #end: (() => void) | undefined;

  constructor(core: SnapshotCore) {
    super();
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
    end?.();
  }

  [Symbol.dispose](): void {
    this.release();
  }

  sqlJsDatabase(): SqlJsCompatible {
    return { prepare: (sql) => this.core().prepareRaw(sql) };
  }

  protected core(): SnapshotCore {
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

/** The still-private database handed to `onReload`. */
export class Overlay extends QueryMethods implements OverlayDatabase {
  #core: SnapshotCore;
  #ended = false;

  constructor(core: SnapshotCore) {
    super();
    this.#core = core;
  }

  exec(sql: string): void {
    this.core().exec(sql);
  }

  run(sql: string, params?: Params): RunResult {
    return this.core().run(sql, params);
  }

  /** The hook returned: a database kept from it must not write into a published version. */
  end(): void {
    this.#ended = true;
  }

  protected core(): SnapshotCore {
    if (this.#ended) {
      throw new DbCacheError(
        'CLOSED',
        this.#core.settings.path,
        `The onReload database of generation ${this.#core.generation} of ${this.#core.settings.path} is only usable while onReload runs`,
      );
    }
    return this.#core;
  }
}
