import { DbCacheError, PipelineFailure, describe } from './errors.ts';
import { nodeFileSystem } from './image/file-system.ts';
import { inspectDatabase as inspectFiles, type DatabaseInfo } from './image/inspect.ts';
import { sleep } from './timers.ts';

export type { DatabaseInfo };

/**
 * Describes the SQLite database at `path` from one consistent read: journal mode, page size,
 * pages, WAL frames and the version string dbcache would give it. Takes no locks. Follows
 * symbolic links as SQLite does: the `-wal` and `-shm` read are those beside the real file.
 *
 * Rejects with a DbCacheError (`NOT_FOUND`, `NOT_A_FILE`, `PERMISSION`, `NOT_A_DATABASE`, `BUSY`, `IO`).
 *
 * @example
 * ```ts
 * const { journalMode, walCommittedFrames } = await inspectDatabase('data/app.db');
 * ```
 */
export async function inspectDatabase(path: string, options: { busyTimeoutMs?: number } = {}): Promise<DatabaseInfo> {
  if (typeof path !== 'string' || path === '') throw new TypeError('inspectDatabase() needs a non-empty path');
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (typeof busyTimeoutMs !== 'number' || !(busyTimeoutMs >= 0)) {
    throw new RangeError(`options.busyTimeoutMs must be a number >= 0, got ${String(busyTimeoutMs)}`);
  }
  try {
    return await inspectFiles(path, nodeFileSystem, { busyTimeoutMs, sleep, now: () => performance.now() });
  } catch (error) {
    const code = error instanceof PipelineFailure ? error.code : 'IO';
    throw new DbCacheError(code, path, `Inspecting ${path} failed: ${describe(error)}; nothing was read`, { cause: error });
  }
}
