import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jsonValue } from '../src/cli-json.ts';
import { tableCell } from '../src/cli-table.ts';
import { parseParams, runCli } from '../src/cli.ts';
import { openDbCache } from '../src/index.ts';
import { runtimeCommand, sqlite, tempDir, waitFor } from './support/fixtures.ts';

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
    assert.deepEqual(parseParams(['1', '-1.5', '007', '1e3', 'x'], undefined, undefined), [1n, -1.5, '007', 1000, 'x']);
    assert.deepEqual({ ...parseParams([], undefined, '{"a":null}') }, { a: null });
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

  test('watch --poll takes no separate value; --poll=<ms> sets the interval', async () => {
    for (const args of [['--poll'], ['--poll=20'], ['--poll', 'SELECT 7 AS n']]) {
      const run = capture();
      const controller = new AbortController();
      const output = { out: (text: string) => (run.output.out(text), run.out.length >= (args.length === 2 ? 2 : 1) ? controller.abort() : undefined), err: run.output.err };
      assert.equal(await runCli(['watch', file, ...args, '--jsonl'], output, controller.signal), 0, run.err.join('\n'));
      assert.equal(JSON.parse(run.out[0]!).event, 'open');
      // The argument after a bare --poll is the SQL, never an interval.
      if (args.length === 2) assert.deepEqual(JSON.parse(run.out[1]!), { n: 7 });
    }
    for (const args of [['--poll=x'], ['--poll=0'], ['--poll', '20'], ['--poll=']]) {
      const run = capture();
      assert.equal(await runCli(['watch', file, ...args, '--json'], run.output, AbortSignal.abort()), 2, args.join(' '));
      assert.equal(JSON.parse(run.err.join('\n')).error.code, 'USAGE');
    }
    const run = capture();
    assert.equal(await runCli(['watch', file, '--poll', '20'], run.output, AbortSignal.abort()), 2);
    assert.match(run.err.join('\n'), /--poll=20/);
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

  test('--params keeps integers beyond 2^53 exact; numbers bind as SQLite reads literals', async () => {
    for (const params of ['[9007199254740993]', '{"id":9007199254740993}']) {
      const sql = params.startsWith('[') ? 'SELECT id, name FROM t WHERE id = ?' : 'SELECT id, name FROM t WHERE id = :id';
      const run = capture();
      assert.equal(await runCli(['query', file, sql, '--params', params, '--json'], run.output), 0, run.err.join('\n'));
      assert.equal(run.text(), '[{"id":9007199254740993,"name":"big"}]', params);
    }
    const run = capture();
    const sql = 'SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c, typeof(?) AS d, typeof(?) AS e, typeof(?) AS f, ? AS g';
    assert.equal(await runCli(['query', file, sql, '--params', ' [42, 1.5, 1e3, "007", null, true, "\\u00e9\\n"] ', '--json'], run.output), 0, run.err.join('\n'));
    assert.deepEqual(JSON.parse(run.text()), [{ a: 'integer', b: 'real', c: 'real', d: 'text', e: 'null', f: 'integer', g: 'é\n' }]);
    // A key "__proto__" is a parameter name like any other, not the object's prototype.
    assert.deepEqual(Object.keys(parseParams([], undefined, '{"__proto__": 1}')!), ['__proto__']);
    const deep = `${'['.repeat(100)}1${']'.repeat(100)}`;
    for (const bad of ['[1,]', '[01]', '[1', '{"a" 1}', '[.5]', '["\t"]', '[1] x', deep, '[{"$blob":"not base64"}]']) {
      const failed = capture();
      assert.equal(await runCli(['query', file, 'SELECT ?', '--params', bad, '--json'], failed.output), 2, bad);
      assert.equal(JSON.parse(failed.err.join('\n')).error.code, 'USAGE', bad);
    }
  });

  test('values after the SQL: JSON numbers (also negative) bind as numbers, integers exactly; after "--" everything is a value', async () => {
    let run = capture();
    const sql = 'SELECT ? AS a, typeof(?) AS ta, ? AS b, typeof(?) AS tb, ? AS d, (SELECT name FROM t WHERE id = ?) AS big';
    assert.equal(await runCli(['query', file, sql, '-5', '-5', '1e3', '1e3', '-1.5', '9007199254740993', '--json'], run.output), 0, run.err.join('\n'));
    assert.equal(run.text(), '[{"a":-5,"ta":"integer","b":1000.0,"tb":"real","d":-1.5,"big":"big"}]');
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT ? AS a, ? AS b', '--jsonl', '--', '--json', '-x'], run.output), 0, run.err.join('\n'));
    assert.deepEqual(JSON.parse(run.text()), { a: '--json', b: '-x' });
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT :n AS n', '--param', 'n=-7', '--json'], run.output), 0, run.err.join('\n'));
    assert.equal(run.text(), '[{"n":-7}]');
    // An option that does not exist is still an error; the message's quotes are balanced.
    run = capture();
    assert.equal(await runCli(['query', file, 'SELECT ?', '-x'], run.output), 2);
    const message = run.err.join('\n').split('\n')[0]!;
    assert.match(message, /"-x"/);
    assert.equal(message.split('"').length % 2, 1, message);
  });

  test('--json is exact and valid: repeated column names get :1, :2 and infinity is 1e999', async () => {
    const run = capture();
    const sql = 'SELECT 1 AS a, 2 AS a, 3 AS "a:1", 1e999 AS b, -1e999 AS c, 42.0 AS d, 0.5 AS e, 4 AS a';
    assert.equal(await runCli(['query', file, sql, '--json'], run.output), 0, run.err.join('\n'));
    assert.equal(run.text(), '[{"a":1,"a:2":2,"a:1":3,"b":1e999,"c":-1e999,"d":42.0,"e":0.5,"a:3":4}]');
    assert.deepEqual(JSON.parse(run.text()), [{ a: 1, 'a:2': 2, 'a:1': 3, b: Infinity, c: -Infinity, d: 42, e: 0.5, 'a:3': 4 }]);
    const lines = capture();
    assert.equal(await runCli(['query', file, 'SELECT 1 AS x, 2 AS x', '--jsonl'], lines.output), 0);
    assert.equal(lines.text(), '{"x":1,"x:1":2}');
  });

  test("statements that are not queries report dbcache's own error and code", async () => {
    const documented = documentedCodes();
    const cases: Array<[string, string | undefined]> = [
      ['DELETE FROM t', 'READ_ONLY'],
      ["INSERT INTO t(name) VALUES ('x') RETURNING id", 'READ_ONLY'],
      ['PRAGMA user_version = 3', 'READ_ONLY'],
      ['BEGIN', 'READ_ONLY'],
      ['SELECT * FROM nope', 'QUERY'],
      ['SELECT ?', 'ARGUMENT'],
      ['SELECT 1; SELECT 2', 'ARGUMENT'],
      // Another change makes a typo a QUERY error; either way a documented code, never ERROR.
      ['SELEC 1', undefined],
    ];
    for (const [sql, code] of cases) {
      const run = capture();
      assert.equal(await runCli(['query', file, sql, '--json'], run.output), 1, sql);
      const { error } = JSON.parse(run.err.join('\n'));
      if (code !== undefined) assert.equal(error.code, code, sql);
      assert.ok(documented.has(error.code), `${sql}: ${error.code} is in the README (${[...documented].join(' ')})`);
      assert.doesNotMatch(error.message, /columns\(\) method/, sql);
      const text = capture();
      assert.equal(await runCli(['query', file, sql], text.output), 1, sql);
      assert.doesNotMatch(text.err.join('\n'), /columns\(\) method/, sql);
    }
    const help = capture();
    await runCli(['query', '--help'], help.output);
    for (const code of ['USAGE', 'ARGUMENT', 'INTERNAL']) assert.match(help.text(), new RegExp(`\\b${code}\\b`));
  });

  test('tables: NULL differs from the text NULL, and wide characters keep columns aligned', async () => {
    let run = capture();
    const sql = "SELECT NULL AS a, 'NULL' AS b, 'null' AS c, 'it''s' AS d, '''q''' AS e, 'x''00''' AS f, '' AS g";
    assert.equal(await runCli(['query', file, sql], run.output), 0, run.err.join('\n'));
    assert.equal(run.text().split('\n')[2], "NULL  'NULL'  'null'  it's  '''q'''  'x''00'''");
    run = capture();
    const wide = [
      "SELECT '日本語' AS v, 1 AS n",
      "SELECT 'ＡＢ', 2",
      "SELECT 'e' || char(769) || 'x', 3",
      "SELECT '👍🏽ok', 4",
      "SELECT '🇯🇵', 5",
      "SELECT '👨‍👩‍👧', 6",
      "SELECT '❤️', 7",
      "SELECT 'ab', 8",
    ].join(' UNION ALL ');
    assert.equal(await runCli(['query', file, wide], run.output), 0, run.err.join('\n'));
    assert.deepEqual(run.text().split('\n'), [
      'v       n',
      '------  -',
      '日本語  1',
      'ＡＢ    2',
      'e\u0301x      3',
      '👍🏽ok    4',
      '🇯🇵      5',
      '👨‍👩‍👧      6',
      '❤️      7',
      'ab      8',
      '(8 rows)',
    ]);
    // A cut never splits a character, and counts columns, not UTF-16 units.
    assert.equal(tableCell('日'.repeat(150)), `${'日'.repeat(99)}…`);
    assert.equal(tableCell('😀'.repeat(150)), `${'😀'.repeat(99)}…`);
  });

  test('--verbose logs what the command does, without source positions', async () => {
    const { exited, state } = startCli(bin, ['query', file, 'SELECT count(*) AS n FROM t', '--verbose']);
    assert.equal(await exited, 0, state.stderr);
    assert.match(state.stderr, /INFO\s+dbcache: Opened .*app\.db: generation \d+/);
    assert.match(state.stderr, /Printed 1 row of generation/);
    assert.doesNotMatch(state.stderr, /\.(ts|js|mjs):\d+/);
    assert.match(state.stdout, /^n\n-+\n\d+\n\(1 row\)\n$/);
  });

  test('| head: the command stops as soon as its reader goes away, and exits 0 quietly', async () => {
    for (const format of [[], ['--jsonl'], ['--json']]) {
      const { child, exited, state } = startCli(bin, ['query', file, ENDLESS, ...format]);
      await waitFor(() => state.stdout.split('\n').length > 3 || state.exit !== undefined, () => `three lines (${state.stderr})`, 60_000);
      child.stdout!.destroy();
      // The query never ends by itself: the process can only exit if it stopped stepping rows.
      const code = await exitOf(child, exited, 'the command to exit after its reader closed', () => residentKiB(child.pid!) > 1024 * 1024);
      assert.equal(code, 0, `${format.join(' ')}: ${state.stderr}`);
      assert.equal(state.stderr, '');
    }
  });

  test('Ctrl-C (SIGINT) and SIGTERM interrupt a query whose output never waits (a file): exit 130 / 143', async () => {
    for (const [signal, expected] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const out = path.join(dir, `endless-${signal}.out`);
      const { child, exited, state } = startCli(bin, ['query', file, ENDLESS], out);
      const size = () => fs.statSync(out, { throwIfNoEntry: false })?.size ?? 0;
      await waitFor(() => size() > 100_000 || state.exit !== undefined, () => `rows in the file (${state.stderr})`, 60_000);
      // process.kill, not child.kill: Deno's child_process then reports the signal sent instead of the exit code.
      process.kill(child.pid!, signal);
      assert.equal(await exitOf(child, exited, `the query to stop on ${signal}`, () => size() > 1024 ** 3), expected, state.stderr);
      fs.rmSync(out);
    }
  });

  test('watch ends quietly when its reader goes away', async () => {
    const watched = path.join(dir, 'piped.db');
    sqlite(watched, "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE w(v)'); db.execute('INSERT INTO w VALUES (1)')");
    const { child, exited, state } = startCli(bin, ['watch', watched, 'SELECT count(*) AS n FROM w', '--jsonl']);
    try {
      await waitFor(() => state.stdout.includes('{"n":1}') || state.exit !== undefined, () => `the first rows (${state.stdout} ${state.stderr})`, 60_000);
      child.stdout!.destroy();
      // Its next write finds the pipe closed: commit until it has written and ended.
      let writes = 1;
      await waitFor(
        () => {
          if (state.exit !== undefined) return true;
          sqlite(watched, `db.execute('INSERT INTO w VALUES (${++writes})')`);
          return false;
        },
        'the watch to end',
        60_000,
      );
      assert.equal(await exited, 0, state.stderr);
      assert.equal(state.stderr, '');
    } finally {
      child.kill();
    }
  });

  test(
    'rows into a slow reader: peak memory does not grow with the number of rows (table and --jsonl)',
    { skip: process.platform !== 'linux' && 'measures memory through /proc' },
    async () => {
      const peaks: string[] = [];
      for (const format of [[], ['--jsonl']]) {
        const small = await peakIntoSlowReader(100_000, format);
        const large = await peakIntoSlowReader(700_000, format);
        peaks.push(`${format.join('') || 'table'}: ${small} KiB for 100,000 rows, ${large} KiB for 700,000 rows`);
        // The 600,000 more rows are 610 MB more output, which held in memory would show here. The
        // bound leaves room for the garbage collectors' slack (Bun's peak varies by ±50 MB run to run).
        assert.ok(large - small < 192 * 1024, peaks.join('; '));
      }
    },
  );

  let peakRuns = 0;

  /** Runs the command into a reader that takes nothing until the command waits for it, and returns the command's peak RSS (KiB). */
  async function peakIntoSlowReader(rows: number, format: string[]): Promise<number> {
    const side = path.join(dir, `peak-${peakRuns++}`);
    // About 1 KB per row: five cells of 200 characters (as wide as a table cell gets).
    const cells = ['a', 'b', 'c', 'd', 'e'].map((name) => `printf('%.200c', '${name}') AS ${name}`).join(', ');
    const sql = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows}) SELECT i, ${cells} FROM s`;
    const { child, exited, state } = startCli(peakScript, [side, 'query', file, sql, ...format], 'count');
    const pid = child.pid!;
    let last = -1;
    let still = 0;
    // Slow: nothing is read until the command has stopped writing (asleep, no new bytes written) or ended.
    await waitFor(
      () => {
        if (state.exit !== undefined || residentKiB(pid) > 1024 * 1024) return true;
        const written = writtenBytes(pid);
        still = written > 0 && written === last && processState(pid) === 'S' ? still + 1 : 0;
        last = written;
        return still >= 3;
      },
      'the command to wait for its reader',
      120_000,
    );
    const waited = state.exit === undefined;
    child.stdout!.resume();
    const what = `${rows} rows (${format.join('') || 'table'}) to be read`;
    const code = await exitOf(child, exited, what, () => residentKiB(pid) > 2 * 1024 * 1024, 240_000);
    assert.equal(code, 0, state.stderr);
    assert.ok(waited, 'the command waited for its reader');
    assert.equal(state.lines, format.length === 0 ? rows + 3 : rows);
    return Number(fs.readFileSync(side, 'utf8'));
  }
});

/** A query that never ends by itself. */
const ENDLESS = 'WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s) SELECT i, i * 2 AS j FROM s';
const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const peakScript = fileURLToPath(new URL('./scripts/cli-peak.ts', import.meta.url));

/** Every error code the README documents (rows of its tables that start with a code). */
function documentedCodes(): Set<string> {
  const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  return new Set(Array.from(readme.matchAll(/^\s*\| `([A-Z_]+)` \|/gm), (match) => match[1]!));
}

/**
 * Starts the command line in the runtime running the tests. stdout: kept as text ('pipe'), only
 * counted in lines and left paused until resumed ('count'), or written to a file (a path).
 */
function startCli(script: string, args: string[], stdout: 'pipe' | 'count' | string = 'pipe') {
  const [command, commandArgs] = runtimeCommand(script);
  const toFile = stdout !== 'pipe' && stdout !== 'count';
  // A file through the shell, so that the command (exec'd in its place) writes to it directly.
  const child = toFile
    ? spawn('sh', ['-c', 'out="$1"; shift; exec "$@" > "$out"', 'sh', stdout, command, ...commandArgs, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(command, [...commandArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { stdout: '', stderr: '', lines: 0, exit: undefined as number | string | undefined };
  if (stdout === 'pipe') child.stdout!.on('data', (chunk: Buffer) => void (state.stdout += chunk));
  if (stdout === 'count') {
    child.stdout!.on('data', (chunk: Buffer) => {
      for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) state.lines++;
    });
    child.stdout!.pause();
  }
  child.stderr!.on('data', (chunk: Buffer) => void (state.stderr += chunk));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve((state.exit = code ?? signal ?? 'unknown'))));
  return { child, exited, state };
}

/** The exit code; kills the child (and fails) as soon as `runaway()` holds, or when it has not exited by the deadline (a hang guard). */
async function exitOf(child: ChildProcess, exited: Promise<number | string>, what: string, runaway: () => boolean, deadlineMs = 60_000): Promise<number | string> {
  let ended = false;
  void exited.then(() => (ended = true));
  try {
    await waitFor(() => ended || runaway(), what, deadlineMs);
  } finally {
    if (!ended) child.kill('SIGKILL');
  }
  assert.ok(ended, `${what}: it ran away (killed: resident memory over the limit, or no exit by the deadline)`);
  return exited;
}

function procFile(pid: number, name: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${name}`, 'utf8');
  } catch {
    return '';
  }
}

/** Resident memory of a process in KiB (0 once it is gone or where /proc is missing). */
function residentKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(procFile(pid, 'status'))?.[1] ?? 0);
}

/** Bytes the process has written with write(2) and friends. */
function writtenBytes(pid: number): number {
  return Number(/^wchar:\s+(\d+)/m.exec(procFile(pid, 'io'))?.[1] ?? 0);
}

/** The scheduler state of the process's main thread (R running, S sleeping, …). */
function processState(pid: number): string {
  const stat = procFile(pid, 'stat');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
