/**
 * What a SQL text is, decided from the text alone before sql.js sees it: how many statements it
 * holds, whether it may run on a published (read-only) version, and its parameters.
 *
 * sql.js applies PRAGMA setters when a statement is *prepared* and exports neither
 * `sqlite3_stmt_readonly` nor an authorizer, so this is the only place the decision can be made.
 * Pure: no sql.js, no I/O.
 */

/**
 * How a statement may be used on a published version:
 * - `read`: reads only (SELECT, VALUES, WITH…SELECT, EXPLAIN of those, PRAGMA getters);
 * - `none`: returns no data and must not run (BEGIN, CREATE, ATTACH, INSERT without RETURNING…);
 * - `write`: must not even be prepared (PRAGMA setters, writes with RETURNING, anything unknown).
 */
export type SqlKind = 'read' | 'none' | 'write';

/** The result of {@link analyzeSql}. */
export interface SqlAnalysis {
  /** Statements in the text: 0, 1 or 2 (two or more). */
  readonly statements: number;
  readonly kind: SqlKind;
  /** Per parameter index (1-based index − 1): `null` for an anonymous `?`, else its token (`:a`, `@a`, `$a`, `?3`). */
  readonly parameters: readonly (string | null)[];
  /** How many anonymous `?` parameters there are. */
  readonly anonymous: number;
  /** Whether any parameter has a name (or a number, `?3`). */
  readonly named: boolean;
}

const wordSet = <T extends string>(words: string): ReadonlySet<T> => new Set(words.split(/\s+/).filter(Boolean) as T[]);

/** Statements that never return data (better-sqlite3: "This statement does not return data"). */
const NO_DATA = wordSet(
  'BEGIN COMMIT END ROLLBACK SAVEPOINT RELEASE CREATE DROP ALTER ATTACH DETACH VACUUM ANALYZE REINDEX',
);

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

const TOKEN = { word: 0, ident: 1, string: 2, number: 3, param: 4, punct: 5 } as const;
type TokenKind = (typeof TOKEN)[keyof typeof TOKEN];

interface Token {
  readonly kind: TokenKind;
  /** Upper-cased for words, the token itself otherwise. */
  readonly text: string;
}

const WORD = TOKEN.word;
const PARAM = TOKEN.param;
const PUNCT = TOKEN.punct;

function isNameStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code > 127;
}

function isNameChar(code: number): boolean {
  return isNameStart(code) || (code >= 48 && code <= 57) || code === 36;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The end of a quoted run starting at `start` (a doubled quote stays inside). */
function skipQuoted(sql: string, start: number, close: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === close) {
      if (close !== ']' && sql[i + 1] === close) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return i;
}

/** SQLite's tokens, without whitespace and comments; statements split at top-level `;` tokens. */
function tokenize(sql: string): Token[][] {
  const statements: Token[][] = [];
  let current: Token[] = [];
  // Inside CREATE TRIGGER … BEGIN … END, semicolons end the trigger's own statements.
  let triggerDepth = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const code = sql.charCodeAt(i);
    const c = sql[i]!;
    if (code === 32 || code === 9 || code === 10 || code === 13 || code === 12) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i + 2);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c === "'") {
      const end = skipQuoted(sql, i, "'");
      current.push({ kind: TOKEN.string, text: sql.slice(i, end) });
      i = end;
    } else if (c === '"' || c === '`' || c === '[') {
      const end = skipQuoted(sql, i, c === '[' ? ']' : c);
      current.push({ kind: TOKEN.ident, text: sql.slice(i, end) });
      i = end;
    } else if (isDigit(code) || (c === '.' && isDigit(sql.charCodeAt(i + 1)))) {
      let end = i + 1;
      while (end < n) {
        const d = sql.charCodeAt(end);
        if (isNameChar(d) || d === 46) end++;
        else if ((d === 43 || d === 45) && (sql[end - 1] === 'e' || sql[end - 1] === 'E')) end++;
        else break;
      }
      current.push({ kind: TOKEN.number, text: sql.slice(i, end) });
      i = end;
    } else if (c === '?') {
      let end = i + 1;
      while (end < n && isDigit(sql.charCodeAt(end))) end++;
      current.push({ kind: PARAM, text: sql.slice(i, end) });
      i = end;
    } else if ((c === ':' || c === '@' || c === '$') && isNameChar(sql.charCodeAt(i + 1))) {
      let end = i + 1;
      while (end < n && isNameChar(sql.charCodeAt(end))) end++;
      current.push({ kind: PARAM, text: sql.slice(i, end) });
      i = end;
    } else if (isNameStart(code)) {
      let end = i + 1;
      while (end < n && isNameChar(sql.charCodeAt(end))) end++;
      const word = sql.slice(i, end).toUpperCase();
      current.push({ kind: WORD, text: word });
      if (triggerDepth > 0 || isTrigger(current)) {
        if (word === 'BEGIN' || word === 'CASE') triggerDepth++;
        else if (word === 'END' && triggerDepth > 0) triggerDepth--;
      }
      i = end;
    } else if (c === ';' && triggerDepth === 0) {
      if (current.length > 0) statements.push(current);
      current = [];
      i++;
    } else {
      current.push({ kind: PUNCT, text: c });
      i++;
    }
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

/** Whether the statement so far is `CREATE [TEMP] TRIGGER`. */
function isTrigger(tokens: readonly Token[]): boolean {
  if (tokens[0]?.text !== 'CREATE') return false;
  for (let k = 1; k < tokens.length && k <= 3; k++) if (tokens[k]!.text === 'TRIGGER') return true;
  return false;
}

function isWord(token: Token | undefined, word: string): boolean {
  return token !== undefined && token.kind === WORD && token.text === word;
}

/** The kind of the statement starting at `start`. */
function classify(tokens: readonly Token[], start: number): SqlKind {
  const first = tokens[start];
  if (first === undefined || first.kind !== WORD) return 'write';
  const word = first.text;
  if (word === 'SELECT' || word === 'VALUES') return pragmaFunctionsRead(tokens, start) ? 'read' : 'write';
  if (word === 'WITH') return pragmaFunctionsRead(tokens, start) ? classifyWith(tokens, start + 1) : 'write';
  if (word === 'EXPLAIN') {
    let next = start + 1;
    if (isWord(tokens[next], 'QUERY') && isWord(tokens[next + 1], 'PLAN')) next += 2;
    return classify(tokens, next) === 'read' ? 'read' : 'write';
  }
  if (word === 'PRAGMA') return classifyPragma(tokens, start + 1);
  if (NO_DATA.has(word)) return 'none';
  if (WRITES.has(word)) return hasReturning(tokens, start) ? 'write' : 'none';
  return 'write';
}

/**
 * Whether every table-valued `pragma_x(…)` in the statement is one whose PRAGMA only reports:
 * SQLite runs `PRAGMA x = arg` for it, which for other PRAGMAs would act.
 */
function pragmaFunctionsRead(tokens: readonly Token[], start: number): boolean {
  for (let k = start; k < tokens.length; k++) {
    const token = tokens[k]!;
    // A quoted name ("pragma_x", [pragma_x], `pragma_x`) names the same table.
    const text = token.kind === WORD ? token.text : token.kind === TOKEN.ident ? token.text.slice(1, -1).toUpperCase() : '';
    if (text.startsWith('PRAGMA_')) {
      const name = text.slice(7).toLowerCase();
      if (!PRAGMA_GETTERS.has(name) && !PRAGMA_QUERIES.has(name)) return false;
    }
  }
  return true;
}

/** The index of the first word outside parentheses, from `start` on, that `wanted` accepts, or -1. */
function topLevelWord(tokens: readonly Token[], start: number, wanted: (word: string) => boolean): number {
  let depth = 0;
  for (let k = start; k < tokens.length; k++) {
    const token = tokens[k]!;
    if (token.kind === PUNCT) {
      if (token.text === '(') depth++;
      else if (token.text === ')') depth--;
    } else if (depth === 0 && token.kind === WORD && wanted(token.text)) {
      return k;
    }
  }
  return -1;
}

/** After `WITH`, the first statement keyword outside parentheses decides. */
function classifyWith(tokens: readonly Token[], start: number): SqlKind {
  const k = topLevelWord(tokens, start, (word) => word === 'SELECT' || word === 'VALUES' || WRITES.has(word));
  if (k === -1) return 'write';
  const word = tokens[k]!.text;
  if (word === 'SELECT' || word === 'VALUES') return 'read';
  return hasReturning(tokens, k) ? 'write' : 'none';
}

function hasReturning(tokens: readonly Token[], start: number): boolean {
  return topLevelWord(tokens, start, (word) => word === 'RETURNING') !== -1;
}

/** `PRAGMA [schema.]name` for a getter, or `PRAGMA [schema.]name(arg)` / `= arg` for a query PRAGMA. */
function classifyPragma(tokens: readonly Token[], start: number): SqlKind {
  let k = start;
  if (tokens[k + 1]?.kind === PUNCT && tokens[k + 1]!.text === '.') k += 2;
  const nameToken = tokens[k];
  if (nameToken === undefined || nameToken.kind !== WORD) return 'write';
  const name = nameToken.text.toLowerCase();
  const rest = tokens.length - (k + 1);
  if (rest === 0) return PRAGMA_GETTERS.has(name) ? 'read' : 'write';
  if (!PRAGMA_QUERIES.has(name)) return 'write';
  const open = tokens[k + 1]!;
  // `PRAGMA x(arg)` (4 tokens with the parentheses) or `PRAGMA x = arg`: one plain argument.
  if (open.kind === PUNCT && open.text === '(' && rest === 3 && tokens[k + 3]!.text === ')') return plainArgument(tokens[k + 2]!);
  if (open.kind === PUNCT && open.text === '=' && rest === 2) return plainArgument(tokens[k + 2]!);
  return 'write';
}

function plainArgument(token: Token): SqlKind {
  return token.kind === PARAM || token.kind === PUNCT ? 'write' : 'read';
}

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
      if (!Number.isSafeInteger(index) || index < 1 || index > 32766) continue; // SQLite rejects it at prepare
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
 * holds, whether it may run on a published version, and its parameters.
 *
 * @example
 * ```ts
 * analyzeSql('PRAGMA query_only = 0').kind; // 'write'
 * analyzeSql('SELECT * FROM t WHERE id = ?').parameters; // [null]
 * ```
 */
export function analyzeSql(sql: string): SqlAnalysis {
  let analysis = analyses.get(sql);
  if (analysis !== undefined) return analysis;
  const statements = tokenize(sql);
  const first = statements[0] ?? [];
  const { parameters, anonymous } = parametersOf(first);
  analysis = {
    statements: Math.min(statements.length, 2),
    kind: statements.length === 0 ? 'none' : classify(first, 0),
    parameters,
    anonymous,
    named: parameters.some((p) => p !== null),
  };
  if (analyses.size >= MAX_ANALYSES) analyses.clear();
  analyses.set(sql, analysis);
  return analysis;
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
