#!/usr/bin/env python3
"""The summary of a tools/gpu/run.sh run: reads its work folder, writes markdown for
docs/benchmarks.md and the same figures as JSON. Standard library only; parts whose files are
missing (a phase that failed or was cut short) are shown as missing, never guessed.

  python3 tools/gpu/table.py WORK --md summary.md --json summary.json
"""
import argparse
import json
import os
import statistics
import sys


def load(work, name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(work, name):
    try:
        with open(os.path.join(work, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def num(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def ratio(a, b):
    return a / b if a is not None and b else None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


START_PARTS = ("pipeline_open", "first_batch", "cuda_warmup")


def flowfeed_train(t):
    """Per-run figures from `flowfeed train --report`."""
    if not t or not t.get("epochs"):
        return None
    parts = {k: v["seconds"] for k, v in t.get("setup", {}).get("parts", {}).items()}
    eps = []
    for e in t["epochs"]:
        tr = e.get("trainer", {})
        secs = tr.get("seconds")
        eps.append({"epoch": e.get("epoch"), "images_per_second": tr.get("samples_per_second"),
                    "seconds": secs, "samples": tr.get("samples"),
                    "data_wait_share": ratio(tr.get("data_wait_seconds"), secs),
                    "first_step_seconds": tr.get("first_step_seconds"),
                    "median_step_seconds": tr.get("median_step_seconds"),
                    "h2d_seconds": tr.get("h2d_seconds"), "forward_seconds": tr.get("forward_seconds"),
                    "backward_seconds": tr.get("backward_seconds"),
                    "optimizer_seconds": tr.get("optimizer_seconds"),
                    "loss": tr.get("loss"), "cache_hits": (e.get("cache") or {}).get("hits")})
    e1 = eps[0]
    # Epoch 1 counted like the DataLoader's, whose epoch 1 starts its workers, waits for their
    # first batches and pays cuDNN's algorithm search in its first step: flowfeed's ledger books
    # the same as set-up (opening the pipeline, the first batch, and on CUDA `cuda_warmup`, one
    # forward and backward pass that pays the search up front), so they are added back. The CUDA
    # context and building the model are left out on both sides.
    start = sum(parts.get(k, 0) for k in START_PARTS)
    e1_incl = ratio(e1["samples"], (e1["seconds"] or 0) + start) if e1["samples"] else None
    later = eps[1:]
    return {"epochs": eps, "setup": parts, "setup_seconds": t.get("setup", {}).get("seconds"),
            "epoch1": e1["images_per_second"], "epoch1_incl_start": e1_incl,
            "later": median([e["images_per_second"] for e in later]),
            "wait1": e1["data_wait_share"],
            "wait_later_max": max([e["data_wait_share"] for e in later if e["data_wait_share"] is not None],
                                  default=None),
            "wait_later_median": median([e["data_wait_share"] for e in later]),
            "first_step": e1["first_step_seconds"], "median_step": e1["median_step_seconds"],
            "median_step_later": median([e["median_step_seconds"] for e in later]),
            "start_seconds": start,
            "trainer": t.get("trainer", {}), "cache": t.get("cache", {}),
            "gap": t.get("first_epoch_gap", {})}


def dataloader(d):
    if not d or not d.get("epochs"):
        return None
    eps = d["epochs"]
    e1 = eps[0]
    setup = d.get("setup_seconds", {})
    e1_incl = ratio(e1["images"], e1["seconds"] + setup.get("dataset", 0))
    later = eps[1:]
    return {"epochs": eps, "setup": setup, "epoch1": e1["images_per_second"], "epoch1_incl_start": e1_incl,
            "later": median([e["images_per_second"] for e in later]),
            "wait1": e1["data_wait_share"],
            "wait_later_max": max([e["data_wait_share"] for e in later], default=None),
            "wait_later_median": median([e["data_wait_share"] for e in later]),
            "first_step": e1.get("first_step_seconds"), "median_step": e1.get("mean_later_step_seconds"),
            "median_step_later": median([e.get("mean_later_step_seconds") for e in later]),
            "amp": d.get("args", {}).get("amp"), "workers": d.get("args", {}).get("workers")}


def bench(work, threads):
    rows = []
    for t in threads:
        b = load(work, f"bench-t{t}.json")
        if not b or not b.get("epochs"):
            rows.append({"threads": t, "epoch1": None, "later": None})
            continue
        eps = b["epochs"]
        rows.append({"threads": t, "epoch1": eps[0].get("samples_per_second"),
                     "later": median([e.get("samples_per_second") for e in eps[1:]]),
                     "cache_store": (b.get("cache") or {}).get("store"),
                     "cpu_seconds": [e.get("cpu_seconds") for e in eps]})
    return rows


def gtest(work, name):
    g = load(work, name)
    if not g:
        return None
    out = {"tests": g.get("tests"), "failures": g.get("failures"), "skipped": [], "failed": []}
    for suite in g.get("testsuites", []):
        for case in suite.get("testsuite", []):
            full = f"{suite.get('name')}.{case.get('name')}"
            if case.get("result") == "SKIPPED":
                out["skipped"].append(full)
            if case.get("failures"):
                out["failed"].append(full)
    return out


def gpu_util(work, name):
    """nvidia-smi's utilization.gpu, sampled every 0.5 s while a training phase ran."""
    raw = text(work, f"gpu-util-{name}.csv")
    vals = []
    for line in (raw or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[1].isdigit():
            vals.append(int(parts[1]))
    if not vals:
        return None
    return {"median": statistics.median(vals), "mean": sum(vals) / len(vals), "samples": len(vals)}


def phases(work):
    rows = []
    raw = text(work, "phases.tsv")
    for line in (raw or "").splitlines()[1:]:
        name, status, secs, limit = (line.split("\t") + ["", "", "", ""])[:4]
        rows.append({"phase": name, "status": status, "seconds": secs, "limit": limit})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work")
    p.add_argument("--md", required=True)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    w = a.work
    settings = dict(line.split("=", 1) for line in (text(w, "settings.txt") or "").splitlines() if "=" in line)
    threads = [int(t) for t in settings.get("scaling", "").split(",") if t.strip().isdigit()]
    facts = load(w, "facts.json") or {}
    env = text(w, "env.sh") or ""
    kind = "built on the GPU machine from the carried Debian packages" if "built-here" in env else (
        "carried (tools/gpu/prepare.sh)" if "carried" in env else "none")
    ff = flowfeed_train(load(w, "train.json"))
    dl = dataloader(load(w, "dataloader.json"))
    sc = bench(w, threads)
    tests = {"cuda": gtest(w, "tests-cuda.json"), "rest": gtest(w, "tests-rest.json")}
    ph = phases(w)
    rehearsal = settings.get("rehearsal") == "1"

    L = []
    title = "GPU run" if not rehearsal else "GPU script rehearsal (CPU only, small sizes: not a measurement)"
    L.append(f"### {title}: {facts.get('gpu', 'no GPU')}, {facts.get('cpus', '?')} CPUs")
    L.append("")
    manifest = dict(line.split(": ", 1) for line in (text(w, "MANIFEST.txt") or "").splitlines() if ": " in line)
    L.append(f"Command: `bash tools/gpu/run.sh` through the run tool (docs/gpu.md), {text(w, 'started') or '?'}; "
             f"flowfeed binary from commit {manifest.get('commit', '?')[:12]} (prepared {manifest.get('date', '?')}).")
    if (text(w, "source_match") or "same") != "same":
        L.append(f"**The carried binary was built from other sources than the tree that ran: "
                 f"{text(w, 'source_match')}; these figures are not this tree's.**")
    L.append(f"Machine: {facts.get('gpu', 'no GPU visible to torch')}"
             f"{' (' + str(facts.get('gpu_memory_gib')) + ' GiB, ' + str(facts.get('gpu_sms')) + ' SMs)' if facts.get('gpu') else ''}, "
             f"{facts.get('cpus', '?')} CPUs; python {facts.get('python', '?')}, torch {facts.get('torch', '?')} "
             f"(CUDA {facts.get('torch_cuda')}, cuDNN {facts.get('cudnn')}), torchvision {facts.get('torchvision', '?')}. "
             f"flowfeed binary: {kind}; sources: {text(w, 'source_match') or 'not checked'}.")
    L.append(f"Data: {settings.get('images', '?')} JPEGs cut by `flowfeed dataset photos` from the carried "
             f"Debian photographs (one class per photo), in the page cache (just written). "
             f"Training: ResNet-18 (ImageNet stem) at {settings.get('size', '?')} px, batch {settings.get('batch', '?')}, "
             f"{settings.get('epochs', '?')} epochs, SGD lr {settings.get('lr')} momentum {settings.get('momentum')} "
             f"weight decay {settings.get('weight_decay')}, constant rate; {settings.get('threads', '?')} pipeline threads / "
             f"DataLoader workers; device {settings.get('device', '?')}.")
    if ff:
        tr = ff["trainer"]
        mem = tr.get("device_memory") or {}
        peak = mem.get("peak_reserved_bytes")
        L.append(f"flowfeed: precision {tr.get('precision', '?')}, memory format {tr.get('memory_format', '?')}, "
                 f"normalize on device {tr.get('normalize_on_device', '?')}, step timing {tr.get('timing', '?')}"
                 f"{', peak GPU memory reserved ' + num(peak / 2**30, 1) + ' GiB' if peak else ''}; "
                 f"cache store {ff['cache'].get('store')} ({ff['cache'].get('decision', '')[:160]}...).")
    L.append("")

    # Training, side by side.
    L.append("| loader | epoch 1 images/s | epoch 1 images/s, counting start-up | epochs 2+ images/s (median) "
             "| data wait, epoch 1 | data wait, epochs 2+ (max) | first step s | median step s, epoch 1 / 2+ "
             "| GPU busy (nvidia-smi, median) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    util = {k: gpu_util(w, k) for k in ("train", "dataloader")}

    def row(name, r, u):
        if not r:
            L.append(f"| {name} | — | — | — | — | — | — | — | — |")
            return
        L.append(f"| {name} | {num(r['epoch1'])} | {num(r['epoch1_incl_start'])} | {num(r['later'])} | "
                 f"{pct(r['wait1'])} | {pct(r['wait_later_max'])} | {num(r['first_step'], 3)} | "
                 f"{num(r['median_step'], 3)} / {num(r['median_step_later'], 3)} | "
                 f"{str(round(u['median'])) + '%' if u else '—'} |")
    ff_name = "flowfeed train" + (f" ({ff['trainer'].get('precision') or '?'})" if ff else "")
    row(ff_name, ff, util["train"])
    dl_name = f"PyTorch DataLoader, {dl['workers'] if dl else '?'} workers ({'bf16 autocast' if (dl and dl['amp']) else 'float32'})"
    row(dl_name, dl, util["dataloader"])
    L.append("")
    timing = (ff or {}).get("trainer", {}).get("timing")
    how = {"cuda events": "the compute stream's idle time before each step, read off CUDA events (an epoch's "
                          "first step counts the host's wait)",
           "synchronized": "with the device synchronised after each part of a step",
           "host clock": "by the host's clock (on the CPU)"}.get(timing, f"as `trainer.timing` = {timing}")
    L.append("flowfeed's epoch 1 images/s is the trainer's (its ledger books opening the pipeline, the first "
             "batch and, on CUDA, the warm-up pass as set-up); the next column adds those back ("
             + " + ".join(START_PARTS) + "), as the DataLoader's epoch 1 includes starting its workers, waiting "
             "for their first batches and its first step's cuDNN search. The CUDA context and building the model "
             f"count on neither side. flowfeed's data wait is {how}; the DataLoader's is the "
             "time its loop blocked in `next()`, with no synchronisation inside an epoch. The DataLoader's step "
             "columns: its first step (synchronised) and the mean of its other steps. GPU busy: the median of "
             "nvidia-smi's utilization.gpu (share of time a kernel ran) sampled every 0.5 s over the whole phase, "
             "set-up included.")
    L.append("")

    # One-time costs: the CUDA context, the warm-up (cuDNN's search, the allocator's growth, lazy
    # kernel loading) and the first step.
    if ff or dl:
        L.append("| one-time cost, seconds | CUDA context | warm-up pass (set-up) | loader start to first batch "
                 "| first step of epoch 1 | median step |")
        L.append("|---|---:|---:|---:|---:|---:|")
        if ff:
            p_ = ff["setup"]
            L.append(f"| flowfeed | {num(p_.get('cuda_context'), 3)} | {num(p_.get('cuda_warmup'), 3)} | "
                     f"{num((p_.get('pipeline_open') or 0) + (p_.get('first_batch') or 0), 3)} | "
                     f"{num(ff['first_step'], 3)} | {num(ff['median_step'], 3)} |")
        if dl:
            e1 = dl["epochs"][0]
            first_wait = e1.get("first_batch_wait_seconds")
            L.append(f"| DataLoader | {num(dl['setup'].get('cuda_context'), 3)} | — (in its first step) | "
                     f"{num(first_wait, 3) if first_wait is not None else num(e1.get('iter_start_seconds'), 3) + ' (iter())'} | "
                     f"{num(dl['first_step'], 3)} | {num(dl['median_step'], 3)} |")
        L.append("")

    if ff:
        parts = ", ".join(f"{k} {v:.3f} s" for k, v in sorted(ff["setup"].items(), key=lambda kv: -kv[1]))
        L.append(f"flowfeed set-up ({num(ff['setup_seconds'], 2)} s): {parts}.")
        gp = ff["gap"].get("parts", {}) if isinstance(ff["gap"], dict) else {}
        if gp:
            items = sorted(((k, v.get("seconds", v) if isinstance(v, dict) else v) for k, v in gp.items()),
                           key=lambda kv: -abs(kv[1] or 0))
            L.append(f"First epoch against the rest: {num(ff['gap'].get('seconds'), 2)} s; largest parts: "
                     + ", ".join(f"{k} {v:+.3f} s" for k, v in items[:5]) + ".")
        L.append("Per epoch (flowfeed): " + "; ".join(
            f"{e['epoch']}: {num(e['images_per_second'])} img/s, wait {pct(e['data_wait_share'])}, "
            f"h2d {num(e['h2d_seconds'], 2)} s, fwd {num(e['forward_seconds'], 2)} s, bwd {num(e['backward_seconds'], 2)} s, "
            f"opt {num(e['optimizer_seconds'], 2)} s" for e in ff["epochs"]) + ".")
    if dl:
        L.append("DataLoader set-up: " + ", ".join(f"{k} {v:.3f} s" for k, v in dl["setup"].items())
                 + ". Per epoch: " + "; ".join(
                     f"{e['epoch']}: {num(e['images_per_second'])} img/s, wait {pct(e['data_wait_share'])}, "
                     f"iter() {e['iter_start_seconds']:.2f} s" for e in dl["epochs"]) + ".")
    L.append("")

    # The pipeline alone.
    if sc:
        base = sc[0]
        L.append("| `flowfeed bench` threads | epoch 1 images/s (uncached) | epoch 2 images/s (cached) "
                 f"| epoch 1 vs {base['threads']} thread | epoch 2 vs {base['threads']} thread |")
        L.append("|---:|---:|---:|---:|---:|")
        for r in sc:
            L.append(f"| {r['threads']} | {num(r['epoch1'])} | {num(r['later'])} | "
                     f"{num(ratio(r['epoch1'], base['epoch1']), 2)}x | {num(ratio(r['later'], base['later']), 2)}x |")
        stores = sorted({r.get("cache_store") for r in sc if r.get("cache_store")})
        L.append("")
        L.append(f"The same folder and pipeline as the CUDA trainer runs it (its trailing normalize left to the GPU, "
                 f"uint8 batches), 2 epochs per run, pipeline only (no model); cache store chosen: "
                 f"{', '.join(stores) or '—'}.")
        L.append("")

    # Goals.
    goals = []
    if ff:
        w = ff["wait_later_max"]
        goals.append(("cached epochs (2+): GPU data wait < 2% of step time (flowfeed, worst epoch)",
                      pct(w), "< 2%", None if w is None else w < 0.02))
    if ff and dl:
        for label, k in (("epoch 1 (counting start-up)", "epoch1_incl_start"), ("epochs 2+ (median)", "later")):
            r = ratio(ff[k], dl[k])
            goals.append((f"flowfeed faster than the DataLoader, {label}",
                          f"{num(ff[k])} vs {num(dl[k])} img/s = {num(r, 2)}x", "> 1.00x",
                          None if r is None else r > 1.0))
    by = {r["threads"]: r for r in sc}
    if 1 in by and 16 in by:
        for label, k in (("epoch 1, uncached", "epoch1"), ("epoch 2, cached", "later")):
            r = ratio(by[16][k], by[1][k])
            goals.append((f"pipeline alone, 16 threads vs 1 ({label})", f"{num(r, 2)}x", ">= 12x",
                          None if r is None else r >= 12))
    elif sc:
        goals.append(("pipeline alone, 16 threads vs 1", "not measured (threads " +
                      ", ".join(str(r["threads"]) for r in sc) + ")", ">= 12x", None))
    L.append("| goal | measured | target | result |")
    L.append("|---|---|---|---|")
    for g, m, t, ok in goals:
        L.append(f"| {g} | {m} | {t} | {'—' if ok is None else ('PASS' if ok else 'MISS')} |")
    L.append("")

    # Tests and phases.
    for k, label in (("cuda", "TrainerCuda.*"), ("rest", "other trainer tests")):
        g = tests[k]
        if g:
            L.append(f"Tests, {label}: {g['tests']} run, {g['failures']} failed"
                     f"{' (' + ', '.join(g['failed']) + ')' if g['failed'] else ''}, "
                     f"{len(g['skipped'])} skipped{' (' + ', '.join(g['skipped']) + ')' if g['skipped'] else ''}.")
        else:
            L.append(f"Tests, {label}: no result.")
    L.append("")
    L.append("| phase | status | seconds | limit |")
    L.append("|---|---|---:|---:|")
    for r in ph:
        st = {"0": "ok", "124": "TIMED OUT", "skipped": "skipped"}.get(r["status"], "failed (" + r["status"] + ")")
        L.append(f"| {r['phase']} | {st} | {r['seconds']} | {r['limit']} |")
    md = "\n".join(L) + "\n"
    with open(a.md, "w") as f:
        f.write(md)
    with open(a.json, "w") as f:
        json.dump({"settings": settings, "facts": facts, "binary": kind,
                   "flowfeed": ff, "dataloader": dl, "bench": sc,
                   "gpu_util": util,
                   "tests": tests, "phases": ph,
                   "goals": [{"goal": g, "measured": m, "target": t, "met": ok} for g, m, t, ok in goals]},
                  f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
