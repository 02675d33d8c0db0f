import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { betterSqliteVersion } from './better-sqlite3.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function packageVersion(name: string): string {
  try {
    const json = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return json.version ?? '?';
  } catch {
    return '?';
  }
}

function osName(): string {
  try {
    const release = fs.readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1];
    if (pretty !== undefined) return `${pretty}, ${os.type()} ${os.release()}`;
  } catch {
    // not Linux
  }
  return `${os.type()} ${os.release()}`;
}

/** The commit measured, and whether src/ had uncommitted changes. */
function revision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** The machine and software a benchmark ran on, for the JSON results. */
export interface Machine {
  date: string;
  revision: string;
  cpu: string;
  cores: number;
  availableParallelism: number;
  ramGiB: number;
  os: string;
  node: string;
  versions: Record<string, string>;
  tmpdir: string;
  loadavg: number[];
}

export function machine(): Machine {
  return {
    date: new Date().toISOString(),
    revision: revision(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    ramGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: osName(),
    node: process.version,
    versions: {
      'sql.js': packageVersion('sql.js'),
      'better-sqlite3': packageVersion('better-sqlite3'),
      'better-sqlite3 SQLite': betterSqliteVersion(),
      chokidar: packageVersion('chokidar'),
      tsx: packageVersion('tsx'),
      bun: packageVersion('bun'),
    },
    tmpdir: os.tmpdir(),
    loadavg: os.loadavg().map((n) => Number(n.toFixed(2))),
  };
}

/** The machine and software a benchmark ran on, as a markdown list. */
export function environment(): string {
  const m = machine();
  const v = m.versions;
  return [
    `- Date: ${m.date}; dbcache at ${m.revision}`,
    `- CPU: ${m.cpu}, ${m.cores} cores (os.availableParallelism ${m.availableParallelism})`,
    `- RAM: ${m.ramGiB.toFixed(1)} GiB`,
    `- OS: ${m.os}`,
    `- Node ${m.node}; sql.js ${v['sql.js']}, better-sqlite3 ${v['better-sqlite3']} (SQLite ${v['better-sqlite3 SQLite']}), chokidar ${v.chokidar}`,
    `- Temporary databases in ${m.tmpdir}; load average at the end ${m.loadavg.map((n) => n.toFixed(2)).join(' / ')} (1 / 5 / 15 min; other work on the machine shows here)`,
  ].join('\n');
}

/** Writes a benchmark's markdown report to bench/results/<name>.md and returns the path. */
export function saveReport(name: string, markdown: string): string {
  const dir = path.join(root, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.md`);
  fs.writeFileSync(file, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  return file;
}

/** Writes a benchmark's raw results to bench/results/<name>.json (for bench/charts.ts) and returns the path. */
export function saveJson(name: string, data: unknown): string {
  const dir = path.join(root, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** A fresh temporary directory under os.tmpdir(); `cleanup` removes it. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export const projectRoot = root;
