import * as nodePath from 'node:path';
import { cwd } from 'node:process';
import { PipelineFailure } from '../errors.ts';
import type { ImageFileSystem } from './file-system.ts';
import { toFailure } from './read.ts';

/** Where a database path leads, resolved as SQLite's unix VFS resolves it. */
export interface ResolvedPath {
  /** The database file SQLite opens: its `-wal`, `-shm` and `-journal` are beside it. */
  readonly path: string;
  /** Every symbolic link followed on the way, in order, each as the absolute path it was reached by. */
  readonly links: readonly string[];
}

/**
 * How many symbolic links one resolution may follow, as in SQLite: its limit `SQLITE_MAX_SYMLINK`
 * is 200, compared before the link at hand is counted, so the 202nd link fails (`SQLITE_CANTOPEN`).
 * The kernel's own limit (40 on Linux) does not apply: each link is read and followed here.
 */
export const MAX_SYMLINKS = 201;

/**
 * Resolves `path` the way SQLite's unix VFS does before it opens a database (`unixFullPathname`;
 * SQLite follows a symbolic link to the database since 3.10.0): made absolute against the working
 * directory, then taken one component at a time, left to right, onto the path built so far: `.`
 * is dropped, `..` drops the previous (already resolved) component, and a component that is a
 * symbolic link is replaced by its target (an absolute target restarts from `/`, a relative one
 * is taken from the link's directory), whose components are resolved the same way. A component
 * that does not exist is kept as written: a dangling link leads to its target's path, where
 * SQLite would create the file.
 *
 * Without `fs.readlink` (a file system with no symbolic links), and on Windows, whose VFS
 * resolves nothing, `path` is returned as given. Throws PipelineFailure: `NOT_FOUND` past
 * {@link MAX_SYMLINKS} links (a loop; SQLite's `SQLITE_CANTOPEN`), and as {@link readImage}
 * does for a file-system error.
 */
export function resolveDatabasePath(path: string, fs: ImageFileSystem): ResolvedPath {
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
    const target = fs.readlink!(built);
    if (target === undefined) return;
    if (links.length === MAX_SYMLINKS) {
      throw new PipelineFailure('NOT_FOUND', `more than ${MAX_SYMLINKS} symbolic links lead on from ${path} (a loop?)`);
    }
    links.push(built);
    built = target.startsWith('/') ? '' : parent;
    appendAll(target);
  };
  try {
    appendAll(absolutePath(path, fs));
  } catch (error) {
    throw toFailure(error);
  }
  return { path: built === '' ? '/' : built, links };
}

/**
 * `path` made absolute against the working directory, as SQLite does when it opens a database,
 * where {@link resolveDatabasePath} resolves links (else `path` as given). Not normalised: `..`
 * must apply to the directory a link leads to, not to the link's name.
 */
export function absolutePath(path: string, fs: ImageFileSystem): string {
  return !resolvesLinks(fs) || path.startsWith('/') ? path : `${cwd()}/${path}`;
}

function resolvesLinks(fs: ImageFileSystem): boolean {
  return fs.readlink !== undefined && nodePath.sep === '/';
}

/** `error`, its message naming the file the path led to when links were followed there. */
export function namingTarget(error: unknown, resolved: ResolvedPath): unknown {
  if (resolved.links.length === 0 || !(error instanceof PipelineFailure)) return error;
  return new PipelineFailure(error.code, `${error.message} (the path leads through symbolic links to ${resolved.path})`, { cause: error.cause ?? error });
}
