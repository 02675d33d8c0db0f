/**
 * Whether a read's result depends on nothing but the database and its parameters, decided from
 * the SQL's tokens: what the result memo may remember. Conservative by design: a function that is
 * not known to be deterministic, a date or time function with anything but literal arguments, a
 * text this walker cannot split with certainty, PRAGMA and EXPLAIN all say "no". Pure: no sql.js.
 */

/**
 * SQLite's built-in functions whose result depends only on their arguments (and, for
 * aggregates and window functions, the rows they see), as sql.js 1.16 builds them.
 */
const DETERMINISTIC = new Set(
  `abs char coalesce concat concat_ws format glob hex if ifnull iif instr length like likelihood likely lower ltrim
  max min nullif octet_length printf quote replace round rtrim sign soundex substr substring trim typeof unhex
  unicode unistr unistr_quote unlikely upper zeroblob sqlite_version sqlite_source_id sqlite_compileoption_get
  sqlite_compileoption_used
  avg count group_concat string_agg sum total
  row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
  acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi pow power
  radians sin sinh sqrt tan tanh trunc
  json jsonb json_array jsonb_array json_array_insert jsonb_array_insert json_array_length json_error_position
  json_extract jsonb_extract json_insert jsonb_insert json_object jsonb_object json_patch jsonb_patch json_pretty
  json_quote json_remove jsonb_remove json_replace jsonb_replace json_set jsonb_set json_type json_valid
  json_group_array jsonb_group_array json_group_object jsonb_group_object json_each json_tree`.split(/\s+/),
);

/** Date and time functions: deterministic only when no argument can mean "now" (see {@link literalTimes}). */
const DATE_TIME = new Map<string, number>([
  // The least number of arguments that leaves no time value to default to now.
  ['date', 1],
  ['time', 1],
  ['datetime', 1],
  ['julianday', 1],
  ['unixepoch', 1],
  ['strftime', 2],
  ['timediff', 2],
]);

/** Keywords that read the clock without parentheses. */
const CLOCK_WORDS = new Set(['CURRENT_TIME', 'CURRENT_DATE', 'CURRENT_TIMESTAMP']);

/** Keywords that may stand right before `(` without calling a function. */
const BEFORE_PARENTHESIS = new Set(
  `ALL AND AS BETWEEN BY CASE CAST DISTINCT ELSE EXISTS FILTER FROM GLOB GROUPS HAVING IN IS JOIN LIKE LIMIT
  MATERIALIZED NOT OFFSET ON OR OVER RANGE ROWS SELECT THEN USING VALUES WHEN WHERE ESCAPE`.split(/\s+/),
);

/** Statements never remembered: settings (some process-wide) and query plans. */
const NEVER = new Set(['PRAGMA', 'EXPLAIN']);

const WORD = 0;
const NAME = 1;
const STRING = 2;
const NUMBER = 3;
const OTHER = 4;
const PUNCT = 5;

interface Token {
  readonly kind: number;
  /** WORD: upper-cased; NAME: lower-cased, unquoted; STRING: its contents; PUNCT: the character. */
  readonly text: string;
}

function isIdStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code > 127;
}

function isIdChar(code: number): boolean {
  return isIdStart(code) || (code >= 48 && code <= 57) || code === 36;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The end of a quoted run starting at `start` (the opening quote), or -1 when it never closes. */
function closing(sql: string, start: number, quote: string, doubled: boolean): number {
  let i = start + 1;
  for (;;) {
    const end = sql.indexOf(quote, i);
    if (end < 0) return -1;
    if (doubled && sql[end + 1] === quote) {
      i = end + 2;
      continue;
    }
    return end;
  }
}

/**
 * The tokens of `sql`, or `undefined` where this walker could disagree with SQLite's tokenizer
 * (an unterminated quote, a Tcl-style variable): the caller then memoises nothing.
 */
function tokenize(sql: string): Token[] | undefined {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c <= 32) {
      i++;
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === 39) {
      const end = closing(sql, i, "'", true);
      if (end < 0) return undefined;
      tokens.push({ kind: STRING, text: sql.slice(i + 1, end).replaceAll("''", "'") });
      i = end + 1;
    } else if (c === 34 || c === 96) {
      const quote = sql[i]!;
      const end = closing(sql, i, quote, true);
      if (end < 0) return undefined;
      tokens.push({ kind: NAME, text: sql.slice(i + 1, end).replaceAll(quote + quote, quote).toLowerCase() });
      i = end + 1;
    } else if (c === 91) {
      const end = sql.indexOf(']', i + 1);
      if (end < 0) return undefined;
      tokens.push({ kind: NAME, text: sql.slice(i + 1, end).toLowerCase() });
      i = end + 1;
    } else if ((c === 120 || c === 88) && sql.charCodeAt(i + 1) === 39) {
      const end = closing(sql, i + 1, "'", false);
      if (end < 0) return undefined;
      tokens.push({ kind: OTHER, text: '' });
      i = end + 1;
    } else if (isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) {
      // Greedy: what SQLite would split differently here is a syntax error there.
      const hex = c === 48 && (sql.charCodeAt(i + 1) | 32) === 120;
      let j = i + 1;
      for (;;) {
        const d = sql.charCodeAt(j);
        if (isIdChar(d) || d === 46) j++;
        else if (!hex && (d === 43 || d === 45) && (sql.charCodeAt(j - 1) | 32) === 101 && isDigit(sql.charCodeAt(j + 1))) j += 2;
        else break;
      }
      tokens.push({ kind: NUMBER, text: sql.slice(i, j) });
      i = j;
    } else if (c === 63) {
      let j = i + 1;
      while (isDigit(sql.charCodeAt(j))) j++;
      tokens.push({ kind: OTHER, text: '' });
      i = j;
    } else if (c === 58 || c === 64 || c === 36 || c === 35) {
      let j = i + 1;
      for (;;) {
        const d = sql.charCodeAt(j);
        if (isIdChar(d)) j++;
        else if (d === 58 && sql.charCodeAt(j + 1) === 58) j += 2;
        else if (d === 40) return undefined;
        else break;
      }
      tokens.push({ kind: OTHER, text: '' });
      i = j;
    } else if (isIdStart(c)) {
      let j = i + 1;
      while (j < n && isIdChar(sql.charCodeAt(j))) j++;
      tokens.push({ kind: WORD, text: sql.slice(i, j).toUpperCase() });
      i = j;
    } else {
      tokens.push({ kind: PUNCT, text: sql[i]! });
      i++;
    }
  }
  return tokens;
}

function isPunct(token: Token | undefined, text: string): boolean {
  return token !== undefined && token.kind === PUNCT && token.text === text;
}

function isWord(token: Token | undefined, text: string): boolean {
  return token !== undefined && token.kind === WORD && token.text === text;
}

/** The index of the `)` that closes the `(` at `open`, or -1. */
function matching(tokens: readonly Token[], open: number): number {
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (isPunct(tokens[i], '(')) depth++;
    else if (isPunct(tokens[i], ')') && --depth === 0) return i;
  }
  return -1;
}

/** A time value or modifier that reads the clock or the time zone. */
function readsClock(text: string): boolean {
  const lower = text.toLowerCase();
  return lower.includes('now') || lower.includes('local') || lower.includes('utc');
}

/**
 * Whether the call whose `(` is at `open` has at least `least` arguments, each a number (maybe
 * signed) or a string that names no clock: then the date function cannot read the time.
 */
function literalTimes(tokens: readonly Token[], open: number, least: number): boolean {
  let count = 0;
  let i = open + 1;
  for (;;) {
    if (isPunct(tokens[i], '+') || isPunct(tokens[i], '-')) i++;
    const token = tokens[i];
    if (token === undefined) return false;
    if (token.kind === STRING ? readsClock(token.text) : token.kind !== NUMBER) return false;
    count++;
    i++;
    if (isPunct(tokens[i], ')')) return count >= least;
    if (!isPunct(tokens[i], ',')) return false;
    i++;
  }
}

/**
 * Whether the name at `at`, followed by `(`, is a common table expression's column list
 * (`WITH x(a, b) AS (…)`) rather than a call.
 */
function isColumnList(tokens: readonly Token[], at: number): boolean {
  const before = tokens[at - 1];
  if (!(isWord(before, 'WITH') || isWord(before, 'RECURSIVE') || isPunct(before, ','))) return false;
  const close = matching(tokens, at + 1);
  if (close < 0) return false;
  for (let i = at + 2; i < close; i++) {
    const token = tokens[i]!;
    if (token.kind !== WORD && token.kind !== NAME && !isPunct(token, ',')) return false;
  }
  const next = tokens[close + 2];
  return isWord(tokens[close + 1], 'AS') && (isPunct(next, '(') || isWord(next, 'NOT') || isWord(next, 'MATERIALIZED'));
}

function deterministicTokens(tokens: readonly Token[], from: number, volatile: ReadonlySet<string>, allowed: ReadonlySet<string>): boolean {
  for (let i = from; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind !== WORD && token.kind !== NAME) continue;
    const name = token.kind === WORD ? token.text.toLowerCase() : token.text;
    if (token.kind === WORD && CLOCK_WORDS.has(token.text)) return false;
    // A view or table whose rows are not deterministic, or an eponymous virtual table about the connection.
    if (volatile.has(name) || name.startsWith('pragma_') || name.startsWith('sqlite_stmt') || name === 'sqlite_dbpage') return false;
    if (!isPunct(tokens[i + 1], '(')) continue;
    if (token.kind === WORD && BEFORE_PARENTHESIS.has(token.text)) continue;
    if (isColumnList(tokens, i)) continue;
    const least = DATE_TIME.get(name);
    if (least !== undefined) {
      if (!literalTimes(tokens, i + 1, least)) return false;
    } else if (!DETERMINISTIC.has(name) && !allowed.has(name)) {
      return false;
    }
  }
  return true;
}

/**
 * Whether the statement `sql` may be memoised: every function it calls is a known deterministic
 * built-in or named in `allowed` (user functions declared deterministic), date and time functions
 * get only literal arguments that name no clock, it reads no `CURRENT_*` keyword and no name in
 * `volatile` (views that are not deterministic, user functions that are not declared so: such a
 * name wins over the built-in it may shadow).
 */
export function isDeterministic(sql: string, volatile: ReadonlySet<string> = NO_NAMES, allowed: ReadonlySet<string> = NO_NAMES): boolean {
  const tokens = tokenize(sql);
  if (tokens === undefined || tokens.length === 0) return false;
  const head = tokens[0]!;
  if (head.kind === WORD && NEVER.has(head.text)) return false;
  return deterministicTokens(tokens, 0, volatile, allowed);
}

const NO_NAMES: ReadonlySet<string> = new Set();

/**
 * `functions` (lower-cased names of user functions not declared deterministic) and the
 * lower-cased names of the views among `views` (name and `CREATE VIEW` text) whose rows are not
 * deterministic, directly or through another such view or such a function; `allowed` as for
 * {@link isDeterministic}.
 */
export function volatileViews(
  views: ReadonlyArray<readonly [string, string]>,
  functions: ReadonlySet<string> = NO_NAMES,
  allowed: ReadonlySet<string> = NO_NAMES,
): Set<string> {
  const volatile = new Set<string>(functions);
  const bodies = views.map(([name, sql]) => {
    const tokens = tokenize(sql);
    // The body starts after the first AS outside parentheses (`CREATE VIEW v(a, b) AS SELECT …`).
    let depth = 0;
    let body = -1;
    for (let i = 0; tokens !== undefined && i < tokens.length; i++) {
      if (isPunct(tokens[i], '(')) depth++;
      else if (isPunct(tokens[i], ')')) depth--;
      else if (depth === 0 && isWord(tokens[i], 'AS')) {
        body = i + 1;
        break;
      }
    }
    return { name: name.toLowerCase(), tokens, body };
  });
  for (let changed = true; changed; ) {
    changed = false;
    for (const { name, tokens, body } of bodies) {
      if (volatile.has(name)) continue;
      if (tokens === undefined || body < 0 || !deterministicTokens(tokens, body, volatile, allowed)) {
        volatile.add(name);
        changed = true;
      }
    }
  }
  return volatile;
}
