#!/usr/bin/python3
"""PyTorch eager throughput/accuracy baseline for the Fashion-MNIST zoo models.

Usage: torch_eval.py --model resnet20 --threads T --batch B --limit N
Prints one JSON line.
"""

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))

import fmnist  # noqa: E402
import zoo  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20", choices=sorted(zoo.MODELS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=10000,
                    help="number of test images (first N of t10k)")
    ap.add_argument("--weights", default=None,
                    help="state dict (default: models/<model>_fmnist.pt)")
    args = ap.parse_args()
    if args.batch < 1 or args.limit < 1 or args.threads < 1:
        ap.error("--batch, --limit and --threads must be positive")

    torch.set_num_threads(args.threads)
    weights = args.weights or os.path.join(ROOT, "models", f"{args.model}_fmnist.pt")
    model = zoo.build(args.model)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()

    images, labels = fmnist.load_split("test")
    n = min(args.limit, len(labels))
    x_all = torch.from_numpy(fmnist.to_input(images[:n]))
    y_all = torch.from_numpy(labels[:n])
    batches = [(x_all[i:i + args.batch], y_all[i:i + args.batch])
               for i in range(0, n, args.batch)]

    correct = 0
    with torch.inference_mode():
        model(batches[0][0])  # warm-up, not timed
        start = time.perf_counter()
        for x, y in batches:
            correct += int((model(x).argmax(1) == y).sum())
        seconds = time.perf_counter() - start

    print(json.dumps({
        "framework": "pytorch-eager",
        "model": args.model,
        "threads": args.threads,
        "batch": args.batch,
        "images": n,
        "seconds": round(seconds, 6),
        "images_per_second": round(n / seconds, 2),
        "top1": correct / n,
    }))


if __name__ == "__main__":
    main()
