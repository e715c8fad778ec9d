"""Creating matrices: from numpy and nested lists, zeros/ones/eye, random, colonvec, cast.

Example:
    >>> import sukiyaki.matrix as M
    >>> M.zeros(2, 3).shape
    (2, 3)
    >>> M.array([1, 2, 3]).shape   # a flat list is a row, as MATLAB's [1 2 3]
    (1, 3)
"""

import numbers
import operator

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.matrix import klass as K
from sukiyaki.matrix.matrix import Matrix, size_str, to_backend


def _backend_of(like, device):
    if like is not None:
        return like._backend if isinstance(like, Matrix) else get_backend("numpy")
    return get_backend(device or "numpy")


def _klass_of(klass, like, default="single"):
    if klass is not None:
        return K.check_klass(klass)
    if isinstance(like, Matrix):
        return like.klass
    return default


def parse_size(args, fname):
    """MATLAB size arguments: (), (n) -> n x n, (m, n, ...), ([m, n, ...]) -> a shape tuple."""
    if len(args) == 1 and isinstance(args[0], (list, tuple, np.ndarray, Matrix)):
        vals = list(np.asarray(args[0]).reshape(-1))
    elif len(args) == 1:
        vals = [args[0], args[0]]
    elif not args:
        vals = [1, 1]
    else:
        vals = list(args)
    if len(vals) == 1:
        vals = vals * 2
    shape = []
    for v in vals:
        if isinstance(v, Matrix):
            v = v.item()
        try:
            iv = operator.index(v)
        except TypeError:
            if isinstance(v, numbers.Real) and float(v) == int(v):
                iv = int(v)
            else:
                raise TypeError(f"{fname}: size arguments must be integers, got {v!r}") from None
        shape.append(max(iv, 0))
    return tuple(shape)


def array(x, klass=None, like=None, device=None):
    """A Matrix from a numpy array, nested lists, a number or another Matrix.

    numpy arrays keep their shape as the MATLAB size (a 1-d array of n becomes n x 1,
    a 0-d array 1 x 1) and are not copied when the dtype already matches; a flat Python
    list becomes a row, as MATLAB's ``[1 2 3]``; nested lists give rows of a matrix.
    Lists and Python numbers (literals) give ``single`` (``logical`` for bools); numpy
    float64 and other float data become ``single``, other integers ``int32``.

    Args:
        x: the values.
        klass: element type ('single', 'int32', 'uint8', 'logical'); inferred if None.
        like: a Matrix whose device (and klass, if klass is None) to use.
        device: backend name ('numpy', 'cuda', 'webgpu') when like is None.
    Returns:
        Matrix.
    """
    if isinstance(x, Matrix):
        out = x if klass is None or klass == x.klass else cast(x, klass)
        if like is not None or device is not None:
            be = _backend_of(like, device)
            if be is not out._backend:
                out = to_backend(out, be)
        return out
    if isinstance(x, (list, tuple, int, float)):  # a Python number is a literal too: single
        try:
            a = np.array(x)
        except ValueError:  # numpy >= 1.24 refuses ragged lists
            a = np.array(None, dtype=object)
        if a.dtype == object:
            raise ValueError("array: nested lists must be rectangular and hold numbers only")
        if a.size == 0 and a.ndim == 1:
            a = a.reshape(0, 0)
        elif a.ndim == 1:
            a = a.reshape(1, -1)
        if klass is None and like is None and a.dtype != np.bool_:
            klass = "single"  # MATLAB literals are double; ours are single
    else:
        a = np.asarray(x)
        if a.dtype.kind in "OUSV" or a.dtype.names is not None:
            raise TypeError(f"array: cannot make a matrix of {type(x).__name__} with dtype {a.dtype}")
        if a.ndim == 1:
            a = a.reshape(-1, 1)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.dtype.kind == "c":
        raise TypeError("array: complex values are not supported")
    if klass is None:
        klass = like.klass if isinstance(like, Matrix) else K.klass_of_dtype(a.dtype)
    K.check_klass(klass)
    dtype = K.dtype_of(klass)
    if a.dtype != dtype:
        be0 = get_backend("numpy")
        a = be0.cast_wrap(a, dtype) if dtype.kind in "iu" and a.dtype.kind == "f" else a.astype(dtype)
    be = _backend_of(like, device)
    return Matrix(be.from_numpy(a), klass, be)


def cast(A, klass):
    """Copy of A converted to klass; integer targets truncate toward zero and wrap."""
    K.check_klass(klass)
    if not isinstance(A, Matrix):
        return array(A, klass=klass)
    be = A._backend
    dtype = K.dtype_of(klass)
    if klass == A.klass:
        return A.copy()
    return Matrix(be.cast_wrap(A._data, dtype), klass, be)


def _filled(value, args, klass, like, device, fname):
    shape = parse_size(args, fname)
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    dtype = K.dtype_of(k)
    if dtype.kind in "iub":  # stored as the original's typed arrays: truncate and wrap, NaN -> 0
        value = get_backend("numpy").cast_wrap(np.array([float(value)]), dtype)[0].item()
    return Matrix(be.full(shape, value, dtype), k, be)


def zeros(*size, klass=None, like=None, device=None):
    """Matrix of zeros: zeros(n), zeros(m, n, ...), zeros([m, n]); klass/like/device as array()."""
    return _filled(0, size, klass, like, device, "zeros")


def ones(*size, klass=None, like=None, device=None):
    """Matrix of ones (same arguments as zeros)."""
    return _filled(1, size, klass, like, device, "ones")


def full(size, value, klass=None, like=None, device=None):
    """Matrix of the given size filled with value."""
    return _filled(value, (size,), klass, like, device, "full")


def eye(*size, klass=None, like=None, device=None):
    """Identity matrix: eye(n), eye(m, n)."""
    shape = parse_size(size, "eye")
    if len(shape) != 2:
        raise ValueError(f"eye: size must be 2-d, got {size_str(shape)}")
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    return Matrix(be.eye(shape[0], shape[1], K.dtype_of(k)), k, be)


def rand(*size, klass=None, like=None, device=None):
    """Uniform random values in [0, 1)."""
    shape = parse_size(size, "rand")
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    return Matrix(be.rand(shape, K.dtype_of(k)), k, be)


def randn(*size, klass=None, like=None, device=None):
    """Standard normal random values."""
    shape = parse_size(size, "randn")
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    return Matrix(be.randn(shape, K.dtype_of(k)), k, be)


def randi(imax, *size, klass=None, like=None, device=None):
    """Random integers: randi(imax, ...) in 1..imax, randi([imin, imax], ...) in imin..imax."""
    if isinstance(imax, (list, tuple)):
        if len(imax) != 2:
            raise ValueError(f"randi: range must be [imin, imax], got {imax!r}")
        lo, hi = int(imax[0]), int(imax[1])
    else:
        lo, hi = 1, int(imax)
    if hi < lo:
        raise ValueError(f"randi: empty range [{lo}, {hi}]")
    shape = parse_size(size, "randi")
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    return Matrix(be.randint(lo, hi, shape, K.dtype_of(k)), k, be)


def rng(seed, device=None):
    """Seed the random generator of a backend (numpy by default), as MATLAB's rng(seed)."""
    get_backend(device or "numpy").seed(int(seed))


def colon_count(start, step, stop):
    """Number of elements of MATLAB's start:step:stop."""
    if step == 0 or (step > 0 and start > stop) or (step < 0 and start < stop):
        return 0
    return int(np.floor((stop - start) / step + 1e-10)) + 1


def colonvec(start, step_or_stop, stop=None, klass=None, like=None, device=None):
    """Row vector start:stop or start:step:stop, as MATLAB's colon operator."""
    if stop is None:
        step, stop = 1, step_or_stop
    else:
        step = step_or_stop
    n = colon_count(start, step, stop)
    k = _klass_of(klass, like)
    be = _backend_of(like, device)
    v = be.arange(start, step, n, K.dtype_of(k))
    return Matrix(be.reshape(v, (1, n)), k, be)
