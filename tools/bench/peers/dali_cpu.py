#!/usr/bin/env python3
"""NVIDIA DALI 2.x, CPU only (device_id=None), the pipeline of DALI's own ResNet-50 training
example (docs.nvidia.com/deeplearning/dali/user-guide/docs/examples/use_cases/pytorch/resnet50/
pytorch-resnet50.html, and "CPU-only pipelines" in the pipeline docs) with its CPU operators:

  fn.readers.file (random_shuffle, the folder's classes as labels)
  fn.decoders.image_random_crop (libjpeg-turbo, decoding only the sampled window; area
      [0.08, 1], aspect [3/4, 4/3]: RandomResizedCrop's window)
  fn.resize to 224 x 224 (linear, antialiased: DALI's defaults)
  fn.crop_mirror_normalize (ImageNet mean/std on the 0-255 scale, mirror from a coin flip,
      float32, CHW)

num_threads = --threads, batch 64, prefetch_queue_depth DALI's default (2). Batches reach the
loop as torch tensors through DALIGenericIterator (nvidia.dali.plugin.pytorch) with
LastBatchPolicy.PARTIAL and the reader's pad_last_batch=True (the pairing DALI's iterator docs
give for exact epochs: without the padding, the reader fills epoch 1's last batch with epoch 2's
first images and the label counts per epoch are off), so every epoch delivers each image once,
the last batch short, as the other systems do. DALI has no cache of its own for CPU decoding,
so it has no cached row.
"""
import time

import harness
import nvidia.dali as dali
import nvidia.dali.fn as fn
import nvidia.dali.types as types
import torch
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy


def main():
    args = harness.parse_args(__doc__)
    samples, classes = harness.list_samples(args.root)
    files = [p for p, _ in samples]
    labels = [l for _, l in samples]

    @dali.pipeline_def(batch_size=args.batch, num_threads=args.threads, device_id=None,
                       seed=args.seed + 1)
    def pipe():
        jpegs, label = fn.readers.file(files=files, labels=labels, random_shuffle=True,
                                       pad_last_batch=True, name="Reader")
        images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                               random_area=list(harness.SCALE),
                                               random_aspect_ratio=list(harness.RATIO),
                                               num_attempts=10)
        images = fn.resize(images, resize_x=harness.SIZE, resize_y=harness.SIZE)
        images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                          mean=[m * 255 for m in harness.MEAN],
                                          std=[s * 255 for s in harness.STD],
                                          mirror=fn.random.coin_flip(probability=0.5))
        return images, label

    t0 = time.perf_counter()
    p = pipe()
    p.build()
    loader = DALIGenericIterator([p], ["images", "labels"], reader_name="Reader",
                                 last_batch_policy=LastBatchPolicy.PARTIAL, auto_reset=True)
    open_seconds = time.perf_counter() - t0

    def epoch(_):
        for out in loader:
            yield out[0]["images"], out[0]["labels"].reshape(-1)

    harness.run(args, "DALI (CPU)",
                f"NVIDIA DALI {dali.__version__} CPU pipeline: readers.file, "
                f"decoders.image_random_crop, resize, crop_mirror_normalize; num_threads={args.threads}",
                samples, classes, epoch, open_seconds,
                {"nvidia-dali": dali.__version__, "torch": torch.__version__})


if __name__ == "__main__":
    main()
