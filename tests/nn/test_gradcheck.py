"""Numerical gradient checks of every layer (Chainer's check_backward) and cross-checks
of conv, pooling, linear, batch_normalization and softmax_cross_entropy against PyTorch.

Layouts: our blobs are (h, w, c, n) column-major, torch's NCHW is np.transpose(x, (3, 2, 0, 1));
conv weights (kh, kw, cin/group, cout) are torch's (cout, cin/group, kh, kw) by the same
transpose; linear weights (in, out) are torch's (out, in) transposed, with the input
flattened column-major.

Every test runs its layer on each backend present (the ``device`` fixture); the references
(numerical gradients, PyTorch CPU in float64) stay on the host.
"""

import zlib

import numpy as np
import pytest


import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)
torch = H.torch


def rng_for(*key):
    """A generator seeded by a test's key (crc32: stable across runs, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- convolution_2d

CONV_CASES = {
    "plain": dict(params={"in_size": 3, "out_size": 4, "ksize": 3}, hw=(6, 5), n=2),
    "stride_pad_rect": dict(params={"in_size": 3, "out_size": 4, "ksize": [3, 5], "stride": [2, 3], "pad": [1, 2]},
                            hw=(7, 8), n=2),
    "group": dict(params={"in_size": 6, "out_size": 4, "ksize": [2, 3], "stride": [1, 2], "pad": [1, 0], "group": 2},
                  hw=(5, 7), n=3),
    "group3_nobias": dict(params={"in_size": 6, "out_size": 9, "ksize": 3, "group": 3, "bias": False, "pad": 1},
                          hw=(4, 4), n=2),
    "one_by_one": dict(params={"in_size": 2, "out_size": 3, "ksize": 1}, hw=(4, 3), n=2),
    "pad_bigger_than_image": dict(params={"in_size": 1, "out_size": 2, "ksize": [2, 2], "pad": [2, 1]},
                                  hw=(1, 2), n=2),
    "stride_bigger_than_kernel": dict(params={"in_size": 2, "out_size": 3, "ksize": 2, "stride": [3, 2]},
                                      hw=(8, 7), n=2),
    "depthwise": dict(params={"in_size": 4, "out_size": 8, "ksize": 3, "pad": 1, "stride": 2, "group": 4},
                      hw=(6, 5), n=2),
    "batch_of_one": dict(params={"in_size": 3, "out_size": 2, "ksize": [1, 3], "pad": [0, 1]}, hw=(4, 5), n=1),
    "single_channel_batch_of_one": dict(params={"in_size": 1, "out_size": 1, "ksize": 3}, hw=(5, 5), n=1),
}


#: Cases with whole output planes of 128+ values (the cuda kernels' by-plane paths), torch cross-checks only.
BIG_CONV_CASES = {
    "planes_of_1024": dict(params={"in_size": 2, "out_size": 3, "ksize": 3, "pad": 1}, hw=(32, 32), n=2),
    "planes_of_289": dict(params={"in_size": 2, "out_size": 3, "ksize": 3, "pad": 1}, hw=(17, 17), n=3),
}


def _conv_setup(case):
    c = CONV_CASES.get(case) or BIG_CONV_CASES[case]
    p = c["params"]
    h, w = c["hw"]
    rng = rng_for("conv", case)
    layer = H.make_layer("convolution_2d", p, [(h, w, p["in_size"])])
    shapes = layer.param_shapes()
    weights = {k: normal(rng, s) for k, s in shapes.items()}
    x = normal(rng, (h, w, p["in_size"], c["n"]))
    return layer, x, weights


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_gradcheck(case, device):
    layer, x, weights = _conv_setup(case)
    H.check_backward(layer, [x], weights, eps=0.5, device=device)


# ---------------------------------------------------------------- pooling_2d

POOL_CASES = {
    "max_cover_all": dict(params={"type": "max", "ksize": [3, 5], "stride": [2, 3], "pad": [1, 2]}, hw=(6, 7)),
    "max_floor": dict(params={"type": "max", "ksize": 3, "stride": 2, "pad": 1, "cover_all": False}, hw=(7, 6)),
    "max_2x2": dict(params={"type": "max", "ksize": 2, "stride": 2}, hw=(6, 4)),
    "max_overlap_ceil": dict(params={"type": "max", "ksize": 3, "stride": 2}, hw=(8, 8)),
    "max_stride_bigger_than_kernel": dict(params={"type": "max", "ksize": 2, "stride": 3}, hw=(8, 7)),
    "average_stride_bigger_than_kernel": dict(params={"type": "average", "ksize": [2, 1], "stride": [3, 2]},
                                              hw=(8, 7)),
    "average": dict(params={"type": "average", "ksize": [3, 5], "stride": [2, 3], "pad": [1, 2]}, hw=(6, 7)),
    "average_cover_all": dict(params={"type": "average", "ksize": 3, "stride": 2, "cover_all": True}, hw=(6, 6)),
    "global_average": dict(params={"type": "average", "global_pool": True}, hw=(5, 3)),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling_gradcheck(case, device):
    c = POOL_CASES[case]
    rng = rng_for("pool", case)
    h, w = c["hw"]
    layer = H.make_layer("pooling_2d", c["params"], [(h, w, 3)])
    x = H.distinct_values((h, w, 3, 2), rng, spacing=0.05)
    H.check_backward(layer, [x], eps=1e-2, device=device)


def test_global_average_pool_value(device):
    rng = rng_for("gap")
    x = normal(rng, (5, 3, 4, 2))
    layer = H.make_layer("pooling_2d", {"type": "average", "global_pool": True}, [(5, 3, 4)])
    outs, _ = H.run_forward(layer, [x], device=device)
    assert layer.out_specs[0].shape == (1, 1, 4)
    H.assert_close(outs[0], x.mean(axis=(0, 1), keepdims=True), what="global average")


# ---------------------------------------------------------------- linear and elementwise


@pytest.mark.parametrize("in_shape,bias", [((5,), True), ((2, 3, 2), True), ((4,), False)])
def test_linear_gradcheck(in_shape, bias, device):
    rng = rng_for("linear", in_shape, bias)
    layer = H.make_layer("linear", {"out_size": 3, "bias": bias}, [in_shape])
    weights = {k: normal(rng, s) for k, s in layer.param_shapes().items()}
    x = normal(rng, in_shape + (4,))
    H.check_backward(layer, [x], weights, eps=0.5, device=device)


@pytest.mark.parametrize("kind", ["relu", "sigmoid", "tanh"])
def test_activation_gradcheck(kind, device):
    rng = rng_for(kind)
    layer = H.make_layer(kind, {}, [(3, 4, 2)])
    x = H.away_from_zero((3, 4, 2, 3), rng, margin=0.1)
    H.check_backward(layer, [x], eps=1e-2, device=device)


def test_dropout_train_gradcheck_and_mask(device):
    rng = rng_for("dropout")
    layer = H.make_layer("dropout", {"dropout_ratio": 0.3}, [(6, 5)])
    x = H.away_from_zero((6, 5, 8), rng)
    outs, _ = H.run_forward(layer, [x], phase="train", seed=7, device=device)
    y = H.npy(outs[0])
    zero = y == 0
    assert 0.1 < zero.mean() < 0.5, f"dropped fraction {zero.mean()} for ratio 0.3"
    np.testing.assert_allclose(y[~zero], x[~zero] / 0.7, rtol=1e-6)
    # same seed, same mask; the gradient is the mask
    outs2, ctx2 = H.run_forward(layer, [x], phase="train", seed=7, device=device)
    np.testing.assert_array_equal(H.npy(outs2[0]), y)
    gx, _ = H.run_backward(layer, outs2, ctx2, [np.ones_like(x)])
    np.testing.assert_allclose(gx[0], np.where(zero, 0, 1 / 0.7), rtol=1e-6)
    H.check_backward(layer, [x], phase="train", seed=7, eps=1e-2, device=device)


def test_dropout_test_phase_is_identity(device):
    rng = rng_for("dropout test")
    layer = H.make_layer("dropout", {"dropout_ratio": 0.5}, [(6, 5)])
    x = normal(rng, (6, 5, 4))
    outs, ctx = H.run_forward(layer, [x], phase="test", seed=3, device=device)
    np.testing.assert_array_equal(H.npy(outs[0]), x)
    gy = normal(rng, (6, 5, 4))
    gx, _ = H.run_backward(layer, outs, ctx, [gy])
    np.testing.assert_array_equal(gx[0], gy)
    H.check_backward(layer, [x], phase="test", eps=1e-2, device=device)


# ---------------------------------------------------------------- batch_normalization


@pytest.mark.parametrize("shape,target_dim", [((5,), 1), ((3, 4, 5), 3), ((5, 3), 1), ((3, 5), 2)])
def test_batch_normalization_train_gradcheck(shape, target_dim, device):
    rng = rng_for("bn", shape, target_dim)
    c = shape[target_dim - 1]
    layer = H.make_layer("batch_normalization", {"in_size": c, "target_dim": target_dim, "eps": 1e-3}, [shape])
    weights = {"gamma": normal(rng, c) + 1.5, "beta": normal(rng, c)}
    states = {"running_mean": np.zeros(c), "running_var": np.ones(c)}
    x = normal(rng, shape + (6,), 2.0) + 0.5
    H.check_backward(layer, [x], weights, states=states, eps=1e-2, rtol=2e-2, atol=2e-3, device=device)


def test_batch_normalization_test_phase_gradcheck_and_value(device):
    rng = rng_for("bn test")
    layer = H.make_layer("batch_normalization", {"in_size": 4, "target_dim": 3, "eps": 1e-5}, [(3, 2, 4)])
    weights = {"gamma": normal(rng, 4) + 1.0, "beta": normal(rng, 4)}
    states = {"running_mean": normal(rng, 4), "running_var": np.abs(normal(rng, 4)) + 0.5}
    x = normal(rng, (3, 2, 4, 5))
    H.set_weights(layer, weights, states, device=device)
    outs, _ = H.run_forward(layer, [x], phase="test", device=device)
    bshape = (1, 1, 4, 1)
    ref = (x - states["running_mean"].reshape(bshape)) / np.sqrt(states["running_var"].reshape(bshape) + 1e-5)
    ref = ref * weights["gamma"].reshape(bshape) + weights["beta"].reshape(bshape)
    H.assert_close(outs[0], ref, what="test-phase output")
    H.check_backward(layer, [x], weights, states=states, phase="test", eps=1e-2, device=device)


def test_batch_normalization_running_statistics(device):
    rng = rng_for("bn running")
    layer = H.make_layer("batch_normalization", {"in_size": 3, "target_dim": 1, "decay": 0.8}, [(3,)])
    H.init_weights(layer, device=device)
    x = normal(rng, (3, 10), 3.0) + 2.0
    H.run_forward(layer, [x], phase="train", device=device)
    rm = H.npy(layer.states["running_mean"]).reshape(-1)
    rv = H.npy(layer.states["running_var"]).reshape(-1)
    np.testing.assert_allclose(rm, 0.2 * x.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(rv, 0.8 + 0.2 * x.var(axis=1, ddof=1), rtol=1e-5)


# ---------------------------------------------------------------- losses and softmax


def _labels(rng, c, n):
    return rng.integers(0, c, size=(1, n)).astype(np.int32)


@pytest.mark.parametrize("upstream", [1.0, 2.5, -0.75])
def test_softmax_cross_entropy_gradcheck(upstream, device):
    rng = rng_for("sce", upstream)
    layer = H.make_layer("softmax_cross_entropy", {}, [(5,), (1,)], klasses=["single", "int32"])
    x = normal(rng, (5, 4), 2.0)
    t = _labels(rng, 5, 4)
    gx, _ = H.check_backward(layer, [x, t], gys=[np.full((1, 1), upstream)], eps=1e-2, device=device)
    p = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0)
    onehot = np.eye(5)[t[0]].T
    np.testing.assert_allclose(gx[0].reshape(5, 4), upstream * (p - onehot) / 4, rtol=1e-4, atol=1e-6)


def test_softmax_cross_entropy_image_scores_and_stability(device):
    rng = rng_for("sce image")
    layer = H.make_layer("softmax_cross_entropy", {}, [(1, 1, 6), (1,)], klasses=["single", "int32"])
    x = normal(rng, (1, 1, 6, 3))
    x[0, 0, 2, 0] = 1000.0  # would overflow a naive exp
    t = np.array([[2, 0, 5]], np.int32)
    outs, _ = H.run_forward(layer, [x, t], device=device)
    s = x.reshape(6, 3).astype(np.float64)
    m = s.max(0)
    logp = s - m - np.log(np.exp(s - m).sum(0))
    ref = -logp[t[0], np.arange(3)].mean()
    loss = H.npy(outs[0])
    assert np.isfinite(loss).all()
    np.testing.assert_allclose(loss.reshape(-1), [ref], rtol=1e-5)
    H.check_backward(layer, [x, t], gys=[np.full((1, 1), 1.5)], eps=1e-2, device=device)


def test_softmax_gradcheck(device):
    rng = rng_for("softmax")
    layer = H.make_layer("softmax", {}, [(6,)])
    x = normal(rng, (6, 3))
    outs, _ = H.run_forward(layer, [x], device=device)
    e = np.exp(x - x.max(0))
    H.assert_close(outs[0], e / e.sum(0), what="softmax")
    H.check_backward(layer, [x], eps=1e-2, device=device)


def test_mse_loss_gradcheck(device):
    rng = rng_for("mse")
    layer = H.make_layer("loss", {}, [(3, 2), (3, 2)])
    x, t = normal(rng, (3, 2, 4)), normal(rng, (3, 2, 4))
    outs, _ = H.run_forward(layer, [x, t], device=device)
    np.testing.assert_allclose(H.npy(outs[0]).reshape(-1), [np.mean((x - t) ** 2)], rtol=1e-5)
    gx, _ = H.check_backward(layer, [x, t], gys=[np.full((1, 1), 1.7)], eps=1e-2, device=device)
    np.testing.assert_allclose(gx[0].reshape(x.shape, order="F"), 1.7 * 2 * (x - t) / x.size, rtol=1e-4)
    np.testing.assert_allclose(gx[1].reshape(t.shape, order="F"), -1.7 * 2 * (x - t) / x.size, rtol=1e-4)


def test_accuracy_value_and_no_gradient(device):
    layer = H.make_layer("accuracy", {}, [(3,), (1,)], klasses=["single", "int32"])
    x = np.array([[0.1, 0.9, 0.3, 0.0], [0.5, 0.05, 0.2, 0.0], [0.2, 0.0, 0.9, 1.0]], np.float32)
    t = np.array([[1, 0, 2, 0]], np.int32)
    outs, ctx = H.run_forward(layer, [x, t], device=device)
    np.testing.assert_allclose(H.npy(outs[0]).reshape(-1), [0.75])  # argmax 1, 0, 2, 2
    gx, grads = H.run_backward(layer, outs, ctx, [np.ones((1, 1))])
    assert gx == [None, None] and grads == {}


# ---------------------------------------------------------------- structure layers


@pytest.mark.parametrize("axis,shapes", [(3, [(3, 2, 2), (3, 2, 4), (3, 2, 1)]), (None, [(3, 2, 2), (3, 2, 3)]),
                                         (1, [(2, 3), (4, 3)]), (1, [(2,), (5,)])])
def test_concat_gradcheck(axis, shapes, device):
    rng = rng_for("concat", axis, shapes)
    params = {} if axis is None else {"axis": axis}
    layer = H.make_layer("concat", params, shapes)
    xs = [normal(rng, s + (3,)) for s in shapes]
    outs, _ = H.run_forward(layer, xs, device=device)
    ax = (len(shapes[0]) if axis is None else axis) - 1
    H.assert_close(outs[0], np.concatenate(xs, axis=ax), what="concat")
    H.check_backward(layer, xs, eps=0.5, device=device)


@pytest.mark.parametrize("kind,params,in_shape,out_shape", [
    ("reshape", {"shape": [6, -1]}, (3, 2, 4), (6, 4)),
    ("reshape", {"shape": [2, 12]}, (3, 2, 4), (2, 12)),
    ("reshape", {}, (3, 2, 4), (24,)),
    ("flatten", {}, (3, 2, 4), (24,)),
])
def test_reshape_gradcheck(kind, params, in_shape, out_shape, device):
    rng = rng_for(kind, in_shape, out_shape)
    layer = H.make_layer(kind, params, [in_shape])
    assert layer.out_specs[0].shape == out_shape
    x = normal(rng, in_shape + (3,))
    outs, _ = H.run_forward(layer, [x], device=device)
    H.assert_close(outs[0], x.reshape(out_shape + (3,), order="F"), what=kind)
    H.check_backward(layer, [x], eps=0.5, device=device)


def test_branch_gradcheck(device):
    rng = rng_for("branch")
    layer = H.make_layer("branch", {"n_output": 3}, [(4, 2)])
    x = normal(rng, (4, 2, 3))
    outs, _ = H.run_forward(layer, [x], device=device)
    assert len(outs) == 3
    for o in outs:
        H.assert_close(o, x, what="branch copy")
    H.check_backward(layer, [x], eps=0.5, device=device)


@pytest.mark.parametrize("n", [2, 3])
def test_plus_gradcheck(n, device):
    rng = rng_for("plus", n)
    layer = H.make_layer("plus", {"n_input": n}, [(4, 2)] * n)
    xs = [normal(rng, (4, 2, 3)) for _ in range(n)]
    outs, _ = H.run_forward(layer, xs, device=device)
    H.assert_close(outs[0], sum(xs), what="plus")
    H.check_backward(layer, xs, eps=0.5, device=device)


# ---------------------------------------------------------------- the checker itself catches mistakes


def test_check_backward_catches_a_factor_of_two_and_a_transposition(device):
    rng = rng_for("self check")
    layer = H.make_layer("linear", {"out_size": 3}, [(3,)])
    weights = {"weight": normal(rng, (3, 3)), "bias": normal(rng, 3)}
    x = normal(rng, (3, 4))
    real = type(layer).backward

    def doubled(self, inputs, outputs, deltas, ctx):
        out = real(self, inputs, outputs, deltas, ctx)
        self.grads["bias"] = self.grads["bias"] * 2
        return out

    def transposed(self, inputs, outputs, deltas, ctx):
        out = real(self, inputs, outputs, deltas, ctx)
        self.grads["weight"] = H.mat(H.npy(self.grads["weight"]).T, device=device)
        return out

    for wrong in (doubled, transposed):
        layer.backward = wrong.__get__(layer)
        with pytest.raises(AssertionError):
            H.check_backward(layer, [x], weights, eps=0.5, device=device)


# ---------------------------------------------------------------- PyTorch cross-checks

TORCH_TOL = dict(rtol=1e-4, atol=1e-5)


@H.needs_torch
@pytest.mark.parametrize("case", sorted(CONV_CASES) + sorted(BIG_CONV_CASES))
def test_conv_vs_torch(case, device):
    import torch.nn.functional as F

    layer, x, weights = _conv_setup(case)
    p = (CONV_CASES.get(case) or BIG_CONV_CASES[case])["params"]
    H.set_weights(layer, weights, device=device)
    outs, ctx = H.run_forward(layer, [x], device=device)
    gy = normal(rng_for("conv gy", case), H.npy(outs[0]).shape)
    gy = gy.reshape(H.npy(outs[0]).shape)
    gx, gw = H.run_backward(layer, outs, ctx, [gy])

    xt = H.to_torch_images(x).requires_grad_()
    wt = H.to_torch_conv_weight(weights["weight"]).requires_grad_()
    bt = torch.tensor(weights["bias"], dtype=torch.float64, requires_grad=True) if "bias" in weights else None
    stride = layer.stride
    pad = layer.pad
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=pad, groups=p.get("group", 1))
    ref_y = H.from_torch_images(yt)
    H.assert_close(outs[0], ref_y, what="conv forward", **TORCH_TOL)
    yt.backward(H.to_torch_images(gy.reshape(ref_y.shape, order="F")))
    H.assert_close(gx[0], H.from_torch_images(xt.grad), what="conv dx", **TORCH_TOL)
    H.assert_close(gw["weight"], H.from_torch_conv_weight(wt.grad), what="conv dW", **TORCH_TOL)
    if bt is not None:
        H.assert_close(gw["bias"], bt.grad.numpy(), what="conv db", **TORCH_TOL)


TORCH_POOL_CASES = {
    "max_floor": (dict(type="max", ksize=3, stride=2, pad=1, cover_all=False), (7, 6), dict(ceil_mode=False)),
    "max_rect_floor": (dict(type="max", ksize=[3, 5], stride=[2, 3], pad=[1, 2], cover_all=False), (6, 7),
                       dict(ceil_mode=False)),
    "max_2x2": (dict(type="max", ksize=2, stride=2), (6, 4), dict(ceil_mode=False)),
    # Chainer's cover_all agrees with torch's ceil_mode where no window would start in the padding
    "max_ceil": (dict(type="max", ksize=3, stride=2), (8, 8), dict(ceil_mode=True)),
    "max_compat_ceil": (dict(type="max", ksize=[3, 5], stride=[2, 3], pad=[1, 2]), (6, 7), dict(ceil_mode=True)),
    "average": (dict(type="average", ksize=[3, 5], stride=[2, 3], pad=[1, 2]), (6, 7), dict(ceil_mode=False)),
    "average_nopad": (dict(type="average", ksize=2, stride=1), (5, 4), dict(ceil_mode=False)),
    "max_stride_bigger_than_kernel": (dict(type="max", ksize=2, stride=3, cover_all=False), (8, 7),
                                      dict(ceil_mode=False)),
    "global_average": (dict(type="average", global_pool=True), (5, 3), dict(ceil_mode=False)),
}


@H.needs_torch
@pytest.mark.parametrize("case", sorted(TORCH_POOL_CASES))
def test_pooling_vs_torch(case, device):
    import torch.nn.functional as F

    params, (h, w), extra = TORCH_POOL_CASES[case]
    rng = rng_for("torch pool", case)
    layer = H.make_layer("pooling_2d", params, [(h, w, 3)])
    x = H.distinct_values((h, w, 3, 2), rng)
    outs, ctx = H.run_forward(layer, [x], device=device)
    gy = normal(rng, H.npy(outs[0]).shape)
    gx, _ = H.run_backward(layer, outs, ctx, [gy])
    xt = H.to_torch_images(x).requires_grad_()
    if params.get("global_pool"):
        yt = F.avg_pool2d(xt, (h, w))
    elif params["type"] == "max":
        yt = F.max_pool2d(xt, layer.ksize, layer.stride, layer.pad, **extra)
    else:
        yt = F.avg_pool2d(xt, layer.ksize, layer.stride, layer.pad, count_include_pad=True, **extra)
    ref_y = H.from_torch_images(yt)
    H.assert_close(outs[0], ref_y, what="pool forward", **TORCH_TOL)
    yt.backward(H.to_torch_images(gy.reshape(ref_y.shape, order="F")))
    H.assert_close(gx[0], H.from_torch_images(xt.grad), what="pool dx", **TORCH_TOL)


@H.needs_torch
@pytest.mark.parametrize("in_shape", [(5,), (2, 3, 2)])
def test_linear_vs_torch(in_shape, device):
    import torch.nn.functional as F

    rng = rng_for("torch linear", in_shape)
    layer = H.make_layer("linear", {"out_size": 4}, [in_shape])
    weights = {k: normal(rng, s) for k, s in layer.param_shapes().items()}
    x = normal(rng, in_shape + (3,))
    H.set_weights(layer, weights, device=device)
    outs, ctx = H.run_forward(layer, [x], device=device)
    gy = normal(rng, (4, 3))
    gx, gw = H.run_backward(layer, outs, ctx, [gy])
    d = int(np.prod(in_shape))
    xt = torch.tensor(x.reshape(d, 3, order="F").T.copy(), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(weights["weight"].T.copy(), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(weights["bias"], dtype=torch.float64, requires_grad=True)
    yt = F.linear(xt, wt, bt)
    H.assert_close(outs[0], yt.detach().numpy().T, what="linear forward", **TORCH_TOL)
    yt.backward(torch.tensor(gy.T.copy(), dtype=torch.float64))
    H.assert_close(gx[0], xt.grad.numpy().T.reshape(in_shape + (3,), order="F"), what="linear dx", **TORCH_TOL)
    H.assert_close(gw["weight"], wt.grad.numpy().T, what="linear dW", **TORCH_TOL)
    H.assert_close(gw["bias"], bt.grad.numpy(), what="linear db", **TORCH_TOL)


@H.needs_torch
@pytest.mark.parametrize("phase", ["train", "test"])
@pytest.mark.parametrize("hw", [(3, 5), (16, 9)])  # planes of 15 and of 144 values (the cuda by-plane path)
def test_batch_normalization_vs_torch(phase, hw, device):
    import torch.nn.functional as F

    rng = rng_for("torch bn", phase, *hw)
    c, decay, eps = 4, 0.9, 1e-5
    layer = H.make_layer("batch_normalization", {"in_size": c, "target_dim": 3, "decay": decay, "eps": eps},
                         [hw + (c,)])
    weights = {"gamma": normal(rng, c) + 1.0, "beta": normal(rng, c)}
    rm0, rv0 = normal(rng, c), np.abs(normal(rng, c)) + 0.5
    H.set_weights(layer, weights, {"running_mean": rm0, "running_var": rv0}, device=device)
    x = normal(rng, hw + (c, 4), 2.0) + 1.0
    outs, ctx = H.run_forward(layer, [x], phase=phase, device=device)
    gy = normal(rng, x.shape)
    gx, gw = H.run_backward(layer, outs, ctx, [gy])

    xt = H.to_torch_images(x).requires_grad_()
    gt = torch.tensor(weights["gamma"], dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(weights["beta"], dtype=torch.float64, requires_grad=True)
    rmt = torch.tensor(rm0, dtype=torch.float64)
    rvt = torch.tensor(rv0, dtype=torch.float64)
    yt = F.batch_norm(xt, rmt, rvt, gt, bt, training=(phase == "train"), momentum=1 - decay, eps=eps)
    H.assert_close(outs[0], H.from_torch_images(yt), what="bn forward", **TORCH_TOL)
    yt.backward(H.to_torch_images(gy))
    H.assert_close(gx[0], H.from_torch_images(xt.grad), what="bn dx", rtol=1e-4, atol=5e-5)
    H.assert_close(gw["gamma"], gt.grad.numpy(), what="bn dgamma", **TORCH_TOL)
    H.assert_close(gw["beta"], bt.grad.numpy(), what="bn dbeta", **TORCH_TOL)
    H.assert_close(layer.states["running_mean"], rmt.numpy(), what="running mean", **TORCH_TOL)
    H.assert_close(layer.states["running_var"], rvt.numpy(), what="running var", **TORCH_TOL)


@H.needs_torch
def test_softmax_cross_entropy_vs_torch(device):
    import torch.nn.functional as F

    rng = rng_for("torch sce")
    layer = H.make_layer("softmax_cross_entropy", {}, [(7,), (1,)], klasses=["single", "int32"])
    x = normal(rng, (7, 5), 3.0)
    t = _labels(rng, 7, 5)
    outs, ctx = H.run_forward(layer, [x, t], device=device)
    gx, _ = H.run_backward(layer, outs, ctx, [np.full((1, 1), 0.6)])
    xt = torch.tensor(x.T.copy(), dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(xt, torch.tensor(t[0], dtype=torch.long))
    H.assert_close(outs[0], loss.detach().numpy().reshape(1, 1), what="loss", **TORCH_TOL)
    (loss * 0.6).backward()
    H.assert_close(gx[0], xt.grad.numpy().T, what="dx", **TORCH_TOL)
    assert gx[1] is None
