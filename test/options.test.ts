import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDbCache, type DbCacheOptions } from '../src/index.ts';
import { runtimeCommand, sqlite, tempDir, waitFor } from './support/fixtures.ts';

describe('option names', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  sqlite(file, "db.execute('CREATE TABLE t(v)')");
  after(cleanup);

  test('an unknown option is a TypeError that names the closest known option', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ wacth: false }, /^options\.wacth is not an option of openDbCache\(\); did you mean watch\?$/],
      [{ debounce: 5 }, /did you mean debounceMs\?/],
      [{ persistant: true }, /did you mean persistent\?/],
      [{ BigInt: true }, /did you mean bigint\?/],
      [{ watch: false, sqljs: 'wasm' }, /did you mean sqlJs\?/],
      [{ somethingElseEntirely: 1 }, /options\.somethingElseEntirely is not an option of openDbCache\(\); the options are watch, persistent, debounceMs/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(openDbCache(file, options as DbCacheOptions), { name: 'TypeError', message });
    }
  });

  test('a bad value of every option is a TypeError or RangeError that names the option and the value', async () => {
    const cases: Array<[Record<string, unknown>, 'TypeError' | 'RangeError', RegExp]> = [
      [{ watch: 'yes' }, 'TypeError', /^options\.watch .*got string$/],
      [{ persistent: 1 }, 'TypeError', /^options\.persistent .*got number$/],
      [{ debounceMs: -1 }, 'RangeError', /^options\.debounceMs .*got -1$/],
      [{ maxWaitMs: 'x' }, 'TypeError', /^options\.maxWaitMs .*got string$/],
      [{ poll: -3 }, 'RangeError', /^options\.poll .*got -3$/],
      [{ onReload: 5 }, 'TypeError', /^options\.onReload .*got number$/],
      [{ logger: {} }, 'TypeError', /^options\.logger must have a debug\(\) method$/],
      [{ signal: {} }, 'TypeError', /^options\.signal must be an AbortSignal$/],
      [{ sqlJs: 'asm' }, 'TypeError', /^options\.sqlJs .*got asm$/],
      [{ bigint: 'no' }, 'TypeError', /^options\.bigint .*got string$/],
      [{ busyTimeoutMs: Number.NaN }, 'TypeError', /^options\.busyTimeoutMs .*got NaN$/],
      [{ quickCheck: 1 }, 'TypeError', /^options\.quickCheck .*got number$/],
      [{ maxStatements: 1.5 }, 'RangeError', /^options\.maxStatements .*got 1\.5$/],
      [{ cacheSize: 0.5 }, 'RangeError', /^options\.cacheSize .*got 0\.5$/],
      [{ memo: 'yes' }, 'TypeError', /^options\.memo .*got string$/],
    ];
    for (const [options, name, message] of cases) {
      await assert.rejects(openDbCache(file, options as DbCacheOptions), { name, message }, JSON.stringify(options));
    }
  });

  test('every documented option is accepted', async () => {
    const cache = await openDbCache(file, {
      watch: false,
      persistent: false,
      debounceMs: 5,
      maxWaitMs: 25,
      poll: false,
      onReload: () => undefined,
      logger: console,
      signal: new AbortController().signal,
      sqlJs: 'wasm',
      bigint: false,
      busyTimeoutMs: 5000,
      quickCheck: false,
      maxStatements: 256,
      cacheSize: 16000,
      memo: false,
    });
    assert.equal(cache.generation, 1);
    await cache.close();
    await assert.rejects(openDbCache(file, { persistent: 'yes' as never }), { name: 'TypeError', message: /options\.persistent/ });
  });
});

describe('persistent', () => {
  const script = fileURLToPath(new URL('./scripts/persistent-cache.ts', import.meta.url));

  for (const mode of ['events', 'polling'] as const) {
    test(`persistent: true keeps a script that only watches alive until close (${mode}); without it the script ends at once`, async () => {
      const { dir, cleanup } = tempDir();
      const file = path.join(dir, 'app.db');
      sqlite(file, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(v)')");
      const start = (extra: string[]) => {
        const [command, args] = runtimeCommand(script);
        const child = spawn(command, [...args, file, ...(mode === 'polling' ? ['--poll'] : []), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
        const state = { output: '' };
        child.stdout.on('data', (chunk) => (state.output += chunk));
        child.stderr.on('data', (chunk) => (state.output += chunk));
        const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        return { child, state, exited: exited.finally(() => clearTimeout(timer)) };
      };
      try {
        const brief = start([]);
        assert.equal(await brief.exited, 0, brief.state.output);
        assert.equal(brief.state.output, 'open 1\n');

        const kept = start(['--persistent']);
        let exitedEarly = false;
        void kept.exited.then(() => (exitedEarly = true));
        // Starting the runtime (and tsx) on a loaded machine can take many seconds: the limit only catches a hang.
        await waitFor(() => kept.state.output.includes('open 1\n') || exitedEarly, 'the script to open', 120_000);
        sqlite(file, "db.execute(\"INSERT INTO t VALUES ('x')\")");
        await waitFor(() => kept.state.output.includes('reload 2\n') || exitedEarly, 'a reload in the still-running script', 20_000);
        assert.equal(exitedEarly, false, kept.state.output);
        sqlite(file, "db.execute(\"INSERT INTO t VALUES ('stop')\")");
        assert.equal(await kept.exited, 0, kept.state.output);
        assert.equal(kept.state.output, 'open 1\nreload 2\nreload 3\nclosed\n');
      } finally {
        cleanup();
      }
    });
  }
});
