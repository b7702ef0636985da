#!/usr/bin/python3
"""PyTorch eager peer of one KD fine-tuning step on a fake-quantized student.

The student is the zoo model with BatchNorm folded into the convolutions (as
autoprec trains it), per-channel symmetric weight fake-quant with min/max
scales recomputed every step, per-tensor activation fake-quant before every
Conv/Linear with ranges calibrated once on 256 images, KD loss
(T=1, alpha=0.9), SGD with momentum. Prints one JSON line with training
images/s with the teacher's logits cached and not cached.

Usage: torch_kd_step.py --model resnet20 --threads T --batch B --steps S --wbits 4 --abits 8
"""

import argparse
import copy
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))

import fmnist  # noqa: E402
import zoo  # noqa: E402


def fold_batchnorm(module):
    """Replaces every Conv2d followed by BatchNorm2d (as siblings) with the folded conv."""
    names = list(module._modules.keys())
    for i, name in enumerate(names):
        child = module._modules[name]
        if child is None:
            continue
        fold_batchnorm(child)
    for conv_name, bn_name in zip(names, names[1:]):
        conv, bn = module._modules[conv_name], module._modules[bn_name]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module._modules[conv_name] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
            module._modules[bn_name] = nn.Identity()
    # ResNet blocks keep conv/bn as attributes with names conv1/bn1, conv2/bn2.
    for c, b in (("conv1", "bn1"), ("conv2", "bn2")):
        conv, bn = getattr(module, c, None), getattr(module, b, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, c, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
            setattr(module, b, nn.Identity())


class FakeQuant(nn.Module):
    """Wraps a Conv2d/Linear: fake-quantizes its input and weight."""

    def __init__(self, layer, wbits, abits):
        super().__init__()
        self.layer = layer
        self.wq = 2 ** (wbits - 1) - 1
        self.aq = 2 ** abits - 1
        self.register_buffer("a_scale", torch.tensor(1.0))
        self.register_buffer("a_zero", torch.tensor(0, dtype=torch.int32))
        self.calibrating = True
        self.lo, self.hi = 0.0, 0.0

    def forward(self, x):
        if self.calibrating:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
            return self.layer(x)
        x = torch.fake_quantize_per_tensor_affine(x, float(self.a_scale), int(self.a_zero), 0, self.aq)
        w = self.layer.weight
        with torch.no_grad():
            scale = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / self.wq
        zero = torch.zeros(w.shape[0], dtype=torch.int32)
        wq = torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -self.wq, self.wq)
        if isinstance(self.layer, nn.Conv2d):
            return F.conv2d(x, wq, self.layer.bias, self.layer.stride, self.layer.padding, self.layer.dilation,
                            self.layer.groups)
        return F.linear(x, wq, self.layer.bias)

    def finish_calibration(self):
        self.calibrating = False
        scale = max(self.hi - self.lo, 1e-8) / self.aq
        self.a_scale.fill_(scale)
        self.a_zero.fill_(int(min(max(round(-self.lo / scale), 0), self.aq)))


def wrap(module, wbits, abits, wrappers):
    for name, child in module._modules.items():
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            module._modules[name] = FakeQuant(child, wbits, abits)
            wrappers.append(module._modules[name])
        elif child is not None:
            wrap(child, wbits, abits, wrappers)


def kd_loss(student, teacher, labels, t=1.0, alpha=0.9):
    log_s = F.log_softmax(student / t, 1)
    log_t = F.log_softmax(teacher / t, 1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1).mean()
    return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(student, labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20", choices=sorted(zoo.MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    teacher = zoo.build(args.model)
    teacher.load_state_dict(torch.load(os.path.join(ROOT, "models", f"{args.model}_fmnist.pt"), map_location="cpu"))
    teacher.eval()
    student = copy.deepcopy(teacher)
    fold_batchnorm(student)
    wrappers = []
    wrap(student, args.wbits, args.abits, wrappers)

    images, labels = fmnist.load_split("train")
    n = args.batch * (args.steps + 2)
    x_all = torch.from_numpy(fmnist.to_input(images[:n]))
    y_all = torch.from_numpy(labels[:n]).long()
    with torch.no_grad():
        student.eval()
        student(x_all[:256])
    for w in wrappers:
        w.finish_calibration()
    student.train()
    for m in student.modules():  # BatchNorm is folded; keep any remaining in eval like autoprec
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    with torch.inference_mode():
        cache = torch.cat([teacher(x_all[i:i + 256]) for i in range(0, n, 256)])
    cache = cache.clone()
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def run(cached):
        def step(i):
            x = x_all[i * args.batch:(i + 1) * args.batch]
            y = y_all[i * args.batch:(i + 1) * args.batch]
            if cached:
                t = cache[i * args.batch:(i + 1) * args.batch]
            else:
                with torch.no_grad():
                    t = teacher(x)
            loss = kd_loss(student(x), t, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step(0)
        step(1)
        start = time.perf_counter()
        for i in range(2, args.steps + 2):
            step(i)
        return args.steps * args.batch / (time.perf_counter() - start)

    cached = run(True)
    uncached = run(False)
    print(json.dumps({"engine": "pytorch-eager", "model": args.model, "threads": args.threads, "batch": args.batch,
                      "steps": args.steps, "precision": f"W{args.wbits}A{args.abits}",
                      "cached_images_per_second": cached, "uncached_images_per_second": uncached}))


if __name__ == "__main__":
    main()
