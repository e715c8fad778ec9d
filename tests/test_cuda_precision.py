"""The cuda backend's bf16 precision mode and channels-last convolutions, against numpy.

bf16 (PyTorch's autocast): each product's operands are rounded to bfloat16, the sums are
float32; a convolution's result also comes back through bfloat16 (cuDNN's output), a matrix
product's as float32. So the references here are float64 products of the bfloat16-rounded
operands, and the tolerance is bfloat16's half ulp of the result (2^-9 relative) for a
convolution, float32 summation for a matrix product. Channels-last alone (float32) changes
only where values sit while cuDNN runs: float32 tolerance. The staging kernels are exact:
their rounding equals sukiyaki.nn.params.float32_to_bf16 bit for bit.
"""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend
from sukiyaki.nn.params import bf16_to_float32, float32_to_bf16
from sukiyaki.nn.shapes import ConvSpec

CUDA = [d for d in available_backends() if d.startswith("cuda")]
on_cuda = pytest.mark.parametrize("cuda", CUDA or [pytest.param("cuda", marks=pytest.mark.skip(
    reason="no cuda backend here (no NVIDIA GPU, or CuPy absent: pip install 'sukiyaki[cuda]')"))])

MODES = [("bf16", True), ("bf16", False), ("fp32", True)]
CONVS = [  # in_shape, out, ksize, stride, pad, group, n
    ((9, 7, 3), 5, (3, 3), (1, 1), (1, 1), 1, 2),
    ((12, 10, 40), 36, (3, 2), (2, 1), (1, 0), 1, 3),
    ((8, 8, 8), 12, (3, 3), (1, 1), (1, 1), 4, 2),
]


def _bf16(a):
    """a rounded to bfloat16, as float64."""
    return bf16_to_float32(float32_to_bf16(np.asarray(a, np.float32))).reshape(np.shape(a)).astype(np.float64)


@pytest.fixture
def backend(cuda):
    b = get_backend(cuda)
    before = (b.precision, b.channels_last)
    yield b
    b.set_precision(before[0])
    b.set_channels_last(before[1])


def _mode(b, precision, channels_last):
    if b.precision == "tf32":
        pytest.skip("this process runs the cuda backend in tf32 (SUKIYAKI_CUDA_PRECISION=tf32); bf16 and fp32 "
                    "cannot be switched to there; runs where it starts in fp32 or bf16")
    b.set_precision(precision)
    b.set_channels_last(channels_last)


@on_cuda
@pytest.mark.parametrize("bf16,channels_last", [(True, True), (True, False), (False, True)])
def test_staging_is_exact(backend, bf16, channels_last):
    import cupy as cp

    from sukiyaki.backends.cuda.staging import Staging

    rng = np.random.default_rng(0)
    S, C, N = 37, 45, 3
    x = rng.standard_normal((S, C, N)).astype(np.float32) * 1e3
    x.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1 + 2 ** -8]  # a tie: rounds to even (1.0)
    st = Staging(bf16=bf16, channels_last=channels_last)
    staged = st.stage(cp.asarray(x, order="F"), S, C, N).get()
    want = x.transpose(1, 0, 2) if channels_last else x
    want = want.reshape(-1, order="F")
    if bf16:
        np.testing.assert_array_equal(staged, float32_to_bf16(want))
    else:
        np.testing.assert_array_equal(staged, want)
    bias = rng.standard_normal(C).astype(np.float32)
    back = st.unstage(cp.asarray(staged), (S, C, N), S, C, N, bias=cp.asarray(bias)).get()
    rounded = bf16_to_float32(float32_to_bf16(x)).reshape(x.shape) if bf16 else x
    np.testing.assert_array_equal(back, rounded + bias[None, :, None])


def _conv_reference(x, w, dy, spec):
    """float64 y = conv(x, w) (cross-correlation, zero padding, groups) of (h, w, c, n) x and
    (kh, kw, c/g, o) w, and the gradients dx, dw of sum(y * dy), by loops over the kernel."""
    h, wd, c = spec.in_shape
    oh, ow, o = spec.out_shape
    kh, kw = spec.ksize
    (sh, sw), (ph, pw), g = spec.stride, spec.pad, spec.group
    n = x.shape[3]
    xp = np.zeros((h + 2 * ph, wd + 2 * pw, c, n))
    xp[ph:ph + h, pw:pw + wd] = x
    dxp = np.zeros_like(xp)
    y, dw = np.zeros((oh, ow, o, n)), np.zeros(w.shape)
    cg, og = c // g, o // g
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)
            for k in range(g):
                ci, oi = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
                patch = xp[rows, cols, ci]  # (oh, ow, cg, n)
                y[:, :, oi] += np.einsum("abcn,cd->abdn", patch, w[i, j, :, oi])
                dw[i, j, :, oi] += np.einsum("abcn,abdn->cd", patch, dy[:, :, oi])
                dxp[rows, cols, ci] += np.einsum("abdn,cd->abcn", dy[:, :, oi], w[i, j, :, oi])
    return y, dxp[ph:ph + h, pw:pw + wd], dw


@on_cuda
@pytest.mark.parametrize("precision,channels_last", MODES)
@pytest.mark.parametrize("case", range(len(CONVS)))
def test_convolution_forward_and_backward(backend, precision, channels_last, case):
    import cupy as cp

    _mode(backend, precision, channels_last)
    in_shape, out, ksize, stride, pad, group, n = CONVS[case]
    spec = ConvSpec.make(in_shape, out, ksize, stride, pad, group)
    rng = np.random.default_rng(case)
    x = rng.standard_normal(in_shape + (n,)).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    b = rng.standard_normal((out, 1)).astype(np.float32)
    dy = rng.standard_normal(spec.out_shape + (n,)).astype(np.float32)
    kx, kw_, kdy = (_bf16(a) for a in (x, w, dy)) if precision == "bf16" else (a.astype(np.float64) for a in (x, w, dy))

    dev = lambda a: cp.asarray(a, order="F")  # noqa: E731
    y, _ = backend.nn.conv2d_forward(dev(x), dev(w), dev(b), spec, keep=True)
    dx, dw, db = backend.nn.conv2d_backward(dev(x), dev(w), dev(dy), spec)
    y_ref, dx_ref, dw_ref = _conv_reference(kx, kw_, kdy, spec)

    def close(got, want, what, shift=0.0):
        got = got.get()
        scale = np.abs(want).max()
        tol = 1e-5 * scale
        if precision == "bf16":  # the product's result rounded to bfloat16 (half an ulp), float32 sums beneath
            tol = tol + 2.0 ** -8 * np.abs(want)
        bad = np.abs(got - (want + shift)) > tol
        assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} values off, worst {np.abs(got - want - shift).max()}"

    close(y, y_ref, "y", shift=b.reshape(1, 1, -1, 1))
    close(dx, dx_ref, "dx")
    close(dw, dw_ref, "dw")
    np.testing.assert_allclose(db.get().ravel(), dy.sum(axis=(0, 1, 3)), rtol=1e-5, atol=1e-5)


@on_cuda
@pytest.mark.parametrize("trans_x,trans_y", [(False, False), (True, False), (False, True), (True, True)])
def test_bf16_matrix_product(backend, trans_x, trans_y):
    import cupy as cp

    _mode(backend, "bf16", False)
    rng = np.random.default_rng(1)
    m, k, n = 33, 70, 17
    x = rng.standard_normal((k, m) if trans_x else (m, k)).astype(np.float32)
    y = rng.standard_normal((n, k) if trans_y else (k, n)).astype(np.float32)
    got = backend.matmul(cp.asarray(x, order="F"), cp.asarray(y, order="F"), trans_x, trans_y)
    assert got.dtype == np.float32 and got.flags.f_contiguous
    got = got.get()
    a, c = _bf16(x), _bf16(y)
    want = (a.T if trans_x else a) @ (c.T if trans_y else c)
    bound = 1e-6 * k * (np.abs(a.T if trans_x else a) @ np.abs(c.T if trans_y else c))  # float32 sums of exact products
    assert np.all(np.abs(got - want) <= bound)
    assert not np.allclose(got, x_at := (x.T if trans_x else x).astype(np.float64) @ (y.T if trans_y else y),
                           rtol=1e-6, atol=1e-6), "the product did not round its operands to bfloat16"
    assert np.allclose(got, x_at, rtol=0.05, atol=0.05 * np.abs(x_at).max())


@on_cuda
def test_tf32_cannot_be_switched_on_after_start(backend):
    if backend.precision == "tf32":
        pytest.skip("this process started the cuda backend in tf32 (SUKIYAKI_CUDA_PRECISION=tf32); "
                    "runs where it starts in fp32 or bf16")
    with pytest.raises(ValueError, match="tf32 is set before start"):
        backend.set_precision("tf32")
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16"):
        backend.set_precision("fp8")


@on_cuda
@pytest.mark.parametrize("graph", [False, True])
def test_lenet_trains_in_bf16_close_to_fp32(backend, cuda, graph):
    """Ten LeNet steps in bf16 (channels-last, eagerly and as a CUDA graph) end near the fp32
    run's weights (bfloat16 accuracy), not on them; the master weights stay float32."""
    import sukiyaki
    from sukiyaki.nn import Net
    from sukiyaki.nn.captured import CapturedStep
    from sukiyaki.nn.optim import get_optimizer

    weights = {}
    for precision in ("fp32", "bf16"):
        _mode(backend, precision, precision == "bf16")
        net = Net(Path(sukiyaki.__file__).parent / "nets" / "lenet.json", device=cuda, seed=3)
        opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9)
        captured = CapturedStep(net) if graph else None
        inputs = list(net.schedules["train"].host_inputs)
        rng = np.random.default_rng(0)
        for it in range(10):
            idx = rng.integers(0, 8000, 64)
            if captured is None or captured.run(idx, 0, it, inputs, opt) is None:
                net.zero_grads()
                net.train_batch({b: idx for b in inputs}, iteration=it)
                opt.apply(net.store)
        assert net.store.data.dtype == np.float32
        weights[precision] = backend.to_numpy(net.store.data).copy()
    w32, w16 = weights["fp32"], weights["bf16"]
    assert np.all(np.isfinite(w16))
    rel = np.linalg.norm(w16 - w32) / np.linalg.norm(w32)
    assert 0 < rel < 2e-2, f"bf16 weights differ from fp32 by {rel:.3g} (relative) after 10 steps"
