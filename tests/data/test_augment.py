"""Tests for sukiyaki.data.augment: the original's compat case, crop/flip properties, seeds."""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.data.augment import augment, load_mean, normalize_params

from device_check import numpy_device_allclose  # noqa: E402  (tests/ is on sys.path under pytest)

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


# ---------------------------------------------------------------- the data_augmentation layer on the device
#
# The layer runs on the network's device and draws its crops and flips from Philox keyed by
# (seed, layer name) and counted by (iteration, sample id, element); augment() above is the host
# reference. Deterministic settings must agree with it bit for bit; random ones must give exact
# (possibly mirrored) windows of the input, the same on every backend and for a sample whatever
# batch it is in.


def aug_net(device, params, images, labels=None):
    """A data layer 'd' feeding a data_augmentation layer 'aug' (both phases), on device."""
    from sukiyaki.nn import Net

    defs = [{"name": "d", "type": "mnist_data", "inputs": ["batch"], "outputs": ["raw", "label"]},
            {"name": "aug", "type": "data_augmentation", "params": params, "inputs": ["raw"], "outputs": ["x"]}]
    n = images.shape[-1]
    labels = np.zeros((1, n), np.int32) if labels is None else labels
    return Net(defs, device=device, data_sources={"d": (images, labels)})


def run_aug(net, ids, phase="train", seed=0, iteration=0):
    """The augmented batch (host copy) for sample ids, and the Matrix it came in."""
    from sukiyaki.matrix import gather

    blobs, _ = net.forward({"batch": np.asarray(ids)}, phase, keep=["x"], seed=seed, iteration=iteration)
    m = blobs["x"]
    assert m.device == net.device and m.klass == "single"
    shape = tuple(net.schedules[phase].specs["x"].shape) + (len(ids),)  # (oh, ow, c, n), singletons kept
    return np.array(gather(m).to_numpy()).reshape(shape, order="F"), m


def test_layer_equals_the_host_reference_on_the_compat_case(device, case, tmp_path):
    np.save(tmp_path / "mean.npy", case["mean"])
    params = {"out_shape": [6, 7], "scale": 0.5, "random_crop": False, "random_flip": False,
              "input_klass": "single", "mean": str(tmp_path / "mean.npy")}
    n = case["bottom"].shape[3]
    net = aug_net(device, params, case["bottom"])
    for phase in ("train", "test"):
        out, _ = run_aug(net, range(n), phase)
        assert out.dtype == np.float32 and out.shape == case["top"].shape
        assert np.array_equal(out, case["top"]), phase
        assert np.array_equal(out, augment(case["bottom"], params))
    # the test phase ignores the random settings: the same centre crop
    rnd = aug_net(device, dict(params, random_crop=True, random_flip=True), case["bottom"])
    for seed in (0, 3):
        assert np.array_equal(run_aug(rnd, range(n), "test", seed=seed)[0], case["top"])


def test_layer_uint8_mean_and_scale_equal_the_host_reference(device):
    """MNIST-style input (uint8, scale 1/256) with a mean: bit for bit the host reference.

    With a scale that float32 cannot hold (1/255), augment() rounds the double product once
    (the original's arithmetic) while the layer multiplies by float32(scale): they may differ
    in the last bit, and by no more (see the report of this change)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (8, 9, 3, 20), dtype=np.uint8)
    mean = (rng.random((8, 9, 3)) * 100).astype(np.float32)
    for scale in (0.00390625, 1.0, 2.0):
        p = {"out_shape": [5, 6], "scale": scale, "mean": mean.tolist(), "input_klass": "uint8"}
        out, _ = run_aug(aug_net(device, p, x), range(20))
        assert np.array_equal(out, augment(x, p)), scale
    p = {"out_shape": [5, 6], "scale": 1 / 255, "mean": mean.tolist(), "input_klass": "uint8"}
    out, _ = run_aug(aug_net(device, p, x), range(20))
    ref = augment(x, p)
    ulps = np.abs(out.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1


def unique_images(h, w, c, n, seed=0):
    """float32 images whose values are all distinct (so a window is found from one value)."""
    vals = np.random.default_rng(seed).permutation(h * w * c * n).astype(np.float32)
    return np.asfortranarray(vals.reshape(h, w, c, n, order="F"))


def decode_windows(x, out, ids):
    """(top, left, flipped) per output sample, asserting each is exactly that window of its input."""
    oh, ow = out.shape[:2]
    found = []
    for j, s in enumerate(ids):
        (r,), (q,) = np.nonzero(x[:, :, 0, s] == out[0, 0, 0, j])
        hits = []
        for t, l, flip in ((r, q, False), (r, q - ow + 1, True)):
            if 0 <= l and l + ow <= x.shape[1] and t + oh <= x.shape[0]:
                window = x[t:t + oh, l:l + ow, :, s]
                if np.array_equal(out[:, :, :, j], window[:, ::-1] if flip else window):
                    hits.append((int(t), int(l), flip))
        assert len(hits) == 1, f"output sample {j} (id {s}) is no window of its input"
        found.append(hits[0])
    return found


@numpy_device_allclose(rtol=0, atol=0)
def test_random_crops_and_flips_are_exact_windows(device):
    """Every output sample is an exact window (mirrored or not) of its own input; corners are
    uniform over every position, both ends included, and about half the samples are mirrored.
    The decorator checks the same crops on every backend as on numpy."""
    n = 200
    x = unique_images(10, 12, 2, n)
    p = {"out_shape": [4, 5], "random_crop": True, "random_flip": True}
    net = aug_net(device, p, x)
    out, m = run_aug(net, range(n), seed=7, iteration=3)
    windows = decode_windows(x, out, range(n))
    assert {t for t, _, _ in windows} == set(range(7)) and {l for _, l, _ in windows} == set(range(8))
    assert 70 < sum(f for _, _, f in windows) < 130
    # crop only / flip only
    crops = decode_windows(x, run_aug(aug_net(device, dict(p, random_flip=False), x), range(n), seed=7)[0], range(n))
    assert not any(f for _, _, f in crops) and len({(t, l) for t, l, _ in crops}) > 40
    flips = decode_windows(x, run_aug(aug_net(device, dict(p, random_crop=False), x), range(n), seed=7)[0], range(n))
    assert {(t, l) for t, l, _ in flips} == {(3, 3)} and 70 < sum(f for _, _, f in flips) < 130
    return m, np.array(windows, dtype=np.int64)


@numpy_device_allclose(rtol=0, atol=0)
def test_a_sample_gets_the_same_window_in_any_batch(device):
    """The draws are keyed by the sample's id (through the data layer), not its place in the
    batch: any batch holding sample s crops and mirrors s alike at one (seed, iteration)."""
    n = 40
    x = unique_images(9, 11, 1, n, seed=1)
    net = aug_net(device, {"out_shape": [5, 6], "random_crop": True, "random_flip": True}, x)
    full, _ = run_aug(net, range(n), seed=5, iteration=9)
    ref = decode_windows(x, full, range(n))
    for ids in ([17], [3, 17, 39], [39, 38, 0, 17, 5], list(range(n))[::-1], [17, 17, 2]):
        out, _ = run_aug(net, ids, seed=5, iteration=9)
        for j, s in enumerate(ids):
            assert np.array_equal(out[:, :, :, j], full[:, :, :, s]), (ids, s)
    # another iteration or another seed draws again
    for kw in ({"seed": 5, "iteration": 10}, {"seed": 6, "iteration": 9}):
        other = decode_windows(x, run_aug(net, range(n), **kw)[0], range(n))
        assert sum(a != b for a, b in zip(ref, other)) > n // 2, kw
    return np.array(ref, dtype=np.int64)


def test_the_mean_is_cropped_and_mirrored_with_the_image_on_the_device(device, tmp_path):
    """Same layer name, seed, iteration and ids: same windows whatever the pixels. The windows
    found on unique values give the exact expected output of a uint8 batch with a mean."""
    rng = np.random.default_rng(2)
    n = 30
    x = rng.integers(0, 256, (8, 9, 3, n), dtype=np.uint8)
    mean = (rng.random((8, 9, 3)) * 100).astype(np.float32)
    np.save(tmp_path / "mean.npy", mean)
    p = {"out_shape": [5, 5], "scale": 0.00390625, "random_crop": True, "random_flip": True}
    probe = unique_images(8, 9, 3, n, seed=4)
    windows = decode_windows(probe, run_aug(aug_net(device, dict(p, scale=1.0), probe), range(n), seed=11,
                                            iteration=2)[0], range(n))
    assert len(set(windows)) > 10
    net = aug_net(device, dict(p, mean=str(tmp_path / "mean.npy"), input_klass="uint8"), x)
    out, _ = run_aug(net, range(n), seed=11, iteration=2)
    for j, (t, l, flip) in enumerate(windows):
        img = x[:, :, :, j].astype(np.float32) - mean
        win = img[t:t + 5, l:l + 5]
        expect = (win[:, ::-1] if flip else win) * np.float32(0.00390625)
        assert np.array_equal(out[:, :, :, j], expect), j
