import * as fs from 'node:fs';
import type { ImageFileSystem } from '../image/file-system.ts';

/** {@link ImageFileSystem} plus a directory listing: what the replica adapters read through. */
export interface ReplicaFileSystem extends ImageFileSystem {
  /** The names in directory `path`, or `undefined` when it does not exist. */
  readdir(path: string): string[] | undefined;
}

/** Lists a directory through `node:fs` (also in Deno and Bun). */
export function nodeReaddir(path: string): string[] | undefined {
  try {
    return fs.readdirSync(path);
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** `fs` with a directory listing: its own if it has one (a test's), else `node:fs`'s. */
export function withReaddir(fs: ImageFileSystem): ReplicaFileSystem {
  const own = (fs as Partial<ReplicaFileSystem>).readdir;
  if (typeof own === 'function') return fs as ReplicaFileSystem;
  // Delegates instead of spreading: a class instance keeps its getters (racyWindowNs) and `this`.
  return {
    open: (path) => fs.open(path),
    close: (fd) => fs.close(fd),
    fstat: (fd) => fs.fstat(fd),
    stat: (path) => fs.stat(path),
    readSync: (fd, into, offset, length, position) => fs.readSync(fd, into, offset, length, position),
    read: (fd, into, offset, length, position) => fs.read(fd, into, offset, length, position),
    allocate: (size) => fs.allocate(size),
    ...(fs.now === undefined ? {} : { now: () => fs.now!() }),
    ...(fs.racyWindowNs === undefined ? {} : { racyWindowNs: fs.racyWindowNs }),
    readdir: nodeReaddir,
  };
}
