import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { SqlJsLike } from '../../src/sqljs.ts';

/**
 * A private instance of sql.js's WebAssembly module, separate from the one every cache in the
 * process shares (sql.js's `initSqlJs` is a singleton per loaded file), so a test may damage it.
 */
export async function freshSqlJs(): Promise<SqlJsLike & Record<string, unknown>> {
  const require = createRequire(import.meta.url);
  const file = require.resolve('sql.js');
  const source = fs.readFileSync(file, 'utf8');
  const module = { exports: {} as unknown };
  // Evaluated anew: a second `import` or `require` would return the first instance.
  new Function('module', 'exports', 'require', '__filename', '__dirname', source)(module, module.exports, require, file, path.dirname(file));
  const init = module.exports as (config: object) => Promise<SqlJsLike & Record<string, unknown>>;
  return init({ locateFile: (name: string) => path.join(path.dirname(file), name) });
}
