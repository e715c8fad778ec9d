"""Tests for sukiyaki.data.mnist: bundled sample, IDX reader validation, folder loading."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.data.mnist import MNIST_FILES, load_mnist, read_idx

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def make_idx(arr, code=0x08):
    """Encode an array as IDX bytes (big-endian)."""
    dt = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.asarray(arr, dtype=dt).tobytes()


@pytest.mark.parametrize("split,n", [("train", 8000), ("test", 2000)])
def test_bundled_sample(split, n):
    x, t = load_mnist(split=split)
    assert x.shape == (28, 28, 1, n) and x.dtype == np.uint8
    assert x.flags.f_contiguous
    assert t.shape == (1, n) and t.dtype == np.int32
    assert t.min() == 0 and t.max() == 9
    counts = np.bincount(t[0], minlength=10)
    assert counts.min() > n * 0.07  # every digit well represented
    # MNIST pixel statistics: mean ~33/255, mostly background, ink reaches 255
    assert 25 < x.mean() < 40
    assert (x == 0).mean() > 0.7 and x.max() == 255
    # digits are centred: the border rows/cols carry almost no ink
    assert x[:2].mean() < 1 and x[:, :2].mean() < 1 and x[12:16, 12:16].mean() > 60


def test_bundled_matches_shared_copy():
    folder = SHARED / "data" / "mnist10k"
    if not folder.is_dir():
        pytest.skip(f"shared data folder absent: {folder}")
    x, t = load_mnist(folder, "test")
    xb, tb = load_mnist(None, "test")
    assert np.array_equal(x, xb) and np.array_equal(t, tb)


def test_orientation_rows_are_h():
    imgs = np.zeros((2, 3, 4), dtype=np.uint8)
    imgs[1, 0, 3] = 7  # image 1, row 0, col 3
    from sukiyaki.data.mnist import _to_blob
    x, t = _to_blob(imgs, np.array([4, 2], dtype=np.uint8), "x")
    assert x.shape == (3, 4, 1, 2) and x[0, 3, 0, 1] == 7 and t.tolist() == [[4, 2]]


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_read_idx_dtypes_roundtrip(code):
    arr = (np.arange(24).reshape(2, 3, 4) % 100).astype(np.float64)
    got = read_idx(make_idx(arr, code))
    assert got.shape == (2, 3, 4) and np.array_equal(got, arr)
    assert got.dtype.isnative


def test_gz_and_raw_equal(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    raw = make_idx(arr)
    # names lie on purpose: compression is detected by magic bytes, not by name
    (tmp_path / "a.gz").write_bytes(raw)
    (tmp_path / "b.idx").write_bytes(gzip.compress(raw))
    a, b = read_idx(tmp_path / "a.gz"), read_idx(str(tmp_path / "b.idx"))
    assert np.array_equal(a, arr) and np.array_equal(b, arr)
    with open(tmp_path / "b.idx", "rb") as f:
        assert np.array_equal(read_idx(f), arr)


def test_truncated_names_file_and_counts(tmp_path):
    p = tmp_path / "trunc-images-idx3-ubyte"
    p.write_bytes(make_idx(np.zeros((3, 4, 5), np.uint8))[:-7])
    with pytest.raises(ValueError) as e:
        read_idx(p)
    msg = str(e.value)
    assert str(p) in msg and "60" in msg and "53" in msg


def test_trailing_bytes_rejected(tmp_path):
    p = tmp_path / "long.idx"
    p.write_bytes(make_idx(np.zeros((3,), np.uint8)) + b"\0")
    with pytest.raises(ValueError, match="long.idx.*need 3 data bytes, got 4"):
        read_idx(p)


def test_truncated_gzip_names_file(tmp_path):
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(make_idx(np.zeros((100,), np.uint8)))[:-12])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(p)


@pytest.mark.parametrize("head,pattern", [
    (b"\x01\x00\x08\x01", "bad magic"),
    (b"\x00\x00\x07\x01", "unknown data type code 0x07"),
    (b"\x00\x00\x08\x00", "dimensions must be positive"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header needs 16 bytes"),
    (b"\x00\x00", "at least 4 header bytes"),
])
def test_bad_headers(tmp_path, head, pattern):
    p = tmp_path / "bad-file"
    p.write_bytes(head)
    with pytest.raises(ValueError, match=pattern) as e:
        read_idx(p)
    assert "bad-file" in str(e.value)


def test_wrong_dims_in_folder(tmp_path):
    img, lbl = MNIST_FILES["test"]
    (tmp_path / img).write_bytes(make_idx(np.zeros((4, 28 * 28), np.uint8)))  # 2-d images
    (tmp_path / (lbl + ".gz")).write_bytes(gzip.compress(make_idx(np.zeros(4, np.uint8))))
    with pytest.raises(ValueError, match=f"{img}.*3 dimensions"):
        load_mnist(tmp_path, "test")


def test_label_count_mismatch_and_range(tmp_path):
    img, lbl = MNIST_FILES["train"]
    (tmp_path / img).write_bytes(make_idx(np.zeros((4, 28, 28), np.uint8)))
    (tmp_path / lbl).write_bytes(make_idx(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="expected shape \\(4,\\)"):
        load_mnist(tmp_path, "train")
    (tmp_path / lbl).write_bytes(make_idx(np.array([0, 1, 12, 3], np.uint8)))
    with pytest.raises(ValueError, match="0..9"):
        load_mnist(tmp_path, "train")


def test_folder_gz_and_raw_mixed(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 6).astype(np.uint8)
    img, lbl = MNIST_FILES["train"]
    (tmp_path / (img + ".gz")).write_bytes(gzip.compress(make_idx(arr)))
    (tmp_path / lbl).write_bytes(make_idx(labels))
    x, t = load_mnist(str(tmp_path), "train")
    assert x.shape == (28, 28, 1, 6)
    assert np.array_equal(x[:, :, 0, :], arr.transpose(1, 2, 0))
    assert t.tolist() == [labels.tolist()]


def test_missing_files_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist(None, "valid")


def test_download_offline_is_clear(tmp_path):
    from sukiyaki.data.mnist import download_mnist
    # an unroutable local URL: fails fast without touching the network
    with pytest.raises(ConnectionError, match="cannot fetch.*offline"):
        download_mnist(tmp_path / "m", url="http://127.0.0.1:9/", timeout=2)
