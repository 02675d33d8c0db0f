/** Size of the database header at the start of page 1. */
export const DB_HEADER_SIZE = 100;

const MAGIC = 'SQLite format 3\0';

/** The fields of the 100-byte database header that the image reader needs. */
export interface DbHeader {
  /** Page size in bytes (the stored 1 already turned into 65536). */
  readonly pageSize: number;
  /** 1 = rollback journal, 2 = WAL. */
  readonly writeVersion: number;
  /** 1 = rollback journal, 2 = WAL. */
  readonly readVersion: number;
  /** Incremented by every commit in rollback mode (not reliably in WAL mode). */
  readonly changeCounter: number;
  /** Size of the database in pages, as the header records it (trust it only when {@link DbHeader.pageCountValid}). */
  readonly pageCount: number;
  /** Whether the writer kept `pageCount` current (bytes 92–95 equal the change counter, as SQLite ≥ 3.7 writes). */
  readonly pageCountValid: boolean;
}

/** Raised by the pure parsers for bytes that cannot be an SQLite image; `read.ts` turns it into a DbCacheError. */
export class ImageFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageFormatError';
  }
}

/** Whether `pageSize` is a power of two between 512 and 65536. */
export function isValidPageSize(pageSize: number): boolean {
  return pageSize >= 512 && pageSize <= 65536 && (pageSize & (pageSize - 1)) === 0;
}

/** Parses and validates the database header; throws ImageFormatError for anything that is not SQLite 3. */
export function parseDbHeader(bytes: Uint8Array): DbHeader {
  if (bytes.length < DB_HEADER_SIZE) {
    throw new ImageFormatError(`the header is truncated (${bytes.length} of ${DB_HEADER_SIZE} bytes)`);
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) throw new ImageFormatError('file is not a database');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, DB_HEADER_SIZE);
  const rawPageSize = view.getUint16(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  if (!isValidPageSize(pageSize)) throw new ImageFormatError(`invalid page size ${rawPageSize}`);
  const writeVersion = bytes[18]!;
  const readVersion = bytes[19]!;
  if (writeVersion < 1 || writeVersion > 2 || readVersion < 1 || readVersion > 2) {
    throw new ImageFormatError(`unsupported file format version ${writeVersion}/${readVersion}`);
  }
  if (pageSize - bytes[20]! < 480) throw new ImageFormatError(`invalid reserved space ${bytes[20]}`);
  if (bytes[21] !== 64 || bytes[22] !== 32 || bytes[23] !== 32) {
    throw new ImageFormatError('invalid payload fractions');
  }
  return {
    pageSize,
    writeVersion,
    readVersion,
    changeCounter: view.getUint32(24),
    pageCount: view.getUint32(28),
    pageCountValid: view.getUint32(92) === view.getUint32(24) && view.getUint32(28) !== 0,
  };
}

/** Whether the first bytes of a database file mark it as being in WAL mode (bytes 18–19). */
export function marksWal(bytes: Uint8Array): boolean {
  return bytes.length >= 20 && (bytes[18] === 2 || bytes[19] === 2);
}

/**
 * Marks an image as a rollback-journal database (header bytes 18–19 = 1), so that an engine
 * without the `-wal` file opens it as complete. The image must be at least 20 bytes.
 */
export function markRollback(image: Uint8Array): void {
  image[18] = 1;
  image[19] = 1;
}
