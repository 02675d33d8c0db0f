/**
 * The Bun half of bench/query.ts: dbcache and bun:sqlite in one Bun process, on the database and
 * key sequences bench/query.ts made. Started by bench/query.ts; prints one JSON line (BunResults).
 *
 *   node_modules/.bin/bun bench/query-bun.ts <database> <workload.json>
 */
import * as fs from 'node:fs';
import { openDbCache } from '../src/index.ts';
import { dbcacheContenders, measure, normalise, POINT_SQL, scanDigest, SCAN_SQL, type Contender, type Workload } from './support/query-workload.ts';

declare const Bun: { version: string; gc(force: boolean): void } | undefined;

interface BunStatement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

interface BunDatabase {
  query(sql: string): BunStatement;
  prepare(sql: string): BunStatement;
  close(): void;
}

interface BunSqlite {
  Database: {
    new (file: string, options?: { readonly?: boolean }): BunDatabase;
    deserialize(bytes: Uint8Array, readonly?: boolean): BunDatabase;
  };
}

interface Row {
  id: number;
}

async function main(): Promise<void> {
  if (typeof Bun === 'undefined') throw new Error('bench/query-bun.ts runs under Bun (node_modules/.bin/bun)');
  const [file, workloadFile] = process.argv.slice(2);
  if (file === undefined || workloadFile === undefined) throw new Error('usage: bun bench/query-bun.ts <database> <workload.json>');
  const started = performance.now();
  const workload = JSON.parse(fs.readFileSync(workloadFile, 'utf8')) as Workload;
  const { Database } = (await import('bun:sqlite' as string)) as BunSqlite;
  const onFile = new Database(file, { readonly: true });
  const inMemory = Database.deserialize(fs.readFileSync(file), true);
  const cache = await openDbCache(file, { watch: false });
  const memo = await openDbCache(file, { watch: false, memo: true });
  const snapshot = cache.snapshot();
  try {
    const sqlite = String((onFile.query('SELECT sqlite_version() AS v').get() as { v: string }).v);
    const fileStatement = onFile.prepare(POINT_SQL);

    const ours = dbcacheContenders('bun-', cache, memo, snapshot);
    const points: Record<string, Contender> = {
      ...ours.points,
      'bun-sqlite-file': {
        id: 'bun-sqlite-file',
        label: 'bun:sqlite `db.query(sql).get(id)`, file (readonly)',
        run(keys) {
          let sum = 0;
          for (let i = 0; i < keys.length; i++) sum += (onFile.query(POINT_SQL).get(keys[i]) as Row).id;
          return sum;
        },
        one: (key) => onFile.query(POINT_SQL).get(key),
      },
      'bun-sqlite-file-stmt': {
        id: 'bun-sqlite-file-stmt',
        label: 'bun:sqlite `stmt.get(id)` (statement held), file (readonly)',
        run(keys) {
          let sum = 0;
          for (let i = 0; i < keys.length; i++) sum += (fileStatement.get(keys[i]) as Row).id;
          return sum;
        },
        one: (key) => fileStatement.get(key),
      },
      'bun-sqlite-memory': {
        id: 'bun-sqlite-memory',
        label: 'bun:sqlite `db.query(sql).get(id)`, in memory (`Database.deserialize`)',
        run(keys) {
          let sum = 0;
          for (let i = 0; i < keys.length; i++) sum += (inMemory.query(POINT_SQL).get(keys[i]) as Row).id;
          return sum;
        },
        one: (key) => inMemory.query(POINT_SQL).get(key),
      },
    };
    const scans: Record<string, Contender> = {
      ...ours.scans,
      'bun-sqlite-file': {
        id: 'bun-sqlite-file',
        label: 'bun:sqlite `db.query(sql).all(start)`, file (readonly)',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(onFile.query(SCAN_SQL).all(starts[i]) as Row[]);
          return sum;
        },
        one: (start) => onFile.query(SCAN_SQL).all(start),
      },
      'bun-sqlite-memory': {
        id: 'bun-sqlite-memory',
        label: 'bun:sqlite `db.query(sql).all(start)`, in memory',
        run(starts) {
          let sum = 0;
          for (let i = 0; i < starts.length; i++) sum += scanDigest(inMemory.query(SCAN_SQL).all(starts[i]) as Row[]);
          return sum;
        },
        one: (start) => inMemory.query(SCAN_SQL).all(start),
      },
    };

    // Every contender here returns the same rows; bench/query.ts compares them with better-sqlite3's.
    const reference = points['bun-sqlite-file']!;
    const pointRows = workload.verifyKeys.map((key) => normalise(reference.one(key)));
    const scanRows = workload.verifyScans.map((start) => normalise(scans['bun-sqlite-file']!.one(start)));
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    for (const contender of Object.values(points)) {
      workload.verifyKeys.forEach((key, i) => {
        if (!same(normalise(contender.one(key)), pointRows[i])) throw new Error(`${contender.label}: row ${key} differs from bun:sqlite's`);
      });
    }
    for (const contender of Object.values(scans)) {
      workload.verifyScans.forEach((start, i) => {
        if (!same(normalise(contender.one(start)), scanRows[i])) throw new Error(`${contender.label}: scan > ${start} differs from bun:sqlite's`);
      });
    }

    const gc = () => Bun.gc(true);
    const { rounds, warmup } = workload;
    const pick = (ids: string[]) => ids.map((id) => points[id]!);
    const random = measure(pick(['bun-dbcache-get', 'bun-dbcache-prepared', 'bun-sqlite-file', 'bun-sqlite-file-stmt', 'bun-sqlite-memory']), workload.random, rounds, warmup, 'bun', gc);
    console.error(`bun: random lookups done (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    const hot = measure(Object.values(points), workload.hot, rounds, warmup, 'bun', gc);
    console.error(`bun: hot lookups done (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    const scan = measure(Object.values(scans), workload.scans, rounds, warmup, 'bun', gc);
    console.error(`bun: scans done (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    console.log(
      JSON.stringify({
        bun: Bun.version,
        sqlite,
        timings: { random, hot, scan },
        // JSON turns `undefined` (no row) into null, as bench/query.ts does with its own rows.
        rows: { points: JSON.parse(JSON.stringify(pointRows)) as unknown[], scans: scanRows },
        seconds: (performance.now() - started) / 1000,
      }),
    );
  } finally {
    snapshot.release();
    await cache.close();
    await memo.close();
    onFile.close();
    inMemory.close();
  }
}

await main();
