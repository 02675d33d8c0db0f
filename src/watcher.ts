import { watch } from 'chokidar';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { nodeFileSystem, type ImageFileSystem } from './image/file-system.ts';
import { toFailure } from './image/read.ts';
import { absolutePath, realPath, resolveDatabasePath, type ResolvedPath } from './image/resolve.ts';

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

/** One directory to watch. */
interface WatchedDirectory {
  /** The path it is watched by: the one the reader uses, so it needs no other permission. */
  readonly at: string;
  readonly names: ReadonlySet<string>;
  /** Only links' names: if the process may not watch it, it goes unwatched. */
  readonly optional: boolean;
}

/** Real directory → how it is watched. */
type WatchPlan = ReadonlyMap<string, WatchedDirectory>;

/**
 * Watches the database the path leads to (symbolic links resolved as SQLite resolves them): its
 * directory, filtered to the database, its `-wal` and its `-journal` (including files that appear
 * later), and the directory of each link on the way, filtered to the link's name, so that a link
 * replaced to lead elsewhere is seen. Calls `onChange` for every event on them. The watcher keeps
 * the process alive only with `persistent`. Resolves once the initial scan is done.
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
  /** By real directory, as in the plan. */
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

  /** The first watch; rejects if the database's directory cannot be watched. */
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
    }).catch((error: unknown) => this.#onError(error));
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
    let reading: ResolvedPath;
    try {
      reading = resolveDatabasePath(this.#path, nodeFileSystem);
    } catch {
      return undefined;
    }
    const real = realPath(this.#path, lookingFileSystem);
    const plan = new Map<string, WatchedDirectory>();
    const add = (directory: string, at: string, names: readonly string[], optional: boolean): void => {
      const known = plan.get(directory);
      plan.set(directory, {
        at: known === undefined || known.optional ? at : known.at,
        names: new Set([...(known?.names ?? []), ...names]),
        optional: optional && (known?.optional ?? true),
      });
    };
    const directory = nodePath.dirname(real?.path ?? reading.path);
    // Watched by its real path, or where the process may not look at that (Deno's scoped
    // --allow-read), by the path the reader uses. A directory that does not exist (a dangling
    // link's) cannot be watched; once it exists, follow() finds it.
    const at = [directory, nodePath.dirname(reading.path)].find(isDirectory);
    if (at !== undefined) {
      const base = nodePath.basename(reading.path);
      add(directory, at, [base, `${base}-wal`, `${base}-journal`], false);
    }
    for (const link of real?.links ?? reading.links) add(nodePath.dirname(link), nodePath.dirname(link), [nodePath.basename(link)], true);
    return plan;
  }

  /** Stops watching what `plan` drops or changes, and starts what it adds. */
  async #apply(plan: WatchPlan, rethrow = false): Promise<void> {
    for (const [directory, watcher] of this.#directories) {
      if (sameEntry(plan.get(directory), this.#plan.get(directory))) continue;
      this.#directories.delete(directory);
      await watcher.close();
    }
    this.#plan = plan;
    for (const [directory, entry] of plan) {
      if (this.#directories.has(directory) || this.#closed || (entry.optional && !mayRead(entry.at))) continue;
      const onError = entry.optional ? (error: unknown) => (isPermissionError(error) ? undefined : this.#onError(error)) : this.#onError;
      try {
        this.#directories.set(directory, await watchDirectory(entry.at, entry.names, this.#settings, this.#onChange, onError));
      } catch (error) {
        if (rethrow && !entry.optional) throw error;
        onError(error);
      }
    }
  }
}

/** The directory of `path` and the database's names, as written: when the path cannot be resolved. */
function fallbackPlan(path: string): WatchPlan {
  const base = nodePath.basename(path);
  const directory = nodePath.dirname(nodePath.resolve(path));
  return new Map([[directory, { at: directory, names: new Set([base, `${base}-wal`, `${base}-journal`]), optional: false }]]);
}

function samePlan(a: WatchPlan, b: WatchPlan): boolean {
  if (a.size !== b.size) return false;
  for (const [directory, entry] of a) if (!sameEntry(entry, b.get(directory))) return false;
  return true;
}

function sameEntry(a: WatchedDirectory | undefined, b: WatchedDirectory | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.at !== b.at || a.optional !== b.optional || a.names.size !== b.names.size) return false;
  for (const name of a.names) if (!b.names.has(name)) return false;
  return true;
}

function isDirectory(path: string): boolean {
  if (!mayRead(path)) return false;
  try {
    return fs.statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
  } catch {
    return false;
  }
}

/**
 * Whether the process may read `path` without asking: under Deno, whether read access is granted
 * (a scoped --allow-read; in a terminal Deno would otherwise prompt for what the watcher only
 * looks at in passing). Elsewhere always.
 */
function mayRead(path: string): boolean {
  if (typeof Deno === 'undefined') return true;
  const permissions = (Deno as { permissions?: { querySync?: (descriptor: { name: 'read'; path: string }) => { state: string } } }).permissions;
  return permissions?.querySync === undefined || permissions.querySync({ name: 'read', path }).state === 'granted';
}

/** {@link nodeFileSystem} that sees no link where it may not look ({@link mayRead}). */
const lookingFileSystem: ImageFileSystem = {
  ...nodeFileSystem,
  readlink: (path) => (mayRead(path) ? nodeFileSystem.readlink!(path) : undefined),
};

function isPermissionError(error: unknown): boolean {
  return toFailure(error).code === 'PERMISSION';
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
  const watcher = fs.watch(directory, { persistent: settings.persistent === true }, (event, name) => {
    // Deno names a rename by its first path only: a file or link renamed over one of ours (an
    // atomic replace) can arrive as the temporary name alone. Any rename is worth a cheap check.
    if (name === null || event === 'rename' || names.has(nodePath.basename(String(name)))) onChange();
  });
  watcher.on('error', onError);
  if (settings.persistent !== true) watcher.unref();
  return { close: async () => watcher.close() };
}
