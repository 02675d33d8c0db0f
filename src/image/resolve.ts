import * as nodePath from 'node:path';
import { cwd } from 'node:process';
import { PipelineFailure } from '../errors.ts';
import type { ImageFileSystem } from './file-system.ts';
import { toFailure } from './read.ts';

/** Where a database path leads, resolved as SQLite's unix VFS resolves it. */
export interface ResolvedPath {
  /** The database file SQLite opens: its `-wal`, `-shm` and `-journal` are beside it. */
  readonly path: string;
  /** The symbolic links followed on the way, in order, each as the path it was reached by. */
  readonly links: readonly string[];
}

/**
 * How many symbolic links one resolution may follow, as in SQLite: its limit `SQLITE_MAX_SYMLINK`
 * is 200, compared before the link at hand is counted, so the 202nd link fails (`SQLITE_CANTOPEN`).
 */
export const MAX_SYMLINKS = 201;

/**
 * The database file SQLite opens for `path`, as a path the kernel resolves to it, so that its
 * `-wal`, `-shm` and `-journal` are the names beside it.
 *
 * SQLite's unix VFS (`unixFullPathname`; it follows a link to the database since 3.10.0) makes
 * the path absolute and resolves it one component at a time onto the path built so far: `.` is
 * dropped, `..` goes to the parent of the directory reached (not of the name as written), and a
 * symbolic link is replaced by its target (an absolute one restarts from `/`, a relative one is
 * taken from the link's directory). For every component but the last, that is what the kernel
 * does with any path: only the last one matters to the names beside the file. So only the last
 * component is resolved here (one `lstat` when it is not a link), its target written after the
 * link's directory as written, again until the last component is not a link. Directories stay as
 * written: under Deno a path inside `--allow-read=data` stays inside it.
 *
 * A target that does not exist is kept: a dangling link leads to its target's path, where SQLite
 * would create the file. Without `fs.readlink` (a file system with no symbolic links), and on
 * Windows, whose VFS resolves nothing, `path` is returned as given. Throws PipelineFailure:
 * `NOT_FOUND` past {@link MAX_SYMLINKS} links (a loop; SQLite's `SQLITE_CANTOPEN`), and as
 * {@link readImage} does for a file-system error.
 */
export function resolveDatabasePath(path: string, fs: ImageFileSystem): ResolvedPath {
  if (!resolvesLinks(fs)) return { path, links: [] };
  const links: string[] = [];
  let current = absolutePath(path, fs);
  for (;;) {
    let target: string | undefined;
    try {
      target = fs.readlink!(current);
    } catch (error) {
      throw toFailure(error);
    }
    if (target === undefined) return { path: current, links };
    if (links.length === MAX_SYMLINKS) {
      throw new PipelineFailure('NOT_FOUND', `more than ${MAX_SYMLINKS} symbolic links lead on from ${path} (a loop?)`);
    }
    links.push(current);
    // SQLite splits the target at '/': a trailing slash is no part of the name.
    const name = target.length > 1 ? target.replace(/\/+$/, '') : target;
    current = name.startsWith('/') ? name : `${current.slice(0, current.lastIndexOf('/'))}/${name}`;
  }
}

/**
 * Where `path` leads with every component resolved, as SQLite resolves it (see
 * {@link resolveDatabasePath}): the real directories, and every symbolic link on the way (each as
 * its real directory plus its name), for the watcher. A component that cannot be inspected (a
 * directory the process may not read, as under Deno's scoped `--allow-read`) counts as no link.
 * Returns `undefined` past {@link MAX_SYMLINKS} links or on another error.
 */
export function realPath(path: string, fs: ImageFileSystem): ResolvedPath | undefined {
  if (!resolvesLinks(fs)) return { path, links: [] };
  const links: string[] = [];
  // The path built so far, without a trailing slash: '' is the root.
  let built = '';
  const appendAll = (names: string): void => {
    for (const name of names.split('/')) if (name !== '') appendOne(name);
  };
  const appendOne = (name: string): void => {
    if (name === '.') return;
    if (name === '..') {
      built = built.slice(0, Math.max(0, built.lastIndexOf('/')));
      return;
    }
    const parent = built;
    built = `${built}/${name}`;
    const target = readlinkIfAllowed(fs, built);
    if (target === undefined) return;
    if (links.length === MAX_SYMLINKS) throw new PipelineFailure('NOT_FOUND', 'too many symbolic links');
    links.push(built);
    built = target.startsWith('/') ? '' : parent;
    appendAll(target);
  };
  try {
    appendAll(absolutePath(path, fs));
  } catch {
    return undefined;
  }
  return { path: built === '' ? '/' : built, links };
}

/**
 * `path` made absolute against the working directory, as SQLite does when it opens a database,
 * where symbolic links are resolved (else `path` as given). Not normalised: `..` must apply to the
 * directory a link leads to, not to the link's name.
 */
export function absolutePath(path: string, fs: ImageFileSystem): string {
  return !resolvesLinks(fs) || path.startsWith('/') ? path : `${cwd()}/${path}`;
}

/** `error`, its message naming the file the path led to when links were followed there. */
export function namingTarget(error: unknown, resolved: ResolvedPath): unknown {
  if (resolved.links.length === 0 || !(error instanceof PipelineFailure)) return error;
  return new PipelineFailure(error.code, `${error.message} (the path leads through symbolic links to ${resolved.path})`, { cause: error.cause ?? error });
}

function resolvesLinks(fs: ImageFileSystem): boolean {
  return fs.readlink !== undefined && nodePath.sep === '/';
}

function readlinkIfAllowed(fs: ImageFileSystem, path: string): string | undefined {
  try {
    return fs.readlink!(path);
  } catch (error) {
    if (toFailure(error).code === 'PERMISSION') return undefined;
    throw error;
  }
}
