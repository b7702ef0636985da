#!/usr/bin/python3
"""Generate ONNX parity fixtures (model, input, PyTorch output) for the C++ executor.

Usage: make_parity_models.py OUTDIR [--fold-bn] [--only NAME ...]

For each model writes OUTDIR/<name>.onnx (opset 13, 17 for the transformer; input "input", output
"output", dynamic batch), OUTDIR/<name>_input.npy and OUTDIR/<name>_output.npy
(float32, eager PyTorch output).  BatchNormalization nodes are kept in the
graph unless --fold-bn is given.
"""

import argparse
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision

OPSET = 13
BATCH = 2
IMAGE_SHAPE = (3, 64, 64)
SEQ_LEN = 16
EMBED_DIM = 64


class SelfAttention(nn.Module):
    """Multi-head self-attention with explicit q/k/v projections."""

    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x):
        # [N, T, D] -> [N, H, T, D/H]
        return x.reshape(-1, SEQ_LEN, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        q = self._split(self.q(x))
        k = self._split(self.k(x))
        v = self._split(self.v(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v)
        out = out.transpose(1, 2).reshape(-1, SEQ_LEN, self.heads * self.head_dim)
        return self.proj(out)


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (attention + GELU MLP)."""

    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio),
            nn.GELU(),
            nn.Linear(dim * mlp_ratio, dim),
        )

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """Encoder over [N, 16, 64] token vectors -> mean pool -> Linear to classes."""

    def __init__(self, dim=EMBED_DIM, heads=4, layers=2, num_classes=10):
        super().__init__()
        self.layers = nn.Sequential(*[EncoderLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.norm(self.layers(x))
        return self.head(x.mean(dim=1))


def randomize_norm_params(model, gen):
    """Give BatchNorm/LayerNorm layers non-trivial statistics and affine parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def build_models():
    """name -> (constructor, input shape without batch, opset).

    The transformer is exported at opset 17, where LayerNorm becomes one
    LayerNormalization node instead of a ReduceMean/Sub/Pow/Sqrt chain."""
    return {
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), IMAGE_SHAPE, OPSET),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), IMAGE_SHAPE, OPSET),
        "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), IMAGE_SHAPE, OPSET),
        "tiny_transformer": (TinyTransformer, (SEQ_LEN, EMBED_DIM), 17),
    }


def export(name, ctor, shape, opset, outdir, fold_bn):
    import onnx

    torch.manual_seed(0)
    model = ctor()
    randomize_norm_params(model, torch.Generator().manual_seed(1))
    model.eval()

    x = torch.randn((BATCH, *shape), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)

    path = os.path.join(outdir, name + ".onnx")
    training = torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE
    # PRESERVE with an eval-mode model keeps BatchNormalization nodes; the
    # exporter's constant-folding warning only concerns training-mode models.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    torch.onnx.export(
        model, x, path, opset_version=opset, input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True, training=training)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)

    np.save(os.path.join(outdir, name + "_input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(outdir, name + "_output.npy"), y.numpy().astype(np.float32))
    return path, sorted({n.op_type for n in proto.graph.node}), tuple(y.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--fold-bn", action="store_true",
                    help="let the exporter fold BatchNorm into Conv")
    ap.add_argument("--only", nargs="*", default=None, help="subset of models")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    models = build_models()
    names = args.only or list(models)
    for name in names:
        if name not in models:
            sys.exit(f"unknown model {name!r}; choose from {sorted(models)}")
    for name in names:
        ctor, shape, opset = models[name]
        t0 = time.time()
        path, ops, out_shape = export(name, ctor, shape, opset, args.outdir, args.fold_bn)
        print(f"wrote {path} input={[BATCH, *shape]} output={list(out_shape)} "
              f"({time.time() - t0:.1f}s)")
        print(f"  ops {name}: {' '.join(ops)}")


if __name__ == "__main__":
    main()
