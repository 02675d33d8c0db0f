import { watch } from 'chokidar';
import * as nodePath from 'node:path';

/** How to watch the database's files. */
export interface WatchSettings {
  /** Poll with `stat` instead of relying on file-system events (network and container file systems). */
  readonly polling: boolean;
  /** Polling interval in milliseconds when `polling` is on. */
  readonly intervalMs: number;
}

/** A running watcher; `close` stops it. */
export interface FileWatcher {
  close(): Promise<void>;
}

/**
 * Watches the directory of `path`, filtered to the database, its `-wal` and its `-journal`
 * (including files that appear later), and calls `onChange` for every event on them. The
 * watcher never keeps the process alive. Resolves once the initial scan is done.
 */
export async function watchDatabaseFiles(
  path: string,
  settings: WatchSettings,
  onChange: () => void,
  onError: (error: unknown) => void,
): Promise<FileWatcher> {
  const absolute = nodePath.resolve(path);
  const directory = nodePath.dirname(absolute);
  const base = nodePath.basename(absolute);
  const names = new Set([base, `${base}-wal`, `${base}-journal`]);
  const watcher = watch(directory, {
    depth: 0,
    ignoreInitial: true,
    persistent: false,
    // `atomic` would hold back unlink events by 100 ms; a rename-replace must reload at once.
    atomic: false,
    usePolling: settings.polling,
    interval: settings.intervalMs,
    binaryInterval: settings.intervalMs,
    ignored: (candidate: string) => candidate !== directory && !names.has(nodePath.basename(candidate)),
  });
  watcher.on('all', onChange);
  // Raw events arrive before chokidar's de-duplication and stat calls: the earliest signal.
  watcher.on('raw', (_event: string, name: string | null) => {
    if (name === null || names.has(nodePath.basename(name))) onChange();
  });
  watcher.on('error', onError);
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return { close: () => watcher.close() };
}
