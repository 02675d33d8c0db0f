import { Buffer } from 'node:buffer';
import { isDeterministic } from './deterministic-sql.ts';
import type { PlainValue } from './params.ts';

/** The remembered results of one SQL text in one call shape. */
export interface MemoTable {
  /** Keyed by a lone number or string parameter itself. */
  readonly byValue: Map<number | string, unknown>;
  /** Keyed by a type-tagged encoding of the parameters ('' without parameters). */
  readonly byKey: Map<string, unknown>;
}

/**
 * Parameter values as one string in which each value carries its type and length, so that two
 * different parameter lists never share a key (unlike JSON, where `Infinity` and `null` agree,
 * or `String`, where `-0` and `0` do).
 */
function encodeValues(values: readonly PlainValue[]): string {
  let key = '';
  for (const value of values) {
    switch (typeof value) {
      case 'number':
        key += Object.is(value, -0) ? 'n-0;' : `n${value};`;
        break;
      case 'bigint':
        key += `i${value};`;
        break;
      case 'boolean':
        key += value ? 'b1;' : 'b0;';
        break;
      case 'string':
        key += `s${value.length}:${value}`;
        break;
      default:
        if (value === null) key += 'z;';
        else key += `x${value.length}:${Buffer.from(value.buffer, value.byteOffset, value.length).toString('latin1')}`;
    }
  }
  return key;
}

/** Stands for a remembered "no row" (`get` returning `undefined`). */
export const NO_ROW: unique symbol = Symbol('no row');

/**
 * Results of queries on one snapshot, per call shape and SQL text, keyed by the parameters. A
 * snapshot never changes, so an entry stays true for its whole life. Past `limit` entries the
 * oldest go first (a ring of insertion order: eviction costs the same at any size).
 */
export class ResultMemo {
  readonly #limit: number;
  /** Per call shape (a small integer slot), SQL text → table, or `null` for SQL never memoised. */
  readonly #tables: Array<Map<string, MemoTable | null>> = [];
  readonly #ringTables: Array<Map<unknown, unknown>> = [];
  readonly #ringKeys: unknown[] = [];
  #next = 0;
  /**
   * Lower-cased names SQL may not name to be memoised: user functions not declared deterministic
   * and the version's views whose rows are not deterministic.
   */
  readonly #volatile: ReadonlySet<string>;
  /** Lower-cased names of user functions declared deterministic. */
  readonly #allowed: ReadonlySet<string>;

  constructor(limit: number, volatile: ReadonlySet<string>, allowed: ReadonlySet<string> = new Set()) {
    this.#limit = limit;
    this.#volatile = volatile;
    this.#allowed = allowed;
  }

  /** The table of `sql` in call shape `slot`, or `undefined` when it must not be memoised. */
  table(slot: number, sql: string): MemoTable | undefined {
    const tables = (this.#tables[slot] ??= new Map());
    let table = tables.get(sql);
    if (table === undefined) {
      // SQL built per call (values inlined) would add tables without end: start over past the limit.
      if (tables.size >= this.#limit) tables.clear();
      table = isDeterministic(sql, this.#volatile, this.#allowed) ? { byValue: new Map(), byKey: new Map() } : null;
      tables.set(sql, table);
    }
    return table ?? undefined;
  }

  /**
   * Where the result of a call that bound `values` (in parameter order, as they were read) lives
   * in `table`. Whether SQL may read the clock was decided by its tokens ({@link table}).
   */
  static locate(table: MemoTable, values: readonly PlainValue[]): [Map<unknown, unknown>, unknown] {
    if (values.length === 1) {
      const value = values[0];
      // A Map takes -0 for 0: those bind differently (atan2(0, -0) is π).
      if ((typeof value === 'number' && !Object.is(value, -0)) || typeof value === 'string') return [table.byValue, value];
    }
    return [table.byKey, encodeValues(values)];
  }

  remember(map: Map<unknown, unknown>, key: unknown, value: unknown): void {
    const slot = this.#next;
    const evicted = this.#ringTables[slot];
    if (evicted !== undefined) evicted.delete(this.#ringKeys[slot]);
    this.#ringTables[slot] = map;
    this.#ringKeys[slot] = key;
    this.#next = (slot + 1) % this.#limit;
    map.set(key, value);
  }
}

/** Freezes a row (an object or an array of values); blobs stay mutable: typed arrays cannot be frozen. */
export function freezeRow<T>(row: T): T {
  return typeof row === 'object' && row !== null && !(row instanceof Uint8Array) ? Object.freeze(row) : row;
}

/** Freezes an array of rows and each row. */
export function freezeRows<T>(rows: T[]): readonly T[] {
  for (const row of rows) freezeRow(row);
  return Object.freeze(rows);
}
