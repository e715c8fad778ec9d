"""numpy implementation of the backend primitives (see sukiyaki.backends.base).

Native arrays are numpy ndarrays in column-major (Fortran) order: every primitive
returns F-contiguous storage (``_fortran`` repairs the rare numpy result that is not).
"""

import os

import numpy as np

from sukiyaki.backends.arraylike import ArrayModulePrimitives
from sukiyaki.backends.numpy import blas, nn, philox

_F64 = np.dtype(np.float64)


try:  # numpy >= 2: swap the error state in one context-variable set (0.3 us, vs 0.9 us for errstate)
    from numpy._core import _ufunc_config as _ufc
    from numpy._core import umath as _umath

    _ERRSTATE = _ufc._extobj_contextvar
    _IGNORE_ALL = _umath._make_extobj(all="ignore")
except (ImportError, AttributeError):  # other numpy versions: the public context manager
    _ERRSTATE = None


def _fortran(x):
    """x itself when column-major, else a column-major copy."""
    return x if x.flags.f_contiguous else np.asfortranarray(x)


def _elementwise(fn, quiet=False):
    """Wrap a ufunc: column-major result; with quiet, MATLAB-silent floating-point events
    (x/0, log(0), Inf-Inf) do not warn."""
    if quiet and _ERRSTATE is not None:
        def run(*args):
            token = _ERRSTATE.set(_IGNORE_ALL)
            try:
                r = fn(*args)
            finally:
                _ERRSTATE.reset(token)
            return r if r.flags.f_contiguous else np.asfortranarray(r)
    elif quiet:
        def run(*args):
            with np.errstate(all="ignore"):
                r = fn(*args)
            return r if r.flags.f_contiguous else np.asfortranarray(r)
    else:
        def run(*args):
            r = fn(*args)
            return r if r.flags.f_contiguous else np.asfortranarray(r)

    run.__name__ = getattr(fn, "__name__", "op")
    return run


def _round_half_away(x):
    """MATLAB round: halves go away from zero (numpy rounds halves to even)."""
    if x.dtype.kind != "f":
        return x.copy(order="F")
    r = np.round(x)
    t = np.trunc(x)
    with np.errstate(invalid="ignore"):
        half = np.abs(x - t) == 0.5
    if half.any():
        r[half] = (t + np.sign(x))[half]
    return r


def _sigmoid(x):
    with np.errstate(over="ignore"):
        out = np.exp(-np.abs(x))
        pos = x >= 0
        return np.where(pos, 1.0 / (1.0 + out), out / (1.0 + out)).astype(x.dtype, copy=False)


def _mod(x, y):
    """MATLAB mod: sign of the divisor, mod(x, 0) = x."""
    r = np.mod(x, y)
    return np.where(y == 0, x, r) if np.any(np.asarray(y) == 0) else r


def _memory_available():
    """MemAvailable of /proc/meminfo, else physical memory, else None (e.g. under Pyodide)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


_quiet_astype = _elementwise(lambda x, dtype: x.astype(dtype, copy=False), quiet=True)


def _quiet_matmul(a, b):
    """a @ b (blas.matmul: numpy's matmul, or einsum where numpy has no BLAS) without
    floating-point warnings (overflow in a diverging run)."""
    if _ERRSTATE is None:
        with np.errstate(all="ignore"):
            return blas.matmul(a, b)
    token = _ERRSTATE.set(_IGNORE_ALL)
    try:
        return blas.matmul(a, b)
    finally:
        _ERRSTATE.reset(token)


BINARY = {
    "add": (np.add, True), "sub": (np.subtract, True), "mul": (np.multiply, True),
    "div": (np.true_divide, True), "pow": (np.power, True),
    "maximum": (np.fmax, False), "minimum": (np.fmin, False),
    "mod": (_mod, True), "rem": (np.fmod, True), "atan2": (np.arctan2, False),
    "eq": (np.equal, False), "ne": (np.not_equal, False), "lt": (np.less, False),
    "le": (np.less_equal, False), "gt": (np.greater, False), "ge": (np.greater_equal, False),
    "and": (np.logical_and, False), "or": (np.logical_or, False), "xor": (np.logical_xor, False),
}
UNARY = {
    "neg": (np.negative, False), "exp": (np.exp, True), "expm1": (np.expm1, True),
    "log": (np.log, True), "log1p": (np.log1p, True), "log2": (np.log2, True),
    "log10": (np.log10, True), "sqrt": (np.sqrt, True), "abs": (np.abs, False),
    "sign": (np.sign, False), "floor": (np.floor, False), "ceil": (np.ceil, False), "fix": (np.trunc, False),
    "round": (_round_half_away, False), "sin": (np.sin, False), "cos": (np.cos, False), "tan": (np.tan, False),
    "asin": (np.arcsin, True), "acos": (np.arccos, True), "atan": (np.arctan, False),
    "sinh": (np.sinh, True), "cosh": (np.cosh, True), "tanh": (np.tanh, False),
    "not": (np.logical_not, False), "isnan": (np.isnan, False), "isinf": (np.isinf, False),
    "isfinite": (np.isfinite, False), "sigmoid": (_sigmoid, False),
}


class NumpyBackend(ArrayModulePrimitives):
    """Arrays are column-major numpy ndarrays whose shape is the MATLAB size (shape and
    indexing primitives: sukiyaki.backends.arraylike)."""

    name = "numpy"
    is_gpu = False
    xp = np

    def __init__(self):
        self.nn = nn
        self._rng = np.random.default_rng()
        self.binary = {op: _elementwise(fn, quiet) for op, (fn, quiet) in BINARY.items()}
        self.unary = {op: _elementwise(fn, quiet) for op, (fn, quiet) in UNARY.items()}

    # --- transfers and memory ---
    def from_numpy(self, a):
        a = np.asarray(a)
        return a if a.flags.f_contiguous else np.asfortranarray(a)

    def to_numpy(self, x):
        return np.asarray(x)  # x itself; raises for a destructed matrix's stand-in

    def item(self, x):
        return x.reshape(-1, order="F")[0].item()

    def export(self, x):
        return x

    def free(self, x):
        return None

    def available_memory(self):
        return _memory_available()

    # --- creation ---

    def full(self, shape, value, dtype):
        if isinstance(value, (int, float, bool)) and value == 0:
            return np.zeros(shape, dtype=dtype, order="F")  # pages of zeros come lazily from the OS
        return np.full(shape, value, dtype=dtype, order="F")

    def arange(self, start, step, count, dtype):
        return self.cast_wrap(start + step * np.arange(count, dtype=_F64), dtype)  # ints wrap

    def rand(self, shape, dtype):
        return np.asfortranarray(self._rng.random(shape, dtype=np.float32).astype(dtype, copy=False))

    def randn(self, shape, dtype):
        return np.asfortranarray(self._rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False))

    def randint(self, low, high, shape, dtype):
        return np.asfortranarray(self._rng.integers(low, high, size=shape, endpoint=True).astype(dtype))

    def seed(self, n):
        self._rng = np.random.default_rng(n)

    def philox_uniform(self, key, iteration, sample_ids, per_sample):
        ids = sample_ids.view(np.uint32) if sample_ids.dtype == np.int32 else sample_ids  # the ids' 32 bits
        if isinstance(iteration, np.ndarray):  # the iteration word in a buffer (a recorded step's)
            iteration = int(iteration.reshape(-1).view(np.uint32)[0])
        return philox.philox_uniform(key, iteration, ids, per_sample)

    # --- copies and conversions ---

    def astype(self, x, dtype):
        if x.dtype == dtype:
            return x
        return _quiet_astype(x, dtype)  # float64 beyond the float32 range becomes Inf silently

    def cast_wrap(self, x, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "b":
            return _fortran(x != 0)
        if dtype.kind == "f" or x.dtype == dtype:
            return _fortran(x.astype(dtype, copy=False))
        if x.dtype.kind in "iub":
            return _fortran(x.astype(dtype))
        bits = 8 * dtype.itemsize
        with np.errstate(invalid="ignore"):
            t = np.where(np.isfinite(x), np.trunc(x), 0.0)
            t = np.fmod(t, 2.0 ** bits)
        return _fortran(t.astype(np.int64).astype(dtype))

    # --- reductions and products ---
    def reduce(self, op, x, axis):
        with np.errstate(all="ignore"):
            if op == "sum":
                r = np.sum(x, axis=axis, keepdims=True)
            elif op == "prod":
                r = np.prod(x, axis=axis, keepdims=True)
            elif op == "max":
                r = np.fmax.reduce(x, axis=axis, keepdims=True)
            elif op == "min":
                r = np.fmin.reduce(x, axis=axis, keepdims=True)
            elif op == "any":
                r = np.any(x, axis=axis, keepdims=True)
            elif op == "all":
                r = np.all(x, axis=axis, keepdims=True)
            else:
                raise ValueError(f"unknown reduction {op!r}")
        return _fortran(r)

    def argreduce(self, op, x, axis):
        if op not in ("max", "min"):
            raise ValueError(f"unknown arg-reduction {op!r}")
        y = x
        if x.dtype.kind == "f":
            nan = np.isnan(x)
            if nan.any():
                y = np.where(nan, -np.inf if op == "max" else np.inf, x)
        idx = (np.argmax if op == "max" else np.argmin)(y, axis=axis, keepdims=True)
        vals = np.take_along_axis(x, idx, axis=axis)
        if y is not x:
            # a NaN chosen only because every other element equals -Inf/Inf: prefer a real one
            chosen_nan = np.isnan(vals) & ~np.all(nan, axis=axis, keepdims=True)
            if chosen_nan.any():
                alt = np.argmax(~nan & (y == np.take_along_axis(y, idx, axis=axis)), axis=axis, keepdims=True)
                idx = np.where(chosen_nan, alt, idx)
                vals = np.take_along_axis(x, idx, axis=axis)
        return _fortran(vals), _fortran(idx.astype(np.int64, copy=False))

    def cumulative(self, op, x, axis):
        with np.errstate(all="ignore"):
            if op == "cumsum":
                return _fortran(np.cumsum(x, axis=axis))
            if op == "cumprod":
                return _fortran(np.cumprod(x, axis=axis))
        raise ValueError(f"unknown cumulative op {op!r}")

    def matmul(self, x, y, trans_x=False, trans_y=False):
        # (op(x) op(y))' = op(y)' op(x)': a row-major product of the transposed views gives the
        # column-major result directly, with no copy of the operands
        yt = y if trans_y else y.T
        xt = x if trans_x else x.T
        return _quiet_matmul(yt, xt).T

    # --- shape (the rest: sukiyaki.backends.arraylike) ---
    def concat(self, xs, axis):
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = np.empty(shape, dtype=np.result_type(*xs), order="F")
        return np.concatenate(xs, axis=axis, out=out)

    # --- in-place updates ---
    def assign_(self, x, y):
        np.copyto(x, y, casting="unsafe")

    def scale_(self, x, a):
        np.multiply(x, x.dtype.type(a), out=x)

    def axpy_(self, y, a, x, chunk=1 << 16):
        if y.shape != x.shape:
            raise ValueError(f"axpy_: shapes differ: {y.shape} and {x.shape}")
        a = y.dtype.type(a)
        fy = y.reshape(-1, order="F")
        fx = x.reshape(-1, order="F")
        if a == 1:
            np.add(fy, fx, out=fy)
            return
        tmp = np.empty(min(chunk, fy.size), dtype=y.dtype)
        for start in range(0, fy.size, chunk):
            stop = min(start + chunk, fy.size)
            t = tmp[: stop - start]
            np.multiply(fx[start:stop], a, out=t)
            np.add(fy[start:stop], t, out=fy[start:stop])
