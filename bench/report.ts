/**
 * Puts the results of the last `npm run bench` into bench/README.md and README.md, between
 * `<!-- bench:results:start -->` / `<!-- bench:results:end -->` and `<!-- bench:summary:start -->` /
 * `<!-- bench:summary:end -->`: the result files verbatim (headings demoted) and a budget table
 * computed from reload.json and query.json. Refuses to mix runs: every result file must name the
 * same commit, or the script fails and says which differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const results = path.join(here, 'results');
/** In the order they appear; a benchmark that did not run this time is an error, not a gap. */
const REPORTS = ['reload', 'incremental', 'noop-window', 'freshness', 'query'] as const;

interface Ratio {
  readonly median: number;
}
interface ReloadSize {
  readonly label: string;
  readonly readFile: Ratio;
  readonly dbcacheReload: Ratio;
  readonly betterSqlite3Deserialize: Ratio;
  readonly noopRollback?: { readonly p99: number; readonly mean: number };
  readonly noopWal?: { readonly p99: number; readonly mean: number };
}
interface Incremental {
  readonly wal: readonly { readonly fileBytes: number; readonly reloadMs: number; readonly readMs: number; readonly visibleP50: number; readonly visibleP99: number }[];
  readonly memory: readonly { readonly fileBytes: number; readonly mode: 'wal' | 'delete'; readonly peak: number }[];
}
interface Budget {
  readonly name: string;
  readonly against: string;
  readonly ratio: number;
  readonly budget: number;
  readonly met: boolean;
}

function revisionOf(markdown: string, name: string): string {
  const match = /dbcache at ([0-9a-f]{7,}[^;\n]*)/.exec(markdown);
  if (match === null) throw new Error(`bench/results/${name}.md names no commit ("dbcache at …")`);
  return match[1]!.trim();
}

function replaceBlock(file: string, name: string, content: string): void {
  const text = fs.readFileSync(file, 'utf8');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to < from) throw new Error(`${path.relative(root, file)} has no ${start} … ${end} block`);
  fs.writeFileSync(file, `${text.slice(0, from + start.length)}\n${content.trim()}\n${text.slice(to)}`);
}

const mib = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const ratio = (value: number): string => `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;

function main(): void {
  const reports = REPORTS.map((name) => {
    const file = path.join(results, `${name}.md`);
    if (!fs.existsSync(file)) throw new Error(`bench/results/${name}.md is missing: run npm run bench`);
    const markdown = fs.readFileSync(file, 'utf8');
    return { name, markdown, revision: revisionOf(markdown, name) };
  });
  const revisions = new Set(reports.map((report) => report.revision));
  if (revisions.size !== 1) {
    throw new Error(`the result files come from different runs (${reports.map((r) => `${r.name}: ${r.revision}`).join(', ')}): run npm run bench`);
  }
  const revision = reports[0]!.revision;
  const reload = JSON.parse(fs.readFileSync(path.join(results, 'reload.json'), 'utf8')) as { machine: { date: string }; sizes: ReloadSize[] };
  const query = JSON.parse(fs.readFileSync(path.join(results, 'query.json'), 'utf8')) as { budgets: Budget[] };

  const rows: string[][] = [];
  const largest = reload.sizes.at(-1)!;
  const reloadVsRead = largest.dbcacheReload.median / largest.readFile.median;
  rows.push([`full reload, ${largest.label}, vs \`fs.promises.readFile\``, '≤ 1.10×', ratio(reloadVsRead), reloadVsRead <= 1.1 ? 'met' : '**not met**']);
  for (const size of reload.sizes) {
    const value = size.dbcacheReload.median / size.betterSqlite3Deserialize.median;
    rows.push([`full reload, ${size.label}, vs better-sqlite3 read + deserialize`, '≤ 0.7×', ratio(value), value <= 0.7 ? 'met' : '**not met**']);
  }
  const incremental = JSON.parse(fs.readFileSync(path.join(results, 'incremental.json'), 'utf8')) as Incremental;
  // The budgets name a 1 GiB database: the row nearest to it (larger sizes are in the tables).
  const nearestGiB = <T extends { readonly fileBytes: number }>(rows: readonly T[]): T | undefined =>
    rows.reduce<T | undefined>((best, row) => (best === undefined || Math.abs(Math.log2(row.fileBytes / 2 ** 30)) < Math.abs(Math.log2(best.fileBytes / 2 ** 30)) ? row : best), undefined);
  const gibWal = nearestGiB(incremental.wal);
  if (gibWal !== undefined) {
    const size = mib(gibWal.fileBytes);
    const value = gibWal.reloadMs / gibWal.readMs;
    rows.push([`reload after a one-row commit, ${size}, WAL, writer open, vs reading the file`, '≤ 0.02×', value < 0.1 ? `${value.toFixed(3)}×` : ratio(value), value <= 0.02 ? 'met' : '**not met**']);
    const fresh = gibWal.visibleP50 <= 15 && gibWal.visibleP99 <= 50;
    rows.push([`commit → visible with watch on, ${size}, WAL (p50 / p99)`, '≤ 15 / 50 ms', `${gibWal.visibleP50.toFixed(1)} / ${gibWal.visibleP99.toFixed(1)} ms`, fresh ? 'met' : '**not met**']);
  }
  const gibBytes = nearestGiB(incremental.memory)?.fileBytes;
  for (const row of incremental.memory.filter((r) => gibBytes !== undefined && Math.abs(r.fileBytes / gibBytes - 1) < 0.05)) {
    const value = row.peak / row.fileBytes;
    rows.push([`peak RSS, previous version leased, ${mib(row.fileBytes)}, ${row.mode === 'wal' ? 'WAL' : 'rollback'}, vs the database`, '≤ 1.3×', ratio(value), value <= 1.3 ? 'met' : '**not met**']);
  }
  for (const [mode, noop] of [['rollback', largest.noopRollback], ['WAL', largest.noopWal]] as const) {
    if (noop === undefined) continue;
    rows.push([`no-op reload, ${largest.label}, ${mode} (mean / p99)`, '≤ 0.2 ms', `${noop.mean.toFixed(3)} / ${noop.p99.toFixed(3)} ms`, noop.p99 <= 0.2 ? 'met' : '**not met**']);
  }
  for (const budget of query.budgets) {
    rows.push([`${budget.name}, vs ${budget.against}`, `≥ ${budget.budget}×`, ratio(budget.ratio), budget.met ? 'met' : '**not met**']);
  }
  const table = [
    '| what | budget | measured | |',
    '| --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  const freshness = /\n(\| journal mode \| DB \|[\s\S]*?)\n\n/.exec(reports.find((r) => r.name === 'freshness')!.markdown)?.[1] ?? '';
  const stamp = `One \`npm run bench\` run at commit ${revision} (${reload.machine.date.slice(0, 10)}); machine and versions in [bench/README.md](bench/README.md#results).`;

  replaceBlock(
    path.join(root, 'README.md'),
    'summary',
    `${stamp}\n\n${table}\n\nCommit by another process → visible with watch on (ms):\n\n${freshness}`,
  );
  const sections = reports.map((report) => report.markdown.replace(/^(#+) /gm, (_, hashes: string) => `${hashes}## `)).join('\n\n');
  replaceBlock(
    path.join(here, 'README.md'),
    'results',
    `${stamp.replace('](bench/README.md#results)', '](#results)').replace('; machine and versions in [bench/README.md](#results)', '')}\n\n### Budgets\n\n${table}\n\n${sections}`,
  );
  console.log(`README.md and bench/README.md: results of the run at ${revision}`);
}

try {
  main();
} catch (error) {
  console.error(`bench:report: ${(error as Error).message}`);
  process.exitCode = 1;
}
