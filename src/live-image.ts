import type { ReloadCause } from './cache.ts';
import { PipelineFailure, describe } from './errors.ts';
import { fileClockNs, type ImageFileSystem } from './image/file-system.ts';
import { databaseImage, readFingerprint, readImage, sameFiles, validatePages, type DatabaseImage, type Fingerprint, type ReadPolicy, type WalMemory } from './image/read.ts';
import { absolutePath, namingTarget, resolveDatabasePath } from './image/resolve.ts';
import type { DatabaseSource } from './options.ts';
import { FALLBACK_PAGE_SIZE, pageSizeOf, type PageImage } from './pages/page-image.ts';
import { PageImageBuilder, PageStore } from './pages/page-store.ts';

/** A watch-triggered read skipped: the files are exactly as they were when their content last failed. */
export const SAME_BAD_FILE = Symbol('same bad file');

/**
 * Where a cache's images come from, and what it remembers about them between reloads: the live
 * image as read (the pages the next one shares), the page store, and for a file its version,
 * fingerprint and WAL scan. The cache's pipeline asks it for the next image, asks whether that
 * image is what is live, and tells it what was published.
 */
export interface ImageFeed {
  /** The slabs the versions' pages live in. */
  readonly store: PageStore;
  /**
   * The next image, `undefined` when a cheap check proves nothing changed, or SAME_BAD_FILE.
   * Throws PipelineFailure.
   */
  read(cause: ReloadCause, policy: ReadPolicy): Promise<DatabaseImage | typeof SAME_BAD_FILE | undefined>;
  /** Whether `image` holds the live content; then it keeps what proves that. */
  unchanged(image: DatabaseImage): boolean;
  /** `image` is live now. */
  published(image: DatabaseImage): void;
  /** The last read's content failed (not a database, corrupt): the watcher does not re-read it unchanged. */
  rejected(): void;
  /** A reload succeeded (or found nothing new). */
  recovered(): void;
  /** Nothing live can be trusted any more: the next read is a full one. */
  forget(): void;
  /** For the watcher: whether the cheap fingerprint moved (stats only; no read). */
  changed(): boolean;
  /** File-clock time after which the live fingerprint would prove "unchanged", when it does not yet. */
  unsettledUntil(): number | undefined;
}

/** The live image's pages, kept tracked in the store (compaction repoints them) and shared by the next read. */
class LivePages {
  readonly store = new PageStore();
  #pages: PageImage | undefined;

  get pages(): PageImage | undefined {
    return this.#pages;
  }

  set(pages: PageImage | undefined): void {
    if (pages === this.#pages) return;
    if (this.#pages !== undefined) this.store.untrack(this.#pages);
    this.#pages = pages;
    if (pages !== undefined) {
      this.store.track(pages);
      this.store.sizeHint(pages.length);
    }
  }
}

/**
 * Images of the database file at a path, read without locks (src/image/read.ts). The path is
 * resolved as SQLite resolves it (symbolic links followed, src/image/resolve.ts) at the start of
 * every read and check, so a link replaced to lead elsewhere is followed.
 */
export class FileFeed implements ImageFeed {
  /** The path as given; made absolute once, as SQLite does when it opens a database. */
  readonly #path: string;
  readonly #fs: ImageFileSystem;
  /** The database file the last read resolved the path to: the live image and WAL memory are of it. */
  #realPath: string | undefined;
  readonly #live = new LivePages();
  /** Newest version known to hold the live content (a checkpoint changes it, not the content). */
  #liveVersion = '';
  /** Whether {@link FileFeed.#liveVersion} was read outside the racy window: only then does an equal version prove equal content. */
  #liveVersionSettled = false;
  #fingerprint: Fingerprint | undefined;
  /** The files' fingerprint when they last failed as bad content. */
  #badFingerprint: Fingerprint | undefined;
  /** The fingerprint the running read took. */
  #readingFingerprint: Fingerprint | undefined;
  /** The last verified WAL scan: the next read of the same WAL applies only what was appended. */
  #wal: WalMemory | undefined;

  constructor(path: string, fs: ImageFileSystem) {
    this.#path = absolutePath(path, fs);
    this.#fs = fs;
  }

  get store(): PageStore {
    return this.#live.store;
  }

  async read(cause: ReloadCause, policy: ReadPolicy): Promise<DatabaseImage | typeof SAME_BAD_FILE | undefined> {
    this.#readingFingerprint = undefined;
    const resolved = resolveDatabasePath(this.#path, this.#fs);
    if (resolved.path !== this.#realPath) {
      // Another file (a link replaced): nothing known of the previous one speaks for it.
      this.#realPath = resolved.path;
      this.#wal = undefined;
      this.#liveVersion = '';
    }
    try {
      return await this.#readAt(resolved.path, cause, policy);
    } catch (error) {
      throw namingTarget(error, resolved);
    }
  }

  /**
   * {@link FileFeed.read} of the file the path resolved to. The fingerprint names that file, so a
   * link that moves changes it. A link replaced during the read leaves an image of the file it
   * led to when the read began (a state after the call began); the next check sees the move.
   */
  async #readAt(path: string, cause: ReloadCause, policy: ReadPolicy): Promise<DatabaseImage | typeof SAME_BAD_FILE | undefined> {
    const fingerprint = readFingerprint(path, this.#fs);
    // Inside the racy window an equal fingerprint proves nothing: read and compare the content.
    if (this.#live.pages !== undefined && sameFiles(this.#fingerprint, fingerprint)) return undefined;
    if (cause === 'watch' && sameFiles(this.#badFingerprint, fingerprint)) return SAME_BAD_FILE;
    this.#readingFingerprint = fingerprint;
    const live = this.#live.pages;
    const image = await readImage(path, this.#fs, policy, { fingerprint, wal: this.#wal, store: this.store, ...(live === undefined ? {} : { live }) });
    this.#wal = image.wal;
    return image;
  }

  unchanged(image: DatabaseImage): boolean {
    const live = this.#live.pages;
    if (live === undefined) return false;
    // An equal version proves equal content only if the live one was read outside the racy
    // window (its file times would have moved with any later write); otherwise compare pages.
    if (this.#liveVersionSettled && image.version === this.#liveVersion) {
      this.#fingerprint = image.fingerprint;
    } else {
      if (!live.equals(image.pages)) return false;
      this.#liveVersion = image.version;
      this.#liveVersionSettled = image.settled;
      this.#fingerprint = image.fingerprint;
    }
    // The next increment builds on the live pages, not on an equal copy of them.
    if (this.#wal?.image !== undefined) this.#wal = { ...this.#wal, image: live };
    return true;
  }

  published(image: DatabaseImage): void {
    this.#liveVersion = image.version;
    this.#liveVersionSettled = image.settled;
    this.#fingerprint = image.fingerprint;
    this.#live.set(image.pages);
  }

  rejected(): void {
    this.#badFingerprint = this.#readingFingerprint;
  }

  recovered(): void {
    this.#badFingerprint = undefined;
  }

  forget(): void {
    this.#liveVersion = '';
    this.#fingerprint = undefined;
    this.#wal = undefined;
    this.#live.set(undefined);
  }

  changed(): boolean {
    return readFingerprint(resolveDatabasePath(this.#path, this.#fs).path, this.#fs).key !== this.#fingerprint?.key;
  }

  unsettledUntil(): number | undefined {
    const fingerprint = this.#fingerprint;
    if (fingerprint === undefined || fingerprint.settled) return undefined;
    return Number(fingerprint.settlesAtNs - fileClockNs(this.#fs)) / 1e6;
  }
}

/** Images from the application's own writer connection (`serialize()`/`export()`). */
export class SourceFeed implements ImageFeed {
  readonly #source: DatabaseSource;
  readonly #live = new LivePages();
  /** Versions published. */
  #versions = 0;

  constructor(source: DatabaseSource) {
    this.#source = source;
  }

  get store(): PageStore {
    return this.#live.store;
  }

  async read(): Promise<DatabaseImage> {
    let bytes: unknown;
    try {
      bytes = await this.#source();
    } catch (error) {
      throw new PipelineFailure('SOURCE_FAILED', `the source function threw: ${describe(error)}`, { cause: error });
    }
    if (!(bytes instanceof Uint8Array)) {
      throw new PipelineFailure('SOURCE_FAILED', `the source function returned ${Object.prototype.toString.call(bytes)}, not a Uint8Array`);
    }
    // Pages equal to the live version's are shared; the others are copied (the source may reuse its array).
    let image: Uint8Array;
    try {
      image = realBytes(bytes);
    } catch (error) {
      throw new PipelineFailure('SOURCE_FAILED', `the source function returned an object that only claims to be a Uint8Array (a proxy of one, or a view of a detached buffer): ${describe(error)}`, { cause: error });
    }
    const { store } = this;
    const builder = new PageImageBuilder(store, pageSizeOf(image) ?? FALLBACK_PAGE_SIZE, this.#live.pages);
    for (let at = 0; at < image.length; at += store.slabBytes) builder.push(image.subarray(at, at + store.slabBytes), false);
    const pages = validatePages(builder.finish(), store);
    return databaseImage({
      pages,
      read: 'full',
      version: `source:${this.#versions + 1}:${pages.length}`,
      settled: false,
      mode: 'rollback',
      fingerprint: { key: '', settled: false, witnessed: false, settlesAtNs: 0n },
    });
  }

  /** A source has no versions: equal pages are the only proof. */
  unchanged(image: DatabaseImage): boolean {
    return this.#live.pages !== undefined && this.#live.pages.equals(image.pages);
  }

  published(image: DatabaseImage): void {
    this.#versions++;
    this.#live.set(image.pages);
  }

  rejected(): void {}

  recovered(): void {}

  forget(): void {
    this.#live.set(undefined);
  }

  changed(): boolean {
    return false;
  }

  unsettledUntil(): undefined {
    return undefined;
  }
}

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

function intrinsicGetter(key: PropertyKey): (this: unknown) => unknown {
  return Object.getOwnPropertyDescriptor(typedArrayPrototype, key)!.get!;
}

/** The typed arrays' own accessors: they read a view's internal slots, which no subclass or own property can redefine. */
const viewBuffer = intrinsicGetter('buffer');
const viewOffset = intrinsicGetter('byteOffset');
const viewLength = intrinsicGetter('byteLength');
const viewKind = intrinsicGetter(Symbol.toStringTag);

/**
 * What a source returned, as a plain view of the bytes it really holds: sized and cut by the
 * view's internal length and offset, never by a `length`, `subarray` or `byteLength` the caller
 * can redefine (on the object or in a subclass). Throws a `TypeError` for a proxy of a Uint8Array
 * and for a view of a detached buffer (which would read as an empty database).
 */
function realBytes(value: Uint8Array): Uint8Array {
  const buffer = Reflect.apply(viewBuffer, value, []) as ArrayBufferLike;
  if (Reflect.apply(viewKind, value, []) !== 'Uint8Array') throw new TypeError('not a Uint8Array');
  const offset = Reflect.apply(viewOffset, value, []) as number;
  const length = Reflect.apply(viewLength, value, []) as number;
  // A detached buffer has no bytes, like an empty image: copying the view is what tells them apart.
  if (length === 0) new Uint8Array(value);
  return new Uint8Array(buffer, offset, length);
}
