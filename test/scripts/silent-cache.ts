// Uses dbcache the ordinary way on argv[2] (which has an FTS5 table) with the default logger: a
// legacy math function, a query on a table this sql.js build cannot read, a reload of a file
// that turned bad. Prints one line at the end; anything else on stdout or stderr came from dbcache or sql.js.
import * as fs from 'node:fs';
import { openDbCache } from '../../src/index.ts';

const file = process.argv[2]!;
const cache = await openDbCache(file, { watch: false, sqlJs: process.argv[3] === 'inline' ? 'inline' : 'wasm' });
const root = cache.get<{ r: number }>('SELECT sqrt(16) AS r, pow(2, 10) AS p, ln(1) AS l')!;
let failed = '';
try {
  cache.all("SELECT * FROM docs WHERE docs MATCH 'x'");
} catch (error) {
  failed = (error as { code: string }).code;
}
fs.writeFileSync(file, 'not a database, no longer '.repeat(40));
const reload = await cache.reload().then(() => 'ok', (error: { code: string }) => error.code);
await cache.close();
process.stdout.write(`done ${root.r} ${failed} ${reload}\n`);
