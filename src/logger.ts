import { describe } from './errors.ts';

/**
 * The logger dbcache writes to: anything with these four methods (tslog, pino, console, …).
 *
 * @example
 * ```ts
 * const cache = await openDbCache('app.db', { logger: console });
 * ```
 */
export interface Logger {
  debug(...args: unknown[]): unknown;
  info(...args: unknown[]): unknown;
  warn(...args: unknown[]): unknown;
  error(...args: unknown[]): unknown;
}

const ignore = (): undefined => undefined;

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The logger as dbcache calls it: each method of `logger` read once, here, and every call
 * guarded, so nothing a logger does (throw, return a promise that rejects, have its methods
 * replaced later) changes what dbcache does next. Throws a `TypeError` naming the first method
 * that is missing or cannot be read.
 */
export function guardLogger(logger: Logger): Logger {
  if (logger === null || (typeof logger !== 'object' && typeof logger !== 'function')) {
    throw new TypeError(`options.logger must be an object with debug(), info(), warn() and error() methods, got ${logger === null ? 'null' : typeof logger}`);
  }
  const guarded: Partial<Record<(typeof LEVELS)[number], (...args: unknown[]) => undefined>> = {};
  for (const level of LEVELS) {
    let method: unknown;
    try {
      method = logger[level];
    } catch (error) {
      throw new TypeError(`options.logger.${level} could not be read: ${describe(error)}`, { cause: error });
    }
    if (typeof method !== 'function') throw new TypeError(`options.logger must have a ${level}() method`);
    guarded[level] = (...args: unknown[]): undefined => {
      try {
        const result: unknown = Reflect.apply(method, logger, args);
        // An async logger's rejection must not become an unhandled rejection (which ends a Node process).
        if (typeof (result as { then?: unknown } | null)?.then === 'function') Promise.resolve(result).then(undefined, ignore);
      } catch {
        // A logger that fails cannot be told so; dbcache goes on as if it had logged.
      }
      return undefined;
    };
  }
  return guarded as Logger;
}

/**
 * The default: a logger that drops everything. Not a hidden tslog logger: tslog reads the host
 * name and several environment variables as soon as it is imported, which makes Deno ask for
 * `--allow-env` and `--allow-sys` (or deny silently) in every program that uses dbcache.
 */
export function createSilentLogger(): Logger {
  return { debug: ignore, info: ignore, warn: ignore, error: ignore };
}

/**
 * A tslog logger named `dbcache` that prints from `minLevel` up (tslog's levels: 2 debug, 3 info,
 * 4 warn), one line per call, to `write` (default: stderr). Lines carry the time, level and name,
 * never a source position (the package ships no sources to point at). tslog is imported only
 * here, on request. Under Deno it needs env and sys (`hostname`) access, or it asks for them.
 */
export async function createTsLogger(minLevel = 3, write: (line: string) => void = (line) => console.error(line)): Promise<Logger> {
  const { Logger: TsLogger } = await loadTsLog();
  const print = (...args: unknown[]): void => write(args.map(String).join(' '));
  return new TsLogger({
    name: 'dbcache',
    minLevel,
    stack: { capture: 'off' },
    pretty: {
      template: '{{yyyy}}-{{mm}}-{{dd}} {{hh}}:{{MM}}:{{ss}}.{{ms}} {{logLevelName}} {{name}}: ',
      levelMethod: { '*': print },
    },
  });
}

/**
 * tslog, which the command line's `--verbose` needs and nothing else, imported only then (the
 * library's default logger is silent and never loads it). When it cannot be found (a bundle
 * that left it out), an Error that says how to install it (other failures as they are).
 */
export async function loadTsLog<T = typeof import('tslog')>(load: () => Promise<T> = () => import('tslog') as Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const message = describe(error);
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND' && !/Cannot find (module|package) ['"]?tslog/.test(message)) throw error;
    throw new Error('--verbose logs through tslog, which cannot be found (a dependency of dbcache: a bundle may have left it out): run npm install tslog, or leave out --verbose', { cause: error });
  }
}
