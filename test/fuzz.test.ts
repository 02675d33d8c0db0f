/**
 * Byte fuzzing against SQLite's own reading: seeded mutants of real database, WAL and journal
 * files (written by Python's sqlite3, see support/sqlite-reader.py), each read three ways:
 *
 *   - by SQLite itself (Python's sqlite3 in one long-lived child process, on a private copy),
 *   - by a cache opened on the mutant,
 *   - by a live cache that first reloaded the unmutated base files, then reloads the mutant
 *     written over them in place (same inodes: the WAL scan it remembers is offered for reuse).
 *
 * What SQLite reads, the cache must read with the same rows; what SQLite refuses, the cache must
 * refuse. One divergence is by design: a hot journal (live magic) that SQLite rolls back on open
 * leaves the cache answering BUSY, since it never writes the files it mirrors.
 *
 * FUZZ_MUTANTS=<count> sets the number of mutants (default 1200), FUZZ_SEED=<n> the first seed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import process from 'node:process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDbCacheError, openDbCache, type DbCache } from '../src/index.ts';
import { Rng } from './support/sim-fs.ts';

const READER = fileURLToPath(new URL('./support/sqlite-reader.py', import.meta.url));
const MUTANTS = Number(process.env['FUZZ_MUTANTS'] ?? '') > 0 ? Number(process.env['FUZZ_MUTANTS']) : 1200;
const FIRST_SEED = Number(process.env['FUZZ_SEED'] ?? '') > 0 ? Number(process.env['FUZZ_SEED']) : 1;
/** What both sides read: the schema's size, then every row (hex(): a mutated schema can make them text that is not UTF-8). */
const SQLS = ['SELECT count(*), max(rootpage) FROM sqlite_schema', 'SELECT hex(k), hex(v) FROM t ORDER BY k'] as const;
const NAMES = ['app.db', 'app.db-wal', 'app.db-journal'] as const;
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

type Files = Partial<Record<(typeof NAMES)[number], Uint8Array>>;
type Result = { rows: unknown[][] } | { error: string; code?: string };
/** One result per query of {@link SQLS}. */
type Outcome = readonly Result[];

/** The Python reader: one JSON request per line, one JSON answer per line. */
class Reader {
  readonly #child: ChildProcess;
  #buffer = '';
  #waiting: ((line: string) => void) | undefined;
  #lines: string[] = [];
  #stderr = '';

  constructor() {
    this.#child = spawn('python3', [READER], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let newline: number;
      while ((newline = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        const waiting = this.#waiting;
        this.#waiting = undefined;
        if (waiting === undefined) this.#lines.push(line);
        else waiting(line);
      }
    });
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => (this.#stderr += chunk));
    this.#child.stdin!.on('error', () => undefined);
  }

  async ask(request: unknown): Promise<Record<string, unknown>> {
    this.#child.stdin!.write(`${JSON.stringify(request)}\n`);
    const line =
      this.#lines.shift() ??
      (await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the SQLite reader did not answer; stderr:\n${this.#stderr}`)), 60_000);
        this.#waiting = (answer) => {
          clearTimeout(timer);
          resolve(answer);
        };
      }));
    return JSON.parse(line) as Record<string, unknown>;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once('close', () => resolve()));
    this.#child.stdin!.end();
    await exited;
  }
}

let root = '';
let reader: Reader;
const bases = new Map<string, Files>();

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dbcache-fuzz-'));
  reader = new Reader();
  const answer = await reader.ask({ bases: path.join(root, 'bases') });
  for (const name of answer['ok'] as string[]) {
    const files: Files = {};
    for (const file of NAMES) {
      const at = path.join(root, 'bases', name, file);
      if (fs.existsSync(at)) files[file] = new Uint8Array(fs.readFileSync(at));
    }
    bases.set(name, files);
  }
});

after(async () => {
  await reader?.close();
  if (root !== '') fs.rmSync(root, { recursive: true, force: true });
});

/** Writes `files` into `dir` in place (existing files keep their inodes) and removes the others. */
function place(dir: string, files: Files): void {
  for (const name of NAMES) {
    const at = path.join(dir, name);
    const bytes = files[name];
    if (bytes === undefined) fs.rmSync(at, { force: true });
    else fs.writeFileSync(at, bytes);
  }
}

function pageSizeOf(files: Files): number {
  const db = files['app.db'];
  if (db === undefined || db.length < 18) return 512;
  const raw = (db[16]! << 8) | db[17]!;
  return raw === 1 ? 65536 : raw >= 512 ? raw : 512;
}

/** One seeded mutation of a copy of `base`; returns the files and what was done. */
function mutate(rng: Rng, baseName: string, base: Files): { files: Files; what: string } {
  const files: Files = {};
  for (const name of NAMES) if (base[name] !== undefined) files[name] = base[name]!.slice();
  const present = NAMES.filter((name) => files[name] !== undefined);
  const steps: string[] = [];
  const count = rng.pick([1, 1, 1, 2, 3]);
  for (let i = 0; i < count; i++) {
    const name = rng.pick(present.length > 0 ? present : ['app.db' as const]);
    const bytes = files[name] ?? new Uint8Array(0);
    const ps = pageSizeOf(files);
    const kind = rng.weighted({
      flip: 30,
      header: 25,
      truncate: 12,
      extend: 8,
      drop: 5,
      empty: 4,
      frameHeader: name === 'app.db-wal' ? 12 : 0,
      sameSaltWal: baseName === 'twin-a' || baseName === 'twin-b' ? 20 : 0,
    })!;
    switch (kind) {
      case 'flip': {
        if (bytes.length === 0) break;
        const at = rng.int(bytes.length);
        bytes[at] = bytes[at]! ^ (1 << rng.int(8));
        steps.push(`${name}: flip a bit of byte ${at}`);
        break;
      }
      case 'header': {
        if (name === 'app.db' && bytes.length >= 100) {
          const at = rng.pick([16, 17, 18, 19, 20, 21, 24, 27, 28, 31, 92, 95, rng.int(100)]);
          bytes[at] = rng.pick([0, 1, 2, 3, 255, rng.int(256)]);
          steps.push(`${name}: header byte ${at} = ${bytes[at]}`);
        } else if (bytes.length >= 32) {
          const at = rng.int(32);
          bytes[at] = rng.int(256);
          steps.push(`${name}: header byte ${at} = ${bytes[at]}`);
        }
        break;
      }
      case 'frameHeader': {
        const frame = 24 + ps;
        const frames = Math.floor((bytes.length - 32) / frame);
        if (frames <= 0) break;
        const at = 32 + rng.int(frames) * frame + rng.int(24);
        bytes[at] = rng.int(256);
        steps.push(`${name}: frame header byte ${at} = ${bytes[at]}`);
        break;
      }
      case 'truncate': {
        const size = rng.pick([0, rng.int(bytes.length + 1), Math.max(0, bytes.length - rng.between(1, 100)), Math.max(0, bytes.length - ps), ps, ps + rng.int(ps)]);
        files[name] = bytes.slice(0, Math.min(size, bytes.length));
        steps.push(`${name}: truncated to ${files[name]!.length} bytes`);
        break;
      }
      case 'extend': {
        const extra = new Uint8Array(rng.pick([1, 7, 100, ps, ps + 24, rng.int(3 * ps)]));
        if (rng.chance(0.5)) for (let j = 0; j < extra.length; j++) extra[j] = rng.int(256);
        const grown = new Uint8Array(bytes.length + extra.length);
        grown.set(bytes);
        grown.set(extra, bytes.length);
        files[name] = grown;
        steps.push(`${name}: ${extra.length} bytes appended`);
        break;
      }
      case 'drop': {
        const dropped = rng.pick(['app.db-wal', 'app.db-journal'] as const);
        delete files[dropped];
        steps.push(`${dropped}: removed`);
        break;
      }
      case 'empty': {
        const emptied = rng.pick(NAMES);
        files[emptied] = new Uint8Array(0);
        steps.push(`${emptied}: 0 bytes`);
        break;
      }
      case 'sameSaltWal': {
        const twin = bases.get(baseName === 'twin-a' ? 'twin-b' : 'twin-a')!;
        files['app.db-wal'] = twin['app.db-wal']!.slice();
        steps.push('app.db-wal: replaced by the other history with the same salts');
        break;
      }
    }
  }
  return { files, what: steps.join('; ') || 'no change' };
}

function describeOutcome(outcome: Outcome): string {
  return outcome
    .map((result) => ('rows' in result ? `${result.rows.length} rows ${JSON.stringify(result.rows).slice(0, 120)}` : `error ${result.code ?? ''} ${result.error}`))
    .join(' | ');
}

function cacheOutcome(cache: DbCache): Outcome {
  return SQLS.map((sql) => {
    try {
      return { rows: cache.values(sql) };
    } catch (error) {
      return { error: String((error as Error).message ?? error), code: (error as { code?: string }).code };
    }
  });
}

function failed(error: unknown): Outcome {
  const result = { error: String((error as Error).message), code: isDbCacheError(error) ? error.code : undefined };
  return SQLS.map(() => result);
}

function hasLiveJournal(files: Files): boolean {
  const journal = files['app.db-journal'];
  return journal !== undefined && journal.length >= 8 && JOURNAL_MAGIC.every((byte, i) => journal[i] === byte);
}

/** Whether the cache's outcome is SQLite's, or the one divergence by design (hot journal → BUSY). */
function agrees(sqlite: Outcome, cache: Outcome, files: Files): 'same' | 'hot-journal' | false {
  const same = sqlite.every((expected, i) => {
    const actual = cache[i]!;
    if ('rows' in expected && 'rows' in actual) return JSON.stringify(expected.rows) === JSON.stringify(actual.rows);
    return 'error' in expected && 'error' in actual;
  });
  if (same) return 'same';
  if (cache.every((result) => 'error' in result && result.code === 'BUSY') && hasLiveJournal(files)) return 'hot-journal';
  return false;
}

test(`byte fuzzing: ${MUTANTS} mutants of database, WAL and journal files, each read as SQLite reads it (fresh cache and live reload)`, { timeout: 900_000 }, async () => {
  const mutantDir = path.join(root, 'mutant');
  const liveDir = path.join(root, 'live');
  fs.mkdirSync(mutantDir);
  fs.mkdirSync(liveDir);
  const baseNames = [...bases.keys()];
  place(liveDir, bases.get(baseNames[0]!)!);
  const live = await openDbCache(path.join(liveDir, 'app.db'), { watch: false, busyTimeoutMs: 5 });
  const tally = { same: 0, sqliteRead: 0, sqliteRefused: 0, hotJournal: 0, liveSame: 0 };
  const failures: string[] = [];
  try {
    for (let i = 0; i < MUTANTS; i++) {
      const seed = FIRST_SEED + i;
      const rng = new Rng(seed);
      const baseName = rng.pick(baseNames);
      const { files, what } = mutate(rng, baseName, bases.get(baseName)!);
      place(mutantDir, files);
      // SQLite reads its own copy while the caches read the mutant (neither writes it).
      const asked = reader.ask({ read: mutantDir, sql: SQLS });

      let fresh: Outcome;
      try {
        const cache = await openDbCache(path.join(mutantDir, 'app.db'), { watch: false, busyTimeoutMs: 5 });
        fresh = cacheOutcome(cache);
        await cache.close();
      } catch (error) {
        fresh = failed(error);
      }

      // The live cache: the base files in place first (a reload that may or may not publish),
      // then the mutant over them, in place.
      place(liveDir, bases.get(baseName)!);
      await live.reload().catch(() => undefined);
      place(liveDir, files);
      let reloaded: Outcome;
      try {
        await live.reload();
        reloaded = cacheOutcome(live);
      } catch (error) {
        reloaded = failed(error);
      }

      const sqlite = (await asked)['results'] as Outcome;
      if ('rows' in sqlite[SQLS.length - 1]!) tally.sqliteRead++;
      else tally.sqliteRefused++;
      const freshAgrees = agrees(sqlite, fresh, files);
      const liveAgrees = agrees(sqlite, reloaded, files);
      if (freshAgrees === 'hot-journal') tally.hotJournal++;
      if (freshAgrees === 'same') tally.same++;
      if (liveAgrees === 'same') tally.liveSame++;
      if (freshAgrees === false || liveAgrees === false) {
        failures.push(
          `seed ${seed} (base ${baseName}: ${what}):\n  SQLite:     ${describeOutcome(sqlite)}\n  fresh cache: ${describeOutcome(fresh)}\n  live reload: ${describeOutcome(reloaded)}`,
        );
        if (failures.length >= 20) break;
      }
    }
  } finally {
    await live.close();
  }
  const summary =
    `[fuzz] ${MUTANTS} mutants from seed ${FIRST_SEED}: SQLite read ${tally.sqliteRead} and refused ${tally.sqliteRefused}; ` +
    `fresh cache agreed on ${tally.same}, live reload on ${tally.liveSame}, hot journals answered BUSY ${tally.hotJournal}; ${failures.length} disagreements`;
  console.log(summary);
  assert.equal(failures.length, 0, `${summary}\n${failures.join('\n')}\nReplay: FUZZ_SEED=<seed> FUZZ_MUTANTS=1`);
  assert.ok(tally.sqliteRead > MUTANTS / 10 && tally.sqliteRefused > MUTANTS / 20, 'the mutants should be a mix of files SQLite reads and refuses');
});
