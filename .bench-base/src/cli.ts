import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
// The command line uses only the public API, so the built CLI imports the built library.
import { inspectDatabase, openDbCache, type DbCache, type Row, type SqlValue } from './index.ts';

const USAGE = `Usage:
  dbcache query <db> <sql> [--json]     run a query on a consistent snapshot and print the rows
  dbcache watch <db> [sql] [--json]     keep a live mirror; print every reload (and the query's rows)
  dbcache info <db> [--json]            journal mode, page size, pages, WAL frames, version

Exit codes: 0 success, 1 the database could not be read or the query failed, 2 bad usage.`;

/** Where the CLI writes; injectable for tests. */
interface Output {
  out(line: string): void;
  err(line: string): void;
}

class UsageError extends Error {}

/**
 * Runs the `dbcache` command line with `args` (without the runtime and script) and resolves
 * with the exit code. `watch` runs until `signal` aborts.
 */
export async function runCli(args: readonly string[], output: Output, signal?: AbortSignal): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    });
    const [command, db, sql] = positionals;
    if (values.help || command === 'help') {
      output.out(USAGE);
      return 0;
    }
    if (db === undefined) throw new UsageError(command === undefined ? 'missing command' : `${command} needs a database path`);
    switch (command) {
      case 'query':
        if (sql === undefined || positionals.length > 3) throw new UsageError('query needs exactly <db> and <sql>');
        return await query(db, sql, values.json, output);
      case 'watch':
        if (positionals.length > 3) throw new UsageError('watch takes <db> and an optional <sql>');
        return await watch(db, sql, values.json, output, signal);
      case 'info':
        if (positionals.length > 2) throw new UsageError('info takes only <db>');
        return await info(db, values.json, output);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error)) {
      output.err(`dbcache: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    output.err(`dbcache: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

async function query(path: string, sql: string, json: boolean, output: Output): Promise<number> {
  const cache = await openDbCache(path, { watch: false });
  try {
    printRows(cache, sql, json, output);
    return 0;
  } finally {
    await cache.close();
  }
}

async function watch(path: string, sql: string | undefined, json: boolean, output: Output, signal?: AbortSignal): Promise<number> {
  const cache = await openDbCache(path, { signal });
  const stopped = new Promise<void>((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const show = (generation: number, durationMs: number, bytes: number) => {
    const freshnessMs = Date.now() - newestChange(path);
    if (json) {
      output.out(JSON.stringify({ generation, durationMs: round(durationMs), bytes, freshnessMs: round(freshnessMs) }));
    } else {
      output.out(`generation ${generation}  reload ${durationMs.toFixed(1)} ms  ${formatBytes(bytes)}  fresh ${Math.max(0, freshnessMs).toFixed(0)} ms after the last write`);
    }
    if (sql !== undefined) printRows(cache, sql, json, output);
  };
  cache.subscribe((event) => {
    if (event.type === 'error') {
      output.err(`dbcache: ${event.error.message}`);
      return;
    }
    try {
      show(event.generation, event.durationMs, event.bytes);
    } catch (error) {
      output.err(`dbcache: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  // The watcher never keeps a process alive by itself; the CLI wants exactly that.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    const { lastReloadMs, liveBytes } = cache.stats();
    show(cache.generation, lastReloadMs, liveBytes);
    await stopped;
  } finally {
    clearInterval(keepAlive);
    await cache.close();
  }
  return 0;
}

async function info(path: string, json: boolean, output: Output): Promise<number> {
  const details = await inspectDatabase(path);
  if (json) {
    output.out(JSON.stringify(details));
    return 0;
  }
  const lines: Array<[string, string]> = [
    ['journal mode', details.journalMode],
    ['page size', String(details.pageSize)],
    ['pages', String(details.pages)],
    ['file size', formatBytes(details.fileBytes)],
    ['WAL frames', details.journalMode === 'wal' ? `${details.walFrames} (${details.walCommittedFrames} committed)` : '-'],
    ['WAL frames pending', details.walPendingFrames === undefined ? '-' : String(details.walPendingFrames)],
    ['version', details.version],
  ];
  for (const [name, value] of lines) output.out(`${name.padEnd(19)} ${value}`);
  return 0;
}

function printRows(cache: DbCache, sql: string, json: boolean, output: Output): void {
  const rows = cache.all(sql);
  if (json) {
    output.out(JSON.stringify(rows, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value instanceof Uint8Array ? hex(value) : value)));
    return;
  }
  output.out(formatTable(cache.prepare(sql).columns(), rows));
}

/** Rows as an aligned text table with a header line and a row count. */
export function formatTable(columns: readonly string[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((column) => formatValue(row[column] ?? null)));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: readonly string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd();
  const count = `(${rows.length} row${rows.length === 1 ? '' : 's'})`;
  if (columns.length === 0) return count;
  return [line(columns), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line), count].join('\n');
}

function formatValue(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) return hex(value);
  return String(value);
}

function hex(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `x'${shown}${bytes.length > 32 ? '…' : ''}'`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** When the database or its WAL was last written, in epoch milliseconds. */
function newestChange(path: string): number {
  let newest = 0;
  for (const file of [path, `${path}-wal`]) {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat !== undefined) newest = Math.max(newest, stat.mtimeMs);
  }
  return newest;
}
