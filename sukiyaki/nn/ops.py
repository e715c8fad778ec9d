"""The typed facade through which layers, optimizers and the parameter store use a backend.

Layers never touch a backend or a native array directly: they unwrap a Matrix to a
native array of a stated shape (:meth:`Ops.native`), compute with the methods below, and
wrap the result (:meth:`Ops.wrap`). Each method is one backend primitive, looked up once
when the facade is made, so a backend that lacks one fails then, not mid-training.
Natives are opaque: only ``shape``, ``dtype`` and ``nbytes`` may be read (see
:mod:`sukiyaki.backends.base`).

Example:
    >>> import numpy as np
    >>> from sukiyaki.matrix import array
    >>> ops = Ops.of(array([[1.0, -2.0]]).backend)
    >>> x = ops.native(array([[1.0, -2.0]]), (2, 1))
    >>> ops.wrap(ops.maximum(x, 0.0)).tolist()
    [[1.0], [0.0]]
"""

import numpy as np

from sukiyaki.matrix import Matrix

F32 = np.dtype(np.float32)
I32 = np.dtype(np.int32)
BOOL = np.dtype(np.bool_)
_INSTANCES = {}


class Ops:
    """One backend's primitives as typed methods (see module docstring)."""

    @staticmethod
    def of(backend):
        """The (memoized) facade of a backend object."""
        ops = _INSTANCES.get(id(backend))
        if ops is None or ops.backend is not backend:
            ops = _INSTANCES[id(backend)] = Ops(backend)
        return ops

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        b, u = backend.binary, backend.unary
        self.add, self.sub, self.mul, self.div = b["add"], b["sub"], b["mul"], b["div"]
        self.maximum, self.minimum = b["maximum"], b["minimum"]
        self.eq, self.gt, self.ge, self.lt = b["eq"], b["gt"], b["ge"], b["lt"]
        self.exp, self.log, self.sqrt = u["exp"], u["log"], u["sqrt"]
        self.tanh, self.sigmoid, self.floor = u["tanh"], u["sigmoid"], u["floor"]
        self.isfinite = u["isfinite"]
        self.nn = backend.nn
        self.matmul = backend.matmul
        self.where = backend.where
        self.concat = backend.concat
        self.copy = backend.copy
        self.upload = backend.from_numpy
        self.download = backend.to_numpy
        self.assign_ = backend.assign_
        self.scale_ = backend.scale_
        self.axpy_ = backend.axpy_
        self.view = backend.view
        self.philox_uniform = backend.philox_uniform

    def available_memory(self):
        """Bytes the backend can still allocate (None when unknown)."""
        return self.backend.available_memory()

    # --- Matrix boundary ---
    def native(self, m, shape=None):
        """The native array of Matrix m, seen with shape if given (column-major; shares m's storage)."""
        d = m._data
        return d if shape is None or d.shape == tuple(shape) else self.backend.reshape(d, tuple(shape))

    def wrap(self, x, klass="single"):
        """A Matrix around native x."""
        return Matrix(x, klass, self.backend)

    # --- creation and conversion ---
    def full(self, shape, value, dtype=F32):
        """A new array of shape filled with value."""
        return self.backend.full(tuple(shape), value, dtype)

    def zeros(self, shape, dtype=F32):
        """A new array of zeros."""
        return self.backend.full(tuple(shape), 0, dtype)

    def arange(self, count, dtype=I32):
        """0, 1, ..., count - 1 as a 1-d array."""
        return self.backend.arange(0, 1, count, dtype)

    def reshape(self, x, shape):
        """x seen with another shape (shares storage)."""
        return x if x.shape == tuple(shape) else self.backend.reshape(x, tuple(shape))

    def single(self, x):
        """x as float32 (x itself when it already is)."""
        return x if x.dtype == F32 else self.backend.astype(x, F32)

    def astype(self, x, dtype):
        """x converted to dtype (values; floats to ints truncate)."""
        return self.backend.astype(x, dtype)

    def slice(self, x, axis, start, stop):
        """A copy of x[start:stop] along axis."""
        keys = [slice(None)] * len(x.shape)
        keys[axis] = slice(start, stop)
        return self.backend.gather(x, keys)

    # --- reductions ---
    def sum(self, x, axes):
        """Sum over the given axes (kept as singletons)."""
        for a in (axes if isinstance(axes, (list, tuple)) else (axes,)):
            x = self.backend.reduce("sum", x, a)
        return x

    def max(self, x, axis):
        """Maximum along axis (kept)."""
        return self.backend.reduce("max", x, axis)

    def argmax(self, x, axis):
        """0-based int64 indices of the first maximum along axis (kept)."""
        return self.backend.argreduce("max", x, axis)[1]

    # --- in place ---
    def add_(self, y, x):
        """y += x in place."""
        self.backend.axpy_(y, 1.0, x)

    def fill_(self, x, value):
        """Every element of x set to value, in place."""
        self.backend.assign_(x, value)


def ops_of(m):
    """The facade of the backend holding Matrix m."""
    return Ops.of(m._backend)
