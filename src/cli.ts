import { readFileSync, realpathSync, statSync } from 'node:fs';
import process from 'node:process';
// The command line uses only the public API, so the built CLI imports the built library.
import { inspectDatabase, isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type Logger, type Params, type SqlValue } from './index.ts';
// Not part of the public API: tslog, imported only for --verbose.
import { createTsLogger } from './logger.ts';
import { JSON_NUMBER, jsonNumber, jsonText, jsonValue, parseJson } from './cli-json.ts';
import { ChunkedOutput, OutputClosed, streamOutput, writeQuietly, type Output } from './cli-output.ts';
import { displayWidth, escapeControls, headerCell, MAX_WIDTH, padCell, tableCell } from './cli-table.ts';

const FORMATS = `Output: an aligned table, or with --json a JSON array of objects, with --jsonl one JSON object
per line. Rows stream: the next rows are read only when the reader has taken the previous ones, so
any number of rows runs in constant memory, and the query stops when the reader goes away
(\`| head\`: exit 0).

Tables: sized by the first 1,000 rows (wide characters count two columns); NULL shows as NULL and
text that could be read as NULL, as a blob or as quoted text shows quoted ('NULL', 'x''00''');
control characters show as \\n, \\t, \\xNN; blobs as x'<hex>'. Types show only in JSON.

JSON: integers are exact (digits, also beyond 2^53); reals always have a fraction or exponent
(42.0, 1e+21), infinity is 1e999 (-1e999); blobs are {"$blob":"<base64>"}. A column name that
repeats gets the suffix :1, :2, … (SELECT 1 AS a, 2 AS a gives {"a":1,"a:1":2}).

Errors: with --json or --jsonl printed to stderr as {"error":{"code":"…","message":"…"}}, with
dbcache's error codes (QUERY, READ_ONLY, NOT_FOUND, …; see the README) and USAGE for bad usage,
ARGUMENT when the SQL or its parameters do not fit (more than one statement, the wrong number of
values, a value SQLite cannot hold), INTERNAL for anything else.`;

const VALUES = `Values: a value that is a JSON number binds as a number, the way SQLite reads a literal: an
integer (-5, 42, 9007199254740993) exactly (as a bigint: beyond 2^53 as its digits, which an
INTEGER column compares exactly), a fraction or exponent (-1.5, 1e3) as a REAL; anything else
(007, +5, 0x10, abc) binds as text. Values may start with "-" (-5, -1.5 are values, not options).
Everything after "--" is a value, even --json.`;

const HELP: Record<string, string> = {
  query: `Usage: dbcache query <db> <sql> [value…] [options]

Runs <sql> on one consistent snapshot of <db> and prints the rows. Each [value] binds to the
next ? placeholder.

Options:
  --param name=value  bind :name, @name or $name (repeatable; same number/text rule)
  --params <json>     all parameters as a JSON array or object (exact types: null, "007", 42,
                      9007199254740993, 1.5, {"$blob":"<base64>"}; integers bind exactly)
  --json, --jsonl     JSON output (see below)
  --verbose           log what dbcache does on stderr (tslog)
  -h, --help          this help

${VALUES}

${FORMATS}`,
  watch: `Usage: dbcache watch <db> [sql] [options]

Keeps a live mirror of <db> until Ctrl-C: prints a line for the opened version and for every
reload (generation, reload time, size, and how long after the last write the new version was
live), then the rows of [sql] if given. A failing reload is printed once, not on every retry,
until the failure changes or reloads work again. When the reader is slower than the reloads, a
reload's rows are skipped if a newer version is already live (its line is still printed).

Options:
  --param, --params   parameters for [sql], as for query
  --json, --jsonl     one JSON object per event ({"event":"open"|"reload"|"error",…}); rows as for query
  --poll              poll with stat (every 100 ms) instead of file-system events
  --poll=<ms>         poll every <ms> milliseconds; --poll takes no separate value, so in
                      "watch app.db --poll 'SELECT …'" the SQL stays the SQL
  --verbose           log what dbcache does on stderr (tslog)
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

Exit codes: 0 success (also when the reader of the output goes away early, as with | head),
1 the database could not be read or the query failed, 2 bad usage, 130 a query interrupted by
Ctrl-C (143 by SIGTERM).`;

type Format = 'table' | 'json' | 'jsonl';

class UsageError extends Error {}

/** What the command line says, after options are taken out. */
interface Arguments {
  positionals: string[];
  json: boolean;
  jsonl: boolean;
  verbose: boolean;
  version: boolean;
  help: boolean;
  param: string[] | undefined;
  params: string | undefined;
  /** `true` for the default interval. */
  poll: true | number | undefined;
}

const FLAGS = ['json', 'jsonl', 'verbose', 'version', 'help'] as const;
const SHORT: Record<string, string> = { '-h': 'help', '-v': 'version' };

/**
 * The arguments as options and positionals. Options go anywhere; a JSON number such as -5 or
 * -1.5 is a value, not an option; after `--` everything is a value (POSIX).
 */
function parseArguments(args: readonly string[]): Arguments {
  const parsed: Arguments = { positionals: [], json: false, jsonl: false, verbose: false, version: false, help: false, param: undefined, params: undefined, poll: undefined };
  let onlyValues = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (onlyValues || arg === '-' || !arg.startsWith('-') || JSON_NUMBER.test(arg)) {
      parsed.positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyValues = true;
      continue;
    }
    const long = arg.startsWith('--');
    const at = long ? arg.indexOf('=') : -1;
    const name = long ? arg.slice(2, at < 0 ? undefined : at) : SHORT[arg];
    const inline = at < 0 ? undefined : arg.slice(at + 1);
    const value = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= args.length) throw new UsageError(`--${name} needs a value`);
      return args[++i]!;
    };
    if ((FLAGS as readonly string[]).includes(name ?? '')) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value, got "${arg}"`);
      parsed[name as (typeof FLAGS)[number]] = true;
    } else if (name === 'param') {
      (parsed.param ??= []).push(value());
    } else if (name === 'params') {
      if (parsed.params !== undefined) throw new UsageError('--params may be given once');
      parsed.params = value();
    } else if (name === 'poll') {
      if (inline !== undefined) parsed.poll = pollInterval(inline);
      else if (/^\d+$/.test(args[i + 1] ?? '')) {
        throw new UsageError(`--poll takes no separate value: write --poll=${args[i + 1]} for an interval of ${args[i + 1]} ms`);
      } else parsed.poll = true;
    } else {
      const shown = JSON.stringify(arg);
      throw new UsageError(`unknown option ${shown}; to pass it as a value, put it after "--", as in: -- ${shown}`);
    }
  }
  return parsed;
}

/**
 * Runs the `dbcache` command line with `args` (without the runtime and script) and resolves
 * with the exit code. `watch` runs until `signal` aborts; a query stops at the next rows when it
 * aborts (exit code 130, or 143 when the abort reason is `'SIGTERM'`).
 */
export async function runCli(args: readonly string[], output: Output, signal?: AbortSignal): Promise<number> {
  // Known before parsing, so that a usage error is reported in the requested form too.
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  const jsonErrors = options.includes('--json') || options.includes('--jsonl');
  try {
    const parsed = parseArguments(args);
    const [command, db, ...rest] = parsed.positionals;
    if (parsed.version) {
      await output.out(version());
      return 0;
    }
    if (command === 'help') {
      await output.out(rest.length === 0 && db !== undefined && HELP[db] !== undefined ? HELP[db]! : USAGE);
      return 0;
    }
    if (parsed.help) {
      await output.out(command !== undefined && HELP[command] !== undefined ? HELP[command]! : USAGE);
      return 0;
    }
    if (command !== undefined && HELP[command] === undefined) throw new UsageError(`unknown command "${command}"`);
    if (db === undefined) throw new UsageError(command === undefined ? 'missing command' : `${command} needs a database path`);
    if (parsed.json && parsed.jsonl) throw new UsageError('choose one of --json and --jsonl');
    if (parsed.poll !== undefined && command !== 'watch') throw new UsageError('--poll is an option of watch');
    const format: Format = parsed.json ? 'json' : parsed.jsonl ? 'jsonl' : 'table';
    const logger = parsed.verbose ? await createTsLogger(2, (line) => output.err(escapeControls(line))) : undefined;
    switch (command) {
      case 'query': {
        const [sql, ...positional] = rest;
        if (sql === undefined) throw new UsageError('query needs <db> and <sql>');
        const params = parseParams(positional, parsed.param, parsed.params);
        logger?.info(`Opening ${db} to run one query`);
        const cache = await openDbCache(db, { watch: false, bigint: true, logger });
        try {
          logger?.info(`Opened ${db}: generation ${cache.generation}, ${formatBytes(cache.stats().liveBytes)} in ${cache.stats().lastReloadMs.toFixed(1)} ms`);
          const result = await printRows(cache, sql, params, format, output, signal);
          logger?.info(`Printed ${result.rows} row${result.rows === 1 ? '' : 's'} of generation ${result.generation}${result.interrupted ? ' before the query was interrupted' : ''}`);
          return result.interrupted ? (signal?.reason === 'SIGTERM' ? 143 : 130) : 0;
        } finally {
          await cache.close();
          logger?.debug(`Closed the cache of ${db}`);
        }
      }
      case 'watch': {
        if (rest.length > 1) throw new UsageError('watch takes <db> and an optional <sql>; pass parameters with --param or --params');
        const params = parseParams([], parsed.param, parsed.params);
        return await watch(db, rest[0], params, format, output, { logger, poll: parsed.poll, signal });
      }
      default: {
        if (rest.length > 0) throw new UsageError('info takes only <db>');
        if (parsed.param !== undefined || parsed.params !== undefined) throw new UsageError('info takes no parameters');
        await info(db, format !== 'table', output);
        return 0;
      }
    }
  } catch (error) {
    if (error instanceof OutputClosed) {
      if (!error.quiet) output.err(`dbcache: ${error.message}`);
      return error.quiet ? 0 : 1;
    }
    const usage = error instanceof UsageError;
    const message = error instanceof Error ? error.message : String(error);
    if (jsonErrors) {
      output.err(jsonText({ error: { code: usage ? 'USAGE' : errorCode(error), message } }));
    } else {
      // Messages can carry text from the database (SQLite names what it could not find): escaped as in tables.
      output.err(usage ? `dbcache: ${escapeControls(message)}\n\n${USAGE}` : `dbcache: ${escapeControls(message)}`);
    }
    return usage ? 2 : 1;
  }
}

/** dbcache's own code, `ARGUMENT` for the library's TypeError/RangeError (the SQL or values do not fit), else `INTERNAL`. */
function errorCode(error: unknown): string {
  if (isDbCacheError(error)) return error.code;
  return error instanceof TypeError || error instanceof RangeError ? 'ARGUMENT' : 'INTERNAL';
}

/**
 * Runs the command line as a process: `args` from the command line, rows to stdout with
 * backpressure, errors to stderr; Ctrl-C and SIGTERM end `watch` (and interrupt a query; a second
 * Ctrl-C kills). Resolves with the exit code. Used by `bin.ts`; the process handlers belong to the
 * command, never to the library.
 */
export async function runProcess(args: readonly string[]): Promise<number> {
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort('SIGINT');
  const onTerminate = (): void => controller.abort('SIGTERM');
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onTerminate);
  const stdout = streamOutput(process.stdout);
  // A reader of stderr that went away must not crash the command either.
  const ignore = (): void => undefined;
  process.stderr.on('error', ignore);
  try {
    return await runCli(args, { out: stdout.out, err: (text) => writeQuietly(process.stderr, text) }, controller.signal);
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onTerminate);
    stdout.dispose();
  }
}

function pollInterval(text: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 1) throw new UsageError(`--poll=<ms> needs a whole number of milliseconds, got "${text}"`);
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
    const params: Record<string, string | number | bigint> = Object.create(null) as Record<string, never>;
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
    parsed = parseJson(json);
  } catch (error) {
    throw new UsageError(`--params is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || parsed instanceof Uint8Array) throw new UsageError('--params must be a JSON array or object');
  return parsed as Params;
}

/** A command-line value: a JSON number binds as a number (integers exactly), anything else as text. */
function cliValue(text: string): string | number | bigint {
  return JSON_NUMBER.test(text) ? jsonNumber(text) : text;
}

const FIRST_BLOCK = 1000;

interface Printed {
  rows: number;
  generation: number;
  interrupted: boolean;
}

/**
 * Streams the rows of `sql` from one snapshot in `format`. Lines go out in chunks of about
 * 64 KiB; when the output asks to wait, no further row is stepped until it is ready, so memory
 * stays bounded however slow the reader. Stops (`interrupted`) when `signal` aborts, and when the
 * output is closed (throws {@link OutputClosed}); the snapshot is released either way.
 * `generation`, when given, is the version the rows must come from: a newer one skips them.
 */
async function printRows(cache: DbCache, sql: string, params: Params | undefined, format: Format, output: Output, signal: AbortSignal | undefined, generation?: number): Promise<Printed> {
  const snapshot = cache.snapshot();
  try {
    const printed: Printed = { rows: 0, generation: snapshot.generation, interrupted: false };
    if (generation !== undefined && snapshot.generation !== generation) return printed;
    const statement = snapshot.prepare(sql);
    let columns: string[] = [];
    let iterator: Iterator<SqlValue[]>;
    if (statement.reader) {
      columns = statement.columns();
      // Like better-sqlite3, a statement counts an explicit `undefined` as one (NULL) parameter value.
      const raw = statement.raw();
      iterator = params === undefined ? raw.iterate() : raw.iterate(params);
    } else {
      // Not a query: run it, so that the library says why it may not (READ_ONLY, QUERY, …).
      if (params === undefined) statement.run();
      else statement.run(params);
      iterator = [][Symbol.iterator]();
    }
    const sink = new ChunkedOutput(output);
    const stopped = (): boolean => (printed.interrupted = signal?.aborted === true);
    const rows: Iterable<SqlValue[]> = { [Symbol.iterator]: () => iterator };
    if (format === 'table') {
      const block: string[][] = [];
      let widths: number[] | undefined;
      const line = (cells: readonly string[]) => cells.map((cell, i) => padCell(cell, widths![i]!)).join('  ').trimEnd();
      const flush = async (): Promise<void> => {
        widths ??= columns.map((column, i) => Math.min(MAX_WIDTH, block.reduce((width, cells) => Math.max(width, displayWidth(cells[i]!)), displayWidth(headerCell(column)))));
        if (printed.rows === block.length) {
          await sink.line(line(columns.map(headerCell)));
          await sink.line(line(widths.map((width) => '-'.repeat(width))));
        }
        for (const cells of block) await sink.line(line(cells));
        block.length = 0;
      };
      for (const row of rows) {
        printed.rows++;
        block.push(row.map((value) => tableCell(value)));
        if (block.length === FIRST_BLOCK || widths !== undefined) await flush();
        if (stopped()) return printed;
      }
      if (columns.length > 0 && (block.length > 0 || widths === undefined)) await flush();
      await sink.line(`(${printed.rows} row${printed.rows === 1 ? '' : 's'})`);
    } else {
      const keys = uniqueNames(columns).map((column) => `${jsonText(column)}:`);
      let previous: string | undefined;
      for (const row of rows) {
        const text = `{${row.map((value, i) => keys[i] + jsonValue(value)).join(',')}}`;
        if (format === 'jsonl') await sink.line(text);
        else {
          if (previous !== undefined) await sink.line(printed.rows === 1 ? `[${previous},` : `${previous},`);
          previous = text;
        }
        printed.rows++;
        if (stopped()) return printed;
      }
      if (format === 'json') await sink.line(previous === undefined ? '[]' : printed.rows === 1 ? `[${previous}]` : `${previous}]`);
    }
    await sink.flush();
    return printed;
  } finally {
    snapshot.release();
  }
}

/** Column names made unique for JSON keys: a repeated name gets `:1`, `:2`, … (skipping names in use). */
export function uniqueNames(columns: readonly string[]): string[] {
  const taken = new Set(columns);
  const seen = new Set<string>();
  return columns.map((column) => {
    if (!seen.has(column)) {
      seen.add(column);
      return column;
    }
    let n = 1;
    while (taken.has(`${column}:${n}`)) n++;
    const name = `${column}:${n}`;
    taken.add(name);
    return name;
  });
}

interface WatchSettings {
  logger: Logger | undefined;
  poll: true | number | undefined;
  signal: AbortSignal | undefined;
}

async function watch(path: string, sql: string | undefined, params: Params | undefined, format: Format, output: Output, settings: WatchSettings): Promise<number> {
  const { signal, logger } = settings;
  logger?.info(`Opening ${path} to watch it${settings.poll === undefined ? '' : ` (polling every ${settings.poll === true ? 100 : settings.poll} ms)`}`);
  // The CLI wants the process to live as long as it watches; the library keeps none alive by itself.
  const cache = await openDbCache(path, { signal, persistent: true, bigint: true, logger, poll: settings.poll });
  const json = format !== 'table';
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  if (signal !== undefined) {
    if (signal.aborted) stop();
    signal.addEventListener('abort', () => stop(), { once: true });
  }
  let lastFailure: string | undefined;
  let outputFailure: OutputClosed | undefined;
  let closing = false;
  // Lines are printed in order, one event after the other; rows wait for the reader (backpressure).
  let queue: Promise<void> = Promise.resolve();
  const show = (event: 'open' | 'reload', generation: number, durationMs: number, bytes: number): Promise<void> => {
    const sinceWriteMs = Math.max(0, Date.now() - newestChange(path));
    let line: string;
    if (json) {
      const fields = event === 'open' ? { lastWriteAgoMs: Math.round(sinceWriteMs) } : { sinceWriteMs: Math.round(sinceWriteMs) };
      line = JSON.stringify({ event, generation, durationMs: round(durationMs), bytes, ...fields });
    } else {
      const when = event === 'open' ? `last written ${ago(sinceWriteMs)}` : `live ${ago(sinceWriteMs).replace(' ago', '')} after the last write`;
      line = `generation ${generation}  ${event} ${durationMs.toFixed(1)} ms  ${formatBytes(bytes)}  ${when}`;
    }
    const job = async (): Promise<void> => {
      if (closing || signal?.aborted === true || outputFailure !== undefined) return;
      await output.out(line);
      if (sql !== undefined) await printRows(cache, sql, params, format, output, signal, generation);
    };
    const done = queue.then(job);
    queue = done.catch(() => undefined);
    return done;
  };
  const report = (error: unknown) => {
    const code = errorCode(error);
    const message = error instanceof Error ? error.message : String(error);
    output.err(json ? jsonText({ event: 'error', error: { code, message } }) : `dbcache: ${escapeControls(message)}`);
  };
  const failed = (error: unknown): void => {
    if (error instanceof OutputClosed) {
      outputFailure ??= error;
      stop();
    } else report(error);
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
    logger?.info(`Reloaded ${path} (${event.cause}): generation ${event.generation}, ${formatBytes(event.bytes)} in ${event.durationMs.toFixed(1)} ms, version ${event.version}`);
    show('reload', event.generation, event.durationMs, event.bytes).catch(failed);
  });
  try {
    const { lastReloadMs, liveBytes } = cache.stats();
    logger?.info(`Opened ${path}: generation ${cache.generation}, ${formatBytes(liveBytes)} in ${lastReloadMs.toFixed(1)} ms, version ${cache.version}`);
    await show('open', cache.generation, lastReloadMs, liveBytes);
    await stopped;
    await queue;
  } finally {
    closing = true;
    await cache.close();
    logger?.info(`Stopped watching ${path}`);
  }
  if (outputFailure !== undefined && !outputFailure.quiet) {
    output.err(`dbcache: ${outputFailure.message}`);
    return 1;
  }
  return 0;
}

async function info(path: string, json: boolean, output: Output): Promise<void> {
  const details = await inspectDatabase(path);
  if (json) {
    await output.out(JSON.stringify({ ...details, walPendingFrames: details.walPendingFrames ?? null }));
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
  await output.out(lines.map(([name, value]) => `${name.padEnd(19)} ${value}`).join('\n'));
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
