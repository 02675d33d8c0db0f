import type { Params } from './types.ts';

/**
 * SQL whose result can change while the database does not: random values, the clock, and the
 * connection's change counters. Such queries are never memoised.
 */
const NON_DETERMINISTIC =
  /\b(?:random|randomblob|changes|total_changes|last_insert_rowid)\s*\(|\bcurrent_(?:time|date|timestamp)\b|'now'|\b(?:date|time|datetime|julianday|unixepoch)\s*\(\s*\)|\bstrftime\s*\(\s*'[^']*'\s*\)/i;

/** Whether `sql` may be memoised: it reads nothing but the database and its parameters. */
export function isDeterministic(sql: string): boolean {
  return !NON_DETERMINISTIC.test(sql);
}

/** The remembered results of one SQL text in one call shape. */
export interface MemoTable {
  /** Keyed by a lone number or string parameter itself. */
  readonly byValue: Map<number | string, unknown>;
  /** Keyed by the JSON of the parameters ('' without parameters). */
  readonly byJson: Map<string, unknown>;
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

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** The table of `sql` in call shape `slot`, or `undefined` when it must not be memoised. */
  table(slot: number, sql: string): MemoTable | undefined {
    const tables = (this.#tables[slot] ??= new Map());
    let table = tables.get(sql);
    if (table === undefined) {
      table = isDeterministic(sql) ? { byValue: new Map(), byJson: new Map() } : null;
      tables.set(sql, table);
    }
    return table ?? undefined;
  }

  /** Where the result of a call with `params` lives in `table`, or `undefined` if it cannot be keyed (bigint). */
  static locate(table: MemoTable, params: Params | undefined): [Map<unknown, unknown>, unknown] | undefined {
    if (params === undefined) return [table.byJson, ''];
    if (Array.isArray(params) && params.length === 1) {
      const value: unknown = params[0];
      if (typeof value === 'number' || typeof value === 'string') return [table.byValue, value];
    }
    try {
      return [table.byJson, JSON.stringify(params)];
    } catch {
      return undefined;
    }
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
