/**
 * A deterministic, in-memory file system for simulating the lock-free read protocol.
 *
 * The reader (src/image/read.ts) sees it through {@link ImageFileSystem}; a simulated writer
 * changes it through the raw methods below (create, write, truncate, unlink, rename), which do
 * not call the scheduler. Before and after every reader call, and between the pieces of a torn
 * `read`, the file system calls {@link SimFs.onPoint}: a {@link Scheduler} uses that to let the
 * writer take some steps, so a writer can move between any two of the reader's calls.
 *
 * POSIX behaviour modelled: files are inodes reached through names; an open descriptor keeps
 * its inode after a rename or unlink, and the inode is freed (its number reusable, lowest free
 * first, as on ext4) only when it has neither a name nor a descriptor; every write and truncate
 * advances mtime and ctime, a rename or unlink advances ctime; reads past the end are short.
 * Files are sparse: content lives in 64 KiB chunks, and a chunk never written reads as zeros, so
 * a database past 1 GiB or 4 GiB costs only the pages written. `allocate` hands out memory that
 * is not zeroed, like `Buffer.allocUnsafeSlow`: a small array is filled with garbage; a large one
 * gets garbage only in some chunks (every 16 MiB, the one holding byte offset 2^30, the last two),
 * and a read into it at or past the furthest point read so far zero-fills only those, so its other
 * memory stays untouched and the operating system leaves it uncommitted.
 *
 * Time: a clock in nanoseconds that every writer change advances by 1 µs, every reader call by
 * 100 ns, and {@link SimFs.advance} by any amount (the reader's backoff, quiet spells). `stat`
 * reports file times floored to the file system's granularity (1 ns up to 2 s), as coarse file
 * systems and kernels that stamp files at a clock tick do.
 */
import type { TestContext } from 'node:test';
import process from 'node:process';
import type { FileStat, ImageFileSystem } from '../../src/image/file-system.ts';
import type { ReadPolicy } from '../../src/image/read.ts';

// ---------------------------------------------------------------------------------------------
// Settings the simulations share (test/read-protocol.test.ts, test/replicas.test.ts)
// ---------------------------------------------------------------------------------------------

/**
 * File-time granularities: this kernel (1 ns), Deno's stat and kernels before 6.13 with a 1 ms
 * or 4 ms clock tick, ext4 with 128-byte inodes, HFS+ and network file systems (1 s), FAT (2 s).
 */
export const GRANULARITIES: readonly { readonly label: string; readonly ns: bigint }[] = [
  { label: '1ns', ns: 1n },
  { label: '1ms', ns: 1_000_000n },
  { label: '4ms', ns: 4_000_000n },
  { label: '1s', ns: 1_000_000_000n },
  { label: '2s', ns: 2_000_000_000n },
];

/** The label of a granularity in {@link GRANULARITIES} (for replay commands). */
export function granularityLabel(ns: bigint): string {
  return GRANULARITIES.find((g) => g.ns === ns)?.label ?? `${ns}ns`;
}

/** How long the world stays quiet between two reads: none, a few syscalls, a tick, past a second. */
export const QUIET_SPELLS_NS = [0n, 0n, 1_000n, 1_000_000n, 5_000_000n, 1_500_000_000n, 3_000_000_000n] as const;

/**
 * The reader's retry policy on a fake clock: each backoff sleep moves the clock, the file times
 * and the writer (time passes for it too) instead of waiting. `clock` counts the sleeps.
 */
export function fakeClockPolicy(
  fs: SimFs,
  scheduler: Scheduler,
  trace: Trace,
  busyTimeoutMs: number,
): { readonly policy: ReadPolicy; readonly clock: { now: number; sleeps: number } } {
  const clock = { now: 0, sleeps: 0 };
  const policy: ReadPolicy = {
    busyTimeoutMs,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += ms;
      clock.sleeps++;
      fs.advance(BigInt(Math.round(ms * 1e6)));
      trace.log(`R sleep(${ms}) -> fake clock ${clock.now} ms`);
      scheduler.sleeping();
    },
  };
  return { policy, clock };
}

/** A statistics line: a test diagnostic, and printed with SIM_VERBOSE=1. */
export function report(t: TestContext, line: string): void {
  if (typeof t.diagnostic === 'function') t.diagnostic(line);
  if (process.env.SIM_VERBOSE !== undefined) console.log(line);
}

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny, fast, seedable 32-bit PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded random source with the few helpers the simulation needs. */
export class Rng {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.#next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  uint32(): number {
    return Math.floor(this.#next() * 4294967296) >>> 0;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** A key chosen with probability proportional to its weight; `undefined` if all weights are 0. */
  weighted<K extends string>(weights: Partial<Record<K, number>>): K | undefined {
    const entries = (Object.entries(weights) as [K, number | undefined][]).filter(([, w]) => (w ?? 0) > 0) as [K, number][];
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    if (total === 0) return undefined;
    let r = this.#next() * total;
    for (const [key, w] of entries) {
      r -= w;
      if (r < 0) return key;
    }
    return entries[entries.length - 1]![0];
  }

  /** An independent stream derived from this one. */
  fork(): Rng {
    return new Rng(this.uint32());
  }
}

// ---------------------------------------------------------------------------------------------
// Trace
// ---------------------------------------------------------------------------------------------

/** Every reader call and writer step of one simulation, in order, for failure messages. */
export class Trace {
  readonly lines: string[] = [];

  log(line: string): void {
    this.lines.push(`${String(this.lines.length).padStart(5)} ${line}`);
  }

  /** Position to print from later. */
  mark(): number {
    return this.lines.length;
  }

  /** The lines from `from` on (at most `max`, keeping the head and the tail), as one string. */
  since(from: number, max = 600): string {
    const lines = this.lines.slice(Math.max(0, from));
    if (lines.length <= max) return lines.join('\n');
    const head = Math.floor(max / 3);
    return [...lines.slice(0, head), `      ... ${lines.length - max} lines left out ...`, ...lines.slice(lines.length - (max - head))].join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// File system
// ---------------------------------------------------------------------------------------------

/** Bytes per chunk of file content (at least the largest page size). */
const CHUNK = 1 << 16;
/** What unzeroed memory from `allocate` holds; arrays up to the limit are filled with it whole. */
const GARBAGE = 0xa5;
const GARBAGE_WHOLE_LIMIT = 64 << 20;
/** In a larger array, one chunk in this many (16 MiB apart) holds garbage. */
const GARBAGE_STRIDE = 256;

interface Inode {
  readonly ino: bigint;
  /** Chunk index → content; an absent chunk is zeros. */
  chunks: Map<number, Uint8Array>;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  links: number;
  opens: number;
}

function fsError(code: string, syscall: string, detail: string): Error {
  // Node-style: an Error with a `code`. Without a stack trace: the simulation makes many.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return Object.assign(new Error(`${code}: ${syscall} '${detail}'`), { code, syscall });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** In-memory {@link ImageFileSystem} with a raw writer side and scheduling points. */
export class SimFs implements ImageFileSystem {
  /** Called before and after every reader call and between the pieces of a torn read. */
  onPoint: (where: string) => void = () => {};
  /** How to cut a `read` of `length` bytes into pieces (a writer may run between pieces). */
  splitRead: (length: number) => number[] = (length) => [length];
  readonly trace: Trace;
  /** Number of reader calls so far. */
  calls = 0;
  /** Path of the latest writer-side change, and how many changes there were. */
  lastChange: { path: string; count: number } = { path: '', count: 0 };

  #clockNs = 1_700_000_000_000_000_000n;
  /** Granularity of the file times `stat` reports. */
  readonly granularityNs: bigint;
  readonly #inodes = new Map<bigint, Inode>();
  readonly #names = new Map<string, bigint>();
  readonly #fds = new Map<number, bigint>();
  /** Directories made with mkdir (with a trailing slash). */
  readonly #dirs = new Set<string>();
  #nextFd = 3;
  /**
   * Large arrays from {@link SimFs.allocate}: how far (in bytes of their buffer) reads have filled
   * them, and which 64 KiB chunks of the buffer hold garbage (the others are still zero).
   */
  readonly #fresh = new WeakMap<ArrayBufferLike, { filled: number; readonly garbage: ReadonlySet<number> }>();

  /**
   * With `bound` (the default) every ImageFileSystem method is bound to this instance, so it
   * works when the caller passes it around detached (as `nodeFileSystem`'s arrow functions do).
   */
  constructor(trace: Trace, options: { bound?: boolean; granularityNs?: bigint } = {}) {
    this.trace = trace;
    this.granularityNs = options.granularityNs ?? 1n;
    if (options.bound ?? true) {
      this.open = this.open.bind(this);
      this.close = this.close.bind(this);
      this.fstat = this.fstat.bind(this);
      this.stat = this.stat.bind(this);
      this.readSync = this.readSync.bind(this);
      this.read = this.read.bind(this);
      this.allocate = this.allocate.bind(this);
      this.now = this.now.bind(this);
      this.readdir = this.readdir.bind(this);
    }
  }

  // ---- reader side: every call is a scheduling point ------------------------------------------

  open(path: string): number {
    return this.#call(`open(${path})`, () => {
      const node = this.#lookup(path);
      if (node === undefined) throw fsError('ENOENT', 'open', path);
      node.opens++;
      const fd = this.#nextFd++;
      this.#fds.set(fd, node.ino);
      return fd;
    }, (fd) => `fd${fd} ino${this.#fds.get(fd)}`);
  }

  close(fd: number): void {
    this.#call(`close(fd${fd})`, () => {
      const node = this.#byFd(fd, 'close');
      this.#fds.delete(fd);
      node.opens--;
      this.#maybeFree(node);
    });
  }

  fstat(fd: number): FileStat {
    return this.#call(`fstat(fd${fd})`, () => statOf(this.#byFd(fd, 'fstat'), this.granularityNs), describeStat);
  }

  stat(path: string): FileStat | undefined {
    return this.#call(`stat(${path})`, () => {
      const node = this.#lookup(path);
      return node === undefined ? undefined : statOf(node, this.granularityNs);
    }, (stat) => (stat === undefined ? 'absent' : describeStat(stat)));
  }

  readSync(fd: number, into: Uint8Array, offset: number, length: number, position: number): number {
    return this.#call(`readSync(fd${fd}, ${length} @${position})`, () => {
      const node = this.#byFd(fd, 'read');
      const n = Math.max(0, Math.min(length, node.size - position));
      this.#copyOut(node, position, into, offset, n);
      return n;
    }, String);
  }

  read(fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    try {
      return Promise.resolve(
        this.#call(`read(fd${fd}, ${length} @${position})`, () => {
          let node = this.#byFd(fd, 'read');
          let done = 0;
          const pieces = this.splitRead(length);
          for (let i = 0; i < pieces.length; i++) {
            if (i > 0) {
              // A positional read is not atomic against writes: let the writer move mid-read.
              this.trace.log(`R   ... read(fd${fd}) paused after ${done} bytes`);
              this.onPoint(`inside read(fd${fd})`);
              node = this.#byFd(fd, 'read');
            }
            const at = position + done;
            const n = Math.max(0, Math.min(pieces[i]!, node.size - at));
            this.#copyOut(node, at, into, offset + done, n);
            done += n;
            if (n < pieces[i]!) break;
          }
          return done;
        }, String),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The names in directory `path` (files named `path/<name>`), or `undefined` when no file is in
   * it and it was never made with {@link SimFs.mkdir}. For the replica adapters (src/replica/).
   */
  readdir(path: string): string[] | undefined {
    return this.#call(`readdir(${path})`, () => this.list(path), (names) => (names === undefined ? 'absent' : `[${names.join(' ')}]`));
  }

  allocate(size: number): Uint8Array {
    return this.#call(`allocate(${size})`, () => {
      const array = new Uint8Array(size);
      if (size <= GARBAGE_WHOLE_LIMIT) {
        array.fill(GARBAGE);
        return array;
      }
      const chunks = Math.ceil(size / CHUNK);
      const garbage = new Set<number>([2 ** 30 / CHUNK, chunks - 2, chunks - 1]);
      for (let index = 0; index < chunks; index += GARBAGE_STRIDE) garbage.add(index);
      for (const index of garbage) if (index >= 0 && index < chunks) array.fill(GARBAGE, index * CHUNK, Math.min(size, (index + 1) * CHUNK));
      this.#fresh.set(array.buffer, { filled: 0, garbage });
      return array;
    });
  }

  /** The file clock; not a scheduling point (reading a clock is no file operation). */
  now(): bigint {
    return this.#clockNs;
  }

  /** Floored file times carry no more than this much uncertainty; the clock never lags. */
  get racyWindowNs(): bigint {
    return this.granularityNs;
  }

  /** Lets time pass with nothing written. */
  advance(ns: bigint): void {
    this.#clockNs += ns;
  }

  // ---- writer side: no scheduling points ------------------------------------------------------

  exists(path: string): boolean {
    return this.#names.has(path);
  }

  /** Size of the file at `path`, or `undefined` when there is none. */
  sizeOf(path: string): number | undefined {
    return this.#lookup(path)?.size;
  }

  /** The whole content of the file at `path` (a copy), or `undefined`. */
  contents(path: string): Uint8Array | undefined {
    const node = this.#lookup(path);
    if (node === undefined) return undefined;
    const bytes = new Uint8Array(node.size);
    this.#copyOut(node, 0, bytes, 0, node.size);
    return bytes;
  }

  /** The names in directory `path`, as {@link SimFs.readdir} sees them, for a writer (no scheduling point). */
  list(path: string): string[] | undefined {
    const prefix = path.endsWith('/') ? path : `${path}/`;
    const names = [...this.#names.keys()].filter((name) => name.startsWith(prefix) && !name.slice(prefix.length).includes('/')).map((name) => name.slice(prefix.length));
    return names.length === 0 && !this.#dirs.has(prefix) ? undefined : names.sort();
  }

  /** Makes directory `path` exist (for {@link SimFs.readdir}) even while no file is in it. */
  mkdir(path: string): void {
    this.#dirs.add(path.endsWith('/') ? path : `${path}/`);
  }

  /** Creates an empty file at `path` if there is none (`O_CREAT`). */
  create(path: string): void {
    if (this.#names.has(path)) return;
    this.#changed(path);
    const now = this.#tick();
    const ino = this.#freeIno();
    this.#inodes.set(ino, { ino, chunks: new Map(), size: 0, mtimeNs: now, ctimeNs: now, links: 1, opens: 0 });
    this.#names.set(path, ino);
  }

  /** `pwrite`: writes `bytes` at `position`, growing the file (the gap reads as zeros). */
  write(path: string, position: number, bytes: Uint8Array): void {
    this.#changed(path);
    const node = this.#mustLookup(path);
    const end = position + bytes.length;
    for (let at = position; at < end; ) {
      const index = Math.floor(at / CHUNK);
      const within = at - index * CHUNK;
      const n = Math.min(CHUNK - within, end - at);
      let chunk = node.chunks.get(index);
      if (chunk === undefined) node.chunks.set(index, (chunk = new Uint8Array(CHUNK)));
      chunk.set(bytes.subarray(at - position, at - position + n), within);
      at += n;
    }
    node.size = Math.max(node.size, end);
    node.mtimeNs = node.ctimeNs = this.#tick();
  }

  /** `ftruncate`: cuts or extends (with zeros) the file; mtime and ctime advance either way. */
  truncate(path: string, size: number): void {
    this.#changed(path);
    const node = this.#mustLookup(path);
    if (size < node.size) {
      // What is cut off reads as zeros if the file grows again.
      for (const index of [...node.chunks.keys()]) if (index * CHUNK >= size) node.chunks.delete(index);
      node.chunks.get(Math.floor(size / CHUNK))?.fill(0, size % CHUNK);
    }
    node.size = size;
    node.mtimeNs = node.ctimeNs = this.#tick();
  }

  unlink(path: string): void {
    this.#changed(path);
    const node = this.#mustLookup(path);
    this.#names.delete(path);
    node.links--;
    node.ctimeNs = this.#tick();
    this.#maybeFree(node);
  }

  /** `rename(2)`: atomically points `to` at the inode of `from`, replacing what `to` named. */
  rename(from: string, to: string): void {
    this.#changed(to);
    const node = this.#mustLookup(from);
    const now = this.#tick();
    const replaced = this.#lookup(to);
    if (replaced !== undefined && replaced !== node) {
      replaced.links--;
      replaced.ctimeNs = now;
      this.#maybeFree(replaced);
    }
    this.#names.delete(from);
    this.#names.set(to, node.ino);
    node.ctimeNs = now;
  }

  /** Descriptors the reader has not closed. */
  openDescriptors(): number {
    return this.#fds.size;
  }

  // ---- internals ------------------------------------------------------------------------------

  #call<T>(label: string, fn: () => T, describe?: (result: T) => string): T {
    this.calls++;
    this.#clockNs += 100n;
    this.onPoint(`before ${label}`);
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.trace.log(`R ${label} -> ${(error as { code?: string }).code ?? String(error)}`);
      this.onPoint(`after ${label}`);
      throw error;
    }
    this.trace.log(describe === undefined ? `R ${label}` : `R ${label} -> ${describe(result)}`);
    this.onPoint(`after ${label}`);
    return result;
  }

  #changed(path: string): void {
    this.lastChange = { path, count: this.lastChange.count + 1 };
  }

  #tick(): bigint {
    this.#clockNs += 1_000n;
    return this.#clockNs;
  }

  #lookup(path: string): Inode | undefined {
    const ino = this.#names.get(path);
    return ino === undefined ? undefined : this.#inodes.get(ino);
  }

  #mustLookup(path: string): Inode {
    const node = this.#lookup(path);
    if (node === undefined) throw new Error(`simulated writer bug: ${path} does not exist`);
    return node;
  }

  #byFd(fd: number, syscall: string): Inode {
    const ino = this.#fds.get(fd);
    if (ino === undefined) throw fsError('EBADF', syscall, `fd${fd}`);
    return this.#inodes.get(ino)!;
  }

  /** Copies `n` bytes of the file from `position` into `into` at `offset`; absent chunks are zeros. */
  #copyOut(node: Inode, position: number, into: Uint8Array, offset: number, n: number): void {
    const start = into.byteOffset + offset;
    const fresh = this.#fresh.get(into.buffer);
    // A large allocation never read into past `filled` is zero there, but for its garbage chunks.
    const zeroed = fresh !== undefined && start >= fresh.filled;
    if (fresh !== undefined) fresh.filled = Math.max(fresh.filled, start + n);
    for (let done = 0; done < n; ) {
      const at = position + done;
      const index = Math.floor(at / CHUNK);
      const within = at - index * CHUNK;
      const m = Math.min(CHUNK - within, n - done);
      const chunk = node.chunks.get(index);
      if (chunk !== undefined) into.set(chunk.subarray(within, within + m), offset + done);
      else if (!zeroed || fresh.garbage.has(Math.floor((start + done) / CHUNK)) || fresh.garbage.has(Math.floor((start + done + m - 1) / CHUNK))) {
        into.fill(0, offset + done, offset + done + m);
      }
      done += m;
    }
  }

  #freeIno(): bigint {
    let ino = 12n;
    while (this.#inodes.has(ino)) ino++;
    return ino;
  }

  #maybeFree(node: Inode): void {
    if (node.links === 0 && node.opens === 0) this.#inodes.delete(node.ino);
  }
}

function statOf(node: Inode, granularityNs: bigint): FileStat {
  const floor = (ns: bigint): bigint => ns - (ns % granularityNs);
  return { isFile: true, ino: node.ino, size: node.size, mtimeNs: floor(node.mtimeNs), ctimeNs: floor(node.ctimeNs) };
}

function describeStat(stat: FileStat): string {
  return `ino${stat.ino} size ${stat.size} mtime ${stat.mtimeNs % 1_000_000_000n} ctime ${stat.ctimeNs % 1_000_000_000n}`;
}

// ---------------------------------------------------------------------------------------------
// Scheduler
// ---------------------------------------------------------------------------------------------

/** Something that moves one file write at a time. */
export interface Steppable {
  /** Performs the next file write (or nothing when stuck). */
  step(): void;
  /** Between operations: stopping here leaves no transaction half done. */
  readonly idle: boolean;
}

export interface ScheduleOptions {
  /** Chance that the writer moves at a scheduling point. */
  readonly stepChance: number;
  /** When it moves, it takes 1 to `burstMax` steps. */
  readonly burstMax: number;
  /** Chance that a `read` is cut into pieces with scheduling points between them. */
  readonly tearChance: number;
  /**
   * Chance that a burst is targeted instead of counted: either it runs until the writer has just
   * changed a file with a chosen suffix (`.db`, `-wal`, `-shm`, `-journal`: e.g. stopping right
   * after one page of a checkpoint), or it completes one to three whole operations.
   */
  readonly targetedChance: number;
  /**
   * 0: every point is alike. Otherwise points come in runs (mean length `phaseMean`) that are
   * alternately active (the writer may move) and quiet (it never does), so that a burst of
   * writer activity, a stretch of reader calls with none, and another burst happen in that order.
   */
  readonly phaseMean: number;
  /**
   * Swarm testing: the chance that each kind of scheduling point (`before fstat`, `after read`,
   * `inside read`, ...) is live for this seed; the writer never moves at the others. 1: all live.
   */
  readonly liveKinds: number;
}

/**
 * Decides, from its own seeded stream, whether and how far the writer moves at each point.
 * With a finite {@link Scheduler.budget} the writer stops at the first idle point once the
 * budget is spent, so a reader that keeps retrying eventually finds the files quiet.
 */
export class Scheduler {
  readonly #rng: Rng;
  readonly #writer: Steppable;
  readonly #options: ScheduleOptions;
  #fs: SimFs | undefined;
  #phaseLeft = 0;
  #quiet = false;
  readonly #live = new Map<string, boolean>();
  /** Whether scheduling points may run the writer at all. */
  enabled = true;
  /** Writer steps still allowed (it finishes the operation it is in even beyond). */
  budget = Number.POSITIVE_INFINITY;
  /** Writer steps taken at scheduling points. */
  steps = 0;

  constructor(rng: Rng, writer: Steppable, options: ScheduleOptions) {
    this.#rng = rng;
    this.#writer = writer;
    this.#options = options;
  }

  attach(fs: SimFs): void {
    this.#fs = fs;
    fs.onPoint = (where) => this.point(where);
    fs.splitRead = (length) => this.split(length);
  }

  /** A point between two reader calls (`where` names it, e.g. `after fstat(fd3)`): maybe let the writer move. */
  point(where = ''): void {
    if (!this.enabled) return;
    if (this.#options.liveKinds < 1) {
      const kind = where.replace(/\(.*$/, '');
      let live = this.#live.get(kind);
      if (live === undefined) this.#live.set(kind, (live = this.#rng.chance(this.#options.liveKinds)));
      if (!live) return;
    }
    if (this.#options.phaseMean > 0) {
      if (this.#phaseLeft <= 0) {
        this.#quiet = !this.#quiet;
        this.#phaseLeft = 1 + this.#rng.int(2 * this.#options.phaseMean);
      }
      this.#phaseLeft--;
      if (this.#quiet) return;
    }
    if (!this.#rng.chance(this.#options.stepChance)) return;
    const r = this.#rng.float();
    const targeted = this.#options.targetedChance;
    if (r < targeted / 2 && this.#fs !== undefined) {
      const fs = this.#fs;
      const suffix = this.#rng.pick(['.db', '-wal', '-shm', '-journal']);
      const from = fs.lastChange.count;
      for (let i = 0; i < 80 && this.#once(); i++) {
        if (fs.lastChange.count !== from && fs.lastChange.path.endsWith(suffix)) return;
      }
    } else if (r < targeted) {
      const operations = 1 + this.#rng.int(3);
      for (let k = 0; k < operations; k++) {
        for (let i = 0; i < 200 && this.#once() && !this.#writer.idle; i++);
      }
    } else {
      this.run(1 + this.#rng.int(this.#options.burstMax));
    }
  }

  /**
   * The reader sleeps (backoff): time passes, so the writer always moves, whatever the phase or
   * the live point kinds; otherwise a writer starved mid-transaction would look stuck forever.
   */
  sleeping(): void {
    if (this.enabled) this.run(1 + this.#rng.int(Math.max(3, this.#options.burstMax)));
  }

  /** Lets the writer take up to `n` steps (fewer once the budget is spent and it is idle). */
  run(n: number): void {
    for (let i = 0; i < n && this.#once(); i++);
  }

  #once(): boolean {
    if (this.budget <= 0 && this.#writer.idle) return false;
    this.#writer.step();
    this.budget--;
    this.steps++;
    return true;
  }

  split(length: number): number[] {
    if (!this.enabled || length < 2 || !this.#rng.chance(this.#options.tearChance)) return [length];
    const cuts = new Set<number>();
    const count = 1 + this.#rng.int(3);
    for (let i = 0; i < count; i++) cuts.add(1 + this.#rng.int(length - 1));
    const sorted = [...cuts].sort((a, b) => a - b);
    const pieces: number[] = [];
    let last = 0;
    for (const cut of sorted) {
      pieces.push(cut - last);
      last = cut;
    }
    pieces.push(length - last);
    return pieces;
  }
}
