#!/usr/bin/env python3
"""Reads a soak CSV (sample.py), prints it as a table, checks that what must stay flat did, and
plots it (PNG) when matplotlib is there.

Flat means: over the samples after SETTLE seconds (warm-up plus one retention window, when
every trim, expiry and prune has had its first turn), the maximum of the second half is at most
the maximum of the first half times (1 + tolerance) plus a small absolute slack. Maxima, not
means, because trims and prunes make saw teeth. The services' database *files* hold the shop's
history (orders, payments, shipments), which grows as it should: they are shown and their growth
per order reported, but only the WAL files and the runtime's rows (inbox, outbox) must be flat.

Usage: report.py SOAK.csv SETTLE_SECONDS [--png OUT.png] [--title TEXT]; exit 1 when something grew.
"""
import csv, math, sys

path, settle = sys.argv[1], float(sys.argv[2])
png = sys.argv[sys.argv.index("--png") + 1] if "--png" in sys.argv else None
title = sys.argv[sys.argv.index("--title") + 1] if "--title" in sys.argv else "soak"

with open(path) as f:
    data = list(csv.DictReader(f))
if len(data) < 4:
    sys.exit(f"{path}: too few samples ({len(data)})")
cols = list(data[0].keys())

def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan

series = {c: [num(r[c]) for r in data] for c in cols}
t = series["t"]

# (column prefix or name, relative tolerance, absolute slack, cap). Under its cap a quantity
# passes whatever its trend: a SQLite WAL grows until the checkpoint truncates it past
# common::db::checkpoint's limit (64 MiB), and a short run may end before the first truncation.
WAL_CAP_MB = 64 * 1.25
RULES = [("rss_", 0.15, 6.0, 0), ("wal_", 0.25, 8.0, WAL_CAP_MB), ("inbox_", 0.15, 500, 0),
         ("outbox_", 0.5, 500, 0), ("redis_used_mb", 0.15, 4.0, 0),
         ("stream_entries", 0.15, 2000, 0), ("stream_mb", 0.15, 2.0, 0),
         ("idem_members", 0.15, 2000, 0), ("idem_mb", 0.15, 2.0, 0), ("p99_ms", 1.0, 50.0, 0)]

def rule(col):
    for prefix, rel, slack, cap in RULES:
        if col == prefix or col.startswith(prefix):
            return rel, slack, cap
    return None

# The table: about 20 rows, always the first and last.
shown = [c for c in cols if c not in ("shipped",)]
step = max(1, len(data) // 20)
idx = sorted(set(list(range(0, len(data), step)) + [len(data) - 1]))
short = {c: c.replace("_mb", "").replace("rss_", "rss:").replace("wal_", "wal:").replace("db_", "db:")
         .replace("inbox_", "in:").replace("outbox_", "out:") for c in shown}
widths = {c: max(len(short[c]), 7) for c in shown}
print(" ".join(short[c].rjust(widths[c]) for c in shown))
for i in idx:
    print(" ".join(str(data[i][c]).rjust(widths[c]) for c in shown))
shipped = sum(v for v in series.get("shipped", []) if not math.isnan(v))
print(f"\nsamples: {len(data)} over {t[-1]:.0f} s; orders shipped in sampled windows: {shipped:.0f}")

settled = [i for i, x in enumerate(t) if x >= settle]
ok = True
if len(settled) < 4:
    print(f"FAIL: fewer than 4 samples after {settle:.0f} s of settling: run longer")
    sys.exit(1)
half = len(settled) // 2
first, second = settled[:half], settled[half:]
print(f"flatness after {settle:.0f} s: max of t={t[second[0]]:.0f}..{t[second[-1]]:.0f} s "
      f"against max of t={t[first[0]]:.0f}..{t[first[-1]]:.0f} s")
for c in cols:
    r = rule(c)
    if r is None:
        continue
    a = max((series[c][i] for i in first if not math.isnan(series[c][i])), default=math.nan)
    b = max((series[c][i] for i in second if not math.isnan(series[c][i])), default=math.nan)
    if math.isnan(a) or math.isnan(b):
        continue
    limit = max(a * (1 + r[0]) + r[1], r[2])
    flat = b <= limit
    ok &= flat
    print(f"  {'flat ' if flat else 'GROWS'} {c:<22} {a:>12.1f} -> {b:>12.1f} (limit {limit:.1f})")
for c in cols:
    if c.startswith("db_") and shipped > 0:
        grew = series[c][-1] - series[c][settled[0]]
        orders = sum(v for i, v in enumerate(series["shipped"]) if i > settled[0] and not math.isnan(v))
        if orders:
            print(f"  history {c:<20} +{grew:.1f} MB over {orders:.0f} orders "
                  f"({grew * 1048576 / orders:.0f} B per order; the shop's records, expected to grow)")

if png:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no matplotlib: {png} not drawn; apt-get install python3-matplotlib)")
    else:
        # On PostgreSQL the sampler's wal_ columns are the runtime's tables (sample.py).
        wal = "inbox + outbox tables (MB)" if "PostgreSQL" in title else "SQLite WAL (MB)"
        panels = [("RSS (MB)", "rss_"), (wal, "wal_"), ("database (MB)", "db_"),
                  ("inbox rows", "inbox_"), ("outbox rows", "outbox_"),
                  ("Redis used_memory (MB)", "redis_used_mb"), ("stream entries", "stream_entries"),
                  ("idempotency members", "idem_members"), ("p99 POST→shipped (ms)", "p99_ms")]
        fig, axes = plt.subplots(3, 3, figsize=(15, 10), sharex=True)
        for ax, (label, prefix) in zip(axes.flat, panels):
            for c in cols:
                if c == prefix or c.startswith(prefix):
                    ax.plot([x / 60 for x in t], series[c], label=c.replace(prefix, "") or c)
            ax.axvline(settle / 60, color="grey", linestyle=":", linewidth=1)
            ax.set_title(label, fontsize=10)
            if prefix.endswith("_"):
                ax.legend(fontsize=7)
        for ax in axes[-1]:
            ax.set_xlabel("minutes")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(png, dpi=80)
        print(f"plot: {png}")

print("\nsoak: " + ("every bounded quantity stayed flat" if ok else "SOMETHING GREW (see GROWS above)"))
sys.exit(0 if ok else 1)
