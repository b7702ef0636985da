#!/usr/bin/env python3
"""A transformer-style feed-forward stack for the MatMulNBits benchmark:
BLOCKS x (Linear(D, 4D) -> GELU -> Linear(4D, D) + residual) on x [M, D],
seeded weights, exported to ONNX (opset 13; Linear on a 2-D input exports as
Gemm). Writes OUT.onnx and OUT.npy (512 random inputs, for calibration).

  make_ffn.py OUT [--dim 512] [--blocks 4] [--seed 0]
"""
import argparse

import numpy as np
import torch


class Ffn(torch.nn.Module):
    def __init__(self, dim, blocks):
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim))
            for _ in range(blocks))

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    model = Ffn(a.dim, a.blocks).eval()
    x = torch.randn(512, a.dim)
    torch.onnx.export(model, x[:1], a.out + ".onnx", input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
    np.save(a.out + ".npy", x.numpy())


if __name__ == "__main__":
    main()
