import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type BetterSqlite3 = typeof import('better-sqlite3');

declare const Deno: unknown;
declare const Bun: unknown;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * better-sqlite3 for this runtime, or why it cannot run here (a string, for a skip reason): npm
 * builds it for the machine's Node, `npm run runtimes` for the other Nodes of the test matrix; Bun
 * and Deno do not load it (Deno loads only Node-API addons, which better-sqlite3 is not).
 */
export function loadBetterSqlite3(): BetterSqlite3 | string {
  if (typeof Deno !== 'undefined') return 'better-sqlite3 cannot run in Deno (a V8 addon, not Node-API)';
  let Database: BetterSqlite3;
  try {
    Database = createRequire(import.meta.url)('better-sqlite3') as BetterSqlite3;
  } catch (error) {
    return `better-sqlite3 is not installed (${String(error).split('\n')[0]})`;
  }
  try {
    new Database(':memory:').close();
    return Database;
  } catch (error) {
    if (typeof Bun !== 'undefined') return `better-sqlite3 does not load in Bun (${String(error).split('\n')[0]})`;
    const built = path.join(root, 'runtimes', 'better-sqlite3', `abi-${process.versions.modules}`, 'better_sqlite3.node');
    if (!fs.existsSync(built)) {
      return `better-sqlite3 is built for another Node (ABI ${process.versions.modules} has no addon in runtimes/better-sqlite3: npm run runtimes builds it): ${String(error).split('\n')[0]}`;
    }
    const bound = function (this: unknown, file?: string | Buffer, options?: import('better-sqlite3').Options) {
      return new Database(file, { ...options, nativeBinding: built });
    } as unknown as BetterSqlite3;
    try {
      new bound(':memory:').close();
    } catch (buildError) {
      return `the better-sqlite3 built in runtimes/better-sqlite3 does not load (${String(buildError).split('\n')[0]}): rebuild it with npm run runtimes`;
    }
    return bound;
  }
}
