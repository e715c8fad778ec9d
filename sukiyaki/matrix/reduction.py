"""Reductions with MATLAB conventions: sum, mean, prod, max/min (with 1-based indices),
argmax/argmin, variance, std, any, all, cumsum, cumprod.

The dimension defaults to the first non-singleton one; a dimension beyond ndims is a
singleton (the reduction returns its input). As in the original library, sum, mean,
prod, variance, std, cumsum and cumprod give ``single``; max and min keep the klass;
indices are ``int32``.

Example:
    >>> import sukiyaki.matrix as M
    >>> v, i = M.max(M.array([[3, 9, 9]]), nargout=2)
    >>> (v.item(), i.item())
    (9.0, 2)
"""

import numbers

import numpy as np

from sukiyaki.matrix.matrix import Matrix, as_matrix, arith

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I32 = np.dtype(np.int32)


def resolve_dim(A, dim, fname):
    """1-based dimension to reduce: dim as given (checked) or the first non-singleton."""
    if dim is None:
        for i, s in enumerate(A.shape):
            if s != 1:
                return i + 1
        return 1
    if isinstance(dim, Matrix):
        dim = dim.item()
    if not isinstance(dim, numbers.Real) or isinstance(dim, bool) or dim != int(dim) or dim < 1:
        raise ValueError(f"{fname}: dim must be a positive integer, got {dim!r}")
    return int(dim)


def _is_0x0(A, dim):
    return dim is None and A.shape == (0, 0)


def _float_data(A, dtype=_F32):
    be = A._backend
    return A._data if A._data.dtype == dtype else be.astype(A._data, dtype)


def _reduce_stat(op, A, dim, fname):
    A = as_matrix(A)
    be = A._backend
    if _is_0x0(A, dim):
        return Matrix(be.full((1, 1), 0 if op == "sum" else 1, _F32), "single", be)
    d = resolve_dim(A, dim, fname)
    if d > A.ndim:
        return Matrix(be.copy(_float_data(A)), "single", be)
    x = _float_data(A, _F64 if op == "prod" else _F32)
    if A.klass != "single":
        x = _float_data(A, _F64)
    r = be.reduce(op, x, d - 1)
    return Matrix(be.astype(r, _F32), "single", be)


def sum(A, dim=None):  # noqa: A001 (MATLAB name)
    """Sum along dim (default: first non-singleton); sum of a 0x0 matrix is 0."""
    return _reduce_stat("sum", A, dim, "sum")


def prod(A, dim=None):
    """Product along dim; prod of a 0x0 matrix is 1."""
    return _reduce_stat("prod", A, dim, "prod")


def mean(A, dim=None):
    """Mean along dim (single); mean of an empty set is NaN."""
    A = as_matrix(A)
    be = A._backend
    if _is_0x0(A, dim):
        return Matrix(be.full((1, 1), np.nan, _F32), "single", be)
    d = resolve_dim(A, dim, "mean")
    if d > A.ndim:
        return Matrix(be.copy(_float_data(A)), "single", be)
    n = A.shape[d - 1]
    s = be.reduce("sum", _float_data(A, _F64 if A.klass != "single" else _F32), d - 1)
    return Matrix(be.astype(be.binary["div"](s, n), _F32), "single", be)


def variance(A, w=0, dim=None):
    """Variance along dim: w=0 normalises by N-1 (N for N=1), w=1 by N (MATLAB var)."""
    if w not in (0, 1):
        raise ValueError(f"variance: w must be 0 or 1, got {w!r}")
    A = as_matrix(A)
    be = A._backend
    if _is_0x0(A, dim):
        return Matrix(be.full((1, 1), np.nan, _F32), "single", be)
    d = resolve_dim(A, dim, "variance")
    if d > A.ndim:
        return Matrix(be.full(A.shape, 0, _F32), "single", be)
    n = A.shape[d - 1]
    if n == 0:
        shape = tuple(1 if i == d - 1 else s for i, s in enumerate(A.shape))
        return Matrix(be.full(shape, np.nan, _F32), "single", be)
    x = _float_data(A, _F64)
    m = be.binary["div"](be.reduce("sum", x, d - 1), n)
    dev = be.binary["sub"](x, m)
    ss = be.reduce("sum", be.binary["mul"](dev, dev), d - 1)
    denom = n if w == 1 else (n - 1 if n > 1 else 1)
    return Matrix(be.astype(be.binary["div"](ss, denom), _F32), "single", be)


def std(A, w=0, dim=None):
    """Standard deviation along dim (square root of variance with the same w)."""
    v = variance(A, w, dim)
    return Matrix(v._backend.unary["sqrt"](v._data), "single", v._backend)


def _minmax(op, A, B, dim, nargout):
    if isinstance(B, list) and not B:
        B = None
    if B is not None:
        if dim is not None:
            raise ValueError(f"{op}: use {op}(A, None, dim) to reduce along a dimension")
        if nargout != 1:
            raise ValueError(f"{op}: two outputs are not supported with two matrices")
        return arith("maximum" if op == "max" else "minimum", A, B)
    A = as_matrix(A)
    be = A._backend
    if _is_0x0(A, dim):
        empty = Matrix(be.empty((0, 0), A._data.dtype), A.klass, be)
        return (empty, Matrix(be.empty((0, 0), _I32), "int32", be)) if nargout == 2 else empty
    d = resolve_dim(A, dim, op)
    if d > A.ndim or A.numel == 0:
        vals = A.copy()
        shape = list(A.shape)
        if d <= A.ndim and shape[d - 1] != 0:
            shape[d - 1] = 1
        if A.numel == 0:
            vals = Matrix(be.empty(tuple(shape), A._data.dtype), A.klass, be)
        idx = Matrix(be.full(vals.shape, 1, _I32), "int32", be)
        return (vals, idx) if nargout == 2 else vals
    if nargout == 1:
        return Matrix(be.reduce(op, A._data, d - 1), A.klass, be)
    if nargout != 2:
        raise ValueError(f"{op}: nargout must be 1 or 2, got {nargout!r}")
    vals, idx = be.argreduce(op, A._data, d - 1)
    idx1 = be.binary["add"](be.astype(idx, _I32), 1)
    return Matrix(vals, A.klass, be), Matrix(be.astype(idx1, _I32), "int32", be)


def max(A, B=None, dim=None, nargout=1):  # noqa: A001 (MATLAB name)
    """max(A) along the first non-singleton dim, max(A, None, dim), max(A, B) elementwise.

    With nargout=2 returns (values, indices) with 1-based int32 indices of the first
    maximum; NaN is ignored unless all values are NaN.
    """
    return _minmax("max", A, B, dim, nargout)


def min(A, B=None, dim=None, nargout=1):  # noqa: A001 (MATLAB name)
    """min(A), min(A, None, dim), min(A, B); nargout=2 adds 1-based indices (see max)."""
    return _minmax("min", A, B, dim, nargout)


def argmax(A, dim=None):
    """1-based int32 indices of the maximum along dim."""
    return _minmax("max", A, None, dim, 2)[1]


def argmin(A, dim=None):
    """1-based int32 indices of the minimum along dim."""
    return _minmax("min", A, None, dim, 2)[1]


def _logical_reduce(op, A, dim):
    A = as_matrix(A)
    be = A._backend
    if _is_0x0(A, dim):
        return Matrix(be.full((1, 1), op == "all", np.dtype(bool)), "logical", be)
    d = resolve_dim(A, dim, op)
    x = A._data if A.klass == "logical" else be.binary["ne"](A._data, 0)
    if d > A.ndim:
        return Matrix(be.copy(x), "logical", be)
    return Matrix(be.reduce(op, x, d - 1), "logical", be)


def any(A, dim=None):  # noqa: A001 (MATLAB name)
    """True where any element along dim is nonzero (NaN counts as nonzero)."""
    return _logical_reduce("any", A, dim)


def all(A, dim=None):  # noqa: A001 (MATLAB name)
    """True where every element along dim is nonzero."""
    return _logical_reduce("all", A, dim)


def _cumulative(op, A, dim):
    A = as_matrix(A)
    be = A._backend
    d = resolve_dim(A, dim, op)
    x = _float_data(A, _F32 if A.klass == "single" else _F64)
    if d > A.ndim:
        return Matrix(be.copy(be.astype(x, _F32)), "single", be)
    return Matrix(be.astype(be.cumulative(op, x, d - 1), _F32), "single", be)


def cumsum(A, dim=None):
    """Cumulative sum along dim (single)."""
    return _cumulative("cumsum", A, dim)


def cumprod(A, dim=None):
    """Cumulative product along dim (single)."""
    return _cumulative("cumprod", A, dim)


__all__ = [
    "sum", "prod", "mean", "variance", "std", "max", "min", "argmax", "argmin",
    "any", "all", "cumsum", "cumprod", "resolve_dim",
]
