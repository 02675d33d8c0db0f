/**
 * JSON as the command line reads and writes it, exactly: integers stay exact (beyond 2^53 too),
 * reals read back as reals, blobs are `{"$blob":"<base64>"}`. Pure: no I/O.
 */
import type { SqlValue } from './index.ts';

/** A JSON number, as a whole value (a command-line value that binds as a number). */
export const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

/**
 * A JSON number as SQLite reads a literal: an integer that fits 64 bits is an exact integer
 * (a bigint), anything with a fraction or exponent, or a larger integer, is a REAL.
 */
export function jsonNumber(text: string): number | bigint {
  if (/^-?\d+$/.test(text)) {
    const integer = BigInt(text);
    if (integer >= MIN_INT64 && integer <= MAX_INT64) return integer;
  }
  return Number(text);
}

const MAX_DEPTH = 64;

/**
 * Parses JSON (RFC 8259) keeping integers exact (see {@link jsonNumber}): `JSON.parse` reads
 * every number as a double, and its reviver sees the source text only on newer engines.
 * Objects have no prototype (a key `__proto__` is a key); `{"$blob":"<base64>"}` is a blob.
 */
export function parseJson(text: string): unknown {
  let at = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at position ${at}`);
  };
  const space = (): void => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++;
  };
  const expect = (char: string): void => {
    if (text[at] !== char) fail(at < text.length ? `expected "${char}", found "${text[at]}"` : `expected "${char}", found the end`);
    at++;
  };
  const string = (): string => {
    expect('"');
    let result = '';
    for (;;) {
      const start = at;
      while (at < text.length && text[at] !== '"' && text[at] !== '\\' && text.charCodeAt(at) >= 0x20) at++;
      result += text.slice(start, at);
      if (at >= text.length) fail('unterminated string');
      const char = text[at]!;
      if (char === '"') {
        at++;
        return result;
      }
      if (char !== '\\') fail('control character in a string');
      const escape = text[at + 1];
      const simple = escape === undefined ? undefined : ESCAPES[escape];
      if (simple !== undefined) {
        result += simple;
        at += 2;
      } else if (escape === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
        result += String.fromCharCode(Number.parseInt(text.slice(at + 2, at + 6), 16));
        at += 6;
      } else fail('bad escape in a string');
    }
  };
  const value = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
    space();
    const char = text[at];
    if (char === '"') return string();
    if (char === '[') {
      at++;
      const items: unknown[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return items;
      }
      for (;;) {
        items.push(value(depth + 1));
        space();
        if (text[at] === ']') {
          at++;
          return items;
        }
        expect(',');
      }
    }
    if (char === '{') {
      at++;
      const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      space();
      if (text[at] === '}') {
        at++;
        return object;
      }
      for (;;) {
        space();
        const key = string();
        space();
        expect(':');
        object[key] = value(depth + 1);
        space();
        if (text[at] === '}') {
          at++;
          return blobOf(object) ?? object;
        }
        expect(',');
      }
    }
    const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(at, at + 1100));
    if (number !== null && number[0] !== '-') {
      at += number[0].length;
      return jsonNumber(number[0]);
    }
    for (const [word, result] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return result;
      }
    }
    return fail(at < text.length ? `unexpected "${text[at]}"` : 'unexpected end');
  };
  const result = value(0);
  space();
  if (at < text.length) fail(`unexpected "${text[at]}" after the value`);
  return result;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** `{"$blob": "<base64>"}` (and nothing else) is a blob, the same encoding the output uses. */
function blobOf(object: Record<string, unknown>): Uint8Array | undefined {
  const keys = Object.keys(object);
  const blob = object.$blob;
  if (keys.length !== 1 || typeof blob !== 'string') return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(blob) || blob.length % 4 !== 0) throw new SyntaxError(`{"$blob": …} needs base64, got ${JSON.stringify(blob.slice(0, 40))}`);
  return Uint8Array.from(atob(blob), (char) => char.charCodeAt(0));
}

/** A REAL as text that reads back as a REAL: `42.0`, `0.1`, `1e+21`, `-0.0`; infinity as `infinity`/`-infinity`. */
export function realText(value: number, infinity: string): string {
  if (Number.isNaN(value)) return 'null';
  if (!Number.isFinite(value)) return value > 0 ? infinity : `-${infinity}`;
  if (Object.is(value, -0)) return '-0.0';
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/**
 * A value as JSON, exactly: integers (bigints) as their digits, reals with a fraction or exponent
 * (infinity as `1e999`, which every JSON reader reads as infinity), blobs as {"$blob":"<base64>"}.
 */
export function jsonValue(value: SqlValue): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return realText(value, '1e999');
  if (value instanceof Uint8Array) return `{"$blob":"${base64(value)}"}`;
  return jsonText(value);
}

/**
 * `JSON.stringify`, with the characters it leaves raw that a terminal may act on or that move text
 * (C1 controls such as U+009B, which some terminals take as ESC [, line separators, bidirectional
 * controls) written as `\u` escapes: the same JSON value, safe to print.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
