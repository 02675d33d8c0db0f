import { illegalConstructor } from './errors.ts';
import { analyzeSql } from './sql-guard.ts';
import { fromArguments, type BindInput } from './params.ts';
import { ARRAY, BIGINTS, FIRST, OBJECT, type RowMode } from './row-mode.ts';
import type { Queryable, RunResult, SqlValue, Statement } from './types.ts';

/**
 * What a statement runs through: the read methods of the cache, a snapshot or the overlay, in any
 * row mode. A capability made inside the owner's class and kept in the statement's private field.
 */
export interface StatementOwner {
  getAs(sql: string, params: BindInput, mode: RowMode): unknown;
  allAs(sql: string, params: BindInput, mode: RowMode): unknown[];
  iterateAs<R>(sql: string, params: BindInput, mode: RowMode): IterableIterator<R>;
  runOf(sql: string, params: BindInput): RunResult;
  columnsOf(sql: string): string[];
  readerOf(sql: string): boolean;
  /** Reads and checks `params` once; what it returns is what the statement binds from then on. */
  checkParams(sql: string, params: BindInput): BindInput;
  /** The cache, snapshot or overlay the statement came from (`stmt.database`). */
  database(): Queryable;
}

const NOT_BOUND: unique symbol = Symbol('not bound');

const STATEMENT = Symbol('BoundStatement');

/** A statement of `owner` for `sql`, as `prepare` hands it out. */
export function newStatement<R>(owner: StatementOwner, sql: string, bigint: boolean): Statement<R> {
  return new BoundStatement<R, R>(STATEMENT, owner, sql, bigint);
}

/**
 * A prepared statement with better-sqlite3's read-side semantics: `raw()`, `pluck()` and
 * `safeIntegers()` stick until switched off, `bind()` fixes the parameters once.
 */
class BoundStatement<R, O> implements Statement<R, O> {
  readonly #source: string;
  readonly #owner: StatementOwner;
  #raw = false;
  #pluck = false;
  #bigint: boolean;
  /** The row mode that `#raw`, `#pluck` and `#bigint` make. */
  #mode: RowMode;
  #bound: BindInput | typeof NOT_BOUND = NOT_BOUND;
  /** Iterators of this statement still open. */
  #iterating = 0;

  constructor(key: symbol, owner: StatementOwner, sql: string, bigint: boolean) {
    if (key !== STATEMENT) throw illegalConstructor();
    this.#owner = owner;
    this.#source = sql;
    this.#bigint = bigint;
    this.#mode = this.#modeNow();
  }

  get source(): string {
    return this.#source;
  }

  get sql(): string {
    return this.#source;
  }

  get database(): Queryable {
    return this.#owner.database();
  }

  get busy(): boolean {
    return this.#iterating > 0;
  }

  #modeNow(): RowMode {
    return (this.#pluck ? FIRST : this.#raw ? ARRAY : OBJECT) + (this.#bigint ? BIGINTS : 0);
  }

  #input(args: unknown[]): BindInput {
    if (this.#bound === NOT_BOUND) return fromArguments(args);
    if (args.length > 0) throw new TypeError('This statement already has bound parameters');
    return this.#bound;
  }

  get(...params: unknown[]): R | undefined {
    return this.#owner.getAs(this.#source, this.#input(params), this.#mode) as R | undefined;
  }

  all(...params: unknown[]): R[] {
    return this.#owner.allAs(this.#source, this.#input(params), this.#mode) as R[];
  }

  iterate(...params: unknown[]): IterableIterator<R> {
    const rows = this.#owner.iterateAs<R>(this.#source, this.#input(params), this.#mode);
    this.#iterating++;
    let open = true;
    const done = (): void => {
      if (open) this.#iterating--;
      open = false;
    };
    const iterator: IterableIterator<R> = {
      next: () => {
        if (!open) return { value: undefined as R, done: true };
        try {
          const step = rows.next();
          if (step.done === true) done();
          return step;
        } catch (error) {
          done();
          throw error;
        }
      },
      return: (value?: unknown) => {
        const result = open ? rows.return!(value) : undefined;
        done();
        return result ?? { value: value as R, done: true };
      },
      [Symbol.iterator]: () => iterator,
    };
    return iterator;
  }

  values(...params: unknown[]): SqlValue[][] {
    return this.#owner.allAs(this.#source, this.#input(params), ARRAY + (this.#bigint ? BIGINTS : 0)) as SqlValue[][];
  }

  #requireReader(method: string): void {
    if (!this.reader) throw new TypeError(`The ${method}() method is only for statements that return data`);
  }

  raw(toggle = true): never {
    this.#requireReader('raw');
    this.#raw = toggle;
    if (toggle) this.#pluck = false;
    this.#mode = this.#modeNow();
    return this as never;
  }

  pluck(toggle = true): never {
    this.#requireReader('pluck');
    this.#pluck = toggle;
    if (toggle) this.#raw = false;
    this.#mode = this.#modeNow();
    return this as never;
  }

  safeIntegers(toggle = true): this {
    this.#bigint = toggle;
    this.#mode = this.#modeNow();
    return this;
  }

  bind(...params: unknown[]): this {
    if (this.#bound !== NOT_BOUND) throw new TypeError('The bind() method can only be invoked once per statement object');
    // Read once, into values of the statement's own: changing the caller's array, object or
    // buffer later changes nothing.
    this.#bound = this.#owner.checkParams(this.#source, fromArguments(params));
    return this;
  }

  columns(): string[] {
    const columns = this.#owner.columnsOf(this.#source);
    if (columns.length === 0) throw new TypeError('The columns() method is only for statements that return data');
    return columns;
  }

  get reader(): boolean {
    return this.#owner.readerOf(this.#source);
  }

  get readonly(): boolean {
    return analyzeSql(this.#source).kind === 'read';
  }

  run(...params: unknown[]): RunResult {
    return this.#owner.runOf(this.#source, this.#input(params));
  }
}
