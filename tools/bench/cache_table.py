#!/usr/bin/env python3
"""Markdown table of cached-epoch figures from flowfeed JSON reports.

Arguments: NAME:FILES:REPORT[,REPORT...]; with several reports (repetitions of one run), the
throughput columns are medians over them and the rest come from the first.
"""
import json
import statistics
import sys


def mib(b):
    return f"{b / 2**20:,.0f}"


print("| run | files | epoch 1 samples/s | epochs 2+ samples/s | epochs 2+ / epoch 1 "
      "| epoch 1 hits | epochs 2+ hit rate | cache MiB memory / disk | read MiB epoch 1 / 2 "
      "| peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for arg in sys.argv[1:]:
    name, files, paths = arg.split(":", 2)
    reports = []
    for path in paths.split(","):
        with open(path) as f:
            reports.append(json.load(f))
    first = statistics.median(r["epochs"][0]["samples_per_second"] for r in reports)
    later = statistics.median(
        statistics.median(x["samples_per_second"] for x in r["epochs"][1:]) for r in reports)
    r = reports[0]
    e = r["epochs"]
    c = r["cache"]
    hits = sum(x["cache"]["hits"] for x in e[1:])
    looks = sum(x["cache"]["hits"] + x["cache"]["misses"] for x in e[1:])
    rate = f"{100.0 * hits / looks:.0f}%" if looks else "no cache"
    cache = f"{mib(c['memory_bytes'])} / {mib(c['disk_bytes'])}" if c["placement"] else "-"
    rss = max(x["run"].get("peak_rss_bytes", 0) for x in reports)
    print(f"| {name} | {files} | {first:,.0f} | {later:,.0f} | {later / first:.1f}x "
          f"| {e[0]['cache']['hits']} | {rate} | {cache} "
          f"| {mib(e[0]['bytes_read'])} / {mib(e[1]['bytes_read'])} | {mib(rss)} |")
