import { readFileSync, realpathSync, statSync } from 'node:fs';
import process from 'node:process';
import { setImmediate } from 'node:timers';
// The command line uses only the public API, so the built CLI imports the built library.
import { inspectDatabase, isDbCacheError, openDbCache, type DbCache, type DbCacheEvent, type Logger, type Params, type SqlValue } from './index.ts';
// Not part of the public API: tslog, imported only for --verbose.
import { createTsLogger } from './logger.ts';

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

/**
 * Where the CLI writes; injectable for tests. Each call is one or more whole lines, without the
 * final newline. `out` may return a promise: the CLI then waits for it before reading more rows
 * (backpressure). When the reader has gone away, `out` throws (or its promise rejects with)
 * {@link OutputClosed}, and the CLI stops.
 */
export interface Output {
  out(text: string): void | Promise<void>;
  err(text: string): void;
}

/** Thrown by an {@link Output} whose reader is gone; `quiet` when that is a normal end (a closed pipe). */
export class OutputClosed extends Error {
  readonly quiet: boolean;

  constructor(cause: unknown) {
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : '';
    super(`cannot write the output: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'OutputClosed';
    this.quiet = cause === CLOSED || QUIET_CODES.has(code) || /broken pipe/i.test(this.message);
  }
}

/** The reader went away: a pipe closed under the writer (EPIPE), or the stream was closed or destroyed. */
const QUIET_CODES = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);
const CLOSED = new Error('the output was closed');

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
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

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

interface Writable {
  write(text: string): boolean;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * An {@link Output} over a writable stream: when `write` says the stream is full, `out` returns a
 * promise for its 'drain'; once the stream fails or closes (EPIPE: the reader went away), every
 * pending and later `out` fails with {@link OutputClosed}.
 */
export function streamOutput(stream: Writable): { out: (text: string) => void | Promise<void>; dispose: () => void } {
  let failure: unknown;
  const waiting = new Set<() => void>();
  const fail = (error: unknown): void => {
    failure ??= error;
    for (const wake of waiting) wake();
  };
  const onError = (error: unknown): void => fail(error);
  const onClose = (): void => fail(CLOSED);
  stream.on('error', onError);
  stream.on('close', onClose);
  const out = (text: string): void | Promise<void> => {
    if (failure !== undefined) throw new OutputClosed(failure);
    let ready: boolean;
    try {
      ready = stream.write(`${text}\n`);
    } catch (error) {
      // Some runtimes throw EPIPE from write itself instead of emitting 'error'.
      fail(error);
      throw new OutputClosed(error);
    }
    if (ready) return;
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        waiting.delete(wake);
        stream.off('drain', wake);
        if (failure === undefined) resolve();
        else reject(new OutputClosed(failure));
      };
      waiting.add(wake);
      stream.once('drain', wake);
    });
  };
  return {
    out,
    dispose: () => {
      // Keeps listening for 'error': a late EPIPE from data still being flushed must not crash the process.
      stream.off('close', onClose);
    },
  };
}

function writeQuietly(stream: Writable, text: string): void {
  try {
    stream.write(`${text}\n`);
  } catch {
    // stderr is gone too: nothing left to tell.
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

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

/**
 * A JSON number as SQLite reads a literal: an integer that fits 64 bits is an exact integer
 * (a bigint), anything with a fraction or exponent, or a larger integer, is a REAL.
 */
function jsonNumber(text: string): number | bigint {
  if (/^-?\d+$/.test(text)) {
    const integer = BigInt(text);
    if (integer >= MIN_INT64 && integer <= MAX_INT64) return integer;
  }
  return Number(text);
}

const MAX_DEPTH = 64;

/**
 * Parses JSON (RFC 8259) keeping integers exact (see {@link jsonNumber}): `JSON.parse` reads
 * every number as a double, and its reviver sees the source text only on newer engines.
 * Objects have no prototype (a key `__proto__` is a key); `{"$blob":"<base64>"}` is a blob.
 */
export function parseJson(text: string): unknown {
  let at = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at position ${at}`);
  };
  const space = (): void => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++;
  };
  const expect = (char: string): void => {
    if (text[at] !== char) fail(at < text.length ? `expected "${char}", found "${text[at]}"` : `expected "${char}", found the end`);
    at++;
  };
  const string = (): string => {
    expect('"');
    let result = '';
    for (;;) {
      const start = at;
      while (at < text.length && text[at] !== '"' && text[at] !== '\\' && text.charCodeAt(at) >= 0x20) at++;
      result += text.slice(start, at);
      if (at >= text.length) fail('unterminated string');
      const char = text[at]!;
      if (char === '"') {
        at++;
        return result;
      }
      if (char !== '\\') fail('control character in a string');
      const escape = text[at + 1];
      const simple = escape === undefined ? undefined : ESCAPES[escape];
      if (simple !== undefined) {
        result += simple;
        at += 2;
      } else if (escape === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
        result += String.fromCharCode(Number.parseInt(text.slice(at + 2, at + 6), 16));
        at += 6;
      } else fail('bad escape in a string');
    }
  };
  const value = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
    space();
    const char = text[at];
    if (char === '"') return string();
    if (char === '[') {
      at++;
      const items: unknown[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return items;
      }
      for (;;) {
        items.push(value(depth + 1));
        space();
        if (text[at] === ']') {
          at++;
          return items;
        }
        expect(',');
      }
    }
    if (char === '{') {
      at++;
      const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      space();
      if (text[at] === '}') {
        at++;
        return object;
      }
      for (;;) {
        space();
        const key = string();
        space();
        expect(':');
        object[key] = value(depth + 1);
        space();
        if (text[at] === '}') {
          at++;
          return blobOf(object) ?? object;
        }
        expect(',');
      }
    }
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(at, at + 1100));
    if (number !== null && number[0] !== '-') {
      at += number[0].length;
      return jsonNumber(number[0]);
    }
    for (const [word, result] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return result;
      }
    }
    return fail(at < text.length ? `unexpected "${text[at]}"` : 'unexpected end');
  };
  const result = value(0);
  space();
  if (at < text.length) fail(`unexpected "${text[at]}" after the value`);
  return result;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** `{"$blob": "<base64>"}` (and nothing else) is a blob, the same encoding the output uses. */
function blobOf(object: Record<string, unknown>): Uint8Array | undefined {
  const keys = Object.keys(object);
  const blob = object.$blob;
  if (keys.length !== 1 || typeof blob !== 'string') return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(blob) || blob.length % 4 !== 0) throw new SyntaxError(`{"$blob": …} needs base64, got ${JSON.stringify(blob.slice(0, 40))}`);
  return Uint8Array.from(atob(blob), (char) => char.charCodeAt(0));
}

const FIRST_BLOCK = 1000;
const CHUNK_BYTES = 64 * 1024;

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

/** Table cells wider than this many columns are cut (with …); --json has every byte. */
const MAX_WIDTH = 200;

/** Collects lines and hands them to the output in chunks: one write per row would dominate large results. */
class ChunkedOutput {
  #output: Output;
  #lines: string[] = [];
  #bytes = 0;

  constructor(output: Output) {
    this.#output = output;
  }

  /** Adds a line; returns a promise only when a chunk went out and the output asked to wait. */
  line(text: string): void | Promise<void> {
    this.#lines.push(text);
    this.#bytes += text.length + 1;
    return this.#bytes >= CHUNK_BYTES ? this.flush() : undefined;
  }

  flush(): void | Promise<void> {
    if (this.#lines.length === 0) return undefined;
    const text = this.#lines.join('\n');
    this.#lines = [];
    this.#bytes = 0;
    // An output that never waits (a file, /dev/null) would otherwise keep the event loop from
    // ever seeing Ctrl-C: give it a turn after every chunk.
    return this.#output.out(text) ?? new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A column name in a table header: escaped like a cell, never quoted. */
function headerCell(name: string): string {
  return cut(escapeControls(name));
}

/**
 * A value as one line of a table cell: NULL as `NULL`; text as it is, unless it could be read as
 * NULL, a blob or quoted text, then SQL-quoted; reals with a fraction or exponent (`42.0`, `Inf`);
 * blobs in hex; control characters escaped; values wider than 200 columns cut.
 */
export function tableCell(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) return hexBlob(value);
  if (typeof value === 'number') return realText(value, 'Inf');
  if (typeof value === 'bigint') return value.toString();
  const ambiguous = /^null$/i.test(value) || value.startsWith("'") || /^x'/i.test(value);
  return cut(escapeControls(ambiguous ? `'${value.replaceAll("'", "''")}'` : value));
}

function escapeControls(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (char) => CONTROL[char] ?? (char.charCodeAt(0) <= 0xff ? `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${char.charCodeAt(0).toString(16)}`),
  );
}

const CONTROL: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` cut to at most MAX_WIDTH display columns, at a character boundary, ending in … when cut. */
function cut(text: string): string {
  if (text.length <= MAX_WIDTH && displayWidth(text) <= MAX_WIDTH) return text;
  if (NARROW.test(text)) return `${text.slice(0, MAX_WIDTH - 1)}…`;
  let width = 0;
  let result = '';
  for (const unit of units(text)) {
    const w = unitWidth(unit);
    if (width + w > MAX_WIDTH - 1) break;
    width += w;
    result += unit;
  }
  return `${result}…`;
}

function padCell(cell: string, width: number): string {
  return cell + ' '.repeat(Math.max(0, width - displayWidth(cell)));
}

/** A REAL as text that reads back as a REAL: `42.0`, `0.1`, `1e+21`, `-0.0`; infinity as `infinity`/`-infinity`. */
function realText(value: number, infinity: string): string {
  if (Number.isNaN(value)) return 'null';
  if (!Number.isFinite(value)) return value > 0 ? infinity : `-${infinity}`;
  if (Object.is(value, -0)) return '-0.0';
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

// East Asian Wide and Fullwidth ranges outside emoji (Unicode 15: Hangul Jamo, CJK, Kana, Hangul,
// fullwidth forms, Tangut/Kana supplements, CJK extensions); emoji are matched by their property.
const WIDE = [
  0x1100, 0x115f, 0x2329, 0x232a, 0x2e80, 0x303e, 0x3041, 0x3247, 0x3250, 0x4dbf, 0x4e00, 0xa4c6, 0xa960, 0xa97c, 0xac00, 0xd7a3, 0xf900, 0xfaff,
  0xfe10, 0xfe19, 0xfe30, 0xfe6b, 0xff01, 0xff60, 0xffe0, 0xffe6, 0x16fe0, 0x1b2fb, 0x1f200, 0x1f2ff, 0x20000, 0x3fffd,
];
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}/u;
const EMOJI = /\p{Emoji}/u;
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}\u1160-\u11ff]/u;

function codePointWidth(char: string): number {
  const code = char.codePointAt(0)!;
  if (code < 0x300) return 1;
  for (let i = 0; i < WIDE.length; i += 2) {
    if (code < WIDE[i]!) break;
    if (code <= WIDE[i + 1]!) return 2;
  }
  if (EMOJI_PRESENTATION.test(char)) return 2;
  return ZERO_WIDTH.test(char) ? 0 : 1;
}

/** The columns a character or grapheme cluster takes in a terminal: its widest character; an emoji with VS16 (U+FE0F) takes two. */
function unitWidth(unit: string): number {
  if (unit.length === 1 || (unit.length === 2 && unit.codePointAt(0)! > 0xffff)) return codePointWidth(unit);
  let width = 0;
  for (const char of unit) width = Math.max(width, codePointWidth(char));
  if (width < 2 && unit.includes('\ufe0f') && EMOJI.test(unit)) return 2;
  return width;
}

/** Text of one-column characters only (ASCII, Latin-1, Latin Extended, …): its width is its length. */
const NARROW = /^[\x20-\x7e\u00a0-\u02ff\u2026]*$/;
/** Characters that join with their neighbours into one cluster (ZWJ, VS16, flags, skin tones). */
const JOINING = /[\u200d\ufe0f\u{1f1e6}-\u{1f1ff}\u{1f3fb}-\u{1f3ff}]/u;
const segmenter = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : undefined;

/** The units of `text` whose widths add up: grapheme clusters where characters join, else characters. */
function* units(text: string): Generator<string> {
  if (segmenter === undefined || !JOINING.test(text)) {
    yield* text;
    return;
  }
  for (const { segment } of segmenter.segment(text)) yield segment;
}

/**
 * The columns `text` takes in a terminal: East Asian Wide and Fullwidth characters and emoji
 * take 2, combining marks and other zero-width characters 0, everything else 1 (an emoji
 * sequence joined by ZWJ, a flag, an emoji with a skin tone or VS16 counts once).
 */
export function displayWidth(text: string): number {
  if (NARROW.test(text)) return text.length;
  let width = 0;
  for (const unit of units(text)) width += unitWidth(unit);
  return width;
}

function hexBlob(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `x'${shown}${bytes.length > 32 ? '…' : ''}'`;
}

/**
 * A value as JSON, exactly: integers (bigints) as their digits, reals with a fraction or exponent
 * (infinity as `1e999`, which every JSON reader reads as infinity), blobs as {"$blob":"<base64>"}.
 */
export function jsonValue(value: SqlValue): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return realText(value, '1e999');
  if (value instanceof Uint8Array) return `{"$blob":"${base64(value)}"}`;
  return jsonText(value);
}

/**
 * `JSON.stringify`, with the characters it leaves raw that a terminal may act on or that move text
 * (C1 controls such as U+009B, which some terminals take as ESC [, line separators, bidirectional
 * controls) written as `\u` escapes: the same JSON value, safe to print.
 */
function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
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
