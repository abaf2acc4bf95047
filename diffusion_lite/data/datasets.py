"""Image data sets (MNIST, Fashion-MNIST, CIFAR-10) read from their original files into [-1, 1] tensors.

    ds = load_dataset("mnist", split="test")      # ImageDataset: images (N, 1, 28, 28), labels (N,)

Files live in <root>/<name>/ under their official names, e.g. <root>/mnist/t10k-images-idx3-ubyte.gz,
where root is the `root` argument, else the DL_DATA_DIR environment variable, else
~/.cache/diffusion_lite/data. Missing files are downloaded on first use and verified by SHA-256
(see download.py). MNIST and Fashion-MNIST are gzipped IDX files; CIFAR-10 is the "python version"
tarball of pickled batches, read without extracting it and with an unpickler that can only build
numpy arrays - a pickle can run arbitrary code, a restricted one cannot.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int
from .download import ensure_files

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SPLITS = ("train", "test")
DEFAULT_ROOT = "~/.cache/diffusion_lite/data"

MIRRORS = {  # base URLs tried in order; a file's URL is <base>/<official file name>
    "mnist": ("https://storage.googleapis.com/cvdf-datasets/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

# SHA-256 of the official files, as published in TensorFlow Datasets' url_checksums (mnist.txt,
# fashion_mnist.txt) and in Keras' cifar10.py (TFDS uses the binary CIFAR tarball, not this one).
# The MNIST test files also match their official MD5s (9fb629c4..., ec29112d...).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}

CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images and labels of one split, ready for training."""
    images: Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: Tensor  # (N,) int64 class indices into `classes`
    classes: tuple[str, ...]  # class names, index = label
    name: str  # "mnist", "fashion_mnist" or "cifar10"
    split: str  # "train" or "test"

    def __post_init__(self):  # shapes and dtypes only: a NaN scan of 50k images would cost each load
        for field, kind in (("images", "a float"), ("labels", "an integer")):
            value = getattr(self, field)
            bad_dtype = not isinstance(value, Tensor) or value.is_floating_point() != (field == "images") \
                or value.dtype == torch.bool
            if bad_dtype:
                got = value.dtype if isinstance(value, Tensor) else type(value).__name__
                raise TypeError(f"{field} must be {kind} tensor, got {got}")
        if self.images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},) to match images, "
                             f"got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, images={tuple(self.images.shape)}, "
                f"classes={len(self.classes)})")

    def subset(self, n: int, generator: torch.Generator | None = None) -> "ImageDataset":
        """n distinct examples drawn uniformly at random (without replacement)."""
        n = check_int("n", n, low=1, high=len(self))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        idx = torch.randperm(len(self), generator=generator)[:n]
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])


# ---- MNIST / Fashion-MNIST: IDX files ----------------------------------------------------------
# An IDX file: magic = two zero bytes, a type code, the number of dims; then each dim as a
# big-endian uint32; then the values, big-endian, row-major.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a numpy array, validating the header."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{source}: not an IDX file (magic bytes {data[:4].hex() or 'missing'}; expected "
                         f"00 00 <type code in {sorted(IDX_TYPES)}> <ndim>)")
    ndim, dtype = data[3], np.dtype(IDX_TYPES[data[2]])
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{source}: IDX header is truncated or has no dimensions (ndim={ndim})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{source}: header says shape {shape} ({expected} bytes of data), "
                         f"file holds {len(data) - header} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return read_idx(f.read(), source=str(path))


def _load_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28) uint8
    labels = _read_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz")  # (N,) uint8
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{folder}: expected uint8 images (N, H, W) and N labels, got images "
                         f"{images.dtype} {images.shape} and labels {labels.dtype} {labels.shape}")
    return images[:, None], labels  # (N, 1, H, W), (N,)


# ---- CIFAR-10: pickled batches in a tarball ----------------------------------------------------
def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Builds dicts, lists, numbers, bytes and numpy arrays; refuses every other class or function."""
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,  # how numpy 1.x pickles arrays
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,  # ... and numpy 2.x
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return self.ALLOWED[(module, name)]()


def _load_cifar_batches(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    members = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:  # members are read in memory, never extracted
        for member in members:
            f = tar.extractfile(f"cifar-10-batches-py/{member}")
            if f is None:
                raise ValueError(f"{path}: cifar-10-batches-py/{member} is not a regular file")
            try:  # batches were pickled by Python 2: keys are byte strings
                batch = RestrictedUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
            except pickle.UnpicklingError as err:
                raise pickle.UnpicklingError(f"{path}: {member}: {err}") from err
            data, y = batch.get(b"data"), np.asarray(batch.get(b"labels"))
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                    or data.shape[1] != 3 * 32 * 32 or y.shape != (len(data),):
                raise ValueError(f"{path}: {member} should hold b'data' uint8 (N, 3072) and N b'labels'")
            images.append(data.reshape(-1, 3, 32, 32))  # each row: R plane, G plane, B plane, row-major
            labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _files(name: str, split: str) -> dict[str, str]:
    if name == "cifar10":
        return dict(CHECKSUMS[name])
    prefix = "train" if split == "train" else "t10k"
    return {f: c for f, c in CHECKSUMS[name].items() if f.startswith(prefix)}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: `root` if given, else $DL_DATA_DIR, else ~/.cache/diffusion_lite/data."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None, got {type(root).__name__}")
    return Path(root or os.environ.get("DL_DATA_DIR") or DEFAULT_ROOT).expanduser()


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True, progress: bool = True,
                 mirrors: Sequence[str] | None = None) -> ImageDataset:
    """Load one split of an image data set as float32 images in [-1, 1] (x / 127.5 - 1).

    name: "mnist", "fashion_mnist" or "cifar10"; split: "train" or "test". Files are read from
    <root>/<name>/ and downloaded there first when missing or corrupt (download=True), from
    `mirrors` (base URLs) or else MIRRORS[name]. Offline with no files: DatasetNotFoundError
    naming the files and the folder to put them in.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    folder = data_root(root) / name
    paths = ensure_files(folder, _files(name, split), MIRRORS[name] if mirrors is None else mirrors,
                         download_missing=download, progress=progress)
    if name == "cifar10":
        images, labels = _load_cifar_batches(paths["cifar-10-python.tar.gz"], split)
    else:
        images, labels = _load_idx_pair(folder, split)
    classes = CLASSES[name]
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"{folder}: labels must lie in [0, {len(classes) - 1}], "
                         f"got {labels.min()}..{labels.max()}")
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)  # (N, C, H, W) in [-1, 1]
    return ImageDataset(images=x, labels=torch.from_numpy(labels.astype(np.int64)),
                        classes=classes, name=name, split=split)
