import type { BindValue, Params } from './types.ts';

/**
 * The named placeholders of `sql` (`:id`, `@id`, `$id`) in order of first appearance, found by a
 * scan that skips string literals, quoted identifiers and comments.
 */
export function namedParameters(sql: string): string[] {
  const found: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c);
    } else if (c === '[') {
      const end = sql.indexOf(']', i + 1);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i + 2);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if ((c === ':' || c === '@' || c === '$') && isNameChar(sql.charCodeAt(i + 1))) {
      let end = i + 1;
      while (end < sql.length && isNameChar(sql.charCodeAt(end))) end++;
      const token = sql.slice(i, end);
      if (!found.includes(token)) found.push(token);
      i = end;
    } else {
      i++;
    }
  }
  return found;
}

function skipQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] !== quote) return i + 1;
      i += 2;
    } else {
      i++;
    }
  }
  return i;
}

function isNameChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code > 127
  );
}

/** A value in the form sql.js binds: booleans as 0/1, bigints as numbers (or text beyond 2^53). Throws TypeError for anything else. */
function toBindable(value: BindValue, where: string): number | string | Uint8Array | null {
  switch (typeof value) {
    case 'number':
    case 'string':
      return value;
    case 'boolean':
      return value ? 1 : 0;
    case 'bigint':
      // sql.js cannot bind a 64-bit integer: beyond ±2^53 the decimal text is bound, which an
      // INTEGER column compares exactly (type affinity turns it back into the integer).
      return value >= MIN_EXACT && value <= MAX_EXACT ? Number(value) : value.toString();
    default:
      if (value === null || value instanceof Uint8Array) return value;
      throw new TypeError(
        `${where}: cannot bind ${value === undefined ? 'undefined' : Object.prototype.toString.call(value)}; use a number, string, bigint, Uint8Array, boolean or null`,
      );
  }
}

const NO_PARAMS: unknown[] = [];
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_EXACT = BigInt(Number.MIN_SAFE_INTEGER);

function bindsAsIs(value: unknown): boolean {
  const type = typeof value;
  return type === 'number' || type === 'string' || type === 'boolean' || value === null || value instanceof Uint8Array;
}

/**
 * Turns dbcache parameters into what sql.js's `bind` takes: an array for positional
 * placeholders, or an object keyed by the prefixed placeholder names of the statement.
 */
export function toSqlJsParams(params: Params | undefined, named: readonly string[]): unknown[] | Record<string, unknown> {
  if (params === undefined) return NO_PARAMS;
  if (Array.isArray(params)) {
    // sql.js binds numbers, strings, null, blobs and booleans as they are: no copy on the hot path.
    if (params.every(bindsAsIs)) return params as unknown[];
    return params.map((value, index) => toBindable(value as BindValue, `Parameter ${index + 1}`));
  }
  if (typeof params !== 'object' || params === null) {
    throw new TypeError(`Parameters must be an array or an object, got ${params === null ? 'null' : typeof params}`);
  }
  const source = params as Readonly<Record<string, BindValue>>;
  const bound: Record<string, unknown> = {};
  for (const token of named) {
    const name = token.slice(1);
    const value = Object.hasOwn(source, name) ? source[name] : source[token];
    if (value === undefined && !Object.hasOwn(source, name) && !Object.hasOwn(source, token)) {
      throw new RangeError(`Missing named parameter "${name}"`);
    }
    bound[token] = toBindable(value!, `Parameter "${name}"`);
  }
  return bound;
}
