#!/usr/bin/env python3
"""Meta's SPDL on the photo folder: its thread-pool pipeline (spdl.pipeline.PipelineBuilder)
with its own FFmpeg-based image decode, as SPDL's docs build one ("Building and Running
Pipeline", "Multi thread preprocessing" and the image_dataloading / imagenet_classification
examples at facebookresearch.github.io/spdl):

  source      the shuffled (path, label) list of the epoch
  pipe        spdl.io.demux_image + spdl.io.decode_packets with an FFmpeg filter graph doing
              the sample's RandomResizedCrop window, the scale to 224 x 224 (bilinear, which
              FFmpeg's swscale antialiases when it shrinks), the flip when drawn, and rgb24;
              concurrency = --threads
  aggregate   64 frames
  pipe        spdl.io.convert_frames (one uint8 NHWC buffer for the batch) -> spdl.io.to_torch
              (no copy), then permute to NCHW, ToDtype + Normalize in torch on the whole batch
  sink

PipelineBuilder.build(num_threads=--threads) sizes the pool the stages run on; torch's
intra-op threads = --threads for the batch normalisation. The pipeline is built per epoch from
that epoch's shuffled list (building takes milliseconds and is inside the epoch's time). SPDL
has no cache of its own, so it has no cached row.
"""
import random
import time

import harness
import spdl
import spdl.io
import torch
from spdl.pipeline import PipelineBuilder

MEAN = torch.tensor(harness.MEAN).view(1, 3, 1, 1) * 255.0
STD = torch.tensor(harness.STD).view(1, 3, 1, 1) * 255.0


def main():
    args = harness.parse_args(__doc__)
    torch.set_num_threads(args.threads)
    samples, classes = harness.list_samples(args.root)
    rng_for_thread = harness.thread_rng(args.seed)

    def decode(item):
        path, label = item
        packets = spdl.io.demux_image(path)
        rng = rng_for_thread()
        x, y, w, h = harness.crop_params(rng, packets.width, packets.height)
        flip = ",hflip" if rng.random() < 0.5 else ""
        desc = (f"crop={w}:{h}:{x}:{y},scale={harness.SIZE}:{harness.SIZE}:flags=bilinear"
                f"{flip},format=rgb24")
        return spdl.io.decode_packets(packets, filter_desc=desc), label

    def collate(items):
        frames = [f for f, _ in items]
        batch = spdl.io.to_torch(spdl.io.convert_frames(frames))  # N x 224 x 224 x 3 uint8
        x = batch.permute(0, 3, 1, 2).to(torch.float32).sub_(MEAN).div_(STD)
        return x, torch.tensor([l for _, l in items], dtype=torch.int64)

    order = random.Random(args.seed)

    def epoch(_):
        items = list(samples)
        order.shuffle(items)
        pipeline = (PipelineBuilder()
                    .add_source(items)
                    .pipe(decode, concurrency=args.threads)
                    .aggregate(args.batch)
                    .pipe(collate)
                    .add_sink(3)
                    .build(num_threads=args.threads))
        with pipeline.auto_stop():
            yield from pipeline.get_iterator(timeout=120)

    version = getattr(spdl, "__version__", "")
    try:
        from importlib.metadata import version as dist_version
        version = dist_version("spdl")
    except Exception:
        pass
    harness.run(args, "SPDL", f"SPDL {version} PipelineBuilder: demux_image + decode_packets "
                f"(FFmpeg crop/scale/hflip filter), concurrency={args.threads}, "
                f"num_threads={args.threads}", samples, classes, epoch, 0.0,
                {"spdl": version, "torch": torch.__version__})


if __name__ == "__main__":
    main()
