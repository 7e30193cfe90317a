"""What every peer script shares: the dataset, the transform's parameters, the checks on each
batch, the epoch loop's timing and CPU accounting, and the report in flowfeed's shape.

A peer script builds its loader and hands `run()` a function that returns one epoch's iterator of
(images, labels). `run()` times each epoch from asking for that iterator to its last batch (as
`flowfeed bench` times an epoch from its start to the last batch), counts the CPU time of the
whole process tree (threads, worker processes, and workers that have exited) over the same span,
checks every batch (shape, dtype, layout, value range, label counts: a peer that delivers less
work is stopped, not measured), prints one JSON line, and writes --report in the shape of
`flowfeed bench --report` so `flowfeed report` overlays the peers with flowfeed.

The transform is configs/photos.yaml's (torchvision's ImageNet training recipe):
RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip(0.5),
Normalize(ImageNet mean and std) into float32 NCHW batches of 64 (the last one 8), labels int64.
"""
import argparse
import json
import math
import os
import random
import sys
import tempfile
import time

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 224
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
# Normalised values of 0 and 255 in the channel that reaches furthest: the range every pixel of a
# correct batch lies in (with a little slack for resampling overshoot in bicubic peers).
VALUE_MIN = min((0.0 - m) / s for m, s in zip(MEAN, STD)) - 0.05
VALUE_MAX = max((1.0 - m) / s for m, s in zip(MEAN, STD)) + 0.05


def parse_args(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--root", required=True, help="a folder of root/<class>/*.jpg")
    p.add_argument("--threads", type=int, default=2,
                   help="loading threads / worker processes (the same number for every system)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", metavar="FILE", help="a JSON report in flowfeed's shape")
    if extra:
        extra(p)
    return p.parse_args()


def list_samples(root):
    """[(path, label)] in ImageFolder's order (classes and files sorted), and the class names."""
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    samples = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            if f.lower().endswith((".jpg", ".jpeg")):
                samples.append((os.path.join(folder, f), label))
    if not samples:
        raise SystemExit(f"{root}: no JPEG files in root/<class>/")
    return samples, classes


def crop_params(rng, width, height):
    """RandomResizedCrop's window (x, y, w, h) for an image of width x height, sampled as
    torchvision's RandomResizedCrop.get_params does: ten tries at an area in SCALE and a
    log-uniform aspect ratio in RATIO, then the centre crop clamped to RATIO."""
    area = width * height
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        w, h = width, int(round(width / RATIO[0]))
    elif in_ratio > RATIO[1]:
        h, w = height, int(round(height * RATIO[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def thread_rng(seed):
    """A random.Random per calling thread (peers sample crops on their own worker threads)."""
    import threading
    local = threading.local()

    def get():
        r = getattr(local, "rng", None)
        if r is None:
            r = local.rng = random.Random(hash((seed, threading.get_ident())))
        return r
    return get


def _proc_cpu_seconds(pid, include_children):
    """utime + stime of one process (all its threads) from /proc/PID/stat; with
    include_children, plus cutime + cstime (the workers it has waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # it exited between listing and reading: its time moved to its parent
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if include_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """Every live descendant of process `pid` (children of all its threads, recursively)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for k in kids:
            out.append(k)
            out.extend(descendants(k))
    return out


def tree_cpu_seconds():
    """CPU seconds of this process, its live descendants, and the descendants it has reaped."""
    me = os.getpid()
    total = _proc_cpu_seconds(me, include_children=True)
    for pid in descendants(me):
        total += _proc_cpu_seconds(pid, include_children=True)
    return total


class BatchCheck:
    """Checks that a peer delivers what flowfeed delivers, batch by batch and epoch by epoch."""

    def __init__(self, name, samples, num_classes, batch):
        self.name = name
        self.size = len(samples)
        self.batch = batch
        self.expected = [0] * num_classes
        for _, label in samples:
            self.expected[label] += 1
        self.reset()

    def reset(self):
        self.counts = [0] * len(self.expected)
        self.images = 0
        self.batches = 0

    def fail(self, what):
        raise SystemExit(f"{self.name}: wrong output: {what}")

    def batch_seen(self, images, labels):
        """images: a torch or tf tensor, or numpy array, float32 N x 3 x 224 x 224; labels: N."""
        shape = tuple(int(d) for d in images.shape)
        n = shape[0]
        if shape[1:] != (3, SIZE, SIZE):
            self.fail(f"batch {self.batches + 1} has shape {shape}, not (N, 3, {SIZE}, {SIZE})")
        dtype = str(images.dtype)
        if "float32" not in dtype:
            self.fail(f"batch {self.batches + 1} has dtype {dtype}, not float32")
        if n != min(self.batch, self.size - self.images):
            self.fail(f"batch {self.batches + 1} has {n} images")
        lab = [int(v) for v in _to_list(labels)]
        if len(lab) != n:
            self.fail(f"batch {self.batches + 1} has {len(lab)} labels for {n} images")
        for v in lab:
            if not 0 <= v < len(self.counts):
                self.fail(f"label {v} out of range")
            self.counts[v] += 1
        if self.batches % 16 == 0:  # the values, on every 16th batch, on a sparse grid of
            # every 8th image (a sample of different photos, cheap enough not to slow the peer
            # it checks: a full pass over the batch would cost some of them 10%)
            lo, hi, std = _stats(images[::8, :, ::4, ::4])
            if lo < VALUE_MIN or hi > VALUE_MAX:
                self.fail(f"values in [{lo:.3f}, {hi:.3f}], outside the normalised range "
                          f"[{VALUE_MIN:.3f}, {VALUE_MAX:.3f}]")
            if std < 0.1:
                self.fail(f"values have standard deviation {std:.3f}: not normalised photos")
        self.images += n
        self.batches += 1

    def epoch_done(self):
        if self.images != self.size:
            self.fail(f"an epoch delivered {self.images} images, not {self.size}")
        if self.counts != self.expected:
            self.fail(f"an epoch's label counts {self.counts} differ from the folder's {self.expected}")
        self.reset()


def _to_list(labels):
    if hasattr(labels, "numpy"):
        labels = labels.numpy()
    if hasattr(labels, "reshape"):
        labels = labels.reshape(-1)
    return list(labels)


def _stats(images):
    import numpy as np
    a = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    return float(a.min()), float(a.max()), float(a.std())


def percentile_ms(seconds, q):
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] * 1e3


def write_atomic(path, text):
    """Writes `text` to a temporary file beside `path` and renames it over `path`, so a reader
    never sees half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would otherwise outlive the rename
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def timed_epoch(make_iterator, on_batch):
    """Runs one epoch: make_iterator() -> iterator of (images, labels), on_batch(images, labels)
    for each. Returns (seconds from asking for the iterator to the end, the wait in each next()
    that returned a batch, the total wait including the last next(), the iterator's start)."""
    waits = []
    wait_total = 0.0
    t0 = time.perf_counter()
    it = iter(make_iterator())
    t_iter = time.perf_counter() - t0
    while True:
        tw = time.perf_counter()
        try:
            images, labels = next(it)
        except StopIteration:
            wait_total += time.perf_counter() - tw
            break
        w = time.perf_counter() - tw
        waits.append(w)
        wait_total += w
        on_batch(images, labels)
    return time.perf_counter() - t0, waits, wait_total, t_iter


def run(args, system, source, samples, classes, epoch_iter, open_seconds, versions,
        cache=None, note=None, epoch_extra=None):
    """Runs args.epochs epochs of epoch_iter(epoch) -> iterator of (images, labels), checking
    every batch; prints one JSON line and writes args.report. `cache` is None (no cache) or a
    dict for the report's cache section (mode, note); epoch_extra(epoch) returns keys to add to
    that epoch's entry (a cache's hits and misses)."""
    check = BatchCheck(system, samples, len(classes), args.batch)
    epochs = []
    for epoch in range(args.epochs):
        cpu0 = tree_cpu_seconds()
        seconds, waits, wait_total, t_iter = timed_epoch(lambda: epoch_iter(epoch),
                                                         check.batch_seen)
        cpu = tree_cpu_seconds() - cpu0
        images_n = check.images
        check.epoch_done()
        epochs.append({
            "epoch": epoch + 1, "seconds": round(seconds, 6), "samples": images_n,
            "batches": len(waits), "samples_per_second": round(images_n / seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "consumer_wait_seconds": round(wait_total, 6),
            "consumer_wait_p95_ms": round(percentile_ms(waits, 0.95), 4),
            "consumer_wait_max_ms": round(max(waits, default=0.0) * 1e3, 4),
            "iterator_start_seconds": round(t_iter, 6),
            "cache": {"mode": cache["mode"]} if cache else {"mode": "off"},
            "stages": {}, "stage_order": [],
        })
        if epoch_extra:
            epochs[-1].update(epoch_extra(epoch))
        print(f"{system}: epoch {epoch + 1}: {images_n / seconds:.1f} images/s, "
              f"{1000 * cpu / images_n:.2f} CPU s per 1,000 images, waited {wait_total:.2f} s",
              file=sys.stderr)
    report = {
        "run": {"source": source, "tool": system, "threads": args.threads,
                "dataset_size": len(samples), "batch": args.batch, "seed": args.seed,
                "open_seconds": round(open_seconds, 6), "versions": versions,
                "cpu_count": os.cpu_count(), "warnings": [note] if note else []},
        "cache": cache or {"mode": "off"},
        "epochs": epochs,
    }
    print(json.dumps({"system": system, "threads": args.threads, "images": len(samples),
                      "versions": versions, "epochs": [
                          {k: e[k] for k in ("epoch", "seconds", "samples", "samples_per_second",
                                             "cpu_seconds", "cache")} for e in epochs]}))
    if args.report:
        write_atomic(args.report, json.dumps(report, indent=2) + "\n")
