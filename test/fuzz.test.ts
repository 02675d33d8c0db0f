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
 *
 * A second test sets header and frame FIELDS of the same files to their extremes (0, 1, 2^31 − 1,
 * 2^32 − 1 and values around the page size), one field at a time, checksums recomputed wherever
 * the field would otherwise be accepted, and reads each in a process of its own
 * (scripts/field-reader.ts): a read may not abort the process, and must answer SQLite's rows or a
 * typed error. FUZZ_FIELDS=<substring> runs only the cases whose description contains it.
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
import { scanWal } from '../src/image/wal.ts';
import { runtimeCommand } from './support/fixtures.ts';
import { Rng } from './support/sim-fs.ts';
import { getUint32, resealWal, setUint32, walFrames, walPageSize } from './support/wal-bytes.ts';

const READER = fileURLToPath(new URL('./support/sqlite-reader.py', import.meta.url));
const FIELD_READER = fileURLToPath(new URL('./scripts/field-reader.ts', import.meta.url));
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

// ---------------------------------------------------------------------------------------------
// Fields at their extremes
// ---------------------------------------------------------------------------------------------

const EXTREMES = [0, 1, 2, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];

/** One field: where it is, how wide, and the values to put there. */
interface Field {
  readonly name: string;
  readonly at: number;
  readonly width: 1 | 2 | 4;
  readonly values: readonly number[];
}

function setField(bytes: Uint8Array, at: number, width: 1 | 2 | 4, value: number): void {
  if (width === 1) bytes[at] = value & 0xff;
  else if (width === 2) new DataView(bytes.buffer, bytes.byteOffset).setUint16(at, value & 0xffff);
  else setUint32(bytes, at, value >>> 0);
}

/** The fields of the 100-byte database header, with values around `pageSize` and `pages`. */
function dbHeaderFields(pageSize: number, pages: number): Field[] {
  const bytes = (values: number[]): number[] => [...new Set(values.filter((v) => v >= 0 && v <= 255))];
  return [
    // 1 stands for 65536; half and twice the real page size are valid sizes the file's pages are not.
    { name: 'page size', at: 16, width: 2, values: [...new Set([0, 1, 2, 256, 511, 512, 513, 1024, 32768, 65535, Math.max(512, pageSize / 2), pageSize >= 32768 ? 1 : pageSize * 2])] },
    { name: 'write version', at: 18, width: 1, values: [0, 1, 2, 3, 255] },
    { name: 'read version', at: 19, width: 1, values: [0, 1, 2, 3, 255] },
    { name: 'reserved bytes per page', at: 20, width: 1, values: bytes([0, 1, 32, 255, pageSize - 480, pageSize - 479]) },
    { name: 'maximum embedded payload fraction', at: 21, width: 1, values: [0, 1, 32, 255] },
    { name: 'minimum embedded payload fraction', at: 22, width: 1, values: [0, 1, 64, 255] },
    { name: 'leaf payload fraction', at: 23, width: 1, values: [0, 1, 64, 255] },
    { name: 'file change counter', at: 24, width: 4, values: EXTREMES },
    { name: 'size in pages', at: 28, width: 4, values: [...EXTREMES, pages - 1, pages + 1] },
    { name: 'first freelist trunk page', at: 32, width: 4, values: [...EXTREMES, pages + 1] },
    { name: 'freelist pages', at: 36, width: 4, values: EXTREMES },
    { name: 'schema cookie', at: 40, width: 4, values: EXTREMES },
    { name: 'schema format number', at: 44, width: 4, values: [...EXTREMES, 3, 4, 5] },
    { name: 'default page cache size', at: 48, width: 4, values: EXTREMES },
    { name: 'largest root b-tree page (auto-vacuum)', at: 52, width: 4, values: EXTREMES },
    { name: 'text encoding', at: 56, width: 4, values: [...EXTREMES, 3, 4] },
    { name: 'user version', at: 60, width: 4, values: EXTREMES },
    { name: 'incremental vacuum', at: 64, width: 4, values: EXTREMES },
    { name: 'application id', at: 68, width: 4, values: EXTREMES },
    { name: 'reserved for expansion', at: 72, width: 4, values: [1, 2 ** 32 - 1] },
    { name: 'version-valid-for', at: 92, width: 4, values: EXTREMES },
    { name: 'SQLite version number', at: 96, width: 4, values: EXTREMES },
  ];
}

const WAL_HEADER_FIELDS: readonly Field[] = [
  { name: 'magic', at: 0, width: 4, values: [0, 1, 0x377f0682, 0x377f0683, 2 ** 32 - 1] },
  { name: 'format version', at: 4, width: 4, values: [0, 1, 3007000, 3007001, 2 ** 31 - 1, 2 ** 32 - 1] },
  { name: 'page size', at: 8, width: 4, values: [0, 1, 256, 512, 1024, 4096, 65536, 131072, 2 ** 31 - 1, 2 ** 32 - 1] },
  { name: 'checkpoint sequence', at: 12, width: 4, values: EXTREMES },
  { name: 'salt-1', at: 16, width: 4, values: EXTREMES },
  { name: 'salt-2', at: 20, width: 4, values: EXTREMES },
];

const JOURNAL_FIELDS: readonly Field[] = [
  { name: 'page count', at: 8, width: 4, values: EXTREMES },
  { name: 'nonce', at: 12, width: 4, values: EXTREMES },
  { name: 'initial database size', at: 16, width: 4, values: EXTREMES },
  { name: 'sector size', at: 20, width: 4, values: [0, 1, 512, 4096, 65536, 2 ** 31 - 1, 2 ** 32 - 1] },
  { name: 'page size', at: 24, width: 4, values: [0, 1, 512, 1024, 4096, 65536, 2 ** 31 - 1, 2 ** 32 - 1] },
];

interface FieldCase {
  readonly base: string;
  readonly what: string;
  readonly files: Files;
}

/** Every field case of one base: its database header, WAL header and frames, journal header. */
function fieldCases(baseName: string, base: Files): FieldCase[] {
  const cases: FieldCase[] = [];
  const variant = (what: string, edit: (files: Files) => void): void => {
    const files: Files = {};
    for (const name of NAMES) if (base[name] !== undefined) files[name] = base[name]!.slice();
    edit(files);
    cases.push({ base: baseName, what, files });
  };
  const db = base['app.db'];
  const wal = base['app.db-wal'];
  const journal = base['app.db-journal'];
  const pageSize = pageSizeOf(base);
  if (db !== undefined && db.length >= 100) {
    for (const field of dbHeaderFields(pageSize, Math.ceil(db.length / pageSize))) {
      for (const value of field.values) {
        variant(`app.db header ${field.name} (byte ${field.at}) = ${value}`, (files) => setField(files['app.db']!, field.at, field.width, value));
      }
    }
    variant('app.db header change counter and version-valid-for = 2^32 − 1 (the page count stays valid)', (files) => {
      setUint32(files['app.db']!, 24, 2 ** 32 - 1);
      setUint32(files['app.db']!, 92, 2 ** 32 - 1);
    });
  }
  const scan = wal === undefined ? undefined : scanWal(wal);
  if (wal !== undefined && scan !== undefined && scan.committedFrames > 0) {
    const walPs = walPageSize(wal);
    const pageOne = scan.pages.get(1);
    // The page 1 SQLite reads is the WAL's newest committed copy: its header fields, checksums recomputed.
    if (pageOne !== undefined) {
      for (const field of dbHeaderFields(walPs, scan.dbPages)) {
        for (const value of field.values) {
          variant(`WAL copy of page 1: ${field.name} (byte ${field.at}) = ${value}, checksums recomputed`, (files) => {
            setField(files['app.db-wal']!, pageOne + field.at, field.width, value);
            resealWal(files['app.db-wal']!);
          });
        }
      }
    }
    for (const field of WAL_HEADER_FIELDS) {
      for (const value of field.values) {
        variant(`WAL header ${field.name} = ${value}, checksums recomputed`, (files) => {
          const bytes = files['app.db-wal']!;
          setField(bytes, field.at, 4, value);
          // New salts in every frame too, so that the log stays valid under them.
          if (field.name.startsWith('salt')) for (const frame of walFrames(bytes, walPs)) setField(bytes, frame.offset + field.at - 8, 4, value);
          // Frames where they were written (SQLite finds them with the header's page size, if valid).
          resealWal(bytes, walPs, (getUint32(bytes, 0) & 1) === 1);
        });
        if (field.name.startsWith('salt')) {
          variant(`WAL header ${field.name} = ${value} alone (the frames keep theirs), header checksum recomputed`, (files) => {
            const bytes = files['app.db-wal']!;
            setField(bytes, field.at, 4, value);
            resealWal(bytes.subarray(0, 32));
          });
        }
      }
    }
    for (const at of [24, 28]) {
      for (const value of EXTREMES) variant(`WAL header checksum-${at === 24 ? 1 : 2} = ${value}`, (files) => setField(files['app.db-wal']!, at, 4, value));
    }
    const frames = walFrames(wal, walPs).slice(0, scan.committedFrames);
    const lastCommit = frames.at(-1)!;
    const picked = new Map([
      ['first frame', frames[0]!],
      ['middle frame', frames[Math.floor(frames.length / 2)]!],
      ['last commit frame', lastCommit],
    ]);
    for (const [which, frame] of picked) {
      const sized: Array<[string, number, readonly number[], boolean]> = [
        ['page number', 0, [0, 1, 2, 2 ** 31 - 1, 2 ** 32 - 1, scan.dbPages + 1], true],
        ['database size', 4, [0, 1, 2, 2 ** 31 - 1, 2 ** 32 - 1, scan.dbPages - 1, scan.dbPages + 1], true],
        ['salt-1', 8, EXTREMES, false],
        ['checksum-1', 16, EXTREMES, false],
        ['checksum-2', 20, EXTREMES, false],
      ];
      for (const [name, at, values, reseal] of sized) {
        for (const value of values) {
          variant(`WAL ${which} (frame ${frame.index}) ${name} = ${value}${reseal ? ', checksums recomputed' : ''}`, (files) => {
            setUint32(files['app.db-wal']!, frame.offset + at, value >>> 0);
            if (reseal) resealWal(files['app.db-wal']!, walPs);
          });
        }
      }
    }
    // Both at once: a commit of a page far past the end, as large as its page number says.
    for (const value of [2 ** 31 - 1, 2 ** 32 - 1, scan.dbPages + 2]) {
      variant(`WAL last commit frame page number = database size = ${value}, checksums recomputed`, (files) => {
        setUint32(files['app.db-wal']!, lastCommit.offset, value);
        setUint32(files['app.db-wal']!, lastCommit.offset + 4, value);
        resealWal(files['app.db-wal']!, walPs);
      });
    }
  }
  if (journal !== undefined && journal.length >= 28) {
    const live = JOURNAL_MAGIC.every((byte, i) => journal[i] === byte);
    variant(live ? 'journal magic: first byte zeroed' : 'journal magic written over the zeroed header', (files) => {
      if (live) files['app.db-journal']![0] = 0;
      else files['app.db-journal']!.set(JOURNAL_MAGIC);
    });
    variant('journal magic: last byte changed', (files) => (files['app.db-journal']![7] ^= 1));
    for (const field of JOURNAL_FIELDS) {
      for (const value of field.values) {
        variant(`journal header ${field.name} = ${value}`, (files) => setField(files['app.db-journal']!, field.at, 4, value));
        if (!live) {
          variant(`journal header ${field.name} = ${value}, the magic written`, (files) => {
            files['app.db-journal']!.set(JOURNAL_MAGIC);
            setField(files['app.db-journal']!, field.at, 4, value);
          });
        }
      }
    }
  }
  return cases;
}

/** What scripts/field-reader.ts answers for one cache: its results, or the typed error it refused the files with. */
type FieldOutcome = { results: Outcome } | { refused: { error: string; code?: string } };

/**
 * How a cache's reading of a field case compares with SQLite's: the same (or a hot journal's
 * BUSY), refused with a typed error where SQLite reads (allowed: follow SQLite or refuse), or a
 * disagreement (other rows; rows where SQLite refuses; an untyped error).
 */
function judge(sqlite: Outcome, cache: FieldOutcome, files: Files): 'same' | 'hot-journal' | 'refused' | false {
  if ('refused' in cache) {
    if (cache.refused.code === undefined) return false;
    if (cache.refused.code === 'BUSY' && hasLiveJournal(files)) return 'hot-journal';
    return sqlite.every((result) => 'error' in result) ? 'same' : 'refused';
  }
  if (cache.results.some((result) => 'error' in result && result.code === undefined)) return false;
  return agrees(sqlite, cache.results, files);
}

function describeField(outcome: FieldOutcome): string {
  return 'refused' in outcome ? `refused ${outcome.refused.code ?? '(no code)'} ${outcome.refused.error}` : describeOutcome(outcome.results);
}

/** The field reader in a process of its own (this runtime), one request at a time. */
class FieldReader {
  readonly #child: ChildProcess;
  #buffer = '';
  #stderr = '';
  #waiting: ((line: string | undefined) => void) | undefined;
  exit: string | undefined;

  constructor() {
    const [command, args] = runtimeCommand(FIELD_READER);
    this.#child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (chunk: string) => {
      this.#buffer += chunk;
      const newline = this.#buffer.indexOf('\n');
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        const waiting = this.#waiting;
        this.#waiting = undefined;
        waiting?.(line);
      }
    });
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => (this.#stderr = (this.#stderr + chunk).slice(-4000)));
    this.#child.stdin!.on('error', () => undefined);
    this.#child.on('exit', (code, signal) => {
      this.exit = `exit code ${code}, signal ${signal}; stderr: ${this.#stderr.trim().split('\n').slice(0, 6).join(' | ')}`;
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(undefined);
    });
  }

  /** The outcomes, or `undefined` if the process ended (see {@link FieldReader.exit}). */
  async read(request: unknown): Promise<{ fresh: FieldOutcome; live: FieldOutcome | null } | undefined> {
    if (this.exit !== undefined) return undefined;
    const line = new Promise<string | undefined>((resolve) => (this.#waiting = resolve));
    this.#child.stdin!.write(`${JSON.stringify(request)}\n`);
    const answer = await line;
    return answer === undefined ? undefined : (JSON.parse(answer) as { fresh: FieldOutcome; live: FieldOutcome | null });
  }

  async close(): Promise<void> {
    if (this.exit !== undefined) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin!.end();
    await exited;
  }
}

test('field extremes: header and frame fields of database, WAL and journal files at 0, 1, 2^31 − 1, 2^32 − 1 and around the page size are read as SQLite reads them, and never abort the process', { timeout: 1_800_000 }, async () => {
  const only = process.env['FUZZ_FIELDS'];
  const cases = [...bases].flatMap(([name, files]) => fieldCases(name, files)).filter((c) => only === undefined || `${c.base}: ${c.what}`.includes(only));
  // The live cache in the reader opens on the first base: one that opens.
  cases.sort((a, b) => Number(a.base === 'hot-journal') - Number(b.base === 'hot-journal'));
  const mutantDir = path.join(root, 'field-mutant');
  const liveDir = path.join(root, 'field-live');
  fs.mkdirSync(mutantDir);
  fs.mkdirSync(liveDir);
  let fieldReader = new FieldReader();
  const tally = { same: 0, sqliteRead: 0, sqliteRefused: 0, hotJournal: 0, liveSame: 0, refused: 0 };
  const failures: string[] = [];
  const refusals: string[] = [];
  const maxFailures = Number(process.env['FUZZ_MAX_FAILURES'] ?? '') || 20;
  try {
    for (const { base, what, files } of cases) {
      place(mutantDir, files);
      const asked = reader.ask({ read: mutantDir, sql: SQLS });
      const read = await fieldReader.read({ mutant: mutantDir, base: path.join(root, 'bases', base), live: liveDir, sql: SQLS });
      const sqlite = (await asked)['results'] as Outcome;
      if (read === undefined) {
        failures.push(`${base}: ${what}: the reading process ended (${fieldReader.exit})`);
        fieldReader = new FieldReader();
        if (failures.length >= maxFailures) break;
        continue;
      }
      if ('rows' in sqlite[SQLS.length - 1]!) tally.sqliteRead++;
      else tally.sqliteRefused++;
      const fresh = judge(sqlite, read.fresh, files);
      const live = read.live === null ? 'same' : judge(sqlite, read.live, files);
      if (fresh === 'hot-journal') tally.hotJournal++;
      if (fresh === 'same') tally.same++;
      if (live === 'same') tally.liveSame++;
      const report = `${base}: ${what}:\n  SQLite:      ${describeOutcome(sqlite)}\n  fresh cache: ${describeField(read.fresh)}\n  live reload: ${read.live === null ? '-' : describeField(read.live)}`;
      if (fresh === false || live === false) {
        failures.push(report);
        if (failures.length >= maxFailures) break;
      } else if (fresh === 'refused' || live === 'refused') {
        tally.refused++;
        refusals.push(report);
      }
    }
  } finally {
    await fieldReader.close();
  }
  const summary =
    `[fuzz] ${cases.length} field cases: SQLite read ${tally.sqliteRead} and refused ${tally.sqliteRefused}; ` +
    `fresh cache agreed on ${tally.same}, live reload on ${tally.liveSame}, hot journals answered BUSY ${tally.hotJournal}, ` +
    `refused with a typed error where SQLite reads ${tally.refused}; ${failures.length} disagreements`;
  console.log(summary);
  if (process.env['FUZZ_SHOW_REFUSALS'] !== undefined) console.log(refusals.join('\n'));
  assert.equal(failures.length, 0, `${summary}\n${failures.join('\n')}\nReplay one: FUZZ_FIELDS='<description>'`);
  if (only === undefined) {
    assert.ok(cases.length > 1000 && tally.sqliteRead > cases.length / 4 && tally.sqliteRefused > cases.length / 20, summary);
    // Refusing is allowed where following SQLite would mean reading a page size other than the
    // WAL's, or a commit of a page far past what the files hold (README: Known limits); a cache
    // that refuses more than that has lost its way (FUZZ_SHOW_REFUSALS=1 lists them).
    assert.ok(tally.refused <= cases.length / 50, summary);
  }
});
