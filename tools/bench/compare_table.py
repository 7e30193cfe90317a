#!/usr/bin/env python3
"""Reads the JSON that tools/bench/compare.sh wrote and prints four markdown tables: the
comparison, what each cache kept (store, bytes, hit rate, peak memory), thread scaling (1 thread
against N) and the goals (PASS/MISS).

  python3 tools/bench/compare_table.py build/reports/compare --threads 2 --files cold

Every figure is the median over repeats; "epochs 2+" is, per run, the mean rate over epochs 2..N
(images of those epochs / their seconds), then the median of that over repeats. Raw loops use each
run's median over its own reps, then the median over repeats. Ratios are medians over repeats of
the ratio within one repeat. Rows whose runs are missing (no torch, SCALING=0, NOFUSE=0) are left
out.
"""
import argparse
import glob
import json
import os
import re
import statistics


def load(out, name):
    """{repeat number: parsed JSON} of OUT/NAME.r<repeat>.json."""
    runs = {}
    for path in glob.glob(os.path.join(glob.escape(out), f"{glob.escape(name)}.r*.json")):
        m = re.fullmatch(re.escape(name) + r"\.r(\d+)\.json", os.path.basename(path))
        if not m:  # e.g. NAME_t1.r1.json does not belong to NAME
            continue
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        try:
            runs[int(m.group(1))] = json.loads(text)
        except json.JSONDecodeError:  # a log line before the JSON line
            try:
                runs[int(m.group(1))] = json.loads(text.splitlines()[-1])
            except json.JSONDecodeError:
                continue
    return dict(sorted(runs.items()))


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


class Stat:
    """Median over repeats, with the per-repeat values kept for paired ratios."""

    def __init__(self, per_rep):
        self.per_rep = {r: v for r, v in per_rep.items() if v}
        vals = list(self.per_rep.values())
        self.med = statistics.median(vals)
        self.n, self.lo, self.hi = len(vals), min(vals), max(vals)


def stat(per_rep):
    return Stat(per_rep) if any(per_rep.values()) else None


def ratio_value(num, den):
    """Median over repeats of num/den within the same repeat: the machine's speed drifts
    between repeats (shared VM), so pairing runs of one repeat is steadier than dividing
    medians. None when either side is missing or no repeat has both."""
    if not num or not den:
        return None
    pairs = [num.per_rep[r] / den.per_rep[r] for r in num.per_rep if r in den.per_rep]
    return statistics.median(pairs) if pairs else None


def fmt_ratio(v):
    return f"{v:.2f}x" if v is not None else ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--files", default="warm")
    a = p.parse_args()

    def runs_epochs(name, first):
        return stat({r: epoch_rate(j.get("epochs", []), first) for r, j in load(a.out, name).items()})

    def raw(name):
        return stat({r: j.get("images_per_second") for r, j in load(a.out, name).items()})

    T = a.threads
    rows = {
        "ff1": ("flowfeed, cache off: epoch 1 (uncached)", runs_epochs("flowfeed_off", True)),
        "ffn1": ("flowfeed, cache off, fuse off: epoch 1 (full decode, unfused)",
                 runs_epochs("flowfeed_off_nofuse", True)),
        "fa1": ("flowfeed, default cache (auto): epoch 1 (uncached + cache fill)", runs_epochs("flowfeed_auto", True)),
        "fa2": ("flowfeed, default cache (auto): epochs 2+", runs_epochs("flowfeed_auto", False)),
        "ffm1": ("flowfeed, pixels in memory: epoch 1 (uncached + cache fill)", runs_epochs("flowfeed_pixels", True)),
        "ff2": ("flowfeed, pixels in memory: epochs 2+ (cached)", runs_epochs("flowfeed_pixels", False)),
        "ffi1": ("flowfeed, files in memory: epoch 1 (uncached + cache fill)", runs_epochs("flowfeed_files", True)),
        "ffi2": ("flowfeed, files in memory: epochs 2+ (decoded again)", runs_epochs("flowfeed_files", False)),
        "fd1": ("flowfeed, disk cache: epoch 1 (uncached + cache write)", runs_epochs("flowfeed_disk", True)),
        "fd2": ("flowfeed, disk cache: epochs 2+", runs_epochs("flowfeed_disk", False)),
        "dl1": (f"DataLoader (num_workers={T}): epoch 1", runs_epochs("torch_plain", True)),
        "dl2": (f"DataLoader (num_workers={T}): epochs 2+", runs_epochs("torch_plain", False)),
        "dc1": (f"DataLoader + dict cache (num_workers={T}): epoch 1", runs_epochs("torch_cached", True)),
        "dc2": (f"DataLoader + dict cache (num_workers={T}): epochs 2+ ¹", runs_epochs("torch_cached", False)),
        "dz2": ("DataLoader + dict cache (num_workers=0): epochs 2+", runs_epochs("torch_cached_w0", False)),
        "rda": (f"raw TurboJPEG decode + crop/resize/flip/normalise, {T} threads "
                "(uncached limit, same work) ²", raw("raw_decode_augment")),
        "rd": (f"raw TurboJPEG decode, {T} threads (decode only) ²", raw("raw_decode")),
        "ra": (f"raw crop+resize+flip+normalise, {T} threads (cached limit) ²", raw("raw_augment")),
    }

    def val(key):
        return rows[key][1]

    def ratio(num_key, den_key):
        return ratio_value(val(num_key), val(den_key))

    # Columns per row: (flowfeed / DataLoader, flowfeed / limit, flowfeed / decode-only loop),
    # each a (numerator, denominator) pair of row keys. Flowfeed rows compare themselves; the other
    # rows show the matching flowfeed figure divided by theirs.
    columns = {
        "ff1": (("ff1", "dl1"), ("ff1", "rda"), ("ff1", "rd")),
        "ffn1": (("ffn1", "dl1"), ("ffn1", "rda"), ("ffn1", "rd")),
        "fa1": (("fa1", "dl1"), ("fa1", "rda"), ("fa1", "ff1")),
        "fa2": (("fa2", "dl2"), ("fa2", "ra"), None),
        "ffm1": (("ffm1", "dc1"), ("ffm1", "rda"), ("ffm1", "ff1")),
        "ff2": (("ff2", "dl2"), ("ff2", "ra"), None),
        "ffi1": (("ffi1", "dl1"), ("ffi1", "rda"), ("ffi1", "ff1")),
        "ffi2": (("ffi2", "dl2"), ("ffi2", "ra"), None),
        "fd1": (("fd1", "dl1"), ("fd1", "rda"), ("fd1", "ff1")),
        "fd2": (("fd2", "dl2"), ("fd2", "ra"), None),
        "dl1": (("ff1", "dl1"), None, None),
        "dl2": (("ff2", "dl2"), None, None),
        "dc1": (("ffm1", "dc1"), None, None),
        "dc2": (("ff2", "dc2"), None, None),
        "dz2": (("ff2", "dz2"), None, None),
        "rda": (None, ("ff1", "rda"), None),
        "rd": (None, None, ("ff1", "rd")),
        "ra": (None, ("ff2", "ra"), None),
    }

    print(f"threads / num_workers = {T}, batch 64, data = the photo folder, files {a.files} at each "
          "epoch 1; images/s = median of the runs (min-max in brackets)\n")
    print("| contender | images/s | runs (min-max) | flowfeed / DataLoader | flowfeed / limit "
          "| flowfeed / decode-only loop ³, cached epoch 1 / cache-off epoch 1 |")
    print("|---|---:|---|---:|---:|---:|")
    for key, (label, m) in rows.items():
        if m is None:
            continue
        cells = [fmt_ratio(ratio(*c)) if c else "" for c in columns[key]]
        print(f"| {label} | {m.med:.0f} | {m.n} ({m.lo:.0f}-{m.hi:.0f}) | " + " | ".join(cells) + " |")
    missing = [label for label, m in rows.values() if m is None]

    notes = []
    cached = load(a.out, "torch_cached")
    if cached:
        hits = [[e.get("cache_hits") for e in r["epochs"]] for r in cached.values()]
        n = next(iter(cached.values())).get("images", "?")
        notes.append(f"¹ each of the {T} worker processes holds its own copy of the decoded-image cache "
                     f"(persistent_workers=True), and shuffled batches go to any worker, so epochs 1..N "
                     f"served {', '.join('/'.join(str(h) for h in hs) for hs in hits)} of {n} images "
                     "from a cache (per run).")
    for name in ("raw_decode_augment", "raw_decode", "raw_augment"):
        r = load(a.out, name)
        if r:
            first = next(iter(r.values()))
            notes.append(f"² {name}: {first['images']} images, median of {first['reps']} reps per run, "
                         "images already in memory (no file reads, no batching).")
    notes.append("³ the cache-off flowfeed rows divided by the raw decode-only loop (no crop, resize, "
                 "flip or normalisation), for reference (their \"limit\" is the raw decode + "
                 "crop/resize/flip/normalise loop, which does the same work); the cached rows' epoch 1 "
                 "divided by the cache-off epoch 1 of the same repeat: what filling the cache cost.")
    notes.append("Ratios are medians over repeats of the ratio within one repeat (runs of a repeat "
                 "are back to back, so they share the machine's speed at that time). "
                 "Flowfeed rows against the DataLoader (plain) row and the raw limit of the same "
                 "kind of epoch; DataLoader rows show the matching flowfeed figure divided by theirs "
                 "(epoch 1 with cache against flowfeed's cache-memory epoch 1).")
    if missing:
        notes.append("Left out (no runs): " + "; ".join(missing) + ".")
    print()
    for n in notes:
        print(n + "  ")

    # --- what each cache kept ---------------------------------------------------------------
    def cache_facts(name):
        runs = load(a.out, name)
        if not runs:
            return None
        stores, bytes_, hit2, rss = set(), [], [], []
        for j in runs.values():
            c = j.get("cache", {})
            stores.add(c.get("store") or c.get("placement") or "?")
            bytes_.append(c.get("memory_bytes", 0) + c.get("disk_bytes", 0))
            ep = j.get("epochs", [])
            if len(ep) > 1:
                e2 = ep[1].get("cache", {})
                looked = e2.get("hits", 0) + e2.get("misses", 0)
                hit2.append(100.0 * e2.get("hits", 0) / looked if looked else 0.0)
            rss.append(j.get("run", {}).get("peak_rss_bytes", 0))
        return {"store": "/".join(sorted(stores)), "bytes": statistics.median(bytes_),
                "hit2": statistics.median(hit2) if hit2 else None, "rss": statistics.median(rss),
                "decision": next(iter(runs.values())).get("cache", {}).get("decision", "")}

    facts = {n: cache_facts(n) for n in ("flowfeed_off", "flowfeed_auto", "flowfeed_pixels",
                                           "flowfeed_files", "flowfeed_disk")}
    rgb = facts["flowfeed_pixels"]["bytes"] if facts.get("flowfeed_pixels") else None
    mib = 1024.0 * 1024.0
    if any(facts.values()):
        print("\n### What each cache kept\n")
        print("| run | store | cache bytes | / decoded RGB | epoch 2 hit rate | peak RSS |")
        print("|---|---|---:|---:|---:|---:|")
        for n, f in facts.items():
            if not f:
                continue
            share = f"{100.0 * f['bytes'] / rgb:.1f}%" if rgb and n != "flowfeed_off" else ""
            hit = f"{f['hit2']:.1f}%" if f["hit2"] is not None and n != "flowfeed_off" else ""
            store = f["store"] if n != "flowfeed_off" else "(off)"
            print(f"| {n} | {store} | {f['bytes'] / mib:.0f} MiB | {share} | {hit} | {f['rss'] / mib:.0f} MiB |")
        if facts.get("flowfeed_auto") and facts["flowfeed_auto"]["decision"]:
            print(f"\nThe default run's decision: `{facts['flowfeed_auto']['decision']}`  ")

    # --- thread scaling ---------------------------------------------------------------------
    scaling = [
        ("flowfeed, cache off: epoch 1 (uncached)", runs_epochs("flowfeed_off_t1", True), val("ff1")),
        ("flowfeed, pixels in memory: epochs 2+ (cached)", runs_epochs("flowfeed_pixels_t1", False), val("ff2")),
        ("raw TurboJPEG decode", raw("raw_decode_t1"), val("rd")),
        ("raw crop+resize+flip+normalise", raw("raw_augment_t1"), val("ra")),
    ]
    scaling = [(label, one, many) for label, one, many in scaling if one and many]
    scale = {}
    if scaling:
        print(f"\n### Thread scaling\n")
        print(f"| contender | images/s, 1 thread | images/s, {T} threads | {T} threads / 1 thread |")
        print("|---|---:|---:|---:|")
        for label, one, many in scaling:
            scale[label] = ratio_value(many, one)
            print(f"| {label} | {one.med:.0f} | {many.med:.0f} | {fmt_ratio(scale[label])} |")
        print(f"\nThe ratio is the median over repeats of the {T}-thread over the 1-thread figure of "
              "the same repeat.  ")

    # --- goals ------------------------------------------------------------------------------
    # (what, measured ratio, target, strict): PASS when measured >= target (> when strict).
    scale_target = 0.9 * T
    goals = [
        ("flowfeed uncached epoch 1 / DataLoader epoch 1", ratio("ff1", "dl1"), 3.0, False),
        ("flowfeed uncached epoch 1 / raw decode+augment loop", ratio("ff1", "rda"), 0.85, False),
        ("flowfeed cached epochs 2+ / DataLoader epoch 1 (uncached)", ratio("ff2", "dl1"), 10.0, False),
        (f"flowfeed cached epochs 2+ / DataLoader + dict cache (num_workers={T}) epochs 2+",
         ratio("ff2", "dc2"), 4.0, False),
        ("flowfeed cached epochs 2+ / raw augment loop", ratio("ff2", "ra"), 0.75, False),
        (f"flowfeed uncached epoch 1, {T} threads / 1 thread",
         scale.get("flowfeed, cache off: epoch 1 (uncached)"), scale_target, False),
        (f"flowfeed cached epochs 2+, {T} threads / 1 thread",
         scale.get("flowfeed, pixels in memory: epochs 2+ (cached)"), scale_target, False),
        ("default cache epoch 1 / cache-off epoch 1", ratio("fa1", "ff1"), 0.9, False),
        ("default cache epoch 1 / DataLoader epoch 1", ratio("fa1", "dl1"), 3.0, False),
        ("pixels in memory, epochs 2+ / 6,900 images/s (the previous build's cached epochs)",
         val("ff2").med / 6900.0 if val("ff2") else None, 1.5, False),
        ("disk cache epoch 1 / cache-off epoch 1", ratio("fd1", "ff1"), 0.8, False),
        ("fused uncached epoch 1 / raw full-decode+augment loop (beyond the raw loop)",
         ratio("ff1", "rda"), 1.0, True),
    ]
    goals = [g for g in goals if g[1] is not None]
    if goals:
        print("\n### Goals\n")
        print("| goal | measured | target | result |")
        print("|---|---:|---:|---|")
        for what, measured, target, strict in goals:
            ok = measured > target if strict else measured >= target
            print(f"| {what} | {measured:.2f}x | {'>' if strict else '≥'} {target:.2f}x | "
                  f"{'PASS' if ok else 'MISS'} |")
        # Absolute goals: shares and hit rates rather than ratios of speed.
        auto, disk, off = facts.get("flowfeed_auto"), facts.get("flowfeed_disk"), facts.get("flowfeed_off")
        if auto and rgb:
            share = auto["bytes"] / rgb
            print(f"| default cache bytes / decoded RGB bytes | {100 * share:.1f}% | ≤ 50% | "
                  f"{'PASS' if share <= 0.5 else 'MISS'} |")
        if disk and disk["hit2"] is not None:
            print(f"| disk cache: epoch 2 hit rate | {disk['hit2']:.1f}% | 100% | "
                  f"{'PASS' if disk['hit2'] >= 100.0 else 'MISS'} |")
        if auto and off:
            bound = auto["bytes"] + off["rss"]
            print(f"| default cache peak RSS / (its cache bytes + cache-off peak RSS) | "
                  f"{auto['rss'] / mib:.0f} / {bound / mib:.0f} MiB | ≤ 1.00x | "
                  f"{'PASS' if auto['rss'] <= bound else 'MISS'} |")
        fuse_gain = ratio("ff1", "ffn1")
        if fuse_gain is not None:
            print(f"\nFor reference: flowfeed uncached epoch 1 with fusions / with fuse=false: "
                  f"{fuse_gain:.2f}x.  ")


if __name__ == "__main__":
    main()
