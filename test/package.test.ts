import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sqlite, tempDir, waitFor } from './support/fixtures.ts';

declare const Deno: { execPath(): string } | undefined;

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The flags the README documents for Deno: read the database's directory and sql.js; chokidar's two variables. */
function denoFlags(dbDir: string, sqlJs: 'wasm' | 'inline'): string[] {
  return [
    '--no-prompt',
    `--allow-read=${sqlJs === 'inline' ? dbDir : `${dbDir},node_modules`}`,
    '--allow-env=CHOKIDAR_USEPOLLING,CHOKIDAR_INTERVAL',
  ];
}

/** How the current runtime runs a plain JavaScript file inside the consumer project. */
function run(script: string, args: string[], dbDir: string, sqlJs: 'wasm' | 'inline' = 'wasm'): [string, string[]] {
  if (typeof Deno !== 'undefined') return [Deno.execPath(), ['run', ...denoFlags(dbDir, sqlJs), script, ...args]];
  return [process.execPath, [script, ...args]];
}

describe('the packed package, installed by name', () => {
  const { dir, cleanup } = tempDir();
  const project = path.join(dir, 'consumer');
  const data = path.join(dir, 'data');
  const file = path.join(data, 'app.db');

  before(() => {
    if (!fs.existsSync(path.join(root, 'dist/index.js'))) execFileSync(npm, ['run', 'build'], { cwd: root, stdio: 'ignore' });
    const tarball = execFileSync(npm, ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }).trim().split('\n').at(-1)!;
    fs.mkdirSync(project);
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, tarball)], { cwd: project, stdio: 'ignore' });
    fs.copyFileSync(fileURLToPath(new URL('./scripts/package-smoke.mjs', import.meta.url)), path.join(project, 'smoke.mjs'));
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1)')");
  });
  after(cleanup);

  test('the published types mention no sql.js, chokidar or tslog types', () => {
    const types = fs.readFileSync(path.join(project, 'node_modules/dbcache/dist/index.d.ts'), 'utf8');
    assert.doesNotMatch(types, /from ['"](sql\.js|chokidar|tslog)/);
    assert.doesNotMatch(types, /import\(['"](sql\.js|chokidar|tslog)/);
  });

  for (const sqlJs of ['wasm', 'inline'] as const) {
    test(`open, query, reload, a watch event and close (sqlJs: ${sqlJs})`, async () => {
      const [command, args] = run('smoke.mjs', [file, sqlJs], data, sqlJs);
      const child = spawn(command, args, { cwd: project, stdio: ['pipe', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let errors = '';
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts);
      });
      child.stderr.on("data", (chunk: Buffer) => (errors += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      try {
        await waitFor(() => lines.length > 0, () => `the smoke script to open (${errors})`, 20_000);
        const start = Number(lines[0]!.split(" ")[2]);
        assert.match(lines[0]!, /^open 1 \d+$/);
        sqlite(file, "db.execute('INSERT INTO t VALUES (2)')");
        await waitFor(() => lines.some((line) => line === `watch 2 ${start + 1}`), () => `a watch reload (${lines.join(' | ')}; stderr: ${errors})`);
        sqlite(file, "db.execute('INSERT INTO t VALUES (3)')");
        child.stdin.write('reload\n');
        await waitFor(() => lines.some((line) => new RegExp(`^reloaded \\d+ ${start + 2}$`).test(line)), () => `reload() (${lines.join(' | ')}; stderr: ${errors})`);
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        assert.equal(await exited, 0, `the process must exit by itself after close(): ${errors}`);
        clearTimeout(timer);
        assert.equal(lines.at(-1), 'closed');
      } finally {
        child.kill();
      }
    });
  }

  test('the dbcache command runs: query and info', () => {
    const bin = path.join(project, 'node_modules/dbcache/dist/bin.js');
    const [command, args] = run(bin, ['query', file, 'SELECT count(*) AS n FROM t', '--json'], data);
    const rows = JSON.parse(execFileSync(command, args, { cwd: project, encoding: 'utf8' }));
    assert.ok(rows[0].n >= 1);
    const [infoCommand, infoArgs] = run(bin, ['info', file], data);
    assert.match(execFileSync(infoCommand, infoArgs, { cwd: project, encoding: 'utf8' }), /journal mode\s+wal/);
  });
});

