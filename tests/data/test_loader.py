"""Tests for sukiyaki.data.loader.BatchIterator: coverage, determinism, exact resume."""

import json

import numpy as np
import pytest

from sukiyaki.data.loader import BatchIterator


def data(n=23):
    x = np.asfortranarray(np.arange(2 * 3 * 1 * n, dtype=np.float32).reshape(2, 3, 1, n))
    t = np.arange(n, dtype=np.int32).reshape(1, n)
    return x, t


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_every_sample_once_per_epoch(shuffle, drop_last):
    x, t = data()
    it = BatchIterator(x, t, 5, shuffle=shuffle, seed=3, drop_last=drop_last)
    for epoch in range(3):
        seen = []
        batches = list(it)
        assert len(batches) == len(it) == (4 if drop_last else 5)
        for xb, tb in batches:
            assert xb.shape[:3] == (2, 3, 1) and tb.shape == (1, xb.shape[3])
            assert xb.flags.f_contiguous
            assert np.array_equal(xb, x[:, :, :, tb[0]])  # images and labels stay paired
            seen += tb[0].tolist()
        if drop_last:
            assert len(seen) == 20 and len(set(seen)) == 20
        else:
            assert sorted(seen) == list(range(23))
        if not shuffle:
            assert seen == list(range(len(seen)))
        assert it.epoch == epoch + 1 and it.position == 0


def test_epochs_differ_and_seed_determinism():
    x, t = data()
    a = BatchIterator(x, t, 4, seed=1)
    b = BatchIterator(x, t, 4, seed=1)
    c = BatchIterator(x, t, 4, seed=2)
    ea = [tb[0].tolist() for _, tb in a]
    assert ea == [tb[0].tolist() for _, tb in b]
    assert ea != [tb[0].tolist() for _, tb in c]
    assert ea != [tb[0].tolist() for _, tb in a]  # next epoch, new order


def test_resume_gives_identical_batches():
    x, t = data(50)
    ref = BatchIterator(x, t, 7, seed=9)
    for _ in range(10):  # into the second epoch (8 batches per epoch)
        ref.next_batch()
    state = json.loads(json.dumps(ref.state_dict()))
    assert state["epoch"] == 1 and state["position"] == 14
    expected = [ref.next_batch() for _ in range(20)]
    fresh = BatchIterator(x, t, 3, seed=0)  # settings come from the state
    fresh.load_state_dict(state)
    for xe, te in expected:
        xb, tb = fresh.next_batch()
        assert np.array_equal(xb, xe) and np.array_equal(tb, te)


def test_resume_mid_for_loop():
    x, t = data(30)
    it = BatchIterator(x, t, 4)
    loop = iter(it)
    next(loop), next(loop)
    state = it.state_dict()
    rest = [tb[0].tolist() for _, tb in loop]
    other = BatchIterator(x, t, 4)
    other.load_state_dict(state)
    assert [tb[0].tolist() for _, tb in other] == rest


def test_state_is_plain_json():
    it = BatchIterator(*data(), 4, seed=123)
    it.next_batch()
    s = it.state_dict()
    assert json.loads(json.dumps(s)) == s
    assert all(isinstance(v, (int, bool, list, type(None))) for v in s.values())


def test_errors():
    x, t = data(10)
    with pytest.raises(ValueError, match="labels"):
        BatchIterator(x, t[:, :9], 2)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, t, 0)
    with pytest.raises(ValueError, match="seed"):
        BatchIterator(x, t, 2, seed=-1)
    with pytest.raises(ValueError, match="no batch"):
        BatchIterator(x, t, 11, drop_last=True)
    it = BatchIterator(x, t, 2)
    with pytest.raises(ValueError, match="10 samples"):
        BatchIterator(*data(11), 2).load_state_dict(it.state_dict())
    bad = dict(it.state_dict(), position=10)
    with pytest.raises(ValueError, match="position"):
        it.load_state_dict(bad)


def test_labels_1d_and_none():
    x, _ = data(6)
    xb, tb = BatchIterator(x, np.arange(6), 4, shuffle=False).next_batch()
    assert tb.tolist() == [[0, 1, 2, 3]]
    xb, tb = BatchIterator(x, None, 4).next_batch()
    assert tb is None and xb.shape[3] == 4


def test_bundled_mnist_batches():
    from sukiyaki.data.mnist import load_mnist
    x, t = load_mnist(split="test")
    it = BatchIterator(x, t, 256, seed=0)
    xb, tb = it.next_batch()
    assert xb.shape == (28, 28, 1, 256) and xb.dtype == np.uint8 and tb.dtype == np.int32
