import { Buffer } from 'node:buffer';
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
  /** Keyed by a type-tagged encoding of the parameters ('' without parameters). */
  readonly byKey: Map<string, unknown>;
}

function isNow(value: string): boolean {
  return value.length === 3 && value.toLowerCase() === 'now';
}

/**
 * Parameter values as one string in which each value carries its type and length, so that two
 * different parameter lists never share a key (unlike JSON, where `Infinity` and `null` agree).
 */
function encodeValues(values: readonly unknown[]): string | undefined {
  let key = '';
  for (const value of values) {
    switch (typeof value) {
      case 'number':
        key += `n${value};`;
        break;
      case 'bigint':
        key += `i${value};`;
        break;
      case 'boolean':
        key += value ? 'b1;' : 'b0;';
        break;
      case 'string':
        if (isNow(value)) return undefined;
        key += `s${value.length}:${value}`;
        break;
      default:
        if (value === null) key += 'z;';
        else if (value instanceof Uint8Array) key += `x${value.length}:${Buffer.from(value.buffer, value.byteOffset, value.length).toString('latin1')}`;
        else return undefined;
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
  /** Lower-cased names (user functions not declared deterministic): SQL that mentions one is never memoised. */
  readonly #volatile: ReadonlySet<string>;

  constructor(limit: number, volatile: ReadonlySet<string> = new Set()) {
    this.#limit = limit;
    this.#volatile = volatile;
  }

  /** The table of `sql` in call shape `slot`, or `undefined` when it must not be memoised. */
  table(slot: number, sql: string): MemoTable | undefined {
    const tables = (this.#tables[slot] ??= new Map());
    let table = tables.get(sql);
    if (table === undefined) {
      // SQL built per call (values inlined) would add tables without end: start over past the limit.
      if (tables.size >= this.#limit) tables.clear();
      table = isDeterministic(sql) && !mentions(sql, this.#volatile) ? { byValue: new Map(), byKey: new Map() } : null;
      tables.set(sql, table);
    }
    return table ?? undefined;
  }

  /**
   * Where the result of a call with `params` lives in `table`, or `undefined` when the call must
   * not be memoised (a value that cannot be keyed, or the string 'now', which SQLite's date
   * functions read as the clock).
   */
  static locate(table: MemoTable, params: Params | undefined): [Map<unknown, unknown>, unknown] | undefined {
    if (params === undefined) return [table.byKey, ''];
    if (Array.isArray(params)) {
      if (params.length === 1) {
        const value: unknown = params[0];
        if (typeof value === 'number' || (typeof value === 'string' && !isNow(value))) return [table.byValue, value];
      }
      const key = encodeValues(params);
      return key === undefined ? undefined : [table.byKey, `[${key}`];
    }
    const names = Object.keys(params);
    const key = encodeValues(names.map((name) => (params as Readonly<Record<string, unknown>>)[name]));
    return key === undefined ? undefined : [table.byKey, `{${names.join('\u0001')}\u0002${key}`];
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

/** Whether `sql` contains any of `names` (lower-cased) anywhere, quoted or not: conservative by design. */
function mentions(sql: string, names: ReadonlySet<string>): boolean {
  if (names.size === 0) return false;
  const lower = sql.toLowerCase();
  for (const name of names) if (lower.includes(name)) return true;
  return false;
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
