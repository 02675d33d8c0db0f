import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { BetterSqlite3, type BetterDatabase } from './better-sqlite3.ts';

export type JournalMode = 'delete' | 'wal';

const CATEGORIES = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];

/**
 * Creates a realistic database of about `targetBytes` at `path`: `items` (integer primary key,
 * text columns, a ~1 KB random blob per row) with a secondary index, a one-row `meta` counter
 * that benchmarks bump for a tiny commit, and an `events(seq)` table for freshness runs.
 * Returns the file size.
 */
export function createDatabase(path: string, targetBytes: number, mode: JournalMode): number {
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(path + suffix, { force: true });
  const db = new BetterSqlite3(path);
  try {
    db.pragma(`journal_mode = ${mode}`);
    db.pragma('synchronous = OFF');
    db.exec(`
      CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        payload BLOB NOT NULL
      );
      CREATE INDEX items_category_name ON items(category, name);
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta VALUES ('counter', 0);
      CREATE TABLE events (seq INTEGER PRIMARY KEY, committed_ns INTEGER NOT NULL, note TEXT);
    `);
    const insert = db.prepare('INSERT INTO items (id, name, category, created_at, payload) VALUES (?, ?, ?, ?, ?)');
    const batch = db.transaction((first: number, count: number) => {
      const blobs = randomBytes(count * 1280);
      for (let i = 0; i < count; i++) {
        const id = first + i;
        const length = 768 + ((id * 7919) % 513); // 768..1280 bytes, ~1 KB on average
        insert.run(id, `item-${id.toString(36).padStart(6, '0')}-${(id * 2654435761) % 100000}`, CATEGORIES[id % CATEGORIES.length], 1_700_000_000_000 + id * 1000, blobs.subarray(i * 1280, i * 1280 + length));
      }
    });
    const pageSize = Number(db.pragma('page_size', { simple: true }));
    const pageCount = () => Number(db.pragma('page_count', { simple: true }));
    let next = 1;
    while (pageCount() * pageSize < targetBytes) {
      // Small batches near the end so the file lands close to the target.
      const remaining = targetBytes - pageCount() * pageSize;
      const count = Math.max(10, Math.min(2000, Math.floor(remaining / 1400)));
      batch(next, count);
      next += count;
    }
    if (mode === 'wal') db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  return fs.statSync(path).size;
}

/**
 * A writer connection in this process (rollback journal, like any other SQLite writer on the
 * file) that makes one tiny commit per `commit()` call.
 */
export class TinyWriter {
  #db: BetterDatabase;
  #bump: ReturnType<BetterDatabase['prepare']>;

  constructor(path: string) {
    this.#db = new BetterSqlite3(path);
    this.#db.pragma('journal_mode = delete');
    // Durability is not what is measured; skipping fsync keeps the untimed part of each rep short.
    this.#db.pragma('synchronous = OFF');
    this.#bump = this.#db.prepare("UPDATE meta SET value = value + 1 WHERE key = 'counter'");
  }

  commit(): void {
    this.#bump.run();
  }

  /** Switches the file's journal mode (WAL keeps a -wal and -shm while this connection is open). */
  journalMode(mode: JournalMode): void {
    const actual = String(this.#db.pragma(`journal_mode = ${mode}`, { simple: true }));
    if (actual !== mode) throw new Error(`journal_mode is ${actual}, wanted ${mode}`);
  }

  close(): void {
    this.#db.close();
  }
}

function literal(value: unknown): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : value > 0 ? '9e999' : value < 0 ? '-9e999' : 'NULL';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  if (value instanceof Uint8Array) return `X'${Buffer.from(value.buffer, value.byteOffset, value.length).toString('hex')}'`;
  throw new TypeError(`cannot dump a ${typeof value}`);
}

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The old Go package's first approach: the database as SQL text (tables, their rows as INSERT
 * statements, then indexes, triggers and views, in one transaction, like Python's `iterdump`),
 * returned as chunks of about `chunkChars` characters so each fits one `exec` call.
 */
export function dumpSql(path: string, chunkChars = 8 << 20): string[] {
  const db = new BetterSqlite3(path, { readonly: true });
  const chunks: string[] = [];
  let parts: string[] = [];
  let size = 0;
  const emit = (statement: string): void => {
    parts.push(statement);
    size += statement.length + 1;
    if (size >= chunkChars) {
      chunks.push(parts.join('\n'));
      parts = [];
      size = 0;
    }
  };
  try {
    const schema = db
      .prepare("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
      .all() as { type: string; name: string; sql: string }[];
    emit('BEGIN;');
    for (const table of schema.filter((entry) => entry.type === 'table')) {
      emit(`${table.sql};`);
      const prefix = `INSERT INTO ${quoteName(table.name)} VALUES(`;
      for (const row of db.prepare(`SELECT * FROM ${quoteName(table.name)}`).raw().iterate() as IterableIterator<unknown[]>) {
        emit(`${prefix}${row.map(literal).join(',')});`);
      }
    }
    for (const entry of schema.filter((item) => item.type !== 'table')) emit(`${entry.sql};`);
    emit('COMMIT;');
    if (parts.length > 0) chunks.push(parts.join('\n'));
  } finally {
    db.close();
  }
  return chunks;
}
