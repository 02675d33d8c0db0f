import { Buffer } from 'node:buffer';

/**
 * The storage sql.js keeps for one version's database file, which refuses writes once sealed.
 *
 * sql.js's in-memory file system takes what `new Database(data)` is given by calling
 * `data.slice(0, length)` once and keeps the result as the file's contents; afterwards it reads
 * with `subarray(start, end)`, writes with `set(bytes, offset)`, and grows the file by copying it
 * into a larger `Uint8Array` when `length` is too small. This object is that result: it reports
 * a length no write can exceed, so sql.js never replaces it, grows itself while writes are
 * allowed (the `onReload` overlay), and once sealed fails every write with EIO: the backstop
 * under the SQL guard. SQLite then reports a disk I/O error, and that connection keeps failing
 * (its rollback cannot write either) rather than serving a changed version. Reads cost one
 * method call per page read from the file (SQLite's page cache serves repeated reads). sql.js
 * truncates a file by copying it into a new array: after an overlay that shrinks the file
 * (`VACUUM`), that version has the SQL guard but not this backstop.
 */
export class SealableImage {
  #bytes: Uint8Array;
  #opened = false;
  #sealed = false;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** While sql.js copies the image in, its true length; afterwards larger than any write. */
  get length(): number {
    return this.#opened ? Number.MAX_SAFE_INTEGER : this.#bytes.length;
  }

  /** Called once by sql.js when it opens the image: the contents are this object from then on. */
  slice(start: number, end: number): this {
    // Like Buffer#slice, a Buffer is kept as a view; any other Uint8Array is copied, as sql.js did.
    // The view is a plain Uint8Array: Node's Buffer#subarray, called once per page read, costs more.
    const bytes = this.#bytes;
    this.#bytes = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start) : bytes.slice(start, end);
    this.#opened = true;
    return this;
  }

  subarray(start: number, end?: number): Uint8Array {
    return this.#bytes.subarray(start, end);
  }

  set(source: ArrayLike<number>, offset = 0): void {
    if (this.#sealed) throw refusedWrite();
    const end = offset + source.length;
    if (end > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(end, Math.ceil(this.#bytes.length * 1.25)));
      grown.set(this.#bytes);
      this.#bytes = grown;
    }
    this.#bytes.set(source, offset);
  }

  /** From now on every write to this version's file fails. */
  seal(): void {
    this.#sealed = true;
  }
}

/** Emscripten's EIO, which SQLite's file layer turns into SQLITE_IOERR_WRITE. */
const EIO = 29;

/**
 * What the write throws. Any other exception would unwind through SQLite's WebAssembly frames
 * and leave its page cache holding the change; sql.js's file layer turns an `ErrnoError` into
 * an error code instead, so SQLite fails the write and rolls back. The errno sits in a property
 * whose name the minifier chose: every property but `name` reads as EIO.
 */
function refusedWrite(): Error {
  const error = new Error('a sealed dbcache version refused a write');
  return new Proxy(error, {
    get: (target, key) => (key === 'name' ? 'ErrnoError' : typeof key === 'string' && !(key in target) ? EIO : Reflect.get(target, key)),
  });
}
