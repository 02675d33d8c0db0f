import { watch } from 'chokidar';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { nodeFileSystem } from './image/file-system.ts';
import { absolutePath, resolveDatabasePath } from './image/resolve.ts';

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
  /**
   * Resolves the path again and, if its symbolic links lead elsewhere now (or a directory on the
   * way appeared or vanished), moves the watch there and then calls `onChange` once.
   */
  follow(): void;
  close(): Promise<void>;
}

/** A running watch of one directory. */
interface DirectoryWatcher {
  close(): Promise<void>;
}

/** Directory → the names in it to watch. */
type WatchPlan = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * Watches the database the path leads to: its directory, filtered to the database, its `-wal`
 * and its `-journal` (including files that appear later), and, where symbolic links lead there
 * (resolved as SQLite resolves them), the directory of each link, filtered to the link's name, so
 * that a link replaced to lead elsewhere is seen. Calls `onChange` for every event on them. The
 * watcher keeps the process alive only with `persistent`. Resolves once the initial scan is done.
 */
export async function watchDatabaseFiles(
  path: string,
  settings: WatchSettings,
  onChange: () => void,
  onError: (error: unknown) => void,
): Promise<FileWatcher> {
  const watcher = new DatabaseWatcher(absolutePath(path, nodeFileSystem), settings, onChange, onError);
  try {
    await watcher.start();
  } catch (error) {
    await watcher.close();
    throw error;
  }
  return watcher;
}

class DatabaseWatcher implements FileWatcher {
  readonly #path: string;
  readonly #settings: WatchSettings;
  readonly #onChange: () => void;
  readonly #onError: (error: unknown) => void;
  #plan: WatchPlan = new Map();
  readonly #directories = new Map<string, DirectoryWatcher>();
  /** Changes to the plan, one at a time. */
  #moving: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(path: string, settings: WatchSettings, onChange: () => void, onError: (error: unknown) => void) {
    this.#path = path;
    this.#settings = settings;
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** The first watch; rejects if a directory cannot be watched. */
  async start(): Promise<void> {
    await this.#apply(this.#planNow() ?? fallbackPlan(this.#path), true);
  }

  follow(): void {
    this.#moving = this.#moving.then(async () => {
      if (this.#closed) return;
      const plan = this.#planNow();
      if (plan === undefined || samePlan(plan, this.#plan)) return;
      await this.#apply(plan);
      // A commit between the resolution and the new watch's start would wait for the next event.
      if (!this.#closed) this.#onChange();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#moving;
    const closing = [...this.#directories.values()].map((watcher) => watcher.close());
    this.#directories.clear();
    await Promise.all(closing);
  }

  /** What to watch where the path leads now, or `undefined` when it cannot be resolved (a loop). */
  #planNow(): WatchPlan | undefined {
    let resolved;
    try {
      resolved = resolveDatabasePath(this.#path, nodeFileSystem);
    } catch {
      return undefined;
    }
    const plan = new Map<string, Set<string>>();
    const add = (file: string, names: readonly string[]): void => {
      const directory = nodePath.dirname(file);
      // A directory that does not exist (a dangling link's) cannot be watched; once it exists, follow() finds it.
      if (!isDirectory(directory)) return;
      const set = plan.get(directory) ?? new Set<string>();
      for (const name of names) set.add(name);
      plan.set(directory, set);
    };
    const base = nodePath.basename(resolved.path);
    add(resolved.path, [base, `${base}-wal`, `${base}-journal`]);
    for (const link of resolved.links) add(link, [nodePath.basename(link)]);
    return plan;
  }

  /** Stops watching what `plan` drops or changes, and starts what it adds. */
  async #apply(plan: WatchPlan, rethrow = false): Promise<void> {
    for (const [directory, watcher] of this.#directories) {
      if (sameNames(plan.get(directory), this.#plan.get(directory))) continue;
      this.#directories.delete(directory);
      await watcher.close();
    }
    this.#plan = plan;
    for (const [directory, names] of plan) {
      if (this.#directories.has(directory) || this.#closed) continue;
      try {
        this.#directories.set(directory, await watchDirectory(directory, names, this.#settings, this.#onChange, this.#onError));
      } catch (error) {
        if (rethrow) throw error;
        this.#onError(error);
      }
    }
  }
}

/** The directory of `path` and the database's names, as written: when the path cannot be resolved. */
function fallbackPlan(path: string): WatchPlan {
  const base = nodePath.basename(path);
  return new Map([[nodePath.dirname(nodePath.resolve(path)), new Set([base, `${base}-wal`, `${base}-journal`])]]);
}

function samePlan(a: WatchPlan, b: WatchPlan): boolean {
  if (a.size !== b.size) return false;
  for (const [directory, names] of a) if (!sameNames(names, b.get(directory))) return false;
  return true;
}

function sameNames(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const name of a) if (!b.has(name)) return false;
  return true;
}

function isDirectory(path: string): boolean {
  try {
    return fs.statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
  } catch {
    return false;
  }
}

/**
 * Watches `directory`, filtered to `names` (including files that appear later), and calls
 * `onChange` for every event on them. Resolves once the initial scan is done.
 */
async function watchDirectory(
  directory: string,
  names: ReadonlySet<string>,
  settings: WatchSettings,
  onChange: () => void,
  onError: (error: unknown) => void,
): Promise<DirectoryWatcher> {
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
    // A watched name that is a symbolic link is watched as a link: what it leads to is watched where it is.
    followSymlinks: false,
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
): DirectoryWatcher {
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
