import { DbCacheError, illegalConstructor } from './errors.ts';
import { isNamedObject, type BindInput } from './params.ts';
import { ARRAY, rowObject } from './row-mode.ts';
import { MAX_PARAMETERS } from './sql-guard.ts';
import type { StatementOwner } from './statement.ts';
import type { Params, Row, RunResult, SqlJsCompatible, SqlJsCompatibleStatement, SqlJsParams, SqlJsValue } from './types.ts';

/** What an ORM handle runs on: the cache (each query on the version live when it starts) or a snapshot lease. */
export interface OrmOwner extends StatementOwner {
  all(sql: string, params?: Params): Row[];
  iterate(sql: string, params?: Params): IterableIterator<Row>;
  /** The database path; throws `CLOSED` once the cache is closed or the lease released. */
  checkOpen(): string;
  /** Admits `sql` as the handle's `prepare` does: one statement that reads (else `READ_ONLY`), compiled now. */
  admitReader(sql: string): void;
}

const HANDLE = Symbol('OrmHandle');
const STATEMENT = Symbol('OrmStatement');

/** An ORM handle over `owner` (the access of a cache or a snapshot lease); throws `CLOSED` when it is closed. */
export function newOrmHandle(owner: OrmOwner): SqlJsCompatible {
  return new OrmHandle(HANDLE, owner);
}

/**
 * The part of a sql.js `Database` that ORM drivers call, over dbcache's own read path: every
 * statement is admitted by the SQL guard, bound by dbcache's binding and read by the snapshot's
 * code. No sql.js object is reachable from it.
 */
class OrmHandle implements SqlJsCompatible {
  readonly #owner: OrmOwner;
  readonly #path: string;
  #closed = false;
  /** How to end each statement's open cursor (and the lease it holds): `close()` ends them all. */
  readonly #cursors = new Set<() => void>();

  constructor(key: symbol, owner: OrmOwner) {
    if (key !== HANDLE) throw illegalConstructor();
    this.#owner = owner;
    this.#path = owner.checkOpen();
  }

  prepare(sql: string, params?: SqlJsParams): SqlJsCompatibleStatement {
    if (typeof sql !== 'string') throw new TypeError('Expected first argument to be a string');
    this.#check();
    this.#owner.admitReader(sql);
    const statement = new OrmStatement(STATEMENT, this.#owner, sql, this.#path, () => this.#check(), this.#cursors);
    if (params !== undefined && params !== null) statement.bind(params);
    return statement;
  }

  /** Closes the handle: its statements throw `CLOSED` from now on, and their open cursors end at once. */
  close(): void {
    this.#closed = true;
    for (const end of [...this.#cursors]) end();
  }

  exec(): never {
    throw notOffered('exec');
  }

  run(): never {
    throw notOffered('run');
  }

  each(): never {
    throw notOffered('each');
  }

  iterateStatements(): never {
    throw notOffered('iterateStatements');
  }

  create_function(): never {
    throw notOffered('create_function');
  }

  create_aggregate(): never {
    throw notOffered('create_aggregate');
  }

  updateHook(): never {
    throw notOffered('updateHook');
  }

  export(): never {
    throw notOffered('export');
  }

  getRowsModified(): never {
    throw notOffered('getRowsModified');
  }

  handleError(): never {
    throw notOffered('handleError');
  }

  #check(): void {
    if (this.#closed) throw new DbCacheError('CLOSED', this.#path, `This sqlJsDatabase() handle of ${this.#path} was closed; take a new one`);
    this.#owner.checkOpen();
  }
}

/**
 * One statement of an {@link OrmHandle}: sql.js's cursor (`bind`, `step`, `get`, `getAsObject`,
 * `reset`, `free`) for Drizzle, better-sqlite3's `reader`, `all`, `iterate`, `run` for Kysely.
 */
class OrmStatement implements SqlJsCompatibleStatement {
  readonly #owner: OrmOwner;
  readonly #sql: string;
  readonly #path: string;
  readonly #checkHandle: () => void;
  readonly #cursors: Set<() => void>;
  readonly #endCursor = (): void => this.#end();
  #bound: BindInput = undefined;
  /** The open cursor: the rows of the current run, which holds a lease on its version until it ends. */
  #rows: IterableIterator<SqlJsValue[]> | undefined;
  #columns: readonly string[] = [];
  #row: SqlJsValue[] | undefined;
  #freed = false;

  constructor(key: symbol, owner: OrmOwner, sql: string, path: string, checkHandle: () => void, cursors: Set<() => void>) {
    if (key !== STATEMENT) throw illegalConstructor();
    this.#owner = owner;
    this.#sql = sql;
    this.#path = path;
    this.#checkHandle = checkHandle;
    this.#cursors = cursors;
  }

  get reader(): boolean {
    this.#check();
    return this.#owner.readerOf(this.#sql);
  }

  bind(params?: SqlJsParams): boolean {
    this.#check();
    this.#end();
    this.#bound = undefined;
    this.#bound = this.#owner.checkParams(this.#sql, copyParams(params));
    return true;
  }

  step(): boolean {
    this.#check();
    let rows = this.#rows;
    if (rows === undefined) {
      this.#columns = this.#owner.columnsOf(this.#sql);
      rows = this.#owner.iterateAs<SqlJsValue[]>(this.#sql, this.#bound, ARRAY);
      this.#rows = rows;
      this.#cursors.add(this.#endCursor);
    }
    let next: IteratorResult<SqlJsValue[]>;
    try {
      next = rows.next();
    } catch (error) {
      this.#end();
      throw error;
    }
    if (next.done === true) {
      // As in SQLite, the next step() runs the statement again.
      this.#end();
      return false;
    }
    this.#row = next.value;
    return true;
  }

  get(params?: SqlJsParams): SqlJsValue[] {
    if (params !== undefined && params !== null) {
      this.bind(params);
      this.step();
    } else {
      this.#check();
    }
    return this.#row === undefined ? [] : this.#row.slice();
  }

  getAsObject(params?: SqlJsParams): Record<string, SqlJsValue> {
    const values = this.get(params);
    return rowObject(this.#columns.slice(0, values.length), values);
  }

  getColumnNames(): string[] {
    this.#check();
    return [...this.#owner.columnsOf(this.#sql)];
  }

  getSQL(): string {
    this.#check();
    return this.#sql;
  }

  getNormalizedSQL(): never {
    throw notOffered('getNormalizedSQL');
  }

  run(params?: SqlJsParams): RunResult {
    this.#check();
    this.#end();
    const input = params === undefined || params === null ? this.#bound : copyParams(params);
    this.#bound = undefined;
    return this.#owner.runOf(this.#sql, input);
  }

  all(params?: SqlJsParams): Row[] {
    this.#check();
    const input = params === undefined || params === null ? this.#bound : copyParams(params);
    return this.#owner.all(this.#sql, input as Params | undefined);
  }

  iterate(params?: SqlJsParams): IterableIterator<Row> {
    this.#check();
    const input = params === undefined || params === null ? this.#bound : copyParams(params);
    const rows = this.#owner.iterate(this.#sql, input as Params | undefined);
    // Registered with the handle like step()'s cursor: closing it (or releasing its snapshot) ends this one too.
    const end = (): void => {
      this.#cursors.delete(end);
      rows.return?.();
    };
    this.#cursors.add(end);
    const iterator: IterableIterator<Row> = {
      next: () => {
        let step: IteratorResult<Row>;
        try {
          this.#check();
          step = rows.next();
        } catch (error) {
          end();
          throw error;
        }
        if (step.done === true) this.#cursors.delete(end);
        return step;
      },
      return: (value?: unknown) => {
        end();
        return { value: value as Row, done: true };
      },
      [Symbol.iterator]: () => iterator,
    };
    return iterator;
  }

  reset(): boolean {
    this.#check();
    this.#end();
    this.#bound = undefined;
    return true;
  }

  /** sql.js frees the copies of bound strings and blobs here; dbcache keeps none between calls. */
  freemem(): void {}

  free(): boolean {
    this.#end();
    this.#freed = true;
    this.#bound = undefined;
    return true;
  }

  /** Ends the open cursor, giving back its lease. */
  #end(): void {
    const rows = this.#rows;
    this.#rows = undefined;
    this.#row = undefined;
    this.#cursors.delete(this.#endCursor);
    rows?.return?.();
  }

  #check(): void {
    try {
      if (this.#freed) throw new DbCacheError('CLOSED', this.#path, `A statement of ${this.#path} was used after free(); prepare it again`);
      this.#checkHandle();
    } catch (error) {
      this.#end();
      throw error;
    }
  }
}

/** The caller's parameters read once, into values of our own: later changes to them change nothing. */
function copyParams(params: SqlJsParams | undefined): BindInput {
  if (params === undefined || params === null) return undefined;
  if (Array.isArray(params)) {
    const length: unknown = params.length;
    // The length is the caller's to claim (a proxy, a sparse array of 2^32 - 1 slots): read no
    // further than a statement can take. More values than parameters is this RangeError anyway.
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) throw new TypeError(`Parameters must be an array or an object; this array's length is ${typeof length === 'number' ? length : typeof length}`);
    if (length > MAX_PARAMETERS) throw new RangeError('Too many parameter values were provided');
    const values = new Array<unknown>(length);
    for (let i = 0; i < length; i++) values[i] = copyValue(params[i]);
    return values;
  }
  if (isNamedObject(params)) {
    const values: Record<string, unknown> = {};
    for (const key of Object.keys(params)) values[key] = copyValue(params[key]);
    return values;
  }
  throw new TypeError(`Parameters must be an array or an object, got ${typeof params}`);
}

/** A blob as a new array of its own bytes (sized by the view itself, not by a property), anything else as it is. */
function copyValue(value: unknown): unknown {
  return value instanceof Uint8Array ? new Uint8Array(value) : value;
}

function notOffered(method: string): TypeError {
  return new TypeError(
    `sqlJsDatabase() offers only prepare() and close(), and statements that read: ${method}() would reach the sql.js database that the cache and its readers share`,
  );
}
