import { Logger as TsLogger } from 'tslog';

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

/** The default: a tslog logger named `dbcache` that prints nothing (pass `logger` to see what dbcache says). */
export function createSilentLogger(): Logger {
  return new TsLogger({ name: 'dbcache', type: 'hidden' });
}
