#!/usr/bin/env python3
"""Real SQLite writers for test/writers.test.ts, run in their own process (Python's sqlite3).

Subcommands (all print one JSON object per line on stdout; errors go to stderr, exit status 1):

  ledger DB MODE [--seed N] [--accounts N] [--pace SECONDS] [--aborts RATE] [--lag N] ...
      Creates DB in journal MODE (wal, delete, truncate, persist), prints {"ready": ...}, then
      commits transactions until stdin reaches end of file (or a line "stop"), then prints a
      summary {"done": ...}. With --lag N it prints {"commit": SEQ} after every commit and never
      starts a transaction (aborted ones included) while its seq is N or more ahead of the last
      "seen SEQ" line read from stdin: the reader's progress paces it, so however slow or loaded
      the machine, the writer cannot keep the file busy for longer than N commits take (without
      --lag it runs flat out). Invariants every committed state keeps:
        * sum(accounts.balance) == TOTAL (money only moves between accounts),
        * count(commits) == max(commits.n) == meta['seq'] (one commits row per transaction),
        * bulk rows: count, sum(batch) and sum(length(payload)) equal meta['bulk_count'],
          meta['bulk_batch_sum'] and meta['bulk_bytes']; every payload byte equals `b`,
        * meta['poison'] == 0 (only aborted transactions set it).
      In WAL mode it also checkpoints every few commits, cycling PASSIVE, FULL, RESTART and
      TRUNCATE. In every mode it runs VACUUM now and then and reopens its connection now and then
      (in WAL mode the last connection closing checkpoints and deletes the -wal). The counts of those are stored in
      meta by the next commit. With --aborts RATE, before each commit it runs on average
      RATE/(1-RATE) transactions that change many pages with a tiny page cache (so SQLite spills
      dirty pages into the database file or the WAL before the end of the transaction) and then
      roll back; they break every invariant above while they are in progress (a FRACTION given by
      --big-aborts, default 0.2, also insert ~1 MB of blobs first). --ballast MB adds
      that many megabytes of filler rows before and after the ledger's tables (slower reads).
      --switch-every N changes the journal mode every N commits (wal, delete, truncate, persist, ...).
      --close-each closes and reopens the connection after every commit (in WAL mode the last
      connection closing checkpoints and deletes the -wal: the pattern of scripts and cron jobs).

  rpc DB MODE [--exclusive]
      Creates DB with a table items(n INTEGER PRIMARY KEY, payload BLOB) in journal MODE (with
      --exclusive in locking_mode=EXCLUSIVE: rollback commits then never bump the change counter), prints
      {"ready": true}, then for every stdin line
        "put N [BYTES]"  inserts row N (with a payload of BYTES bytes) in its own transaction and
                         prints {"ok": N} after COMMIT returned;
        "ckpt KIND"      runs PRAGMA wal_checkpoint(KIND) and prints {"ok": "ckpt", "result": [...]};
        "fill N COUNT BYTES"  inserts rows N .. N+COUNT-1 in one transaction;
        "spill"          opens a transaction that rewrites every page of items with a 10-page cache
                         (SQLite spills dirty pages to the database file or the WAL) and leaves it
                         open; prints whether bytes already in the database file / the WAL
                         changed (db_changed, wal_changed);
        "rollback"       rolls that transaction back;
        "detach"         closes the connection this process keeps open;
        "set N"          sets the payload of row 1 to 16 bytes spelling N in its own transaction
                         on the connection this process keeps open, prints {"ok": N};
        "once N"         opens a new connection, sets the payload of row 1 to 16 bytes spelling N
                         (same size every time) in its own transaction, closes it, prints {"ok": N};
        "quit"           (or end of file) closes the connection and exits.

  grow DB PAGES
      Creates a WAL database DB with 64 KiB pages whose file is made PAGES pages long (sparse: the
      header's page count says so, the pages past the first few are zeros no b-tree references),
      then opens a connection, commits a row with a 200 KB blob (new pages at the end of the file,
      so across the lock-byte page at 1 GiB when PAGES is near 16384), prints
      {"ready": {"pages": N, "wal": BYTES}} and keeps the connection open; then for every stdin
      line "put N BYTES" commits another such row and prints {"ok": N, "pages": N}.

  build DB MODE LABEL ROWS
      Creates a fresh database DB (which must not exist) in journal MODE with a table
      t(k INTEGER PRIMARY KEY, label TEXT, pad BLOB) of ROWS rows labelled LABEL, closes it (so no
      -wal or -journal stays behind) and prints {"built": DB}.
"""

import argparse
import json
import os
import random
import sqlite3
import sys
import threading
import time

CHECKPOINT_KINDS = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")
SWITCH_ORDER = ("wal", "delete", "truncate", "persist")
INITIAL_BALANCE = 1000


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def connect(path, mode):
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    actual = db.execute("PRAGMA journal_mode=%s" % mode).fetchone()[0]
    if actual.lower() != mode.lower():
        raise RuntimeError("journal_mode %s was refused (got %s)" % (mode, actual))
    return db


def payload_byte(row_id, batch):
    return (row_id * 31 + batch * 7) % 251


class Ledger:
    def __init__(self, args):
        self.path = args.db
        self.mode = args.mode
        self.rng = random.Random(args.seed)
        self.accounts = args.accounts
        self.total = args.accounts * INITIAL_BALANCE
        self.pace = args.pace
        self.abort_rate = args.aborts
        self.big_abort_rate = args.big_aborts
        self.ballast_mb = args.ballast
        self.switch_every = args.switch_every
        self.close_each = args.close_each
        self.next_switch = args.switch_every
        self.lag = args.lag
        self.seen = 0
        self.progress = threading.Condition()
        self.stop = threading.Event()
        self.counts = {
            "bulk_inserts": 0,
            "bulk_deletes": 0,
            "sweeps": 0,
            "aborts": 0,
            "vacuums": 0,
            "reopens": 0,
            "switches": 0,
        }
        for kind in CHECKPOINT_KINDS:
            self.counts["ckpt_" + kind.lower()] = 0
        self.seq = 0
        self.batch = 0
        self.next_checkpoint = 0
        self.next_vacuum = 0
        self.next_reopen = 0
        self.db = None

    # -- setup -------------------------------------------------------------------------------

    def create(self):
        if os.path.exists(self.path):
            raise RuntimeError("%s already exists" % self.path)
        self.db = connect(self.path, self.mode)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        if self.ballast_mb > 0:
            # Ballast on both sides of the ledger's pages, so they sit in the middle of a large file.
            db.execute("CREATE TABLE ballast_a(id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")
            self.add_ballast("ballast_a", self.ballast_mb * 128)
        db.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("CREATE INDEX accounts_balance ON accounts(balance)")
        db.execute("CREATE TABLE commits(n INTEGER PRIMARY KEY, kind TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        db.execute(
            "CREATE TABLE bulk(id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, b INTEGER NOT NULL, payload BLOB NOT NULL)"
        )
        db.execute("CREATE INDEX bulk_batch ON bulk(batch)")
        db.executemany(
            "INSERT INTO accounts(id, balance) VALUES (?, ?)",
            ((i, INITIAL_BALANCE) for i in range(1, self.accounts + 1)),
        )
        meta = {"seq": 0, "total": self.total, "accounts": self.accounts, "bulk_count": 0, "bulk_batch_sum": 0,
                "bulk_bytes": 0, "poison": 0}
        meta.update(self.counts)
        db.executemany("INSERT INTO meta(k, v) VALUES (?, ?)", meta.items())
        if self.ballast_mb > 0:
            db.execute("CREATE TABLE ballast_b(id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")
            self.add_ballast("ballast_b", self.ballast_mb * 128)
        db.execute("COMMIT")
        self.schedule()

    def add_ballast(self, table, count):
        # 8 KB per row: a megabyte every 128 rows.
        self.db.executemany(
            "INSERT INTO %s(id, pad) VALUES (?, ?)" % table, ((i, bytes([i % 256]) * 8192) for i in range(count))
        )

    def schedule(self):
        self.next_checkpoint = self.seq + self.rng.randint(8, 25)
        self.next_vacuum = self.seq + self.rng.randint(120, 250)
        self.next_reopen = self.seq + self.rng.randint(150, 300)

    # -- transactions ------------------------------------------------------------------------

    def transfer(self, count):
        db = self.db
        for _ in range(count):
            a = self.rng.randint(1, self.accounts)
            b = self.rng.randint(1, self.accounts)
            amount = self.rng.randint(1, 500)
            db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))

    def sweep(self):
        # Every account page changes: the first half gains, the second half loses the same amount.
        half = self.accounts // 2
        amount = self.rng.randint(1, 50)
        self.db.execute(
            "UPDATE accounts SET balance = balance + CASE WHEN id <= ? THEN ? ELSE -? END WHERE id <= ?",
            (half, amount, amount, 2 * half),
        )

    def bulk_insert(self):
        self.batch += 1
        batch = self.batch
        rows = self.rng.randint(100, 400)
        db = self.db
        first = (db.execute("SELECT coalesce(max(id), 0) FROM bulk").fetchone()[0]) + 1
        data = []
        for row_id in range(first, first + rows):
            size = self.rng.choice((300, 700, 1000, 1200, 2500, 5000))
            b = payload_byte(row_id, batch)
            data.append((row_id, batch, b, bytes([b]) * size))
        db.executemany("INSERT INTO bulk(id, batch, b, payload) VALUES (?, ?, ?, ?)", data)
        total_bytes = sum(len(row[3]) for row in data)
        self.bump_bulk(rows, rows * batch, total_bytes)

    def bulk_delete(self):
        db = self.db
        row = db.execute("SELECT min(batch) FROM bulk").fetchone()
        if row[0] is None:
            return False
        oldest = row[0]
        count, batch_sum, nbytes = db.execute(
            "SELECT count(*), coalesce(sum(batch), 0), coalesce(sum(length(payload)), 0) FROM bulk WHERE batch = ?",
            (oldest,),
        ).fetchone()
        db.execute("DELETE FROM bulk WHERE batch = ?", (oldest,))
        self.bump_bulk(-count, -batch_sum, -nbytes)
        return True

    def bump_bulk(self, count, batch_sum, nbytes):
        db = self.db
        db.execute("UPDATE meta SET v = v + ? WHERE k = 'bulk_count'", (count,))
        db.execute("UPDATE meta SET v = v + ? WHERE k = 'bulk_batch_sum'", (batch_sum,))
        db.execute("UPDATE meta SET v = v + ? WHERE k = 'bulk_bytes'", (nbytes,))

    def commit_one(self):
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        roll = self.rng.random()
        bulk_rows = db.execute("SELECT v FROM meta WHERE k = 'bulk_count'").fetchone()[0]
        if roll < 0.12 and bulk_rows < 1500:
            kind = "bulk_insert"
            self.bulk_insert()
            self.transfer(3)
        elif roll < 0.22 or bulk_rows >= 1500:
            kind = "bulk_delete" if self.bulk_delete() else "transfer"
            self.transfer(3)
        elif roll < 0.30:
            kind = "sweep"
            self.sweep()
        else:
            kind = "transfer"
            self.transfer(self.rng.randint(1, 6))
        if kind == "bulk_insert":
            self.counts["bulk_inserts"] += 1
        elif kind == "bulk_delete":
            self.counts["bulk_deletes"] += 1
        elif kind == "sweep":
            self.counts["sweeps"] += 1
        self.seq += 1
        db.execute("INSERT INTO commits(n, kind, at) VALUES (?, ?, ?)", (self.seq, kind, time.time()))
        db.executemany("UPDATE meta SET v = ? WHERE k = ?", [(v, k) for k, v in self.counts.items()])
        db.execute("UPDATE meta SET v = ? WHERE k = 'seq'", (self.seq,))
        db.execute("COMMIT")

    def abort_one(self):
        """A transaction that breaks every invariant, spills to disk with a tiny cache, then rolls back.

        Mostly short ones (a few dozen pages: the journal is live for a millisecond or two, well
        within one read of a large file); sometimes a long one that also inserts ~1 MB of blobs.
        """
        db = self.db
        big = self.rng.random() < self.big_abort_rate
        db.execute("PRAGMA cache_size=10")
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE meta SET v = 1 WHERE k = 'poison'")
            db.execute("INSERT INTO commits(n, kind, at) VALUES (?, 'aborted', ?)", (self.seq + 1000000, time.time()))
            # Every eighth account: still every page of the table and of its index, but quick.
            db.execute("UPDATE accounts SET balance = balance + 1 WHERE id % 8 = 0")
            if big:
                first = (db.execute("SELECT coalesce(max(id), 0) FROM bulk").fetchone()[0]) + 1
                db.executemany(
                    "INSERT INTO bulk(id, batch, b, payload) VALUES (?, -1, 0, ?)",
                    ((i, b"\xee" * 3000) for i in range(first, first + 300)),
                )
                db.execute("UPDATE accounts SET balance = balance + 1")
        finally:
            db.execute("ROLLBACK")
            db.execute("PRAGMA cache_size=-2000")
        self.counts["aborts"] += 1

    # -- maintenance -------------------------------------------------------------------------

    def maintenance(self):
        db = self.db
        if self.mode == "wal" and self.seq >= self.next_checkpoint:
            kind = CHECKPOINT_KINDS[sum(self.counts["ckpt_" + k.lower()] for k in CHECKPOINT_KINDS) % 4]
            busy, _log, _done = db.execute("PRAGMA wal_checkpoint(%s)" % kind).fetchone()
            if busy:
                raise RuntimeError("wal_checkpoint(%s) reported busy with no other connection" % kind)
            self.counts["ckpt_" + kind.lower()] += 1
            self.next_checkpoint = self.seq + self.rng.randint(8, 25)
        if self.seq >= self.next_vacuum:
            db.execute("VACUUM")
            self.counts["vacuums"] += 1
            self.next_vacuum = self.seq + self.rng.randint(120, 250)
        if self.switch_every > 0 and self.seq >= self.next_switch:
            self.mode = SWITCH_ORDER[(SWITCH_ORDER.index(self.mode) + 1) % len(SWITCH_ORDER)]
            actual = db.execute("PRAGMA journal_mode=%s" % self.mode).fetchone()[0]
            if actual.lower() != self.mode:
                raise RuntimeError("journal_mode %s was refused (got %s)" % (self.mode, actual))
            self.counts["switches"] += 1
            self.next_switch = self.seq + self.switch_every
        if self.seq >= self.next_reopen or self.close_each:
            db.close()
            self.db = connect(self.path, self.mode)
            self.counts["reopens"] += 1
            self.next_reopen = self.seq + self.rng.randint(150, 300)

    def reader_saw(self, seq):
        with self.progress:
            self.seen = max(self.seen, seq)
            self.progress.notify_all()

    def finish(self):
        with self.progress:
            self.stop.set()
            self.progress.notify_all()

    def wait_for_reader(self):
        """With --lag: blocks (no transaction open) while the reader is lag commits behind."""
        if self.lag <= 0:
            return
        with self.progress:
            while self.seq >= self.seen + self.lag and not self.stop.is_set():
                self.progress.wait()

    def run(self):
        self.create()
        emit({"ready": {"total": self.total, "accounts": self.accounts, "mode": self.mode}})
        started = time.time()
        while not self.stop.is_set():
            self.wait_for_reader()
            if self.stop.is_set():
                break
            while self.rng.random() < self.abort_rate and not self.stop.is_set():
                self.abort_one()
                if self.pace > 0:
                    time.sleep(self.rng.uniform(0, self.pace))
            self.commit_one()
            if self.lag > 0:
                emit({"commit": self.seq})
            self.maintenance()
            if self.pace > 0:
                time.sleep(self.rng.uniform(0, self.pace))
        self.db.close()
        summary = dict(self.counts)
        summary["seq"] = self.seq
        summary["seconds"] = round(time.time() - started, 3)
        emit({"done": summary})


def watch_stdin(writer):
    try:
        for line in sys.stdin:
            words = line.split()
            if words == ["stop"]:
                break
            if len(words) == 2 and words[0] == "seen":
                writer.reader_saw(int(words[1]))
    finally:
        writer.finish()


def ledger(args):
    writer = Ledger(args)
    threading.Thread(target=watch_stdin, args=(writer,), daemon=True).start()
    writer.run()


def file_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def rpc(args):
    if os.path.exists(args.db):
        raise RuntimeError("%s already exists" % args.db)
    db = connect(args.db, args.mode)
    if args.exclusive:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("CREATE TABLE items(n INTEGER PRIMARY KEY, payload BLOB)")
    emit({"ready": True})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "put":
            n = int(words[1])
            size = int(words[2]) if len(words) > 2 else 16
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO items(n, payload) VALUES (?, ?)", (n, bytes([n % 256]) * size))
            db.execute("COMMIT")
            emit({"ok": n})
        elif words[0] == "fill":
            first, count, size = int(words[1]), int(words[2]), int(words[3])
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO items(n, payload) VALUES (?, ?)",
                ((n, bytes([n % 256]) * size) for n in range(first, first + count)),
            )
            db.execute("COMMIT")
            emit({"ok": "fill"})
        elif words[0] == "spill":
            # Opens a transaction that changes every page of items with a 10-page cache, so SQLite
            # writes dirty pages before the transaction ends, and leaves it open. Reports whether
            # bytes that were already in the database file / the WAL changed (not just appended).
            db_before, wal_before = file_bytes(args.db), file_bytes(args.db + "-wal")
            db.execute("PRAGMA cache_size=10")
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE items SET n = n + 1000000")
            db.execute("INSERT INTO items(n, payload) VALUES (-1, ?)", (b"\xee" * 5000,))
            db_after, wal_after = file_bytes(args.db), file_bytes(args.db + "-wal")
            emit({
                "ok": "spill",
                "db_changed": db_after[: len(db_before)] != db_before,
                "wal_changed": wal_after[: len(wal_before)] != wal_before,
            })
        elif words[0] == "detach":
            db.close()
            db = None
            emit({"ok": "detach"})
        elif words[0] == "set":
            n = int(words[1])
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE items SET payload = ? WHERE n = 1", (("%16d" % n).encode(),))
            db.execute("COMMIT")
            emit({"ok": n})
        elif words[0] == "once":
            n = int(words[1])
            once = sqlite3.connect(args.db, isolation_level=None, timeout=30)
            once.execute("BEGIN IMMEDIATE")
            once.execute("UPDATE items SET payload = ? WHERE n = 1", (("%16d" % n).encode(),))
            once.execute("COMMIT")
            once.close()
            emit({"ok": n})
        elif words[0] == "rollback":
            db.execute("ROLLBACK")
            db.execute("PRAGMA cache_size=-2000")
            emit({"ok": "rollback"})
        elif words[0] == "ckpt":
            result = db.execute("PRAGMA wal_checkpoint(%s)" % words[1]).fetchone()
            emit({"ok": "ckpt", "result": list(result)})
        else:
            raise RuntimeError("unknown command %r" % line)
    if db is not None:
        db.close()


def grow(args):
    if os.path.exists(args.db):
        raise RuntimeError("%s already exists" % args.db)
    page = 65536
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA page_size=%d" % page)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    db.close()
    with open(args.db, "r+b") as f:
        header = bytearray(f.read(100))
        header[28:32] = args.pages.to_bytes(4, "big")
        header[92:96] = header[24:28]
        f.seek(0)
        f.write(header)
    os.truncate(args.db, args.pages * page)
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA wal_autocheckpoint=0")

    def put(n, size):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t(k, v) VALUES (?, ?)", (n, bytes([n % 256]) * size))
        db.execute("COMMIT")
        return db.execute("PRAGMA page_count").fetchone()[0]

    pages = put(1, 200000)
    emit({"ready": {"pages": pages, "wal": os.path.getsize(args.db + "-wal")}})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "put":
            n = int(words[1])
            emit({"ok": n, "pages": put(n, int(words[2]))})
        else:
            raise RuntimeError("unknown command %r" % line)
    db.close()


def build(args):
    if os.path.exists(args.db):
        raise RuntimeError("%s already exists" % args.db)
    db = connect(args.db, args.mode)
    db.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, label TEXT NOT NULL, pad BLOB NOT NULL)")
    db.executemany(
        "INSERT INTO t(k, label, pad) VALUES (?, ?, ?)",
        ((k, args.label, bytes([k % 256]) * 200) for k in range(1, args.rows + 1)),
    )
    db.execute("COMMIT")
    db.close()
    if os.path.exists(args.db + "-wal"):
        raise RuntimeError("%s-wal was left behind" % args.db)
    emit({"built": args.db})


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ledger")
    p.add_argument("db")
    p.add_argument("mode", choices=("wal", "delete", "truncate", "persist"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--accounts", type=int, default=4000)
    p.add_argument("--pace", type=float, default=0.002)
    p.add_argument("--aborts", type=float, default=0.0, metavar="RATE")
    p.add_argument("--big-aborts", type=float, default=0.2, metavar="FRACTION")
    p.add_argument("--switch-every", type=int, default=0, metavar="COMMITS")
    p.add_argument("--ballast", type=int, default=0, metavar="MB")
    p.add_argument("--close-each", action="store_true")
    p.add_argument("--lag", type=int, default=0, metavar="COMMITS")
    p.set_defaults(func=ledger)
    p = sub.add_parser("rpc")
    p.add_argument("db")
    p.add_argument("mode", choices=("wal", "delete", "truncate", "persist"))
    p.add_argument("--exclusive", action="store_true")
    p.set_defaults(func=rpc)
    p = sub.add_parser("build")
    p.add_argument("db")
    p.add_argument("mode", choices=("wal", "delete", "truncate", "persist"))
    p.add_argument("label")
    p.add_argument("rows", type=int)
    p.set_defaults(func=build)
    p = sub.add_parser("grow")
    p.add_argument("db")
    p.add_argument("pages", type=int)
    p.set_defaults(func=grow)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
