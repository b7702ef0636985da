"""Fashion-MNIST loading from the gzip-compressed IDX files."""

import gzip
import os

import numpy as np

DEFAULT_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# IDX element type codes -> numpy dtypes (big-endian where it matters).
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = bytearray(f.read())
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if ndim else 1
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    if offset + count * dtype.itemsize != len(data):
        raise ValueError(f"{path}: size does not match header")
    return arr.reshape(tuple(int(d) for d in dims))


def load_split(split, data_dir=DEFAULT_DIR):
    """Return (images uint8 [N,28,28], labels int64 [N]) for 'train' or 'test'."""
    img_name, lbl_name = _FILES[split]
    images = read_idx(os.path.join(data_dir, img_name))
    labels = read_idx(os.path.join(data_dir, lbl_name)).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError("image/label count mismatch")
    return images, labels


def to_input(images):
    """uint8 [N,28,28] -> float32 [N,1,28,28] scaled to [0,1] (no mean/std)."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]
