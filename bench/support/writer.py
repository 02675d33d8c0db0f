"""A SQLite writer in another process for bench/freshness.ts.

Usage: python3 writer.py <db> <journal_mode>

Reads commands on stdin, one per line, and answers on stdout as soon as the commit returned:
  commit <seq>        insert events(seq) in its own transaction  -> "committed <seq> <time_ns>"
  burst <first> <n>   n commits back to back, seq first..first+n-1  -> "burst-done <last> <time_ns>"
  quit                close the connection and exit
"""
import sqlite3
import sys
import time

path, mode = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, isolation_level=None)  # autocommit: every INSERT is one commit
actual = db.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
if actual.lower() != mode.lower():
    sys.exit(f"journal_mode is {actual}, wanted {mode}")
insert = "INSERT INTO events (seq, committed_ns, note) VALUES (?, ?, ?)"
note = "freshness probe row " * 3

print(f"ready {sqlite3.sqlite_version}", flush=True)
for line in sys.stdin:
    parts = line.split()
    if not parts:
        continue
    if parts[0] == "commit":
        seq = int(parts[1])
        db.execute(insert, (seq, time.time_ns(), note))
        print(f"committed {seq} {time.time_ns()}", flush=True)
    elif parts[0] == "burst":
        first, count = int(parts[1]), int(parts[2])
        for seq in range(first, first + count):
            db.execute(insert, (seq, time.time_ns(), note))
        print(f"burst-done {first + count - 1} {time.time_ns()}", flush=True)
    elif parts[0] == "quit":
        break
    else:
        sys.exit(f"unknown command {line!r}")
db.close()
