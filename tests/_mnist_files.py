"""Small MNIST-format data sets the tests write themselves (never the real data)."""

from __future__ import annotations

import gzip
import hashlib
import pickle

import numpy as np

from meanfield.datasets import mnist


def arrays(n_train=600, n_test=200, seed=0) -> dict:
    """uint8 images (n, 784) of ten learnable classes (a bright 7x7 block per class on a
    noisy background) and their labels."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 5)
            x[i, 4 + 10 * r:11 + 10 * r, 1 + 5 * c:6 + 5 * c] = 250
        out[f"{split}_images"] = x.reshape(n, 784)
        out[f"{split}_labels"] = y
    return out


def write_idx_dir(directory, data=None, gz=False):
    """The four IDX files of ``data`` (default :func:`arrays`) in ``directory``."""
    data = arrays() if data is None else data
    directory.mkdir(parents=True, exist_ok=True)
    for name, file in mnist.IDX_NAMES.items():
        a = data[name]
        if name.endswith("images"):
            a = a.reshape(len(a), 28, 28)
        mnist.write_idx(directory / (file + (".gz" if gz else "")), a)
    return directory


def pickle_bytes(data=None) -> bytes:
    """The classic mnist.pkl.gz layout: ((x, y), (x, y), (x, y)), pixels k/256 in float32."""
    data = arrays() if data is None else data
    xtr, ytr = data["train_images"], data["train_labels"]
    cut = len(xtr) * 5 // 6
    f = lambda x: (x.astype(np.float32) / 256).astype(np.float32)  # noqa: E731
    obj = ((f(xtr[:cut]), ytr[:cut].astype(np.int64)), (f(xtr[cut:]), ytr[cut:].astype(np.int64)),
           (f(data["test_images"]), data["test_labels"].astype(np.int64)))
    return gzip.compress(pickle.dumps(obj, protocol=4))  # 2 would pickle bytes through _codecs.encode


def pin(monkeypatch, data=None):
    """Make ``data`` the pinned MNIST (sizes, label counts, sha256), so that the verified
    paths accept it."""
    data = arrays() if data is None else data
    monkeypatch.setattr(mnist, "SIZES", {"train": len(data["train_images"]), "test": len(data["test_images"])})
    monkeypatch.setattr(mnist, "TRAIN_LABEL_COUNTS",
                        tuple(int(c) for c in np.bincount(data["train_labels"], minlength=10)))
    monkeypatch.setattr(mnist, "TEST_LABEL_COUNTS",
                        tuple(int(c) for c in np.bincount(data["test_labels"], minlength=10)))
    monkeypatch.setattr(mnist, "CONTENT_SHA256",
                        {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in data.items()})
    return data
