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
  const { Logger: TsLogger } = await import('tslog');
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
