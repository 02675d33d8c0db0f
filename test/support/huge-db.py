#!/usr/bin/env python3
"""A valid SQLite database larger than 4 GiB made of few real pages, for test/huge.test.ts.

  huge-db.py DB PAGES

Creates DB (64 KiB pages, WAL mode) with a table t(k INTEGER PRIMARY KEY, v BLOB), then makes the
file PAGES pages long: every page past the table's is on the freelist (a few trunk pages list them
all; the free leaf pages are holes of a sparse file, which is what SQLite's free pages may hold),
so PRAGMA integrity_check passes. The first trunk lists the highest pages, so the next pages SQLite
allocates lie past 4 GiB. Prints {"ready": {"pages": N, "check": "ok"}}, keeps a connection open,
and for each stdin line "put N BYTES" commits a row and prints {"ok": N}; "quit" or end of input
closes it.
"""
import json, os, sqlite3, sys

path, total = sys.argv[1], int(sys.argv[2])
PAGE = 65536
LOCK_BYTE_PAGE = (1 << 30) // PAGE + 1
PER_TRUNK = 16000

db = sqlite3.connect(path, isolation_level=None)
db.execute('PRAGMA page_size=%d' % PAGE)
db.execute('CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)')
db.execute("INSERT INTO t VALUES (0, 'first')")
used = db.execute('PRAGMA page_count').fetchone()[0]
db.close()

free = [p for p in range(total, used, -1) if p != LOCK_BYTE_PAGE]  # highest first
trunks = []
while free:
    trunk = free.pop()  # the lowest page left: trunks stay near the start of the file
    leaves, free = free[:PER_TRUNK], free[PER_TRUNK:]
    trunks.append((trunk, leaves))
with open(path, 'r+b') as f:
    for i, (trunk, leaves) in enumerate(trunks):
        following = trunks[i + 1][0] if i + 1 < len(trunks) else 0
        body = following.to_bytes(4, 'big') + len(leaves).to_bytes(4, 'big') + b''.join(p.to_bytes(4, 'big') for p in leaves)
        f.seek((trunk - 1) * PAGE)
        f.write(body)
    f.seek(0)
    header = bytearray(f.read(100))
    header[28:32] = total.to_bytes(4, 'big')
    header[32:36] = trunks[0][0].to_bytes(4, 'big')
    header[36:40] = (total - used - 1).to_bytes(4, 'big')
    header[92:96] = header[24:28]
    f.seek(0)
    f.write(header)
os.truncate(path, total * PAGE)

db = sqlite3.connect(path, isolation_level=None)
check = db.execute('PRAGMA integrity_check').fetchone()[0]
db.execute('PRAGMA journal_mode=WAL')
db.execute('PRAGMA wal_autocheckpoint=0')
print(json.dumps({'ready': {'pages': db.execute('PRAGMA page_count').fetchone()[0], 'check': check}}), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == 'quit':
        break
    n, size = int(words[1]), int(words[2])
    db.execute('INSERT INTO t VALUES (?, ?)', (n, bytes([n % 256]) * size))
    print(json.dumps({'ok': n, 'pages': db.execute('PRAGMA page_count').fetchone()[0]}), flush=True)
db.close()
