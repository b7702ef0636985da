"""The zoo's tiny ViT (models/zoo.py VitTiny: 2 blocks, width 32, 4 heads, 7x7
patches of 28x28 images) with random weights, exported at opset 17
(LayerNormalization, MatMul attention, Softmax, GELU through Erf), and 200
random labelled images: enough to check that every step of autoprec runs on
a transformer, not to measure accuracy (models/vit_tiny_fmnist.onnx is the
trained one). Usage: make_tiny_vit.py OUT_DIR (writes vit.onnx, x.npy, y.npy)."""
import os, sys
import numpy as np, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import zoo  # noqa: E402
os.chdir(sys.argv[1])
torch.manual_seed(0)
m = zoo.VitTiny().eval()
torch.onnx.export(m, torch.zeros(1, 1, 28, 28), "vit.onnx", opset_version=17, input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
np.save("x.npy", (np.random.RandomState(0).rand(200, 28, 28) * 255).astype(np.uint8))
np.save("y.npy", np.random.RandomState(1).randint(0, 10, 200).astype(np.int64))
print("ok")
