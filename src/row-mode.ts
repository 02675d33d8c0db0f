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
