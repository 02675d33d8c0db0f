#!/usr/bin/env python3
"""SQLite's own reading of database files, for test/fuzz.test.ts (Python's sqlite3, one process).

Reads JSON requests from stdin, one per line, and answers each with one JSON line on stdout:

  {"bases": DIR}
      Builds the base files the fuzzer mutates, each in DIR/<name>/ as app.db plus app.db-wal or
      app.db-journal copied while the writer was in the middle of its work (what a reader finds on
      disk), and answers {"ok": [names]}. Every database has t(k INTEGER PRIMARY KEY, v BLOB).
        wal           committed transactions still in the -wal, the writer connection open
        wal-restart   a -wal restarted by a RESTART checkpoint: new frames over stale ones
        wal-big       4096-byte pages, so a database file of few pages with many pages in the -wal
        rollback      a database in rollback-journal mode, no journal
        hot-journal   a transaction that spilled pages into the database file, its journal live
        persist       journal_mode=PERSIST after a commit: the journal's header zeroed
        twin-a        the same database file as twin-b, with a -wal of the same salts whose
        twin-b          later frames differ (a WAL rewritten in place by a restore or a copy tool)

  {"read": DIR, "sql": [SQL, ...]}
      Copies DIR/app.db, app.db-wal and app.db-journal (those that exist) into a private scratch
      directory (SQLite may roll back a hot journal or delete a -wal: the fuzzer's files stay as
      they are), opens the copy, runs each SQL and answers {"results": [R, ...]}, each R
      {"rows": [[...], ...]} or {"error": message}.
"""

import json
import os
import shutil
import sqlite3
import sys
import tempfile

FILES = ("app.db", "app.db-wal", "app.db-journal")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def snapshot(src_dir, dest_dir):
    """Copies the database and its -wal/-journal as they are now into dest_dir (no -shm)."""
    os.makedirs(dest_dir, exist_ok=True)
    for name in FILES:
        src = os.path.join(src_dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(dest_dir, name))


def create(path, mode, page_size=512, rows=40):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size=%d" % page_size)
    db.execute("PRAGMA journal_mode=%s" % mode)
    db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO t(k, v) VALUES (?, ?)", ((k, bytes([k % 251]) * (20 + k * 7 % 300)) for k in range(1, rows + 1)))
    db.execute("COMMIT")
    return db


def commit(db, first, count, size=120):
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO t(k, v) VALUES (?, ?)", ((k, bytes([(k * 7) % 251]) * size) for k in range(first, first + count)))
    db.execute("COMMIT")


def bases(root):
    names = []
    work = tempfile.mkdtemp(prefix="fuzz-bases-")
    try:
        def build(name, fn):
            d = os.path.join(work, name)
            os.makedirs(d)
            fn(d, os.path.join(d, "app.db"))
            names.append(name)

        def wal(d, path):
            db = create(path, "wal")
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(6):
                commit(db, 30 + i * 5, 5)
            snapshot(d, os.path.join(root, "wal"))
            db.close()

        def wal_restart(d, path):
            db = create(path, "wal")
            db.execute("PRAGMA wal_autocheckpoint=0")
            for i in range(5):
                commit(db, 100 + i * 3, 3, 200)
            db.execute("PRAGMA wal_checkpoint(RESTART)")
            commit(db, 5, 2)
            snapshot(d, os.path.join(root, "wal-restart"))
            db.close()

        def wal_big(d, path):
            db = create(path, "wal", page_size=4096, rows=3)
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(4):
                commit(db, 10 + i * 10, 10, 900)
            snapshot(d, os.path.join(root, "wal-big"))
            db.close()

        def rollback(d, path):
            db = create(path, "delete")
            commit(db, 50, 10)
            db.close()
            snapshot(d, os.path.join(root, "rollback"))

        def hot_journal(d, path):
            db = create(path, "delete", rows=120)
            db.execute("PRAGMA cache_size=2")
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE t SET v = zeroblob(length(v)) WHERE k % 2 = 0")
            db.execute("INSERT INTO t(k, v) VALUES (1000, zeroblob(3000))")
            snapshot(d, os.path.join(root, "hot-journal"))
            db.execute("ROLLBACK")
            db.close()

        def persist(d, path):
            db = create(path, "persist")
            commit(db, 60, 4)
            snapshot(d, os.path.join(root, "persist"))
            db.close()

        def twins(d, path):
            db = create(path, "wal")
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            commit(db, 200, 2)
            frozen = os.path.join(d, "frozen")
            snapshot(d, frozen)
            commit(db, 300, 3)
            snapshot(d, os.path.join(root, "twin-a"))
            db.close()
            # The other history: the same files up to the first commit, then other commits.
            other = sqlite3.connect(os.path.join(frozen, "app.db"), isolation_level=None)
            other.execute("PRAGMA wal_autocheckpoint=0")
            for i in range(4):
                commit(other, 400 + i * 3, 3, 150)
            snapshot(frozen, os.path.join(root, "twin-b"))
            other.close()

        build("wal", wal)
        build("wal-restart", wal_restart)
        build("wal-big", wal_big)
        build("rollback", rollback)
        build("hot-journal", hot_journal)
        build("persist", persist)
        build("twins", twins)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [n for n in names if n != "twins"] + ["twin-a", "twin-b"]


def read(src_dir, sqls, scratch):
    shutil.rmtree(scratch, ignore_errors=True)
    snapshot(src_dir, scratch)
    path = os.path.join(scratch, "app.db")
    if not os.path.exists(path):
        return {"results": [{"error": "no database file"} for _ in sqls]}
    db = sqlite3.connect(path, isolation_level=None)
    results = []
    try:
        for sql in sqls:
            try:
                results.append({"rows": [list(r) for r in db.execute(sql).fetchall()]})
            except (sqlite3.Error, ValueError) as error:
                # ValueError: text that is not UTF-8 (the fuzzer's SQL returns hex, so unexpected).
                results.append({"error": str(error)})
    finally:
        db.close()
    return {"results": results}


def main():
    scratch_root = tempfile.mkdtemp(prefix="fuzz-reader-")
    scratch = os.path.join(scratch_root, "copy")
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if "bases" in request:
                emit({"ok": bases(request["bases"])})
            elif "read" in request:
                emit(read(request["read"], request["sql"], scratch))
            else:
                raise RuntimeError("unknown request %r" % line)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


if __name__ == "__main__":
    main()
