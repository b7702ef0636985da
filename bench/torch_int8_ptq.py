#!/usr/bin/python3
"""PyTorch int8 post-training static quantization (FX graph mode) baseline.

Usage: torch_int8_ptq.py --model resnet20 [--engine onednn|qnnpack|fbgemm]
                         [--calib 512] [--seed 0] [--limit 10000] [--threads 1]

Quantizes the trained FP32 model with prepare_fx/convert_fx and the engine's
default QConfigMapping, calibrating on the first --calib images of a seeded
permutation (numpy default_rng(seed)) of the Fashion-MNIST train split, then
reports top-1 of the FP32 and int8 models on the first --limit test images.
The default engine is onednn if supported, else fbgemm, else qnnpack.
Prints the engine used on stderr and one JSON line on stdout.
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))

import fmnist  # noqa: E402
import zoo  # noqa: E402

ENGINES = ("onednn", "fbgemm", "qnnpack")  # in order of preference


def batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def top1(model, data):
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    return correct / sum(len(y) for _, y in data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20", choices=sorted(zoo.MODELS))
    ap.add_argument("--engine", choices=ENGINES, default=None,
                    help="quantized engine (default: first supported of %s)"
                    % ", ".join(ENGINES))
    ap.add_argument("--calib", type=int, default=512,
                    help="number of calibration images from the train split")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the train-split permutation")
    ap.add_argument("--limit", type=int, default=10000,
                    help="number of test images (first N of t10k)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--weights", default=None,
                    help="state dict (default: models/<model>_fmnist.pt)")
    args = ap.parse_args()
    if min(args.calib, args.limit, args.threads, args.batch) < 1:
        ap.error("--calib, --limit, --threads and --batch must be positive")

    supported = torch.backends.quantized.supported_engines
    engine = args.engine or next((e for e in ENGINES if e in supported), None)
    if engine not in supported:
        ap.error(f"quantized engine {engine!r} not supported; available: {supported}")
    torch.backends.quantized.engine = engine
    print(f"quantized engine: {engine}", file=sys.stderr)

    torch.set_num_threads(args.threads)
    weights = args.weights or os.path.join(ROOT, "models", f"{args.model}_fmnist.pt")
    model = zoo.build(args.model)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()

    train_images, _ = fmnist.load_split("train")
    perm = np.random.default_rng(args.seed).permutation(len(train_images))
    calib_x = torch.from_numpy(fmnist.to_input(train_images[perm[:args.calib]]))
    test_images, test_labels = fmnist.load_split("test")
    n = min(args.limit, len(test_labels))
    test = batches(torch.from_numpy(fmnist.to_input(test_images[:n])),
                   torch.from_numpy(test_labels[:n]), args.batch)

    qconfig_mapping = get_default_qconfig_mapping(engine)
    prepared = prepare_fx(copy.deepcopy(model), qconfig_mapping, (calib_x[:1],))
    with torch.no_grad():
        start = time.perf_counter()
        for i in range(0, len(calib_x), args.batch):
            prepared(calib_x[i:i + args.batch])
        seconds_calibrate = time.perf_counter() - start
    quantized = convert_fx(prepared)

    with torch.inference_mode():
        fp32_top1 = top1(model, test)
        quantized(test[0][0])  # warm-up, not timed
        start = time.perf_counter()
        int8_top1 = top1(quantized, test)
        seconds_eval_int8 = time.perf_counter() - start

    print(json.dumps({
        "framework": "pytorch-fx-ptq",
        "engine": engine,
        "model": args.model,
        "calib_images": len(calib_x),
        "seed": args.seed,
        "test_images": n,
        "fp32_top1": fp32_top1,
        "int8_top1": int8_top1,
        "seconds_calibrate": round(seconds_calibrate, 6),
        "seconds_eval_int8": round(seconds_eval_int8, 6),
    }))


if __name__ == "__main__":
    main()
