"""The numpy backend's switch for numpy without a BLAS (Pyodide's): ``blas.NO_BLAS``.

On under Pyodide only (where it was measured faster; see sukiyaki/backends/numpy/blas.py), off
natively. On, products go through einsum in layouts its loops run fast, and the convolution's
backward pass lowers differently (one product for every kernel offset, col2im by kernel rows):
the same numbers to float32 rounding, checked here natively with the switch forced on.
"""

import sys

import numpy as np
import pytest

from sukiyaki.backends.numpy import blas, conv
from sukiyaki.nn import Net
from sukiyaki.nn.shapes import ConvSpec


def test_switch_is_on_only_without_a_blas():
    assert blas.NO_BLAS is (sys.platform == "emscripten")


@pytest.mark.parametrize("m,k,n", [(37, 50, 9), (9, 70, 80), (64, 800, 500), (5, 3, 1), (1, 4, 70)])
@pytest.mark.parametrize("order_a", ["C", "F", "strided"])
@pytest.mark.parametrize("order_b", ["C", "F", "strided"])
def test_matmul_without_blas_any_layout(monkeypatch, m, k, n, order_a, order_b):
    monkeypatch.setattr(blas, "NO_BLAS", True)
    rng = np.random.default_rng(m * k + n)

    def make(shape, order):
        if order == "strided":  # every other column of a wider array: neither layout
            return rng.standard_normal((shape[0], 2 * shape[1]), dtype=np.float32)[:, ::2]
        return np.asarray(rng.standard_normal(shape, dtype=np.float32), order=order)

    a, b = make((m, k), order_a), make((k, n), order_b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = blas.matmul(a, b)
    assert got.dtype == np.float32 and got.shape == (m, n) and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))
    out = np.empty((n, m), np.float32).T  # a column-major out
    assert blas.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))
    # anything else still goes to numpy's matmul: integers, mixed dtypes, batches
    ai = (a * 10).astype(np.int32)
    np.testing.assert_array_equal(blas.matmul(ai, ai.T), ai @ ai.T)
    assert blas.matmul(a, b.astype(np.float64)).dtype == np.float64


def _lenet_gradients():
    net = Net("lenet", seed=2)
    net.zero_grads()
    net.train_batch({"batch": np.arange(32)}, loss_scale=1.0, seed=2, iteration=0)
    return net.store.slot_arrays(net.store.grad)


def test_switch_changes_no_gradient(monkeypatch):
    monkeypatch.setattr(blas, "NO_BLAS", False)
    off = _lenet_gradients()
    monkeypatch.setattr(blas, "NO_BLAS", True)
    on = _lenet_gradients()
    assert list(on) == list(off)
    for k in off:
        scale = float(np.abs(off[k]).max())
        assert scale > 0 and float(np.abs(on[k] - off[k]).max()) <= 1e-5 * scale, k


@pytest.mark.parametrize("params", [
    dict(ksize=(5, 5), stride=(1, 1), pad=(0, 0), group=1),   # as LeNet's conv2 (channels-last)
    dict(ksize=(3, 3), stride=(2, 2), pad=(1, 1), group=1),   # strides and padding
    dict(ksize=(3, 2), stride=(1, 2), pad=(2, 0), group=1),
    dict(ksize=(3, 3), stride=(1, 1), pad=(1, 1), group=2),   # grouped: channel-first
])
def test_convolution_without_blas_equals_with(monkeypatch, params):
    """Both lowerings, forward and backward, with the switch off and on: float32 rounding apart."""
    rng = np.random.default_rng(7)
    c_in, c_out, n = 8, 6, 5
    spec = ConvSpec.make((11, 9, c_in), c_out, **params)
    kh, kw = spec.ksize
    x = np.asfortranarray(rng.standard_normal((11, 9, c_in, n), dtype=np.float32))
    w = np.asfortranarray(rng.standard_normal((kh, kw, c_in // spec.group, c_out), dtype=np.float32))
    bias = rng.standard_normal(c_out, dtype=np.float32)
    oh, ow, _ = spec.out_shape
    dy = np.asfortranarray(rng.standard_normal((oh, ow, c_out, n), dtype=np.float32))
    results = []
    for switch in (False, True):
        monkeypatch.setattr(blas, "NO_BLAS", switch)
        for keep in (False, True):
            y, cache = conv.conv2d_forward(x, w, bias, spec, keep=keep)
            dx, dw, db = conv.conv2d_backward(x, w, dy, spec, cache=cache)
            results.append((y, dx, dw, db))
    ref = results[0]
    for got in results[1:]:
        for r, v in zip(ref, got):
            assert v.shape == r.shape
            np.testing.assert_allclose(v, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))
