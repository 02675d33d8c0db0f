import type { ImageFileSystem } from './file-system.ts';
import { parseDbHeader } from './header.ts';
import { readHead, readImage, type DatabaseImage, type ReadPolicy } from './read.ts';
import { namingTarget, resolveDatabasePath } from './resolve.ts';
import { scanWal, WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE } from './wal.ts';

/** What `dbcache info` reports about a database and its side files. */
export interface DatabaseInfo {
  readonly journalMode: 'wal' | 'rollback';
  readonly pageSize: number;
  /** Pages in the consistent image (database file plus committed WAL frames). */
  readonly pages: number;
  readonly fileBytes: number;
  /** Frames in the WAL file that belong to its current salts; 0 without a WAL. */
  readonly walFrames: number;
  /** Of those, frames up to the last commit. */
  readonly walCommittedFrames: number;
  /** Committed frames not yet copied into the database file (from `-shm`), when known. */
  readonly walPendingFrames: number | undefined;
  readonly version: string;
}

/**
 * Describes the database at `path` from one consistent read plus its `-wal` and `-shm`, which are
 * beside the file the path leads to (symbolic links followed as SQLite follows them).
 */
export async function inspectDatabase(given: string, fs: ImageFileSystem, policy: ReadPolicy): Promise<DatabaseInfo> {
  const resolved = resolveDatabasePath(given, fs);
  const { path } = resolved;
  let image: DatabaseImage;
  try {
    image = await readImage(path, fs, policy);
  } catch (error) {
    throw namingTarget(error, resolved);
  }
  const header = image.pages.length === 0 ? undefined : parseDbHeader(image.pages.subarray(0, 100));
  const wal = readFile(fs, `${path}-wal`);
  const scan = wal === undefined ? undefined : scanWal(wal);
  let walFrames = 0;
  if (scan !== undefined && wal !== undefined) {
    walFrames = Math.floor((wal.length - WAL_HEADER_SIZE) / (scan.header.pageSize + WAL_FRAME_HEADER_SIZE));
  }
  const shm = readHead(fs, `${path}-shm`, 100);
  const backfilled = shm !== undefined && shm.length >= 100 ? new DataView(shm.buffer, shm.byteOffset).getUint32(96, true) : undefined;
  const committed = scan?.committedFrames ?? 0;
  return {
    journalMode: image.mode,
    pageSize: header?.pageSize ?? 0,
    pages: header === undefined ? 0 : image.pages.length / header.pageSize,
    fileBytes: fs.stat(path)?.size ?? 0,
    walFrames,
    walCommittedFrames: committed,
    walPendingFrames: backfilled === undefined ? undefined : Math.max(0, committed - backfilled),
    version: image.version,
  };
}

/** The whole file, or `undefined` if it does not exist. */
function readFile(fs: ImageFileSystem, path: string): Uint8Array | undefined {
  const stat = fs.stat(path);
  return stat === undefined ? undefined : readHead(fs, path, stat.size);
}
