import type { ReloadCause } from '../cache.ts';
import { PipelineFailure } from '../errors.ts';
import type { ImageFileSystem } from '../image/file-system.ts';
import { readHead, type DatabaseImage, type ReadPolicy } from '../image/read.ts';
import { FileFeed, SAME_BAD_FILE, type ImageFeed } from '../live-image.ts';
import type { PageStore } from '../pages/page-store.ts';

const WAL_HEADER_SIZE = 32;

/** Which files sit at the database's paths: enough to tell whether a `-wal` still belongs to the database file. */
interface Look {
  readonly dbIno: bigint | undefined;
  readonly walIno: bigint | undefined;
  /** The WAL header (magic, page size, checkpoint sequence, salts, checksum) as hex, when the WAL has frames. */
  readonly walHeader: string | undefined;
  /** `litestream restore -f` keeps `<db>-txid` beside the database it follows. */
  readonly follow: boolean;
}

/** The database file and WAL last seen side by side with no sign of a mismatch. */
interface Pairing {
  readonly dbIno: bigint;
  readonly walIno: bigint | undefined;
  readonly walHeader: string | undefined;
}

/**
 * Plain SQLite reads (a {@link FileFeed}) of a database that `litestream restore` writes, with two
 * refusals (`REPLICA`) that plain reads cannot make:
 *
 * - a `-wal` that predates the database file: the file at the path was replaced (a restore
 *   renamed over it) while the `-wal` beside it is the very one, same inode and same header with
 *   its salts, that an earlier read saw beside the old file. SQLite would fold its frames into the
 *   new file and corrupt it; the fix is to delete `-wal` and `-shm` before the rename. SQLite
 *   itself notices a moved database only through the descriptor it holds (a new connection trusts
 *   any `-wal` it finds), so the pairing is learnt from the reads: a cache opened after such a
 *   rename, or one that never saw that `-wal` beside the old file, cannot tell.
 * - `<db>-txid` beside it: `litestream restore -f` (follow) writes pages in place with no journal,
 *   which no lock-free reader can read consistently.
 */
export class LitestreamFeed implements ImageFeed {
  readonly #path: string;
  readonly #fs: ImageFileSystem;
  readonly #inner: FileFeed;
  #pairing: Pairing | undefined;

  constructor(path: string, fs: ImageFileSystem) {
    this.#path = path;
    this.#fs = fs;
    this.#inner = new FileFeed(path, fs);
  }

  get store(): PageStore {
    return this.#inner.store;
  }

  async read(cause: ReloadCause, policy: ReadPolicy): Promise<DatabaseImage | typeof SAME_BAD_FILE | undefined> {
    const started = policy.now();
    let delay = 1;
    for (let attempt = 1; ; attempt++) {
      const before = this.#look();
      this.#check(before);
      const image = await this.#inner.read(cause, policy);
      if (image === undefined || image === SAME_BAD_FILE) return image;
      const after = this.#look();
      this.#check(after);
      // The image came from the files both looks saw, which are paired.
      if (sameLook(before, after)) return image;
      const elapsed = policy.now() - started;
      if (elapsed >= policy.busyTimeoutMs && attempt >= 2) {
        throw new PipelineFailure('BUSY', `the database or its WAL was replaced during each of ${attempt} reads over ${Math.round(elapsed)} ms`);
      }
      await policy.sleep(Math.max(0, Math.min(delay, policy.busyTimeoutMs - elapsed)));
      delay = Math.min(delay * 2, 100);
    }
  }

  unchanged(image: DatabaseImage): boolean {
    return this.#inner.unchanged(image);
  }

  published(image: DatabaseImage): void {
    this.#inner.published(image);
  }

  rejected(): void {
    this.#inner.rejected();
  }

  recovered(): void {
    this.#inner.recovered();
  }

  forget(): void {
    this.#inner.forget();
  }

  changed(): boolean {
    return this.#inner.changed();
  }

  unsettledUntil(): number | undefined {
    return this.#inner.unsettledUntil();
  }

  #look(): Look {
    const db = this.#fs.stat(this.#path);
    const wal = this.#fs.stat(`${this.#path}-wal`);
    let walHeader: string | undefined;
    if (wal !== undefined && wal.size > WAL_HEADER_SIZE) {
      const head = readHead(this.#fs, `${this.#path}-wal`, WAL_HEADER_SIZE);
      if (head !== undefined && head.length === WAL_HEADER_SIZE) walHeader = Array.from(head, (byte) => byte.toString(16).padStart(2, '0')).join('');
    }
    return { dbIno: db?.ino, walIno: wal?.ino, walHeader, follow: this.#fs.stat(`${this.#path}-txid`) !== undefined };
  }

  /** Throws `REPLICA` for follow mode or a `-wal` older than the file; otherwise remembers the pairing. */
  #check(look: Look): void {
    if (look.follow) {
      throw new PipelineFailure(
        'REPLICA',
        `${this.#path}-txid shows that litestream restore -f (follow mode) writes this file, in place and with no journal, which no lock-free reader can read consistently; restore to a new file and rename it into place instead, or use LiteFS`,
      );
    }
    const pairing = this.#pairing;
    if (
      pairing !== undefined &&
      pairing.walHeader !== undefined &&
      look.dbIno !== undefined &&
      look.dbIno !== pairing.dbIno &&
      look.walIno === pairing.walIno &&
      look.walHeader === pairing.walHeader
    ) {
      throw new PipelineFailure(
        'REPLICA',
        `the database file was replaced but ${this.#path}-wal is still the old file's WAL, whose frames SQLite would fold into the new file and corrupt it; delete ${this.#path}-wal and ${this.#path}-shm before renaming a restored database into place`,
      );
    }
    if (look.dbIno !== undefined) this.#pairing = { dbIno: look.dbIno, walIno: look.walIno, walHeader: look.walHeader };
  }
}

function sameLook(a: Look, b: Look): boolean {
  return a.dbIno === b.dbIno && a.walIno === b.walIno && a.walHeader === b.walHeader && a.follow === b.follow;
}
