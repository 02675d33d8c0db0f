import * as nodePath from 'node:path';
import type { ReloadCause } from '../cache.ts';
import { describe, PipelineFailure } from '../errors.ts';
import { databaseImage, readHead, readImage, validatePages, type DatabaseImage, type ReadPolicy, type WalMemory } from '../image/read.ts';
import { LivePages, type ImageFeed } from '../live-image.ts';
import { FALLBACK_PAGE_SIZE, pageSizeOf, type PageImage } from '../pages/page-image.ts';
import { PageImageBuilder, type PageStore } from '../pages/page-store.ts';
import { persistentTimers, type Clock } from '../timers.ts';
import type { FileWatcher } from '../watcher.ts';
import type { ReplicaFileSystem } from './file-system.ts';
import { fetchExport, followEvents } from './litefs-http.ts';
import {
  checksumPage,
  CHECKSUM_FLAG,
  formatPosition,
  hex16,
  lockPageNumber,
  LTX_FLAG_COMPRESS_LZ4,
  LTX_HEADER_SIZE,
  LTX_TRAILER_SIZE,
  LtxFormatError,
  parseLtxFilename,
  parseLtxHeader,
  parseLtxTrailer,
  parsePosition,
  type LiteFsPosition,
} from './ltx.ts';

/** Where a LiteFS database lives, checked and resolved from the `replica` option. */
export interface LiteFsSettings {
  /** LiteFS's `data.dir`: the transaction files are in `<dataDir>/dbs/<name>/ltx/`. */
  readonly dataDir: string;
  /** The database's name in LiteFS: its file name on the mount. */
  readonly name: string;
  /** LiteFS's HTTP API (`/events`, `/export`). */
  readonly url?: URL;
}

/** How the cache's watch loop is fed when a feed brings its own change signals. */
export interface FeedWatchSettings {
  /** The `poll` option: how often to check for a change without being told (a default of the feed's own when absent). */
  readonly pollMs: number | undefined;
  readonly persistent: boolean;
  readonly clock: Clock;
  /** A change signal failed (the events stream); `attempt` counts failures in a row. */
  readonly onError: (error: Error, attempt: number) => void;
  /** The change signal works again after `failures` failures. */
  readonly onRecovered: (failures: number) => void;
}

/** An image feed that knows better than file events when its file changed (a FUSE mount raises none). */
export interface WatchingFeed extends ImageFeed {
  watch(notify: () => void, settings: FeedWatchSettings): FileWatcher;
}

/** Whether `feed` brings its own change signals. */
export function isWatchingFeed(feed: ImageFeed): feed is WatchingFeed {
  return typeof (feed as Partial<WatchingFeed>).watch === 'function';
}

/** An attempt that saw LiteFS move underneath it. */
class Retry {
  readonly reason: string;
  /** Set when the pages read did not match the position: the position and the checksum found. */
  readonly mismatch: string | undefined;
  constructor(reason: string, mismatch?: string) {
    this.reason = reason;
    this.mismatch = mismatch;
  }
}

/** The same image failing the checksum on this many attempts in a row, to the end of the budget with LiteFS quiet, is corruption. */
const MISMATCHES_FOR_CORRUPT = 3;

/**
 * Images of a database on a LiteFS mount. A LiteFS replica applies each transaction as pages
 * written in place (page 1 first) with no journal, and the mount reports no file times, so the
 * lock-free protocol alone can return torn images. Each read here is proved against LiteFS's own
 * record instead: `-pos` (TXID and database checksum) read before and after, no LTX file in
 * `ltx/` newer than `-pos` (an apply in progress) before and after, and the checksum of the
 * pages read equal to the one in `-pos`. The file itself is read with the usual protocol, which
 * also folds a `-wal` (the primary node). Versions are `litefs:<txid>:<checksum>`.
 */
export class LiteFsFeed implements WatchingFeed {
  readonly #path: string;
  readonly #fs: ReplicaFileSystem;
  readonly #settings: LiteFsSettings;
  readonly #ltxDir: string;
  readonly #live = new LivePages();
  #liveVersion = '';
  /** The position the live image was verified against. */
  #livePosition: LiteFsPosition | undefined;
  /** The newest position an image was verified against (published or equal to the live one). */
  #position: LiteFsPosition | undefined;
  #wal: WalMemory | undefined;
  /** Whether the LTX files in `ltx/` were seen to belong to this database once. */
  #ltxChecked = false;
  /** Page checksums by page (pages are immutable and shared between versions). */
  #pageSums = new WeakMap<Uint8Array, { readonly pgno: number; readonly sum: bigint }>();

  constructor(path: string, fs: ReplicaFileSystem, settings: LiteFsSettings) {
    this.#path = path;
    this.#fs = fs;
    this.#settings = settings;
    this.#ltxDir = nodePath.join(settings.dataDir, 'dbs', settings.name, 'ltx');
  }

  get store(): PageStore {
    return this.#live.store;
  }

  /** The position (`<txid>/<checksum>`) of the newest verified image, for `stats()`. */
  get position(): string | undefined {
    return this.#position === undefined ? undefined : formatPosition(this.#position);
  }

  async read(_cause: ReloadCause, policy: ReadPolicy): Promise<DatabaseImage | undefined> {
    const position = this.#readPosition();
    // -pos names the content exactly: an equal one means nothing was applied since.
    if (this.#live.pages !== undefined && this.#livePosition !== undefined && samePosition(position, this.#livePosition)) return undefined;
    try {
      return await this.#readVerified(policy);
    } catch (error) {
      const url = this.#settings.url;
      if (!(error instanceof PipelineFailure) || error.code !== 'BUSY' || url === undefined) throw error;
      return this.#readExport(url, error, policy);
    }
  }

  unchanged(image: DatabaseImage): boolean {
    const live = this.#live.pages;
    if (live === undefined) return false;
    if (image.version !== this.#liveVersion && !live.equals(image.pages)) return false;
    this.#livePosition = positionOf(image) ?? this.#livePosition;
    if (this.#wal?.image !== undefined) this.#wal = { ...this.#wal, image: live };
    return true;
  }

  published(image: DatabaseImage): void {
    this.#liveVersion = image.version;
    this.#livePosition = positionOf(image);
    this.#live.set(image.pages);
  }

  rejected(): void {}

  recovered(): void {}

  forget(): void {
    this.#liveVersion = '';
    this.#livePosition = undefined;
    this.#wal = undefined;
    this.#live.set(undefined);
  }

  /** Whether `-pos` moved since the live image (true when it cannot be read: let the reload say why). */
  changed(): boolean {
    if (this.#livePosition === undefined) return true;
    try {
      const head = readHead(this.#fs, `${this.#path}-pos`, 64);
      return head === undefined || !samePosition(parsePosition(head), this.#livePosition);
    } catch {
      return true;
    }
  }

  /** `-pos` is exact: no file times to wait out. */
  unsettledUntil(): undefined {
    return undefined;
  }

  /**
   * Change signals: LiteFS's `/events` stream when `url` is set (FUSE raises no inotify events on
   * a replica), and a poll of `-pos` (34 bytes) every `pollMs` in any case.
   */
  watch(notify: () => void, settings: FeedWatchSettings): FileWatcher {
    const { clock, persistent } = settings;
    const url = this.#settings.url;
    // With the events stream the poll is only a safety net.
    const pollMs = settings.pollMs ?? (url === undefined ? 100 : 1000);
    const timers = persistent ? persistentTimers : clock;
    let stopped = false;
    let timer: unknown;
    const poll = (): void => {
      if (stopped) return;
      if (this.changed()) notify();
      timer = timers.setTimeout(poll, pollMs);
    };
    timer = timers.setTimeout(poll, pollMs);
    const stopEvents =
      url === undefined
        ? undefined
        : followEvents(url, this.#settings.name, clock, { onChange: notify, onError: settings.onError, onReconnect: settings.onRecovered }, persistent);
    return {
      // The mount's files never move under a LiteFS replica: nothing to re-plan.
      follow: () => undefined,
      close: async () => {
        stopped = true;
        timers.clearTimeout(timer);
        stopEvents?.();
      },
    };
  }

  /**
   * Reads until an attempt is proved against `-pos`, or the budget is spent: then `CORRUPT` when
   * the last attempts all found the same pages under the same position (LiteFS moved nothing and
   * the file is not what `-pos` says), else `BUSY`. A mismatch shorter than the budget is a window
   * LiteFS is still closing (on the primary, `-pos` moves just after SQLite's commit).
   */
  async #readVerified(policy: ReadPolicy): Promise<DatabaseImage> {
    const started = policy.now();
    let delay = 1;
    let attempts = 0;
    let lastMismatch: string | undefined;
    let mismatches = 0;
    for (;;) {
      attempts++;
      const remaining = Math.max(0, policy.busyTimeoutMs - (policy.now() - started));
      const outcome = await this.#attempt({ ...policy, busyTimeoutMs: remaining });
      if (!(outcome instanceof Retry)) return outcome;
      mismatches = outcome.mismatch === undefined ? 0 : outcome.mismatch === lastMismatch ? mismatches + 1 : 1;
      lastMismatch = outcome.mismatch;
      const elapsed = policy.now() - started;
      if (elapsed >= policy.busyTimeoutMs && attempts >= 2) {
        if (mismatches >= MISMATCHES_FOR_CORRUPT) {
          throw new PipelineFailure('CORRUPT', `${outcome.reason}, the same on each of the last ${mismatches} attempts over ${Math.round(elapsed)} ms while LiteFS applied nothing: the file on the mount is not the database -pos describes`);
        }
        throw new PipelineFailure('BUSY', `${outcome.reason} on each of ${attempts} attempts over ${Math.round(elapsed)} ms`);
      }
      await policy.sleep(Math.max(0, Math.min(delay, policy.busyTimeoutMs - elapsed)));
      delay = Math.min(delay * 2, 100);
    }
  }

  async #attempt(policy: ReadPolicy): Promise<DatabaseImage | Retry> {
    const before = this.#readPosition();
    // Only an early exit (the check after the read covers it): no read while an apply is under way.
    const pending = this.#pending(before);
    if (pending !== undefined) return new Retry(pending);
    const live = this.#live.pages;
    let image: DatabaseImage;
    try {
      image = await readImage(this.#path, this.#fs, policy, { wal: this.#wal, store: this.store, ...(live === undefined ? {} : { live }) });
    } catch (error) {
      // A page 1 or a size caught mid-apply can look like no database: LiteFS moving says so.
      if (!(error instanceof PipelineFailure) || error.code === 'BUSY') throw error;
      const moving = this.#pending(before) ?? (samePosition(before, this.#readPosition()) ? undefined : 'LiteFS applied a transaction during the read');
      if (moving === undefined) throw error;
      return new Retry(moving);
    }
    this.#wal = image.wal;
    // What proves the image: an apply that overlapped the read renamed its LTX file into ltx/
    // before writing a page, so the listing now shows a TXID other than `before` (without this
    // check the LiteFS replay of test/replicas.test.ts tears). -pos and the checksum below are a
    // second proof, and what labels the image.
    const pendingAfter = this.#pending(before);
    if (pendingAfter !== undefined) return new Retry(pendingAfter);
    const after = this.#readPosition();
    if (!samePosition(before, after)) return new Retry(`LiteFS applied transaction ${hex16(after.txid)} during the read`);
    const found = this.#matches(image.pages, after.checksum);
    if (found !== true) {
      return new Retry(`the pages read have checksum ${hex16(found)}, not ${hex16(after.checksum)} as -pos says for transaction ${hex16(after.txid)}`, `${formatPosition(after)}:${hex16(found)}`);
    }
    if (!this.#ltxChecked) this.#checkLtxFiles(after);
    this.#position = after;
    return verifiedImage(image, after);
  }

  /** `-pos` beside the database. Throws PipelineFailure. */
  #readPosition(): LiteFsPosition {
    let head: Uint8Array | undefined;
    try {
      head = readHead(this.#fs, `${this.#path}-pos`, 64);
    } catch (error) {
      throw ioFailure(error, `${this.#path}-pos`);
    }
    if (head === undefined) {
      if (this.#fs.stat(this.#path) === undefined) throw new PipelineFailure('NOT_FOUND', 'the file does not exist');
      throw new PipelineFailure('REPLICA', 'there is no -pos file beside it: the path is not on a LiteFS mount (replica: litefs)');
    }
    try {
      return parsePosition(head);
    } catch (error) {
      throw new PipelineFailure('REPLICA', `its -pos file is not a LiteFS position (${describe(error)})`, { cause: error });
    }
  }

  /**
   * Why an apply may be in progress, or `undefined`: LiteFS renames a transaction's LTX file into
   * `ltx/` before it writes any page, and moves `-pos` to it once every page is written; at rest
   * the newest LTX file is the one `-pos` names.
   */
  #pending(position: LiteFsPosition): string | undefined {
    let names: string[] | undefined;
    try {
      names = this.#fs.readdir(this.#ltxDir);
    } catch (error) {
      throw ioFailure(error, this.#ltxDir);
    }
    if (names === undefined) {
      throw new PipelineFailure('REPLICA', `LiteFS's transaction directory ${this.#ltxDir} does not exist: replica.dataDir must be LiteFS's data.dir (see litefs.yml)`);
    }
    let newest: bigint | undefined;
    for (const name of names) {
      const range = parseLtxFilename(name);
      if (range !== undefined && (newest === undefined || range.maxTxid > newest)) newest = range.maxTxid;
    }
    if (newest === undefined || newest === position.txid) return undefined;
    return `LiteFS is applying transaction ${hex16(newest)} (its LTX file is in ${this.#ltxDir}; -pos is at ${hex16(position.txid)})`;
  }

  /**
   * Once: the newest LTX file is the transaction `-pos` names, and (when uncompressed) its
   * trailer carries the same checksum. Otherwise `dataDir` or the name points at another
   * database's files, and the guard against applies in progress would watch the wrong directory.
   */
  #checkLtxFiles(position: LiteFsPosition): void {
    const names = this.#fs.readdir(this.#ltxDir) ?? [];
    const name = names.find((candidate) => parseLtxFilename(candidate)?.maxTxid === position.txid);
    if (name === undefined) return;
    const path = nodePath.join(this.#ltxDir, name);
    let fd: number;
    try {
      fd = this.#fs.open(path);
    } catch {
      return; // Removed by retention since the listing: checked at a later read.
    }
    try {
      const size = this.#fs.fstat(fd).size;
      if (size < LTX_HEADER_SIZE + LTX_TRAILER_SIZE) return;
      const header = parseLtxHeader(readAt(this.#fs, fd, 0, LTX_HEADER_SIZE));
      if (header.maxTxid !== position.txid) {
        throw new LtxFormatError(`${name} holds transactions up to ${hex16(header.maxTxid)}, not ${hex16(position.txid)} as its name says`);
      }
      if ((header.flags & LTX_FLAG_COMPRESS_LZ4) === 0) {
        const trailer = parseLtxTrailer(readAt(this.#fs, fd, size - LTX_TRAILER_SIZE, LTX_TRAILER_SIZE));
        if (trailer.postApplyChecksum !== position.checksum) {
          throw new LtxFormatError(`${name} ends at checksum ${hex16(trailer.postApplyChecksum)}, but -pos says ${hex16(position.checksum)}`);
        }
      }
      this.#ltxChecked = true;
    } catch (error) {
      if (!(error instanceof LtxFormatError)) throw ioFailure(error, path);
      throw new PipelineFailure('REPLICA', `the LTX files in ${this.#ltxDir} do not belong to this database (${error.message}): check replica.dataDir and replica.name`, { cause: error });
    } finally {
      this.#fs.close(fd);
    }
  }

  /** Whether the pages' LiteFS checksum is `expected`, else the checksum found. */
  #matches(image: PageImage, expected: bigint): true | bigint {
    const [asRead, asWal] = this.#checksums(image);
    return asRead === expected || asWal === expected ? true : asRead;
  }

  /**
   * The pages' LiteFS checksum with page 1 as read and with page 1 saying WAL. The image's page 1
   * says "rollback" (bytes 18-19 set to 1 for sql.js); LiteFS summed the page as it is in the file,
   * which in WAL mode says 2. Only these two values occur.
   */
  #checksums(image: PageImage): readonly [bigint, bigint] {
    const pages = image.pages;
    if (pages.length === 0) return [0n, CHECKSUM_FLAG];
    const lock = lockPageNumber(image.pageSize);
    let rest = 0n;
    for (let index = 1; index < pages.length; index++) {
      if (index + 1 !== lock) rest ^= this.#pageSum(index + 1, pages[index]!);
    }
    const first = pages[0]!;
    // A copy: pages are shared and never written (and Buffer's slice() would be a view).
    const wal = new Uint8Array(first);
    wal[18] = 2;
    wal[19] = 2;
    return [CHECKSUM_FLAG | (rest ^ checksumPage(1, first)), CHECKSUM_FLAG | (rest ^ checksumPage(1, wal))];
  }

  #pageSum(pgno: number, page: Uint8Array): bigint {
    const known = this.#pageSums.get(page);
    if (known !== undefined && known.pgno === pgno) return known.sum;
    const sum = checksumPage(pgno, page);
    this.#pageSums.set(page, { pgno, sum });
    return sum;
  }

  /**
   * The fallback when reads on the mount stay busy (an apply that never finishes): LiteFS's
   * `/export`, a copy it reads under its own locks. Labelled with the position whose checksum it
   * matches, else with its checksum alone. Rethrows `busy` when the export fails too.
   */
  async #readExport(url: URL, busy: PipelineFailure, policy: ReadPolicy): Promise<DatabaseImage> {
    let bytes: Uint8Array;
    try {
      bytes = await fetchExport(url, this.#settings.name, Math.max(1000, policy.busyTimeoutMs));
    } catch (error) {
      throw new PipelineFailure('BUSY', `${busy.message}; LiteFS's /export failed too (${describe(error)})`, { cause: error });
    }
    const store = this.store;
    const builder = new PageImageBuilder(store, pageSizeOf(bytes) ?? FALLBACK_PAGE_SIZE, this.#live.pages);
    for (let at = 0; at < bytes.length; at += store.slabBytes) builder.push(bytes.subarray(at, at + store.slabBytes), false);
    const pages = validatePages(builder.finish(), store);
    let position: LiteFsPosition | undefined;
    try {
      position = this.#readPosition();
    } catch {
      position = undefined;
    }
    const image = databaseImage({
      pages,
      read: 'full',
      version: '',
      settled: true,
      mode: 'rollback',
      fingerprint: { key: '', settled: false, witnessed: false, settlesAtNs: 0n },
    });
    if (position !== undefined && this.#matches(pages, position.checksum) === true) {
      this.#position = position;
      return verifiedImage(image, position);
    }
    return databaseImage({ ...image, version: `litefs:export:${hex16(this.#checksums(pages)[0])}`, settled: false });
  }
}

function samePosition(a: LiteFsPosition, b: LiteFsPosition): boolean {
  return a.txid === b.txid && a.checksum === b.checksum;
}

/** The image labelled with the position it was proved against. */
function verifiedImage(image: DatabaseImage, position: LiteFsPosition): DatabaseImage {
  return databaseImage({
    pages: image.pages,
    read: image.read,
    version: `litefs:${hex16(position.txid)}:${hex16(position.checksum)}`,
    settled: true,
    mode: image.mode,
    fingerprint: { key: formatPosition(position), settled: true, witnessed: false, settlesAtNs: 0n },
    ...(image.wal === undefined ? {} : { wal: image.wal }),
  });
}

/** The position a verified image's version names. */
function positionOf(image: DatabaseImage): LiteFsPosition | undefined {
  const match = /^litefs:([0-9a-f]{16}):([0-9a-f]{16})$/.exec(image.version);
  return match === null ? undefined : { txid: BigInt(`0x${match[1]}`), checksum: BigInt(`0x${match[2]}`) };
}

function readAt(fs: ReplicaFileSystem, fd: number, position: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return bytes.subarray(0, done);
}

function ioFailure(error: unknown, path: string): PipelineFailure {
  if (error instanceof PipelineFailure) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'EACCES' || code === 'EPERM') return new PipelineFailure('PERMISSION', `permission to read ${path} was denied`, { cause: error });
  return new PipelineFailure('IO', `${path} could not be read (${typeof code === 'string' ? code : describe(error)})`, { cause: error });
}
