#!/usr/bin/env python3
"""Reads the JSON that tools/bench/compare.sh wrote and prints four markdown tables: the
comparison, what each cache kept (store, bytes against decoded RGB, epoch-2 hit rate, peak
memory), thread scaling (1 thread against N) and the goals (PASS/MISS).

  python3 tools/bench/compare_table.py build/reports/compare --threads 2 --files cold

The runs it reads (OUT/NAME.rN.json, N = repeat; see compare.sh for how each is made):

  flowfeed_off          cache.mode=off: every epoch reads and decodes (epoch 1 = uncached, files
                        cold as root; epochs 2+ read files the page cache holds by then)
  flowfeed_off_nofuse   the same with fuse=false (full-image decode, then crop)
  flowfeed_auto         configs/photos.yaml as shipped (cache.mode auto; the cost model picks
                        files or pixels), its disk folder emptied before the run
  flowfeed_pixels       cache.mode=memory cache.after=decode: decoded pixels in memory (its
                        memory_bytes is the "decoded RGB" figure the other caches are held to)
  flowfeed_files        cache.mode=memory cache.after=read: the encoded files in memory
  flowfeed_disk         cache.mode=disk, a fresh folder (the cost model picks what to keep)
  flowfeed_off_t1, flowfeed_pixels_t1   the cache-off and pixels runs at threads=1 (SCALING=1)
  torch_plain, torch_cached, torch_cached_w0   DataLoader, DataLoader + dict cache (W and 0
                        workers), from torch_baseline.py
  raw_decode, raw_augment, raw_decode_augment (+ _t1)   the hand-written loops (raw_loops.cc)

Every figure is the median over repeats; "epochs 2+" is, per run, the mean rate over epochs 2..N
(images of those epochs / their seconds), then the median of that over repeats. Raw loops use each
run's median over its own reps, then the median over repeats. Ratios are medians over repeats of
the ratio within one repeat. Cache facts (store, bytes, hit rate, peak RSS) come from each run's
report (cache.store, cache.memory_bytes + cache.disk_bytes, epoch 2's cache.hits / (hits +
misses), run.peak_rss_bytes). Rows whose runs are missing (no torch, SCALING=0, NOFUSE=0) are
left out.
"""
import argparse
import glob
import json
import os
import re
import statistics

MIB = 1024.0 * 1024.0
PREVIOUS_CACHED = 6900.0  # images/s of the previous build's cached epochs (memory cache)


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


def cache_facts(runs):
    """Per repeat: the store the run kept, its cache bytes (memory + disk), epoch 2's hit rate
    (percent; None with one epoch or no lookups) and the run's peak RSS."""
    facts = {}
    for r, j in runs.items():
        c = j.get("cache", {})
        ep = j.get("epochs", [])
        hit2 = None
        if len(ep) > 1:
            e2 = ep[1].get("cache", {})
            looked = e2.get("hits", 0) + e2.get("misses", 0)
            if looked:
                hit2 = 100.0 * e2.get("hits", 0) / looked
        facts[r] = {
            "mode": c.get("mode", ""),
            "store": c.get("store") or ("off" if c.get("mode") == "off" else "?"),
            "bytes": c.get("memory_bytes", 0) + c.get("disk_bytes", 0),
            "memory_bytes": c.get("memory_bytes", 0),
            "disk_bytes": c.get("disk_bytes", 0),
            "hit2": hit2,
            "rss": j.get("run", {}).get("peak_rss_bytes", 0),
            "decision": c.get("decision", ""),
        }
    return facts


def store_of(facts):
    """The store a run kept: one word when every repeat agrees, else "files/pixels"."""
    stores = sorted({f["store"] for f in facts.values()})
    return "/".join(stores) if stores else ""


def med(facts, key):
    vals = [f[key] for f in facts.values() if f[key] is not None]
    return statistics.median(vals) if vals else None


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
    cached_runs = ("flowfeed_auto", "flowfeed_pixels", "flowfeed_files", "flowfeed_disk")
    facts = {n: cache_facts(load(a.out, n)) for n in ("flowfeed_off",) + cached_runs}
    store = {n: store_of(f) for n, f in facts.items()}

    def kept(name):  # " → files" in a row's label: what the cost model (or cache.after) kept
        return f" → {store[name]}" if store.get(name) else ""

    rows = {
        "ff1": ("flowfeed, cache off: epoch 1 (uncached)", runs_epochs("flowfeed_off", True)),
        "ffo2": ("flowfeed, cache off: epochs 2+ (uncached, files in the page cache)",
                 runs_epochs("flowfeed_off", False)),
        "ffn1": ("flowfeed, cache off, fuse off: epoch 1 (full decode, unfused)",
                 runs_epochs("flowfeed_off_nofuse", True)),
        "fa1": (f"flowfeed, default cache (auto{kept('flowfeed_auto')}): epoch 1 (uncached + cache fill)",
                runs_epochs("flowfeed_auto", True)),
        "fa2": (f"flowfeed, default cache (auto{kept('flowfeed_auto')}): epochs 2+",
                runs_epochs("flowfeed_auto", False)),
        "ffm1": ("flowfeed, pixels in memory: epoch 1 (uncached + cache fill)",
                 runs_epochs("flowfeed_pixels", True)),
        "ff2": ("flowfeed, pixels in memory: epochs 2+ (cached)", runs_epochs("flowfeed_pixels", False)),
        "ffi1": ("flowfeed, files in memory: epoch 1 (uncached + cache fill)",
                 runs_epochs("flowfeed_files", True)),
        "ffi2": ("flowfeed, files in memory: epochs 2+ (files cached, decoded again)",
                 runs_epochs("flowfeed_files", False)),
        "fd1": (f"flowfeed, disk cache{kept('flowfeed_disk')}: epoch 1 (uncached + cache write)",
                runs_epochs("flowfeed_disk", True)),
        "fd2": (f"flowfeed, disk cache{kept('flowfeed_disk')}: epochs 2+", runs_epochs("flowfeed_disk", False)),
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

    def later_limit(name):
        # Epochs 2+ of a cache that kept pixels only augment (limit: the raw augment loop); one
        # that kept the files decodes them again (limit: raw decode + augment over in-memory files).
        return "ra" if store.get(name) == "pixels" else "rda"

    # Columns per row: (flowfeed / DataLoader, flowfeed / limit, epoch 1 / cache-off epoch 1,
    # flowfeed / decode-only loop), each a (numerator, denominator) pair of row keys. Flowfeed rows
    # compare themselves; the other rows show the matching flowfeed figure divided by theirs.
    columns = {
        "ff1": (("ff1", "dl1"), ("ff1", "rda"), None, ("ff1", "rd")),
        "ffo2": (("ffo2", "dl2"), ("ffo2", "rda"), None, ("ffo2", "rd")),
        "ffn1": (("ffn1", "dl1"), ("ffn1", "rda"), None, ("ffn1", "rd")),
        "fa1": (("fa1", "dl1"), ("fa1", "rda"), ("fa1", "ff1"), None),
        "fa2": (("fa2", "dl2"), ("fa2", later_limit("flowfeed_auto")), None, None),
        "ffm1": (("ffm1", "dc1"), ("ffm1", "rda"), ("ffm1", "ff1"), None),
        "ff2": (("ff2", "dl2"), ("ff2", "ra"), None, None),
        "ffi1": (("ffi1", "dl1"), ("ffi1", "rda"), ("ffi1", "ff1"), None),
        "ffi2": (("ffi2", "dl2"), ("ffi2", "rda"), None, None),
        "fd1": (("fd1", "dl1"), ("fd1", "rda"), ("fd1", "ff1"), None),
        "fd2": (("fd2", "dl2"), ("fd2", later_limit("flowfeed_disk")), None, None),
        "dl1": (("ff1", "dl1"), None, None, None),
        "dl2": (("ff2", "dl2"), None, None, None),
        "dc1": (("ffm1", "dc1"), None, None, None),
        "dc2": (("ff2", "dc2"), None, None, None),
        "dz2": (("ff2", "dz2"), None, None, None),
        "rda": (None, ("ff1", "rda"), None, None),
        "rd": (None, None, None, ("ff1", "rd")),
        "ra": (None, ("ff2", "ra"), None, None),
    }

    print(f"threads / num_workers = {T}, batch 64, data = the photo folder, files {a.files} at each "
          "epoch 1; images/s = median of the runs (min-max in brackets)\n")
    print("| contender | images/s | runs (min-max) | flowfeed / DataLoader | flowfeed / limit ³ "
          "| epoch 1 / cache-off epoch 1 ⁴ | flowfeed / decode-only loop ⁵ |")
    print("|---|---:|---|---:|---:|---:|---:|")
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
    notes.append("³ the raw loop doing the same work: the raw decode + crop/resize/flip/normalise loop "
                 "for every epoch that decodes (epoch 1, cache off, and epochs 2+ of a cache that kept "
                 "the files), the raw crop/resize/flip/normalise loop for epochs 2+ of a cache that "
                 "kept decoded pixels.")
    notes.append("⁴ a cached run's epoch 1 divided by the cache-off epoch 1 of the same repeat: what "
                 "filling (or writing) the cache cost the first epoch.")
    notes.append("⁵ the cache-off rows divided by the raw decode-only loop (no crop, resize, flip or "
                 "normalisation), for reference.")
    notes.append("Ratios are medians over repeats of the ratio within one repeat (runs of a repeat "
                 "are back to back, so they share the machine's speed at that time). "
                 "Flowfeed rows against the DataLoader (plain) row of the same kind of epoch "
                 "(the pixels run's epoch 1 against the DataLoader + dict cache epoch 1, which also "
                 "fills a cache of decoded images); DataLoader rows show the matching flowfeed figure "
                 "divided by theirs (the pixels run's).")
    if missing:
        notes.append("Left out (no runs): " + "; ".join(missing) + ".")
    print()
    for n in notes:
        print(n + "  ")

    # --- what each cache kept ---------------------------------------------------------------
    rgb = med(facts["flowfeed_pixels"], "memory_bytes") if facts["flowfeed_pixels"] else None
    if any(facts.values()):
        print("\n### What each cache kept\n")
        rgb_txt = f"{rgb / MIB:.0f} MiB" if rgb else "unknown (no pixels run)"
        print(f"Decoded RGB bytes (the pixels run's cache.memory_bytes): {rgb_txt}.\n")
        print("| run | store | cache bytes (memory + disk) | decoded RGB bytes | cache / decoded RGB "
              "| epoch 2 hit rate | peak RSS |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for n, f in facts.items():
            if not f:
                continue
            b, mem, disk = med(f, "bytes"), med(f, "memory_bytes"), med(f, "disk_bytes")
            if n == "flowfeed_off":
                print(f"| {n} | (off) |  |  |  |  | {med(f, 'rss') / MIB:.0f} MiB |")
                continue
            split = f" ({mem / MIB:.0f} + {disk / MIB:.0f})" if mem and disk else (
                " (disk)" if disk else " (memory)")
            share = f"{100.0 * b / rgb:.1f}%" if rgb else ""
            hit = med(f, "hit2")
            hit_txt = f"{hit:.1f}%" if hit is not None else ""
            print(f"| {n} | {store[n]} | {b / MIB:.0f} MiB{split} | {rgb / MIB:.0f} MiB | {share} | "
                  f"{hit_txt} | {med(f, 'rss') / MIB:.0f} MiB |" if rgb else
                  f"| {n} | {store[n]} | {b / MIB:.0f} MiB{split} |  |  | {hit_txt} | "
                  f"{med(f, 'rss') / MIB:.0f} MiB |")
        print("\nMedians over repeats. Peak RSS is the whole process's (run.peak_rss_bytes).  ")
        for n in ("flowfeed_auto", "flowfeed_disk"):
            f = facts.get(n)
            if f:
                decision = next(iter(f.values()))["decision"]
                if decision:
                    print(f"{n}'s decision (repeat {next(iter(f))}): `{decision}`  ")

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
    goals = []  # (goal, measured text, target text, passed)

    def ratio_goal(what, measured, target, strict=False):
        if measured is None:
            return
        ok = measured > target if strict else measured >= target
        goals.append((what, f"{measured:.2f}x", f"{'>' if strict else '≥'} {target:.2f}x", ok))

    # Uncached epoch 1 (cache off).
    ratio_goal("uncached epoch 1 (cache off) / DataLoader epoch 1", ratio("ff1", "dl1"), 3.0)
    ratio_goal("uncached epoch 1 (cache off) / raw decode+augment loop", ratio("ff1", "rda"), 0.85)
    ratio_goal("fused uncached epoch 1 / raw full-decode+augment loop (beyond the raw loop)",
               ratio("ff1", "rda"), 1.0, strict=True)
    # The default cache (auto, as shipped).
    ratio_goal("default cache (auto) epoch 1 / cache-off epoch 1", ratio("fa1", "ff1"), 0.9)
    ratio_goal("default cache (auto) epoch 1 / DataLoader epoch 1", ratio("fa1", "dl1"), 3.0)
    auto, off, disk = facts["flowfeed_auto"], facts["flowfeed_off"], facts["flowfeed_disk"]
    if auto and rgb:
        share = med(auto, "bytes") / rgb
        goals.append(("default cache bytes / decoded RGB bytes",
                      f"{100 * share:.1f}% ({med(auto, 'bytes') / MIB:.0f} / {rgb / MIB:.0f} MiB)",
                      "≤ 50%", share <= 0.5))
    if auto and off:
        # Per repeat: peak RSS of the auto run against its cache bytes + the cache-off run's peak.
        pairs = {r: (auto[r]["rss"], auto[r]["bytes"] + off[r]["rss"]) for r in auto if r in off}
        if pairs:
            rel = statistics.median(rss / bound for rss, bound in pairs.values())
            rss_m = statistics.median(p[0] for p in pairs.values())
            bytes_m = statistics.median(auto[r]["bytes"] for r in pairs)
            off_m = statistics.median(off[r]["rss"] for r in pairs)
            goals.append(("default cache peak RSS ≤ its cache bytes + cache-off peak RSS",
                          f"{rss_m / MIB:.0f} MiB vs {bytes_m / MIB:.0f} + {off_m / MIB:.0f} = "
                          f"{(bytes_m + off_m) / MIB:.0f} MiB ({rel:.2f}x)", "≤ 1.00x", rel <= 1.0))
    # Cached epochs (decoded pixels in memory).
    ratio_goal("cached epochs 2+ (pixels in memory) / raw augment loop", ratio("ff2", "ra"), 0.75)
    if val("ff2"):
        target = 1.5 * PREVIOUS_CACHED
        goals.append(("cached epochs 2+ (pixels in memory) / 1.5 x the previous build's "
                      f"{PREVIOUS_CACHED:,.0f} images/s",
                      f"{val('ff2').med:,.0f} images/s ({val('ff2').med / PREVIOUS_CACHED:.2f}x)",
                      f"≥ {target:,.0f} images/s (1.50x)", val("ff2").med >= target))
    ratio_goal("cached epochs 2+ (pixels in memory) / DataLoader epoch 1 (uncached)",
               ratio("ff2", "dl1"), 10.0)
    ratio_goal(f"cached epochs 2+ (pixels in memory) / DataLoader + dict cache (num_workers={T}) "
               "epochs 2+", ratio("ff2", "dc2"), 4.0)
    # Disk cache.
    if disk:
        hits = [f["hit2"] for f in disk.values() if f["hit2"] is not None]
        if hits:
            runs_txt = "every run" if len(hits) > 1 else "1 run"
            measured = (f"{statistics.median(hits):.1f}% ({runs_txt})" if min(hits) >= 100.0 else
                        f"{statistics.median(hits):.1f}% (min {min(hits):.1f}%)")
            goals.append(("disk cache: epoch 2 hit rate (hits / (hits + misses))", measured, "100%",
                          min(hits) >= 100.0))
    ratio_goal("disk cache epoch 1 / cache-off epoch 1", ratio("fd1", "ff1"), 0.8)
    # Thread scaling.
    scale_target = 0.9 * T
    ratio_goal(f"uncached epoch 1 (cache off), {T} threads / 1 thread",
               scale.get("flowfeed, cache off: epoch 1 (uncached)"), scale_target)
    ratio_goal(f"cached epochs 2+ (pixels in memory), {T} threads / 1 thread",
               scale.get("flowfeed, pixels in memory: epochs 2+ (cached)"), scale_target)

    if goals:
        print("\n### Goals\n")
        print("| goal | measured | target | result |")
        print("|---|---:|---:|---|")
        for what, measured, target, ok in goals:
            print(f"| {what} | {measured} | {target} | {'PASS' if ok else 'MISS'} |")
        print("\nSpeed ratios are medians of per-repeat ratios; images/s, bytes and peak RSS are "
              "medians over repeats (the RSS goal's ratio is per repeat); the disk hit rate must be "
              "100% in every run.  ")
        fuse_gain = ratio("ff1", "ffn1")
        if fuse_gain is not None:
            print(f"For reference: flowfeed uncached epoch 1 with fusions / with fuse=false: "
                  f"{fuse_gain:.2f}x.  ")


if __name__ == "__main__":
    main()
