/**
 * What a SQL text is, decided from the text alone before sql.js sees it: how many statements it
 * holds, whether it may run on a published (read-only) version, whether compiling it is harmless,
 * and its parameters.
 *
 * sql.js applies PRAGMA setters when a statement is *prepared* and exports neither
 * `sqlite3_stmt_readonly` nor an authorizer, so this is the only place the decision can be made.
 * The tokenizer follows SQLite's own (`sqlite3GetToken` in `tokenize.c`, SQLite 3.54 as shipped in
 * sql.js 1.16) rule for rule, over the UTF-16 text: sql.js hands SQLite the UTF-8 encoding, in which
 * every code unit from U+0080 up becomes bytes from 0x80 up, which SQLite takes as identifier
 * characters, and U+FEFF becomes the byte-order mark SQLite skips as space at the start of a token.
 * SQLite reads the text as a C string: it ends at the first NUL. Pure: no sql.js, no I/O.
 */

/**
 * How a statement may be used on a published version:
 * - `read`: reads only (SELECT, VALUES, WITH…SELECT, EXPLAIN of those, PRAGMA getters); it may run;
 * - `none`: returns no data and must not run (BEGIN, CREATE, ATTACH, INSERT without RETURNING…);
 * - `write`: must not run (PRAGMA setters, writes with RETURNING, reads of a PRAGMA function that acts);
 * - `invalid`: not a statement: its first token is not a word that begins one, so SQLite rejects it
 *   at that token (a syntax error), before anything in it can take effect.
 */
export type SqlKind = 'read' | 'none' | 'write' | 'invalid';

/** The result of {@link analyzeSql}. */
export interface SqlAnalysis {
  /** Statements in the text: 0, 1 or 2 (two or more). */
  readonly statements: number;
  /** What the first statement is. */
  readonly kind: SqlKind;
  /**
   * Whether SQLite may compile the first statement on a published version: compiling applies
   * nothing. False only for PRAGMA statements other than getters (a setter acts when compiled).
   */
  readonly compilable: boolean;
  /**
   * Whether the first statement returns rows, when that is known without compiling it (PRAGMA
   * statements that may not be compiled); `undefined` when compiling tells.
   */
  readonly reader: boolean | undefined;
  /** Per parameter index (1-based index − 1): `null` for an anonymous `?`, else its token (`:a`, `@a`, `$a`, `#a`, `?3`). */
  readonly parameters: readonly (string | null)[];
  /** How many anonymous `?` parameters there are. */
  readonly anonymous: number;
  /** Whether any parameter has a name (or a number, `?3`). */
  readonly named: boolean;
}

const wordSet = (words: string): ReadonlySet<string> => new Set(words.split(/\s+/).filter(Boolean));

/** Every keyword a statement can begin with in SQLite's grammar (`cmd` in `parse.y`). */
const STATEMENT_WORDS = wordSet(`
  ALTER ANALYZE ATTACH BEGIN COMMIT CREATE DELETE DETACH DROP END EXPLAIN INSERT PRAGMA REINDEX
  RELEASE REPLACE ROLLBACK SAVEPOINT SELECT UPDATE VACUUM VALUES WITH`);

/** Statements that never return data (better-sqlite3: "This statement does not return data"). */
const NO_DATA = wordSet('BEGIN COMMIT END ROLLBACK SAVEPOINT RELEASE CREATE DROP ALTER ATTACH DETACH VACUUM ANALYZE REINDEX');

/** Write statements: `none` without RETURNING, `write` with it. */
const WRITES = wordSet('INSERT UPDATE DELETE REPLACE');

/**
 * PRAGMAs whose plain getter form (`PRAGMA x`) only reports. Deliberately an allowlist: a getter
 * such as `PRAGMA optimize`, `incremental_vacuum`, `wal_checkpoint` or `shrink_memory` acts.
 */
const PRAGMA_GETTERS = wordSet(`
  analysis_limit application_id auto_vacuum automatic_index busy_timeout cache_size cache_spill
  cell_size_check checkpoint_fullfsync collation_list compile_options count_changes data_version
  database_list default_cache_size defer_foreign_keys empty_result_callbacks encoding
  foreign_key_check foreign_keys freelist_count full_column_names fullfsync function_list
  hard_heap_limit ignore_check_constraints integrity_check journal_mode journal_size_limit
  legacy_alter_table legacy_file_format locking_mode max_page_count mmap_size module_list page_count
  page_size pragma_list query_only quick_check read_uncommitted recursive_triggers
  reverse_unordered_selects schema_version secure_delete short_column_names soft_heap_limit
  synchronous table_list temp_store threads trusted_schema user_version wal_autocheckpoint
  writable_schema`);

/**
 * PRAGMAs whose argument names what to report on (`PRAGMA table_info(t)`), not a new setting.
 * For every other PRAGMA, `PRAGMA x(arg)` is a setter just like `PRAGMA x = arg`.
 */
const PRAGMA_QUERIES = wordSet(`
  table_info table_xinfo index_info index_xinfo index_list foreign_key_list foreign_key_check
  integrity_check quick_check table_list`);

/**
 * What `reader` is for PRAGMA statements that are never compiled on a published version, from
 * SQLite's pragma table (`pragma.h`: no `NoColumns`/`NoColumns1` flag): getters outside the
 * allowlist that return a row, and the PRAGMAs whose setter form (`= x` or `(x)`) returns one.
 */
const PRAGMA_OTHER_GETTER_ROWS = wordSet('optimize wal_checkpoint temp_store_directory table_info table_xinfo index_info index_xinfo index_list foreign_key_list');
const PRAGMA_SETTER_ROWS = wordSet(`
  analysis_limit busy_timeout collation_list compile_options data_version database_list
  foreign_key_list freelist_count function_list hard_heap_limit index_info index_list index_xinfo
  integrity_check journal_mode journal_size_limit locking_mode max_page_count mmap_size module_list
  optimize page_count pragma_list quick_check secure_delete soft_heap_limit table_info table_list
  table_xinfo threads wal_autocheckpoint wal_checkpoint`);

/** Token kinds: SQLite's, as far as the guard needs them (whitespace and comments are dropped). */
const WORD = 0; // an identifier or keyword as written without quotes; `text` is upper-cased (ASCII only, as SQLite compares)
const QUOTED = 1; // "x", `x` or [x]: always an identifier
const STRING = 2; // 'x'
const NUMBER = 3;
const BLOB = 4; // x'00'
const PARAM = 5; // ?, ?N, :a, @a, $a, #a (with Tcl's `::` and `(…)` suffixes)
const OP = 6; // punctuation and operators, `;` included
const ILLEGAL = 7; // TK_ILLEGAL: SQLite stops with "unrecognized token" here
type TokenKind = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

interface Token {
  readonly kind: TokenKind;
  /** Upper-cased (ASCII) for words, the token as written otherwise. */
  readonly text: string;
  /** Where it starts in the text. */
  readonly start: number;
}

/** sqlite3Isspace: space, \t, \n, \v, \f, \r. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** IdChar: letters, digits, `_`, `$` and every byte from 0x80 up (every non-ASCII code unit here). */
function isIdChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 36 || c >= 128;
}

/** Letters and `_`: the characters a keyword is made of. */
function isKeywordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}

/** Upper-cases ASCII letters only: SQLite's keyword and PRAGMA-name comparisons ignore case for ASCII alone. */
function asciiUpper(text: string): string {
  return /[^\x00-\x7f]/.test(text) ? text.replace(/[a-z]+/g, (s) => s.toUpperCase()) : text.toUpperCase();
}

function asciiLower(text: string): string {
  return /[^\x00-\x7f]/.test(text) ? text.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : text.toLowerCase();
}

/**
 * The end of the run of digits (and `_` separators, which make SQLite's TK_QNUMBER) from `i`,
 * hexadecimal ones when `hex`.
 */
function skipDigits(sql: string, i: number, n: number, hex: boolean): number {
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (!(hex ? isHexDigit(c) : isDigit(c)) && c !== 95) break;
    i++;
  }
  return i;
}

/** SQLite's tokens (`sqlite3GetToken`), without whitespace and comments, up to the first NUL. */
function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  const nul = sql.indexOf('\0');
  const n = nul === -1 ? sql.length : nul;
  const at = (k: number): number => (k < n ? sql.charCodeAt(k) : 0);
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    let end = i + 1;
    let kind: TokenKind = OP;
    if (c === 32 || c === 9 || c === 10 || c === 12 || c === 13) {
      // A run of space starts only at these; \v continues one but cannot start it.
      while (end < n && isSpace(sql.charCodeAt(end))) end++;
      i = end;
      continue;
    } else if (c === 0xfeff) {
      i = end; // UTF-8's byte-order mark, EF BB BF, at the start of a token
      continue;
    } else if (c === 45 /* - */) {
      if (at(i + 1) === 45) {
        const newline = sql.indexOf('\n', i + 2);
        i = newline === -1 || newline > n ? n : newline;
        continue;
      }
      if (at(i + 1) === 62 /* > */) end = at(i + 2) === 62 ? i + 3 : i + 2;
    } else if (c === 47 /* / */) {
      if (at(i + 1) === 42 /* * */ && i + 2 < n) {
        const close = sql.indexOf('*/', i + 2);
        i = close === -1 || close + 2 > n ? n : close + 2;
        continue;
      }
    } else if (c === 61 /* = */) {
      if (at(i + 1) === 61) end++;
    } else if (c === 60 /* < */) {
      const d = at(i + 1);
      if (d === 61 || d === 62 || d === 60) end++;
    } else if (c === 62 /* > */) {
      const d = at(i + 1);
      if (d === 61 || d === 62) end++;
    } else if (c === 33 /* ! */) {
      if (at(i + 1) === 61) end++;
      else kind = ILLEGAL;
    } else if (c === 124 /* | */) {
      if (at(i + 1) === 124) end++;
    } else if (c === 39 /* ' */ || c === 34 /* " */ || c === 96 /* ` */) {
      // A doubled delimiter stays inside; an unterminated one runs to the end and is illegal.
      kind = c === 39 ? STRING : QUOTED;
      for (;;) {
        if (end >= n) {
          kind = ILLEGAL;
          break;
        }
        if (sql.charCodeAt(end) === c) {
          if (at(end + 1) === c) end += 2;
          else {
            end++;
            break;
          }
        } else {
          end++;
        }
      }
    } else if (c === 91 /* [ */) {
      const close = sql.indexOf(']', i + 1);
      if (close === -1 || close >= n) {
        end = n;
        kind = ILLEGAL;
      } else {
        end = close + 1;
        kind = QUOTED;
      }
    } else if (isDigit(c) || (c === 46 /* . */ && isDigit(at(i + 1)))) {
      kind = NUMBER;
      if (c === 48 && (at(i + 1) === 120 || at(i + 1) === 88) && isHexDigit(at(i + 2))) {
        end = skipDigits(sql, i + 3, n, true);
      } else {
        end = skipDigits(sql, i, n, false);
        if (at(end) === 46) end = skipDigits(sql, end + 1, n, false);
        const e = at(end);
        if ((e === 101 || e === 69) && (isDigit(at(end + 1)) || ((at(end + 1) === 43 || at(end + 1) === 45) && isDigit(at(end + 2))))) {
          end = skipDigits(sql, end + 2, n, false);
        }
      }
      // A number run straight into an identifier character is one illegal token (`1x`, `0xg`).
      while (end < n && isIdChar(sql.charCodeAt(end))) {
        kind = ILLEGAL;
        end++;
      }
    } else if (c === 63 /* ? */) {
      kind = PARAM;
      while (end < n && isDigit(sql.charCodeAt(end))) end++;
    } else if (c === 36 /* $ */ || c === 64 /* @ */ || c === 35 /* # */ || c === 58 /* : */) {
      kind = PARAM;
      let named = 0;
      while (end < n) {
        const d = sql.charCodeAt(end);
        if (isIdChar(d)) {
          named++;
          end++;
        } else if (d === 40 /* ( */ && named > 0) {
          // Tcl's array element: `$a(anything up to a space or ')')`.
          end++;
          while (end < n && !isSpace(sql.charCodeAt(end)) && sql.charCodeAt(end) !== 41) end++;
          if (end < n && sql.charCodeAt(end) === 41) end++;
          else kind = ILLEGAL;
          break;
        } else if (d === 58 && at(end + 1) === 58) {
          end += 2; // Tcl's namespace separator `::`
        } else {
          break;
        }
      }
      if (named === 0) kind = ILLEGAL;
    } else if ((c === 120 || c === 88) && at(i + 1) === 39 /* x' */) {
      kind = BLOB;
      end = i + 2;
      while (end < n && isHexDigit(sql.charCodeAt(end))) end++;
      if (at(end) !== 39 || (end - i) % 2 === 1) {
        kind = ILLEGAL;
        while (end < n && sql.charCodeAt(end) !== 39) end++;
      }
      if (end < n) end++;
    } else if (isKeywordChar(c) || c >= 128) {
      kind = WORD;
      while (end < n && isIdChar(sql.charCodeAt(end))) end++;
    } else if (c === 46 || c === 40 || c === 41 || c === 59 || c === 43 || c === 42 || c === 37 || c === 44 || c === 38 || c === 126) {
      // . ( ) ; + * % , & ~ : one character each
    } else {
      kind = ILLEGAL; // control characters (\v included), \ ^ ] { } and DEL
    }
    const text = sql.slice(i, end);
    tokens.push({ kind, text: kind === WORD ? asciiUpper(text) : text, start: i });
    i = end;
  }
  return tokens;
}

function isWord(token: Token | undefined, word: string): boolean {
  return token !== undefined && token.kind === WORD && token.text === word;
}

function isOp(token: Token | undefined, op: string): boolean {
  return token !== undefined && token.kind === OP && token.text === op;
}

/** Where the statement proper starts: after `EXPLAIN [QUERY PLAN]`. */
function afterExplain(tokens: readonly Token[]): number {
  if (!isWord(tokens[0], 'EXPLAIN')) return 0;
  return isWord(tokens[1], 'QUERY') && isWord(tokens[2], 'PLAN') ? 3 : 1;
}

/** Whether the statement begun in `tokens` is `[EXPLAIN …] CREATE [TEMP] TRIGGER`. */
function isTrigger(tokens: readonly Token[]): boolean {
  const k = afterExplain(tokens);
  if (!isWord(tokens[k], 'CREATE')) return false;
  return isWord(tokens[k + 1], 'TRIGGER') || ((isWord(tokens[k + 1], 'TEMP') || isWord(tokens[k + 1], 'TEMPORARY')) && isWord(tokens[k + 2], 'TRIGGER'));
}

/**
 * The statements, split where SQLite's parser ends one: at a `;`, except inside the body of
 * CREATE TRIGGER, which ends at the first `; END` (its statements each end with `;`, and END
 * cannot begin one of them). Empty statements are dropped, as `prepare` skips them.
 */
function splitStatements(tokens: readonly Token[]): Token[][] {
  const statements: Token[][] = [];
  let current: Token[] = [];
  let trigger = false;
  for (const token of tokens) {
    if (isOp(token, ';')) {
      const k = current.length;
      if (!trigger || (isWord(current[k - 1], 'END') && isOp(current[k - 2], ';'))) {
        if (k > 0) statements.push(current);
        current = [];
        trigger = false;
        continue;
      }
    }
    current.push(token);
    if (current.length <= 6 && !trigger) trigger = isTrigger(current);
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

interface Verdict {
  readonly kind: SqlKind;
  readonly compilable: boolean;
  readonly reader: boolean | undefined;
}

const verdict = (kind: SqlKind, compilable = true, reader?: boolean): Verdict => ({ kind, compilable, reader });

/** What the statement `tokens` is. */
function classify(tokens: readonly Token[]): Verdict {
  const start = afterExplain(tokens);
  const first = tokens[start];
  if (first === undefined || first.kind !== WORD || !STATEMENT_WORDS.has(first.text) || first.text === 'EXPLAIN') return verdict('invalid');
  const inner = classifyStatement(tokens, start);
  if (start === 0 || inner.kind === 'read') return inner;
  // EXPLAIN lists the program without running it; only EXPLAIN of a read is let through.
  return verdict('write', inner.compilable, inner.compilable ? undefined : true);
}

function classifyStatement(tokens: readonly Token[], start: number): Verdict {
  const word = tokens[start]!.text;
  if (word === 'SELECT' || word === 'VALUES') return verdict(pragmaFunctionsRead(tokens, start) ? 'read' : 'write');
  if (word === 'WITH') return pragmaFunctionsRead(tokens, start) ? classifyWith(tokens, start + 1) : verdict('write');
  if (word === 'PRAGMA') return classifyPragma(tokens, start + 1);
  if (NO_DATA.has(word)) return verdict('none');
  return verdict(hasReturning(tokens, start) ? 'write' : 'none');
}

/** The name a word, a quoted identifier or a string names, without its quotes. */
function nameOf(token: Token): string | undefined {
  if (token.kind === WORD) return token.text;
  if (token.kind !== QUOTED && token.kind !== STRING) return undefined;
  const open = token.text[0]!;
  const close = open === '[' ? ']' : open;
  const inner = token.text.slice(1, -1);
  return open === '[' ? inner : inner.split(close + close).join(close);
}

/**
 * Whether every table-valued `pragma_x(…)` in the statement is one whose PRAGMA only reports:
 * SQLite runs `PRAGMA x = arg` for it, which for other PRAGMAs would act. SQLite also takes a
 * quoted identifier or a string (`FROM 'pragma_x'`) as a table name.
 */
function pragmaFunctionsRead(tokens: readonly Token[], start: number): boolean {
  for (let k = start; k < tokens.length; k++) {
    const name = nameOf(tokens[k]!);
    if (name === undefined || name.length < 7 || asciiUpper(name.slice(0, 7)) !== 'PRAGMA_') continue;
    const pragma = asciiLower(name.slice(7));
    // A string that cannot name a PRAGMA (SQLite's names are letters and `_`) is only a string.
    if (tokens[k]!.kind === STRING && !/^[a-z_]+$/.test(pragma)) continue;
    if (!PRAGMA_GETTERS.has(pragma) && !PRAGMA_QUERIES.has(pragma)) return false;
  }
  return true;
}

/** The index of the first word outside parentheses, from `start` on, that `wanted` accepts, or -1. */
function topLevelWord(tokens: readonly Token[], start: number, wanted: (word: string) => boolean): number {
  let depth = 0;
  for (let k = start; k < tokens.length; k++) {
    const token = tokens[k]!;
    if (token.kind === OP) {
      if (token.text === '(') depth++;
      else if (token.text === ')') depth--;
    } else if (depth === 0 && token.kind === WORD && wanted(token.text)) {
      return k;
    }
  }
  return -1;
}

/** After `WITH`, the first statement keyword outside parentheses decides (the CTEs are all in parentheses). */
function classifyWith(tokens: readonly Token[], start: number): Verdict {
  const k = topLevelWord(tokens, start, (word) => word === 'SELECT' || word === 'VALUES' || WRITES.has(word));
  if (k === -1) return verdict('write');
  const word = tokens[k]!.text;
  if (word === 'SELECT' || word === 'VALUES') return verdict('read');
  return verdict(hasReturning(tokens, k) ? 'write' : 'none');
}

function hasReturning(tokens: readonly Token[], start: number): boolean {
  return topLevelWord(tokens, start, (word) => word === 'RETURNING') !== -1;
}

/** `PRAGMA [schema.]name` for a getter, or `PRAGMA [schema.]name(arg)` / `= arg` for a query PRAGMA. */
function classifyPragma(tokens: readonly Token[], start: number): Verdict {
  let k = start;
  if (isOp(tokens[k + 1], '.')) k += 2;
  const nameToken = tokens[k];
  if (nameToken === undefined || nameToken.kind !== WORD) return verdict('write', false, false);
  const name = asciiLower(nameToken.text);
  const rest = tokens.length - (k + 1);
  if (rest === 0) return PRAGMA_GETTERS.has(name) ? verdict('read') : verdict('write', false, PRAGMA_OTHER_GETTER_ROWS.has(name));
  const setter = verdict('write', false, PRAGMA_SETTER_ROWS.has(name));
  if (!PRAGMA_QUERIES.has(name)) return setter;
  const open = tokens[k + 1]!;
  // `PRAGMA x(arg)` (4 tokens with the parentheses) or `PRAGMA x = arg`: one plain argument.
  if (isOp(open, '(') && rest === 3 && isOp(tokens[k + 3], ')')) return plainArgument(tokens[k + 2]!) ? verdict('read') : setter;
  if (isOp(open, '=') && rest === 2) return plainArgument(tokens[k + 2]!) ? verdict('read') : setter;
  return setter;
}

function plainArgument(token: Token): boolean {
  return token.kind === WORD || token.kind === QUOTED || token.kind === STRING || token.kind === NUMBER;
}

/** The most parameters a statement can have: `SQLITE_MAX_VARIABLE_NUMBER`, 32766 by default since SQLite 3.32 (sql.js keeps it). */
export const MAX_PARAMETERS = 32766;

/** Parameter indexes as SQLite numbers them: `?` takes the next, `?N` is N, a name keeps its first index. */
function parametersOf(tokens: readonly Token[]): { parameters: (string | null)[]; anonymous: number } {
  const parameters: (string | null)[] = [];
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== PARAM) continue;
    const text = token.text;
    if (text === '?') {
      parameters.push(null);
    } else if (text[0] === '?') {
      const index = Number(text.slice(1));
      if (!Number.isSafeInteger(index) || index < 1 || index > MAX_PARAMETERS) continue; // SQLite rejects it at prepare
      while (parameters.length < index) parameters.push(null);
      // A slot keeps the first name SQLite saw for it (`:a, ?1` is `:a`).
      parameters[index - 1] ??= text;
    } else if (!seen.has(text)) {
      parameters.push(text);
      seen.add(text);
    }
  }
  // Slots below a `?N` that nothing names are nameless in SQLite too: they take positional values.
  let anonymous = 0;
  for (const parameter of parameters) if (parameter === null) anonymous++;
  return { parameters, anonymous };
}

const analyses = new Map<string, SqlAnalysis>();
const MAX_ANALYSES = 2000;

/**
 * Tokenizes `sql` once (results are kept per text, bounded) and tells how many statements it
 * holds, what the first one is, and its parameters.
 *
 * @example
 * ```ts
 * analyzeSql('PRAGMA query_only = 0').kind; // 'write'
 * analyzeSql('SELEC 1').kind; // 'invalid'
 * analyzeSql('SELECT * FROM t WHERE id = ?').parameters; // [null]
 * ```
 */
export function analyzeSql(sql: string): SqlAnalysis {
  let analysis = analyses.get(sql);
  if (analysis !== undefined) return analysis;
  const statements = splitStatements(tokenize(sql));
  const first = statements[0] ?? [];
  const { parameters, anonymous } = parametersOf(first);
  const { kind, compilable, reader } = statements.length === 0 ? verdict('none') : classify(first);
  analysis = {
    statements: Math.min(statements.length, 2),
    kind,
    compilable,
    reader,
    parameters,
    anonymous,
    named: parameters.some((p) => p !== null),
  };
  if (analyses.size >= MAX_ANALYSES) analyses.clear();
  analyses.set(sql, analysis);
  return analysis;
}

/**
 * @internal The tokens SQLite reads in `sql`, as written (whitespace and comments left out): those
 * SQLite's tokenizer calls illegal, numbers, and the rest. For tests that compare with SQLite's errors.
 */
export function sqlTokens(sql: string): { readonly text: string; readonly kind: 'illegal' | 'number' | 'other' }[] {
  return tokenize(sql).map((token) => ({
    // A word's text is upper-cased; the upper-casing keeps its length.
    text: token.kind === WORD ? sql.slice(token.start, token.start + token.text.length) : token.text,
    kind: token.kind === ILLEGAL ? 'illegal' : token.kind === NUMBER ? 'number' : 'other',
  }));
}

/**
 * Throws better-sqlite3's `RangeError` unless `sql` holds exactly one statement.
 *
 * @example
 * ```ts
 * assertOneStatement(analyzeSql('SELECT 1; DELETE FROM t')); // RangeError
 * ```
 */
export function assertOneStatement(analysis: SqlAnalysis): void {
  if (analysis.statements === 1) return;
  throw new RangeError(
    analysis.statements === 0 ? 'The supplied SQL string contains no statements' : 'The supplied SQL string contains more than one statement',
  );
}

/**
 * PRAGMA settings the `onReload` overlay may change: each changes only how its own version
 * answers (LIKE, foreign keys, triggers, the planner) or the version's own header fields.
 * Everything else that takes an argument is refused there: settings of the sql.js engine every
 * cache in the process shares (`hard_heap_limit`, `soft_heap_limit`, `temp_store_directory`,
 * `threads`), of how the version is stored or locked (`journal_mode`, `locking_mode`,
 * `mmap_size`, `page_size`, `cache_size`: dbcache sets these), and `query_only` and
 * `writable_schema`, which only undo dbcache's guarantees.
 */
const OVERLAY_PRAGMAS = wordSet(`
  analysis_limit application_id automatic_index case_sensitive_like defer_foreign_keys foreign_keys
  ignore_check_constraints legacy_alter_table optimize recursive_triggers reverse_unordered_selects
  trusted_schema user_version`);

/** PRAGMAs that set something every cache in the process shares. */
const PROCESS_WIDE_PRAGMAS = wordSet('hard_heap_limit soft_heap_limit temp_store_directory data_store_directory threads');

/** Why the overlay may not run the statement `tokens`, or `undefined`. */
function overlayVerdict(tokens: readonly Token[]): string | undefined {
  // EXPLAIN compiles the statement, and a PRAGMA setter acts when compiled: judged as the statement.
  const k = afterExplain(tokens);
  const first = tokens[k];
  if (isWord(first, 'ATTACH')) {
    return 'ATTACH: the attached file would stay in the sql.js engine\'s file system, which every cache in the process shares, until the process ends';
  }
  if (isWord(first, 'VACUUM') && topLevelWord(tokens, k + 1, (word) => word === 'INTO') !== -1) {
    return 'VACUUM INTO: it writes a file into the sql.js engine\'s file system, which every cache in the process shares';
  }
  if (!isWord(first, 'PRAGMA')) return undefined;
  let n = k + 1;
  if (isOp(tokens[n + 1], '.')) n += 2;
  const nameToken = tokens[n];
  // A PRAGMA whose name is not a word is SQLite's to reject.
  if (nameToken === undefined || nameToken.kind !== WORD) return undefined;
  const name = asciiLower(nameToken.text);
  if (tokens.length === n + 1 || OVERLAY_PRAGMAS.has(name) || PRAGMA_QUERIES.has(name)) return undefined;
  return PROCESS_WIDE_PRAGMAS.has(name)
    ? `PRAGMA ${name} with a value: it changes the sql.js engine that every cache in the process shares, for good`
    : `PRAGMA ${name} with a value: only settings that change how this version answers may be set here (${[...OVERLAY_PRAGMAS].join(', ')})`;
}

/**
 * Why the `onReload` overlay may not run `sql`, or `undefined` when it may: every statement of the
 * text is checked before any runs. The overlay may create and drop tables, indexes, views and
 * triggers, write rows, `ANALYZE`, run transactions and read; it may not `ATTACH` or `VACUUM INTO`
 * (both put files into the file system of the sql.js engine every cache shares) or set a PRAGMA
 * other than the few that change only how its version answers (see `OVERLAY_PRAGMAS`). PRAGMA
 * getters are allowed. Table-valued PRAGMA functions (`pragma_x(…)`) take arguments only for
 * PRAGMAs that report, so they never set anything.
 *
 * @example
 * ```ts
 * overlayRefusal('CREATE INDEX i ON t(a); ANALYZE'); // undefined
 * overlayRefusal('PRAGMA hard_heap_limit = 100000'); // 'PRAGMA hard_heap_limit with a value: …'
 * ```
 */
export function overlayRefusal(sql: string): string | undefined {
  for (const statement of splitStatements(tokenize(sql))) {
    const reason = overlayVerdict(statement);
    if (reason !== undefined) return reason;
  }
  return undefined;
}
