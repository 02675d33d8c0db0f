// An application bundled with esbuild (`--bundle --platform=node --format=esm`), run as users run
// it. sql.js's Emscripten glue calls `require('node:fs')` and reads `__dirname` when it runs in
// Node, which esbuild's ESM output does not provide: the default 'wasm' build is therefore loaded
// by dbcache with the runtime's own require (from node_modules, where its .wasm is anyway), and
// the bundled 'inline' build needs the `createRequire` banner; without it, openDbCache rejects
// with ENGINE_UNAVAILABLE and a message that names the banner.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sqlite, tempDir } from './support/fixtures.ts';

declare const Deno: { execPath(): string } | undefined;
declare const Bun: unknown;

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const esbuild = path.join(path.dirname(createRequire(import.meta.url).resolve('esbuild/package.json')), 'bin', 'esbuild');
const BANNER = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

const APP = `
import { openDbCache } from ${JSON.stringify(path.join(repo, 'src', 'index.ts'))};
try {
  const cache = await openDbCache(process.argv[2], { watch: false, sqlJs: process.argv[3] });
  console.log(JSON.stringify({ rows: cache.values('SELECT v, length(randomblob(4)) FROM t') }));
  await cache.close();
} catch (error) {
  console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message }));
}
`;

interface Outcome {
  readonly rows?: unknown[][];
  readonly name?: string;
  readonly code?: string;
  readonly message?: string;
}

/** Bundles the app into `dir` (with the banner or not) and runs it on `db` with the `sqlJs` choice, in the runtime running the tests. */
function bundleAndRun(dir: string, banner: boolean, db: string, choice: 'wasm' | 'inline'): Outcome {
  const entry = path.join(dir, 'app.ts');
  const out = path.join(dir, banner ? 'with-banner.mjs' : 'plain.mjs');
  fs.writeFileSync(entry, APP);
  const args = [entry, '--bundle', '--platform=node', '--format=esm', `--outfile=${out}`, '--log-level=error'];
  if (banner) args.push(`--banner:js=${BANNER}`);
  const built = spawnSync(esbuild, args, { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  // Bun would install a package it cannot find from the registry: not here.
  const [command, runArgs] =
    typeof Deno !== 'undefined' ? [Deno.execPath(), ['run', '-A', out]] : typeof Bun !== 'undefined' ? [process.execPath, ['--no-install', out]] : [process.execPath, [out]];
  const run = spawnSync(command, [...runArgs, db, choice], { encoding: 'utf8', cwd: dir });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Outcome;
}

describe('an application bundled with esbuild (ESM, platform node)', () => {
  const { dir: outside, cleanup } = tempDir();
  const db = path.join(outside, 'app.db');
  let inside: string;

  before(() => {
    sqlite(db, "db.execute('CREATE TABLE t(v)'); db.execute('INSERT INTO t VALUES (42)')");
    fs.mkdirSync(path.join(repo, '.scratch'), { recursive: true });
    inside = fs.mkdtempSync(path.join(repo, '.scratch', 'bundle-'));
  });
  after(() => {
    fs.rmSync(inside, { recursive: true, force: true });
    cleanup();
  });

  test("the default 'wasm' build works without a banner where node_modules/sql.js is reachable", () => {
    assert.deepEqual(bundleAndRun(inside, false, db, 'wasm'), { rows: [[42, 4]] });
  });

  test("'inline' with the createRequire banner works anywhere, node_modules or not", () => {
    assert.ok(!fs.existsSync(path.join(os.tmpdir(), 'node_modules')), 'the temporary directory has a node_modules above it');
    assert.deepEqual(bundleAndRun(outside, true, db, 'inline'), { rows: [[42, 4]] });
  });

  test("'inline' without the banner rejects with ENGINE_UNAVAILABLE, and the message names the banner", () => {
    const outcome = bundleAndRun(outside, false, db, 'inline');
    if (typeof Bun !== 'undefined') {
      // Bun gives every ES module a require of its own: the bundle works as it is.
      assert.deepEqual(outcome, { rows: [[42, 4]] });
      return;
    }
    assert.equal(outcome.name, 'DbCacheError');
    assert.equal(outcome.code, 'ENGINE_UNAVAILABLE');
    assert.match(outcome.message!, /createRequire/);
    assert.match(outcome.message!, /sqlJs: 'inline'/);
  });

  test("'wasm' where node_modules/sql.js cannot be found rejects with ENGINE_UNAVAILABLE, and the message says what to do", () => {
    const outcome = bundleAndRun(outside, true, db, 'wasm');
    assert.equal(outcome.name, 'DbCacheError');
    assert.equal(outcome.code, 'ENGINE_UNAVAILABLE');
    assert.match(outcome.message!, /node_modules\/sql\.js/);
    assert.match(outcome.message!, /'inline'/);
    assert.doesNotMatch(outcome.message!, /\n/);
  });
});
