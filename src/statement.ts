import { analyzeSql } from './sql-guard.ts';
import { fromArguments, type BindInput } from './params.ts';
import { ARRAY, BIGINTS, FIRST, OBJECT, type RowMode } from './row-mode.ts';
import type { RunResult, SqlValue, Statement } from './types.ts';

/** What a statement runs through: the read methods of the cache, a snapshot or the overlay, in any row mode. */
export interface StatementOwner {
  getAs(sql: string, params: BindInput, mode: RowMode): unknown;
  allAs(sql: string, params: BindInput, mode: RowMode): unknown[];
  iterateAs<R>(sql: string, params: BindInput, mode: RowMode): IterableIterator<R>;
  runOf(sql: string, params: BindInput): RunResult;
  columnsOf(sql: string): string[];
  /** Reads and checks `params` once; what it returns is what the statement binds from then on. */
  checkParams(sql: string, params: BindInput): BindInput;
}

const NOT_BOUND: unique symbol = Symbol('not bound');

/**
 * A prepared statement with better-sqlite3's read-side semantics: `raw()`, `pluck()` and
 * `safeIntegers()` stick until switched off, `bind()` fixes the parameters once.
 */
export class BoundStatement<R, O> implements Statement<R, O> {
  readonly source: string;
  #owner: StatementOwner;
  #raw = false;
  #pluck = false;
  #bigint: boolean;
  /** The row mode that `#raw`, `#pluck` and `#bigint` make. */
  #mode: RowMode;
  #bound: BindInput | typeof NOT_BOUND = NOT_BOUND;

  constructor(owner: StatementOwner, sql: string, bigint: boolean) {
    this.#owner = owner;
    this.source = sql;
    this.#bigint = bigint;
    this.#mode = this.#modeNow();
  }

  get sql(): string {
    return this.source;
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
    return this.#owner.getAs(this.source, this.#input(params), this.#mode) as R | undefined;
  }

  all(...params: unknown[]): R[] {
    return this.#owner.allAs(this.source, this.#input(params), this.#mode) as R[];
  }

  iterate(...params: unknown[]): IterableIterator<R> {
    return this.#owner.iterateAs<R>(this.source, this.#input(params), this.#mode);
  }

  values(...params: unknown[]): SqlValue[][] {
    return this.#owner.allAs(this.source, this.#input(params), ARRAY + (this.#bigint ? BIGINTS : 0)) as SqlValue[][];
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
    this.#bound = this.#owner.checkParams(this.source, fromArguments(params));
    return this;
  }

  columns(): string[] {
    const columns = this.#owner.columnsOf(this.source);
    if (columns.length === 0) throw new TypeError('The columns() method is only for statements that return data');
    return columns;
  }

  get reader(): boolean {
    return this.#owner.columnsOf(this.source).length > 0;
  }

  get readonly(): boolean {
    return analyzeSql(this.source).kind === 'read';
  }

  run(...params: unknown[]): RunResult {
    return this.#owner.runOf(this.source, this.#input(params));
  }
}
