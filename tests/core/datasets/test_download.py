"""Downloads are checksum-verified and atomic: a failed one leaves nothing behind."""

import hashlib
import urllib.request

import numpy as np
import pytest

from robustlearn.datasets import builtin, download, load

from .synthetic import idx_bytes, mnist_like, write_idx

PAYLOAD = b"robustlearn test payload " * 1000


def _serve(monkeypatch, source, fail_after=None):
    """Make ``urllib.request.urlopen`` serve the local file ``source``; record requested URLs."""
    requested = []

    class Response:
        def __init__(self):
            self._fh = open(source, "rb")
            self._reads = 0

        def read(self, size=-1):
            self._reads += 1
            if fail_after is not None and self._reads > fail_after:
                raise ConnectionResetError("connection reset by peer")
            return self._fh.read(min(size, 4096) if size and size > 0 else -1)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def urlopen(url, timeout=None):
        requested.append(url)
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "served.bin"
    path.write_bytes(PAYLOAD)
    return path


def test_download_verifies_and_writes(monkeypatch, tmp_path, source):
    requested = _serve(monkeypatch, source)
    destination = tmp_path / "out" / "nested" / "file.bin"
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download.download("https://example.org/file.bin", destination, md5) == destination
    assert destination.read_bytes() == PAYLOAD
    assert requested == ["https://example.org/file.bin"]
    assert sorted(p.name for p in destination.parent.iterdir()) == ["file.bin"]
    assert download.file_md5(destination) == md5


def test_checksum_mismatch_leaves_nothing(monkeypatch, tmp_path, source):
    _serve(monkeypatch, source)
    destination = tmp_path / "out" / "file.bin"
    with pytest.raises(OSError, match="checksum mismatch .* expected 0{32}"):
        download.download("https://example.org/file.bin", destination, "0" * 32)
    assert list(destination.parent.iterdir()) == []


def test_interrupted_download_keeps_the_old_file(monkeypatch, tmp_path, source):
    _serve(monkeypatch, source, fail_after=2)
    destination = tmp_path / "file.bin"
    destination.write_bytes(b"previous version")
    with pytest.raises(ConnectionResetError):
        download.download("https://example.org/file.bin", destination,
                          hashlib.md5(PAYLOAD).hexdigest())
    assert destination.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "served.bin"]


def test_load_with_download_fetches_missing_mnist_files(monkeypatch, tmp_path):
    """``download=True`` fetches each missing file from the upstream URL with its md5."""
    served = {}
    images, labels = mnist_like(20)
    for name, array in (("t10k-images-idx3-ubyte.gz", images),
                        ("t10k-labels-idx1-ubyte.gz", labels)):
        served[name] = write_idx(tmp_path / "served" / name, array)
    md5s = {name: download.file_md5(path) for name, path in served.items()}
    base = builtin._MNIST_SOURCES["mnist"][0]
    monkeypatch.setitem(builtin._MNIST_SOURCES, "mnist", (base, md5s))
    requested = []

    def fake_fetch(url, destination, md5):
        requested.append(url)
        served_path = served[url.rsplit("/", 1)[1]]
        monkeypatch.setattr(urllib.request, "urlopen",
                            lambda u, timeout=None: open(served_path, "rb"))
        return download.download(url, destination, md5)

    monkeypatch.setattr(builtin, "fetch", fake_fetch)
    data_dir = tmp_path / "data"
    X, y = load("mnist", "test", data_dir=data_dir, download=True)
    assert sorted(requested) == sorted(base + name for name in served)
    assert X.shape == (20, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_allclose(X[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    # second call reads the files now on disk, without downloading
    requested.clear()
    load("mnist", "test", data_dir=data_dir, download=True)
    assert requested == []


def test_real_checksums_are_md5_hex():
    for _, md5s in builtin._MNIST_SOURCES.values():
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in md5s.values())
    assert len(builtin._CIFAR_MD5) == 32
    assert idx_bytes(np.zeros(3, dtype=np.uint8))[:4] == b"\x00\x00\x08\x01"
