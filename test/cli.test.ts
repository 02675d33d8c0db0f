import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { jsonValue, parseParams, runCli, tableCell } from '../src/cli.ts';
import { openDbCache } from '../src/index.ts';
import { sqlite, tempDir, waitFor } from './support/fixtures.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    text: () => out.join('\n'),
    output: { out: (text: string) => void out.push(text), err: (text: string) => void err.push(text) },
  };
}

describe('dbcache command line', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'app.db');
  after(cleanup);
  sqlite(
    file,
    "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)'); db.execute(\"INSERT INTO t VALUES (1, 'one', x'00ff'), (2, NULL, NULL), (9007199254740993, 'big', x'')\")",
  );

  test('query prints a table, a JSON array with --json, JSON lines with --jsonl', async () => {
    let run = capture();
    assert.equal(await runCli(['query', file, 'SELECT * FROM t WHERE id < 3 ORDER BY id'], run.output), 0);
    assert.equal(run.text(), ['id  name  data', '--  ----  -------', "1   one   x'00ff'", '2   NULL  NULL', '(2 rows)'].join('\n'));
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT id, name FROM t WHERE id < 3 ORDER BY id', '--json'], run.output), 0);
    assert.deepEqual(JSON.parse(run.text()), [{ id: 1, name: 'one' }, { id: 2, name: null }]);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT id FROM t WHERE id < 3 ORDER BY id', '--jsonl'], run.output), 0);
    assert.deepEqual(run.text().split('\n').map((line) => JSON.parse(line)), [{ id: 1 }, { id: 2 }]);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT * FROM t WHERE 0', '--json'], run.output), 0);
    assert.deepEqual(JSON.parse(run.text()), []);
  });

  test('JSON keeps integers exact and encodes blobs as {"$blob": base64}', async () => {
    const run = capture();
    assert.equal(await runCli(['query', file, 'SELECT id, data FROM t WHERE data IS NOT NULL ORDER BY id', '--json'], run.output), 0);
    assert.equal(run.text(), '[{"id":1,"data":{"$blob":"AP8="}},\n{"id":9007199254740993,"data":{"$blob":""}}]');
    assert.equal(jsonValue(Uint8Array.from([1, 1, 2])), '{"$blob":"AQEC"}');
    assert.equal(jsonValue(2n ** 63n - 1n), '9223372036854775807');
    assert.equal(jsonValue('a"b\n'), '"a\\"b\\n"');
    assert.equal(jsonValue(null), 'null');
  });

  test('query binds values after the SQL, --param name=value and --params JSON', async () => {
    let run = capture();
    assert.equal(await runCli(['query', file, 'SELECT name FROM t WHERE id = ? OR name = ?', '2', 'one', '--jsonl'], run.output), 0);
    assert.deepEqual(run.text().split('\n').map((line) => JSON.parse(line)), [{ name: 'one' }, { name: null }]);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT :a + 1 AS n, $b AS s', '--param', 'a=41', '--param', '$b=007', '--json'], run.output), 0);
    assert.deepEqual(JSON.parse(run.text()), [{ n: 42, s: '007' }]);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT id FROM t WHERE data = ?', '--params', '[{"$blob":"AP8="}]', '--json'], run.output), 0);
    assert.deepEqual(JSON.parse(run.text()), [{ id: 1 }]);
    assert.deepEqual(parseParams(['1', '-1.5', '007', '1e3', 'x'], undefined, undefined), [1, -1.5, '007', '1e3', 'x']);
    assert.deepEqual(parseParams([], undefined, '{"a":null}'), { a: null });
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT ?', '1', '--params', '[1]'], run.output), 2);
    assert.match(run.err.join('\n'), /one way/);
  });

  test('table cells escape newlines and control characters, so rows stay aligned', async () => {
    const multi = path.join(dir, 'multi.db');
    sqlite(multi, "db.execute('CREATE TABLE m(a TEXT, b TEXT)'); db.execute(\"INSERT INTO m VALUES ('line1' || char(10) || 'line2', 'x'), ('t' || char(9) || 'ab' || char(1), 'y')\")");
    const run = capture();
    assert.equal(await runCli(['query', multi, 'SELECT a, b FROM m'], run.output), 0);
    const lines = run.text().split('\n');
    assert.deepEqual(lines, ['a             b', '------------  -', 'line1\\nline2  x', 't\\tab\\x01     y', '(2 rows)']);
    assert.equal(tableCell('x'.repeat(500)).length, 200);
  });

  test('300,000 rows stream in table, JSON array and JSON lines form', async () => {
    const big = path.join(dir, 'big.db');
    sqlite(big, "db.execute('CREATE TABLE r(id INTEGER PRIMARY KEY, v TEXT)'); db.execute(\"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300000) INSERT INTO r SELECT i, 'v' || i FROM s\")");
    // Counts lines as they arrive, without keeping them: the output is the only thing that grows.
    const counting = () => {
      const state = { lines: 0, chunks: 0, first: '', last: '', err: [] as string[] };
      const output = {
        out: (text: string) => {
          if (state.chunks++ === 0) state.first = text.slice(0, text.indexOf('\n') + 1 || undefined);
          state.lines += text.split('\n').length;
          state.last = text.slice(text.lastIndexOf('\n') + 1);
        },
        err: (text: string) => void state.err.push(text),
      };
      return { state, output };
    };
    let run = counting();
    assert.equal(await runCli(['query', big, 'SELECT id, v FROM r ORDER BY id'], run.output), 0, run.state.err.join('\n'));
    assert.equal(run.state.lines, 300_000 + 3);
    assert.equal(run.state.last, '(300000 rows)');
    assert.ok(run.state.chunks > 10, 'written in chunks, not in one string');
    run = counting();
    assert.equal(await runCli(['query', big, 'SELECT id FROM r ORDER BY id', '--jsonl'], run.output), 0, run.state.err.join('\n'));
    assert.equal(run.state.lines, 300_000);
    assert.equal(run.state.last, '{"id":300000}');
    const chunks: string[] = [];
    assert.equal(await runCli(['query', big, 'SELECT id, v FROM r ORDER BY id', '--json'], { out: (text) => void chunks.push(text), err: () => undefined }), 0);
    const rows = JSON.parse(chunks.join('\n')) as Array<{ id: number; v: string }>;
    assert.equal(rows.length, 300_000);
    assert.deepEqual(rows[299_999], { id: 300_000, v: 'v300000' });
  });

  test('--version, and --help for every command', async () => {
    const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    for (const args of [['--version'], ['-v'], ['query', '--version']]) {
      const run = capture();
      assert.equal(await runCli(args, run.output), 0);
      assert.equal(run.text(), `dbcache ${version}`);
    }
    for (const command of ['query', 'watch', 'info']) {
      for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
        const run = capture();
        assert.equal(await runCli(args, run.output), 0, args.join(' '));
        assert.match(run.text(), new RegExp(`^Usage: dbcache ${command} <db>`));
      }
    }
    const run = capture();
    assert.equal(await runCli(['--help'], run.output), 0);
    assert.match(run.text(), /dbcache query <db> <sql>/);
  });

  test('with --json or --jsonl, errors are JSON on stderr', async () => {
    let run = capture();
    assert.equal(await runCli(['query', file, 'SELECT * FROM nope', '--json'], run.output), 1);
    assert.deepEqual(Object.keys(JSON.parse(run.err.join('\n')).error), ['code', 'message']);
    assert.equal(JSON.parse(run.err.join('\n')).error.code, 'QUERY');
    assert.match(JSON.parse(run.err.join('\n')).error.message, /no such table: nope/);
    run = capture();
    assert.equal(await runCli(['query', path.join(dir, 'missing.db'), 'SELECT 1', '--jsonl'], run.output), 1);
    assert.equal(JSON.parse(run.err.join('\n')).error.code, 'NOT_FOUND');
    run = capture();
    assert.equal(await runCli(['query', file, '--nope', '--json'], run.output), 2);
    assert.equal(JSON.parse(run.err.join('\n')).error.code, 'USAGE');
    assert.deepEqual(run.out, []);
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT 1', '--json', '--jsonl'], run.output), 2);
    assert.equal(JSON.parse(run.err.join('\n')).error.code, 'USAGE');
  });

  test('info explains its fields', async () => {
    const run = capture();
    assert.equal(await runCli(['info', file, '--json'], run.output), 0);
    const info = JSON.parse(run.out[0]!);
    assert.equal(info.journalMode, 'wal');
    assert.equal(info.pageSize, 4096);
    assert.ok(info.pages >= 2);
    assert.match(info.version, /^w:/);
    const text = capture();
    assert.equal(await runCli(['info', file], text.output), 0);
    assert.match(text.text(), /journal mode\s+wal/);
    assert.match(text.text(), /WAL frames pending\s+(-|\d+ \(committed, not yet checkpointed into the database file\))/);
    const help = capture();
    assert.equal(await runCli(['info', '--help'], help.output), 0);
    assert.match(help.text(), /WAL frames pending\s+committed frames not yet checkpointed/);
  });

  test('watch prints the first state and every reload until aborted', async () => {
    const run = capture();
    const controller = new AbortController();
    const done = runCli(['watch', file, 'SELECT count(*) AS n FROM t', '--json'], run.output, controller.signal);
    await waitFor(() => run.out.length >= 2, 'the first state');
    const first = JSON.parse(run.out[0]!);
    assert.equal(first.event, 'open');
    assert.equal(first.generation, 1);
    assert.equal(typeof first.lastWriteAgoMs, 'number');
    assert.deepEqual(JSON.parse(run.out[1]!), [{ n: 3 }]);
    sqlite(file, "db.execute('INSERT INTO t(name) VALUES (\\'four\\')')");
    await waitFor(() => run.out.some((line) => line === '[{"n":4}]'), 'the reload after a commit');
    assert.ok(run.out.some((line) => line.startsWith('{"event":"reload"')));
    controller.abort();
    assert.equal(await done, 0);
  });

  test('watch says when a file was last written, and reports a repeated failure once until it changes', async () => {
    const watched = path.join(dir, 'watched.db');
    sqlite(watched, "db.execute('CREATE TABLE w(v)'); db.execute('INSERT INTO w VALUES (1)')");
    const old = new Date(Date.now() - 3 * 3_600_000);
    fs.utimesSync(watched, old, old);
    const run = capture();
    const controller = new AbortController();
    const done = runCli(['watch', watched], run.output, controller.signal);
    // A second cache on the same file, retrying on the same schedule, shows that retries happened.
    const observer = await openDbCache(watched);
    let observed = 0;
    observer.subscribe((event) => void (event.type === 'error' && observed++));
    try {
      await waitFor(() => run.out.length >= 1, 'the first state');
      assert.match(run.out[0]!, /^generation 1 {2}open \d+\.\d ms {2}[\d.]+ (B|KiB) {2}last written 3 h ago$/);
      fs.rmSync(watched);
      await waitFor(() => observed >= 4, 'four failed retries', 20_000);
      await waitFor(() => run.err.length >= 1, 'the failure');
      assert.equal(run.err.length, 1, run.err.join('\n'));
      assert.match(run.err[0]!, /watched\.db.*does not exist/);
      sqlite(watched, "db.execute('CREATE TABLE w(v)'); db.execute('INSERT INTO w VALUES (2)')");
      await waitFor(() => run.out.some((line) => /^generation 2 {2}reload .* live .* after the last write$/.test(line)), () => `the recovery (${run.out.join(' | ')})`, 20_000);
      fs.rmSync(watched);
      await waitFor(() => run.err.length >= 2, 'the failure, reported again after a recovery', 20_000);
    } finally {
      controller.abort();
      await observer.close();
    }
    assert.equal(await done, 0);
  });

  test('watch --poll takes an optional interval', async () => {
    for (const args of [['--poll'], ['--poll', '20'], ['--poll=20']]) {
      const run = capture();
      const controller = new AbortController();
      const output = { out: (text: string) => (run.output.out(text), controller.abort()), err: run.output.err };
      assert.equal(await runCli(['watch', file, ...args, '--jsonl'], output, controller.signal), 0, run.err.join('\n'));
      assert.equal(JSON.parse(run.out[0]!).event, 'open');
    }
    const run = capture();
    assert.equal(await runCli(['watch', file, '--poll=x'], run.output, AbortSignal.abort()), 2);
  });

  test('watch with bad SQL exits 1 and closes its cache', async () => {
    const run = capture();
    assert.equal(await runCli(['watch', file, 'SELECT * FROM nope'], run.output, new AbortController().signal), 1);
    assert.match(run.err.join('\n'), /no such table: nope/);
  });

  test('bad usage exits 2, unreadable databases and bad SQL exit 1', async () => {
    for (const args of [[], ['frob', file], ['query', file], ['info'], ['info', file, 'extra'], ['watch', file, 'SELECT 1', 'extra'], ['query', file, 'SELECT 1', '--nope']]) {
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
});
