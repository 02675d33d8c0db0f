import { PipelineFailure } from '../errors.ts';
import { MAX_TABLE_PAGES, PageImage, sameBytes, zeroPage } from './page-image.ts';

/** Something that holds pages: a version's image or the storage sql.js reads it through. */
export interface PageTable {
  /** The table's pages; compaction may replace an entry with a copy of the same bytes. */
  readonly pages: Uint8Array[];
  /** Told after compaction replaced some of its pages (so it forgets where they were). */
  moved?(): void;
}

/** What a {@link PageStore} holds, for stats and tests. */
export interface PageStoreStats {
  /** Slabs that some tracked table still uses, and the slabs new pages are being copied into. */
  readonly slabs: number;
  /** Their size in bytes: the memory pages pin. */
  readonly slabBytes: number;
  /** Bytes of distinct pages in use by tracked tables. */
  readonly usedBytes: number;
  /** Slabs compacted since the store was made. */
  readonly compacted: number;
}

/** How a {@link PageStore} sizes and compacts its slabs. */
export interface PageStoreOptions {
  /** Size of a slab (and of a chunk read from a file). @defaultValue 1 MiB */
  readonly slabBytes?: number;
  /** A slab whose live share of pages falls below this is compacted. @defaultValue 0.5 */
  readonly compactBelow?: number;
}

interface Slab {
  readonly buffer: ArrayBufferLike;
  /** Where the slab's pages start in the buffer, and how many page slots it has. */
  readonly offset: number;
  readonly pageSize: number;
  readonly slots: number;
}

interface BumpSlab {
  readonly slab: Slab;
  readonly bytes: Uint8Array;
  next: number;
}

/** 1 MiB: a whole number of pages of every page size SQLite allows. */
const DEFAULT_SLAB_BYTES = 1 << 20;
const MIN_BUMP_BYTES = 64 << 10;

/**
 * The memory that versions' pages live in: slabs of pages shared between versions, and the
 * bookkeeping that stops a slab from pinning memory it no longer needs. Pages are never freed
 * or written here: a page no table refers to goes with its slab at garbage collection, since the
 * store knows its slabs only weakly (it keeps just the slabs it is copying new pages into). A slab
 * that only a few live pages still keep alive is compacted: those pages are copied into a fresh
 * slab and every tracked table is pointed at the copies (the same bytes, so a reader at any
 * moment sees the same file).
 */
export class PageStore {
  readonly slabBytes: number;
  readonly #compactBelow: number;
  /** Slab of each buffer holding pages; weak, so that a slab no table uses can be collected. */
  readonly #slabs = new WeakMap<ArrayBufferLike, Slab>();
  readonly #bump = new Map<number, BumpSlab>();
  readonly #tables = new Map<PageTable, number>();
  #allocatedSinceScan = 0;
  /** Bytes of slab pages that tables untracked since the last scan held and the live table does not. */
  #releasedSinceScan = 0;
  /** The live version's table: what a released table holds beyond it is probably garbage now. */
  #live: PageTable | undefined;
  #usedBytes = 0;
  #sizeHint = 0;
  #compacted = 0;
  /** What {@link PageStore.stats} last counted, until a table, a slab or a page changes. */
  #stats: PageStoreStats | undefined;

  constructor(options: PageStoreOptions = {}) {
    this.slabBytes = options.slabBytes ?? DEFAULT_SLAB_BYTES;
    this.#compactBelow = options.compactBelow ?? 0.5;
  }

  /** A new page-sized array from the current slab; its bytes are zero. */
  allocatePage(pageSize: number): Uint8Array {
    let bump = this.#bump.get(pageSize);
    if (bump === undefined || bump.next === bump.slab.slots) {
      const slots = Math.max(1, Math.floor(this.#bumpBytes() / pageSize));
      const bytes = new Uint8Array(slots * pageSize);
      const slab: Slab = { buffer: bytes.buffer, offset: 0, pageSize, slots };
      this.#slabs.set(bytes.buffer, slab);
      bump = { slab, bytes, next: 0 };
      this.#bump.set(pageSize, bump);
    }
    const at = bump.next++ * pageSize;
    this.#allocatedSinceScan += pageSize;
    this.#stats = undefined;
    return bump.bytes.subarray(at, at + pageSize);
  }

  /** The size of the database the pages are for: small databases get smaller slabs. */
  sizeHint(bytes: number): void {
    this.#sizeHint = bytes;
  }

  /** Slab size for copied pages: a sixteenth of the database, between 64 KiB and {@link PageStore.slabBytes}. */
  #bumpBytes(): number {
    const wanted = Math.max(this.#usedBytes, this.#sizeHint) / 16;
    let bytes = MIN_BUMP_BYTES;
    while (bytes < wanted && bytes < this.slabBytes) bytes *= 2;
    return Math.min(bytes, this.slabBytes);
  }

  /** A copy of `bytes` (at most one page) in slab memory, zero-padded to `pageSize`. */
  copyPage(bytes: Uint8Array, pageSize: number): Uint8Array {
    const page = this.allocatePage(pageSize);
    page.set(bytes);
    return page;
  }

  /**
   * Takes `chunk` (its own buffer, which nothing else will write) as a slab of `pageSize` pages,
   * so pages read into it become a version's pages without a copy.
   */
  adopt(chunk: Uint8Array, pageSize: number): void {
    if (this.#slabs.has(chunk.buffer)) return;
    this.#slabs.set(chunk.buffer, { buffer: chunk.buffer, offset: chunk.byteOffset, pageSize, slots: Math.ceil(chunk.length / pageSize) });
    this.#allocatedSinceScan += chunk.length;
    this.#stats = undefined;
  }

  /** Counts `table` as live: compaction keeps its pages and repoints it. Counted per call. */
  track(table: PageTable): void {
    this.#tables.set(table, (this.#tables.get(table) ?? 0) + 1);
    this.#stats = undefined;
  }

  /**
   * Undoes one {@link PageStore.track}. The store holds no reference to the pages only that table
   * used: they are returned at the next garbage collection. Slabs that other tables keep partly
   * alive are left to {@link PageStore.collect}, which this counts the table's pages for unless
   * `counted` is false (another table that holds the same pages counts them when it goes).
   */
  untrack(table: PageTable, counted = true): void {
    const count = this.#tables.get(table);
    if (count === undefined) return;
    if (count <= 1) {
      this.#tables.delete(table);
      if (counted) this.#releasedSinceScan += this.#beyondLive(table);
    } else {
      this.#tables.set(table, count - 1);
    }
    this.#stats = undefined;
  }

  /** Names the live version's table (tracked separately), against which released tables are counted. */
  setLive(table: PageTable | undefined): void {
    this.#live = table;
  }

  /** Bytes of the slab pages `table` holds where the live table holds another page: one pass, no lookups for shared pages. */
  #beyondLive(table: PageTable): number {
    const live = this.#live?.pages;
    const pages = table.pages;
    if (live === undefined || pages === live) return 0;
    let bytes = 0;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i]!;
      if (page !== live[i] && this.#slabs.has(page.buffer)) bytes += page.length;
    }
    return bytes;
  }

  /**
   * Compacts once enough new page memory has been taken since the last scan, or enough released
   * (pages of untracked tables that the live table does not use): an eighth of what was in use,
   * at least 2 slabs of copied pages. Cheap on average, bounded memory over any number of
   * versions, and slabs that released versions leave sparse are not kept while nothing is published.
   */
  collect(): void {
    if (Math.max(this.#allocatedSinceScan, this.#releasedSinceScan) >= Math.max(this.#usedBytes / 8, 2 * this.#bumpBytes())) this.compact();
  }

  /** Compacts the sparsely used slabs; returns how many it compacted. */
  compact(): number {
    this.#allocatedSinceScan = 0;
    this.#releasedSinceScan = 0;
    const { marks, usedBytes } = this.#mark();
    const current = this.#current();
    const sparse = new Set<Slab>();
    for (const [slab, mark] of marks) {
      if (current.has(slab)) continue;
      let live = 0;
      for (let i = 0; i < mark.length; i++) live += mark[i]!;
      if (live < slab.slots * this.#compactBelow) sparse.add(slab);
    }
    if (sparse.size > 0) {
      const copies = new Map<ArrayBufferLike, Map<number, Uint8Array>>();
      // Tables can share one array (a version's storage and its image): each is told it moved.
      const touched = new Set<Uint8Array[]>();
      for (const table of this.#tables.keys()) {
        const pages = table.pages;
        for (let i = 0; i < pages.length; i++) {
          const page = pages[i]!;
          const slab = this.#slabs.get(page.buffer);
          if (slab === undefined || !sparse.has(slab)) continue;
          touched.add(pages);
          let moved = copies.get(page.buffer);
          if (moved === undefined) copies.set(page.buffer, (moved = new Map()));
          let copy = moved.get(page.byteOffset);
          if (copy === undefined || copy.length !== page.length) {
            copy = this.copyPage(page, slab.pageSize).subarray(0, page.length);
            moved.set(page.byteOffset, copy);
          }
          pages[i] = copy;
        }
      }
      for (const table of this.#tables.keys()) if (touched.has(table.pages)) table.moved?.();
      for (const slab of sparse) this.#slabs.delete(slab.buffer);
      this.#compacted += sparse.size;
      // The copies are not new memory in use: do not let them trigger the next scan early.
      this.#allocatedSinceScan = 0;
    }
    this.#usedBytes = usedBytes;
    this.#stats = undefined;
    return sparse.size;
  }

  /**
   * The slabs tracked tables use and the memory they pin, counted exactly: one pass over the
   * tracked tables, remembered until a table, slab or page changes.
   */
  stats(): PageStoreStats {
    if (this.#stats !== undefined) return this.#stats;
    const { marks, usedBytes } = this.#mark();
    const slabs = new Set<Slab>(marks.keys());
    for (const slab of this.#current()) slabs.add(slab);
    let slabBytes = 0;
    for (const slab of slabs) slabBytes += slab.slots * slab.pageSize;
    this.#stats = { slabs: slabs.size, slabBytes, usedBytes, compacted: this.#compacted };
    return this.#stats;
  }

  /** Which slots of which slabs the tracked tables use, and the bytes of those distinct pages. */
  #mark(): { marks: Map<Slab, Uint8Array>; usedBytes: number } {
    const marks = new Map<Slab, Uint8Array>();
    let usedBytes = 0;
    for (const table of this.#tables.keys()) {
      for (const page of table.pages) {
        const slab = this.#slabs.get(page.buffer);
        if (slab === undefined) continue;
        let mark = marks.get(slab);
        if (mark === undefined) {
          mark = new Uint8Array(slab.slots);
          marks.set(slab, mark);
        }
        const slot = Math.floor((page.byteOffset - slab.offset) / slab.pageSize);
        if (mark[slot] === 0) {
          mark[slot] = 1;
          usedBytes += slab.pageSize;
        }
      }
    }
    return { marks, usedBytes };
  }

  /** The slabs new pages are being copied into (the store itself keeps these alive). */
  #current(): Set<Slab> {
    const current = new Set<Slab>();
    for (const bump of this.#bump.values()) current.add(bump.slab);
    return current;
  }
}

/**
 * Builds a version's image from bytes streamed in order (a file read in chunks, a source's
 * image), sharing every page equal to the same page of `live` (and every all-zero page) and
 * keeping only the others.
 * A chunk mostly made of new pages becomes a slab as it is; otherwise its new pages are copied
 * into slab memory and the chunk is reused for the next read. Never holds two full copies.
 */
export class PageImageBuilder {
  readonly #store: PageStore;
  readonly #live: PageImage | undefined;
  readonly pageSize: number;
  readonly #pages: Uint8Array[] = [];
  /** All-zero pages after the last page in `#pages`: entered only when a page follows them. */
  #zeros = 0;
  #length = 0;
  #spare: Uint8Array | undefined;
  /** Pages taken from `live`, for tests and stats. */
  shared = 0;

  constructor(store: PageStore, pageSize: number, live?: PageImage) {
    this.#store = store;
    this.pageSize = pageSize;
    this.#live = live !== undefined && live.pageSize === pageSize ? live : undefined;
  }

  /** Bytes added so far. */
  get length(): number {
    return this.#length;
  }

  /** A chunk to read into (a whole number of pages), reused when the last one was not kept. */
  chunk(allocate: (size: number) => Uint8Array): Uint8Array {
    const spare = this.#spare;
    this.#spare = undefined;
    return spare ?? allocate(this.#store.slabBytes);
  }

  /**
   * Adds `bytes` (a whole number of pages, except at the end of the file) at the current end.
   * With `owned`, `bytes` is a chunk from {@link PageImageBuilder.chunk} that may be kept as is;
   * otherwise new pages are copied.
   */
  push(bytes: Uint8Array, owned: boolean): void {
    const pageSize = this.pageSize;
    const first = this.#length / pageSize;
    const livePages = this.#live?.pages;
    const zero = zeroPage(pageSize);
    const fresh: number[] = [];
    for (let at = 0, index = first; at < bytes.length; at += pageSize, index++) {
      const page = bytes.subarray(at, Math.min(at + pageSize, bytes.length));
      const old = livePages?.[index];
      if (old !== undefined && old !== zero && sameBytes(old, page)) {
        this.#enterZeros();
        this.#pages.push(old);
        this.shared++;
      } else if (page.length === pageSize && page[0] === 0 && page[pageSize - 1] === 0 && sameBytes(page, zero)) {
        // Free pages and holes (a sparse file, the lock-byte page) cost no memory, and those at
        // the end of the file not even a table entry.
        this.#zeros++;
      } else {
        this.#enterZeros();
        this.#pages.push(page);
        fresh.push(this.#pages.length - 1);
      }
    }
    this.#length += bytes.length;
    if (this.#pages.length > MAX_TABLE_PAGES) throw tooManyPages();
    const total = Math.ceil(bytes.length / pageSize);
    if (owned && fresh.length * 2 >= total) {
      this.#store.adopt(bytes, pageSize);
      return;
    }
    for (const index of fresh) this.#pages[index] = this.#store.copyPage(this.#pages[index]!, pageSize).subarray(0, this.#pages[index]!.length);
    if (owned) this.#spare = fullChunk(bytes);
  }

  finish(): PageImage {
    return new PageImage(this.pageSize, this.#length, this.#pages);
  }

  /** Puts the zero pages met since the last page into the table: a page follows them. */
  #enterZeros(): void {
    if (this.#zeros === 0) return;
    if (this.#pages.length + this.#zeros > MAX_TABLE_PAGES) throw tooManyPages();
    const zero = zeroPage(this.pageSize);
    for (; this.#zeros > 0; this.#zeros--) this.#pages.push(zero);
  }
}

function tooManyPages(): PipelineFailure {
  return new PipelineFailure('IO', `the file holds data past page ${MAX_TABLE_PAGES}, more pages than one page table holds`);
}

/** The whole chunk a (possibly shorter) filled part was read into. */
function fullChunk(bytes: Uint8Array): Uint8Array | undefined {
  // Only a chunk that owns its whole buffer is reused; a short read at the end of a file is not reused.
  return bytes.byteOffset === 0 && bytes.length === bytes.buffer.byteLength ? bytes : undefined;
}
