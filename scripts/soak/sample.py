#!/usr/bin/env python3
"""Samples a running mesh every INTERVAL seconds into a CSV, until killed (scripts/soak.sh).

Columns: t (seconds since start), per service `rss_<name>_mb` (VmRSS), `db_<name>_mb` and
`wal_<name>_mb` (SQLite file and its -wal; on PostgreSQL `db_<name>_mb` is pg_database_size and
`wal_<name>_mb` the size of the runtime's tables, mesh_inbox and mesh_outbox with their indexes),
`inbox_<name>` and `outbox_<name>` rows, `redis_used_mb`, `stream_entries` and `stream_mb` (sum of XLEN and of
MEMORY USAGE over the mesh's streams), `idem_members` and `idem_mb` (the same over its
idempotency sets), and `p99_ms` /
`shipped` of the bench-orders window that ended last (from its `sample` lines).

Usage: sample.py OUT.csv INTERVAL REDIS_PORT PREFIX BENCH_OUTPUT name=PID:DB ...
(DB is a SQLite path, or a postgres:// URL).
"""
import csv, os, subprocess, sys, time, sqlite3

out, interval, port, prefix, bench_out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
services = []
for spec in sys.argv[6:]:
    name, rest = spec.split("=", 1)
    pid, db = rest.split(":", 1) if ":" in rest else (rest, "")
    services.append((name, int(pid), db))

def redis(*args):
    return subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True, timeout=30).stdout

def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")

def size_mb(path):
    try:
        return os.path.getsize(path) / 1048576
    except OSError:
        return 0.0

def rows(db, table):
    try:
        if db.startswith("postgres"):
            r = subprocess.run(["psql", "-XAtq", db, "-c", f"SELECT count(*) FROM {table}"],
                               capture_output=True, text=True, timeout=30)
            return int(r.stdout.strip())
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except Exception:
        return -1

def pg_size_mb(db, query="SELECT pg_database_size(current_database())"):
    r = subprocess.run(["psql", "-XAtq", db, "-c", query],
                       capture_output=True, text=True, timeout=30)
    try:
        return int(r.stdout.strip()) / 1048576
    except ValueError:
        return float("nan")

def last_bench_sample():
    try:
        with open(bench_out) as f:
            lines = [l for l in f if l.startswith("sample ")]
    except OSError:
        return "", ""
    if not lines:
        return "", ""
    fields = dict(p.split("=") for p in lines[-1].split()[2:])
    return fields.get("p99_ms", ""), fields.get("shipped", "")

def memory(key):
    # SAMPLES 0: every element counted, not an estimate from a few.
    return int(redis("MEMORY", "USAGE", key, "SAMPLES", "0").strip() or 0)

def keys(pattern, kind):
    # redis-cli 7.0's --scan has no --type: ask each key's type.
    return [k for k in redis("--scan", "--pattern", pattern).split()
            if k and redis("TYPE", k).strip() == kind]

start = time.time()
header = ["t"]
for name, _, _ in services:
    header += [f"rss_{name}_mb", f"db_{name}_mb", f"wal_{name}_mb", f"inbox_{name}", f"outbox_{name}"]
header += ["redis_used_mb", "stream_entries", "stream_mb", "idem_members", "idem_mb", "p99_ms", "shipped"]
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    f.flush()
    while True:
        t0 = time.time()
        row = [round(t0 - start)]
        for name, pid, db in services:
            if db.startswith("postgres"):
                runtime = pg_size_mb(db, "SELECT pg_total_relation_size('mesh_inbox') + pg_total_relation_size('mesh_outbox')")
                row += [round(rss_mb(pid), 1), round(pg_size_mb(db), 2), round(runtime, 2)]
            else:
                row += [round(rss_mb(pid), 1), round(size_mb(db), 2), round(size_mb(db + "-wal"), 2)]
            row += [rows(db, "mesh_inbox"), rows(db, "mesh_outbox")]
        info = dict(l.split(":", 1) for l in redis("INFO", "memory").splitlines() if ":" in l)
        row.append(round(int(info.get("used_memory", "0")) / 1048576, 2))
        streams, sets = keys(prefix + "*", "stream"), keys(prefix + "idem:*", "set")
        row.append(sum(int(redis("XLEN", k).strip() or 0) for k in streams))
        row.append(round(sum(memory(k) for k in streams) / 1048576, 2))
        row.append(sum(int(redis("SCARD", k).strip() or 0) for k in sets))
        row.append(round(sum(memory(k) for k in sets) / 1048576, 2))
        row += list(last_bench_sample())
        w.writerow(row)
        f.flush()
        time.sleep(max(0.0, interval - (time.time() - t0)))
