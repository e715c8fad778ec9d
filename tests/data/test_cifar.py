"""Tests for sukiyaki.data.cifar on tiny synthetic batch files."""

import numpy as np
import pytest

from sukiyaki.data.cifar import RECORD_BYTES, load_cifar10, read_cifar10_batch


def make_batch(labels, seed=0):
    """Return (bytes, images (n, c, row, col)) of a synthetic CIFAR-10 binary batch."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (len(labels), 3, 32, 32)).astype(np.uint8)
    recs = [bytes([lab]) + imgs[i].tobytes() for i, lab in enumerate(labels)]
    return b"".join(recs), imgs


def test_layout_and_orientation():
    raw, imgs = make_batch([3, 9, 0])
    x, t = read_cifar10_batch(raw)
    assert x.shape == (32, 32, 3, 3) and x.dtype == np.uint8 and x.flags.f_contiguous
    assert t.shape == (1, 3) and t.dtype == np.int32 and t.tolist() == [[3, 9, 0]]
    # record: red plane then green then blue, each 32 rows of 32: x[row, col, c, i]
    assert np.array_equal(x[:, :, :, 1], imgs[1].transpose(1, 2, 0))
    assert x[0, 1, 0, 0] == raw[1 + 1]                    # red, row 0, col 1
    assert x[1, 0, 2, 0] == raw[1 + 2 * 1024 + 32]        # blue, row 1, col 0


def test_bad_length_names_file(tmp_path):
    p = tmp_path / "test_batch.bin"
    raw, _ = make_batch([1, 2])
    p.write_bytes(raw[:-5])
    with pytest.raises(ValueError, match=f"test_batch.bin.*{2 * RECORD_BYTES - 5}.*3073"):
        read_cifar10_batch(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="test_batch.bin"):
        read_cifar10_batch(p)


def test_bad_label_names_record(tmp_path):
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(make_batch([1, 2, 10, 4])[0])
    with pytest.raises(ValueError, match="data_batch_1.bin.*record 2 has label 10"):
        read_cifar10_batch(p)


def test_load_train_and_test(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    all_labels = []
    for k in range(1, 6):
        labels = [(k + i) % 10 for i in range(k)]
        all_labels += labels
        (folder / f"data_batch_{k}.bin").write_bytes(make_batch(labels, seed=k)[0])
    raw, imgs = make_batch([7, 8], seed=9)
    (folder / "test_batch.bin").write_bytes(raw)
    x, t = load_cifar10(tmp_path, "train")  # parent folder works too
    assert x.shape == (32, 32, 3, 15) and x.flags.f_contiguous
    assert t.tolist() == [all_labels]
    first5 = make_batch([5, 6, 7, 8, 9], seed=5)[1]
    assert np.array_equal(x[:, :, :, 10:], first5.transpose(2, 3, 1, 0))
    xt, tt = load_cifar10(folder, "test")
    assert xt.shape == (32, 32, 3, 2) and tt.tolist() == [[7, 8]]
    assert np.array_equal(xt, imgs.transpose(2, 3, 1, 0))


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "val")
