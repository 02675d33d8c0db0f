/**
 * How a row is returned: an object keyed by column (`OBJECT`), an array of values (`ARRAY`), or
 * the first value alone (`FIRST`); plus `BIGINTS` for integers as bigints. The snapshot's result
 * memo also uses the mode as its slot.
 */
export type RowMode = number;
export const OBJECT = 0;
export const ARRAY = 1;
export const FIRST = 2;
export const BIGINTS = 3;

/**
 * A row as an object keyed by column name (a later column wins over an earlier one of the same
 * name). A column named `__proto__` is an own property like any other: assigning it would set
 * the row's prototype instead (better-sqlite3 does that; its value then vanishes).
 */
export function rowObject<T>(columns: readonly string[], values: readonly T[]): Record<string, T> {
  const row: Record<string, T> = {};
  for (let i = 0; i < columns.length; i++) {
    const name = columns[i]!;
    if (name === '__proto__') Object.defineProperty(row, name, { value: values[i], writable: true, enumerable: true, configurable: true });
    else row[name] = values[i]!;
  }
  return row;
}
