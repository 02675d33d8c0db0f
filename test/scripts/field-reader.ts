// Reads mutated database files for test/fuzz.test.ts in a process of its own, so that a read that
// aborts the process (V8's "Fatal JavaScript invalid size error" is not catchable) shows as that.
//
// One JSON request per line on stdin: {"mutant": DIR, "base": DIR, "live": DIR, "sql": [SQL, ...]}.
// For each, one JSON line on stdout: {"fresh": OUTCOME, "live": OUTCOME or null}, each OUTCOME
// {"refused": {"error": message, "code": code}} when the cache did not open (or the reload failed),
// else {"results": [...]}, one result per SQL ({"rows": [...]} or {"error": message, "code": code}):
//   fresh: a cache opened on DIR/app.db (with its -wal and -journal);
//   live:  one long-lived cache on LIVE/app.db: the base files are put there in place and reloaded,
//          then the mutant's files in place and reloaded (the WAL scan it remembers is offered).
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { isDbCacheError, openDbCache, type DbCache } from '../../src/index.ts';

const NAMES = ['app.db', 'app.db-wal', 'app.db-journal'] as const;
type Result = { rows: unknown[][] } | { error: string; code?: string };
type Outcome = { results: Result[] } | { refused: { error: string; code?: string } };

/** Writes the files of `from` into `dir` in place (existing files keep their inodes) and removes the others. */
function place(dir: string, from: string): void {
  for (const name of NAMES) {
    const source = path.join(from, name);
    const target = path.join(dir, name);
    if (fs.existsSync(source)) fs.writeFileSync(target, fs.readFileSync(source));
    else fs.rmSync(target, { force: true });
  }
}

function outcome(cache: DbCache, sqls: readonly string[]): Outcome {
  const results = sqls.map((sql): Result => {
    try {
      return { rows: cache.values(sql) };
    } catch (error) {
      return described(error);
    }
  });
  return { results };
}

function described(error: unknown): { error: string; code?: string } {
  return { error: String((error as Error).message ?? error), ...(isDbCacheError(error) ? { code: error.code } : {}) };
}

let live: DbCache | undefined;
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  const request = JSON.parse(line) as { mutant: string; base: string; live: string; sql: string[] };
  const { sql } = request;
  let fresh: Outcome;
  try {
    const cache = await openDbCache(path.join(request.mutant, 'app.db'), { watch: false, busyTimeoutMs: 5 });
    fresh = outcome(cache, sql);
    await cache.close();
  } catch (error) {
    fresh = { refused: described(error) };
  }
  place(request.live, request.base);
  // The live cache opens on the first base that opens (a hot journal's answers BUSY).
  live ??= await openDbCache(path.join(request.live, 'app.db'), { watch: false, busyTimeoutMs: 5 }).catch(() => undefined);
  let reloaded: Outcome | null = null;
  if (live !== undefined) {
    await live.reload().catch(() => undefined);
    place(request.live, request.mutant);
    try {
      await live.reload();
      reloaded = outcome(live, sql);
    } catch (error) {
      reloaded = { refused: described(error) };
    }
  }
  process.stdout.write(`${JSON.stringify({ fresh, live: reloaded })}\n`);
}
await live?.close();
