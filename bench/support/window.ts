/** The racy window of coarse file clocks, as the library applies it (src/image/file-system.ts). */
import * as fs from 'node:fs';

/** 2 s (FAT) plus 50 ms for a coarse kernel clock tick: `DEFAULT_RACY_WINDOW_NS`. */
export const WINDOW_MS = 2050;

const ALL_FILES = ['', '-wal', '-shm', '-journal'];

/** The newest file time of a database's files (ms since the epoch); `suffixes` picks which. */
export function newestFileTime(file: string, suffixes: readonly string[] = ALL_FILES): number {
  let newest = 0;
  for (const suffix of suffixes) {
    const stat = fs.statSync(`${file}${suffix}`, { throwIfNoEntry: false });
    if (stat !== undefined) newest = Math.max(newest, stat.mtimeMs, stat.ctimeMs);
  }
  return newest;
}

/**
 * Waits until the database's files (those of `suffixes`) are older than the window: from then on
 * a no-op reload needs stats and a header read only (after one verifying read).
 */
export async function waitOutWindow(file: string, suffixes: readonly string[] = ALL_FILES): Promise<void> {
  for (;;) {
    const left = newestFileTime(file, suffixes) + WINDOW_MS + 20 - Date.now();
    if (left <= 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, 500)));
  }
}
