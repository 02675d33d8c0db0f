import { createRequire } from 'node:module';

/** The part of better-sqlite3's statement API the benchmarks use (the package ships no types here). */
export interface BetterStatement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  raw(toggle?: boolean): BetterStatement;
}

/** The part of a better-sqlite3 `Database` the benchmarks use. */
export interface BetterDatabase {
  exec(sql: string): BetterDatabase;
  prepare(sql: string): BetterStatement;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}

export type BetterDatabaseConstructor = new (filenameOrBuffer?: string | Buffer, options?: { readonly?: boolean }) => BetterDatabase;

const require = createRequire(import.meta.url);

/** better-sqlite3 (native SQLite), loaded through `require` since it is CommonJS. */
export const BetterSqlite3 = require('better-sqlite3') as BetterDatabaseConstructor;

/** The SQLite version better-sqlite3 was built with. */
export function betterSqliteVersion(): string {
  const db = new BetterSqlite3(':memory:');
  try {
    return String((db.prepare('SELECT sqlite_version()').raw().get() as unknown[])[0]);
  } finally {
    db.close();
  }
}
