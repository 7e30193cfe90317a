#!/usr/bin/env python3
"""PyTorch DataLoader baseline for configs/photos.yaml, used by tools/bench/compare.sh.

  /usr/bin/python3 tools/bench/torch_baseline.py --root data/photos --workers 2 --mode plain
  /usr/bin/python3 tools/bench/torch_baseline.py --root data/photos --workers 2 --mode cached

plain:  torchvision ImageFolder + RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(),
        Normalize(ImageNet), DataLoader(batch 64, shuffle=True, num_workers=W).
cached: the same transforms over a Dataset that decodes each file once (PIL, RGB) into a dict on
        first access and applies the random transforms every time, as a PyTorch user would write
        it. With num_workers > 0 every worker process fills its own copy of the cache (the
        workers are forked per epoch unless persistent_workers=True; we pass
        persistent_workers=True so the cache survives across epochs, which is the best a user
        gets). Batches are shuffled across workers each epoch, so a worker misses its cache for
        images another worker decoded: cache_hits per epoch says how many were served from a
        cache. With num_workers=0 the main process holds the one cache.

Each epoch iterates all batches and is timed from creating the iterator to the last batch.
Prints one JSON line with per-epoch images/s and seconds, plus torch's thread settings
(tools/bench/compare.sh parses it; its keys do not change).

--report FILE also writes a JSON report shaped like flowfeed's own (`flowfeed bench --report`,
engine/src/stats.cc ReportJson), so `flowfeed report flowfeed.json dataloader.json -o cmp.html`
can overlay the two runs:

  /usr/bin/python3 tools/bench/torch_baseline.py --root data/photos --mode cached --report dl.json

  run      source (what ran, in words), tool "pytorch-dataloader", threads (the worker count; 1
           with --workers 0, where the main process loads), workers, dataset_size, batch, mode,
           open_seconds (building the dataset and the loader), torch, torchvision, warnings
  cache    mode: "off" (plain) or "memory" (cached), and in cached mode a note
  epochs   per epoch: epoch, seconds, samples, batches, samples_per_second,
           consumer_wait_seconds / consumer_wait_p95_ms / consumer_wait_max_ms (the time the
           loop spent blocked in next() on the loader's iterator: its total, and the 95th
           percentile and maximum over the calls that returned a batch, as flowfeed counts its
           Next()), iterator_start_seconds (iter(loader): starting the worker processes in
           epoch 1), cache {mode, hits, misses} in cached mode, and stages {} / stage_order []
           (the DataLoader times no stages)
The file is written to a temporary name beside FILE and renamed over it, so a reader never sees
half of one.
"""
import argparse
import json
import os
import sys
import time

import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

# The epoch loop, the wait percentiles and the atomic report write are the peers harness's
# (standard library only, so Debian's /usr/bin/python3 runs it as it is).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from harness import percentile_ms, timed_epoch, write_atomic  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def make_transform():
    return transforms.Compose([
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


class CachedImageFolder(Dataset):
    """ImageFolder whose decoded RGB images are kept in a dict after their first load."""

    def __init__(self, root, transform):
        self.folder = datasets.ImageFolder(root)  # samples = [(path, class_index)]
        self.samples = self.folder.samples
        self.transform = transform
        self.cache = {}

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        img = self.cache.get(index)
        hit = img is not None
        if not hit:
            path, _ = self.samples[index]
            with open(path, "rb") as f:
                img = Image.open(f).convert("RGB")  # convert() forces the decode
            self.cache[index] = img
        return self.transform(img), hit


def describe(args, dataset_size):
    """run.source of the report: what this run did, in words."""
    source = (f"PyTorch DataLoader: torchvision ImageFolder {args.root} ({dataset_size} images), "
              "RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet); "
              f"batch {args.batch}, shuffle, num_workers={args.workers}")
    if args.mode == "cached":
        where = "in each worker process" if args.workers > 0 else "in the main process"
        source += f"; decoded images (PIL, RGB) kept in a dict {where}"
    return source


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="data/photos")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", choices=["plain", "cached"], default="plain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", metavar="FILE",
                   help="also write a JSON report shaped like flowfeed's (see above)")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    t_open = time.perf_counter()
    transform = make_transform()
    if args.mode == "plain":
        dataset = datasets.ImageFolder(args.root, transform=transform)
    else:
        dataset = CachedImageFolder(args.root, transform)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        drop_last=False, persistent_workers=args.workers > 0)
    open_seconds = time.perf_counter() - t_open

    epochs = []   # the stdout line's per-epoch entries (compare.sh parses them)
    reported = []  # the report's, in flowfeed's shape
    for epoch in range(args.epochs):
        count = {"images": 0, "hits": 0}

        def on_batch(x, y):
            count["images"] += x.shape[0]
            if args.mode == "cached":
                count["hits"] += int(y.sum())  # CachedImageFolder returns hit flags, not labels

        # iter(loader) starts the worker processes in epoch 1 (persistent after that). The wait
        # in next() is measured call by call: it is what flowfeed reports as consumer wait (time
        # its Next() blocked), so the two reports compare like for like.
        seconds, waits, wait_total, t_iter = timed_epoch(lambda: loader, on_batch)
        images, hits = count["images"], count["hits"]
        e = {"epoch": epoch + 1, "images": images, "seconds": round(seconds, 4),
             "samples_per_second": round(images / seconds, 2)}
        if args.mode == "cached":
            e["cache_hits"] = hits
        epochs.append(e)
        r = {"epoch": epoch + 1, "seconds": round(seconds, 6), "samples": images,
             "batches": len(waits), "samples_per_second": round(images / seconds, 3),
             "consumer_wait_seconds": round(wait_total, 6),
             "consumer_wait_p95_ms": round(percentile_ms(waits, 0.95), 4),
             "consumer_wait_max_ms": round(max(waits, default=0.0) * 1e3, 4),
             "iterator_start_seconds": round(t_iter, 6)}
        if args.mode == "cached":
            r["cache"] = {"mode": "memory", "hits": hits, "misses": images - hits}
        r["stages"] = {}
        r["stage_order"] = []
        reported.append(r)
        print(f"torch_baseline: {args.mode} workers={args.workers} epoch {epoch + 1}: "
              f"{images / seconds:.1f} images/s, waited in next() {wait_total:.2f} s "
              f"({100 * wait_total / seconds:.0f}%)", file=sys.stderr)

    note = None
    if args.mode == "cached" and args.workers > 0:
        note = (f"each of the {args.workers} worker processes holds its own copy of the decoded-image "
                "cache (persistent_workers=True); shuffled batches go to whichever worker, so a "
                "worker's epoch-2 batch often holds images another worker cached: see cache_hits")
    print(json.dumps({
        "contender": "torch_dataloader", "mode": args.mode, "root": args.root, "images": len(dataset),
        "workers": args.workers, "batch": args.batch, "seed": args.seed,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "torch_num_threads_main": torch.get_num_threads(),  # defaults left alone; workers get 1
        "cpu_count": os.cpu_count(), "persistent_workers": args.workers > 0,
        "worker_torch_num_threads": 1 if args.workers > 0 else None,  # DataLoader's default
        "note": note, "epochs": epochs,
    }))

    if args.report:
        cache = {"mode": "off"}
        if args.mode == "cached":
            cache = {"mode": "memory",
                     "note": "decoded PIL RGB images in a dict, filled on first access, " +
                             (f"one per worker process ({args.workers}, persistent_workers=True)"
                              if args.workers > 0 else "in the main process (num_workers=0)")}
        report = {
            "run": {
                "source": describe(args, len(dataset)),
                "tool": "pytorch-dataloader",
                # flowfeed's threads is its loading thread count; with num_workers=0 the main
                # process loads, one thread (workers says which it was).
                "threads": max(args.workers, 1),
                "workers": args.workers,
                "dataset_size": len(dataset),
                "batch": args.batch,
                "mode": args.mode,
                "seed": args.seed,
                "open_seconds": round(open_seconds, 6),
                "persistent_workers": args.workers > 0,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "torch_num_threads_main": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "warnings": [note] if note else [],
            },
            "cache": cache,
            "epochs": reported,
        }
        write_atomic(args.report, json.dumps(report, indent=2) + "\n")
        print(f"torch_baseline: report {args.report}", file=sys.stderr)


if __name__ == "__main__":
    main()
