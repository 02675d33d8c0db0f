export { openDbCache } from './cache.ts';
export type { DbCache, DbCacheEvent, DbCacheStats, ErrorEvent, ReloadCause, ReloadEvent } from './cache.ts';
export { DbCacheError, isDbCacheError } from './errors.ts';
export type { DbCacheErrorCode } from './errors.ts';
export type { Logger } from './logger.ts';
export type { DatabaseSource, DbCacheOptions, ReloadInfo } from './options.ts';
export type { SqlJsChoice, SqlJsDatabase, SqlJsLike, SqlJsStatement } from './sqljs.ts';
export type { BindValue, OverlayDatabase, Params, Queryable, Row, Snapshot, SqlValue, Statement } from './types.ts';
