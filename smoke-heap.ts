import { openDbCache, DbCacheError } from './src/index.ts';
import { loadSqlJs } from './src/sqljs.ts';
import { sqlite, tempDir } from './test/support/fixtures.ts';
import * as path from 'node:path';
const { dir } = tempDir();
const file = path.join(dir, 'a.db');
sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t VALUES (?,?)', [(i, 'x'*i) for i in range(100)])");
const a = await openDbCache(file, { watch: false });
const b = await openDbCache(file, { watch: false });
const M = 1 << 20;
let t = performance.now();
const lap = (what: string) => { const n = performance.now(); console.log(what, (n - t).toFixed(0), 'ms', Math.round(process.memoryUsage().rss / M), 'MB rss'); t = n; };
// nothing pinned: four distinct big results
for (const m of ['get', 'all', 'values'] as const) for (let k = 0; k < 4; k++) {
  const r = (a as any)[m](`SELECT zeroblob(450000000) AS b, ${k} AS k`);
  const row = m === 'get' ? r : r[0];
  const blob = m === 'values' ? row[0] : row.b;
  if (blob.length !== 450000000) throw new Error('bad');
}
lap('12 big results');
console.log(b.get('SELECT count(*) n FROM t'));
const sql = await loadSqlJs() as any;
const pins: number[] = [];
for (let size = 256 * M; size >= M; size >>= 1) { let p; while ((p = sql._malloc(size)) !== 0) pins.push(p); }
lap('filled ' + pins.length);
sql._free(pins.pop()); sql._free(pins.pop()); sql._free(pins.pop()); // leave a few MB
const blob = new Uint8Array(100 * M);
const str = 'y'.repeat(100 * M);
const tally = new Map<string, number>();
const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
for (let i = 0; i < 50; i++) {
  for (const [sqlText, p] of [['SELECT length(?1) l, typeof(?1) t', [blob]], ['SELECT length(?1) l, typeof(?1) t', [str]], ['SELECT count(*) c FROM t WHERE ? IS NULL', [str]]] as const) {
    try { const r = a.get(sqlText, p as any); count('ok ' + JSON.stringify(r)); } catch (e) { count(e instanceof DbCacheError ? e.code : 'raw ' + e); }
  }
  try { count('small ' + JSON.stringify(b.get('SELECT v FROM t WHERE id = ?', ['5']))); } catch (e) { count('small ' + (e instanceof DbCacheError ? e.code : 'raw ' + e)); }
}
lap('hostile x50');
console.log(tally);
for (const p of pins) sql._free(p);
console.log(a.get('SELECT length(?1) l, typeof(?1) t', [blob]), a.get('SELECT length(?1) l, typeof(?1) t', [str]));
const c = await openDbCache(file, { watch: false });
console.log(c.get('SELECT count(*) n FROM t'), a.get('PRAGMA quick_check'));
lap('after');
await a.close(); await b.close(); await c.close();
