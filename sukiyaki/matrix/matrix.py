"""The Matrix type: an n-d array with MATLAB semantics, stored by a backend.

A Matrix has a MATLAB size (``A.shape``: at least 2 entries, trailing singleton
dimensions dropped), a klass (``single``, ``int32``, ``uint8``, ``logical``) and a
backend that holds its data. Python operators follow Python conventions: ``A * B`` is
elementwise, ``A @ B`` is the matrix product, comparisons give logical matrices.
``A[...]`` is numpy-style, 0-based indexing of the MATLAB-shaped array; MATLAB-style,
1-based indexing is ``A.get(...)`` / ``A.set(..., value)``.

This module is the bottom of ``sukiyaki.matrix``: the other modules import it, never the
reverse. The few methods implemented higher up (``get``/``set``, ``@``, ``T``, ``astype``,
display, conversion of lists) call them through :data:`METHODS`, which
``sukiyaki/matrix/__init__.py`` fills in once every module is loaded.

Example:
    >>> import sukiyaki.matrix as M
    >>> A = M.array([[1, 2], [3, 4]])
    >>> (A + 1).get(2, 1).item()
    4.0
"""

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.matrix import klass as K

#: Open autodestruct scopes (lists of the matrices made inside each); see device.py.
SCOPES = []
_NUMBER_TYPES = (int, float, bool, np.number, np.bool_)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


class _Methods:
    """Functions of higher modules that Matrix methods call (bound by sukiyaki.matrix.__init__).

    Attributes: array (creation.array), cast (creation.cast), get and set (indexing),
    mtimes, abs and uplus (elementwise), transpose (shape), format (display).
    """

    array = cast = get = set = mtimes = abs = uplus = transpose = format = None


METHODS = _Methods()


def normalize_shape(shape):
    """MATLAB size of a shape: at least 2 entries, trailing singletons dropped."""
    shape = tuple(int(s) for s in shape)
    n = len(shape)
    while n > 2 and shape[n - 1] == 1:
        n -= 1
    if n < 2:
        return shape + (1,) * (2 - len(shape)) if len(shape) < 2 else shape[:2]
    return shape[:n]


def size_str(shape):
    """'3x4x2' for a shape."""
    return "x".join(str(s) for s in shape)


class Matrix:
    """An n-d matrix with MATLAB semantics (see module docstring)."""

    __slots__ = ("_data", "_klass", "_backend", "__weakref__")
    __array_priority__ = 100

    def __init__(self, data, klass=None, backend=None):
        """Wrap a backend-native array (internal; use ``sukiyaki.matrix.array`` instead).

        Args:
            data: native array of ``backend`` (a numpy array for the numpy backend).
            klass: element type name; inferred from ``data.dtype`` when None.
            backend: backend object; numpy when None.
        """
        if backend is None:
            backend = get_backend("numpy")
            data = backend.from_numpy(data)
        if klass is None:
            klass = K.klass_of_dtype(data.dtype)
            if data.dtype != K.dtype_of(klass):
                data = backend.astype(data, K.dtype_of(klass))
        shape = data.shape
        if len(shape) != 2:
            ns = normalize_shape(shape)
            if ns != shape:
                data = backend.reshape(data, ns)
        self._data = data
        self._klass = klass
        self._backend = backend
        if SCOPES:
            SCOPES[-1].append(self)

    # --- properties ---
    @property
    def shape(self):
        """MATLAB size as a tuple (at least 2 entries)."""
        return self._data.shape

    @property
    def klass(self):
        """Element type name: 'single', 'int32', 'uint8' or 'logical'."""
        return self._klass

    @property
    def dtype(self):
        """The numpy dtype of the elements."""
        return K.dtype_of(self._klass)

    @property
    def numel(self):
        """Number of elements."""
        n = 1
        for s in self._data.shape:
            n *= s
        return n

    @property
    def ndim(self):
        """Number of dimensions (at least 2)."""
        return len(self._data.shape)

    @property
    def device(self):
        """Name of the backend holding the data ('numpy', 'cuda', 'webgpu')."""
        return self._backend.name

    @property
    def backend(self):
        """The backend object holding the data (see sukiyaki.backends.base)."""
        return self._backend

    @property
    def data(self):
        """The backend's native array: opaque but for shape, dtype and nbytes (a numpy array on the CPU)."""
        return self._data

    @property
    def T(self):
        """Transpose of a 2-d matrix."""
        return METHODS.transpose(self)

    # --- conversion ---
    def to_numpy(self):
        """numpy array of the MATLAB size (no copy on the CPU)."""
        return self._backend.to_numpy(self._data)

    def __array__(self, dtype=None, copy=None):
        a = self.to_numpy()
        if dtype is not None:
            a = a.astype(dtype)
        elif copy:
            a = a.copy()
        return a

    def __dlpack__(self, *args, **kwargs):
        return self._backend.export(self._data).__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._backend.export(self._data).__dlpack_device__()

    def tolist(self):
        """Nested lists, numpy order (rows first)."""
        return self.to_numpy().tolist()

    def item(self):
        """The single element as a Python number (error if numel != 1)."""
        if self.numel != 1:
            raise ValueError(f"item() needs a 1x1 matrix, got {size_str(self.shape)}")
        return self._backend.item(self._data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._klass in ("int32", "uint8"):
            return int(self.item())
        raise TypeError(f"a {self._klass} matrix cannot be used as a Python index")

    def __bool__(self):
        if self.numel == 1:
            return bool(self.item())
        raise ValueError(
            f"the truth value of a {size_str(self.shape)} matrix is ambiguous; use M.any or M.all"
        )

    def __len__(self):
        return self._data.shape[0]

    def copy(self):
        """Independent copy."""
        return Matrix(self._backend.copy(self._data), self._klass, self._backend)

    def astype(self, klass):
        """Converted copy (integer targets truncate and wrap, as the original library)."""
        return METHODS.cast(self, klass)

    # --- MATLAB indexing ---
    def get(self, *subs):
        """MATLAB-style 1-based indexing ``A(subs...)``; see sukiyaki.matrix.indexing."""
        return METHODS.get(self, subs)

    def set(self, *args):
        """MATLAB-style assignment ``A(subs...) = value``, in place: ``A.set(subs..., value)``."""
        if len(args) < 2:
            raise TypeError("set needs at least one subscript and a value: A.set(i, j, value)")
        METHODS.set(self, args[:-1], args[-1])

    # --- numpy-style 0-based indexing (on the host: a GPU matrix is read back and written) ---
    def __getitem__(self, key):
        if isinstance(key, Matrix):
            key = key.to_numpy()
        out = self.to_numpy()[key]
        if isinstance(out, np.ndarray):
            return Matrix(self._backend.from_numpy(np.array(out)), self._klass, self._backend)
        return out.item()

    def __setitem__(self, key, value):
        if isinstance(key, Matrix):
            key = key.to_numpy()
        if isinstance(value, Matrix):
            value = value.to_numpy()
        a = self.to_numpy()
        a[key] = np.asarray(value).astype(a.dtype) if not np.isscalar(value) else value
        back = self._backend.from_numpy(a)
        if back is not self._data:  # to_numpy gave a copy (a device): write it back in place
            self._backend.assign_(self._data, back)

    # --- operators ---
    def __add__(self, other):
        return arith("add", self, other)

    def __radd__(self, other):
        return arith("add", other, self)

    def __sub__(self, other):
        return arith("sub", self, other)

    def __rsub__(self, other):
        return arith("sub", other, self)

    def __mul__(self, other):
        return arith("mul", self, other)

    def __rmul__(self, other):
        return arith("mul", other, self)

    def __truediv__(self, other):
        return arith("div", self, other)

    def __rtruediv__(self, other):
        return arith("div", other, self)

    def __pow__(self, other):
        return arith("pow", self, other)

    def __rpow__(self, other):
        return arith("pow", other, self)

    def __mod__(self, other):
        return arith("mod", self, other)

    def __matmul__(self, other):
        return METHODS.mtimes(self, other)

    def __rmatmul__(self, other):
        return METHODS.mtimes(other, self)

    def __neg__(self):
        return arith("sub", 0, self)

    def __pos__(self):
        return METHODS.uplus(self)

    def __abs__(self):
        return METHODS.abs(self)

    def __invert__(self):
        return logical_op("not", self)

    def __and__(self, other):
        return logical_op("and", self, other)

    def __rand__(self, other):
        return logical_op("and", other, self)

    def __or__(self, other):
        return logical_op("or", self, other)

    def __ror__(self, other):
        return logical_op("or", other, self)

    def __xor__(self, other):
        return logical_op("xor", self, other)

    def __eq__(self, other):
        return compare("eq", self, other)

    def __ne__(self, other):
        return compare("ne", self, other)

    def __lt__(self, other):
        return compare("lt", self, other)

    def __le__(self, other):
        return compare("le", self, other)

    def __gt__(self, other):
        return compare("gt", self, other)

    def __ge__(self, other):
        return compare("ge", self, other)

    __hash__ = None

    def __repr__(self):
        return METHODS.format(self)

    __str__ = __repr__


# ---------------------------------------------------------------------------
# operand handling shared by every elementwise function


def as_matrix(x):
    """A Matrix for x (Matrix as is; numbers, lists and numpy arrays converted)."""
    if isinstance(x, Matrix):
        return x
    return METHODS.array(x)


def _operands(a, b):
    """(native a, native b, klasses of the matrix operands, backend) for a binary op."""
    ta = type(a) is Matrix or isinstance(a, Matrix)
    tb = type(b) is Matrix or isinstance(b, Matrix)
    if not ta and not isinstance(a, _NUMBER_TYPES):
        a, ta = as_matrix(a), True
    if not tb and not isinstance(b, _NUMBER_TYPES):
        b, tb = as_matrix(b), True
    if ta and tb:
        be = a._backend
        if b._backend is not be:
            a, b = same_device(a, b)
            be = a._backend
        xa, xb = a._data, b._data
        if xa.shape != xb.shape:
            xa, xb = expand(a, b)
        return xa, xb, (a._klass, b._klass), be
    if ta:
        return a._data, _number(b), (a._klass,), a._backend
    if tb:
        return _number(a), b._data, (b._klass,), b._backend
    be = get_backend("numpy")
    return be.full((1, 1), _number(a), _F64), _number(b), (), be


def _number(x):
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def to_backend(A, backend):
    """A copied onto another backend object (through the host)."""
    return Matrix(backend.from_numpy(A._backend.to_numpy(A._data)), A._klass, backend)


def same_device(a, b):
    """(a, b) on one device: a CPU operand is uploaded to the GPU of the other one."""
    if a._backend.is_gpu and not b._backend.is_gpu:
        return a, to_backend(b, a._backend)
    if b._backend.is_gpu and not a._backend.is_gpu:
        return to_backend(a, b._backend), b
    raise ValueError(f"operands live on different devices: {a.device} and {b.device}")


def expand(a, b):
    """Native arrays of a and b padded to equal ndim, after checking implicit expansion."""
    sa, sb = a._data.shape, b._data.shape
    n = max(len(sa), len(sb))
    pa = sa + (1,) * (n - len(sa))
    pb = sb + (1,) * (n - len(sb))
    for da, db in zip(pa, pb):
        if da != db and da != 1 and db != 1:
            raise ValueError(f"size mismatch: {size_str(sa)} and {size_str(sb)} are not compatible")
    xa = a._data if pa == sa else a._backend.reshape(a._data, pa)
    xb = b._data if pb == sb else b._backend.reshape(b._data, pb)
    return xa, xb


def _as_dtype(be, x, dtype):
    if isinstance(x, (int, float)):
        return x
    return x if x.dtype == dtype else be.astype(x, dtype)


def _fresh(data, klass, backend):
    """A Matrix around a native array already of klass's dtype and of a MATLAB shape (no checks)."""
    m = _new_matrix(Matrix)
    m._data, m._klass, m._backend = data, klass, backend
    if SCOPES:
        SCOPES[-1].append(m)
    return m


_new_matrix = object.__new__
_PLAIN_NUMBERS = (int, float)


def arith(op, a, b):
    """Elementwise arithmetic with the original's klass rules (op names: backends.base)."""
    if type(a) is Matrix and a._klass == "single":  # fast paths: single with single of one shape, or a number
        tb = type(b)
        if tb is Matrix:
            if b._klass == "single" and b._backend is a._backend and b._data.shape == a._data.shape:
                return _fresh(a._backend.binary[op](a._data, b._data), "single", a._backend)
        elif tb in _PLAIN_NUMBERS:
            return _fresh(a._backend.binary[op](a._data, b), "single", a._backend)
    xa, xb, klasses, be = _operands(a, b)
    k = K.arith_klass(klasses)
    if k == "single" and ("int32" in klasses or not klasses):
        # int32 values (and plain numbers) may not fit float32: compute in double, as the original
        r = be.astype(be.binary[op](_as_dtype(be, xa, _F64), _as_dtype(be, xb, _F64)), _F32)
    elif k == "single":
        r = be.binary[op](_as_dtype(be, xa, _F32), _as_dtype(be, xb, _F32))
        if r.dtype != _F32:
            r = be.astype(r, _F32)
    else:
        r = be.binary[op](_as_dtype(be, xa, _F64), _as_dtype(be, xb, _F64))
        r = be.cast_wrap(r, K.dtype_of(k))
    return Matrix(r, k, be)


def compare(op, a, b):
    """Elementwise comparison giving a logical matrix."""
    xa, xb, _, be = _operands(a, b)
    return Matrix(be.binary[op](xa, xb), "logical", be)


def logical_op(op, a, b=None):
    """and / or / xor / not on the truth of the elements, giving a logical matrix."""
    if b is None:
        a = as_matrix(a)
        return Matrix(a._backend.unary["not"](a._data), "logical", a._backend)
    xa, xb, _, be = _operands(a, b)
    return Matrix(be.binary[op](xa, xb), "logical", be)
