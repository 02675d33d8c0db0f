/**
 * The SQL guard (src/sql-guard.ts) against SQLite itself, on generated texts (support/sql-texts.ts,
 * fixed seeds). Two oracles:
 *
 *   - sql.js, the engine dbcache runs (its SQLite version): a private instance (a process-wide
 *     PRAGMA applied there cannot disturb other tests), on throwaway databases. It tells whether
 *     the first statement compiles, how many statements the text holds (compiled one after another,
 *     each from the previous one's tail), the parameter count (binding past the last parameter fails)
 *     and where each named parameter is, and what compiling and running a statement changes (every
 *     setting PRAGMA, the schema, the TEMP schema, attached databases, LIKE's case, the rows, the
 *     change counter, an open transaction), and which opcodes EXPLAIN lists.
 *   - the system SQLite through Python's own libsqlite3 (support/sql-oracle.py, one child process
 *     for all texts): exact parameter names, the statement count, and the authorizer's actions
 *     while the first statement compiles. It is an older SQLite (no digit separators): texts it
 *     cannot compile are compared with sql.js alone.
 *
 * What must hold: the guard's statement count and parameters equal SQLite's; what it calls
 * `invalid` SQLite refuses to compile; what it lets compile on a published version changes
 * nothing when compiled; what it lets run (`read`) changes nothing when run and compiles to a
 * program that writes nothing. SQL_GUARD_TEXTS=<n> sets the number of texts per seed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDbCacheError, openDbCache, type DbCache } from '../src/index.ts';
import { analyzeSql, sqlTokens, type SqlAnalysis } from '../src/sql-guard.ts';
import { loadBetterSqlite3 } from './support/better-sqlite3.ts';
import { sqlite, tempDir } from './support/fixtures.ts';
import { freshSqlJs } from './support/fresh-sql-js.ts';
import { SCHEMA, SqlTexts } from './support/sql-texts.ts';

const ORACLE = fileURLToPath(new URL('./support/sql-oracle.py', import.meta.url));
const SEEDS = [18, 1018, 2018];
const PER_SEED = Number(process.env['SQL_GUARD_TEXTS'] ?? '') > 0 ? Number(process.env['SQL_GUARD_TEXTS']) : 800;

/** sql.js's low-level exports (`_sqlite3_bind_int`, `stringToNewUTF8`…) are untyped. */
type SqlJs = any;
type Db = any;

/** What the system SQLite said (see support/sql-oracle.py). */
type PythonCompiled = { count: 1 | 2; params: (string | null)[]; actions: [number, string | null, string | null][]; readonly: boolean; columns: number };
type PythonResult = { error: string } | { count: 0 } | PythonCompiled;

/** What sql.js said about one text. */
interface Observed {
  /** The first statement does not compile: SQLite's message. */
  error?: string;
  /** Statements: 0, 1, 2 (two or more). */
  count?: number;
  /** Where the parameters differ from the guard's, else ''. */
  params?: string;
  columns?: number;
  /** What compiling the first statement changed, else ''. */
  compileChanged?: string;
  /** What running it changed, else ''. */
  runChanged?: string;
  /** Opcodes of EXPLAIN that write. */
  explainWrites?: string[];
}

/** Authorizer actions that only read (SQLITE_READ, SQLITE_SELECT, SQLITE_FUNCTION, SQLITE_RECURSIVE). */
const READ_ACTIONS = new Set([20, 21, 31, 33]);
const SQLITE_PRAGMA = 19;
const SQLITE_UPDATE = 23;
/** PRAGMAs whose argument names what to report on. */
const REPORTING_PRAGMAS = new Set(['table_info', 'table_xinfo', 'index_info', 'index_xinfo', 'index_list', 'foreign_key_list', 'foreign_key_check', 'integrity_check', 'quick_check', 'table_list']);
/** Opcodes of a program that writes, opens a transaction, attaches or changes the schema or a setting. */
const WRITE_OPCODES = new Set([
  'OpenWrite', 'Insert', 'Delete', 'IdxInsert', 'IdxDelete', 'VUpdate', 'VCreate', 'VDestroy', 'Destroy', 'Clear', 'CreateBtree', 'ParseSchema',
  'DropTable', 'DropIndex', 'DropTrigger', 'AutoCommit', 'Savepoint', 'Vacuum', 'IncrVacuum', 'SetCookie', 'SqlExec',
]);

/** Settings and state a statement could change, read from one connection. */
class Fingerprint {
  readonly #sql: string;

  constructor(sqlJs: SqlJs) {
    const db = new sqlJs.Database();
    const names: string[] = db.exec('PRAGMA pragma_list')[0].values.map((row: unknown[]) => String(row[0]));
    db.close();
    // Getters of settings and facts; not those that act, need an argument, or list what was used so far.
    const skip = new Set([
      'optimize', 'shrink_memory', 'incremental_vacuum', 'wal_checkpoint', 'case_sensitive_like', 'module_list', 'function_list', 'pragma_list',
      'compile_options', 'collation_list', 'data_version', 'stats', ...REPORTING_PRAGMAS,
    ]);
    const getters = names.filter((name) => !skip.has(name));
    this.#sql = [
      'SELECT * FROM t ORDER BY id',
      'SELECT * FROM u ORDER BY rowid',
      'SELECT type, name, sql FROM sqlite_schema ORDER BY name',
      'SELECT type, name, sql FROM sqlite_temp_schema ORDER BY name',
      "SELECT 'a' LIKE 'A', total_changes()",
      'PRAGMA database_list',
      'PRAGMA table_list',
      ...getters.map((name) => `PRAGMA ${name}`),
    ].join(';\n');
  }

  of(db: Db): string {
    let state: string;
    try {
      state = JSON.stringify(db.exec(this.#sql));
    } catch (error) {
      state = `fails: ${String(error)}`;
    }
    // A transaction left open: BEGIN fails inside one.
    try {
      db.exec('BEGIN');
      db.exec('ROLLBACK');
    } catch (error) {
      state += ` | in a transaction: ${String(error)}`;
    }
    return state;
  }
}

/** The first difference between two fingerprints, or ''. */
function difference(before: string, after: string): string {
  if (before === after) return '';
  let k = 0;
  while (before[k] === after[k]) k++;
  return `…${after.slice(Math.max(0, k - 60), k + 60)}…`;
}

/** sql.js as an oracle: a private module, a database to compile on and one to observe. */
class SqlJsOracle {
  readonly #sqlJs: SqlJs;
  readonly #image: Uint8Array;
  readonly #fingerprint: Fingerprint;
  #compileDb: Db;
  #observeDb: Db;
  #baseline: string;
  #pointerKey: string | undefined;

  constructor(sqlJs: SqlJs) {
    this.#sqlJs = sqlJs;
    const db = new sqlJs.Database();
    db.exec(SCHEMA);
    this.#image = db.export();
    db.close();
    this.#fingerprint = new Fingerprint(sqlJs);
    this.#compileDb = this.#open();
    this.#observeDb = this.#open();
    this.#baseline = this.#fingerprint.of(this.#observeDb);
  }

  #open(): Db {
    return new this.#sqlJs.Database(this.#image);
  }

  /** Undoes the process-wide PRAGMAs a text may have set. */
  #resetProcess(db: Db): void {
    db.exec("PRAGMA hard_heap_limit = 0; PRAGMA soft_heap_limit = 0; PRAGMA temp_store_directory = ''");
  }

  /** The statement's pointer inside sql.js (a minified property): the one `sqlite3_sql` recognises. */
  #pointer(statement: any): number {
    this.#pointerKey ??= Object.keys(statement).find(
      (key) => typeof statement[key] === 'number' && statement[key] > 0 && this.#sqlJs.UTF8ToString(this.#sqlJs._sqlite3_sql(statement[key])) === statement.getSQL(),
    );
    return statement[this.#pointerKey!];
  }

  /** Where SQLite's parameters differ from the guard's: the count (binding past the last one fails), and each name's index. */
  #params(statement: any, analysis: SqlAnalysis): string {
    const pointer = this.#pointer(statement);
    const n = analysis.parameters.length;
    const bind = (index: number): number => this.#sqlJs._sqlite3_bind_int(pointer, index, 0);
    const SQLITE_RANGE = 25;
    if ((n > 0 && bind(n) !== 0) || bind(n + 1) !== SQLITE_RANGE) {
      let count = 0;
      while (count < 40000 && bind(count + 1) === 0) count++;
      return `SQLite has ${count} parameters, the guard ${n}`;
    }
    for (let index = 0; index < n; index++) {
      const name = analysis.parameters[index];
      if (name === null || name === undefined) continue;
      const text = this.#sqlJs.stringToNewUTF8(name);
      const found = this.#sqlJs._sqlite3_bind_parameter_index(pointer, text);
      this.#sqlJs._free(text);
      if (found !== index + 1) return `${name} is parameter ${found} in SQLite, ${index + 1} for the guard`;
    }
    return '';
  }

  observe(text: string, analysis: SqlAnalysis): Observed {
    const observed: Observed = {};
    // Compiling: whether it compiles, its columns and parameters, then how many statements there are.
    const db = this.#compileDb;
    let statement: any;
    try {
      statement = db.prepare(text);
    } catch (error) {
      observed.error = String(error instanceof Error ? error.message : error);
      if (observed.error === 'Nothing to prepare') {
        delete observed.error;
        observed.count = 0;
      }
    }
    if (statement !== undefined) {
      observed.columns = statement.getColumnNames().length;
      observed.params = this.#params(statement, analysis);
      const sql: string = statement.getSQL();
      statement.free();
      let count = 0;
      try {
        for (const each of db.iterateStatements(text)) {
          each.free();
          if (++count === 2) break;
        }
      } catch {
        count++; // a statement SQLite cannot compile is still a statement
      }
      observed.count = Math.min(count, 2);
      if (analysis.kind === 'read' && !/^\s*explain/i.test(sql)) {
        try {
          const program = db.exec(`EXPLAIN ${sql}`)[0];
          const opcodes: unknown[][] = program?.values ?? [];
          observed.explainWrites = opcodes
            // Expire with P1 = 0 expires every statement (a schema or setting changed), with 1 only this one (every
            // PRAGMA's); JournalMode with P3 = -1 only reports the mode.
            .filter(
              (row) =>
                WRITE_OPCODES.has(String(row[1])) ||
                (row[1] === 'Transaction' && row[3] !== 0) ||
                (row[1] === 'Expire' && row[2] === 0) ||
                (row[1] === 'JournalMode' && row[4] !== -1),
            )
            .map((row) => `${String(row[1])} ${String(row[2])} ${String(row[3])}`);
        } catch {
          // `sql` starts with something EXPLAIN cannot follow (`;`, a comment that hides it): no check.
        }
      }
    }
    this.#resetProcess(db);
    if (/pragma/i.test(text)) {
      db.close();
      this.#compileDb = this.#open();
    }
    // Observing: what compiling (and, for reads, running) the first statement changes.
    if (analysis.compilable && analysis.statements > 0) {
      const target = this.#observeDb;
      try {
        const compiled = target.prepare(text);
        observed.compileChanged = difference(this.#baseline, this.#fingerprint.of(target));
        if (analysis.kind === 'read') {
          try {
            for (let rows = 0; rows < 1000 && compiled.step(); rows++);
          } catch {
            // an error while running (a bad argument, say) is SQLite's to report
          }
        }
        compiled.free();
        observed.runChanged = difference(this.#baseline, this.#fingerprint.of(target));
      } catch {
        observed.compileChanged = difference(this.#baseline, this.#fingerprint.of(target));
      }
      this.#resetProcess(target);
      if (observed.compileChanged !== '' || observed.runChanged) {
        target.close();
        this.#observeDb = this.#open();
      }
    }
    return observed;
  }
}

function runPython(texts: readonly string[]): { version: string; results: PythonResult[] } {
  const output = execFileSync('python3', [ORACLE], { input: JSON.stringify({ schema: SCHEMA, texts }), maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(output.toString('utf8')) as { version: string; results: PythonResult[] };
}

const show = (text: string): string => JSON.stringify(text);

/**
 * Whether the system SQLite's authorizer saw only reads while the first statement compiled: reads,
 * PRAGMA getters and reporting PRAGMAs, and (declaring a table-valued PRAGMA function's table)
 * SQLITE_UPDATE on sqlite_master's columns; and, but for PRAGMA statements, sqlite3_stmt_readonly.
 */
function readsOnly(system: PythonCompiled): boolean {
  const pragmaTable = system.actions.some(([code, table]) => code === 20 && /^pragma_/i.test(String(table)));
  const pragmaStatement = system.actions.some(([code]) => code === SQLITE_PRAGMA);
  return (
    (pragmaStatement || system.readonly) &&
    system.actions.every(
      ([code, name, argument]) =>
        READ_ACTIONS.has(code) ||
        (code === SQLITE_PRAGMA && (argument === null || REPORTING_PRAGMAS.has(String(name).toLowerCase()))) ||
        (code === SQLITE_UPDATE && pragmaTable && name === 'sqlite_master'),
    )
  );
}

describe('the SQL guard against SQLite, on generated texts', () => {
  const texts: string[] = [];
  const analyses: SqlAnalysis[] = [];
  const observed: Observed[] = [];
  let python: { version: string; results: PythonResult[] };
  let sqliteVersion = '';

  before(async () => {
    for (const seed of SEEDS) {
      const generator = new SqlTexts(seed);
      for (let k = 0; k < PER_SEED; k++) texts.push(generator.next());
    }
    const sqlJs = await freshSqlJs();
    const version = new (sqlJs as SqlJs).Database();
    sqliteVersion = String(version.exec('SELECT sqlite_version()')[0].values[0][0]);
    version.close();
    const oracle = new SqlJsOracle(sqlJs);
    for (const text of texts) {
      const analysis = analyzeSql(text);
      analyses.push(analysis);
      observed.push(oracle.observe(text, analysis));
    }
    python = runPython(texts);
  });

  test('the texts cover what they must (each kind, errors, several statements, parameters)', (t) => {
    const kinds: Record<string, number> = {};
    for (const analysis of analyses) kinds[analysis.kind] = (kinds[analysis.kind] ?? 0) + 1;
    const compiled = observed.filter((o) => o.error === undefined && o.count !== 0).length;
    const several = analyses.filter((a) => a.statements === 2).length;
    const withParams = analyses.filter((a) => a.parameters.length > 0).length;
    t.diagnostic(`${texts.length} texts (sql.js ${sqliteVersion}, system SQLite ${python.version}): ${JSON.stringify(kinds)}; SQLite compiled ${compiled}; ${several} hold several statements; ${withParams} have parameters`);
    for (const kind of ['read', 'none', 'write', 'invalid']) assert.ok((kinds[kind] ?? 0) >= texts.length / 50, `only ${kinds[kind] ?? 0} texts are ${kind}`);
    assert.ok(compiled >= texts.length / 5, `SQLite compiled only ${compiled} texts`);
    assert.ok(several >= texts.length / 20 && withParams >= texts.length / 10);
  });

  test('statements and parameters are SQLite’s (sql.js and the system SQLite)', () => {
    const failures: string[] = [];
    texts.forEach((text, k) => {
      const analysis = analyses[k]!;
      const seen = observed[k]!;
      if (seen.count !== undefined && seen.count !== analysis.statements) failures.push(`${show(text)}: ${analysis.statements} statements for the guard, ${seen.count} in sql.js`);
      if (seen.params) failures.push(`${show(text)}: ${seen.params}`);
      const system = python.results[k]!;
      if ('params' in system && seen.error === undefined) {
        if (system.count !== analysis.statements) failures.push(`${show(text)}: ${analysis.statements} statements for the guard, ${system.count} in SQLite ${python.version}`);
        if (JSON.stringify(system.params) !== JSON.stringify(analysis.parameters)) {
          failures.push(`${show(text)}: parameters ${JSON.stringify(analysis.parameters)} for the guard, ${JSON.stringify(system.params)} in SQLite ${python.version}`);
        }
      }
    });
    assert.deepEqual(failures.slice(0, 15), [], `${failures.length} differences`);
  });

  test('SQLite fails at a token the guard also sees: the first unrecognized one, or one its parser stops near', () => {
    const failures: string[] = [];
    texts.forEach((text, k) => {
      const error = observed[k]!.error;
      if (error === undefined) return;
      // sql.js decodes SQLite's message from UTF-8: a lone surrogate's three bytes come back as three U+FFFD.
      const tokens = sqlTokens(text).map((token) => ({ ...token, text: token.text.replace(/[\uD800-\uDFFF]/gu, '\uFFFD\uFFFD\uFFFD') }));
      const unrecognized = /^unrecognized token: "([\s\S]*)"$/.exec(error);
      const near = /^near "([\s\S]*)": syntax error$/.exec(error);
      if (unrecognized !== null) {
        // The first illegal token, or a number whose digit separators SQLite's parser refuses (`1_`, `1__0`).
        const at = tokens.findIndex((token) => token.text === unrecognized[1] && (token.kind === 'illegal' || (token.kind === 'number' && token.text.includes('_'))));
        const firstIllegal = tokens.findIndex((token) => token.kind === 'illegal');
        if (at === -1 || (firstIllegal !== -1 && firstIllegal < at)) {
          failures.push(`${show(text)}: SQLite stops at the unrecognized token ${show(unrecognized[1]!)}, the guard's first is ${show(tokens[firstIllegal]?.text ?? 'none')}`);
        }
      } else if (near !== null && !tokens.some((token) => token.text === near[1])) {
        failures.push(`${show(text)}: SQLite stops near ${show(near[1]!)}, which is no token of the guard's`);
      }
    });
    assert.deepEqual(failures.slice(0, 15), [], `${failures.length} differences`);
  });

  test('what the guard calls invalid, SQLite refuses to compile, and compiling it changes nothing', () => {
    const failures: string[] = [];
    texts.forEach((text, k) => {
      if (analyses[k]!.kind !== 'invalid') return;
      const seen = observed[k]!;
      if (seen.error === undefined) failures.push(`${show(text)}: invalid for the guard, SQLite compiles it`);
      if (seen.compileChanged) failures.push(`${show(text)}: compiling it changed ${seen.compileChanged}`);
      const system = python.results[k]!;
      if (!('error' in system)) failures.push(`${show(text)}: invalid for the guard, SQLite ${python.version} compiles it`);
    });
    assert.deepEqual(failures.slice(0, 15), [], `${failures.length} differences`);
  });

  test('what the guard lets compile changes nothing; what it lets run reads only', () => {
    const failures: string[] = [];
    let refusedReads = 0;
    texts.forEach((text, k) => {
      const analysis = analyses[k]!;
      const seen = observed[k]!;
      const system = python.results[k]!;
      if (analysis.compilable && seen.compileChanged) failures.push(`${show(text)}: compiling it changed ${seen.compileChanged}`);
      if (analysis.kind === 'none' && seen.columns !== undefined && seen.columns > 0) failures.push(`${show(text)}: 'none' for the guard, but it returns ${seen.columns} columns`);
      if (analysis.reader !== undefined && seen.columns !== undefined && analysis.reader !== seen.columns > 0) failures.push(`${show(text)}: reader ${analysis.reader} for the guard, ${seen.columns} columns`);
      const readOnlyForSystem = 'actions' in system && readsOnly(system);
      if (analysis.kind !== 'read') {
        if (readOnlyForSystem && !/pragma/i.test(text)) refusedReads++;
        return;
      }
      if (seen.runChanged) failures.push(`${show(text)}: running it changed ${seen.runChanged}`);
      if (seen.explainWrites !== undefined && seen.explainWrites.length > 0) failures.push(`${show(text)}: its program writes (${seen.explainWrites.join(', ')})`);
      if ('actions' in system && seen.error === undefined && !readOnlyForSystem) failures.push(`${show(text)}: the authorizer saw ${JSON.stringify(system.actions)}`);
    });
    // Refused though SQLite would only read (e.g. EXPLAIN of a write): the guard may refuse more, never less.
    assert.ok(refusedReads < texts.length / 10, `${refusedReads} reads refused`);
    assert.deepEqual(failures.slice(0, 15), [], `${failures.length} differences`);
  });
});

/** `columns()` as names, or the error it throws (its name, or its code for a DbCacheError). */
type Columns = string[] | 'TypeError' | 'READ_ONLY';
interface Described {
  readonly: boolean;
  reader: boolean;
  columns: Columns;
}
const EXPLAIN = ['addr', 'opcode', 'p1', 'p2', 'p3', 'p4', 'p5', 'comment'];
const described = (readonly: boolean, reader: boolean, columns: Columns): Described => ({ readonly, reader, columns });

/**
 * Statements as better-sqlite3 12.6.2 describes them on a read-only connection (checked against it
 * wherever it loads), and where dbcache says otherwise, what it says and why. better-sqlite3's
 * `readonly` is `sqlite3_stmt_readonly` (the statement does not write the database file); dbcache's
 * is "may run on a published version", so transactions, ATTACH and settings are not read-only.
 */
const DESCRIBED: readonly { sql: string; better: Described; dbcache?: Described; why?: string }[] = [
  { sql: 'SELECT * FROM t', better: described(true, true, ['id', 'name']) },
  { sql: 'VALUES (1, 2)', better: described(true, true, ['column1', 'column2']) },
  { sql: 'EXPLAIN SELECT 1', better: described(true, true, EXPLAIN) },
  { sql: 'EXPLAIN QUERY PLAN SELECT * FROM t', better: described(true, true, ['id', 'parent', 'notused', 'detail']) },
  { sql: 'PRAGMA table_info(t)', better: described(true, true, ['cid', 'name', 'type', 'notnull', 'dflt_value', 'pk']) },
  { sql: "SELECT * FROM pragma_table_info('t')", better: described(true, true, ['cid', 'name', 'type', 'notnull', 'dflt_value', 'pk']) },
  { sql: 'PRAGMA query_only', better: described(true, true, ['query_only']) },
  { sql: 'PRAGMA journal_mode', better: described(false, true, ['journal_mode']), dbcache: described(true, true, ['journal_mode']), why: 'the getter only reports; it may run' },
  { sql: 'DELETE FROM t RETURNING *', better: described(false, true, ['id', 'name']) },
  { sql: "INSERT INTO t VALUES (9, 'x') RETURNING id", better: described(false, true, ['id']) },
  { sql: "UPDATE t SET name = 'y' RETURNING id, name", better: described(false, true, ['id', 'name']) },
  { sql: 'WITH x AS (SELECT 1) DELETE FROM t RETURNING id', better: described(false, true, ['id']) },
  { sql: 'EXPLAIN DELETE FROM t', better: described(false, true, EXPLAIN) },
  { sql: 'DELETE FROM t', better: described(false, false, 'TypeError') },
  { sql: 'CREATE TABLE z(x)', better: described(false, false, 'TypeError') },
  { sql: 'CREATE TEMP TABLE z(x)', better: described(false, false, 'TypeError') },
  { sql: 'VACUUM', better: described(false, false, 'TypeError') },
  ...['BEGIN', 'COMMIT', 'SAVEPOINT s', "ATTACH ':memory:' AS a", 'DETACH a'].map((sql) => ({
    sql,
    better: described(true, false, 'TypeError'),
    dbcache: described(false, false, 'TypeError'),
    why: 'a transaction or an attachment on a shared version is refused',
  })),
  { sql: 'SELECT * FROM pragma_optimize', better: described(true, true, ['optimize']), dbcache: described(false, true, ['optimize']), why: 'it runs PRAGMA optimize' },
  // PRAGMAs that act when compiled: dbcache never compiles them on a published version, so their
  // columns are unknown (READ_ONLY); whether they return rows is known from SQLite's pragma table.
  ...(
    [
      ['PRAGMA journal_mode = wal', false, true, ['journal_mode']],
      ['PRAGMA busy_timeout = 5', true, true, ['timeout']],
      ['PRAGMA cache_size = 10', true, false, 'TypeError'],
      ['PRAGMA query_only = 0', true, false, 'TypeError'],
      ['PRAGMA case_sensitive_like = 1', true, false, 'TypeError'],
      ['PRAGMA nosuch = 1', true, false, 'TypeError'],
      ['PRAGMA optimize', true, true, ['optimize']],
      ['EXPLAIN PRAGMA query_only = 0', true, true, EXPLAIN],
    ] as const
  ).map(([sql, readonly, reader, columns]) => ({
    sql,
    better: described(readonly, reader, columns === 'TypeError' ? columns : [...columns]),
    dbcache: described(false, reader, 'READ_ONLY'),
    why: 'a setting of a shared version: not compiled there',
  })),
];

function describeWith(prepare: () => { readonly: boolean; reader: boolean; columns(): unknown[] }): Described {
  const statement = prepare();
  let columns: Columns;
  try {
    columns = statement.columns().map((column) => (typeof column === 'string' ? column : (column as { name: string }).name));
  } catch (error) {
    columns = isDbCacheError(error) ? (error.code as 'READ_ONLY') : ((error as Error).name as 'TypeError');
  }
  return { readonly: statement.readonly, reader: statement.reader, columns };
}

describe('statements described as better-sqlite3 describes them', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  let cache: DbCache;
  const Better = loadBetterSqlite3();

  before(async () => {
    sqlite(file, "db.executescript(\"CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a');\")");
    cache = await openDbCache(file, { watch: false });
  });
  after(async () => {
    await cache.close();
    cleanup();
  });

  test('readonly, reader and columns() of each statement', () => {
    const before = cache.values('SELECT * FROM t');
    for (const row of DESCRIBED) {
      assert.deepEqual(describeWith(() => cache.prepare(row.sql)), row.dbcache ?? row.better, row.sql);
    }
    // Nothing prepared or described ran.
    assert.deepEqual(cache.values('SELECT * FROM t'), before);
    assert.deepEqual(cache.get('PRAGMA query_only'), { query_only: 1 });
    assert.deepEqual(cache.get("SELECT 'a' LIKE 'A' AS ci"), { ci: 1 });
  });

  test('the better-sqlite3 column is what better-sqlite3 says', { skip: typeof Better === 'string' ? Better : false }, () => {
    const Database = Better as Exclude<typeof Better, string>;
    for (const row of DESCRIBED) {
      // A connection per statement: compiling a PRAGMA setter applies it.
      const db = new Database(file, { readonly: true });
      try {
        assert.deepEqual(describeWith(() => db.prepare(row.sql)), row.better, row.sql);
      } finally {
        db.close();
      }
    }
  });
});
