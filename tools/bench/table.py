#!/usr/bin/env python3
"""Prints a markdown table from flowfeed JSON reports: NAME:CACHE:REPORT.json arguments."""
import json
import statistics
import sys


def busiest(epoch):
    stages = epoch["stages"]
    total = sum(s["busy_seconds"] for s in stages.values()) or 1.0
    name = max(stages, key=lambda n: stages[n]["busy_seconds"])
    return f"{name} {100.0 * stages[name]['busy_seconds'] / total:.0f}%"


def main(args):
    print("| config | samples/epoch | threads | epoch 1 samples/s (files) | epochs 2+ samples/s (median) "
          "| epochs 2+ / epoch 1 | busiest stage, epoch 1 | busiest stage, last epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for arg in args:
        name, cache, path = arg.split(":", 2)
        with open(path) as f:
            report = json.load(f)
        epochs = report["epochs"]
        first = epochs[0]["samples_per_second"]
        later = statistics.median(e["samples_per_second"] for e in epochs[1:]) if len(epochs) > 1 else float("nan")
        print(f"| {name} | {epochs[0]['samples']} | {report['run']['threads']} | {first:,.0f} ({cache}) "
              f"| {later:,.0f} | {later / first:.2f} | {busiest(epochs[0])} | {busiest(epochs[-1])} |")


if __name__ == "__main__":
    main(sys.argv[1:])
