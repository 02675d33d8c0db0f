/**
 * Replication engines that write a replica without SQLite's journal or WAL, for the replica
 * simulation (test/replicas.test.ts): each file operation is one {@link ApplyWriter.step}, so a
 * reader scheduled between steps can land in the middle of any apply. Engines that write through
 * SQLite (rqlite, libSQL, sqlite3_rsync, Litestream's restore and rename) are SimWriter profiles.
 *
 * - LiteFS replica (`litefs`), after `db.go` `ApplyLTXNoLock` and `WriteLTXFileAt`: the LTX file is
 *   written to `ltx/<name>.tmp` and renamed to `ltx/%016x-%016x.ltx`; then its pages are written
 *   in place, in page-number order (page 1 first when it is in the transaction), no journal; the
 *   file is truncated to the commit size; then `-pos` gets the new TXID and checksum. LiteFS
 *   deletes old LTX files now and then (retention), never the newest. The mount reports file
 *   times of 0 ({@link FuseView}). Transactions with identical deltas: two pages changed by the
 *   same XOR pattern, so their page checksums change by the same value and cancel in the
 *   XOR-folded database checksum; an apply stalled right after them leaves a never-committed file
 *   whose checksum equals the one `-pos` still holds.
 * - Litestream `restore -f` (`litestream-follow`): the same in-place apply with real file times,
 *   no `ltx/` directory, and `<db>-txid` written after each apply instead of `-pos`.
 *
 * Pages carry the simulation's pattern (transaction number, page number; test/support/sim-writer.ts)
 * so every committed state is unique; a state is recorded when the file holds all of it (after
 * the truncation), and is {@link ApplyWriter.visible} once `-pos` or `-txid` says so: LiteFS
 * shows a transaction to SQLite only then, and a reader that waits for `-pos` may too.
 */
import type { FileStat } from '../../src/image/file-system.ts';
import { crc64 } from '../../src/replica/ltx.ts';
import type { ReplicaFileSystem } from '../../src/replica/file-system.ts';
import { databaseChecksum, ltxFile, ltxName, posText } from './ltx-bytes.ts';
import type { Rng, SimFs, Steppable, Trace } from './sim-fs.ts';
import { describeImage, patternPage, StateImages, WHOLE_IMAGE_LIMIT, writeDbHeader, type CommittedState } from './sim-writer.ts';

/**
 * A FUSE mount over a {@link SimFs}: every file time reads as 0, as on a LiteFS mount (its nodes
 * report no modification time), so file times prove nothing. All else is the SimFs's.
 */
export class FuseView implements ReplicaFileSystem {
  readonly #fs: SimFs;

  constructor(fs: SimFs) {
    this.#fs = fs;
  }

  open(path: string): number {
    return this.#fs.open(path);
  }

  close(fd: number): void {
    this.#fs.close(fd);
  }

  fstat(fd: number): FileStat {
    return timeless(this.#fs.fstat(fd));
  }

  stat(path: string): FileStat | undefined {
    const stat = this.#fs.stat(path);
    return stat === undefined ? undefined : timeless(stat);
  }

  readSync(fd: number, into: Uint8Array, offset: number, length: number, position: number): number {
    return this.#fs.readSync(fd, into, offset, length, position);
  }

  read(fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.#fs.read(fd, into, offset, length, position);
  }

  allocate(size: number): Uint8Array {
    return this.#fs.allocate(size);
  }

  readdir(path: string): string[] | undefined {
    return this.#fs.readdir(path);
  }

  now(): bigint {
    return this.#fs.now();
  }

  get racyWindowNs(): bigint {
    return this.#fs.racyWindowNs;
  }
}

function timeless(stat: FileStat): FileStat {
  return { ...stat, mtimeNs: 0n, ctimeNs: 0n };
}

export type ApplyFlavour = 'litefs' | 'litestream-follow';

export interface ApplyWriterConfig {
  readonly flavour: ApplyFlavour;
  /** The database file (on the mount for LiteFS). */
  readonly path: string;
  /** LiteFS's `<data dir>/dbs/<name>/ltx` (LiteFS only). */
  readonly ltxDir?: string;
  readonly pageSize: number;
  readonly initialPages: number;
  readonly maxPages: number;
  /** What page 1 says: 1 (rollback: every transaction rewrites page 1, its change counter) or 2 (WAL: only when it changes). */
  readonly headerVersion: 1 | 2;
  /** Chance that a transaction changes two pages by the same XOR pattern and stalls right after them (needs 4 pages and header version 2). */
  readonly identicalDeltas: number;
  /** Chance that any other apply stalls after one of its pages. */
  readonly stallChance: number;
}

interface Step {
  readonly what: string;
  readonly run: () => string;
}

/** A replication engine applying transactions as pages written in place (see the module comment). */
export class ApplyWriter implements Steppable {
  readonly states: CommittedState[] = [];
  /** Transactions applied, applies that stalled, and transactions with identical deltas. */
  readonly counts = { applies: 0, stalls: 0, identicalDeltas: 0, retention: 0 };
  readonly #fs: SimFs;
  readonly #rng: Rng;
  readonly #trace: Trace;
  readonly #config: ApplyWriterConfig;
  readonly #images = new StateImages();
  #pages: Uint8Array[] = [];
  #txid = 1n;
  #seq = 0;
  #counter = 1;
  #queue: Step[] = [];
  #queueAt = 0;
  #visible = 0;

  constructor(fs: SimFs, rng: Rng, trace: Trace, config: ApplyWriterConfig) {
    if (config.initialPages < 1) throw new Error('a replica starts with at least one page');
    this.#fs = fs;
    this.#rng = rng;
    this.#trace = trace;
    this.#config = config;
    for (let p = 1; p <= config.initialPages; p++) this.#pages.push(this.#page(0, p, config.initialPages));
    fs.create(config.path);
    this.#pages.forEach((page, i) => fs.write(config.path, i * config.pageSize, page));
    const checksum = this.#checksum(this.#pages);
    if (config.flavour === 'litefs') {
      const dir = config.ltxDir!;
      fs.mkdir(dir);
      const snapshot = ltxFile({ pageSize: config.pageSize, commit: this.#pages.length, minTxid: 1n, maxTxid: 1n, postApplyChecksum: checksum, pages: this.#pages.map((page, i) => [i + 1, page] as const) }, crc64);
      fs.create(`${dir}/${ltxName(1n, 1n)}`);
      fs.write(`${dir}/${ltxName(1n, 1n)}`, 0, snapshot);
      this.#writeText(`${config.path}-pos`, posText(1n, checksum));
    } else {
      this.#writeText(`${config.path}-txid`, `${posText(1n, checksum).slice(0, 16)}\n`);
    }
    this.#record('initial replica');
    trace.log(`W initial ${config.flavour} replica: ${describeImage(this.states[0]!.image, config.pageSize)}`);
  }

  get idle(): boolean {
    return this.#queueAt >= this.#queue.length;
  }

  get latest(): CommittedState {
    return this.states[this.states.length - 1]!;
  }

  /** The newest state `-pos` (or `-txid`) names: what a read that begins now must not be older than. */
  get visible(): CommittedState {
    return this.states[this.#visible]!;
  }

  get pageSize(): number {
    return this.#config.pageSize;
  }

  step(): void {
    if (this.idle) {
      this.#queue = this.#plan();
      this.#queueAt = 0;
    }
    const step = this.#queue[this.#queueAt++]!;
    this.#trace.log(`W [${step.what}] ${step.run()}`);
  }

  /** Runs steps until the current apply is done. */
  finishOperation(): void {
    while (!this.idle) this.step();
  }

  find(bytes: Uint8Array): CommittedState | undefined {
    const index = this.#images.find(bytes);
    return index === undefined ? undefined : this.states[index];
  }

  describe(bytes: Uint8Array): string {
    return describeImage(bytes, this.#config.pageSize);
  }

  describeState(state: CommittedState): string {
    return describeImage(state.image, state.pageSize);
  }

  summary(): string {
    return `${this.#config.flavour} at TXID ${this.#txid}, ${this.states.length} states, ${this.idle ? 'idle' : 'mid-apply'}`;
  }

  #page(seq: number, pgno: number, pageCount: number): Uint8Array {
    const page = patternPage(this.#config.pageSize, seq, pgno);
    if (pgno === 1) writeDbHeader(page, this.#config.pageSize, this.#config.headerVersion, this.#counter, pageCount);
    return page;
  }

  #checksum(pages: readonly Uint8Array[]): bigint {
    return databaseChecksum(pages, this.#config.pageSize, crc64);
  }

  #writeText(path: string, text: string): void {
    this.#fs.create(path);
    this.#fs.truncate(path, 0);
    this.#fs.write(path, 0, new TextEncoder().encode(text));
  }

  #record(label: string): void {
    const { pageSize } = this.#config;
    const image = new Uint8Array(this.#pages.length * pageSize);
    this.#pages.forEach((page, i) => image.set(page, i * pageSize));
    if (image.length > WHOLE_IMAGE_LIMIT) throw new Error('simulated replicas stay small');
    image[18] = 1;
    image[19] = 1;
    const index = this.states.length;
    this.#images.add(index, image);
    const pages = Array.from({ length: this.#pages.length }, (_, i) => image.subarray(i * pageSize, (i + 1) * pageSize));
    this.states.push({ index, label, size: image.length, pageSize, pages, image });
  }

  /** The next transaction's steps: LTX file (LiteFS), pages in order, truncation, then -pos or -txid. */
  #plan(): Step[] {
    const rng = this.#rng;
    const { pageSize, maxPages, headerVersion, flavour, path } = this.#config;
    const seq = ++this.#seq;
    const txid = ++this.#txid;
    const n0 = this.#pages.length;
    const writes = new Map<number, Uint8Array>();
    let n = n0;
    const identical = headerVersion === 2 && n0 >= 4 && rng.chance(this.#config.identicalDeltas);
    let stallAfter: number | undefined;
    if (identical) {
      // Pages p < q get the same XOR delta; r > q changes as usual, so stopping after q tears.
      const p = rng.between(2, n0 - 2);
      const q = rng.between(p + 1, n0 - 1);
      const r = rng.between(q + 1, n0);
      const delta = new Uint8Array(pageSize);
      for (let i = 0; i < pageSize; i++) delta[i] = rng.int(256);
      for (const pgno of [p, q]) writes.set(pgno, this.#pages[pgno - 1]!.map((byte, i) => byte ^ delta[i]!));
      writes.set(r, this.#page(seq, r, n));
      stallAfter = q;
      this.counts.identicalDeltas++;
    } else {
      const roll = rng.float();
      n = roll < 0.6 ? n0 : roll < 0.85 ? Math.min(maxPages, n0 + rng.between(1, 2)) : Math.max(1, n0 - 1);
      for (let p = n0 + 1; p <= n; p++) writes.set(p, this.#page(seq, p, n));
      for (let p = 2; p <= Math.min(n0, n); p++) if (rng.chance(0.4)) writes.set(p, this.#page(seq, p, n));
      if (headerVersion === 1 || n !== n0 || writes.size === 0 || rng.chance(0.3)) {
        this.#counter++;
        writes.set(1, this.#page(seq, 1, n));
      }
      if (rng.chance(this.#config.stallChance)) stallAfter = rng.pick([...writes.keys()]);
    }
    const pages = this.#pages.slice(0, n);
    for (const [pgno, page] of writes) pages[pgno - 1] = page;
    const checksum = this.#checksum(pages);
    const sorted = [...writes.entries()].sort(([a], [b]) => a - b);
    const label = `${flavour} tx ${txid}${identical ? ' (identical deltas)' : ''}`;
    const fs = this.#fs;
    const steps: Step[] = [];
    if (flavour === 'litefs') {
      const dir = this.#config.ltxDir!;
      const name = ltxName(txid, txid);
      steps.push({
        what: label,
        run: () => {
          const bytes = ltxFile({ pageSize, commit: n, minTxid: txid, maxTxid: txid, preApplyChecksum: this.#checksum(this.#pages), postApplyChecksum: checksum, pages: sorted }, crc64);
          fs.create(`${dir}/${name}.tmp`);
          fs.write(`${dir}/${name}.tmp`, 0, bytes);
          return `ltx/${name}.tmp written`;
        },
      });
      steps.push({ what: label, run: () => (fs.rename(`${dir}/${name}.tmp`, `${dir}/${name}`), `ltx/${name} renamed into place: the apply begins`) });
    }
    for (const [pgno, page] of sorted) {
      steps.push({ what: label, run: () => (fs.write(path, (pgno - 1) * pageSize, page), `page ${pgno} written in place`) });
      if (stallAfter === pgno) {
        const stall = rng.between(5, 30);
        this.counts.stalls++;
        for (let i = 0; i < stall; i++) steps.push({ what: label, run: () => `the apply is stalled after page ${pgno}` });
      }
    }
    steps.push({
      what: label,
      run: () => {
        fs.truncate(path, n * pageSize);
        this.#pages = pages;
        this.counts.applies++;
        this.#record(label);
        return `truncated to ${n} pages: COMMITTED state #${this.states.length - 1} ${describeImage(this.latest.image, pageSize)}`;
      },
    });
    if (flavour === 'litefs') {
      steps.push({
        what: label,
        run: () => {
          this.#writeText(`${path}-pos`, posText(txid, checksum));
          this.#visible = this.states.length - 1;
          return `-pos = ${posText(txid, checksum).trim()}`;
        },
      });
      if (rng.chance(0.2)) {
        const dir = this.#config.ltxDir!;
        steps.push({
          what: label,
          run: () => {
            const names = (fs.list(dir) ?? []).filter((name) => name.endsWith('.ltx') && name !== ltxName(txid, txid));
            for (const name of names) fs.unlink(`${dir}/${name}`);
            this.counts.retention++;
            return `retention: ${names.length} older LTX files deleted`;
          },
        });
      }
    } else {
      steps.push({
        what: label,
        run: () => {
          this.#writeText(`${path}-txid`, `${posText(txid, checksum).slice(0, 16)}\n`);
          this.#visible = this.states.length - 1;
          return `-txid = ${txid}`;
        },
      });
    }
    return steps;
  }
}
