import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDbCacheError, openDbCache } from '../src/index.ts';
import { findMissingModules, missingModuleHint } from '../src/sqljs.ts';
import { recordingLogger, runtimeCommand, sqlite, tempDir } from './support/fixtures.ts';

/** A database with FTS5 and R*Tree tables, written by Python's SQLite (which has both). */
function featureDatabase(file: string): void {
  sqlite(
    file,
    [
      "db.execute('CREATE TABLE plain(id INTEGER PRIMARY KEY, v TEXT)')",
      "db.execute(\"INSERT INTO plain VALUES (1, 'a')\")",
      "db.execute('CREATE VIRTUAL TABLE docs USING fts5(body)')",
      "db.execute(\"INSERT INTO docs VALUES ('hello world')\")",
      "db.execute('CREATE VIRTUAL TABLE \"boxes\" USING rtree(id, x0, x1)')",
      "db.execute('CREATE VIRTUAL TABLE words USING fts4(body)')",
    ].join('; '),
  );
}

describe('what the bundled sql.js build lacks', () => {
  const { dir, cleanup } = tempDir();
  const file = path.join(dir, 'features.db');
  featureDatabase(file);
  after(cleanup);

  test('tables that need a missing module are named once through the logger at open', async () => {
    const { lines, logger } = recordingLogger();
    const cache = await openDbCache(file, { logger });
    try {
      const notes = lines.warn.filter((line) => line.includes('module'));
      assert.equal(notes.length, 2, lines.warn.join('\n'));
      assert.match(notes.join('\n'), /table docs needs the fts5 module/);
      assert.match(notes.join('\n'), /table boxes needs the rtree module/);
      assert.doesNotMatch(notes.join('\n'), /words/, 'fts4 is in the build');
      assert.match(notes[0]!, /sqlJs option/);
      sqlite(file, "db.execute(\"INSERT INTO plain VALUES (2, 'b')\")");
      await cache.reload();
      assert.equal(cache.generation, 2);
      assert.equal(lines.warn.filter((line) => line.includes('module')).length, 2, 'not again at a reload');
    } finally {
      await cache.close();
    }
  });

  test('a query on such a table fails with a QUERY error that names the module and the sqlJs option', async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      assert.deepEqual(cache.all('SELECT v FROM plain ORDER BY id'), [{ v: 'a' }, { v: 'b' }]);
      assert.deepEqual(cache.all('SELECT count(*) AS n FROM words'), [{ n: 0 }]);
      for (const [sql, module] of [["SELECT * FROM docs WHERE docs MATCH 'hello'", 'fts5'], ['SELECT * FROM boxes', 'rtree']] as const) {
        assert.throws(
          () => cache.all(sql),
          (error: unknown) => {
            assert.ok(isDbCacheError(error, 'QUERY'));
            assert.match(error.message, new RegExp(`no such module: ${module} \\(the sql\\.js build in use has no ${module} module: pass a sql\\.js build that has it as the sqlJs option\\)`));
            return true;
          },
        );
      }
    } finally {
      await cache.close();
    }
  });

  test('findMissingModules reads the schema; missingModuleHint only speaks of missing modules', () => {
    const schema = [
      ['a', 'CREATE VIRTUAL TABLE a USING fts5(x)'],
      ['b', 'CREATE VIRTUAL TABLE "b" using "RTREE"(id, x0, x1)'],
      ['c', 'CREATE VIRTUAL TABLE c USING fts4(x)'],
    ];
    const rows = (sql: string) => (sql.includes('pragma_module_list') ? [['fts4'], ['fts3']] : schema);
    assert.deepEqual(findMissingModules(rows), [
      { table: 'a', module: 'fts5' },
      { table: 'b', module: 'rtree' },
    ]);
    assert.deepEqual(findMissingModules(() => []), []);
    assert.equal(missingModuleHint('no such table: x'), '');
    assert.match(missingModuleHint(new Error('no such module: geopoly')), /no geopoly module/);
  });

  test("SQLite's own math functions answer, not sql.js's legacy ones", async () => {
    const cache = await openDbCache(file, { watch: false });
    try {
      assert.deepEqual(cache.get('SELECT sqrt(16) AS r, pow(2, 10) AS p, log10(1000) AS l, pi() > 3.14 AS pi'), { r: 4, p: 1024, l: 3, pi: 1 });
    } finally {
      await cache.close();
    }
  });
});

describe('the console stays silent', () => {
  const script = fileURLToPath(new URL('./scripts/silent-cache.ts', import.meta.url));

  for (const sqlJs of ['wasm', 'inline'] as const) {
    test(`nothing but the script's own line on stdout and stderr (sqlJs: ${sqlJs})`, async () => {
      const { dir, cleanup } = tempDir();
      try {
        const file = path.join(dir, 'features.db');
        featureDatabase(file);
        const [command, args] = runtimeCommand(script);
        const child = spawn(command, [...args, file, sqlJs], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk) => (stdout += chunk));
        child.stderr.on('data', (chunk) => (stderr += chunk));
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
        clearTimeout(timer);
        assert.equal(status, 0, stderr);
        assert.equal(stdout, 'done 4 QUERY NOT_A_DATABASE\n');
        assert.equal(stderr, '');
      } finally {
        cleanup();
      }
    });
  }
});
