import { Buffer } from 'node:buffer';
import { isValidPageSize } from '../image/header.ts';

/** Page size assumed for bytes that carry no valid SQLite header (they fail validation later). */
export const FALLBACK_PAGE_SIZE = 4096;

/**
 * Most entries a page table may have: 2^26 (256 GiB of 4 KiB pages, 32 GiB of 512-byte pages). A
 * JavaScript array cannot grow past about 2^27 entries: V8 then aborts the process.
 */
export const MAX_TABLE_PAGES = 2 ** 26;

const zeroPages = new Map<number, Uint8Array>();

/** One shared, all-zero page per page size: holes (the lock-byte page) cost no memory. Never written. */
export function zeroPage(pageSize: number): Uint8Array {
  let page = zeroPages.get(pageSize);
  if (page === undefined) {
    page = new Uint8Array(pageSize);
    zeroPages.set(pageSize, page);
  }
  return page;
}

/**
 * One version of a database file as a table of immutable pages: each entry is a view of
 * `pageSize` bytes (the last one may be shorter when the file ends mid-page) in memory that
 * other versions may share. Nothing ever writes into a page once it is in a table; a changed
 * version is a new table ({@link PageImage.with}). No single allocation holds the whole file,
 * so the size limit is memory, not the largest `ArrayBuffer`.
 *
 * The table may end before the file does: the pages past its end read as zeros and cost nothing.
 * A WAL commit can say the database has 2^31 pages when the files hold two (SQLite then reads the
 * others as zeros), and a sparse file can end in gigabytes of holes; the table of either holds only
 * the pages the files hold.
 */
export class PageImage {
  readonly pageSize: number;
  /** Size of the file in bytes. */
  readonly length: number;
  /**
   * The pages, in file order, from the first to the last one held: at most
   * {@link PageImage.pageCount}, and all but the file's last page full-sized. Entries are replaced
   * only by {@link PageStore} compaction, with a copy of the same bytes.
   */
  readonly pages: Uint8Array[];

  constructor(pageSize: number, length: number, pages: Uint8Array[]) {
    this.pageSize = pageSize;
    this.length = length;
    this.pages = pages;
  }

  /** An image over `bytes` without copying them (its pages are views of `bytes`). */
  static fromBytes(bytes: Uint8Array, pageSize = pageSizeOf(bytes) ?? FALLBACK_PAGE_SIZE): PageImage {
    const pages: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += pageSize) pages.push(bytes.subarray(at, Math.min(at + pageSize, bytes.length)));
    return new PageImage(pageSize, bytes.length, pages);
  }

  /** Pages in the file, the zero pages past the table included. */
  get pageCount(): number {
    return Math.ceil(this.length / this.pageSize);
  }

  /** Page `index` (from 0): the table's entry, or the shared zero page past the table's end. */
  page(index: number): Uint8Array {
    return this.pages[index] ?? zeroPage(this.pageSize);
  }

  /** Bytes `start` to `end` (clamped to the file): a view when they lie in one page, else a copy. */
  subarray(start: number, end = this.length): Uint8Array {
    end = Math.min(end, this.length);
    if (end <= start) return new Uint8Array(0);
    const pageSize = this.pageSize;
    const index = Math.floor(start / pageSize);
    const base = index * pageSize;
    if (end <= base + pageSize) return this.page(index).subarray(start - base, end - base);
    const copy = new Uint8Array(end - start);
    this.copyTo(copy, 0, start, end);
    return copy;
  }

  /** Copies bytes `start` to `end` of the file into `target` at `targetOffset`. */
  copyTo(target: Uint8Array, targetOffset: number, start: number, end: number): void {
    const pageSize = this.pageSize;
    let at = start;
    while (at < end) {
      const index = Math.floor(at / pageSize);
      const base = index * pageSize;
      const upto = Math.min(end, base + pageSize);
      target.set(this.page(index).subarray(at - base, upto - base), targetOffset + at - start);
      at = upto;
    }
  }

  /** The same file split into pages of `pageSize` bytes (copied); the zero pages past the table stay out of it. */
  repaged(pageSize: number): PageImage {
    const held = Math.min(this.length, Math.ceil((this.pages.length * this.pageSize) / pageSize) * pageSize);
    const bytes = new Uint8Array(held);
    this.copyTo(bytes, 0, 0, held);
    return new PageImage(pageSize, this.length, PageImage.fromBytes(bytes, pageSize).pages);
  }

  /** The whole file in one new array; for tests and small images (it is the allocation pages avoid). */
  toBytes(): Uint8Array {
    const bytes = new Uint8Array(this.length);
    this.copyTo(bytes, 0, 0, Math.min(this.length, this.pages.length * this.pageSize));
    return bytes;
  }

  /** Whether both images hold the same bytes; pages shared by both cost one comparison of references. */
  equals(other: PageImage): boolean {
    if (other === this) return true;
    if (other.length !== this.length) return false;
    if (other.pageSize !== this.pageSize) return sameBytes(this.toBytes(), other.toBytes());
    const a = this.pages;
    const b = other.pages;
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const x = this.page(i);
      const y = other.page(i);
      if (x !== y && !sameBytes(x, y)) return false;
    }
    return true;
  }

  /**
   * A new version: this table copied, cut or extended to `length` bytes, with `changes` (page
   * index → page) written over it. Pages added by the extension and not in `changes` are zero; the
   * table ends at its last page that is not such a zero page, so that its size follows what was
   * held and changed, not `length`.
   */
  with(changes: ReadonlyMap<number, Uint8Array>, length = this.length): PageImage {
    const pageSize = this.pageSize;
    const count = Math.ceil(length / pageSize);
    let held = Math.min(this.pages.length, count);
    for (const index of changes.keys()) if (index < count && index >= held) held = index + 1;
    const pages = this.pages.slice(0, held);
    const zero = zeroPage(pageSize);
    // A page that was the short last one and no longer is reads as zero-padded.
    const lastOld = Math.min(this.pages.length, count) - 1;
    if (lastOld >= 0 && lastOld < count - 1 && pages[lastOld]!.length < pageSize && !changes.has(lastOld)) {
      const padded = new Uint8Array(pageSize);
      padded.set(pages[lastOld]!);
      pages[lastOld] = padded;
    }
    while (pages.length < held) pages.push(zero);
    for (const [index, page] of changes) if (index < count) pages[index] = page;
    const tail = length - (count - 1) * pageSize;
    if (held === count && count > 0 && pages[count - 1]!.length !== tail) pages[count - 1] = pages[count - 1]!.subarray(0, tail);
    return new PageImage(pageSize, length, pages);
  }
}

/** The page size a database header declares, or `undefined` when `bytes` does not start like SQLite. */
export function pageSizeOf(bytes: Uint8Array): number | undefined {
  if (bytes.length < 18) return undefined;
  const raw = (bytes[16]! << 8) | bytes[17]!;
  const size = raw === 1 ? 65536 : raw;
  return isValidPageSize(size) ? size : undefined;
}

/** Byte equality through Buffer (memcmp), which all three runtimes provide. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}
