import { fileURLToPath } from 'node:url';
import { engineOf, type Engine, type EngineNotice } from './engine.ts';
import { DbCacheError, PipelineFailure, describe, illegalConstructor, isDbCacheError } from './errors.ts';
import { nodeFileSystem, type ImageFileSystem } from './image/file-system.ts';
import type { DatabaseImage, ReadPolicy } from './image/read.ts';
import { SAME_BAD_FILE, SourceFeed, type ImageFeed } from './live-image.ts';
import type { PageImage } from './pages/page-image.ts';
import { insideHook, runInHook } from './hook-scope.ts';
import { createSilentLogger, type Logger } from './logger.ts';
import { resolveOptions, type DatabaseSource, type DbCacheOptions, type ResolvedOptions } from './options.ts';
import { newOrmHandle } from './orm-handle.ts';
import { replicaFeed } from './replica/feed.ts';
import { isWatchingFeed } from './replica/litefs.ts';
import { RefreshScheduler } from './refresh-scheduler.ts';
import { SerialRunner } from './serial-runner.ts';
import { ARRAY, FIRST } from './row-mode.ts';
import { newLease, newOverlay, QueryMethods, queryAccess, SnapshotCore, type QueryAccess, type QuerySettings } from './snapshot.ts';
import { findMissingModules, loadSqlJs, openImage, prepareFunctions, realBinder, rowReader, type FunctionSet, type SqlJsDatabase, type SqlJsLike } from './sqljs.ts';
import { sleep, systemClock, type Clock } from './timers.ts';
import type { Queryable, Snapshot, SqlJsCompatible } from './types.ts';
import { watchDatabaseFiles, type FileWatcher } from './watcher.ts';

/** Why a reload ran. */
export type ReloadCause = 'open' | 'call' | 'watch';

/** Published a new version. */
export interface ReloadEvent {
  readonly type: 'reload';
  readonly generation: number;
  readonly version: string;
  /** From the start of the reload to publication, in milliseconds. */
  readonly durationMs: number;
  /** Size of the new image. */
  readonly bytes: number;
  readonly cause: ReloadCause;
}

/** A reload failed; the previous version keeps serving. */
export interface ErrorEvent {
  readonly type: 'error';
  readonly error: DbCacheError;
  readonly cause: ReloadCause;
}

/**
 * A query overflowed the stack or trapped inside the sql.js engine that every cache in the
 * process shares (told to every cache on that engine, not only the one queried).
 */
export interface EngineEvent {
  readonly type: 'engine';
  /** `ENGINE` (the engine was checked and keeps working) or `ENGINE_BROKEN`. */
  readonly error: DbCacheError;
  /** The engine failed its health check: every query and reload now fails with `ENGINE_BROKEN`. */
  readonly broken: boolean;
}

/** What `subscribe` listeners receive. */
export type DbCacheEvent = ReloadEvent | ErrorEvent | EngineEvent;

/** Counters since the cache opened. */
export interface DbCacheStats {
  /** Reloads that published a new generation (including the first). */
  readonly reloads: number;
  /** Reloads that found nothing changed. */
  readonly noopReloads: number;
  readonly failures: number;
  /** Read attempts repeated because a writer moved during the read. */
  readonly retries: number;
  /** Duration of the last reload that published, in milliseconds. */
  readonly lastReloadMs: number;
  /** Snapshots whose database is still open: the live one plus retired ones still leased. */
  readonly liveSnapshots: number;
  /** Image bytes of those snapshots, each counted whole (they share unchanged pages: see `pageBytes`). */
  readonly liveBytes: number;
  /** Memory their pages take, shared pages counted once. */
  readonly pageBytes: number;
  /** Reloads that read only the WAL frames appended since the previous version. */
  readonly incrementalReloads: number;
  /**
   * With `replica: { kind: 'litefs' }`: LiteFS's position (`<txid>/<checksum>`, as `-pos` holds
   * it) of the newest image read and verified. Absent for other files.
   */
  readonly replicaPosition?: string;
}

/**
 * A live, read-only mirror of an SQLite database. Queries are synchronous and always run on one
 * whole committed version.
 *
 * After `close()`, every query (`get`, `all`, `iterate`, `values`, `prepare`, `pragma`, statements
 * prepared before), `read`, `snapshot`, `sqlJsDatabase` and `subscribe` throw `CLOSED`, and
 * `reload` rejects with it; `closed`, `open`, `path`, `name`, `generation`, `version` and
 * `stats()` keep reporting the final state.
 */
export interface DbCache extends Queryable, AsyncDisposable {
  /**
   * Number of the live version; grows by one each time a changed version is published (a change
   * of the files that leaves the content equal, such as a WAL checkpoint, publishes nothing).
   * After close: the last one.
   */
  readonly generation: number;
  /** The version string of the live version (after close: the last one). */
  readonly version: string;
  /**
   * The database path as given (a `file:` URL as its path; a symbolic link is not replaced by
   * where it leads), or `"source"` for a source function.
   */
  readonly path: string;
  /** The same as `path` (better-sqlite3's `db.name`). */
  readonly name: string;
  /** Whether `close()` has run. */
  readonly closed: boolean;
  /** Whether the cache can be queried: `!closed` (better-sqlite3's `db.open`). */
  readonly open: boolean;
  /** Always `true`: the cache never writes (better-sqlite3's `db.readonly`). */
  readonly readonly: true;
  /** Always `false`: no transaction is ever open on a published version (better-sqlite3's `db.inTransaction`). */
  readonly inTransaction: false;
  /**
   * Runs `fn` with one snapshot; every query inside sees the same version. A returned promise
   * keeps the snapshot leased until it settles.
   */
  read<T>(fn: (snapshot: Snapshot) => T): T;
  /** A lease on the live version; release it when done. Throws `CLOSED` after close. */
  snapshot(): Snapshot;
  /**
   * The cache for ORM drivers with a sql.js driver (Drizzle ORM's `drizzle-orm/sql-js`, and
   * Kysely's `SqliteDialect`): each run of a statement reads the version live when it starts, so
   * an ORM built once follows every reload. Only statements that read are prepared (others throw
   * `READ_ONLY`); throws `CLOSED` after close. See {@link SqlJsCompatible}.
   *
   * @example
   * ```ts
   * import { drizzle } from 'drizzle-orm/sql-js';
   * const orm = drizzle(cache.sqlJsDatabase());
   * const rows = orm.select().from(routes).where(eq(routes.host, host)).all();
   * ```
   */
  sqlJsDatabase(): SqlJsCompatible;
  /**
   * Resolves once a version that includes every commit made before the call is live; rejects
   * with a DbCacheError when that fails (the previous version keeps serving), with `CLOSED` after
   * close. Rejects at once with a `TypeError` when called from inside this cache's own `onReload`
   * hook (or anything it started).
   */
  reload(): Promise<void>;
  /**
   * Calls `listener` for every reload and error, in subscription order, with a frozen event;
   * returns the unsubscribe function. A listener that throws is logged and changes nothing.
   * Throws `CLOSED` after close (no event follows close).
   */
  subscribe(listener: (event: DbCacheEvent) => void): () => void;
  /** Counters since the cache opened; after close, their final values. */
  stats(): DbCacheStats;
  /**
   * Stops watching and frees the live version (leased ones when released). Idempotent. A reload in
   * progress fails with `CLOSED`; a running `onReload` hook is not waited for.
   */
  close(): Promise<void>;
}

interface MutableStats {
  incrementalReloads: number;
  reloads: number;
  noopReloads: number;
  failures: number;
  retries: number;
  lastReloadMs: number;
}

/** Set only while {@link startCache} constructs a cache: no one else can make a half-built one. */
let constructing = false;

/** Constructs a cache and runs its first reload (and starts its watcher); rejects with what stopped it. */
let startCache: (
  path: string,
  source: DatabaseSource | undefined,
  options: ResolvedOptions,
  sqlJs: SqlJsLike,
  fs: ImageFileSystem,
  clock: Clock,
) => Promise<Cache>;

class Cache extends QueryMethods implements DbCache {
  static {
    startCache = async (...args) => {
      constructing = true;
      let cache: Cache;
      try {
        cache = new Cache(...args);
      } finally {
        constructing = false;
      }
      try {
        await cache.#start();
      } catch (error) {
        await cache.close();
        throw error;
      }
      return cache;
    };
  }

  readonly #path: string;
  readonly #access: QueryAccess;
  #source: DatabaseSource | undefined;
  #options: ResolvedOptions;
  #logger: Logger;
  #sqlJs: SqlJsLike;
  #engine: Engine;
  #unwatchEngine: () => void;
  #settings: QuerySettings;
  #current: SnapshotCore | undefined;
  /** Where images come from, and what is known about them between reloads. */
  #feed: ImageFeed;
  /** What to release when a version's database closes: its storages' hold on their pages. */
  #releases = new Map<SnapshotCore, Array<() => void>>();
  #runner: SerialRunner<void>;
  /** Why the next run happens: callers coalesced into one run report 'call' if any of them called. */
  #nextCause: ReloadCause = 'open';
  #listeners = new Set<(event: DbCacheEvent) => void>();
  #snapshots = new Set<SnapshotCore>();
  #stats: MutableStats = { reloads: 0, incrementalReloads: 0, noopReloads: 0, failures: 0, retries: 0, lastReloadMs: 0 };
  #failing = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #watcher: FileWatcher | undefined;
  #scheduler: RefreshScheduler | undefined;
  #onAbort = (): void => void this.close();
  /** Set while an onReload hook runs: close() calls it to stop waiting for the hook. */
  #abandonHook: (() => void) | undefined;

  #clock: Clock;
  /** The user functions, registered on every version's connection. */
  #functions: FunctionSet | undefined;

  constructor(path: string, source: DatabaseSource | undefined, options: ResolvedOptions, sqlJs: SqlJsLike, fs: ImageFileSystem, clock: Clock) {
    if (!constructing) throw illegalConstructor();
    const access = queryAccess(
      () => this.#live(),
      () => this,
    );
    super(access);
    this.#access = access;
    this.#path = path;
    this.#functions = prepareFunctions(sqlJs, options.functions);
    this.#clock = clock;
    this.#source = source;
    this.#feed = source === undefined ? replicaFeed(path, fs, options.replica) : new SourceFeed(source);
    this.#options = options;
    this.#logger = options.logger ?? createSilentLogger();
    this.#sqlJs = sqlJs;
    this.#engine = engineOf(sqlJs);
    this.#unwatchEngine = this.#engine.watch((notice) => this.#engineFault(notice));
    this.#settings = {
      path,
      bigint: options.bigint,
      maxStatements: options.maxStatements,
      memoEntries: options.memoEntries,
      logger: this.#logger,
      engine: this.#engine,
      onTainted: (core) => this.#replace(core),
      onClose: (core) => this.#closed_(core),
      bindReal: realBinder(sqlJs),
      rows: rowReader(sqlJs),
      volatileFunctions: this.#functions?.volatile,
      deterministicFunctions: this.#functions?.deterministic,
    };
    this.#runner = new SerialRunner(() => this.#reloadOnce());
  }

  get generation(): number {
    return this.#current?.generation ?? 0;
  }

  get version(): string {
    return this.#current?.version ?? '';
  }

  get closed(): boolean {
    return this.#closed;
  }

  get open(): boolean {
    return !this.#closed;
  }

  get path(): string {
    return this.#path;
  }

  get name(): string {
    return this.#path;
  }

  get readonly(): true {
    return true;
  }

  get inTransaction(): false {
    return false;
  }

  /** The first reload and the watcher; rejects with the DbCacheError that stopped it. */
  async #start(): Promise<void> {
    await this.#runner.run();
    const { signal, watch, pollMs } = this.#options;
    if (watch && this.#source === undefined) {
      this.#scheduler = new RefreshScheduler(
        { debounceMs: this.#options.debounceMs, maxWaitMs: this.#options.maxWaitMs, settleMs: 150, pollMs: 4, retryMs: 50, maxRetryMs: 2000 },
        this.#clock,
        { changed: () => this.#changed(), reload: () => this.#reloadFromWatch() },
      );
      const scheduler = this.#scheduler;
      const feed = this.#feed;
      this.#watcher = isWatchingFeed(feed)
        ? feed.watch(() => scheduler.notify(), {
            pollMs: pollMs,
            persistent: this.#options.persistent,
            clock: this.#clock,
            onError: (error, attempt) => {
              const message = `Following changes of ${this.#path} failed (${describe(error)}); retrying, and polling meanwhile`;
              if (attempt === 1) this.#logger.warn(message);
              else this.#logger.debug(message);
            },
            onRecovered: (failures) => this.#logger.info(`Following changes of ${this.#path} works again after ${failures} failed attempts`),
          })
        : await watchDatabaseFiles(
        this.#path,
        { polling: pollMs !== undefined, intervalMs: pollMs ?? 100, persistent: this.#options.persistent },
        () => scheduler.notify(),
        (error) => this.#logger.warn(`Watching ${this.#path} reported an error; reloads on change may be late: ${describe(error)}`),
      );
      // A commit between the first read and the watcher's start would otherwise wait for the next event.
      scheduler.notify();
    }
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  snapshot(): Snapshot {
    return this.#access.use((core) => newLease(core));
  }

  sqlJsDatabase(): SqlJsCompatible {
    return newOrmHandle(this.#access);
  }

  read<T>(fn: (snapshot: Snapshot) => T): T {
    if (typeof fn !== 'function') throw new TypeError(`read() needs a function, got ${typeof fn}`);
    const lease = this.#access.use((core) => newLease(core));
    let result: T;
    try {
      result = fn(lease);
    } catch (error) {
      lease.release();
      throw error;
    }
    // A thenable keeps the lease until it settles. Its `then` is the caller's code: read once,
    // and if reading or calling it throws, the lease ends and the error is the caller's.
    let then: unknown;
    try {
      then = typeof result === 'object' || typeof result === 'function' ? (result as { then?: unknown } | null)?.then : undefined;
      if (typeof then === 'function') {
        const release = (): void => lease.release();
        Reflect.apply(then, result, [release, release]);
      }
    } catch (error) {
      lease.release();
      throw error;
    }
    if (typeof then !== 'function') lease.release();
    return result;
  }

  reload(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    // That reload could start only after the hook (which waits for it) returned: refuse, not hang.
    if (insideHook(this)) {
      return Promise.reject(
        new TypeError(
          `reload() of ${this.#path} was called from inside its onReload hook (or from something the hook started); the reload running the hook already includes every commit made before it started`,
        ),
      );
    }
    this.#nextCause = 'call';
    return this.#runner.run();
  }

  subscribe(listener: (event: DbCacheEvent) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError(`subscribe() needs a function, got ${typeof listener}`);
    // No event follows close(): a listener added now would never be called.
    if (this.#closed) throw this.#closedError();
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stats(): DbCacheStats {
    let liveBytes = 0;
    for (const core of this.#snapshots) liveBytes += core.bytes;
    const { position } = this.#feed;
    return {
      ...this.#stats,
      liveSnapshots: this.#snapshots.size,
      liveBytes,
      pageBytes: this.#feed.store.stats().slabBytes,
      ...(position === undefined ? {} : { replicaPosition: position }),
    };
  }

  /**
   * A version's database closed: its pages no longer count as live. Slabs it leaves mostly unused
   * are compacted now, not at the next publish, which may be long in coming.
   */
  #closed_(core: SnapshotCore): void {
    this.#snapshots.delete(core);
    for (const release of this.#releases.get(core) ?? []) release();
    this.#releases.delete(core);
    if (!this.#closed) this.#feed.store.collect();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The live version; `CLOSED` once closed. */
  #live(): SnapshotCore {
    if (this.#closed || this.#current === undefined) throw this.#closedError();
    return this.#current;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#abandonHook?.();
    this.#unwatchEngine();
    try {
      this.#options.signal?.removeEventListener('abort', this.#onAbort);
    } catch {
      // The caller's own signal (its method replaced, say) cannot keep the cache from closing.
    }
    this.#scheduler?.stop();
    const watcher = this.#watcher;
    this.#watcher = undefined;
    // Let a reload in flight finish, so the Database it built is freed below (a running onReload
    // hook is not waited for: the reload stops with CLOSED at once).
    await this.#runner.running?.catch(() => undefined);
    this.#current?.retire();
    this.#feed.forget();
    await watcher?.close();
  }

  /** The live version cannot answer any more (a fault, and an overlay in it): build it anew from the files. */
  #replace(core: SnapshotCore): void {
    if (core !== this.#current || this.#closed) return;
    this.#feed.forget();
    this.#runner.run().catch(() => undefined);
  }

  #engineFault({ error, broken }: EngineNotice): void {
    if (broken) this.#logger.error(`${error.message} (reported to the cache of ${this.#path})`);
    else this.#logger.warn(error.message);
    this.#emit({ type: 'engine', error, broken });
  }

  #closedError(): DbCacheError {
    return new DbCacheError('CLOSED', this.#path, `The cache of ${this.#path} is closed; open a new one with openDbCache()`);
  }

  /**
   * The watcher's quick re-check: stats only. A fingerprint equal to one taken inside the racy
   * window proves nothing, but re-reading the file on every re-check would cost a full read each
   * few milliseconds: the verifying read is scheduled once the window has passed instead.
   */
  #changed(): boolean {
    if (this.#feed.changed()) return true;
    this.#scheduleVerification();
    return false;
  }

  /** With the live fingerprint inside the racy window, one watch reload once it has passed. */
  #scheduleVerification(): void {
    const waitMs = this.#feed.unsettledUntil();
    if (this.#scheduler === undefined || waitMs === undefined) return;
    this.#scheduler.verifyAt(this.#clock.now() + Math.max(0, waitMs) + 1);
  }

  async #reloadFromWatch(): Promise<boolean> {
    if (this.#closed) return true;
    try {
      await this.#runner.run();
      return true;
    } catch {
      return false;
    } finally {
      // A symbolic link on the path may lead elsewhere now, or a missing directory exist: watch there.
      this.#watcher?.follow();
    }
  }

  /** One reload, start to end; the SerialRunner guarantees only one runs at a time. */
  async #reloadOnce(): Promise<void> {
    const cause = this.#nextCause;
    this.#nextCause = 'watch';
    if (this.#closed) throw this.#closedError();
    const started = performance.now();
    if (this.#engine.broken !== undefined) throw this.#fail(this.#engine.brokenError(this.#path), cause);
    try {
      const image = await this.#feed.read(cause, this.#policy());
      if (image === SAME_BAD_FILE) return;
      if (image === undefined || this.#feed.unchanged(image)) {
        this.#stats.noopReloads++;
        this.#recovered();
        this.#scheduleVerification();
        return;
      }
      if (this.#closed) throw this.#closedError();
      const core = await this.#build(image);
      if (this.#closed) {
        core.retire();
        throw this.#closedError();
      }
      this.#publish(core, image);
      if (image.read === 'incremental') this.#stats.incrementalReloads++;
      const durationMs = performance.now() - started;
      this.#stats.reloads++;
      this.#stats.lastReloadMs = durationMs;
      this.#recovered();
      this.#scheduleVerification();
      this.#emit({ type: 'reload', generation: core.generation, version: core.version, durationMs, bytes: core.bytes, cause });
    } catch (error) {
      throw this.#fail(error, cause);
    }
  }

  /** How hard a read tries before it gives up with BUSY; close() cuts it short. */
  #policy(): ReadPolicy {
    return {
      busyTimeoutMs: this.#options.busyTimeoutMs,
      sleep: (ms: number) => {
        // close() waits for this reload: do not make it wait out the whole retry budget.
        if (this.#closed) return Promise.reject(this.#closedError());
        this.#stats.retries++;
        return sleep(ms);
      },
      now: () => performance.now(),
    };
  }

  /** Builds the next version privately: engine, probe, overlay, then read-only. */
  async #build(image: DatabaseImage): Promise<SnapshotCore> {
    let core: SnapshotCore;
    this.#engine.enter(this.#path);
    try {
      const { db, seal, release } = openImage(this.#sqlJs, image.pages, this.#feed.store, this.#functions);
      try {
        core = new SnapshotCore(db, this.generation + 1, image.version, image.pages.length, this.#settings, seal);
      } catch (error) {
        release();
        throw error;
      }
      this.#releases.set(core, [release]);
    } catch (error) {
      const failure = this.#engine.fault(error, this.#path, `Opening an image of ${this.#path}`);
      if (ENGINE_CODES.has(failure.code)) throw new PipelineFailure(failure.code, describe(error), { cause: failure });
      throw new PipelineFailure('CORRUPT', `SQLite could not open the image: ${describe(error)}`, { cause: error });
    }
    try {
      try {
        // The private copy has no other connection: exclusive locking skips the lock and
        // change-counter checks that every statement would otherwise make.
        core.exec('PRAGMA locking_mode=EXCLUSIVE');
        core.exec(`PRAGMA cache_size=-${this.#options.cacheSize}`);
        // sql.js opens anything; the first real read is what rejects a bad image.
        core.exec('SELECT type, name FROM sqlite_schema');
        if (this.#current === undefined) this.#noteMissingModules(core);
        if (this.#options.quickCheck) this.#quickCheck(core);
      } catch (error) {
        throw probeFailure(error, 'CORRUPT', 'SQLite rejected the image');
      }
      const { onReload } = this.#options;
      if (onReload !== undefined) await this.#overlay(core, onReload);
      core.exec('PRAGMA query_only=1');
      const { pages } = image;
      core.seal(onReload === undefined ? () => this.#reopen(core, pages) : undefined);
      return core;
    } catch (error) {
      core.retire();
      throw error;
    }
  }

  /**
   * Runs `onReload` on the private version, then refuses what it must not publish: a hook that
   * threw, left a row iterator or a transaction open, or left a database that SQLite's probe (and
   * `quickCheck`) rejects. Nothing is committed or rolled back on the hook's behalf; a refused
   * version is discarded. close() abandons a hook still running.
   */
  async #overlay(core: SnapshotCore, onReload: NonNullable<ResolvedOptions['onReload']>): Promise<void> {
    if (this.#closed) throw this.#closedError();
    const overlay = newOverlay(core);
    const info = { generation: core.generation, version: core.version };
    // Per run, not one promise per cache: each race would leave a reaction on it until close().
    const abandoned = new Promise<void>((resolve) => (this.#abandonHook = resolve));
    const hook = runInHook(this, async () => {
      await onReload(overlay.db, info);
    });
    let threw = false;
    let thrown: unknown;
    let left: number;
    try {
      await Promise.race([hook.result, abandoned]);
    } catch (error) {
      threw = true;
      thrown = error;
    } finally {
      this.#abandonHook = undefined;
      hook.end();
      left = overlay.end();
    }
    if (this.#closed) throw this.#closedError();
    if (threw) throw new PipelineFailure('OVERLAY_FAILED', `onReload threw: ${describe(thrown)}`, { cause: thrown });
    const open: string[] = [];
    try {
      if (left > 0) open.push(left === 1 ? 'a row iterator unfinished' : `${left} row iterators unfinished`);
      if (core.inTransaction()) open.push('a transaction open');
      if (open.length === 0) {
        core.exec('SELECT type, name FROM sqlite_schema');
        if (this.#options.quickCheck) this.#quickCheck(core);
      }
    } catch (error) {
      throw probeFailure(error, 'OVERLAY_FAILED', 'SQLite rejected the database onReload left');
    }
    if (open.length > 0) {
      throw new PipelineFailure('OVERLAY_FAILED', `onReload returned with ${open.join(' and ')}; nothing of it was published (finish every iterator and end every transaction before the hook returns)`);
    }
  }

  #quickCheck(core: SnapshotCore): void {
    const result = core.all('PRAGMA quick_check', undefined, FIRST);
    if (result.length !== 1 || result[0] !== 'ok') throw new Error(`quick_check: ${result.slice(0, 3).join('; ')}`);
  }

  /** The image (never written: no overlay) on a new connection, set up and sealed like a published version. */
  #reopen(core: SnapshotCore, pages: PageImage): SqlJsDatabase {
    const { db, seal, release } = openImage(this.#sqlJs, pages, this.#feed.store, this.#functions);
    const releases = this.#releases.get(core);
    if (releases === undefined) this.#releases.set(core, [release]);
    else releases.push(release);
    try {
      db.exec('PRAGMA locking_mode=EXCLUSIVE');
      db.exec(`PRAGMA cache_size=-${this.#options.cacheSize}`);
      db.exec('PRAGMA query_only=1');
      seal();
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Names, once at open, the tables this sql.js build cannot query (FTS5, R*Tree, … virtual tables). */
  #noteMissingModules(core: SnapshotCore): void {
    for (const { table, module } of findMissingModules((sql) => core.all(sql, undefined, ARRAY) as unknown[][])) {
      this.#logger.warn(`${this.#path}: table ${table} needs the ${module} module, which the sql.js build in use lacks; queries on it fail until you pass a sql.js build that has it as the sqlJs option`);
    }
  }

  #publish(core: SnapshotCore, image: DatabaseImage): void {
    const previous = this.#current;
    this.#current = core;
    this.#snapshots.add(core);
    this.#feed.published(image);
    previous?.retire();
    // Enough new pages since the last look: move the few live pages out of sparse slabs.
    this.#feed.store.collect();
  }

  /** The DbCacheError a failed reload rejects with, reported (logged, emitted) unless it is CLOSED. */
  #fail(error: unknown, cause: ReloadCause): DbCacheError {
    if (error instanceof DbCacheError) {
      const { code } = error;
      if (code === 'NOT_A_DATABASE' || code === 'CORRUPT') this.#feed.rejected();
      if (code !== 'CLOSED') this.#report(error, cause);
      return error;
    }
    const failure = error instanceof PipelineFailure ? error : new PipelineFailure('IO', describe(error), { cause: error });
    const opening = this.#current === undefined;
    const next = opening ? 'the cache was not opened' : `still serving generation ${this.generation}`;
    const wrapped = new DbCacheError(
      failure.code,
      this.#path,
      `${opening ? 'Opening' : 'Reloading'} ${this.#path} failed: ${failure.message}; ${next}`,
      { cause: failure.cause ?? failure },
    );
    if (failure.code === 'NOT_A_DATABASE' || failure.code === 'CORRUPT') this.#feed.rejected();
    this.#report(wrapped, cause);
    return wrapped;
  }

  #report(error: DbCacheError, cause: ReloadCause): void {
    this.#stats.failures++;
    if (this.#current !== undefined && !this.#failing) {
      this.#failing = true;
      this.#logger.warn(error.message);
    } else {
      this.#logger.debug(error.message);
    }
    this.#emit({ type: 'error', error, cause });
  }

  #recovered(): void {
    this.#feed.recovered();
    if (!this.#failing) return;
    this.#failing = false;
    this.#logger.info(`Reloading ${this.#path} works again; serving generation ${this.generation}`);
  }

  /**
   * Tells every listener subscribed when the event happened, in order; one unsubscribed by an
   * earlier listener of this event is skipped. The event is frozen: no listener can change what
   * the next one sees. Nothing a listener does (throw anything) escapes: it is logged.
   */
  #emit(event: DbCacheEvent): void {
    Object.freeze(event);
    for (const listener of [...this.#listeners]) {
      if (!this.#listeners.has(listener)) continue;
      try {
        listener(event);
      } catch (error) {
        this.#logger.error(`A subscriber of ${this.#path} threw on a ${event.type} event: ${describe(error)}`);
      }
    }
  }
}

/** Failures of the engine, not of the image: a reload that meets them keeps their code. */
const ENGINE_CODES = new Set<string>(['ENGINE', 'ENGINE_BROKEN', 'OUT_OF_MEMORY']);

/** What a probe of a new version (a query of it, `quickCheck`) failing means: the engine's own failure keeps its code, anything else is `code`. */
function probeFailure(error: unknown, code: 'CORRUPT' | 'OVERLAY_FAILED', what: string): PipelineFailure {
  if (isDbCacheError(error) && ENGINE_CODES.has(error.code)) return new PipelineFailure(error.code, describe(error.cause ?? error), { cause: error });
  return new PipelineFailure(code, `${what}: ${describe((error as { cause?: unknown }).cause ?? error)}`, { cause: error });
}

/**
 * Opens a live, read-only mirror of the SQLite database at `source` (a path, a `file:` URL, or a
 * function that returns an image from the application's own writer connection).
 *
 * Resolves once the first version is published. Rejects with a {@link DbCacheError}
 * (`NOT_FOUND`, `NOT_A_FILE`, `PERMISSION`, `NOT_A_DATABASE`, `CORRUPT`, `BUSY`, `IO`,
 * `REPLICA` when the `replica` option's checks refuse the file, `OVERLAY_FAILED`, `SOURCE_FAILED`,
 * `OUT_OF_MEMORY`, `ENGINE_UNAVAILABLE` when sql.js cannot be loaded (a bundle without
 * `require`), `ENGINE_BROKEN` when the shared sql.js engine was found damaged, `CLOSED` when
 * `signal` is already aborted); rejects with a `TypeError`/`RangeError` for bad arguments
 * (`':memory:'`, a URL that is not `file:`), and a `TypeError` naming the closest known option
 * for an unknown one. A watching cache does not keep the process alive: a script whose only work
 * is to follow the database passes `persistent: true` (like chokidar's option) and runs until
 * `close()`.
 *
 * @example
 * ```ts
 * const cache = await openDbCache('data/app.db');
 * const route = cache.get('SELECT * FROM routes WHERE host = ?', [host]);
 * await cache.close();
 * ```
 */
export function openDbCache(source: string | URL | DatabaseSource, options?: DbCacheOptions): Promise<DbCache> {
  return openDbCacheOn(nodeFileSystem, source, options);
}

/** {@link openDbCache} on another file system and clock; for tests, not exported from the package. */
export async function openDbCacheOn(
  fs: ImageFileSystem,
  source: string | URL | DatabaseSource,
  options?: DbCacheOptions,
  clock: Clock = systemClock,
): Promise<DbCache> {
  const from = sourceOf(source);
  const resolved = resolveOptions(options);
  const label = typeof from === 'string' ? from : 'source';
  if (resolved.signal?.aborted) {
    throw new DbCacheError('CLOSED', label, `Opening ${label} was aborted before it started; no cache was opened`, {
      cause: resolved.signal.reason,
    });
  }
  let sqlJs: SqlJsLike;
  try {
    sqlJs = await loadSqlJs(resolved.sqlJs);
  } catch (error) {
    if (error instanceof TypeError) throw error;
    const unavailable = whyUnavailable(error);
    if (unavailable !== undefined) {
      // The first line only: Node appends the require stack to "Cannot find module".
      const reason = describe(error).split('\n')[0];
      throw new DbCacheError('ENGINE_UNAVAILABLE', label, `Opening ${label} failed: sql.js could not be loaded (${reason}): ${unavailable}; the cache was not opened`, { cause: error });
    }
    throw new DbCacheError('IO', label, `Opening ${label} failed: sql.js could not be initialised (${describe(error)}); the cache was not opened`, { cause: error });
  }
  if (resolved.functions.length > 0 && typeof (sqlJs.Database.prototype as Partial<SqlJsDatabase> | undefined)?.create_function !== 'function') {
    throw new TypeError('options.functions and options.aggregates need a sql.js module whose Database has create_function and create_aggregate');
  }
  const broken = engineOf(sqlJs).broken;
  if (broken !== undefined) throw engineOf(sqlJs).brokenError(label);
  const cache = await startCache(label, typeof from === 'function' ? from : undefined, resolved, sqlJs, fs, clock);
  if (resolved.signal?.aborted) {
    await cache.close();
    throw new DbCacheError('CLOSED', label, `Opening ${label} was aborted; the cache was closed`, { cause: resolved.signal.reason });
  }
  return cache;
}

const hrefOf = Object.getOwnPropertyDescriptor(URL.prototype, 'href')!.get!;

/**
 * The path or source function `source` names, read once: a path string, a `file:` URL (as
 * `node:fs` takes one), or a function. `':memory:'` and other values are `TypeError`s that say
 * what to pass instead.
 */
function sourceOf(source: unknown): string | DatabaseSource {
  if (typeof source === 'function') return source as DatabaseSource;
  if (typeof source === 'string') {
    if (source === '') throw new TypeError('openDbCache() needs a non-empty path');
    if (source === ':memory:') {
      throw new TypeError(
        "openDbCache(':memory:') has nothing to mirror: dbcache mirrors a database file; for an in-memory database of your own, pass a source function such as () => db.serialize()",
      );
    }
    return source;
  }
  if (source instanceof URL) {
    // The href through URL's own getter: a subclass cannot make it say something else later.
    const url = new URL(String(Reflect.apply(hrefOf, source, [])));
    if (url.protocol !== 'file:') {
      throw new TypeError(`openDbCache() reads local files: got a ${url.protocol} URL; pass a file: URL or a path (or a source function that returns the database's bytes)`);
    }
    // As node:fs does: a host other than localhost, or an encoded '/', is a TypeError.
    return fileURLToPath(url);
  }
  const kind = source === null ? 'null' : source instanceof Uint8Array ? 'a Buffer or Uint8Array (decode it to a string)' : typeof source;
  throw new TypeError(`openDbCache() needs a path string, a file: URL or a source function, got ${kind}`);
}

/**
 * Why sql.js could not be loaded, when that is how dbcache runs rather than a failure of the
 * machine: inside a bundle whose sql.js glue has no `require` (esbuild's ESM output), or with
 * sql.js's files out of reach of the runtime's resolver.
 */
function whyUnavailable(error: unknown): string | undefined {
  const message = describe(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (/Dynamic require of|require is not defined|__dirname is not defined|__filename is not defined/.test(message)) {
    return `it runs inside a bundle that gives sql.js's glue code no require (esbuild's ESM output); make the bundle define it (esbuild: --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);") and pass sqlJs: 'inline', or keep the default 'wasm' build and node_modules/sql.js beside the bundle`;
  }
  if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && message.includes('sql.js')) {
    return "the default 'wasm' build is loaded from node_modules/sql.js, which cannot be found from where dbcache runs; install sql.js there, or bundle sql.js with sqlJs: 'inline' (esbuild's ESM output also needs a createRequire banner)";
  }
  return undefined;
}
