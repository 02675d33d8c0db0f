import * as fs from 'node:fs';
import { Buffer } from 'node:buffer';

/** What the image reader needs to know about a file. Times in nanoseconds. */
export interface FileStat {
  readonly isFile: boolean;
  readonly ino: bigint;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/**
 * The file operations the image reader performs, passed in so tests can interleave simulated
 * writers between any two calls. Errors are Node-style: an `Error` with a `code` such as `ENOENT`.
 */
export interface ImageFileSystem {
  open(path: string): number;
  close(fd: number): void;
  fstat(fd: number): FileStat;
  /** `undefined` when nothing exists at the path. */
  stat(path: string): FileStat | undefined;
  /** Synchronous positional read for headers; returns the bytes read (short at end of file). */
  readSync(fd: number, into: Uint8Array, offset: number, length: number, position: number): number;
  /** Asynchronous positional read for whole files, so a large read does not block the event loop. */
  read(fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * The target of the symbolic link at `path` (its last component is not followed: `lstat`, then
   * `readlink`), or `undefined` when `path` is not a symbolic link or does not exist. Absent: the
   * file system has no symbolic links, and paths are used as given.
   */
  readlink?(path: string): string | undefined;
  /** A new, uninitialised buffer that nothing else references. */
  allocate(size: number): Uint8Array;
  /**
   * The current time on the clock file times come from, in nanoseconds since the epoch; with
   * {@link ImageFileSystem.racyWindowNs}, what decides whether file times prove anything. Default:
   * the system clock.
   */
  now?(): bigint;
  /**
   * How coarse file times may be, plus how far the file clock may lag {@link ImageFileSystem.now}.
   * A file whose newest time is not older than this proves nothing by its metadata (git's
   * "racy clean" rule). Default: {@link DEFAULT_RACY_WINDOW_NS}.
   */
  readonly racyWindowNs?: bigint;
}

/**
 * 2 s (FAT's time resolution, the coarsest in common use; ext4 with 128-byte inodes, HFS+ and many
 * network file systems have 1 s) plus 50 ms for a kernel's coarse clock tick: nothing tells a
 * program how coarse the file system under a path stamps its files.
 */
export const DEFAULT_RACY_WINDOW_NS = 2_050_000_000n;

/** The file system's clock, or the system's. */
export function fileClockNs(fs: ImageFileSystem): bigint {
  return fs.now === undefined ? BigInt(Date.now()) * 1_000_000n : fs.now();
}

function toStat(stat: fs.BigIntStats): FileStat {
  return {
    isFile: stat.isFile(),
    ino: stat.ino,
    size: Number(stat.size),
    mtimeNs: stat.mtimeNs,
    ctimeNs: stat.ctimeNs,
  };
}

/** The production file system: `node:fs` (also in Deno and Bun). */
export const nodeFileSystem: ImageFileSystem = {
  // Non-blocking: opening a FIFO for reading (a -journal or -wal that is one) would otherwise wait
  // for a writer, blocking the whole process. No effect on regular files; absent on Windows.
  open: (path) => fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0)),
  close: (fd) => fs.closeSync(fd),
  fstat: (fd) => toStat(fs.fstatSync(fd, { bigint: true })),
  stat(path) {
    const stat = fs.statSync(path, { bigint: true, throwIfNoEntry: false });
    return stat === undefined ? undefined : toStat(stat);
  },
  readlink(path) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(path, { throwIfNoEntry: false });
    } catch (error) {
      // A component that is a file: what follows does not exist, and reading the path says so.
      if ((error as { code?: unknown } | null)?.code === 'ENOTDIR') return undefined;
      throw error;
    }
    return stat?.isSymbolicLink() === true ? fs.readlinkSync(path, 'utf8') : undefined;
  },
  readSync: (fd, into, offset, length, position) => fs.readSync(fd, into, offset, length, position),
  read: (fd, into, offset, length, position) =>
    new Promise((resolve, reject) => {
      fs.read(fd, into, offset, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead)));
    }),
  // Each chunk gets its own ArrayBuffer: a chunk kept as a slab pins nothing else.
  allocate: (size) => Buffer.allocUnsafeSlow(size),
  // Date.now() never runs ahead of the kernel's clock, so it errs on the safe side.
  now: () => BigInt(Date.now()) * 1_000_000n,
  racyWindowNs: DEFAULT_RACY_WINDOW_NS,
};
