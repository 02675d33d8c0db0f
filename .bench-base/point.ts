// Focused point-lookup measurement: dbcache before/after issue 8 vs in-memory better-sqlite3.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { openDbCache as openNew } from '../src/index.ts';
import { openDbCache as openOld } from './src/index.ts';
const require = createRequire(import.meta.url);
const Better = require('better-sqlite3');
const dir = fs.mkdtempSync('/tmp/e8/bench-');
const file = path.join(dir, 'b.db');
const ROWS = 200_000;
execFileSync('python3', ['-c', `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute('CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, category TEXT, created_at INTEGER)')
db.executemany('INSERT INTO items VALUES (?,?,?,?)', ((i, 'name-%d' % i, 'cat-%d' % (i % 17), 1700000000 + i) for i in range(1, ${ROWS} + 1)))
db.commit()
`, file]);
const SQL = 'SELECT id, name, category, created_at FROM items WHERE id = ?';
const better = new Better(fs.readFileSync(file));
const bstmt = better.prepare(SQL);
const cNew = await openNew(file, { watch: false });
const cOld = await openOld(file, { watch: false });
let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed);
const N = 25_000;
const keys = Array.from({ length: N }, () => 1 + (rand() % ROWS));
const contenders: Record<string, (k: number) => any> = {
  better: (k) => bstmt.get(k),
  old: (k) => cOld.get(SQL, [k]),
  new: (k) => cNew.get(SQL, [k]),
  newStr: (k) => cNew.get(SQL, [String(k)]),
  oldStr: (k) => cOld.get(SQL, [String(k)]),
};
for (const k of keys.slice(0, 50)) { const a = JSON.stringify(contenders.better(k)); for (const n of Object.keys(contenders)) if (JSON.stringify(contenders[n](k)) !== a) throw new Error(n); }
const times: Record<string, number[]> = {};
const ROUNDS = Number(process.env.ROUNDS ?? 11);
const names = Object.keys(contenders);
for (let r = 0; r < ROUNDS + 2; r++) {
  for (let j = 0; j < names.length; j++) {
    const name = names[(j + r) % names.length]!;
    const f = contenders[name]!;
    const t0 = performance.now();
    let sum = 0;
    for (const k of keys) sum += f(k).id;
    const ns = ((performance.now() - t0) * 1e6) / N;
    if (r >= 2) (times[name] ??= []).push(ns);
  }
}
const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1]!;
const b = median(times.better!);
for (const n of names) console.log(n.padEnd(8), median(times[n]!).toFixed(0).padStart(6), 'ns/lookup', (b / median(times[n]!)).toFixed(2) + '× better-sqlite3');
await cNew.close(); await cOld.close(); better.close();
fs.rmSync(dir, { recursive: true, force: true });
