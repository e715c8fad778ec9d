"""The original Sukiyaki2's own layer test cases (expected values from Chainer), forward and
backward: tops, bottom deltas and parameter gradients; and its data_augmentation case.

Cases live in ../shared/compat/sukiyaki2-layers (see its README): layer/<case>/case.json gives
the layer type and params and which arrays exist; arrays are (h, w, c, n) / (d, n) as numpy
indexes them, conv weights (kh, kw, in/group, out), linear weights (in, out).
Every case runs on each backend present (the ``device`` fixture).
"""

import json

import numpy as np
import pytest


import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)
TOL = dict(rtol=1e-4, atol=1e-5)
EXPECTED_CASES = {
    "average_pooling_2d", "batch_normalization_2d", "batch_normalization_4d", "convolution_2d",
    "convolution_2d_1x1", "convolution_2d_group", "convolution_2d_stride_pad", "linear_1d", "linear_3d",
    "max_pooling_2d", "relu",
}


def _case_names():
    if not H.LAYER_CASES.is_dir():
        return sorted(EXPECTED_CASES)
    return sorted(p.name for p in H.LAYER_CASES.iterdir() if (p / "case.json").is_file())


def _cases_with_parameters():
    if not H.LAYER_CASES.is_dir():
        return sorted(n for n in EXPECTED_CASES if "pool" not in n and n != "relu")
    return [n for n in _case_names()
            if json.loads((H.LAYER_CASES / n / "case.json").read_text())["blobs"]["train_params"]]


class Case:
    """One layer case folder."""

    def __init__(self, name):
        self.dir = H.need_dir(H.LAYER_CASES) / name
        meta = json.loads((self.dir / "case.json").read_text())
        self.type = meta["layer_params"]["type"]
        self.params = meta["layer_params"]["params"]
        self.blobs = meta["blobs"]

    def load(self, stem):
        return np.load(self.dir / f"{stem}.npy")

    def arrays(self, phase, kind):
        return [self.load(f"{phase}.{kind}.{i}") for i in range(self.blobs[phase][kind])]

    def train_params(self):
        return {name: self.load(f"train_params.{name}") for name in self.blobs["train_params"]}

    def layer(self, bottoms, device):
        layer = H.make_layer(self.type, self.params, [b.shape[:-1] for b in bottoms], name=self.dir.name)
        # the original layer's weights; batch normalization also gets fresh running statistics
        H.set_weights(layer, self.train_params(), layer.init_states() or None, device=device)
        return layer


def test_corpus_is_complete():
    H.need_dir(H.LAYER_CASES)
    assert set(_case_names()) >= EXPECTED_CASES


@pytest.mark.parametrize("name", _case_names())
def test_forward(name, device):
    case = Case(name)
    bottoms = case.arrays("forward", "bottoms")
    layer = case.layer(bottoms, device)
    outs, _ = H.run_forward(layer, bottoms, phase="train", device=device)
    tops = case.arrays("forward", "tops")
    assert len(outs) == len(tops)
    for i, (got, want) in enumerate(zip(outs, tops)):
        H.assert_close(got, want, what=f"{name}: top {i}", **TOL)
        assert got.klass == "single"


@pytest.mark.parametrize("name", _case_names())
def test_backward(name, device):
    case = Case(name)
    bottoms = case.arrays("backward", "bottoms")
    layer = case.layer(bottoms, device)
    outs, ctx = H.run_forward(layer, bottoms, phase="train", device=device)
    deltas, grads = H.run_backward(layer, outs, ctx, case.arrays("backward", "top_deltas"))
    expected = case.arrays("backward", "bottom_deltas")
    assert len(deltas) == len(expected)
    for i, (got, want) in enumerate(zip(deltas, expected)):
        H.assert_close(got, want, what=f"{name}: bottom delta {i}", **TOL)
    want_params = {p.removeprefix("delta_") for p in case.blobs["delta_params"]}
    assert set(grads) == want_params, f"{name}: gradients of {sorted(grads)}, expected {sorted(want_params)}"
    for p in case.blobs["delta_params"]:
        H.assert_close(grads[p.removeprefix("delta_")], case.load(f"delta_params.{p}"), what=f"{name}: {p}", **TOL)


@pytest.mark.parametrize("name", _cases_with_parameters())
def test_backward_accumulates_parameter_gradients(name, device):
    """Two backward passes without clearing add up (gradient accumulation over sub-batches)."""
    case = Case(name)
    bottoms = case.arrays("backward", "bottoms")
    layer = case.layer(bottoms, device)
    top_deltas = [H.mat(d, device=device) for d in case.arrays("backward", "top_deltas")]
    for _ in range(2):
        outs, ctx = H.run_forward(layer, bottoms, phase="train", device=device)
        layer.backward(ctx.inputs, outs, top_deltas, ctx)
    for p in case.blobs["delta_params"]:
        H.assert_close(layer.grads[p.removeprefix("delta_")], 2 * case.load(f"delta_params.{p}"),
                       what=f"{name}: accumulated {p}", **TOL)


def _augment_arrays():
    d = H.need_dir(H.AUGMENT_CASE)
    return np.load(d / "bottom.npy"), np.load(d / "mean.npy"), np.load(d / "top.npy")


@pytest.mark.parametrize("phase", ["train", "test"])
def test_data_augmentation(phase, device):
    """Mean subtraction, scale 0.5 and the centre crop: (10, 9) -> (6, 7) at offset (2, 1)."""
    bottom, mean, top = _augment_arrays()
    params = {"out_shape": list(top.shape[:2]), "scale": 0.5, "mean": mean,
              "random_crop": False, "random_flip": False}
    layer = H.make_layer("data_augmentation", params, [bottom.shape[:-1]])
    assert layer.out_specs[0].shape == top.shape[:-1]
    outs, ctx = H.run_forward(layer, [bottom], phase=phase, seed=0, device=device)
    H.assert_close(outs[0], top, what="augmented batch", **TOL)
    deltas, grads = H.run_backward(layer, outs, ctx, [np.ones_like(top)])
    assert deltas == [None] and grads == {}


def test_data_augmentation_test_phase_ignores_random_settings(device):
    """In the test phase the crop is central and nothing is flipped, whatever the params say."""
    bottom, mean, top = _augment_arrays()
    params = {"out_shape": list(top.shape[:2]), "scale": 0.5, "mean": mean, "random_crop": True, "random_flip": True}
    layer = H.make_layer("data_augmentation", params, [bottom.shape[:-1]])
    outs, _ = H.run_forward(layer, [bottom], phase="test", seed=0, device=device)
    H.assert_close(outs[0], top, what="test-phase augmented batch", **TOL)
