#!/usr/bin/env python3
"""A WAL writer that keeps its connection open, for test/incremental.test.ts.

  pages-writer.py DB SEED STEPS

Creates DB in WAL mode (page size 1024, autocheckpoint off) with a table t(id INTEGER PRIMARY KEY,
v BLOB) of 400 rows, prints {"step": 0, "kind": "create"}, then STEPS times: waits for a line on
stdin, makes one random change and prints {"step": N, "kind": KIND} once it is committed (or the
checkpoint returned). KIND is one of: update (a few rows anywhere in the file), insert (new pages
at the end), delete (frees pages), checkpoint-passive, checkpoint-full, checkpoint-restart,
checkpoint-truncate, vacuum (rewrites and shrinks the file through the WAL), multi (several
commits in a row). End of stdin stops it.
"""
import json, random, sqlite3, sys

path, seed, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
db = sqlite3.connect(path, isolation_level=None)
db.execute('PRAGMA page_size=1024')
db.execute('PRAGMA journal_mode=WAL')
db.execute('PRAGMA wal_autocheckpoint=0')
db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')
db.execute('BEGIN')
for i in range(400):
    db.execute('INSERT INTO t VALUES (?, ?)', (i, rng.randbytes(rng.randint(10, 600))))
db.execute('COMMIT')
print(json.dumps({'step': 0, 'kind': 'create'}), flush=True)

def ids():
    return [row[0] for row in db.execute('SELECT id FROM t')]

kinds = ['update'] * 6 + ['insert'] * 3 + ['delete'] * 2 + ['multi'] * 2 + [
    'checkpoint-passive', 'checkpoint-full', 'checkpoint-restart', 'checkpoint-truncate', 'vacuum']
for step in range(1, steps + 1):
    if not sys.stdin.readline():
        break
    kind = rng.choice(kinds)
    if kind == 'update' or kind == 'multi':
        for _ in range(rng.randint(2, 5) if kind == 'multi' else 1):
            present = ids()
            db.execute('BEGIN')
            for i in rng.sample(present, min(len(present), rng.randint(1, 4))):
                db.execute('UPDATE t SET v = ? WHERE id = ?', (rng.randbytes(rng.randint(10, 900)), i))
            db.execute('COMMIT')
    elif kind == 'insert':
        db.execute('BEGIN')
        for _ in range(rng.randint(1, 30)):
            db.execute('INSERT INTO t(v) VALUES (?)', (rng.randbytes(rng.randint(100, 3000)),))
        db.execute('COMMIT')
    elif kind == 'delete':
        present = ids()
        db.execute('BEGIN')
        for i in rng.sample(present, min(len(present), rng.randint(1, 40))):
            db.execute('DELETE FROM t WHERE id = ?', (i,))
        db.execute('COMMIT')
    elif kind == 'vacuum':
        db.execute('VACUUM')
    else:
        db.execute('PRAGMA wal_checkpoint(%s)' % kind.split('-')[1].upper()).fetchall()
    print(json.dumps({'step': step, 'kind': kind}), flush=True)
db.close()
