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
function capacity(): number { const held: number[] = []; let total = 0; for (let size = 256 * MiB; size >= MiB; size /= 2) { let p; while ((p = sqlJs._malloc(size)) !== 0) { held.push(p); total += size; } } for (const p of held) sqlJs._free(p); return total / MiB; }
console.log('capacity MiB', capacity());
const N = Number(process.env.N ?? 50);
const subject = 'a'.repeat(20_000), like = '%a'.repeat(24_000) + 'b', glob = '*a'.repeat(24_000) + 'b';
const snapshot = victim.snapshot();
const K = process.env.K ?? 'abcd';
for (let i = 0; i < N; i++) {
  if (K.includes('a')) try { victim.get('SELECT ? LIKE ? AS v', [subject, like]); } catch {}
  if (K.includes('b')) try { victim.values('SELECT :s GLOB :p', { s: subject, p: glob }); } catch {}
  if (K.includes('c')) try { snapshot.all('SELECT count(*) AS c FROM t WHERE ? LIKE ?', [subject, like]); } catch {}
  if (K.includes('d') && i % 10 === 0) try { victim.get(`SELECT '${subject}' LIKE '${like}' AS v`); } catch {}
}
snapshot.release();
await new Promise((r) => setTimeout(r, 0));
console.log('faults', engineOf(sqlJs).faults, victim.get('SELECT 1 AS x'));
console.log('capacity MiB', capacity());
const blob = new Uint8Array(100 * MiB).fill(7);
if (process.env.THIRD) {
  const held: number[] = [];
  const take = (b: number) => { const p = sqlJs._malloc(b); if (p) held.push(p); return p; };
  const r1 = take(64 * MiB); take(65536); const r2 = take(64 * MiB); take(65536);
  for (let size = 256 * MiB; size >= 64 * 1024; size /= 2) while (take(size) !== 0);
  sqlJs._free(r1); sqlJs._free(r2); held.splice(held.indexOf(r1), 1); held.splice(held.indexOf(r2), 1);
  const third = 'z'.repeat(30 * MiB);
  for (let i = 0; i < 2; i++) try { console.log(victim.get('SELECT length(?1 || ?1 || ?1) AS l', [third])); } catch (e) { console.log('third', isDbCacheError(e) ? e.code : e); }
  for (const p of held) sqlJs._free(p);
  console.log('capacity MiB', capacity());
}
for (const q of ['SELECT length(?1) AS l', 'SELECT length(?1) AS l, typeof(?1) AS t, sum(?1 = zeroblob(0)) AS z']) {
  try { console.log(q, victim.get(q, [blob])); } catch (e) { console.log(q, isDbCacheError(e) ? e.code : e); }
}
const other = await openDbCache(file, { watch: false });
try { console.log('other', other.get('SELECT length(?1) AS l, typeof(?1) AS t, sum(?1 = zeroblob(0)) AS z', [blob])); } catch (e) { console.log('other', isDbCacheError(e) ? e.code : e); }
