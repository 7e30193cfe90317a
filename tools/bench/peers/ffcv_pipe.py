#!/usr/bin/env python3
"""FFCV on the photo folder, as FFCV's ImageNet example writes it (github.com/libffcv/
ffcv-imagenet: write_imagenet.py and train_imagenet.py; docs.ffcv.io "Making an FFCV dataloader
work for you"), on the CPU:

  --convert BETON   converts the folder once into FFCV's .beton file (RGBImageField,
                    write_mode='jpg', jpeg_quality=90, the images' own resolution; IntField
                    labels), num_workers = --threads, timed apart: FFCV stores JPEGs it
                    re-encodes from the decoded photos, so its files are not byte for byte the
                    folder's (a few percent more or fewer bytes to decode).
  --beton BETON     loads it: RandomResizedCropRGBImageDecoder((224, 224)) (FFCV's fused
                    decode + crop + resize), RandomHorizontalFlip, NormalizeImage(ImageNet
                    mean/std x 255, float32), ToTensor, ToTorchImage (FFCV's default
                    channels_last=True: logically N x 3 x 224 x 224, channels-last in memory,
                    as the example feeds its model); labels IntDecoder, ToTensor, Squeeze.
                    Loader(num_workers = --threads, order=RANDOM, os_cache=True, batch 64,
                    drop_last=False). os_cache=True is FFCV's cache: the .beton is memory
                    mapped, so epochs 2+ read it from the page cache.

FFCV compiles its pipeline with numba when the first epoch starts; that time is in epoch 1, as
it is in every run a user starts.
"""
import json
import os
import sys
import time

import harness
import numpy as np
import torch


def convert(args, samples):
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from PIL import Image

    class Folder:
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            path, label = samples[i]
            with open(path, "rb") as f:
                return Image.open(f).convert("RGB"), label

    tmp = args.convert + ".partial"
    t0 = time.perf_counter()
    writer = DatasetWriter(tmp, {"image": RGBImageField(write_mode="jpg", jpeg_quality=90),
                                 "label": IntField()}, num_workers=args.threads)
    writer.from_indexed_dataset(Folder())
    os.replace(tmp, args.convert)
    seconds = time.perf_counter() - t0
    print(json.dumps({"system": "FFCV", "conversion_seconds": round(seconds, 3),
                      "beton_bytes": os.path.getsize(args.convert), "images": len(samples)}))


def load(args, samples, classes):
    from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import NormalizeImage, RandomHorizontalFlip, Squeeze, ToTensor, ToTorchImage

    t0 = time.perf_counter()
    loader = Loader(
        args.beton, batch_size=args.batch, num_workers=args.threads, order=OrderOption.RANDOM,
        os_cache=True, drop_last=False, seed=args.seed,
        pipelines={
            "image": [RandomResizedCropRGBImageDecoder((harness.SIZE, harness.SIZE),
                                                       scale=harness.SCALE, ratio=harness.RATIO),
                      RandomHorizontalFlip(),
                      NormalizeImage(np.array(harness.MEAN) * 255, np.array(harness.STD) * 255,
                                     np.float32),
                      ToTensor(), ToTorchImage()],
            "label": [IntDecoder(), ToTensor(), Squeeze()],
        })
    open_seconds = time.perf_counter() - t0
    from importlib.metadata import version as dist_version
    version = dist_version("ffcv")  # ffcv.__version__ says 0.0.3rc1 in the 1.0.2 release

    def epoch(_):
        for x, y in loader:
            yield x, y.reshape(-1)

    harness.run(args, "FFCV", f"FFCV {version} Loader over a .beton of the folder (jpg, quality "
                f"90), RandomResizedCropRGBImageDecoder, num_workers={args.threads}, os_cache=True",
                samples, classes, epoch, open_seconds,
                {"ffcv": version, "torch": torch.__version__},
                cache={"mode": "page cache", "note": "os_cache=True: the .beton memory mapped"})


def main():
    def extra(p):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--convert", metavar="BETON", help="write the folder as a .beton and exit")
        g.add_argument("--beton", metavar="BETON", help="load this .beton")
    args = harness.parse_args(__doc__, extra)
    samples, classes = harness.list_samples(args.root)
    if args.convert:
        convert(args, samples)
    else:
        load(args, samples, classes)


if __name__ == "__main__":
    sys.exit(main())
