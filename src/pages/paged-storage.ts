import type { PageImage } from './page-image.ts';
import type { PageStore } from './page-store.ts';

/**
 * The storage sql.js keeps as one version's database file: a table of pages over a
 * {@link PageImage}, written copy-on-write, which refuses writes once sealed.
 *
 * sql.js 1.16's in-memory file system (Emscripten MEMFS) takes what `new Database(data)` is given
 * by reading `length` and `buffer` and calling `data.slice(0, length)` once, and keeps the result
 * as the file's contents; afterwards it reads with `subarray(start, end)` and writes with
 * `set(bytes, offset)` after checking `length`, growing the file by copying it into a larger
 * `Uint8Array` when `length` is too small (test/pages-contract.test.ts pins this). So this object
 * is that result: it reports a length no write can exceed, so sql.js never replaces it. A read
 * within one page is a view of that page (no copy; SQLite reads whole pages); a read across pages
 * assembles a copy. A write copies each page it touches the first time (the `onReload` overlay);
 * once sealed, every write fails with EIO: the backstop under the SQL guard. SQLite then reports a
 * disk I/O error, and that connection keeps failing (its rollback cannot write either) rather than
 * serving a changed version. sql.js truncates a file by copying it into a new array: after an
 * overlay that shrinks the file (`VACUUM`), that version has the SQL guard but not this backstop.
 */
export class PagedStorage {
  readonly #pageSize: number;
  /** Per page: 1 + the number of its slab in `#slabs` once read (0: not yet), and its offset there. */
  #slabOf: Int32Array | undefined;
  #offsetOf: Float64Array | undefined;
  #slabs: Uint8Array[] = [];
  #slabIds = new Map<ArrayBufferLike, number>();
  #pages: Uint8Array[];
  /**
   * Pages written past the table's end (private copies; the pages in between read as zeros): a
   * file whose table ends long before the file does is never filled in up to a write.
   */
  #far: Map<number, Uint8Array> | undefined;
  /** Pages this storage wrote (private copies); `undefined` until the first write. */
  #owned: Set<number> | undefined;
  #length: number;
  #opened = false;
  #sealed = false;
  #store: PageStore | undefined;

  constructor(image: PageImage, store?: PageStore) {
    this.#pageSize = image.pageSize;
    this.#pages = image.pages;
    this.#length = image.length;
    this.#store = store;
    store?.track(this);
  }

  /** The current page table (the image's own until the first write). */
  get pages(): Uint8Array[] {
    return this.#pages;
  }

  /** While sql.js copies the image in, its true length; afterwards larger than any write. */
  get length(): number {
    return this.#opened ? Number.MAX_SAFE_INTEGER : this.#length;
  }

  /** Called once by sql.js when it opens the image: the contents are this object from then on. */
  slice(start: number, end: number): this {
    if (start !== 0 || end !== this.#length) throw new RangeError(`sql.js asked for bytes ${start}–${end} of a ${this.#length}-byte image`);
    this.#opened = true;
    return this;
  }

  /**
   * Bytes `start` to `end`. SQLite reads whole pages, once per page a query misses in its cache:
   * after a page's first read, where it lies (slab and offset) is kept in typed arrays, so later
   * reads do not touch the page's own object, a cache miss per read on large databases.
   */
  subarray(start: number, end: number): Uint8Array {
    const pageSize = this.#pageSize;
    const index = Math.floor(start / pageSize);
    const from = start - index * pageSize;
    const slab = this.#slabOf !== undefined && index < this.#slabOf.length ? this.#slabOf[index]! : 0;
    if (slab > 0 && from + end - start <= pageSize) {
      const at = this.#offsetOf![index]! + from;
      return this.#slabs[slab - 1]!.subarray(at, at + end - start);
    }
    return this.#read(index, from, start, end);
  }

  #read(index: number, from: number, start: number, end: number): Uint8Array {
    const page = this.#pageAt(index);
    if (page === undefined || from + end - start > page.length) return this.#assemble(start, end);
    if (page.length === this.#pageSize) this.#learn(index, page);
    return page.subarray(from, from + end - start);
  }

  /** Notes where whole page `index` lies (short and written pages are always read from their object). */
  #learn(index: number, page: Uint8Array): void {
    if (this.#slabOf === undefined) {
      this.#slabOf = new Int32Array(this.#pages.length);
      this.#offsetOf = new Float64Array(this.#pages.length);
    }
    if (index >= this.#slabOf.length) return;
    let slab = this.#slabIds.get(page.buffer);
    if (slab === undefined) {
      slab = this.#slabs.push(new Uint8Array(page.buffer));
      this.#slabIds.set(page.buffer, slab);
    }
    this.#slabOf[index] = slab;
    this.#offsetOf![index] = page.byteOffset;
  }

  /** Compaction moved some pages to other slabs: where pages lie is learnt again. */
  moved(): void {
    this.#slabOf = undefined;
    this.#offsetOf = undefined;
    this.#slabs = [];
    this.#slabIds.clear();
  }

  /** Bytes `start` to `end` across pages, as a copy (pages past the end read as zeros). */
  #assemble(start: number, end: number): Uint8Array {
    const pageSize = this.#pageSize;
    const copy = new Uint8Array(Math.max(0, end - start));
    for (let at = start; at < end; ) {
      const i = Math.floor(at / pageSize);
      const from = i * pageSize;
      const upto = Math.min(end, from + pageSize);
      const source = this.#pageAt(i);
      if (source !== undefined) copy.set(source.subarray(at - from, Math.min(upto - from, source.length)), at - start);
      at = upto;
    }
    return copy;
  }

  set(source: ArrayLike<number>, offset = 0): void {
    if (this.#sealed) throw refusedWrite();
    const pageSize = this.#pageSize;
    const end = offset + source.length;
    if (this.#owned === undefined) {
      this.#owned = new Set();
      this.#pages = this.#pages.slice();
    }
    if (end > this.#length) this.#grow(end);
    // sql.js passes a view of its heap (an Int8Array): the same bytes, read as unsigned.
    const bytes = ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.length) : Uint8Array.from(source);
    for (let at = offset; at < end; ) {
      const index = Math.floor(at / pageSize);
      const from = index * pageSize;
      const upto = Math.min(end, from + pageSize);
      const page = this.#own(index);
      page.set(bytes.subarray(at - offset, upto - offset), at - from);
      at = upto;
    }
  }

  /** From now on every write to this version's file fails. */
  seal(): void {
    this.#sealed = true;
  }

  /**
   * The version is gone: its pages stop counting as live for compaction, and this storage lets go
   * of them (a released lease kept by the caller must not keep its version's pages alive).
   */
  release(): void {
    this.moved();
    this.#store?.untrack(this);
    this.#store = undefined;
    this.#pages = [];
    this.#far = undefined;
  }

  /** Page `index` as this storage holds it; `undefined` where it reads as zeros. */
  #pageAt(index: number): Uint8Array | undefined {
    return index < this.#pages.length ? this.#pages[index] : this.#far?.get(index);
  }

  /** A private, full-size copy of page `index` to write into. */
  #own(index: number): Uint8Array {
    const owned = this.#owned!;
    if (owned.has(index)) return this.#pageAt(index)!;
    const pageSize = this.#pageSize;
    const copy = new Uint8Array(pageSize);
    if (this.#slabOf !== undefined && index < this.#slabOf.length) this.#slabOf[index] = 0;
    const old = this.#pageAt(index);
    if (old !== undefined) copy.set(old);
    if (index < this.#pages.length) this.#pages[index] = copy;
    else (this.#far ??= new Map()).set(index, copy);
    owned.add(index);
    return copy;
  }

  /** Extends the file to `end` bytes: the bytes in between read as zeros, as in MEMFS. */
  #grow(end: number): void {
    const pageSize = this.#pageSize;
    const last = Math.ceil(this.#length / pageSize) - 1;
    const page = last >= 0 ? this.#pageAt(last) : undefined;
    if (page !== undefined && page.length < pageSize) this.#own(last);
    this.#length = end;
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
