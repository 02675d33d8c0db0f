import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { formatTable, runCli } from '../src/cli.ts';
import { sqlite, tempDir, waitFor } from './support/fixtures.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, output: { out: (line: string) => void out.push(line), err: (line: string) => void err.push(line) } };
}

describe('dbcache command line', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  after(cleanup);
  sqlite(
    file,
    "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)'); db.execute(\"INSERT INTO t VALUES (1, 'one', x'00ff'), (2, NULL, NULL)\")",
  );

  test('query prints a table, or JSON with --json', async () => {
    let run = capture();
    assert.equal(await runCli(['query', file, 'SELECT * FROM t ORDER BY id'], run.output), 0);
    assert.equal(run.out[0], ['id  name  data', '--  ----  -------', "1   one   x'00ff'", '2   NULL  NULL', '(2 rows)'].join('\n'));
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT id, name FROM t ORDER BY id', '--json'], run.output), 0);
    assert.deepEqual(JSON.parse(run.out[0]!), [{ id: 1, name: 'one' }, { id: 2, name: null }]);
  });

  test('info reports the journal mode, pages and WAL frames', async () => {
    const run = capture();
    assert.equal(await runCli(['info', file, '--json'], run.output), 0);
    const info = JSON.parse(run.out[0]!);
    assert.equal(info.journalMode, 'wal');
    assert.equal(info.pageSize, 4096);
    assert.ok(info.pages >= 2);
    assert.match(info.version, /^w:/);
    const text = capture();
    assert.equal(await runCli(['info', file], text.output), 0);
    assert.match(text.out.join('\n'), /journal mode\s+wal/);
  });

  test('watch prints the first state and every reload until aborted', async () => {
    const run = capture();
    const controller = new AbortController();
    const done = runCli(['watch', file, 'SELECT count(*) AS n FROM t', '--json'], run.output, controller.signal);
    await waitFor(() => run.out.length >= 2, 'the first state');
    assert.equal(JSON.parse(run.out[0]!).generation, 1);
    assert.deepEqual(JSON.parse(run.out[1]!), [{ n: 2 }]);
    sqlite(file, "db.execute('INSERT INTO t(name) VALUES (\\'three\\')')");
    await waitFor(() => run.out.some((line) => line === '[{"n":3}]'), 'the reload after a commit');
    controller.abort();
    assert.equal(await done, 0);
  });

  test('watch with bad SQL exits 1 and closes its cache', async () => {
    const run = capture();
    assert.equal(await runCli(['watch', file, 'SELECT * FROM nope'], run.output, new AbortController().signal), 1);
    assert.match(run.err.join('\n'), /no such table: nope/);
  });

  test('bad usage exits 2, unreadable databases and bad SQL exit 1', async () => {
    for (const args of [[], ['frob', file], ['query', file], ['info'], ['query', file, 'SELECT 1', 'extra'], ['query', file, 'SELECT 1', '--nope']]) {
      const run = capture();
      assert.equal(await runCli(args, run.output), 2, args.join(' '));
      assert.match(run.err.join('\n'), /Usage:/);
    }
    let run = capture();
    assert.equal(await runCli(['query', path.join(dir, 'missing.db'), 'SELECT 1'], run.output), 1);
    assert.match(run.err[0]!, /missing\.db.*does not exist/);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT * FROM nope'], run.output), 1);
    assert.match(run.err[0]!, /no such table: nope/);
    fs.writeFileSync(path.join(dir, 'text.db'), 'hello '.repeat(40));
    run = capture();
    assert.equal(await runCli(['info', path.join(dir, 'text.db')], run.output), 1);
    assert.match(run.err[0]!, /not a database/);
  });

  test('formatTable handles no columns and one row', () => {
    assert.equal(formatTable([], []), '(0 rows)');
    assert.equal(formatTable(['a'], [{ a: 1n }]), 'a\n-\n1\n(1 row)');
  });
});
