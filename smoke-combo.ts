import { openDbCache, isDbCacheError } from './src/index.ts';
import { loadSqlJs } from './src/sqljs.ts';
import { engineOf } from './src/engine.ts';
import { sqlite, tempDir } from './test/support/fixtures.ts';
import * as path from 'node:path';
const { dir } = tempDir();
const file = path.join(dir, 'a.db');
sqlite(file, "db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'); db.executemany('INSERT INTO t VALUES (?,?)', [(i, 'x'*i) for i in range(100)])");
const victim = await openDbCache(file, { watch: false });
const sqlJs = await loadSqlJs() as any;
const MiB = 1 << 20;
const MODE = process.env.MODE ?? 'dive';
if (MODE === 'dive' || MODE === 'both') {
  let deepest = 0; let count = 0;
  const attempt = (n: number) => { count++; try { n % 2 ? victim.get('SELECT v FROM t WHERE id = ?', [42]) : victim.all('SELECT id FROM t WHERE v LIKE ? ORDER BY id DESC', ['%xxxxxxxxx%']); } catch {} };
  const dive = (n: number): void => { if (n > deepest) deepest = n; try { dive(n + 1); } catch {} if (n > deepest - 4000) attempt(n); };
  for (let r = 0; r < 4; r++) { deepest = 0; dive(0); }
  console.log('dive done', count, engineOf(sqlJs).faults);
}
if (MODE === 'like' || MODE === 'both') {
  for (let i = 0; i < 300; i++) try { victim.get('SELECT ? LIKE ? AS v', ['a'.repeat(20000), '%a'.repeat(24000) + 'b']); } catch {}
  console.log('like done', engineOf(sqlJs).faults);
}
await new Promise((r) => setTimeout(r, 0));
console.log(victim.get('SELECT count(*) n FROM t'));
const held: number[] = [];
const take = (b: number) => { const p = sqlJs._malloc(b); if (p) held.push(p); return p; };
const r1 = take(64 * MiB); take(65536); const r2 = take(64 * MiB); take(65536);
for (let size = 256 * MiB; size >= 64 * 1024; size /= 2) while (take(size) !== 0);
sqlJs._free(r1); sqlJs._free(r2);
console.log('squeezed');
const third = 'z'.repeat(30 * MiB);
const t = performance.now();
try { console.log(victim.get('SELECT length(?1 || ?1 || ?1) AS l', [third])); } catch (e) { console.log(isDbCacheError(e) ? e.code : e); }
console.log('third', performance.now() - t);
