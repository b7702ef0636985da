#!/usr/bin/python3
"""Train the zoo models on Fashion-MNIST and export them to ONNX.

Usage: train_zoo.py [--model NAME|all] [--epochs E] [--seed S] [--threads T]

Writes models/<name>_fmnist.onnx, models/<name>_fmnist.pt and updates
models/manifest.json.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fmnist  # noqa: E402
import zoo  # noqa: E402

DEFAULT_EPOCHS = {"small_cnn": 3, "mobilenetv2_mini": 6, "resnet20": 10, "vit_tiny": 6, "mobilenetv3_small": 5,
                  "two_view": 4}
DEFAULT_LR = {"small_cnn": 0.1, "mobilenetv2_mini": 0.2, "resnet20": 0.2, "vit_tiny": 0.003, "mobilenetv3_small": 0.1,
              "two_view": 0.1}
# Transformers train with AdamW; the CNNs with SGD and Nesterov momentum.
ADAMW = {"vit_tiny"}
# Opset 17 has LayerNormalization as one operator.
OPSET = {"vit_tiny": 17}
BATCH = 128
PAD = 4
PREPROCESSING = "scale 1/255, no mean/std"


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_crop_batch(padded, idx, gen, size=28):
    """Random size x size crops of padded[idx] (uint8 [N,H+2p,W+2p]) -> float [B,1,size,size]."""
    n = idx.numel()
    span = padded.shape[1] - size + 1
    oy = torch.randint(0, span, (n,), generator=gen)
    ox = torch.randint(0, span, (n,), generator=gen)
    ar = torch.arange(size)
    rows = (oy[:, None] + ar)[:, :, None]
    cols = (ox[:, None] + ar)[:, None, :]
    crops = padded[idx[:, None, None], rows, cols]
    x = crops.unsqueeze(1).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def evaluate(model, images, labels, batch=1000, name=None):
    """Top-1 accuracy (fraction) of model on uint8 images [N,28,28]."""
    model.eval()
    x_all = torch.from_numpy(fmnist.to_input(images))
    y_all = torch.from_numpy(labels)
    correct = 0
    for i in range(0, len(y_all), batch):
        pred = model(*zoo.views(name, x_all[i:i + batch])).argmax(1)
        correct += int((pred == y_all[i:i + batch]).sum())
    return correct / len(y_all)


def log(*args):
    print(*args, flush=True)


def train(name, epochs, seed, lr=None, max_steps=None):
    """Train one model; returns (model, seconds)."""
    seed_everything(seed)
    # channels_last is noticeably faster for oneDNN convolutions on CPU.
    model = zoo.build(name).to(memory_format=torch.channels_last)
    images, labels = fmnist.load_split("train")
    padded = F.pad(torch.from_numpy(images), (PAD, PAD, PAD, PAD))
    y_all = torch.from_numpy(labels)
    n = len(y_all)
    steps_per_epoch = math.ceil(n / BATCH)
    lr = lr if lr is not None else DEFAULT_LR[name]

    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    if name in ADAMW:
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    else:
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.2, div_factor=10.0, final_div_factor=100.0)

    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    step = 0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        t0 = time.time()
        loss_sum, correct = 0.0, 0
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            x = random_crop_batch(padded, idx, gen)
            y = y_all[idx]
            out = model(*zoo.views(name, x))
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == y).sum())
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        if max_steps is not None and step >= max_steps:
            break
        log(f"[{name}] epoch {epoch + 1}/{epochs} loss {loss_sum / n:.4f} "
            f"train_acc {correct / n:.4f} ({time.time() - t0:.1f}s)")
    return model.to(memory_format=torch.contiguous_format), time.time() - start


def export_onnx(model, path, opset=13, name=None):
    """Export in eval mode (dynamic batch) and check the result."""
    import onnx

    model.eval()
    dummy = zoo.views(name, torch.zeros(1, 1, 28, 28))
    inputs = zoo.INPUTS.get(name, ["input"])
    axes = {n: {0: "batch"} for n in inputs + ["logits"]}
    torch.onnx.export(
        model, dummy, path, opset_version=opset, input_names=inputs,
        output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    return sorted({node.op_type for node in proto.graph.node})


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def update_manifest(name, entry):
    path = os.path.join(HERE, "manifest.json")
    manifest = {}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    manifest[name] = entry
    with open(path, "w") as f:
        json.dump(dict(sorted(manifest.items())), f, indent=2)
        f.write("\n")


def run(name, epochs, seed, lr, threads):
    model, seconds = train(name, epochs, seed, lr)
    test_images, test_labels = fmnist.load_split("test")
    top1 = evaluate(model, test_images, test_labels, name=name)
    log(f"[{name}] test top-1 {top1:.4f} after {epochs} epochs ({seconds:.0f}s)")

    base = f"{name}_fmnist"
    onnx_path = os.path.join(HERE, base + ".onnx")
    torch.save(model.state_dict(), os.path.join(HERE, base + ".pt"))
    ops = export_onnx(model, onnx_path, OPSET.get(name, 13), name)
    log(f"[{name}] wrote {onnx_path} ops={ops}")

    update_manifest(name, {
        "file": base + ".onnx",
        "state_dict": base + ".pt",
        "architecture": zoo.ARCHITECTURES[name],
        "parameters": sum(p.numel() for p in model.parameters()),
        **({"input_names": zoo.INPUTS[name], "input_shapes": [["N", 1, 14, 28]] * 2,
            "dataset_form": "npz with arrays top = rows 0-13, bottom = rows 14-27 of each image, labels"}
           if name in zoo.INPUTS else {"input_name": "input", "input_shape": ["N", 1, 28, 28]}),
        "output_name": "logits",
        "output_shape": ["N", 10],
        "preprocessing": PREPROCESSING,
        "dataset": "Fashion-MNIST (train 60k, test t10k 10k)",
        "fp32_test_top1": round(top1, 4),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(seconds),
        "train_threads": threads,
        "opset": OPSET.get(name, 13),
        "onnx_ops": ops,
        "training_command": (f"/usr/bin/python3 models/train_zoo.py --model {name} "
                             f"--epochs {epochs} --seed {seed} --threads {threads}"
                             + (f" --lr {lr}" if lr is not None else "")),
        "sha256": sha256(onnx_path),
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all", choices=["all", *zoo.MODELS])
    ap.add_argument("--epochs", type=int, default=None,
                    help="default: %s" % DEFAULT_EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None, help="peak OneCycle LR")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (1 is fastest on a shared 2-core machine)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    names = list(DEFAULT_EPOCHS) if args.model == "all" else [args.model]
    for name in names:
        epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[name]
        run(name, epochs, args.seed, args.lr, args.threads)


if __name__ == "__main__":
    main()
