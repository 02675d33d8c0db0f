// sql.js ships this build without typings of its own; dbcache only calls its default export.
declare module 'sql.js/dist/sql-wasm-inline.js' {
  const initSqlJs: () => Promise<import('./sqljs.ts').SqlJsLike>;
  export default initSqlJs;
}
