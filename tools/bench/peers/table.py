#!/usr/bin/env python3
"""Tables for tools/bench/peers/run.sh: reads its folder and prints markdown.

  python3 tools/bench/peers/table.py build/reports/peers [--files cold|warm]

Per thread count: each system's epoch 1 and epochs 2+ images/s (medians over the repeats),
flowfeed's ratio to it (flowfeed as shipped, paired within each repeat, then the median), peak
memory (PSS of the process tree) and CPU seconds per 1,000 images (the whole process tree over
the epochs, start-up excluded); then the raw limits and the goals of issue 17. A system that
failed is a row with its error.
"""
import argparse
import glob
import json
import os
import re
import statistics

NAMES = {
    "flowfeed": "flowfeed (shipped photos.yaml)",
    "flowfeed_off": "flowfeed, cache off",
    "flowfeed_pixels": "flowfeed, pixels cached (cache.after=decode)",
    "dl_pil": "DataLoader, PIL transforms",
    "dl_tensor": "DataLoader, tensor path (decode_jpeg, v2 on uint8)",
    "dl_cached": "DataLoader, tensor path + dict cache",
    "dali": "DALI, CPU pipeline",
    "spdl": "SPDL",
    "tf": "tf.data",
    "tf_cached": "tf.data + cache()",
    "ffcv": "FFCV (os_cache)",
}
FLOWFEED = ("flowfeed", "flowfeed_off", "flowfeed_pixels")
HAS_CACHE = ("dl_cached", "tf_cached", "ffcv")
RAW = [("raw_decode_augment", "raw decode + augment (the uncached limit: in-memory files, full "
        "decode, crop/resize/flip/normalise)"),
       ("raw_augment", "raw augment (the pixels-cached limit: decoded images in memory)"),
       ("raw_decode", "raw decode (full-image libjpeg-turbo decode of in-memory files)")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, spec="{:,.0f}"):
    return "—" if x is None else spec.format(x)


def collect(out):
    """{threads: {name: {repeat: run}}}; run = dict(e1, later, cpu1, cpu_later, cpu, pss, err)."""
    runs = {}
    pat = re.compile(r"^(.*)\.t(\d+)\.r(\d+)\.(report\.json|err)$")
    for path in sorted(glob.glob(os.path.join(out, "*.t*.r*.*"))):
        m = pat.match(os.path.basename(path))
        if not m:
            continue
        name, t, r, kind = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        entry = runs.setdefault(t, {}).setdefault(name, {}).setdefault(r, {})
        if kind == "err":
            with open(path, errors="replace") as f:
                entry["err"] = " ".join(f.read().split())[-300:]
            continue
        rep = load(path)
        mem = load(path.replace(".report.json", ".mem.json")) or {}
        if not rep or not rep.get("epochs"):
            entry["err"] = "no report"
            continue
        eps = rep["epochs"]
        later = eps[1:]
        entry["e1"] = eps[0]["samples_per_second"]
        if later:
            entry["later"] = sum(e["samples"] for e in later) / sum(e["seconds"] for e in later)
        entry["cpu1"] = 1000 * eps[0].get("cpu_seconds", 0) / eps[0]["samples"]
        if later:
            entry["cpu_later"] = (1000 * sum(e.get("cpu_seconds", 0) for e in later) /
                                  sum(e["samples"] for e in later))
        entry["cpu"] = 1000 * sum(e.get("cpu_seconds", 0) for e in eps) / sum(e["samples"] for e in eps)
        entry["pss"] = mem.get("peak_pss_bytes")
        entry["source"] = rep.get("run", {}).get("source", "")
        entry["hits"] = [e.get("cache", {}).get("hits") for e in eps]
    return runs


def raw(out, mode, t):
    vals = []
    for path in glob.glob(os.path.join(out, f"{mode}.t{t}.r*.json")):
        j = load(path)
        if j and "images_per_second" in j:
            vals.append(j["images_per_second"])
    return median(vals)


def stat(by_repeat, key):
    return median([r[key] for r in by_repeat.values() if key in r])


def ratio(ref, other, key):
    """flowfeed / other for `key`, paired within each repeat, median."""
    vals = [ref[r][key] / other[r][key] for r in ref
            if r in other and key in ref[r] and key in other[r] and other[r][key]]
    return median(vals)


def table(out, t, by_name, files):
    print(f"\n### {t} thread{'s' if t > 1 else ''} (loading threads / worker processes), files "
          f"{files} before each run\n")
    print("| system | epoch 1 images/s | epochs 2+ images/s | flowfeed ÷ it, epoch 1 | "
          "flowfeed ÷ it, epochs 2+ | peak memory (PSS) | CPU s / 1,000 images: epoch 1, 2+ |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ref = by_name.get("flowfeed", {})
    for name in NAMES:
        if name not in by_name:
            continue
        runs = by_name[name]
        errs = [r["err"] for r in runs.values() if "err" in r]
        ok = {k: v for k, v in runs.items() if "e1" in v}
        if not ok:
            print(f"| {NAMES[name]} | failed: {errs[0] if errs else 'no runs'} | | | | | |")
            continue
        pss = stat(ok, "pss")
        r1 = ratio(ref, ok, "e1") if name != "flowfeed" else None
        r2 = ratio(ref, ok, "later") if name != "flowfeed" else None
        label = NAMES[name] + (f" ({len(errs)} of {len(runs)} runs failed)" if errs else "")
        print(f"| {label} | {fmt(stat(ok, 'e1'))} | {fmt(stat(ok, 'later'))} | "
              f"{fmt(r1, '{:.2f}x')} | {fmt(r2, '{:.2f}x')} | "
              f"{fmt(pss / 2**20 if pss else None, '{:,.0f} MiB')} | "
              f"{fmt(stat(ok, 'cpu1'), '{:.2f}')}, {fmt(stat(ok, 'cpu_later'), '{:.2f}')} |")
    for mode, label in RAW:
        v = raw(out, mode, t)
        if v:
            print(f"| {label} | {v:,.0f} | {v:,.0f} | | | | |")
    hits = by_name.get("dl_cached", {})
    h = [r["hits"] for r in hits.values() if r.get("hits")]
    if h:
        print(f"\nDataLoader + dict cache, hits per epoch (each worker process caches its own "
              f"images; shuffled batches go to either): {h[0]}")


def goals(t, by_name):
    peers = {n: v for n, v in by_name.items() if n not in FLOWFEED}
    ok = lambda n: {k: v for k, v in by_name.get(n, {}).items() if "e1" in v}

    def best(key, names):
        vals = [(stat(ok(n), key), n) for n in names if ok(n) and stat(ok(n), key)]
        return max(vals) if vals else (None, None)

    print(f"\n### Goals ({t} threads)\n")
    print("| goal | flowfeed | fastest peer | ratio | met |")
    print("|---|---:|---:|---:|---|")
    for ff in ("flowfeed", "flowfeed_pixels"):
        if not ok(ff):
            continue
        tag = NAMES[ff]
        rows = []
        v, n = best("e1", peers)
        rows.append((f"uncached epoch 1 >= 1.2x the fastest peer ({tag})", stat(ok(ff), "e1"), v, n, 1.2))
        v, n = best("later", peers)
        rows.append((f"epochs 2+ >= 3x the fastest peer's ({tag})", stat(ok(ff), "later"), v, n, 3.0))
        v, n = best("later", [p for p in HAS_CACHE if p in peers])
        rows.append((f"epochs 2+ >= 1.5x the fastest peer with a cache ({tag})",
                     stat(ok(ff), "later"), v, n, 1.5))
        for goal, mine, theirs, n, need in rows:
            if mine is None or theirs is None:
                continue
            r = mine / theirs
            print(f"| {goal} | {mine:,.0f} | {theirs:,.0f} ({NAMES[n]}) | {r:.2f}x | "
                  f"{'yes' if r >= need else 'no'} |")
        mine = stat(ok(ff), "cpu")
        vals = [(stat(ok(n), "cpu"), n) for n in peers if ok(n)]
        if mine is not None and vals:
            low, n = min(vals)
            print(f"| CPU s per 1,000 images below every peer's ({tag}) | {mine:.2f} | {low:.2f} "
                  f"({NAMES[n]}) | {low / mine:.2f}x | {'yes' if mine < low else 'no'} |")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--files", default="cold")
    args = p.parse_args()
    runs = collect(args.out)
    print("## flowfeed against the peers (tools/bench/peers/run.sh)")
    conv = load(os.path.join(args.out, "ffcv_convert.json"))
    for t in sorted(runs, reverse=True):
        table(args.out, t, runs[t], args.files)
        goals(t, runs[t])
    if conv:
        print(f"\nFFCV's .beton conversion, timed apart: {conv['conversion_seconds']:.1f} s for "
              f"{conv['images']:,} images ({conv['beton_bytes'] / 2**20:,.0f} MiB).")


if __name__ == "__main__":
    main()
