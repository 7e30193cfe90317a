#!/usr/bin/env python3
"""The PyTorch baseline of tools/gpu/run.sh: torchvision's ResNet-18 trained on an image folder,
fed by a DataLoader, set up as PyTorch's own ImageNet recipe sets it up for speed.

  python3 tools/gpu/dataloader_train.py --root photos --epochs 4 --json dl.json

What it does, and where each choice comes from:
- data: torchvision.datasets.ImageFolder (PIL decoding) with RandomResizedCrop(224),
  RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet mean/std): the transform of
  configs/photos.yaml, which `flowfeed train` runs in the same tools/gpu/run.sh;
- loader: DataLoader(batch 256, shuffle=True, num_workers=16, pin_memory=True,
  persistent_workers=True, drop_last=False), as the DataLoader docs and PyTorch's performance
  tuning guide advise (workers, pinned memory, non_blocking copies);
- model: torchvision.models.resnet18(num_classes=<classes in the folder>), channels_last memory
  format for the model and each batch on CUDA (as flowfeed's `channels_last: auto`), bf16 autocast (torch.autocast("cuda", torch.bfloat16),
  no GradScaler: bf16 needs none), torch.backends.cudnn.benchmark = True (the performance tuning
  guide; torchvision's references/classification/train.py sets it unless deterministic);
- optimiser: SGD with the flowfeed config's lr, momentum and weight decay, a constant learning
  rate (as the flowfeed config is run), CrossEntropyLoss, zero_grad(set_to_none=True).

Timing: each epoch runs from iter(loader) (persistent workers are started by the first one) to
the end of its last step, with torch.cuda.synchronize() before the clock is read, so queued GPU
work is counted. Data wait is the time the training loop was blocked in next() on the loader's
iterator; the loop never synchronises inside an epoch (as a user's loop would not), so the host
may run ahead of the GPU and a wait can overlap GPU work that is still queued. The first step
is timed apart, synchronised (cuDNN's algorithm search and the allocator's growth land there),
and the median of the other steps is the epoch's time over its steps (no per-step sync).
Prints one line per epoch and writes --json.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="image folder: root/<class>/<file>")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--size", type=int, default=224, help="RandomResizedCrop's output side")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--device", default="cuda", help="cuda (the run) or cpu (a rehearsal)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="float32, no autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()

    t_start = time.perf_counter()
    setup = {}
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        t = time.perf_counter()
        torch.cuda.init()
        torch.zeros(1, device=device)
        setup["cuda_context"] = time.perf_counter() - t
    torch.backends.cudnn.benchmark = True

    t = time.perf_counter()
    transform = transforms.Compose([
        transforms.RandomResizedCrop(args.size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    dataset = datasets.ImageFolder(args.root, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        pin_memory=cuda, persistent_workers=args.workers > 0, drop_last=False)
    setup["dataset"] = time.perf_counter() - t

    t = time.perf_counter()
    model = torchvision.models.resnet18(num_classes=len(dataset.classes))
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    criterion = torch.nn.CrossEntropyLoss()
    if cuda:
        torch.cuda.synchronize()
    setup["model"] = time.perf_counter() - t

    def sync():
        if cuda:
            torch.cuda.synchronize()

    print(f"dataloader: resnet18 at {args.size} px, batch {args.batch}, {args.workers} workers, "
          f"{len(dataset)} images in {len(dataset.classes)} classes, device {device}, "
          f"bf16 autocast {'on' if args.amp else 'off'}, {'channels_last' if cuda else 'contiguous'}, cudnn.benchmark, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}", flush=True)
    model.train()
    epochs = []
    for epoch in range(1, args.epochs + 1):
        sync()
        start = time.perf_counter()
        it = iter(loader)
        iter_start = time.perf_counter() - start
        wait = 0.0
        images = steps = 0
        first_step = first_wait = None
        loss = None
        while True:
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            wait += time.perf_counter() - t0
            if first_wait is None:
                first_wait = time.perf_counter() - start  # iter() and the first batch
            t1 = time.perf_counter()
            x = x.to(device, non_blocking=True, memory_format=fmt)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.amp):
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if steps == 0:
                sync()
                first_step = time.perf_counter() - t1
                after_first = time.perf_counter()
            images += x.shape[0]
            steps += 1
        sync()
        end = time.perf_counter()
        seconds = end - start
        rest = (end - after_first) / (steps - 1) if steps > 1 else None
        e = {"epoch": epoch, "images": images, "steps": steps, "seconds": round(seconds, 4),
             "images_per_second": round(images / seconds, 1),
             "data_wait_seconds": round(wait, 4), "data_wait_share": round(wait / seconds, 4),
             "iter_start_seconds": round(iter_start, 4),
             "first_batch_wait_seconds": round(first_wait, 4) if first_wait is not None else None,
             "first_step_seconds": round(first_step, 4) if first_step is not None else None,
             "mean_later_step_seconds": round(rest, 5) if rest is not None else None,
             "loss": round(loss.item(), 4) if loss is not None else None}
        epochs.append(e)
        print(f"dataloader epoch {epoch}: {images} images in {seconds:.2f} s = "
              f"{images / seconds:.1f} images/s, waiting for data {100 * wait / seconds:.1f}% "
              f"(iter() {iter_start:.2f} s), first step {first_step:.3f} s, loss {e['loss']}",
              flush=True)
        if args.json:  # after every epoch: a run stopped by its time limit keeps what it did
            write(args, dataset, setup, epochs, time.perf_counter() - t_start)
    return 0


def write(args, dataset, setup, epochs, wall):
    doc = {"tool": "pytorch-dataloader", "args": vars(args), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "python": sys.version.split()[0],
           "cuda_device": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
           "images": len(dataset), "classes": len(dataset.classes),
           "setup_seconds": {k: round(v, 4) for k, v in setup.items()},
           "epochs": epochs, "wall_seconds": round(wall, 3)}
    later = [e["images_per_second"] for e in epochs[1:]]
    doc["epoch1_images_per_second"] = epochs[0]["images_per_second"]
    doc["later_images_per_second_median"] = statistics.median(later) if later else None
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, args.json)


if __name__ == "__main__":
    sys.exit(main())
