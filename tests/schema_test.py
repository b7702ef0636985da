#!/usr/bin/python3
"""Schema-walking test: every key of every configuration format, set to the
invalid value its schema names (`autoprec schema --json`), must be refused
before any work: exit code 2, one stderr line "autoprec: error: ..." that
names the key or the value, nothing on stdout and no output directory.
A key added to a schema is walked without touching this file.

Usage: schema_test.py AUTOPREC_BINARY SOURCE_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

BIN, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "small_cnn_fmnist.onnx")
work = tempfile.mkdtemp(prefix="autoprec-schema-")
np.save(f"{work}/x.npy", np.zeros((40, 28, 28), np.uint8))
np.save(f"{work}/y.npy", np.arange(40, dtype=np.int64) % 10)
DATA = f"npy:{work}/x.npy,{work}/y.npy"
open(f"{work}/w4a8.yaml", "w").write("default: {weight_bits: 4, activation_bits: 8}\n")

passed, failed = 0, 0


def bad(message):
    global failed
    failed += 1
    print("FAIL:", message)


class Raw:
    """A YAML value written as is (the schema's invalid text)."""

    def __init__(self, text):
        self.text = text


def flow(value):
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def document(base, path, invalid, context):
    doc = json.loads(json.dumps(base))
    parts = path.split(".")
    node = doc
    for i, part in enumerate(parts[:-1]):
        name = part
        if part == "*":  # any name: the default op entry, a glob over every layer, or an exact name
            name = {"precisions": "default", "layers": "*" if i == 1 else "x"}.get(parts[i - 1], "x")
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    leaf = parts[-1]
    if context:
        for item in context.strip("{} ").split(","):
            k, v = (s.strip() for s in item.split(":", 1))
            node[k] = Raw(v)
    node[leaf] = Raw(invalid)
    return "\n".join(f"{json.dumps(k)}: {flow(v)}" for k, v in doc.items()) + "\n"


def expect_refused(name, argv, out_dir, key, invalid):
    global passed
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    lines = result.stderr.splitlines()
    why = None
    if result.returncode != 2:
        why = f"exit code {result.returncode}, expected 2: {result.stderr[-400:]}"
    elif len(lines) != 1 or not lines[0].startswith("autoprec: error: "):
        why = f"{len(lines)} stderr lines, expected one error line: {result.stderr[-400:]}"
    elif result.stdout:
        why = f"wrote to stdout: {result.stdout[:200]}"
    elif os.path.exists(out_dir):
        why = f"left the output directory {out_dir} behind"
    else:
        leaf = key.split(".")[-1]
        # The key's name, or a piece of the refused value (a path, a name) of two characters or more.
        mentioned = [leaf] + [t for t in re.split(r"[\s,:\[\]{}'\"]+", invalid) if len(t) >= 2]
        if not any(t in lines[0] for t in mentioned):
            why = f"the error names neither {leaf!r} nor {invalid!r}: {lines[0]}"
    if why:
        bad(f"{name}: {why}")
    else:
        passed += 1
        print(f"ok: {name} -> {lines[0]}")


schema = json.loads(subprocess.run([BIN, "schema", "--json"], capture_output=True, text=True, check=True).stdout)
for fmt_name in ("run", "precision", "target"):
    if not schema.get(fmt_name):
        bad(f"schema {fmt_name} lists no keys")

run_base = {"model": MODEL, "data": DATA, "agent": "uniform", "deploy": False,
            "short_finetune": {"steps": 1}, "final_finetune": {"epochs": 0}}
for i, key in enumerate(schema["run"]):
    out = f"{work}/run{i}"
    base = dict(run_base, out=out)
    path = f"{work}/run{i}.yaml"
    open(path, "w").write(document(base, key["path"], key["invalid"], key["context"]))
    expect_refused(f"run {key['path']}: {key['invalid']}", [BIN, "search", "--config", path], out, key["path"], key["invalid"])

for i, key in enumerate(schema["precision"]):
    out = f"{work}/precision{i}"
    path = f"{work}/precision{i}.yaml"
    open(path, "w").write(document({}, key["path"], key["invalid"], key["context"]))
    expect_refused(f"precision {key['path']}: {key['invalid']}",
                   [BIN, "quantize", MODEL, "--data", DATA, "--precision", path, "--out", out], out, key["path"],
                   key["invalid"])

for i, key in enumerate(schema["target"]):
    out = f"{work}/target{i}"
    path = f"{work}/target{i}.yaml"
    open(path, "w").write(document({"name": "t"}, key["path"], key["invalid"], key["context"]))
    expect_refused(f"target {key['path']}: {key['invalid']}",
                   [BIN, "search", "--model", MODEL, "--data", DATA, "--agent", "uniform", "--target", path, "--out", out],
                   out, key["path"], key["invalid"])

# Flags are options too: refused before any work, with no output directory.
flag_cases = [
    ("search --episodes 0", ["search", "--model", MODEL, "--data", DATA, "--episodes", "0"], "episodes", "0"),
    ("search --agent haq", ["search", "--model", MODEL, "--data", DATA, "--agent", "haq"], "agent", "haq"),
    ("search --constraint", ["search", "--model", MODEL, "--data", DATA, "--constraint", "weight_memory<=64"],
     "weight_memory", "64"),
    ("search --target", ["search", "--model", MODEL, "--data", DATA, "--target", "tpu"], "target", "tpu"),
    ("finetune --validation", ["finetune", MODEL, "--data", DATA, "--precision", f"{work}/w4a8.yaml", "--steps", "1", "--validation", "100"],
     "validation", "100"),
    ("finetune --steps and --epochs", ["finetune", MODEL, "--data", DATA, "--precision", f"{work}/w4a8.yaml", "--steps", "1", "--epochs", "1"],
     "steps", "--epochs"),
    ("quantize --format", ["quantize", MODEL, "--data", DATA, "--precision", f"{work}/w4a8.yaml", "--format", "fp8"],
     "format", "fp8"),
]
for i, (name, args, key, value) in enumerate(flag_cases):
    out = f"{work}/flag{i}"
    expect_refused(name, [BIN] + args + ["--out", out], out, key, value)

# The reference in docs/ is the schema's own output, so it cannot drift from the readers.
markdown = subprocess.run([BIN, "schema", "--markdown"], capture_output=True, text=True, check=True).stdout
docs = open(os.path.join(SRC, "docs", "configuration.md")).read()
if markdown.strip() in docs:
    passed += 1
    print("ok: docs/configuration.md holds `autoprec schema --markdown`")
else:
    bad("docs/configuration.md differs from `autoprec schema --markdown`; regenerate its key tables")

subprocess.run(["rm", "-rf", work])
print(f"schema test: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
