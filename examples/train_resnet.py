"""A torchvision ResNet trained on an image folder, fed by flowfeed and by the PyTorch DataLoader
in the same run, with the same transforms, model, optimiser and seed: images/s and the share of
each step spent waiting for data, per epoch, for both.

    PYTHONPATH=build/python python3 examples/train_resnet.py --data data/photos --epochs 2

Make the folder with `build/flowfeed dataset photos --out data/photos --count 600`. Each loader
trains a fresh model; the DataLoader gets as many workers as flowfeed gets threads (all cores
by default), which is how its maintainers recommend sizing it. Prints one table and, with
--json FILE, writes the figures.
"""

import argparse
import json
import os
import time

import torch
import torchvision
from torchvision import transforms

import flowfeed

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def flowfeed_batches(args):
    config = {
        "seed": args.seed,
        "epochs": args.epochs,
        "threads": args.workers,
        "source": {"type": "image_folder", "root": args.data},
        "pipeline": [
            {"type": "decode", "color": "rgb"},
            {"type": "random_resized_crop", "size": args.image_size},
            {"type": "random_horizontal_flip", "p": 0.5},
            {"type": "normalize", "mean": MEAN, "std": STD},
        ],
        "batch": {"size": args.batch_size, "drop_last": False},
        "cache": {"mode": "auto"},
    }
    pipe = flowfeed.Pipeline(config)
    for _ in range(args.epochs):
        yield iter(pipe)


def dataloader_batches(args):
    tf = transforms.Compose([
        transforms.RandomResizedCrop(args.image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    dataset = torchvision.datasets.ImageFolder(args.data, transform=tf)
    workers = {"num_workers": args.workers, "persistent_workers": True} if args.workers else {}
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         **workers)
    for _ in range(args.epochs):
        yield iter(loader)


def train(name, epochs_of_batches, args, num_classes):
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.model)(num_classes=num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rows = []
    for epoch, batches in enumerate(epochs_of_batches, start=1):
        model.train()
        start = time.perf_counter()
        wait = 0.0
        images_seen = 0
        while True:
            t0 = time.perf_counter()
            try:
                images, labels = next(batches)
            except StopIteration:
                break
            wait += time.perf_counter() - t0
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            opt.step()
            images_seen += images.shape[0]
        seconds = time.perf_counter() - start
        rows.append({"loader": name, "epoch": epoch, "images": images_seen,
                     "seconds": round(seconds, 2),
                     "images_per_second": round(images_seen / seconds, 1),
                     "data_wait_share": round(wait / seconds, 3),
                     "last_loss": round(float(loss), 4)})
        print(f"{name:>10} epoch {epoch}: {images_seen} images in {seconds:.1f} s = "
              f"{images_seen / seconds:.1f} images/s, waiting for data {100 * wait / seconds:.1f}%",
              flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an image folder: root/<class>/<file>")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="DataLoader workers and flowfeed threads (default: all cores)")
    p.add_argument("--loaders", default="flowfeed,dataloader")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    num_classes = len([d for d in os.scandir(args.data) if d.is_dir()])
    print(f"{args.model} at {args.image_size} px, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.workers} workers/threads, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, flowfeed {flowfeed.__version__}", flush=True)
    rows = []
    for name in args.loaders.split(","):
        source = flowfeed_batches(args) if name == "flowfeed" else dataloader_batches(args)
        rows += train(name, source, args, num_classes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "epochs": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
