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

/**
 * Results of queries on one snapshot, keyed by the call, the SQL and the parameters. A snapshot
 * never changes, so an entry stays true for its whole life. Oldest entries go first past `limit`.
 */
export class ResultMemo {
  readonly #limit: number;
  readonly #entries = new Map<string, unknown>();
  readonly #deterministic = new Map<string, boolean>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The key for this call, or `undefined` when it must not be memoised. */
  key(kind: string, sql: string, params: Params | undefined): string | undefined {
    let deterministic = this.#deterministic.get(sql);
    if (deterministic === undefined) {
      deterministic = isDeterministic(sql);
      if (this.#deterministic.size >= this.#limit) this.#deterministic.clear();
      this.#deterministic.set(sql, deterministic);
    }
    if (!deterministic) return undefined;
    if (params === undefined) return `${kind}\u0000${sql}`;
    let encoded: string;
    try {
      encoded = JSON.stringify(params);
    } catch {
      return undefined; // bigint parameters
    }
    return `${kind}\u0000${sql}\u0000${encoded}`;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  get(key: string): unknown {
    return this.#entries.get(key);
  }

  set<T>(key: string, value: T): T {
    if (this.#entries.size >= this.#limit) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
    return value;
  }
}

/** Freezes an array of rows and each row (blobs inside stay mutable: typed arrays cannot be frozen). */
export function freezeRows<T>(rows: T[]): readonly T[] {
  for (const row of rows) if (typeof row === 'object' && row !== null) Object.freeze(row);
  return Object.freeze(rows);
}
