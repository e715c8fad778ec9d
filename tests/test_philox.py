"""Philox4x32-10 on numpy: known answers, a scalar reference, and the batch properties."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.backends.numpy import philox
from sukiyaki.backends.numpy.philox import philox4x32, philox_bits, philox_uniform, uniform_from_bits

KAT = Path(__file__).resolve().parents[1].parent / "shared" / "compat" / "philox4x32-10.json"
MASK = 0xFFFFFFFF


def reference(counter, key):
    """Philox4x32-10 on plain Python ints, written from the paper (independent of the module)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return c0, c1, c2, c3


def batch_reference(key, iteration, ids, per_sample):
    """philox_bits as the brief defines it, element by element through the scalar reference."""
    out = np.empty((per_sample, len(ids)), np.uint32)
    for j, sid in enumerate(ids):
        for e in range(per_sample):
            out[e, j] = reference((e // 4, int(sid), iteration, 0), key)[e % 4]
    return out


@pytest.fixture(scope="module")
def kat():
    if not KAT.is_file():
        pytest.skip(f"known-answer file not found: {KAT} (the shared folder is missing)")
    return json.loads(KAT.read_text())


@pytest.mark.parametrize("case", range(3))
def test_known_answers(kat, case):
    c = kat["cases"][case]
    counter = [np.array([int(w, 16)], np.uint32) for w in c["counter"]]
    key = [int(w, 16) for w in c["key"]]
    expected = [int(w, 16) for w in c["output"]]
    assert [int(w[0]) for w in philox4x32(*counter, *key)] == expected
    assert list(reference([int(w[0]) for w in counter], key)) == expected


def test_known_answer_through_the_batch_api(kat):
    c = kat["cases"][0]  # zero counter, zero key: block 0 of sample 0 at iteration 0
    bits = philox_bits((0, 0), 0, np.array([0]), 4)
    assert [int(b) for b in bits[:, 0]] == [int(w, 16) for w in c["output"]]


def test_constants_match_the_known_answer_file(kat):
    consts = {k: int(v, 16) for k, v in kat["constants"].items()}
    assert consts == {"M0": philox.M0, "M1": philox.M1, "W0": philox.W0, "W1": philox.W1}


def test_matches_scalar_reference_on_random_counters():
    rng = np.random.default_rng(1234)
    for _ in range(30):  # 30 keys x 10 counters
        key = [int(k) for k in rng.integers(0, 2**32, 2, dtype=np.uint64)]
        ctr = rng.integers(0, 2**32, (4, 10), dtype=np.uint64).astype(np.uint32)
        got = np.stack(philox4x32(*ctr, *key))
        for i in range(10):
            assert tuple(int(w) for w in got[:, i]) == reference([int(w) for w in ctr[:, i]], key)


def test_broadcasting_and_scalars():
    c0 = np.arange(3, dtype=np.uint32)[:, None]
    c1 = np.array([7, 8, 9, 2**32 - 1], np.uint32)[None, :]
    out = philox4x32(c0, c1, 5, np.uint32(6), 11, 12)
    assert all(w.shape == (3, 4) and w.dtype == np.uint32 for w in out)
    for i in range(3):
        for j in range(4):
            assert tuple(int(w[i, j]) for w in out) == reference((i, int(c1[0, j]), 5, 6), (11, 12))
    scalar = philox4x32(np.uint32(1), 2, 3, 4, 5, 6)
    assert all(w.shape == () for w in scalar)
    assert tuple(int(w) for w in scalar) == reference((1, 2, 3, 4), (5, 6))


def test_no_warnings_under_strict_error_state():
    top = np.full(1000, MASK, np.uint32)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        philox4x32(top, top, top, top, MASK, MASK)
        philox_uniform((MASK, MASK), MASK, np.array([0, MASK], np.uint64), 37)
        philox_bits((MASK, MASK), MASK, np.array([MASK]), 5)


def test_uniform_properties():
    u = philox_uniform((3, 4), 17, np.arange(100, 164), 4096)
    assert u.shape == (4096, 64) and u.dtype == np.float32
    assert u.flags.f_contiguous
    assert u.min() >= 0.0 and u.max() < 1.0
    scaled = u.astype(np.float64) * 2**24
    assert np.array_equal(scaled, np.floor(scaled))  # exact multiples of 2**-24
    bits = philox_bits((3, 4), 17, np.arange(100, 164), 4096)
    assert bits.flags.f_contiguous and bits.dtype == np.uint32
    assert np.array_equal(u, uniform_from_bits(bits))
    assert np.array_equal(u, (bits >> 8).astype(np.float64) / 2**24)


def test_uniform_from_bits_exact_values():
    u = uniform_from_bits(np.array([0, 255, 256, 0xFFFFFFFF], np.uint32))
    assert u.dtype == np.float32
    assert u.tolist() == [0.0, 0.0, 2.0**-24, 1.0 - 2.0**-24]


def test_column_independent_of_batch_composition_and_order():
    a = philox_uniform((9, 8), 7, np.array([5, 9, 2]), 37)
    b = philox_uniform((9, 8), 7, np.array([2, 5]), 37)
    assert np.array_equal(a[:, 0], b[:, 1])
    assert np.array_equal(a[:, 2], b[:, 0])
    alone = philox_uniform((9, 8), 7, np.array([9]), 37)
    assert np.array_equal(a[:, 1], alone[:, 0])


def test_iteration_key_and_sample_change_the_values():
    base = philox_bits((1, 2), 3, np.array([4]), 64)
    for other in (philox_bits((1, 2), 4, np.array([4]), 64),  # iteration
                  philox_bits((2, 2), 3, np.array([4]), 64),  # key word 0
                  philox_bits((1, 3), 3, np.array([4]), 64),  # key word 1
                  philox_bits((1, 2), 3, np.array([5]), 64)):  # sample
        assert np.mean(base != other) > 0.99
    assert len(np.unique(base)) == 64  # the words of one sample differ too


@pytest.mark.parametrize("per_sample", [1, 2, 3, 4, 5, 7, 9])
def test_per_sample_not_a_multiple_of_four(per_sample):
    ids = np.array([0, 3, MASK], np.uint64)
    bits = philox_bits((5, 6), 2, ids, per_sample)
    assert bits.shape == (per_sample, 3) and bits.flags.f_contiguous
    assert np.array_equal(bits, batch_reference((5, 6), 2, ids, per_sample))
    assert np.array_equal(bits, philox_bits((5, 6), 2, ids, 12)[:per_sample])  # a prefix
    u = philox_uniform((5, 6), 2, ids, per_sample)
    assert u.shape == (per_sample, 3) and u.flags.f_contiguous


@pytest.mark.parametrize("per_sample, n", [(0, 3), (0, 0), (5, 0)])
def test_empty_results(per_sample, n):
    for fn, dtype in ((philox_uniform, np.float32), (philox_bits, np.uint32)):
        out = fn((1, 1), 0, np.arange(n), per_sample)
        assert out.shape == (per_sample, n) and out.dtype == dtype


@pytest.mark.parametrize("chunk, n, per_sample", [(64, 3, 4 * 150 + 3),  # several block steps a sample
                                                  (64, 50, 9),  # few blocks: full counters, row steps
                                                  (64, 5, 4 * 40 + 1),  # 40 blocks, one sample a step
                                                  (8192, 2, 4 * 8192 + 6)])  # the real step size
def test_chunked_generation_matches_one_shot(monkeypatch, chunk, n, per_sample):
    monkeypatch.setattr(philox, "_CHUNK", chunk)
    ids = np.arange(1000, 1000 + 7 * n, 7)
    e = np.arange(per_sample)
    words = philox4x32((e // 4).astype(np.uint32)[:, None], ids.astype(np.uint32)[None, :], 11, 0, 21, 22)
    expected = np.choose((e % 4)[:, None], words)
    assert np.array_equal(philox_bits((21, 22), 11, ids, per_sample), expected)
    assert np.array_equal(philox_uniform((21, 22), 11, ids, per_sample), uniform_from_bits(expected))


def test_mean_of_a_million_uniforms():
    u = philox_uniform((2024, 7), 1, np.arange(1000), 1000)
    assert u.size == 10**6
    assert abs(float(u.mean(dtype=np.float64)) - 0.5) < 0.002


@pytest.mark.parametrize("kwargs, match", [
    (dict(key=(-1, 0)), r"key\[0\].*-1"),
    (dict(key=(0, 2**32)), r"key\[1\].*4294967296"),
    (dict(key=(1, 2, 3)), r"key.*\(1, 2, 3\)"),
    (dict(key=5), r"key.*5"),
    (dict(key=(1.5, 0)), r"key\[0\].*1\.5"),
    (dict(iteration=-1), r"iteration.*-1"),
    (dict(iteration=2**32), r"iteration.*4294967296"),
    (dict(sample_ids=np.array([3, -2])), r"sample_ids.*-2"),
    (dict(sample_ids=np.array([2**32], np.int64)), r"sample_ids.*4294967296"),
    (dict(sample_ids=np.zeros((2, 2), int)), r"sample_ids.*\(2, 2\)"),
    (dict(sample_ids=np.array([0.5])), r"sample_ids.*float64"),
    (dict(per_sample=-1), r"per_sample.*-1"),
    (dict(per_sample=2.5), r"per_sample.*2\.5"),
])
@pytest.mark.parametrize("fn", [philox_uniform, philox_bits])
def test_bad_arguments_name_the_argument(fn, kwargs, match):
    args = dict(key=(1, 2), iteration=0, sample_ids=np.arange(3), per_sample=4) | kwargs
    with pytest.raises(ValueError, match=match):
        fn(**args)


@pytest.mark.parametrize("args, match", [
    ((0, 0, 0, 0, -1, 0), r"k0.*-1"),
    ((0, 0, 0, 0, 0, 2**32), r"k1.*4294967296"),
    ((np.array([-1]), 0, 0, 0, 0, 0), r"c0.*-1"),
    ((0, 0, 0, np.array([2**32]), 0, 0), r"c3.*4294967296"),
    ((0, np.array([0.5]), 0, 0, 0, 0), r"c1.*float64"),
])
def test_philox4x32_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        philox4x32(*args)
