"""Image data: real MNIST files, small files written in the real formats, downloads from a local server."""
import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffusion_lite.data import datasets as data
from diffusion_lite.data import download
from diffusion_lite.data.datasets import load_dataset
from diffusion_lite.data.download import DatasetNotFoundError, DownloadError

# the real MNIST test files: in $DL_DATA_DIR/mnist/ when set, else in ../shared/data/mnist/ beside the project
SHARED = Path(os.environ.get("DL_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


# ---- files in the real formats ------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file: 00 00 08 <ndim>, big-endian uint32 dims, uint8 values."""
    assert array.dtype == np.uint8
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.tobytes()


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def tiny_idx_split(rng, n=5):
    """Gzipped IDX images (n, 28, 28) and labels (n,) as {official name: bytes}, plus the arrays."""
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 3, 4], images[0, 0, 0] = 255, 0  # both ends of the range
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    files = {"t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
             "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels))}
    return files, images, labels


class Py2Pickler(pickle._Pickler):
    """Writes every string as a Python 2 `str` (BINSTRING), as in the official CIFAR-10 batches."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj, numpy1_names=False) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    blob = buf.getvalue()
    if numpy1_names:  # numpy 1.x (which wrote the official files) lived at numpy.core
        blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert (b"numpy.core.multiarray" in blob) == numpy1_names
    return blob


def cifar_tar(batches: dict) -> bytes:
    """cifar-10-python.tar.gz holding cifar-10-batches-py/<member> = pickled bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member, blob in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def cifar_batch(pixels: np.ndarray, labels: list, numpy1_names=False) -> bytes:
    """One pickled batch dict with the official keys (Python 2 byte-string keys)."""
    return py2_pickle({b"batch_label": b"testing batch", b"labels": labels, b"data": pixels,
                       b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}, numpy1_names)


def use_files(monkeypatch, root: Path, name: str, files: dict) -> None:
    """Put files in <root>/<name>/ and make the checksum table expect exactly them."""
    (root / name).mkdir(parents=True, exist_ok=True)
    for fname, blob in files.items():
        (root / name / fname).write_bytes(blob)
    monkeypatch.setitem(data.CHECKSUMS, name, {f: sha256(b) for f, b in files.items()})


# ---- the real MNIST test split -------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason=f"official MNIST test files not found in {SHARED / 'mnist'}")
def test_real_mnist_test_split(monkeypatch):
    # the official MD5s (yann.lecun.com) identify the files; our table must accept them by SHA-256
    official_md5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    for fname, md5 in official_md5.items():
        assert download.file_digest(SHARED / "mnist" / fname, "md5") == md5
        assert download.verify(SHARED / "mnist" / fname, data.CHECKSUMS["mnist"][fname])
    monkeypatch.setenv("DL_DATA_DIR", str(SHARED))
    ds = load_dataset("mnist", split="test", download=False)
    assert ds.images.shape == (10_000, 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.images.min() == -1 and ds.images.max() == 1
    assert ds.labels.dtype == torch.int64 and len(ds) == 10_000 and ds.classes == tuple("0123456789")
    # the published class counts of the MNIST test set (digits 0..9)
    counts = torch.bincount(ds.labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # white digits on black: most pixels are background (-1), ink covers well under a quarter
    assert (ds.images == -1).float().mean() > 0.75


# ---- Fashion-MNIST (IDX) and CIFAR-10 (pickled batches in a tarball) ----------------------------
def test_fashion_mnist_idx_files(tmp_path, monkeypatch):
    files, images, labels = tiny_idx_split(np.random.default_rng(0))
    use_files(monkeypatch, tmp_path, "fashion_mnist", files)
    ds = load_dataset("fashion_mnist", split="test", root=tmp_path, download=False)
    assert ds.images.shape == (5, 1, 28, 28) and ds.images.dtype == torch.float32
    torch.testing.assert_close(ds.images[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    assert ds.images[0, 0, 3, 4] == 1 and ds.images[0, 0, 0, 0] == -1
    assert ds.labels.tolist() == labels.tolist() and ds.labels.dtype == torch.int64
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10
    assert (ds.name, ds.split) == ("fashion_mnist", "test")


def test_dl_data_dir_is_used_when_root_is_not_given(tmp_path, monkeypatch):
    files, images, _ = tiny_idx_split(np.random.default_rng(1))
    use_files(monkeypatch, tmp_path, "fashion_mnist", files)
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path))
    assert len(load_dataset("fashion_mnist", split="test", download=False)) == len(images)
    assert data.data_root() == tmp_path and data.data_root(tmp_path / "x") == tmp_path / "x"


@pytest.mark.parametrize("blob, message", [
    (b"\x00\x00\x08", "not an IDX file"),
    (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "not an IDX file"),  # bad magic
    (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "not an IDX file"),  # unknown type code
    (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "truncated"),  # second dim missing
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab", "3 bytes of data"),  # data too short
])
def test_read_idx_rejects_malformed_files(blob, message):
    with pytest.raises(ValueError, match=message):
        data.read_idx(blob)


def test_read_idx_other_dtypes_are_big_endian():
    values = np.array([[1, -2], [300, 4]], dtype=">i2")
    blob = struct.pack(">BBBB", 0, 0, 0x0B, 2) + struct.pack(">2I", 2, 2) + values.tobytes()
    np.testing.assert_array_equal(data.read_idx(blob), [[1, -2], [300, 4]])


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_batches_and_channel_order(tmp_path, monkeypatch, split):
    rng = np.random.default_rng(2)
    members = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    pixels = rng.integers(0, 256, size=(3 * len(members), 3072), dtype=np.uint8)  # 3 images per batch
    labels = [int(v) for v in rng.integers(0, 10, size=len(pixels))]
    # a known pixel: row 5, column 7 of image 1 is pure orange (R=255, G=128, B=0)
    row, col = 5, 7
    for channel, value in enumerate((255, 128, 0)):
        pixels[1, channel * 1024 + row * 32 + col] = value  # R plane, G plane, B plane, row-major
    blobs = {m: cifar_batch(pixels[3 * i:3 * i + 3], labels[3 * i:3 * i + 3], numpy1_names=(i % 2 == 0))
             for i, m in enumerate(members)}  # numpy 1.x and 2.x module names
    use_files(monkeypatch, tmp_path, "cifar10", {"cifar-10-python.tar.gz": cifar_tar(blobs)})
    ds = load_dataset("cifar10", split=split, root=tmp_path, download=False)
    assert ds.images.shape == (3 * len(members), 3, 32, 32) and ds.images.dtype == torch.float32
    torch.testing.assert_close(ds.images[1, :, row, col], torch.tensor([1.0, 128 / 127.5 - 1, -1.0]))
    expected = torch.from_numpy(pixels).float().reshape(-1, 3, 32, 32) / 127.5 - 1
    torch.testing.assert_close(ds.images, expected)
    assert ds.labels.tolist() == labels and ds.classes[0] == "airplane"


def _write_marker(path):
    Path(path).write_text("this ran")
    return {}


class CodeRunningPayload:
    def __init__(self, how, marker):
        self.how, self.marker = how, str(marker)

    def __reduce__(self):
        if self.how == "function":
            return (_write_marker, (self.marker,))
        return (exec, (f"open({self.marker!r}, 'w').write('this ran')",))


@pytest.mark.parametrize("how", ["function", "exec"])
def test_cifar_pickle_that_runs_code_is_rejected(tmp_path, monkeypatch, how):
    payload = {b"data": CodeRunningPayload(how, tmp_path / "marker"), b"labels": [0]}
    probe = tmp_path / "probe"  # the payload is real: plain pickle runs it
    pickle.loads(pickle.dumps(CodeRunningPayload(how, probe)))
    assert probe.read_text() == "this ran"
    use_files(monkeypatch, tmp_path, "cifar10",
              {"cifar-10-python.tar.gz": cifar_tar({"test_batch": pickle.dumps(payload, protocol=2)})})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_dataset("cifar10", split="test", root=tmp_path, download=False)
    assert not (tmp_path / "marker").exists()


# ---- downloads from a real local HTTP server -----------------------------------------------------
@pytest.fixture
def server():
    """HTTP server on 127.0.0.1: files[name] = (body, declared Content-Length); requests logged."""
    files, requests = {}, []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.lstrip("/")
            requests.append(name)
            if name not in files:
                self.send_error(404)
                return
            body, declared = files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)  # when declared > len(body) the connection closes early
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}/", files=files, requests=requests)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on a port nothing listens on: connecting fails at once, like being offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def serve_fashion(server, monkeypatch, seed=3):
    files, images, labels = tiny_idx_split(np.random.default_rng(seed))
    for fname, blob in files.items():
        server.files[fname] = (blob, len(blob))
    monkeypatch.setitem(data.CHECKSUMS, "fashion_mnist", {f: sha256(b) for f, b in files.items()})
    return files, images


def test_download_verifies_and_writes_files(tmp_path, monkeypatch, server, closed_port_url):
    files, images = serve_fashion(server, monkeypatch)
    # the first mirror is unreachable: the loader falls back to the second
    ds = load_dataset("fashion_mnist", split="test", root=tmp_path, progress=False,
                      mirrors=[closed_port_url, server.url])
    torch.testing.assert_close(ds.images[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    assert sorted(os.listdir(tmp_path / "fashion_mnist")) == sorted(files)  # no temporary files
    for fname, blob in files.items():
        assert (tmp_path / "fashion_mnist" / fname).read_bytes() == blob
    # second call: files are present and valid, nothing is fetched
    load_dataset("fashion_mnist", split="test", root=tmp_path, progress=False, mirrors=[server.url])
    assert sorted(server.requests) == sorted(files)


def test_checksum_mismatch_leaves_no_file(tmp_path, monkeypatch, server):
    files, _ = serve_fashion(server, monkeypatch)
    body = files["t10k-images-idx3-ubyte.gz"]
    server.files["t10k-images-idx3-ubyte.gz"] = (body[:-1] + bytes([body[-1] ^ 1]), len(body))  # one bit
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        load_dataset("fashion_mnist", split="test", root=tmp_path, progress=False, mirrors=[server.url])
    assert os.listdir(tmp_path / "fashion_mnist") == []


def test_truncated_body_leaves_no_file(tmp_path, monkeypatch, server):
    files, _ = serve_fashion(server, monkeypatch)
    body = files["t10k-images-idx3-ubyte.gz"]
    server.files["t10k-images-idx3-ubyte.gz"] = (body[: len(body) // 2], len(body))  # closes early
    with pytest.raises(DownloadError, match=f"closed after {len(body) // 2} of {len(body)} bytes"):
        load_dataset("fashion_mnist", split="test", root=tmp_path, progress=False, mirrors=[server.url])
    assert os.listdir(tmp_path / "fashion_mnist") == []


def test_corrupt_existing_file_is_detected_and_fetched_again(tmp_path, monkeypatch, server):
    files, images = serve_fashion(server, monkeypatch)
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(files["t10k-labels-idx1-ubyte.gz"])  # good
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not the file")  # corrupt
    with pytest.raises(DatasetNotFoundError, match=r"t10k-images-idx3-ubyte.gz  \(fails its checksum\)"):
        load_dataset("fashion_mnist", split="test", root=tmp_path, download=False)
    ds = load_dataset("fashion_mnist", split="test", root=tmp_path, progress=False, mirrors=[server.url])
    assert server.requests == ["t10k-images-idx3-ubyte.gz"]  # only the corrupt one is fetched
    assert (folder / "t10k-images-idx3-ubyte.gz").read_bytes() == files["t10k-images-idx3-ubyte.gz"]
    assert len(ds) == len(images) and sorted(os.listdir(folder)) == sorted(files)


@pytest.mark.parametrize("allow_download", [True, False])
def test_offline_without_files_names_files_and_folder(tmp_path, closed_port_url, allow_download):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", split="train", root=tmp_path, download=allow_download, progress=False,
                     mirrors=[closed_port_url])
    message = str(info.value)
    for fname in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert str(tmp_path / "mnist" / fname) in message
    assert "DL_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "mnist").exists() or os.listdir(tmp_path / "mnist") == []


def test_download_keeps_no_partial_file_when_interrupted(tmp_path, monkeypatch, server):
    files, _ = serve_fashion(server, monkeypatch)
    name = "t10k-images-idx3-ubyte.gz"

    class Interrupt(BaseException):  # like Ctrl-C in the middle of the transfer
        pass

    def interrupted_update(self, k):
        raise Interrupt

    monkeypatch.setattr("tqdm.auto.tqdm.update", interrupted_update)
    with pytest.raises(Interrupt):
        download.download(server.url + name, tmp_path / name, sha256(files[name]), progress=False)
    assert os.listdir(tmp_path) == []


# ---- arguments ------------------------------------------------------------------------------------
def test_rejects_unknown_name_and_split():
    with pytest.raises(ValueError, match=r"name must be one of \('mnist', 'fashion_mnist', 'cifar10'\)"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\), got 'val'"):
        load_dataset("mnist", split="val")


def test_subset_is_seeded_and_distinct(tmp_path, monkeypatch):
    files, _, _ = tiny_idx_split(np.random.default_rng(4), n=20)
    use_files(monkeypatch, tmp_path, "fashion_mnist", files)
    ds = load_dataset("fashion_mnist", split="test", root=tmp_path, download=False)
    a = ds.subset(8, torch.Generator().manual_seed(0))
    b = ds.subset(8, torch.Generator().manual_seed(0))
    assert len(a) == 8 and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    rows = {tuple(x.flatten().tolist()) for x in a.images}
    assert len(rows) == 8  # without replacement (the 20 random images are distinct)
    assert all(any(torch.equal(x, y) for y in ds.images) for x in a.images)
    with pytest.raises(ValueError, match="n must be in"):
        ds.subset(21)
