"""The cuda backend's directly launched elementwise kernels (kernels/elementwise.cu): the same
bits as CuPy's ufuncs and numpy (IEEE arithmetic), taken only where every operand is an
F-contiguous float array of one shape and dtype; other operands go to CuPy as before."""

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend

CUDA = [d for d in available_backends() if d.startswith("cuda")]
on_cuda = pytest.mark.parametrize("cuda", CUDA or [pytest.param("cuda", marks=pytest.mark.skip(
    reason="no cuda backend here (no NVIDIA GPU, or CuPy absent: pip install 'sukiyaki[cuda]')"))])

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 3.0]


def _operands(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 10).astype(dtype)
    a.reshape(-1)[:len(SPECIALS)] = SPECIALS
    return np.asfortranarray(a)


@on_cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (300, 301, 2)])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_direct_binary_equals_numpy(cuda, dtype, shape, op):
    import cupy as cp

    b = get_backend(cuda)
    x, y = _operands(dtype, shape, 0), _operands(dtype, shape, 1)[::-1].copy(order="F")
    with np.errstate(all="ignore"):
        want = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op](x, y)
    got = b.binary[op](cp.asarray(x, order="F"), cp.asarray(y, order="F"))
    assert got.flags.f_contiguous and got.dtype == want.dtype and got.shape == shape
    np.testing.assert_array_equal(got.get(), want)
    ufunc = {"add": cp.add, "sub": cp.subtract, "mul": cp.multiply, "div": cp.true_divide}[op]
    np.testing.assert_array_equal(got.get(), ufunc(cp.asarray(x), cp.asarray(y)).get())


@on_cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["neg", "exp", "log", "sqrt", "abs"])
def test_direct_unary_equals_cupy(cuda, dtype, op):
    import cupy as cp

    b = get_backend(cuda)
    x = _operands(dtype, (33, 17), 2)
    got = b.unary[op](cp.asarray(x, order="F"))
    ufunc = {"neg": cp.negative, "exp": cp.exp, "log": cp.log, "sqrt": cp.sqrt, "abs": cp.abs}[op]
    np.testing.assert_array_equal(got.get(), ufunc(cp.asarray(x)).get())
    with np.errstate(all="ignore"):
        want = {"neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}[op](x.astype(np.float64))
    np.testing.assert_allclose(got.get(), want.astype(dtype), rtol=4 * np.finfo(dtype).eps, atol=0)


@on_cuda
def test_other_operands_take_cupy(cuda):
    """Mixed dtypes, a scalar, broadcasting and a strided view: the ufunc path, right answers."""
    import cupy as cp

    b = get_backend(cuda)
    x = _operands("float32", (6, 4), 3)
    X = cp.asarray(x, order="F")
    np.testing.assert_array_equal(b.binary["add"](X, np.float32(2)).get(), x + np.float32(2))
    np.testing.assert_array_equal(b.binary["mul"](X, X[:, :1]).get(), x * x[:, :1])
    np.testing.assert_array_equal(b.binary["sub"](X, X.astype(np.float64)).get(), x - x.astype(np.float64))
    view = X[::2]
    np.testing.assert_array_equal(b.unary["neg"](view).get(), -x[::2])
