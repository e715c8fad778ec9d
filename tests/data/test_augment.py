"""Tests for sukiyaki.data.augment: the original's compat case, crop/flip properties, seeds."""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.data.augment import augment, load_mean, normalize_params

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CASE = SHARED / "compat" / "sukiyaki2-layers" / "data_augmentation"


@pytest.fixture
def case():
    if not CASE.is_dir():
        pytest.skip(f"compat corpus absent: {CASE}")
    return {k: np.load(CASE / f"{k}.npy") for k in ("bottom", "mean", "top")}


def test_compat_exact(case):
    # the original's spec: out_shape [6, 7], scale 0.5, no random crop/flip, single input
    params = {"out_shape": [6, 7], "scale": 0.5, "random_crop": False, "random_flip": False,
              "input_klass": "single", "mean": case["mean"]}
    top = augment(case["bottom"], params)
    assert top.dtype == np.float32 and top.shape == case["top"].shape == (6, 7, 2, 3)
    assert np.array_equal(top, case["top"])
    # train=False ignores random settings: same centre crop
    rnd = dict(params, random_crop=True, random_flip=True)
    assert np.array_equal(augment(case["bottom"], rnd, rng=0, train=False), case["top"])


def test_compat_random_pattern(case):
    # the original's second spec: bottom - mean = n*10 + c*3 + y*2 + x, so any crop/flip keeps
    # a row step of 2, a column step of +-1 and a channel step of 3
    params = {"out_shape": [6, 7], "scale": 1.0, "random_crop": True, "random_flip": True,
              "mean": case["mean"]}
    for seed in range(20):
        top = augment(case["bottom"], params, rng=seed)
        assert np.allclose(np.diff(top, axis=0), 2, atol=1e-4)
        assert np.allclose(np.abs(np.diff(top, axis=1)), 1, atol=1e-4)
        assert np.allclose(np.diff(top, axis=2), 3, atol=1e-4)
        # top-left value n*10 + 2*t + x: window top t in 0..4, first column x in 0..8
        corner = top[0, 0, 0, :] - 10 * np.arange(3)
        assert np.all((corner > -1e-4) & (corner < 16 + 1e-4))


def _positions(batch, out, flipped):
    """Find (top, left) of out in batch (single image, c=1) or None."""
    h, w = batch.shape[:2]
    oh, ow = out.shape[:2]
    src = batch[:, :, 0]
    want = out[:, ::-1, 0] if flipped else out[:, :, 0]
    return [(t, l) for t in range(h - oh + 1) for l in range(w - ow + 1)
            if np.array_equal(src[t:t + oh, l:l + ow], want)]


def test_random_crop_is_subwindow_and_covers_range():
    rng = np.random.default_rng(0)
    x = rng.permutation(10 * 12).astype(np.float32).reshape(10, 12, 1, 1)  # unique values
    x = np.repeat(x, 200, axis=3)
    out = augment(x, {"out_shape": [4, 5], "random_crop": True}, rng=7)
    seen = set()
    for i in range(out.shape[3]):
        pos = _positions(x[:, :, :, i], out[:, :, :, i], flipped=False)
        assert len(pos) == 1
        seen.add(pos[0])
    # uniform over all 7 * 8 positions, ends included
    assert {t for t, _ in seen} == set(range(7)) and {l for _, l in seen} == set(range(8))


def test_flip_reverses_columns():
    x = np.arange(5 * 6 * 2 * 64, dtype=np.float32).reshape(5, 6, 2, 64)
    plain = augment(x, {"out_shape": [3, 4]})
    flipped = augment(x, {"out_shape": [3, 4], "random_flip": True}, rng=3)
    n_flip = 0
    for i in range(64):
        if np.array_equal(flipped[:, :, :, i], plain[:, ::-1, :, i]):
            n_flip += 1
        else:
            assert np.array_equal(flipped[:, :, :, i], plain[:, :, :, i])
    assert 16 < n_flip < 48  # probability 1/2


def test_mean_is_cropped_and_flipped_with_image():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (8, 9, 3, 30), dtype=np.uint8)
    mean = rng.random((8, 9, 3)).astype(np.float32) * 100
    p = {"out_shape": [5, 5], "scale": 1 / 255, "mean": mean, "random_crop": True,
         "random_flip": True, "input_klass": "uint8"}
    out = augment(x, p, rng=11)
    # same rng, no mean: the difference is exactly the mean seen through the same windows
    p0 = dict(p, mean=None, scale=1.0)
    raw = augment(x, p0, rng=11)
    pm = dict(p0, mean=None, input_klass="single")
    mwin = augment(np.repeat(mean[:, :, :, None], 30, axis=3), pm, rng=11)
    expect = ((raw - mwin).astype(np.float64) * (1 / 255)).astype(np.float32)
    assert np.array_equal(out, expect)


def test_seed_determinism():
    x = np.random.default_rng(0).random((16, 16, 3, 10)).astype(np.float32)
    p = {"out_shape": [12, 12], "random_crop": True, "random_flip": True}
    a = augment(x, p, rng=5)
    assert np.array_equal(a, augment(x, p, rng=5))
    assert np.array_equal(a, augment(x, p, rng=np.random.default_rng(5)))
    assert not np.array_equal(a, augment(x, p, rng=6))


def test_uint8_center_and_layout():
    x = np.random.default_rng(1).integers(0, 256, (7, 8, 1, 2), dtype=np.uint8)
    out = augment(x, {"out_shape": [4, 4], "scale": 0.00390625, "input_klass": "uint8"})
    assert out.flags.f_contiguous and out.dtype == np.float32
    # centre: top (7-4)//2 = 1, left (8-4)//2 = 2
    assert np.array_equal(out, x[1:5, 2:6].astype(np.float32) / 256)


def test_mean_forms(tmp_path):
    chw = np.random.default_rng(0).random((3, 6, 7)).astype(np.float32)
    np.save(tmp_path / "mean.npy", chw)
    m = load_mean(tmp_path / "mean.npy", "chw")
    assert m.shape == (6, 7, 3) and np.array_equal(m[:, :, 1], chw[1])
    x = np.ones((6, 7, 3, 2), np.float32)
    a = augment(x, {"out_shape": [6, 7], "mean": str(tmp_path / "mean.npy"), "mean_order": "chw"})
    assert np.allclose(a[:, :, :, 0], 1 - m)
    per_channel = augment(x, {"out_shape": [2, 2], "mean": [[[0.5, 1, 2]]]})
    assert np.array_equal(per_channel[0, 0, :, 0], [0.5, 0, -1])
    p = normalize_params({"out_shape": [2, 2], "mean": chw, "mean_order": "chw"})
    assert normalize_params(p)["mean"].shape == (6, 7, 3)  # idempotent


@pytest.mark.parametrize("params,x,pattern", [
    ({"out_shape": [6, 7]}, np.zeros((5, 7, 1, 1), np.float32), "larger than the input"),
    ({"out_shape": [2, 2]}, np.zeros((5, 7, 1, 1), np.uint8), "input_klass 'single'"),
    ({"out_shape": [2, 2], "input_klass": "uint8"}, np.zeros((4, 4), np.float32), "uint8"),
    ({"out_shape": [2]}, np.zeros((4, 4), np.float32), "out_shape"),
    ({"scale": 1.0}, np.zeros((4, 4), np.float32), "out_shape"),
    ({"out_shape": [2, 2], "sclae": 1}, np.zeros((4, 4), np.float32), "unknown"),
    ({"out_shape": [2, 2], "input_klass": "double"}, np.zeros((4, 4)), "input_klass"),
    ({"out_shape": [2, 2], "mean": np.zeros((3, 3, 1))}, np.zeros((4, 4), np.float32), "mean"),
])
def test_errors(params, x, pattern):
    with pytest.raises(ValueError, match=pattern):
        augment(x, params)


@pytest.mark.parametrize("params,pattern", [
    ({"out_shape": 28}, "out_shape must be"),
    ({"out_shape": [28, 28], "scale": [1, 2]}, "scale must be a finite number"),
    ({"out_shape": [28, 28], "scale": float("nan")}, "scale must be a finite number"),
    ({"out_shape": [28, 28], "scale": "3"}, "scale must be a finite number"),
    ({"out_shape": [28, 28], "input_klass": []}, "input_klass must be"),
    ({"out_shape": [28, 28], "mean": "/nonexistent/mean.npy"}, "cannot read the mean file"),
])
def test_bad_parameter_types_are_value_errors(params, pattern):
    from sukiyaki.data.augment import normalize_params

    with pytest.raises(ValueError, match=pattern):
        normalize_params(params)
