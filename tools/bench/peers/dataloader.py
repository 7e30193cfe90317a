#!/usr/bin/env python3
"""PyTorch 2.x DataLoader + torchvision 0.2x on the photo folder, three ways:

  pil            the classic path: ImageFolder (PIL decode), transforms.v2 RandomResizedCrop(224,
                 antialias=True), RandomHorizontalFlip(), ToImage(), ToDtype(float32, scale=True),
                 Normalize, collated in the workers.
  tensor         the fast tensor path torchvision recommends: read_file + decode_jpeg (libjpeg-turbo)
                 to a uint8 tensor, the v2 crop/resize (antialias) and flip on uint8 in the
                 workers, uint8 batches collated, then ToDtype + Normalize on the whole batch in
                 the main process.
  tensor_cached  the tensor path over a hand-written cache: a dict of decoded uint8 tensors in
                 each worker, filled on first access (what a user writes; with shuffling a
                 worker is handed images another worker decoded, so some later reads still miss:
                 the report counts the hits).

Setup per torchvision's "Performance considerations" (pytorch.org/vision/stable/transforms.html:
v2 transforms, tensors over PIL, uint8 until normalisation, antialias=True, decode_jpeg) and
PyTorch's DataLoader docs (pytorch.org/docs/stable/data.html: num_workers, persistent_workers
so the workers and their caches live across epochs, default prefetch_factor 2). num_workers =
--threads; the DataLoader sets torch's intra-op threads to 1 in each worker, and the main
process's normalisation runs on --threads intra-op threads.
"""
import time

import harness
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2


def uint8_transform():
    return v2.Compose([
        v2.RandomResizedCrop(harness.SIZE, scale=harness.SCALE, ratio=harness.RATIO, antialias=True),
        v2.RandomHorizontalFlip(),
    ])


class JpegTensors(Dataset):
    """(uint8 3xHxW tensor after crop and flip, label); with cache, decoded images are kept in a
    dict (one per worker process) and the hits counted in the label's high bits."""

    def __init__(self, samples, cache):
        self.samples = samples
        self.transform = uint8_transform()
        self.cache = {} if cache else None

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = self.cache.get(i) if self.cache is not None else None
        hit = img is not None
        if not hit:
            img = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
            if self.cache is not None:
                self.cache[i] = img
        return self.transform(img), label + (1 << 32 if hit else 0)


def main():
    args = harness.parse_args(__doc__, lambda p: p.add_argument(
        "--mode", choices=["pil", "tensor", "tensor_cached"], default="tensor"))
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    samples, classes = harness.list_samples(args.root)
    t0 = time.perf_counter()
    if args.mode == "pil":
        dataset = datasets.ImageFolder(args.root, transform=v2.Compose([
            v2.RandomResizedCrop(harness.SIZE, scale=harness.SCALE, ratio=harness.RATIO,
                                 antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(harness.MEAN, harness.STD),
        ]))
        if [(p, l) for p, l in dataset.samples] != samples:
            raise SystemExit("ImageFolder lists other files than the harness")
    else:
        dataset = JpegTensors(samples, cache=args.mode == "tensor_cached")
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.threads,
                        persistent_workers=args.threads > 0)
    open_seconds = time.perf_counter() - t0
    hits = [0] * args.epochs

    def epoch(e):
        for x, y in loader:
            if args.mode != "pil":
                hits[e] += int((y >> 32).sum())
                y = y & 0xFFFFFFFF
                x = v2.functional.normalize(v2.functional.to_dtype(x, torch.float32, scale=True),
                                            harness.MEAN, harness.STD)
            yield x, y

    names = {"pil": "DataLoader (PIL)", "tensor": "DataLoader (tensor)",
             "tensor_cached": "DataLoader (tensor) + dict cache"}
    cache = extra = None
    if args.mode == "tensor_cached":
        cache = {"mode": "memory", "note": "decoded uint8 tensors in a dict in each of the "
                 f"{args.threads} persistent worker processes"}
        extra = lambda e: {"cache": {"mode": "memory", "hits": hits[e],
                                     "misses": len(samples) - hits[e]}}
    harness.run(args, names[args.mode],
                f"PyTorch {torch.__version__} DataLoader, torchvision {torchvision.__version__}, "
                f"{args.mode} path, num_workers={args.threads}", samples, classes, epoch,
                open_seconds, {"torch": torch.__version__, "torchvision": torchvision.__version__},
                cache=cache, epoch_extra=extra)


if __name__ == "__main__":
    main()
