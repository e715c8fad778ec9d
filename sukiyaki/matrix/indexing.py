"""MATLAB indexing: A.get(subs...) and A.set(subs..., value), END, colon, find, sub2ind, ind2sub.

Subscripts are 1-based. Each may be a number, ``':'``, ``colon(a, b)`` or
``colon(a, step, b)`` (ends may use ``END``), an ``END`` expression (``END - 1``), an
index vector or matrix (Matrix, numpy array or list; a list is a row), or a logical
mask. One subscript is linear indexing in column-major order; fewer subscripts than
dimensions make the last span the remaining dimensions. Assignment never grows a
matrix (as the original library): an index beyond the size is an IndexError.

Example:
    >>> import sukiyaki.matrix as M
    >>> A = M.reshape(M.colonvec(1, 12), 3, 4)
    >>> A.get(M.END, M.colon(2, M.END)).tolist()
    [[6.0, 9.0, 12.0]]
"""

import numbers

import numpy as np

from sukiyaki.matrix import klass as K
from sukiyaki.matrix.creation import array, colon_count
from sukiyaki.matrix.matrix import Matrix, as_matrix, normalize_shape, size_str, to_backend

_I64 = np.dtype(np.int64)


class EndExpr:
    """An arithmetic expression of MATLAB's ``end``, evaluated against a dimension's extent."""

    __slots__ = ("_fn", "_text")

    def __init__(self, fn=None, text="end"):
        self._fn = fn or (lambda e: e)
        self._text = text

    def resolve(self, end):
        """Value of the expression when ``end`` is the given extent."""
        return self._fn(end)

    def _op(self, other, f, text):
        if isinstance(other, EndExpr):
            return EndExpr(lambda e: f(self._fn(e), other._fn(e)), text.format(self._text, other._text))
        if not isinstance(other, numbers.Real):
            return NotImplemented
        return EndExpr(lambda e: f(self._fn(e), other), text.format(self._text, other))

    def _rop(self, other, f, text):
        if not isinstance(other, numbers.Real):
            return NotImplemented
        return EndExpr(lambda e: f(other, self._fn(e)), text.format(other, self._text))

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b, "({}+{})")

    def __radd__(self, o):
        return self._rop(o, lambda a, b: a + b, "({}+{})")

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b, "({}-{})")

    def __rsub__(self, o):
        return self._rop(o, lambda a, b: a - b, "({}-{})")

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b, "({}*{})")

    def __rmul__(self, o):
        return self._rop(o, lambda a, b: a * b, "({}*{})")

    def __truediv__(self, o):
        return self._op(o, lambda a, b: a / b, "({}/{})")

    def __floordiv__(self, o):
        return self._op(o, lambda a, b: a // b, "({}//{})")

    def __neg__(self):
        return EndExpr(lambda e: -self._fn(e), f"-{self._text}")

    def __repr__(self):
        return self._text


END = EndExpr()


class Colon:
    """The range start:stop or start:step:stop used as a subscript (see colon())."""

    __slots__ = ("start", "step", "stop")

    def __init__(self, start, step, stop):
        self.start, self.step, self.stop = start, step, stop

    def resolve(self, end):
        """(start, step, stop) as numbers, END expressions evaluated against ``end``."""
        vals = [v.resolve(end) if isinstance(v, EndExpr) else v for v in (self.start, self.step, self.stop)]
        for v in vals:
            if isinstance(v, Matrix):
                raise IndexError("colon: endpoints must be numbers or END expressions, got a Matrix")
        return vals

    def __repr__(self):
        return f"colon({self.start}, {self.step}, {self.stop})"


def colon(start, step_or_stop, stop=None):
    """Subscript range start:stop (colon(a, b)) or start:step:stop (colon(a, s, b))."""
    if stop is None:
        return Colon(start, 1, step_or_stop)
    return Colon(start, step_or_stop, stop)


def _as_index_int(v, extent, what):
    """Check one 1-based index value and return it 0-based."""
    if isinstance(v, EndExpr):
        v = v.resolve(extent)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise IndexError(f"{what}: index must be a number, got {v!r}")
    if v != int(v) if np.isfinite(v) else True:
        raise IndexError(f"{what}: index must be a positive integer, got {v!r}")
    v = int(v)
    if v < 1:
        raise IndexError(f"{what}: index must be a positive integer, got {v}")
    if v > extent:
        raise IndexError(f"{what}: index {v} exceeds the extent {extent}")
    return v - 1


def _check_array_index(a, extent, what):
    """0-based int64 indices from an array of 1-based values (checked)."""
    if a.dtype.kind == "f":
        if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.trunc(a))):
            bad = a[~np.isfinite(a) | (a != np.trunc(a))].reshape(-1)[0].item()
            raise IndexError(f"{what}: index must be a positive integer, got {bad!r}")
    elif a.dtype.kind not in "iu":
        raise IndexError(f"{what}: index of dtype {a.dtype} is not supported")
    idx = a.astype(_I64).reshape(-1, order="F")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 1:
            raise IndexError(f"{what}: index must be a positive integer, got {lo}")
        if hi > extent:
            raise IndexError(f"{what}: index {hi} exceeds the extent {extent}")
    return idx - 1


def resolve_sub(sub, extent, what):
    """One subscript against an extent.

    Returns:
        (key, count, index_shape): key is a slice or a 1-d int64 array of 0-based
        indices; index_shape is the MATLAB shape of the subscript (None for ':').
    """
    if isinstance(sub, str):
        if sub != ":":
            raise IndexError(f"{what}: the only string subscript is ':', got {sub!r}")
        return slice(None), extent, None
    if isinstance(sub, (numbers.Real, EndExpr)) and not isinstance(sub, (bool, np.bool_)):
        i = _as_index_int(sub, extent, what)
        return slice(i, i + 1), 1, (1, 1)
    if isinstance(sub, Colon):
        start, step, stop = sub.resolve(extent)
        n = colon_count(start, step, stop)
        if n == 0:
            return np.zeros(0, _I64), 0, (1, 0)
        first = _as_index_int(start, extent, what)
        last = _as_index_int(start + step * (n - 1), extent, what)
        if step != int(step):
            raise IndexError(f"{what}: colon step must be an integer, got {step!r}")
        step = int(step)
        if step > 0:
            return slice(first, last + 1, step), n, (1, n)
        return np.arange(first, last - 1, step, dtype=_I64), n, (1, n)
    if isinstance(sub, Matrix):
        a = sub.to_numpy()
        shape = sub.shape
        is_mask = sub.klass == "logical"
    elif isinstance(sub, (bool, np.bool_)):
        a, shape, is_mask = np.array([[bool(sub)]]), (1, 1), True
    else:
        a = np.asarray(sub)
        if isinstance(sub, (list, tuple)):
            shape = (0, 0) if a.size == 0 else (1, a.size) if a.ndim == 1 else normalize_shape(a.shape)
        else:
            shape = normalize_shape(a.shape if a.ndim else (1, 1)) if a.ndim != 1 else (a.size, 1)
        is_mask = a.dtype == np.bool_
        if a.dtype == object:
            raise IndexError(f"{what}: index list must hold numbers only, got {sub!r}")
    if is_mask:
        flat = a.reshape(-1, order="F")
        if flat.size > extent and flat[extent:].any():
            raise IndexError(
                f"{what}: logical index has a true value at position "
                f"{extent + 1 + int(np.flatnonzero(flat[extent:])[0])}, beyond the extent {extent}"
            )
        idx = np.flatnonzero(flat).astype(_I64)
        row = len(shape) == 2 and shape[0] == 1 and shape[1] != 1
        return idx, idx.size, ((1, idx.size) if row else (idx.size, 1))
    idx = _check_array_index(a, extent, what)
    return idx, idx.size, tuple(shape)


def _linear_result_shape(xshape, ishape, count):
    if ishape is None:
        return (count, 1)
    x_vec = len(xshape) == 2 and (xshape[0] == 1 or xshape[1] == 1) and xshape != (1, 1)
    i_vec = len(ishape) == 2 and (ishape[0] == 1 or ishape[1] == 1)
    if x_vec and i_vec:
        return (1, count) if xshape[0] == 1 else (count, 1)
    return ishape


def _nd_view(A, nsubs):
    """Extents seen by nsubs subscripts: dims past the last subscript collapse into it."""
    shape = A.shape
    if nsubs >= len(shape):
        return shape + (1,) * (nsubs - len(shape))
    tail = 1
    for s in shape[nsubs - 1:]:
        tail *= s
    return shape[: nsubs - 1] + (tail,)


def _resolve_nd(A, subs):
    ext = _nd_view(A, len(subs))
    keys, counts = [], []
    for d, (sub, n) in enumerate(zip(subs, ext)):
        key, count, _ = resolve_sub(sub, n, f"subscript {d + 1} of {len(subs)}")
        keys.append(key)
        counts.append(count)
    return ext, keys, counts


def get(A, subs):
    """A(subs...) as a new Matrix (see module docstring)."""
    be = A._backend
    if not subs:
        return A.copy()
    if len(subs) > 1 and all(type(s) is int for s in subs):
        ext = _nd_view(A, len(subs))
        if all(1 <= s <= n for s, n in zip(subs, ext)):  # fast path: one element
            x = A._data if ext == A.shape else be.reshape(A._data, ext)
            return Matrix(be.gather(x, [slice(s - 1, s) for s in subs]), A.klass, be)
    if len(subs) == 1:
        n = A.numel
        key, count, ishape = resolve_sub(subs[0], n, "linear index")
        if isinstance(key, slice):
            key = np.arange(n, dtype=_I64)[key]
        out = be.take_linear(A._data, be.from_numpy(key))
        shape = _linear_result_shape(A.shape, ishape, count)
        return Matrix(be.reshape(out, shape), A.klass, be)
    ext, keys, counts = _resolve_nd(A, subs)
    x = A._data if ext == A.shape else be.reshape(A._data, ext)
    out = be.gather(x, _native_keys(be, keys))
    return Matrix(be.reshape(out, normalize_shape(counts)), A.klass, be)


def _native_keys(be, keys):
    """Subscript keys for gather/scatter: slices as they are, index arrays uploaded."""
    return [k if isinstance(k, slice) else be.from_numpy(k) for k in keys]


def _value_data(A, value, count_shape, what):
    """Native array of value converted to A's klass, checked against the selection shape."""
    be = A._backend
    dtype = K.dtype_of(A.klass)
    if isinstance(value, Matrix):
        if value._backend is not be:
            value = to_backend(value, be)
        v = value._data
        vshape = value.shape
    elif isinstance(value, (numbers.Real, np.bool_)):
        v = be.full((1, 1), float(value), np.dtype(np.float64))
        vshape = (1, 1)
    else:
        return _value_data(A, array(value), count_shape, what)
    vnum = int(np.prod(vshape))
    cnum = int(np.prod(count_shape))
    if vnum != 1:
        if what == "linear":
            ok = vnum == cnum
        else:
            ok = [s for s in vshape if s != 1] == [s for s in count_shape if s != 1]
        if not ok:
            raise ValueError(
                f"assignment size mismatch: the subscripts select {size_str(count_shape)}, "
                f"the value is {size_str(vshape)}"
            )
    if v.dtype != dtype:
        v = be.cast_wrap(v, dtype)
    return v, vnum


def set(A, subs, value):  # noqa: A001 (MATLAB-style name)
    """A(subs...) = value, in place. Never grows A; the value is converted to A's klass."""
    be = A._backend
    if not subs:
        raise IndexError("set: give at least one subscript")
    if len(subs) == 1:
        n = A.numel
        key, count, _ = resolve_sub(subs[0], n, "linear index")
        if isinstance(key, slice):
            key = np.arange(n, dtype=_I64)[key]
        v, vnum = _value_data(A, value, (count, 1), "linear")
        if count == 0:
            return
        _put_last_wins(be, A._data, key, v, vnum)
        return
    ext, keys, counts = _resolve_nd(A, subs)
    v, vnum = _value_data(A, value, tuple(counts), "nd")
    if 0 in counts:
        return
    if ext != A.shape:
        # subscripts span collapsed dimensions: assign through linear indices, so the matrix
        # keeps its memory (a collapsing reshape may copy, e.g. of a row-major numpy array)
        grids = [np.arange(n)[k] if isinstance(k, slice) else k for k, n in zip(keys, ext)]
        lin = np.ravel_multi_index(np.ix_(*grids), ext, order="F").reshape(-1, order="F")
        _put_last_wins(be, A._data, lin, v, vnum)
        return
    vals = be.reshape(v, (1,) * len(counts)) if vnum == 1 else be.reshape(v, tuple(counts))
    keeps = [None if isinstance(k, slice) else _last_occurrences(k) for k in keys]
    if any(k is not None for k in keeps):  # a repeated index: the last assignment wins (as numpy)
        keys = [k if keep is None else k[keep] for k, keep in zip(keys, keeps)]
        if vnum != 1:
            vals = be.gather(vals, [slice(None) if keep is None else be.from_numpy(keep) for keep in keeps])
    be.scatter(A._data, _native_keys(be, keys), vals)


def _last_occurrences(key):
    """Sorted positions of the last occurrence of each index in key, or None without repeats.

    numpy assigns repeated indices in order (the last wins); a GPU scatter writes them in no
    defined order, so repeats are removed before the scatter on every backend.
    """
    if key.size < 2:
        return None
    first_in_reversed = np.unique(key[::-1], return_index=True)[1]
    if first_in_reversed.size == key.size:
        return None
    return np.sort(key.size - 1 - first_in_reversed)


def _put_last_wins(be, x, key, v, vnum):
    """Assign v (vnum values, or one) at the linear indices key of x, the last of repeats winning."""
    vflat = be.reshape(v, (vnum,)) if vnum != 1 else be.reshape(v, (1,))
    keep = _last_occurrences(key)
    if keep is not None:
        key = key[keep]
        if vnum != 1:
            vflat = be.take_linear(vflat, be.from_numpy(keep))
    be.put_linear(x, be.from_numpy(key), vflat)


def find(A, n=None, nargout=1):
    """1-based linear indices (int32) of the nonzero elements of A.

    A row vector gives a row, anything else a column. ``n`` keeps the first n.
    With nargout=2 or 3 returns (rows, cols[, values]) instead.
    """
    A = as_matrix(A)
    be = A._backend
    idx = be.nonzero_linear(A._data)
    count = int(idx.shape[0])
    if n is not None and int(n) < count:
        count = max(int(n), 0)
        idx = be.gather(idx, [slice(0, count)])
    shape = (1, count) if len(A.shape) == 2 and A.shape[0] == 1 and A.shape[1] != 1 else (count, 1)
    if A.shape == (0, 0):
        shape = (0, 0)
    i32 = K.dtype_of("int32")

    def one_based(native):
        return Matrix(be.reshape(be.astype(be.binary["add"](native, 1), i32), shape), "int32", be)

    if nargout == 1:
        return one_based(idx)
    rows_n = max(A.shape[0], 1)
    r = be.binary["rem"](idx, rows_n)
    c = be.binary["div"](be.binary["sub"](idx, r), rows_n)  # exact: idx < 2**53
    if nargout == 2:
        return one_based(r), one_based(c)
    vals = Matrix(be.reshape(be.take_linear(A._data, idx), shape), A.klass, be)
    return one_based(r), one_based(c), vals


def _size_list(sz):
    if isinstance(sz, Matrix):
        sz = sz.to_numpy().reshape(-1).tolist()
    return [int(s) for s in sz]


def sub2ind(sz, *subs):
    """Linear 1-based indices (int32) from subscripts into a matrix of size sz."""
    dims = _size_list(sz)
    if not subs:
        raise ValueError("sub2ind: give at least one subscript")
    if len(subs) > len(dims):
        dims = dims + [1] * (len(subs) - len(dims))
    ext = dims[: len(subs) - 1] + [int(np.prod(dims[len(subs) - 1:]))]
    mats = [array(s) if not isinstance(s, Matrix) else s for s in subs]
    shape = mats[0].shape
    lin = np.zeros(int(np.prod(shape)), _I64)
    stride = 1
    for d, (m, n) in enumerate(zip(mats, ext)):
        if m.shape != shape:
            raise ValueError(
                f"sub2ind: subscripts must have equal sizes, got {size_str(shape)} and {size_str(m.shape)}"
            )
        lin += _check_array_index(m.to_numpy(), n, f"sub2ind: subscript {d + 1}") * stride
        stride *= n
    return array(lin.reshape(shape, order="F") + 1, klass="int32")


def ind2sub(sz, ind, nargout=None):
    """Subscripts (tuple of int32 matrices) from 1-based linear indices into size sz.

    With nargout smaller than the number of dimensions, the last output spans the rest.
    """
    dims = _size_list(sz)
    k = len(dims) if nargout is None else int(nargout)
    if k < 1:
        raise ValueError(f"ind2sub: nargout must be positive, got {k}")
    dims = dims + [1] * (k - len(dims)) if k > len(dims) else dims
    ext = dims[: k - 1] + [int(np.prod(dims[k - 1:]))]
    m = ind if isinstance(ind, Matrix) else array(ind)
    lin = _check_array_index(m.to_numpy(), int(np.prod(ext)), "ind2sub")
    out = []
    for n in ext:
        out.append(array((lin % n + 1).reshape(m.shape, order="F"), klass="int32"))
        lin = lin // n
    return tuple(out)
