import { openDbCache, DbCacheError } from './src/index.ts';
import { engineOf } from './src/engine.ts';
import { loadSqlJs } from './src/sqljs.ts';
import { sqlite, tempDir } from './test/support/fixtures.ts';
import * as path from 'node:path';
const { dir } = tempDir();
const file = path.join(dir, 'a.db');
sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t VALUES (?,?)', [(i, 'x'*i) for i in range(100)])");
const a = await openDbCache(file, { watch: false });
const b = await openDbCache(file, { watch: false });
const tally = { ok: 0, wrong: 0, engine: 0, otherCode: 0, raw: 0, other: 0 };
let deepest = 0;
const raws = new Map<string, number>();
const WINDOW = Number(process.env.W ?? 4000);
function attempt(i: number) {
  let r: any, err: unknown, threw = false;
  try { r = i % 2 ? a.get('SELECT v FROM t WHERE id = ?', [42]) : a.all('SELECT id FROM t WHERE v LIKE ? ORDER BY id DESC', ['%xxxxxxxxx%']); } catch (e) { err = e; threw = true; }
  if (!threw) { if (i % 2 ? r?.v?.length === 42 : r.length === 91 && r[0].id === 99 && r[90].id === 9) tally.ok++; else tally.wrong++; }
  else if (err instanceof DbCacheError) { if (err.code === 'ENGINE') tally.engine++; else tally.otherCode++; }
  else if (err instanceof RangeError) { tally.raw++; const k = String(err.stack).split('\n').slice(1, 4).map(s=>s.trim().replace(/\(.*wt-8\//,'(')).join(' | '); raws.set(k, (raws.get(k) ?? 0) + 1); } else tally.other++;
}
function dive(n: number): void {
  if (n > deepest) deepest = n;
  try { dive(n + 1); } catch {}
  if (n > deepest - WINDOW) attempt(n);
}
const t0 = performance.now();
for (let round = 0; round < 5; round++) { deepest = 0; dive(0); }
console.log(tally, 'deepest', deepest, (performance.now()-t0).toFixed(0), 'ms', 'faults', engineOf(await loadSqlJs()).faults);
console.log(raws);
console.log(a.get('SELECT count(*) n, sum(length(v)) s FROM t'), b.get('SELECT ? LIKE ? v', ['abc', 'a%']), a.get('PRAGMA quick_check'));
const c = await openDbCache(file, { watch: false });
console.log(c.get('SELECT count(*) n FROM t'));
await a.close(); await b.close(); await c.close();
