"""One helper to test a matrix op against a reference, on every backend (tinygrad's
helper_test_op, CuPy's numpy_cupy_allclose).

``check_op(ours, ref, *inputs, device=...)`` builds Matrix inputs on ``device`` from numpy
inputs, runs ``ours`` on them, runs ``ref`` on float64 numpy copies of the *stored* values
(so a float64 input rounded to single is seen rounded by the reference too), and
compares the MATLAB size, the klass and the values of every output.

Example:
    >>> check_op(M.plus, np.add, np.ones((2, 3)), 2.0, device="numpy")
"""

import numpy as np

import sukiyaki.matrix as M
from sukiyaki.matrix.matrix import Matrix

_NUMPY_KLASS = {np.dtype(np.float32): "single", np.dtype(np.float64): "single",
                np.dtype(np.int32): "int32", np.dtype(np.int64): "int32",
                np.dtype(np.uint8): "uint8", np.dtype(np.bool_): "logical"}


def matlab_shape(shape):
    """MATLAB size of a numpy shape: 0-d is 1x1, 1-d of n is n x 1, trailing singletons dropped."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def to_numpy(A):
    """numpy copy of a Matrix from any device (MATLAB-shaped)."""
    return np.array(M.gather(A).to_numpy())


def mat(x, device="numpy", klass=None):
    """Matrix on ``device`` from a numpy array / nested list / number; klass from the dtype if None."""
    if isinstance(x, Matrix):
        return M.array(x, klass=klass, device=device)
    a = np.asarray(x)
    if klass is None:
        klass = _NUMPY_KLASS.get(a.dtype, "single")
    return M.array(a, klass=klass, device=device)


def _ref_input(x):
    """float64 numpy copy of an input as the matrix stores it (numbers pass through)."""
    if isinstance(x, Matrix):
        return to_numpy(x).astype(np.float64)
    return x


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def assert_matrix(out, expected, klass="single", device=None, rtol=1e-6, atol=1e-6, what="result"):
    """Check a Matrix against a numpy array: MATLAB size, klass, device and values.

    single results are compared with rtol/atol (NaN equal to NaN, infinities exactly);
    int32, uint8 and logical results exactly.
    """
    assert isinstance(out, Matrix), f"{what}: expected a Matrix, got {type(out).__name__}"
    exp = np.asarray(expected)
    want_shape = matlab_shape(exp.shape)
    assert out.shape == want_shape, f"{what}: size {out.shape}, reference {want_shape}"
    assert out.klass == klass, f"{what}: klass {out.klass!r}, expected {klass!r}"
    if device is not None:
        assert out.device == device, f"{what}: on {out.device!r}, expected {device!r}"
    got = to_numpy(out)
    assert got.shape == want_shape, f"{what}: to_numpy() shape {got.shape}, expected {want_shape}"
    assert got.dtype == out.dtype, f"{what}: dtype {got.dtype} for klass {out.klass}"
    exp = exp.reshape(want_shape, order="F") if exp.size else exp.reshape(want_shape)
    if klass == "single":
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got.astype(np.int64), exp.astype(np.int64), err_msg=what)


def check_op(ours, ref, *inputs, device="numpy", rtol=1e-6, atol=1e-6, klass="single", input_klass=None):
    """Run ``ours`` on Matrix inputs and ``ref`` on float64 numpy copies, and compare.

    Args:
        ours: function of Matrix (or number) arguments returning a Matrix or a tuple of them.
        ref: function of float64 numpy arrays (or the same numbers) returning the expected
            array(s); a 1-d result counts as a column, 0-d as 1x1.
        *inputs: numpy arrays (klass from the dtype: float -> single, int -> int32, uint8,
            bool -> logical), nested lists, Matrix objects, or plain numbers (passed as is).
        device: backend name the inputs are built on; outputs must stay there.
        rtol, atol: tolerance of single results (integer and logical results are exact).
        klass: expected klass of the result (a tuple for several outputs).
        input_klass: klass of every array input, instead of the one its dtype gives.
    Returns:
        the outputs of ``ours`` (a tuple when several).
    """
    mats = []
    for x in inputs:
        if isinstance(x, (int, float, bool, np.generic)) and not isinstance(x, np.ndarray):
            mats.append(x)
        else:
            mats.append(mat(x, device=device, klass=input_klass))
    before = [to_numpy(m) if isinstance(m, Matrix) else None for m in mats]
    out = ours(*mats)
    expected = ref(*[_ref_input(m) for m in mats])
    outs, exps = _as_tuple(out), _as_tuple(expected)
    assert len(outs) == len(exps), f"{len(outs)} outputs, reference gives {len(exps)}"
    klasses = klass if isinstance(klass, (tuple, list)) else (klass,) * len(outs)
    for i, (o, e, k) in enumerate(zip(outs, exps, klasses)):
        assert_matrix(o, e, klass=k, device=device, rtol=rtol, atol=atol, what=f"output {i + 1}")
    for i, (m, b) in enumerate(zip(mats, before)):
        if b is not None:
            np.testing.assert_array_equal(to_numpy(m), b, err_msg=f"input {i + 1} was modified")
    return out
