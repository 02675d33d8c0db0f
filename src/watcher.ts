import { watch } from 'chokidar';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';

declare const Deno: unknown;

/** How to watch the database's files. */
export interface WatchSettings {
  /** Poll with `stat` instead of relying on file-system events (network and container file systems). */
  readonly polling: boolean;
  /** Polling interval in milliseconds when `polling` is on. */
  readonly intervalMs: number;
  /** Keep the process alive while watching (chokidar's `persistent`). */
  readonly persistent?: boolean;
}

/** A running watcher; `close` stops it. */
export interface FileWatcher {
  close(): Promise<void>;
}

/**
 * Watches the directory of `path`, filtered to the database, its `-wal` and its `-journal`
 * (including files that appear later), and calls `onChange` for every event on them. The
 * watcher keeps the process alive only with `persistent`. Resolves once the initial scan is done.
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
  // Deno's node:fs ignores `persistent: false`, and chokidar keeps no handle to unref: there the
  // same watch is made directly, so the process can still exit while a cache is open.
  if (typeof Deno !== 'undefined') return watchUnrefed(directory, names, settings, onChange, onError);
  const isOurs = (candidate: string): boolean => names.has(nodePath.basename(candidate));
  const watcher = watch(directory, {
    depth: 0,
    ignoreInitial: true,
    persistent: settings.persistent === true,
    // `atomic` would hold back unlink events by 100 ms; a rename-replace must reload at once.
    atomic: false,
    usePolling: settings.polling,
    interval: settings.intervalMs,
    binaryInterval: settings.intervalMs,
    // With events, the directory's own watcher reports every change to its entries, so chokidar
    // need not watch the files themselves: a file watched just as SQLite deletes it (a -wal at the
    // last close) makes Deno's fs.watch throw outside any handler. Polling needs the files.
    ignored: (candidate: string) => candidate !== directory && (!settings.polling || !isOurs(candidate)),
  });
  watcher.on('all', (_event: string, path: string) => {
    if (isOurs(path)) onChange();
  });
  // Raw events arrive before chokidar's de-duplication and stat calls: the earliest signal.
  watcher.on('raw', (_event: string, name: string | null) => {
    if (name === null || isOurs(name)) onChange();
  });
  watcher.on('error', onError);
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return { close: () => watcher.close() };
}

/** The directory's events (or, polling, each file's stat) through node:fs, every watcher unref'd unless persistent. */
function watchUnrefed(
  directory: string,
  names: ReadonlySet<string>,
  settings: WatchSettings,
  onChange: () => void,
  onError: (error: unknown) => void,
): FileWatcher {
  if (settings.polling) {
    const files = [...names].map((name) => nodePath.join(directory, name));
    const listener = (): void => onChange();
    for (const file of files) {
      const watcher = fs.watchFile(file, { persistent: settings.persistent === true, interval: settings.intervalMs }, listener);
      if (settings.persistent !== true) watcher.unref();
    }
    return {
      close: async () => {
        for (const file of files) fs.unwatchFile(file, listener);
      },
    };
  }
  const watcher = fs.watch(directory, { persistent: settings.persistent === true }, (_event, name) => {
    if (name === null || names.has(nodePath.basename(String(name)))) onChange();
  });
  watcher.on('error', onError);
  if (settings.persistent !== true) watcher.unref();
  return { close: async () => watcher.close() };
}
