import { loadSqlJs } from './src/sqljs.ts';
const sqlJs = await loadSqlJs() as any;
const MiB = 1 << 20;
const held: number[] = []; let total = 0;
for (let size = 256 * MiB; size >= 64 * 1024; size /= 2) { let p; while ((p = sqlJs._malloc(size)) !== 0) { held.push(p); total += size; } }
console.log('held MiB', total / MiB, 'then 100MiB:', sqlJs._malloc(100 * MiB));
for (const p of held.splice(0, 3)) sqlJs._free(p);
console.log('after freeing 3 largest, 100MiB:', sqlJs._malloc(100 * MiB));
