import type { SqlAnalysis } from './sql-guard.ts';
import type { SqlJsStatement } from './sqljs.ts';
import { copyOfView, isBufferView } from './real-bytes.ts';

/**
 * Arguments of a statement call in better-sqlite3's mixed forms (`stmt.get({ a }, 7)`,
 * `stmt.get([1], 2)`): kept as they came until the statement's parameters are known.
 */
export class SpreadArgs {
  readonly #args: readonly unknown[];

  constructor(args: readonly unknown[]) {
    this.#args = args;
  }

  get args(): readonly unknown[] {
    return this.#args;
  }

  /** A brand check that runs no Proxy trap (unlike `instanceof`). */
  static is(value: unknown): value is SpreadArgs {
    return typeof value === 'object' && value !== null && #args in value;
  }
}

/**
 * A value as it was read from the caller, once: a primitive, or a copy of a buffer's bytes that
 * nobody else holds. This is all that reaches sql.js.
 */
export type PlainValue = number | string | bigint | boolean | null | Uint8Array;

/** Values read and checked already (a statement's `bind()`), in parameter-index order. */
export class BoundValues {
  readonly #values: readonly PlainValue[];

  constructor(values: readonly PlainValue[]) {
    this.#values = values;
  }

  get values(): readonly PlainValue[] {
    return this.#values;
  }

  /** A brand check that runs no Proxy trap (unlike `instanceof`). */
  static is(value: unknown): value is BoundValues {
    return typeof value === 'object' && value !== null && #values in value;
  }
}

/** Parameters as the core receives them: none, positional values, one named object, mixed, or read already. */
export type BindInput = undefined | readonly unknown[] | Readonly<Record<string, unknown>> | SpreadArgs | BoundValues;

/** Binds a whole number as REAL (sql.js binds those within 32 bits as INTEGER). */
export type RealBinder = (statement: SqlJsStatement, index: number, value: number) => void;

/** An object whose keys name parameters: a plain object (or one without prototype). */
export function isNamedObject(value: unknown): value is Readonly<Record<string, unknown>> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A statement's argument list (`stmt.get(...args)`) as one input: no arguments, one array or
 * object as it is, scalars as a positional array, anything mixed as {@link SpreadArgs}.
 */
export function fromArguments(args: unknown[]): BindInput {
  if (args.length === 0) return undefined;
  if (args.length === 1) {
    const only = args[0];
    return Array.isArray(only) || isNamedObject(only) ? only : args;
  }
  for (const arg of args) if (Array.isArray(arg) || isNamedObject(arg)) return new SpreadArgs(args);
  return args;
}

const NO_VALUES: readonly PlainValue[] = [];
const MAX_INT64 = 2n ** 63n - 1n;
const MIN_INT64 = -(2n ** 63n);
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_EXACT = BigInt(Number.MIN_SAFE_INTEGER);

const isArray = Array.isArray;
const hasOwn = Object.hasOwn;
const apply = Reflect.apply;
const NO_ARGUMENTS: [] = [];
const stringMethods = String.prototype as { isWellFormed?: () => boolean; toWellFormed?: () => string };
const isWellFormed = stringMethods.isWellFormed;
const toWellFormed = stringMethods.toWellFormed;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const BAD_VALUE = 'SQLite3 can only bind numbers, strings, bigints, buffers, and null';

/**
 * `text` with every lone surrogate replaced by U+FFFD, as `TextEncoder` and `Buffer.from` encode
 * it (sql.js's own encoder would write the surrogate as three bytes of invalid UTF-8).
 */
export function wellFormed(text: string): string {
  if (isWellFormed !== undefined && toWellFormed !== undefined) return apply(isWellFormed, text, NO_ARGUMENTS) ? text : apply(toWellFormed, text, NO_ARGUMENTS);
  return text.replace(LONE_SURROGATE, '\uFFFD');
}

/**
 * One caller value, read once, as a {@link PlainValue}: `undefined` as null, strings made
 * well-formed, buffers copied. Objects are never converted (no `valueOf`, `toString` or
 * `Symbol.toPrimitive` runs): they throw `TypeError`; a bigint beyond 64 bits `RangeError`.
 */
function plainValue(value: unknown): PlainValue {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return value;
    case 'string':
      return wellFormed(value);
    case 'undefined':
      return null;
    case 'bigint':
      if (value > MAX_INT64 || value < MIN_INT64) throw new RangeError('The bound string, buffer, or bigint is too big');
      return value;
    case 'object':
      if (value === null) return null;
      // Any typed array or DataView binds its bytes, as in better-sqlite3.
      if (isBufferView(value)) return copyOfView(value);
      break;
    default:
      break;
  }
  throw new TypeError(BAD_VALUE);
}

/**
 * Reads the values of `input` in parameter-index order, each exactly once and before anything
 * reaches sql.js, checked the way better-sqlite3 checks them, in its order (argument by
 * argument): `TypeError` for a value SQLite cannot hold or a second object of named values,
 * `RangeError` for a value beyond the last `?`, a named parameter missing from the object, or
 * too few values, and `TypeError` when named parameters get no object at all. An error thrown
 * by the caller's own getters or Proxy traps propagates as it is.
 */
export function readBinding(analysis: SqlAnalysis, input: BindInput): readonly PlainValue[] {
  const { parameters, anonymous } = analysis;
  if (isArray(input) && !analysis.named) {
    // Positional values only (a point lookup): the length, then each value, read once.
    const length = input.length;
    const values: PlainValue[] = [];
    for (let i = 0; i < length && i <= anonymous; i++) values.push(plainValue(input[i]));
    if (length !== anonymous) throw new RangeError(length > anonymous ? 'Too many parameter values were provided' : 'Too few parameter values were provided');
    return values;
  }
  if (input === undefined && parameters.length === 0) return NO_VALUES;
  if (BoundValues.is(input)) return input.values;
  const values = new Array<PlainValue>(parameters.length);
  let slot = 0;
  let positional = 0;
  let named = false;
  const place = (value: unknown) => {
    const plain = plainValue(value);
    while (slot < parameters.length && parameters[slot] !== null) slot++;
    if (slot === parameters.length) throw new RangeError('Too many parameter values were provided');
    values[slot++] = plain;
    positional++;
  };
  const take = (arg: unknown) => {
    if (isArray(arg)) {
      // A hole in a sparse array is undefined, which binds NULL.
      const length = arg.length;
      for (let i = 0; i < length; i++) place(arg[i]);
    } else if (isNamedObject(arg)) {
      if (named) throw new TypeError('You cannot specify named parameters in two different objects');
      named = true;
      // `:a` and `@a` are two parameters of one key: the key is still read once.
      const read = new Map<string, PlainValue>();
      for (let i = 0; i < parameters.length; i++) {
        const token = parameters[i];
        if (token === null || token === undefined) continue;
        const key = token.slice(1);
        let value = read.get(key);
        if (value === undefined) {
          if (!hasOwn(arg, key)) throw new RangeError(`Missing named parameter "${key}"`);
          value = plainValue(arg[key]);
          read.set(key, value);
        }
        values[i] = value;
      }
    } else {
      place(arg);
    }
  };
  if (SpreadArgs.is(input)) {
    for (const arg of input.args) take(arg);
  } else if (isArray(input) || isNamedObject(input)) {
    take(input);
  } else if (input !== undefined) {
    throw new TypeError(`Parameters must be an array or an object, got ${describeParams(input)}`);
  }
  if (positional < anonymous) throw new RangeError('Too few parameter values were provided');
  if (analysis.named && !named) throw new TypeError('Missing named parameters');
  return values;
}

/** What `params` is, for a TypeError: `null`, `number`, `Map`, … */
export function describeParams(params: unknown): string {
  if (params === null) return 'null';
  if (typeof params !== 'object') return typeof params;
  return isBufferView(params) ? 'a typed array' : 'an object that is neither an array nor a plain object';
}

/**
 * Binds `values` (from {@link readBinding}) to `statement`, which must be reset with no bindings
 * (fresh from `prepare`, or reset after its last use, as the snapshot's statements always are).
 * Runs no caller code: everything here is the library's own. Every JavaScript number binds as
 * REAL, as in better-sqlite3, when `bindReal` is available; booleans and bigints bind as INTEGER
 * (bigints beyond 53 bits as their exact decimal text: sql.js has no 64-bit binding). `reserve`
 * runs before sql.js copies strings and blobs into its heap.
 */
export function applyBinding(
  statement: SqlJsStatement,
  values: readonly PlainValue[],
  bindReal: RealBinder | undefined,
  reserve?: (values: readonly unknown[]) => void,
): void {
  const count = values.length;
  if (count === 0) return;
  let numbers = bindReal !== undefined;
  for (let i = 0; i < count && numbers; i++) numbers = typeof values[i] === 'number';
  if (numbers) {
    // Numbers only (a point lookup): bind them straight, one call each, as sql.js's bind would.
    for (let i = 0; i < count; i++) bindReal!(statement, i + 1, values[i] as number);
    return;
  }
  const bindable = new Array<unknown>(count);
  for (let i = 0; i < count; i++) {
    const value = values[i];
    if (typeof value === 'boolean') bindable[i] = value ? 1 : 0;
    else if (typeof value === 'bigint') bindable[i] = value >= MIN_EXACT && value <= MAX_EXACT ? Number(value) : String(value);
    else bindable[i] = value;
  }
  reserve?.(bindable);
  statement.bind(bindable);
  if (bindReal === undefined) return;
  for (let i = 0; i < count; i++) {
    const value = values[i];
    // sql.js already bound numbers beyond 32 bits (and fractions) as REAL.
    if (typeof value === 'number' && (value | 0) === value) bindReal(statement, i + 1, value);
  }
}
