"""One helper that checks a backend against the numpy result (as CuPy's numpy_cupy_allclose).

A test decorated with :func:`numpy_device_allclose` takes the ``device`` fixture and returns
what it computed (matrices, arrays, numbers, or dicts/lists/tuples of them). The decorator
runs the body twice, on ``numpy`` and on ``device``, and compares the two results: same
structure, same MATLAB sizes and klasses, values within float32 tolerance (integers,
logicals and strings exactly). On ``numpy`` itself the body runs once. The body should
also check its result against an independent reference where one exists (float64 numpy,
PyTorch, Octave); this helper adds that every backend agrees with numpy.

Example:
    >>> @numpy_device_allclose(rtol=1e-5)
    ... def test_relu(device):
    ...     x = M.array(np.linspace(-1, 1, 6), device=device)
    ...     return M.max(x, 0)
"""

import functools
import inspect
import numbers

import numpy as np

from sukiyaki.matrix import Matrix, gather


def to_host(value):
    """value with every Matrix replaced by a numpy copy (containers walked)."""
    if isinstance(value, Matrix):
        return (value.klass, value.shape, np.array(gather(value).to_numpy()))
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    return value


def assert_agree(ref, got, rtol, atol, where="result"):
    """Recursive comparison of two to_host() results."""
    if isinstance(ref, dict):
        assert isinstance(got, dict) and list(ref) == list(got), f"{where}: keys {list(got)} vs numpy's {list(ref)}"
        for k in ref:
            assert_agree(ref[k], got[k], rtol, atol, f"{where}[{k!r}]")
        return
    if isinstance(ref, tuple) and len(ref) == 3 and isinstance(ref[0], str) and isinstance(ref[2], np.ndarray):
        assert isinstance(got, tuple) and len(got) == 3, f"{where}: a matrix on numpy, {type(got).__name__} here"
        assert got[0] == ref[0], f"{where}: klass {got[0]!r}, numpy gives {ref[0]!r}"
        assert got[1] == ref[1], f"{where}: size {got[1]}, numpy gives {ref[1]}"
        assert_agree(ref[2], got[2], rtol, atol, where)
        return
    if isinstance(ref, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(ref), f"{where}: {len(got)} items vs numpy's {len(ref)}"
        for i, (r, g) in enumerate(zip(ref, got)):
            assert_agree(r, g, rtol, atol, f"{where}[{i}]")
        return
    if isinstance(ref, np.ndarray):
        got = np.asarray(got)
        assert got.shape == ref.shape, f"{where}: shape {got.shape}, numpy gives {ref.shape}"
        assert got.dtype == ref.dtype, f"{where}: dtype {got.dtype}, numpy gives {ref.dtype}"
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(got, ref, err_msg=where)
        return
    if isinstance(ref, numbers.Real) and not isinstance(ref, (bool, np.bool_)) and isinstance(ref, (float, np.floating)):
        assert abs(float(got) - float(ref)) <= atol + rtol * abs(float(ref)) or (np.isnan(ref) and np.isnan(got)), \
            f"{where}: {got!r}, numpy gives {ref!r}"
        return
    assert got == ref, f"{where}: {got!r}, numpy gives {ref!r}"


def numpy_device_allclose(rtol=1e-6, atol=1e-6):
    """Decorator: run the test body on numpy and on ``device`` and compare what it returns."""

    def decorate(fn):
        if "device" not in inspect.signature(fn).parameters:
            raise TypeError(f"{fn.__name__}: a numpy_device_allclose test takes the 'device' fixture")

        @functools.wraps(fn)
        def run(*args, **kwargs):
            device = kwargs.pop("device")
            ref = to_host(fn(*args, device="numpy", **kwargs))
            if device != "numpy":
                got = to_host(fn(*args, device=device, **kwargs))
                assert_agree(ref, got, rtol, atol, f"{fn.__name__} on {device}")

        return run

    return decorate
