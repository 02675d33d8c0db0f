/**
 * A seeded generator of SQL texts that are hard to tokenize: comments, quotes, hexadecimal and
 * exponent numbers, digit separators, Tcl-style variables, non-ASCII and control characters,
 * CTEs, RETURNING, every PRAGMA form, triggers and several statements in one text, some of them
 * hiding a statement behind a token that a careless tokenizer would read too far or not far enough.
 */
import { Rng } from './sim-fs.ts';

/** The schema every text is compiled against (also given to the Python oracle). */
export const SCHEMA = `
  CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
  CREATE INDEX t_name ON t(name);
  CREATE TABLE u(x, y);
  CREATE VIEW v AS SELECT id, name FROM t;
  INSERT INTO t VALUES (1, 'apple'), (2, 'Pear'), (3, 'plum');
  INSERT INTO u VALUES (1, x'00'), (2, NULL);
`;

const SPACES = [' ', '\n', '\t', '  ', '\r\n', '\f', ' \v', '\n\v\t', '/* c */', '/**/', '/* ; */', "/* ' */", '/*/ x */', '-- c\n', '--\n', "-- ; '\n", '\uFEFF', ' /* -- */ '];
const NUMBERS = ['1', '0', '42', '0x1F', '0xe', '0XE', '0xe0', '1e5', '1E+5', '2.5e-3', '.5', '5.', '1_000', '0x1_f', '1.5', '00', '9223372036854775807', '1e', '0x', '0xg', '1x', '1__0', '1_', '0xe--'];
const STRINGS = ["'a'", "'it''s'", "'--'", "';'", "'/*'", "''", "'é'", "'\uD800'", "'x'''", "'\\'", "'*/'", "'0xe'"];
const IDENTS = ['id', 'name', '"name"', '[name]', '`name`', 'NAME', 't.id', '"t"."id"', '"a""b"', 'é', 'end', 'begin', '"select"', 'x', 'X1', 'a$b', '_a', 'rowid'];
const PARAMS = ['?', '?', '?1', '?2', '?01', '?3', ':a', '@a', '$a', '#a', ':b', '$a(--)', ':a(x)', '@a(--)', '@a::b', '$a::', '$::a', '$a(;)', '$a(1 2)', '$(x)', '#1', '?0', ':a(--', ':', '$'];
const OPS = ['+', '-', '*', '/', '%', '||', '->', '->>', '==', '=', '<>', '!=', '<<', '>>', '<=', '>=', '<', '>', '&', '|', 'AND', 'OR', 'IS', 'IS NOT', 'LIKE', 'GLOB'];
const BLOBS = ["x'00'", "X'0aFF'", "x''", "x'0'", "x'0g'"];
const ILLEGAL = ['!', '\\', '^', '{', '}', '\x01', '\x7f', '\v', ']'];
/** Tokens that a tokenizer reading too far or too little would end inside a comment. */
const HIDERS = ['0xe--', '0xE--', '1e--', '$a(--)', ':a(--)', '@a(--)', '#a(--)', "'--'", '"--"', '[--]', '`--`', "x'--'", '0xe/*', '$a(/*)', '[/*]', "'/*'", '1.e--', '$a::b--', '/*x*/--'];

const PRAGMA_NAMES = [
  'query_only', 'case_sensitive_like', 'foreign_keys', 'cache_size', 'journal_mode', 'locking_mode', 'user_version', 'schema_version',
  'application_id', 'recursive_triggers', 'reverse_unordered_selects', 'writable_schema', 'trusted_schema', 'synchronous', 'temp_store',
  'busy_timeout', 'analysis_limit', 'automatic_index', 'secure_delete', 'max_page_count', 'mmap_size', 'page_size', 'auto_vacuum',
  'encoding', 'threads', 'short_column_names', 'full_column_names', 'legacy_alter_table', 'defer_foreign_keys', 'ignore_check_constraints',
  'optimize', 'shrink_memory', 'incremental_vacuum', 'wal_checkpoint', 'table_info', 'table_xinfo', 'index_info', 'index_list',
  'foreign_key_list', 'foreign_key_check', 'integrity_check', 'quick_check', 'table_list', 'database_list', 'data_version', 'page_count',
  'freelist_count', 'collation_list', 'function_list', 'module_list', 'pragma_list', 'compile_options', 'hard_heap_limit',
  'soft_heap_limit', 'temp_store_directory', 'nosuch',
];
const PRAGMA_VALUES = ['0', '1', '-1', 't', "'t'", 'OFF', 'ON', 'WAL', 'NORMAL', '?', "x'00'", 'main', '"t"', 't_name', '100'];
/** Values that keep the process-wide PRAGMAs usable (a heap limit of a few bytes would stop the test itself). */
const HEAP_VALUES = ['0', '-1', '1000000000', "'t'"];

export class SqlTexts {
  readonly #rng: Rng;

  constructor(seed: number) {
    this.#rng = new Rng(seed);
  }

  #pick<T>(items: readonly T[]): T {
    return this.#rng.pick(items);
  }

  #chance(p: number): boolean {
    return this.#rng.chance(p);
  }

  /** Space between two tokens: mostly one blank, sometimes a comment or odd whitespace, sometimes nothing. */
  #gap(): string {
    const r = this.#rng.float();
    if (r < 0.7) return ' ';
    if (r < 0.8) return '';
    return this.#pick(SPACES);
  }

  #join(parts: readonly string[]): string {
    let text = parts[0] ?? '';
    for (let k = 1; k < parts.length; k++) text += this.#gap() + parts[k];
    return text;
  }

  #atom(): string {
    const r = this.#rng.float();
    if (r < 0.2) return this.#pick(NUMBERS);
    if (r < 0.35) return this.#pick(STRINGS);
    if (r < 0.55) return this.#pick(IDENTS);
    if (r < 0.75) return this.#pick(PARAMS);
    if (r < 0.82) return this.#pick(BLOBS);
    if (r < 0.85) return this.#pick(ILLEGAL);
    if (r < 0.92) return this.#pick(HIDERS);
    return `(SELECT ${this.#pick(NUMBERS)})`;
  }

  #expr(depth = 0): string {
    const r = this.#rng.float();
    if (depth > 2 || r < 0.45) return this.#atom();
    if (r < 0.7) return this.#join([this.#expr(depth + 1), this.#pick(OPS), this.#expr(depth + 1)]);
    if (r < 0.78) return this.#join(['(', this.#expr(depth + 1), ')']);
    if (r < 0.85) return this.#join([this.#pick(['abs', 'length', 'coalesce', 'typeof', 'hex', 'upper', 'json_extract']), '(', this.#expr(depth + 1), ')']);
    if (r < 0.92) return this.#join(['CASE', 'WHEN', this.#expr(depth + 1), 'THEN', this.#expr(depth + 1), 'END']);
    return this.#join([this.#expr(depth + 1), 'IS', 'NULL']);
  }

  #exprs(): string {
    const parts = [this.#expr()];
    while (this.#chance(0.3)) parts.push(',', this.#expr());
    return this.#join(parts);
  }

  #where(): string {
    return this.#chance(0.5) ? this.#join(['WHERE', this.#expr()]) : '';
  }

  #returning(): string {
    return this.#chance(0.5) ? this.#join(['RETURNING', this.#pick(['*', 'id', 'name', 'id, name', '1'])]) : '';
  }

  #pragma(): string {
    const name = this.#pick(PRAGMA_NAMES);
    const value = name.endsWith('heap_limit') ? this.#pick(HEAP_VALUES) : this.#pick(PRAGMA_VALUES);
    const schema = this.#chance(0.2) ? this.#pick(['main.', 'temp.', '"main".']) : '';
    const form = this.#rng.int(3);
    const head = this.#join(['PRAGMA', schema + name]);
    if (form === 0) return head;
    return form === 1 ? this.#join([head, '=', value]) : this.#join([head, '(', value, ')']);
  }

  #pragmaFunction(): string {
    // optimize acts, observably (it analyzes: sqlite_stat1 appears).
    const name = `pragma_${this.#chance(0.3) ? 'optimize' : this.#pick(PRAGMA_NAMES)}`;
    const quoted = this.#pick([name, `"${name}"`, `[${name}]`, `\`${name}\``, `'${name}'`, name.toUpperCase()]);
    // optimize(65538) analyzes every table, which a run shows (sqlite_stat1 appears).
    const args = this.#pick(['', "('t')", '(0)', '(1)', '(?)', "('t', 'main')", '(65538)']);
    return this.#join(['SELECT', '*', 'FROM', quoted + args]);
  }

  #triggerBody(): string {
    const parts: string[] = [];
    const n = this.#rng.between(1, 3);
    for (let k = 0; k < n; k++) {
      parts.push(
        this.#pick([
          'SELECT CASE WHEN 1 THEN 2 END',
          'DELETE FROM u',
          'UPDATE u SET x = 1',
          'SELECT 1 AS end',
          "INSERT INTO u VALUES (new.id, 'end')",
          'SELECT begin FROM (SELECT 1 AS begin)',
        ]),
        ';',
      );
    }
    return this.#join(parts);
  }

  #statement(depth = 0): string {
    const r = this.#rng.float();
    if (r < 0.2) return this.#join(['SELECT', this.#exprs(), this.#chance(0.5) ? this.#join(['FROM', this.#pick(['t', 'u', 'v', '"t"', "'t'", 't AS "x"'])]) : '', this.#where()]);
    if (r < 0.25) return this.#join(['VALUES', '(', this.#exprs(), ')']);
    if (r < 0.32) return this.#join(['WITH', 'x', 'AS', '(', 'SELECT', this.#expr(), ')', this.#pick(['SELECT * FROM x', 'VALUES (1)', 'DELETE FROM t WHERE id IN x', 'UPDATE t SET name = 1', 'INSERT INTO u SELECT 1, 2 FROM x']), this.#returning()]);
    if (r < 0.37) return this.#join([this.#pick(['INSERT INTO', 'REPLACE INTO', 'INSERT OR IGNORE INTO']), 'u', 'VALUES', '(', this.#expr(), ',', this.#expr(), ')', this.#returning()]);
    if (r < 0.41) return this.#join(['UPDATE', 't', 'SET', 'name', '=', this.#expr(), this.#where(), this.#returning()]);
    if (r < 0.45) return this.#join(['DELETE', 'FROM', 't', this.#where(), this.#returning()]);
    if (r < 0.57) return this.#pragma();
    if (r < 0.62) return this.#pragmaFunction();
    if (r < 0.67) {
      return this.#pick([
        'BEGIN', 'BEGIN IMMEDIATE', 'COMMIT', 'END', 'ROLLBACK', 'SAVEPOINT s', 'RELEASE s', 'CREATE TEMP TABLE tt(x)', 'CREATE TABLE z(x)',
        'DROP TABLE u', 'ALTER TABLE u ADD COLUMN c', 'CREATE INDEX i ON u(x)', "ATTACH ':memory:' AS a2", 'DETACH a2', 'VACUUM', 'ANALYZE', 'REINDEX',
      ]);
    }
    if (r < 0.71) return this.#join(['CREATE', this.#pick(['', 'TEMP']), 'TRIGGER', this.#pick(['tr', 'begin', 'end']), 'AFTER', 'INSERT', 'ON', 't', 'BEGIN', this.#triggerBody(), 'END']);
    if (r < 0.75 && depth === 0) return this.#join([this.#pick(['EXPLAIN', 'EXPLAIN QUERY PLAN']), this.#statement(1)]);
    if (r < 0.82) {
      // A statement hidden behind a token that ends in a comment marker, as in issue 18.
      const hider = this.#pick(HIDERS);
      const payload = this.#pick([') DELETE FROM t RETURNING id', ') SELECT 1', '; PRAGMA query_only = 0', ' PRAGMA case_sensitive_like = 1', ') INSERT INTO u VALUES (1, 2) RETURNING *', "; SELECT * FROM pragma_optimize"]);
      const separator = this.#pick(['\n', ' ', '*/', '\n*/', '']);
      return `${this.#pick(['WITH x AS (SELECT ', 'SELECT ', 'SELECT (', 'VALUES ('])}${hider}${this.#pick(['', ')', ') SELECT'])}${separator}${payload}`;
    }
    if (r < 0.88) return this.#pick(['SELEC 1', 'hello world', '1', '(SELECT 1)', '"SELECT" 1', 'SELECT', 'ſELECT 1', 'select1', 'X', "x'00'", '-1', '$a', '; ;', '']);
    // Token soup.
    const soup: string[] = [];
    const n = this.#rng.between(1, 6);
    for (let k = 0; k < n; k++) soup.push(this.#chance(0.3) ? this.#pick(['SELECT', 'PRAGMA', 'FROM', 'WITH', 'AS', '(', ')', ';', 'END', 'BEGIN', 'RETURNING']) : this.#atom());
    return this.#join(soup);
  }

  /** Inserts a character that changes how the rest reads: a quote, a comment marker, a NUL… */
  #mutate(text: string): string {
    const chars = ['-', '-', '/', '*', "'", '"', '`', '[', ']', ';', '\n', '(', ')', '$', ':', '#', '?', '\0', '\v', 'e', 'x', 'é', '\uFEFF', '\uD800', '\uDC00', '\u{1F600}', '_', '.'];
    const n = this.#rng.between(1, 3);
    for (let k = 0; k < n; k++) {
      const at = this.#rng.int(text.length + 1);
      text = text.slice(0, at) + this.#pick(chars) + text.slice(at);
    }
    return text;
  }

  /** The next text: one to three statements, maybe mutated. */
  next(): string {
    const parts = [this.#statement()];
    while (parts.length < 3 && this.#chance(0.25)) parts.push(this.#statement());
    let text = this.#chance(0.1) ? this.#pick([';', ' ', '-- lead\n', '/* lead */', '\uFEFF', '\uFEFF\uFEFF', '\v', ' \v']) : '';
    text += parts.join(this.#pick([';', '; ', ';\n', ' ;', ';;', ';\uFEFF', ';\v']));
    if (this.#chance(0.2)) text += this.#pick([';', '; -- end', ';  ', ' /* end', '\0; DELETE FROM t', ' --', ' /*', '/*', ';/*', '/', '-']);
    return this.#chance(0.2) ? this.#mutate(text) : text;
  }
}
