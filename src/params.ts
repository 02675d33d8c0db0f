import type { SqlAnalysis } from './sql-guard.ts';
import type { SqlJsStatement } from './sqljs.ts';

/**
 * Arguments of a statement call in better-sqlite3's mixed forms (`stmt.get({ a }, 7)`,
 * `stmt.get([1], 2)`): kept as they came until the statement's parameters are known.
 */
export class SpreadArgs {
  readonly args: readonly unknown[];

  constructor(args: readonly unknown[]) {
    this.args = args;
  }
}

/** Parameters as the core receives them: none, positional values, one named object, or mixed. */
export type BindInput = undefined | readonly unknown[] | Readonly<Record<string, unknown>> | SpreadArgs;

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

const NO_VALUES: unknown[] = [];
const MAX_INT64 = 2n ** 63n - 1n;
const MIN_INT64 = -(2n ** 63n);
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_EXACT = BigInt(Number.MIN_SAFE_INTEGER);

function allNumbers(values: readonly unknown[]): boolean {
  for (let i = 0; i < values.length; i++) if (typeof values[i] !== 'number') return false;
  return true;
}

function bindsAsIs(value: unknown): boolean {
  const type = typeof value;
  return type === 'number' || type === 'string' || value === null || value instanceof Uint8Array;
}

/**
 * A value in a form sql.js binds: `undefined` as NULL, booleans as 0/1, bigints within 53 bits
 * as numbers and beyond as their exact decimal text (sql.js has no 64-bit binding).
 */
function toBindable(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
    case 'string':
      return value;
    case 'undefined':
      return null;
    case 'boolean':
      return value ? 1 : 0;
    case 'bigint':
      if (value > MAX_INT64 || value < MIN_INT64) throw new RangeError('The bound string, buffer, or bigint is too big');
      return value >= MIN_EXACT && value <= MAX_EXACT ? Number(value) : value.toString();
    default:
      if (value === null || value instanceof Uint8Array) return value;
      throw new TypeError('SQLite3 can only bind numbers, strings, bigints, buffers, and null');
  }
}

/**
 * The values of `input` in parameter-index order, checked the way better-sqlite3 checks them, in
 * its order (argument by argument): `TypeError` for a value SQLite cannot hold or a second object
 * of named values, `RangeError` for a value beyond the last `?`, a named parameter missing from
 * the object, or too few values, and `TypeError` when named parameters get no object at all.
 */
export function bindValues(analysis: SqlAnalysis, input: BindInput): readonly unknown[] {
  if (Array.isArray(input) && !analysis.named && input.length === analysis.anonymous && input.every(bindsAsIs)) return input;
  const { parameters, anonymous } = analysis;
  if (input === undefined && parameters.length === 0) return NO_VALUES;
  const values: unknown[] = new Array(parameters.length);
  let slot = 0;
  let positional = 0;
  let named = false;
  const place = (value: unknown) => {
    const bindable = toBindable(value);
    while (slot < parameters.length && parameters[slot] !== null) slot++;
    if (slot === parameters.length) throw new RangeError('Too many parameter values were provided');
    values[slot++] = bindable;
    positional++;
  };
  const take = (arg: unknown) => {
    if (Array.isArray(arg)) {
      // A hole in a sparse array is undefined, which binds NULL.
      for (let i = 0; i < arg.length; i++) place(arg[i]);
    } else if (isNamedObject(arg)) {
      if (named) throw new TypeError('You cannot specify named parameters in two different objects');
      named = true;
      for (let i = 0; i < parameters.length; i++) {
        const token = parameters[i];
        if (token === null || token === undefined) continue;
        const key = token.slice(1);
        if (!Object.hasOwn(arg, key)) throw new RangeError(`Missing named parameter "${key}"`);
        values[i] = toBindable(arg[key]);
      }
    } else {
      place(arg);
    }
  };
  if (input instanceof SpreadArgs) {
    for (const arg of input.args) take(arg);
  } else if (Array.isArray(input) || isNamedObject(input)) {
    take(input);
  } else if (input !== undefined) {
    throw new TypeError(`Parameters must be an array or an object, got ${input === null ? 'null' : typeof input}`);
  }
  if (positional < anonymous) throw new RangeError('Too few parameter values were provided');
  if (analysis.named && !named) throw new TypeError('Missing named parameters');
  return values;
}

/** Whether `value` reached sql.js from a JavaScript number (not a converted bigint or boolean). */
function numberAt(input: BindInput, analysis: SqlAnalysis, index: number): boolean {
  if (Array.isArray(input) && !analysis.named && input.length === analysis.anonymous) return typeof input[index] === 'number';
  const { parameters } = analysis;
  const token = parameters[index];
  if (input instanceof SpreadArgs || Array.isArray(input)) {
    const args = input instanceof SpreadArgs ? input.args : [input];
    if (token === null) {
      let position = 0;
      for (let i = 0; i < index; i++) if (parameters[i] === null) position++;
      for (const arg of args) {
        if (isNamedObject(arg)) continue;
        if (Array.isArray(arg)) {
          if (position < arg.length) return typeof arg[position] === 'number';
          position -= arg.length;
        } else if (position-- === 0) {
          return typeof arg === 'number';
        }
      }
      return false;
    }
    for (const arg of args) if (isNamedObject(arg)) return typeof arg[token!.slice(1)] === 'number';
    return false;
  }
  return token !== null && token !== undefined && input !== undefined && typeof (input as Record<string, unknown>)[token.slice(1)] === 'number';
}

/**
 * Checks `input` against the parameters of `analysis` (RangeError / TypeError, as better-sqlite3
 * throws them) and returns the values to bind, or `undefined` for the numbers-only fast path of
 * {@link applyBinding}. Pure JavaScript: nothing here touches sql.js.
 */
export function checkBinding(analysis: SqlAnalysis, input: BindInput, bindReal: RealBinder | undefined): readonly unknown[] | undefined {
  if (bindReal !== undefined && Array.isArray(input) && !analysis.named && input.length === analysis.anonymous && allNumbers(input)) return undefined;
  return bindValues(analysis, input);
}

/**
 * Binds what {@link checkBinding} returned to `statement`, which must be reset with no bindings
 * (fresh from `prepare`, or reset after its last use, as the snapshot's statements always are).
 * Every JavaScript number binds as REAL, as in better-sqlite3, when `bindReal` is available;
 * bigints bind as INTEGER within 32 bits. `reserve` runs before sql.js copies strings and blobs
 * into its heap.
 */
export function applyBinding(
  statement: SqlJsStatement,
  analysis: SqlAnalysis,
  input: BindInput,
  values: readonly unknown[] | undefined,
  bindReal: RealBinder | undefined,
  reserve?: (values: readonly unknown[]) => void,
): void {
  if (values === undefined) {
    // Numbers only (a point lookup): bind them straight, one call each, as sql.js's bind would.
    const numbers = input as readonly number[];
    for (let i = 0; i < numbers.length; i++) bindReal!(statement, i + 1, numbers[i]!);
    return;
  }
  reserve?.(values);
  statement.bind(values);
  if (bindReal === undefined) return;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    // sql.js already bound numbers beyond 32 bits (and fractions) as REAL.
    if (typeof value === 'number' && (value | 0) === value && (values === input || numberAt(input, analysis, i))) bindReal(statement, i + 1, value);
  }
}
