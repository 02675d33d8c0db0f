"""Demo writer: seeds a database, then commits one event every few milliseconds until stdin closes."""
import os, random, sqlite3, sys, threading, time

path, rows = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, at_ms REAL NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL)")
db.execute("BEGIN")
kinds = ["login", "click", "view", "purchase", "logout"]
db.executemany(
    "INSERT INTO events(at_ms, kind, payload) VALUES (?, ?, ?)",
    ((time.time() * 1000, random.choice(kinds), os.urandom(48).hex()) for _ in range(rows)),
)
db.execute("COMMIT")
print("ready", flush=True)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
commits = 0
while not stop.is_set():
    db.execute("INSERT INTO events(at_ms, kind, payload) VALUES (?, ?, ?)", (time.time() * 1000, random.choice(kinds), os.urandom(48).hex()))
    commits += 1
    if commits % 500 == 0:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    time.sleep(random.uniform(0.005, 0.03))
db.close()
