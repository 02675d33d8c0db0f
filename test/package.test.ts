import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sqlite, tempDir, waitFor } from './support/fixtures.ts';

declare const Deno: { execPath(): string } | undefined;

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** Deno for the terminal tests, whichever runtime runs this file. */
const deno = typeof Deno !== 'undefined' ? Deno.execPath() : path.join(root, 'node_modules/.bin/deno');

/** The flags the README documents for Deno, relative to the app's directory: data/ and sql.js, nothing else. */
function readmeFlags(sqlJs: 'wasm' | 'inline'): string[] {
  return [`--allow-read=${sqlJs === 'inline' ? 'data' : 'data,node_modules'}`];
}

/** How the current runtime runs a plain JavaScript file inside the consumer project (Deno: the README's flags, never prompting). */
function run(script: string, args: string[], sqlJs: 'wasm' | 'inline' = 'wasm'): [string, string[]] {
  if (typeof Deno !== 'undefined') return [Deno.execPath(), ['run', '--no-prompt', ...readmeFlags(sqlJs), script, ...args]];
  return [process.execPath, [script, ...args]];
}

/** `command` in a pseudo-terminal, where Deno asks for every permission it lacks instead of denying it. */
function inTerminal(command: readonly string[]): [string, string[]] {
  const quoted = command.map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(' ');
  if (spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0) return ['script', ['-qec', quoted, '/dev/null']];
  return ['python3', ['-c', 'import pty, sys; status = pty.spawn(sys.argv[1:]); sys.exit(status >> 8)', ...command]];
}

/** A child process whose output is collected; stdin stays open and unused. */
function start(command: string, args: string[], cwd: string) {
  const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const state = { output: '', exit: undefined as number | null | undefined };
  child.stdout.on('data', (chunk: Buffer) => (state.output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (state.output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (status) => resolve((state.exit = status))));
  return { child, state, exited };
}

describe('the package packed from a fresh clone, installed by name', () => {
  const { dir, cleanup } = tempDir();
  const clone = path.join(dir, 'clone');
  const project = path.join(dir, 'consumer');
  const file = path.join(project, 'data/app.db');
  let packed: { scripts?: Record<string, string> } = {};
  let tarballFiles: string[] = [];
  let installLog = '';

  before(() => {
    // What is committed, as a new user gets it: nothing built, no dist/. The dev dependencies are
    // the checkout's own (npm ci would fetch the same lockfile's packages, only slower).
    execFileSync('git', ['clone', '--quiet', root, clone]);
    assert.equal(fs.existsSync(path.join(clone, 'dist')), false);
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
    const packs = path.join(dir, 'packs');
    fs.mkdirSync(packs);
    execFileSync(npm, ['pack', '--pack-destination', packs], { cwd: clone, stdio: 'ignore' });
    const tarball = path.join(packs, fs.readdirSync(packs).find((name) => name.endsWith('.tgz'))!);
    tarballFiles = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').map((entry) => entry.replace(/^package\//, ''));
    fs.mkdirSync(path.join(project, 'data'), { recursive: true });
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const install = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, encoding: 'utf8' });
    installLog = `${install.stdout}${install.stderr}`;
    assert.equal(install.status, 0, installLog);
    packed = JSON.parse(fs.readFileSync(path.join(project, 'node_modules/dbcache/package.json'), 'utf8'));
    for (const script of ['package-smoke.mjs', 'terminal-smoke.mjs', 'unwatched-smoke.mjs', 'init-failure.mjs']) {
      fs.copyFileSync(fileURLToPath(new URL(`./scripts/${script}`, import.meta.url)), path.join(project, script));
    }
    sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v INTEGER)'); db.execute('INSERT INTO t VALUES (1)')");
  });
  after(cleanup);

  test('packing builds first, and installing runs no script of the package', () => {
    for (const built of ['dist/index.js', 'dist/index.d.ts', 'dist/bin.js']) assert.ok(tarballFiles.includes(built), `${built} in ${tarballFiles.join(', ')}`);
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(packed.scripts?.[hook], undefined, hook);
    assert.doesNotMatch(installLog, /install scripts|allowScripts|EBADENGINE/);
  });

  test('the published types mention no sql.js, chokidar or tslog types', () => {
    const types = fs.readFileSync(path.join(project, 'node_modules/dbcache/dist/index.d.ts'), 'utf8');
    assert.doesNotMatch(types, /from ['"](sql\.js|chokidar|tslog)/);
    assert.doesNotMatch(types, /import\(['"](sql\.js|chokidar|tslog)/);
  });

  for (const sqlJs of ['wasm', 'inline'] as const) {
    test(`open, query, reload, a watch event and close (sqlJs: ${sqlJs})`, async () => {
      const [command, args] = run('package-smoke.mjs', [file, sqlJs], sqlJs);
      const { child, state, exited } = start(command, args, project);
      const lines = () => state.output.split('\n');
      try {
        await waitFor(() => /^open 1 \d+$/m.test(state.output) || state.exit !== undefined, () => `the smoke script to open (${state.output})`, 120_000);
        const initial = Number(/^open 1 (\d+)$/m.exec(state.output)![1]);
        sqlite(file, "db.execute('INSERT INTO t VALUES (2)')");
        await waitFor(() => lines().includes(`watch 2 ${initial + 1}`), () => `a watch reload (${state.output})`);
        sqlite(file, "db.execute('INSERT INTO t VALUES (3)')");
        child.stdin.write('reload\n');
        await waitFor(() => new RegExp(`^reloaded \\d+ ${initial + 2}$`, 'm').test(state.output), () => `reload() (${state.output})`);
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        assert.equal(await exited, 0, `the process must exit by itself after close(): ${state.output}`);
        clearTimeout(timer);
        assert.equal(state.output.trimEnd().split('\n').at(-1), 'closed');
      } finally {
        child.kill();
      }
    });
  }

  test('the dbcache command runs: query, info and --version', () => {
    const bin = path.join(project, 'node_modules/dbcache/dist/bin.js');
    const [command, args] = run(bin, ['query', file, 'SELECT count(*) AS n FROM t', '--json']);
    const rows = JSON.parse(execFileSync(command, args, { cwd: project, encoding: 'utf8' }));
    assert.ok(rows[0].n >= 1);
    const [infoCommand, infoArgs] = run(bin, ['info', file]);
    assert.match(execFileSync(infoCommand, infoArgs, { cwd: project, encoding: 'utf8' }), /journal mode\s+wal/);
    const [versionCommand, versionArgs] = run(bin, ['--version']);
    assert.equal(execFileSync(versionCommand, versionArgs, { cwd: project, encoding: 'utf8' }), `dbcache ${JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version}\n`);
  });

  for (const sqlJs of ['wasm', 'inline'] as const) {
    test(`Deno in a terminal with exactly the README's flags asks for nothing (sqlJs: ${sqlJs})`, async () => {
      const [command, args] = inTerminal([deno, 'run', ...readmeFlags(sqlJs), 'terminal-smoke.mjs', sqlJs]);
      const { child, state, exited } = start(command, args, project);
      const prompted = () => /Deno requests|Allow\?/.test(state.output);
      try {
        await waitFor(() => /open 1 \d+ 4/.test(state.output) || prompted() || state.exit !== undefined, () => `the app to open (${state.output})`, 120_000);
        assert.equal(prompted(), false, state.output);
        sqlite(file, "db.execute('INSERT INTO t VALUES (10)')");
        await waitFor(() => /closed/.test(state.output) || prompted() || state.exit !== undefined, () => `a watch reload (${state.output})`, 30_000);
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        assert.equal(await exited, 0, state.output);
        clearTimeout(timer);
        assert.equal(prompted(), false, state.output);
        assert.match(state.output, /watch \d+ \d+\r?\nclosed/);
      } finally {
        child.kill();
      }
    });
  }

  test('with watch: false, Deno in a terminal with the README\'s flags asks for nothing either', async () => {
    const [command, args] = inTerminal([deno, 'run', ...readmeFlags('wasm'), 'unwatched-smoke.mjs']);
    const { child, state, exited } = start(command, args, project);
    const prompted = () => /Deno requests|Allow\?/.test(state.output);
    try {
      await waitFor(() => /closed/.test(state.output) || prompted() || state.exit !== undefined, () => `the app to open and close (${state.output})`, 120_000);
      assert.equal(prompted(), false, state.output);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      assert.equal(await exited, 0, state.output);
      clearTimeout(timer);
      assert.match(state.output, /open 1 \d+\r?\nclosed/);
    } finally {
      child.kill();
    }
  });

  test('Deno without read access to node_modules: the caller gets the error and the process lives on', () => {
    const result = spawnSync(deno, ['run', '--no-prompt', '--allow-read=data', 'init-failure.mjs'], { cwd: project, encoding: 'utf8' });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    assert.equal(result.stdout, 'caught DbCacheError IO\nalive\n');
    assert.equal(result.stderr, '');
  });
});
