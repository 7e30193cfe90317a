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
Prints one JSON line with per-epoch images/s and seconds, plus torch's thread settings.
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="data/photos")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", choices=["plain", "cached"], default="plain")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    transform = make_transform()
    if args.mode == "plain":
        dataset = datasets.ImageFolder(args.root, transform=transform)
    else:
        dataset = CachedImageFolder(args.root, transform)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        drop_last=False, persistent_workers=args.workers > 0)

    epochs = []
    for epoch in range(args.epochs):
        images = hits = 0
        t0 = time.perf_counter()
        for x, y in loader:
            images += x.shape[0]
            if args.mode == "cached":
                hits += int(y.sum())  # CachedImageFolder returns hit flags instead of labels
        seconds = time.perf_counter() - t0
        e = {"epoch": epoch + 1, "images": images, "seconds": round(seconds, 4),
             "samples_per_second": round(images / seconds, 2)}
        if args.mode == "cached":
            e["cache_hits"] = hits
        epochs.append(e)
        print(f"torch_baseline: {args.mode} workers={args.workers} epoch {epoch + 1}: "
              f"{images / seconds:.1f} images/s", file=sys.stderr)

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


if __name__ == "__main__":
    main()
