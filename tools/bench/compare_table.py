#!/usr/bin/env python3
"""Reads the JSON that tools/bench/compare.sh wrote and prints one markdown table.

  python3 tools/bench/compare_table.py build/reports/compare --threads 2 --files cold

Every figure is the median over repeats; "epochs 2+" is, per run, the mean rate over epochs 2..N
(images of those epochs / their seconds), then the median of that over repeats. Raw loops use each
run's median over its own reps, then the median over repeats.
"""
import argparse
import glob
import json
import os
import statistics


def load(out, name):
    runs = []
    for path in sorted(glob.glob(os.path.join(out, f"{name}.r*.json"))):
        with open(path) as f:
            text = f.read().strip()
        if text:
            try:
                runs.append(json.loads(text))
            except json.JSONDecodeError:  # a log line before the JSON line
                runs.append(json.loads(text.splitlines()[-1]))
    return runs


def epoch_rate(epochs, first):
    """Rate of epoch 1 (first=True) or of epochs 2+ together (images / seconds)."""
    sel = epochs[:1] if first else epochs[1:]
    if not sel:
        return None
    images = sum(e.get("images", e.get("samples", 0)) for e in sel)
    seconds = sum(e.get("seconds", 0) for e in sel)
    if images and seconds:
        return images / seconds
    return statistics.mean(e["samples_per_second"] for e in sel)


def median(values):
    kept = [v for v in values if v is not None]
    # The last element keeps the per-run values (in repeat order) for paired ratios.
    return (statistics.median(kept), len(kept), min(kept), max(kept), values) if kept else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--files", default="warm")
    a = p.parse_args()

    def runs_epochs(name, first):
        return median([epoch_rate(r["epochs"], first) for r in load(a.out, name)])

    def raw(name):
        return median([r["images_per_second"] for r in load(a.out, name)])

    T = a.threads
    rows = {
        "ff1": ("flowfeed, cache off: epoch 1 (uncached)", runs_epochs("flowfeed_off", True)),
        "ffm1": ("flowfeed, cache memory: epoch 1 (uncached + cache fill)", runs_epochs("flowfeed_memory", True)),
        "ff2": ("flowfeed, cache memory: epochs 2+ (cached)", runs_epochs("flowfeed_memory", False)),
        "dl1": (f"DataLoader (num_workers={T}): epoch 1", runs_epochs("torch_plain", True)),
        "dl2": (f"DataLoader (num_workers={T}): epochs 2+", runs_epochs("torch_plain", False)),
        "dc1": (f"DataLoader + dict cache (num_workers={T}): epoch 1", runs_epochs("torch_cached", True)),
        "dc2": (f"DataLoader + dict cache (num_workers={T}): epochs 2+ ¹", runs_epochs("torch_cached", False)),
        "dz2": ("DataLoader + dict cache (num_workers=0): epochs 2+", runs_epochs("torch_cached_w0", False)),
        "rd": (f"raw TurboJPEG decode, {T} threads (uncached limit) ²", raw("raw_decode")),
        "ra": (f"raw crop+resize+flip+normalise, {T} threads (cached limit) ²", raw("raw_augment")),
    }
    # Which flowfeed row each other row is compared with.
    vs_dl = {"dl1": "ff1", "dl2": "ff2", "dc1": "ffm1", "dc2": "ff2", "dz2": "ff2"}
    vs_limit = {"rd": "ff1", "ra": "ff2"}

    def val(key):
        return rows[key][1]

    def ratio(num, den):
        """Median over repeats of num/den within the same repeat: the machine's speed drifts
        between repeats (shared VM), so pairing runs of one repeat is steadier than dividing
        medians."""
        if not num or not den:
            return ""
        pairs = [x / y for x, y in zip(num[4], den[4]) if x and y]
        return f"{statistics.median(pairs):.2f}x" if pairs else ""

    print(f"threads / num_workers = {T}, batch 64, data = the photo folder, files {a.files} at each "
          "epoch 1; images/s = median of the runs (min-max in brackets)\n")
    print("| contender | images/s | runs (min-max) | flowfeed / DataLoader | flowfeed / limit |")
    print("|---|---:|---|---:|---:|")
    for key, (label, m) in rows.items():
        if m is None:
            print(f"| {label} | n/a | 0 | | |")
            continue
        med, n, lo, hi, _ = m
        r_dl = ratio(val(vs_dl[key]), m) if key in vs_dl else ""
        r_lim = ratio(val(vs_limit[key]), m) if key in vs_limit else ""
        if key == "ff1":
            r_dl, r_lim = ratio(m, val("dl1")), ratio(m, val("rd"))
        elif key == "ff2":
            r_dl, r_lim = ratio(m, val("dl2")), ratio(m, val("ra"))
        elif key == "ffm1":
            r_dl = ratio(m, val("dc1"))
        print(f"| {label} | {med:.0f} | {n} ({lo:.0f}-{hi:.0f}) | {r_dl} | {r_lim} |")

    notes = []
    cached = load(a.out, "torch_cached")
    if cached:
        hits = [[e.get("cache_hits") for e in r["epochs"]] for r in cached]
        n = cached[0]["images"]
        notes.append(f"¹ each of the {T} worker processes holds its own copy of the decoded-image cache "
                     f"(persistent_workers=True), and shuffled batches go to any worker, so epochs 1..N "
                     f"served {', '.join('/'.join(str(h) for h in hs) for hs in hits)} of {n} images "
                     "from a cache (per run).")
    for name in ("raw_decode", "raw_augment"):
        r = load(a.out, name)
        if r:
            notes.append(f"² {name}: {r[0]['images']} images, median of {r[0]['reps']} reps per run, "
                         "images already in memory (no file reads, no batching).")
    notes.append("Ratios are medians over repeats of the ratio within one repeat (runs of a repeat "
                 "are back to back, so they share the machine's speed at that time). "
                 "Flowfeed rows against the DataLoader (plain) row and the raw limit of the same "
                 "kind of epoch; DataLoader rows show the matching flowfeed figure divided by theirs "
                 "(epoch 1 with cache against flowfeed's cache-memory epoch 1).")
    print()
    for n in notes:
        print(n + "  ")


if __name__ == "__main__":
    main()
