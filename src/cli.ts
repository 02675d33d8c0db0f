import { readFileSync, realpathSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
// The command line uses only the public API, so the built CLI imports the built library.
import { inspectDatabase, isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type Logger, type Params, type SqlValue } from './index.ts';
// Not part of the public API: tslog, imported only for --verbose.
import { createTsLogger } from './logger.ts';

const FORMATS = `Output: an aligned table (newlines, tabs and other control characters in values shown as \\n,
\\t, \\xNN; columns sized by the first 1,000 rows), or with --json a JSON array, with --jsonl one
JSON object per line. Rows stream: any number of rows runs in constant memory. In JSON, integers
are exact (digits, also beyond 2^53), blobs are {"$blob":"<base64>"}, and with --json or --jsonl
errors are printed to stderr as {"error":{"code":"…","message":"…"}}.`;

const HELP: Record<string, string> = {
  query: `Usage: dbcache query <db> <sql> [value…] [options]

Runs <sql> on one consistent snapshot of <db> and prints the rows. Each [value] binds to the
next ? placeholder: a value that reads as a number (42, -1.5) binds as a number, anything else
as text.

Options:
  --param name=value  bind :name, @name or $name (repeatable; same number/text rule)
  --params <json>     all parameters as a JSON array or object (exact types: null, "007",
                      {"$blob":"<base64>"})
  --json, --jsonl     JSON output (see below)
  --verbose           log what dbcache does (tslog) on stderr
  -h, --help          this help

${FORMATS}`,
  watch: `Usage: dbcache watch <db> [sql] [options]

Keeps a live mirror of <db> until Ctrl-C: prints a line for the opened version and for every
reload (generation, reload time, size, and how long after the last write the new version was
live), then the rows of [sql] if given. A failing reload is printed once, not on every retry,
until the failure changes or reloads work again.

Options:
  --param, --params   parameters for [sql], as for query
  --json, --jsonl     one JSON object per event ({"event":"open"|"reload"|"error",…}); rows as for query
  --poll [ms]         poll with stat instead of file-system events
  --verbose           log what dbcache does (tslog) on stderr
  -h, --help          this help

${FORMATS}`,
  info: `Usage: dbcache info <db> [--json]

Describes <db> from one consistent read, without locking it:
  journal mode        wal or rollback (delete, truncate, persist)
  page size           bytes per page
  pages               pages in the consistent image (database file plus committed WAL frames)
  file size           size of the database file alone
  WAL frames          frames in the -wal file under its current salts, and how many of them end
                      in a commit (frames after the last commit belong to an unfinished transaction)
  WAL frames pending  committed frames not yet checkpointed, i.e. not yet copied from -wal into
                      the database file (from the -shm index; "-" when there is no -shm)
  version             the string dbcache derives from the file state to tell versions apart

Options:
  --json              the same fields as a JSON object (walPendingFrames is null when unknown)
  -h, --help          this help`,
};

const USAGE = `Usage:
  dbcache query <db> <sql> [value…]   run a query on a consistent snapshot and print the rows
  dbcache watch <db> [sql]            keep a live mirror; print every reload (and the query's rows)
  dbcache info <db>                   journal mode, page size, pages, WAL frames, version
  dbcache <command> --help            the command's options and output formats
  dbcache --version

Exit codes: 0 success, 1 the database could not be read or the query failed, 2 bad usage.`;

/** Where the CLI writes; injectable for tests. Each call is one or more whole lines, without the final newline. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

type Format = 'table' | 'json' | 'jsonl';

class UsageError extends Error {}

const OPTIONS = {
  json: { type: 'boolean', default: false },
  jsonl: { type: 'boolean', default: false },
  param: { type: 'string', multiple: true },
  params: { type: 'string' },
  poll: { type: 'string' },
  verbose: { type: 'boolean', default: false },
  version: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * Runs the `dbcache` command line with `args` (without the runtime and script) and resolves
 * with the exit code. `watch` runs until `signal` aborts.
 */
export async function runCli(args: readonly string[], output: Output, signal?: AbortSignal): Promise<number> {
  // Known before parsing, so that a usage error is reported in the requested form too.
  const jsonErrors = args.includes('--json') || args.includes('--jsonl');
  try {
    const parsed = parseArgs({ args: [...withPollValue(args)], allowPositionals: true, options: OPTIONS });
    const { values, positionals } = parsed;
    const [command, db, ...rest] = positionals;
    if (values.version) {
      output.out(version());
      return 0;
    }
    if (command === 'help') {
      output.out(rest.length === 0 && db !== undefined && HELP[db] !== undefined ? HELP[db]! : USAGE);
      return 0;
    }
    if (values.help) {
      output.out(command !== undefined && HELP[command] !== undefined ? HELP[command]! : USAGE);
      return 0;
    }
    if (command !== undefined && HELP[command] === undefined) throw new UsageError(`unknown command "${command}"`);
    if (db === undefined) throw new UsageError(command === undefined ? 'missing command' : `${command} needs a database path`);
    if (values.json && values.jsonl) throw new UsageError('choose one of --json and --jsonl');
    const format: Format = values.json ? 'json' : values.jsonl ? 'jsonl' : 'table';
    const logger = values.verbose ? await createTsLogger(2) : undefined;
    switch (command) {
      case 'query': {
        const [sql, ...positional] = rest;
        if (sql === undefined) throw new UsageError('query needs <db> and <sql>');
        const params = parseParams(positional, values.param, values.params);
        const cache = await openDbCache(db, { watch: false, bigint: true, logger });
        try {
          printRows(cache, sql, params, format, output);
        } finally {
          await cache.close();
        }
        return 0;
      }
      case 'watch': {
        if (rest.length > 1) throw new UsageError('watch takes <db> and an optional <sql>; pass parameters with --param or --params');
        const params = parseParams([], values.param, values.params);
        const poll = values.poll === undefined ? undefined : values.poll === '' ? true : pollInterval(values.poll);
        return await watch(db, rest[0], params, format, output, { logger, poll, signal });
      }
      default: {
        if (rest.length > 0) throw new UsageError('info takes only <db>');
        if (values.param !== undefined || values.params !== undefined) throw new UsageError('info takes no parameters');
        await info(db, format !== 'table', output);
        return 0;
      }
    }
  } catch (error) {
    const usage = error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
    const message = error instanceof Error ? error.message : String(error);
    if (jsonErrors) {
      output.err(JSON.stringify({ error: { code: usage ? 'USAGE' : isDbCacheError(error) ? error.code : 'ERROR', message } }));
    } else {
      output.err(usage ? `dbcache: ${message}\n\n${USAGE}` : `dbcache: ${message}`);
    }
    return usage ? 2 : 1;
  }
}

/** `--poll` alone means the default interval: parseArgs needs a value, so give it an empty one. */
function withPollValue(args: readonly string[]): string[] {
  return args.flatMap((arg, i) => (arg === '--poll' && (i + 1 >= args.length || !/^\d+$/.test(args[i + 1]!)) ? ['--poll='] : [arg]));
}

function pollInterval(text: string): number {
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < 1) throw new UsageError(`--poll needs an interval in milliseconds, got "${text}"`);
  return ms;
}

function version(): string {
  // src/cli.ts and dist/bin.js both sit one directory below package.json.
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `dbcache ${version}`;
}

/** Positional values, `--param name=value` and `--params <json>` as one Params (or none). */
export function parseParams(positional: readonly string[], named: readonly string[] | undefined, json: string | undefined): Params | undefined {
  const kinds = [positional.length > 0, named !== undefined, json !== undefined].filter(Boolean).length;
  if (kinds > 1) throw new UsageError('pass parameters one way: as values after <sql>, with --param, or with --params');
  if (positional.length > 0) return positional.map(cliValue);
  if (named !== undefined) {
    const params: Record<string, string | number> = {};
    for (const pair of named) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new UsageError(`--param needs name=value, got "${pair}"`);
      params[pair.slice(0, at).replace(/^[:@$]/, '')] = cliValue(pair.slice(at + 1));
    }
    return params;
  }
  if (json === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json, (_key, value: unknown) => fromJson(value));
  } catch (error) {
    throw new UsageError(`--params is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || parsed instanceof Uint8Array) throw new UsageError('--params must be a JSON array or object');
  return parsed as Params;
}

/** A command-line value binds as a number when it reads as one exactly ("42", "-1.5"; not "007" or "1e3"). */
function cliValue(text: string): string | number {
  if (/^-?(0|[1-9]\d{0,14})(\.\d+)?$/.test(text) && String(Number(text)) === text) return Number(text);
  return text;
}

/** `{"$blob": "<base64>"}` inside `--params` is a blob, the same encoding the output uses. */
function fromJson(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const blob = (value as { $blob?: unknown }).$blob;
    if (keys.length === 1 && typeof blob === 'string') return Uint8Array.from(atob(blob), (char) => char.charCodeAt(0));
  }
  return value;
}

const FIRST_BLOCK = 1000;
const CHUNK_BYTES = 64 * 1024;

/** Streams the rows of `sql` in `format`: lines are written in chunks of about 64 KiB, rows are never all held at once. */
function printRows(cache: DbCache, sql: string, params: Params | undefined, format: Format, output: Output): void {
  const columns = cache.prepare(sql).columns();
  const sink = new ChunkedOutput(output);
  // Like better-sqlite3, a statement counts an explicit `undefined` as one (NULL) parameter value.
  const statement = cache.prepare(sql).raw();
  const iterator = (params === undefined ? statement.iterate() : statement.iterate(params)) as IterableIterator<SqlValue[]>;
  let count = 0;
  if (format === 'table') {
    const block: string[][] = [];
    let widths: number[] | undefined;
    const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths![i]!)).join('  ').trimEnd();
    const flush = () => {
      widths ??= columns.map((column, i) => Math.min(MAX_WIDTH, block.reduce((width, cells) => Math.max(width, cells[i]!.length), column.length)));
      if (count === block.length) {
        sink.line(line(columns.map(tableCell)));
        sink.line(line(widths.map((width) => '-'.repeat(width))));
      }
      for (const cells of block) sink.line(line(cells));
      block.length = 0;
    };
    for (const row of iterator) {
      count++;
      block.push(row.map((value) => tableCell(value)));
      if (block.length === FIRST_BLOCK || widths !== undefined) flush();
    }
    if (columns.length > 0 && (block.length > 0 || widths === undefined)) flush();
    sink.line(`(${count} row${count === 1 ? '' : 's'})`);
  } else {
    const keys = columns.map((column) => `${JSON.stringify(column)}:`);
    let previous: string | undefined;
    for (const row of iterator) {
      const text = `{${row.map((value, i) => keys[i] + jsonValue(value)).join(',')}}`;
      if (format === 'jsonl') sink.line(text);
      else {
        if (previous !== undefined) sink.line(count === 1 ? `[${previous},` : `${previous},`);
        previous = text;
      }
      count++;
    }
    if (format === 'json') sink.line(previous === undefined ? '[]' : count === 1 ? `[${previous}]` : `${previous}]`);
  }
  sink.flush();
}

/** Table cells longer than this are cut (with …); --json has every byte. */
const MAX_WIDTH = 200;

/** Collects lines and hands them to the output in chunks: one write per row would dominate large results. */
class ChunkedOutput {
  #output: Output;
  #lines: string[] = [];
  #bytes = 0;

  constructor(output: Output) {
    this.#output = output;
  }

  line(text: string): void {
    this.#lines.push(text);
    this.#bytes += text.length + 1;
    if (this.#bytes >= CHUNK_BYTES) this.flush();
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    this.#output.out(this.#lines.join('\n'));
    this.#lines = [];
    this.#bytes = 0;
  }
}

/** A value as one line of a table cell: control characters escaped, blobs in hex, long values cut. */
export function tableCell(value: SqlValue): string {
  let text: string;
  if (value === null) text = 'NULL';
  else if (value instanceof Uint8Array) text = hexBlob(value);
  else text = String(value);
  text = text.replace(/[\u0000-\u001f\u007f]/g, (char) => CONTROL[char] ?? `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return text.length > MAX_WIDTH ? `${text.slice(0, MAX_WIDTH - 1)}…` : text;
}

const CONTROL: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hexBlob(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `x'${shown}${bytes.length > 32 ? '…' : ''}'`;
}

/** A value as JSON: integers exact (a bigint as its digits), blobs as {"$blob":"<base64>"}. */
export function jsonValue(value: SqlValue): string {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `{"$blob":"${base64(value)}"}`;
  return JSON.stringify(value) ?? 'null';
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

interface WatchSettings {
  logger: Logger | undefined;
  poll: boolean | number | undefined;
  signal: AbortSignal | undefined;
}

async function watch(path: string, sql: string | undefined, params: Params | undefined, format: Format, output: Output, settings: WatchSettings): Promise<number> {
  const { signal } = settings;
  // The CLI wants the process to live as long as it watches; the library keeps none alive by itself.
  const cache = await openDbCache(path, { signal, persistent: true, bigint: true, logger: settings.logger, poll: settings.poll });
  const json = format !== 'table';
  const stopped = new Promise<void>((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  let lastFailure: string | undefined;
  const show = (event: 'open' | 'reload', generation: number, durationMs: number, bytes: number) => {
    const sinceWriteMs = Math.max(0, Date.now() - newestChange(path));
    if (json) {
      const fields = event === 'open' ? { lastWriteAgoMs: Math.round(sinceWriteMs) } : { sinceWriteMs: Math.round(sinceWriteMs) };
      output.out(JSON.stringify({ event, generation, durationMs: round(durationMs), bytes, ...fields }));
    } else {
      const when = event === 'open' ? `last written ${ago(sinceWriteMs)}` : `live ${ago(sinceWriteMs).replace(' ago', '')} after the last write`;
      output.out(`generation ${generation}  ${event} ${durationMs.toFixed(1)} ms  ${formatBytes(bytes)}  ${when}`);
    }
    if (sql !== undefined) printRows(cache, sql, params, format, output);
  };
  const report = (error: unknown) => {
    const code = isDbCacheError(error) ? error.code : 'ERROR';
    const message = error instanceof Error ? error.message : String(error);
    output.err(json ? JSON.stringify({ event: 'error', error: { code, message } }) : `dbcache: ${message}`);
  };
  cache.subscribe((event: DbCacheEvent) => {
    if (event.type === 'engine') {
      report(event.error);
      return;
    }
    if (event.type === 'error') {
      // Retries repeat the same failure every few hundred milliseconds: say it once, until it changes.
      const key = `${event.error.code} ${event.error.message}`;
      if (key !== lastFailure) report(event.error);
      lastFailure = key;
      return;
    }
    lastFailure = undefined;
    try {
      show('reload', event.generation, event.durationMs, event.bytes);
    } catch (error) {
      report(error);
    }
  });
  try {
    const { lastReloadMs, liveBytes } = cache.stats();
    show('open', cache.generation, lastReloadMs, liveBytes);
    await stopped;
  } finally {
    await cache.close();
  }
  return 0;
}

async function info(path: string, json: boolean, output: Output): Promise<void> {
  const details = await inspectDatabase(path);
  if (json) {
    output.out(JSON.stringify({ ...details, walPendingFrames: details.walPendingFrames ?? null }));
    return;
  }
  const wal = details.journalMode === 'wal';
  const lines: Array<[string, string]> = [
    ['journal mode', details.journalMode],
    ['page size', `${details.pageSize} bytes`],
    ['pages', `${details.pages} (database file plus committed WAL frames)`],
    ['file size', `${formatBytes(details.fileBytes)} (the database file alone)`],
    ['WAL frames', wal ? `${details.walFrames}, ${details.walCommittedFrames} of them committed` : '-'],
    [
      'WAL frames pending',
      details.walPendingFrames === undefined ? '-' : `${details.walPendingFrames} (committed, not yet checkpointed into the database file)`,
    ],
    ['version', details.version],
  ];
  output.out(lines.map(([name, value]) => `${name.padEnd(19)} ${value}`).join('\n'));
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function ago(ms: number): string {
  if (ms < 10_000) return `${Math.round(ms)} ms ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 172_800_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return `${Math.round(ms / 86_400_000)} days ago`;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** When the database or its WAL was last written, in epoch milliseconds. */
function newestChange(path: string): number {
  let newest = 0;
  let real = path;
  try {
    // The -wal is beside the file a symbolic link leads to.
    real = realpathSync(path);
  } catch {
    // Missing: nothing was written.
  }
  for (const file of [real, `${real}-wal`]) {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat !== undefined) newest = Math.max(newest, stat.mtimeMs);
  }
  return newest;
}
