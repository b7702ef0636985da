#!/usr/bin/python3
"""A character-level language model on text Debian ships (the GPL-3 licence text
of base-files, present on every Debian system), and its data as .npy.

  char_lm.py data OUT_DIR   writes OUT_DIR/{train,test}_{x,y}.npy: x int64 [N, 32]
                            token ids of 32 characters, y int64 [N] the next one
                            (train: the first 90% of the text, test: the rest)
  char_lm.py train          trains the model (seeded) and writes
                            models/char_mlp_lm.onnx, .pt and its manifest entry

The model (Bengio-style MLP): Embedding(V, 24) of each context character,
concatenated, Linear(32·24 → 256), ReLU, Linear(256 → V) next-character logits.
"""

import hashlib
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = "/usr/share/common-licenses/GPL-3"
CONTEXT = 32
EMBED = 16
HIDDEN = 128


def corpus():
    text = open(TEXT, encoding="utf-8").read()
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text], dtype=np.int64)
    return ids, vocab


def windows(ids):
    n = len(ids) - CONTEXT
    x = np.lib.stride_tricks.sliding_window_view(ids[:-1], CONTEXT)[:n].copy()
    y = ids[CONTEXT:].copy()
    return x, y


def split():
    ids, vocab = corpus()
    cut = int(0.9 * len(ids))
    train, test = windows(ids[:cut]), windows(ids[cut:])
    return train, test, vocab


def write_data(out):
    os.makedirs(out, exist_ok=True)
    (tx, ty), (vx, vy), vocab = split()
    for name, a in [("train_x", tx), ("train_y", ty), ("test_x", vx), ("test_y", vy)]:
        np.save(os.path.join(out, name + ".npy"), a)
    print(f"{out}: {len(tx)} training and {len(vx)} test windows, vocabulary {len(vocab)}")


def train(seed=0, epochs=5):
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    (tx, ty), (vx, vy), vocab = split()
    v = len(vocab)

    class CharMlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(v, EMBED)
            self.fc1 = nn.Linear(CONTEXT * EMBED, HIDDEN)
            self.fc2 = nn.Linear(HIDDEN, v)

        def forward(self, tokens):
            e = self.embed(tokens).flatten(1)
            return self.fc2(torch.relu(self.fc1(e)))

    model = CharMlp()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, y = torch.from_numpy(tx), torch.from_numpy(ty)
    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    steps = epochs * ((len(x) + 255) // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 256):
            idx = perm[i:i + 256]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(torch.from_numpy(vx)).argmax(1).numpy() == vy).mean()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test next-character top-1 {acc:.4f}", flush=True)
    seconds = time.time() - start
    onnx_path = os.path.join(HERE, "char_mlp_lm.onnx")
    torch.save(model.state_dict(), os.path.join(HERE, "char_mlp_lm.pt"))
    torch.onnx.export(model, torch.zeros(1, CONTEXT, dtype=torch.long), onnx_path, input_names=["tokens"],
                      output_names=["logits"], dynamic_axes={"tokens": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    import onnx
    ops = sorted({n.op_type for n in onnx.load(onnx_path).graph.node})
    manifest_path = os.path.join(HERE, "manifest.json")
    manifest = json.load(open(manifest_path))
    manifest["char_mlp_lm"] = {
        "file": "char_mlp_lm.onnx",
        "state_dict": "char_mlp_lm.pt",
        "architecture": f"character MLP language model: Embedding({v}, {EMBED}) per context character, "
                        f"Linear({CONTEXT}*{EMBED}->{HIDDEN}), ReLU, Linear({HIDDEN}->{v})",
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_name": "tokens",
        "output_name": "logits",
        "input_shape": ["N", CONTEXT],
        "input_dtype": "int64",
        "output_shape": ["N", v],
        "dataset": f"{TEXT} (base-files), 90%/10% split, `models/char_lm.py data DIR` writes it",
        "fp32_test_top1": round(float(acc), 4),
        "metric": "next-character top-1",
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(seconds),
        "train_threads": 1,
        "opset": 13,
        "onnx_ops": ops,
        "training_command": "/usr/bin/python3 models/char_lm.py train",
        "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
    }
    json.dump(dict(sorted(manifest.items())), open(manifest_path, "w"), indent=2)
    open(manifest_path, "a").write("\n")
    print(f"wrote {onnx_path}: test next-character top-1 {acc:.4f} in {seconds:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "data":
        write_data(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "train":
        train()
    else:
        sys.exit(__doc__)
