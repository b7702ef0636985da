"""A tiny ViT (2 blocks, width 32, 4 heads, 7x7 patches of 28x28 images) with
random weights, exported at opset 17 (LayerNormalization, MatMul attention,
Softmax, GELU through Erf), and 200 random labelled images: enough to check
that every step of autoprec runs on a transformer, not to measure accuracy.
Usage: make_tiny_vit.py OUT_DIR (writes vit.onnx, x.npy, y.npy)."""
import os, sys
import torch, torch.nn as nn, numpy as np
os.chdir(sys.argv[1])
torch.manual_seed(0)
class Block(nn.Module):
    def __init__(s, d=32, h=4):
        super().__init__(); s.n1 = nn.LayerNorm(d); s.qkv = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d)
        s.n2 = nn.LayerNorm(d); s.fc1 = nn.Linear(d, 64); s.fc2 = nn.Linear(64, d); s.h = h
    def forward(s, x):
        B, T, D = x.shape
        q, k, v = s.qkv(s.n1(x)).reshape(B, T, 3, s.h, D // s.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) / (float(D // s.h) ** 0.5)
        x = x + s.proj((a.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D))
        return x + s.fc2(nn.functional.gelu(s.fc1(s.n2(x))))
class ViT(nn.Module):
    def __init__(s):
        super().__init__(); s.patch = nn.Conv2d(1, 32, 7, 7); s.pos = nn.Parameter(torch.zeros(1, 16, 32))
        s.blocks = nn.Sequential(Block(), Block()); s.norm = nn.LayerNorm(32); s.head = nn.Linear(32, 10)
    def forward(s, x):
        x = s.patch(x).flatten(2).transpose(1, 2) + s.pos
        return s.head(s.norm(s.blocks(x)).mean(1))
m = ViT().eval()
torch.onnx.export(m, torch.zeros(1, 1, 28, 28), "vit.onnx", opset_version=17, input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
np.save("x.npy", (np.random.RandomState(0).rand(200, 28, 28) * 255).astype(np.uint8))
np.save("y.npy", np.random.RandomState(1).randint(0, 10, 200).astype(np.int64))
print("ok")
