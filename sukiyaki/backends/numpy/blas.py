"""The BLAS under numpy: its thread count (OpenBLAS, through ctypes), and products without one.

While the kernels' own threads each run small products, BLAS must not start threads of
its own for them: the pool asks for one BLAS thread during a parallel region and gives
the count back after, so the large products outside (one BLAS call per chunk) keep every
core. Where the BLAS is not OpenBLAS, or there is none (Pyodide), this does nothing.
Where numpy has no BLAS at all (Pyodide), :func:`matmul` multiplies through einsum instead.

Example:
    >>> with single_threaded_blas():
    ...     pass
"""

import contextlib
import ctypes
import sys
import threading

import numpy as np

#: numpy without a BLAS (Pyodide's) multiplies with a plain triple loop (about 1.2 GMAC/s in
#: Chromium 156, slower still on a transposed operand), while einsum's sum-of-products loops run
#: the same products at about 3.3 GMAC/s when, in each operand, the contracted axis or the output's
#: last axis is the contiguous one. There (this switch on) products go through :func:`matmul`, and
#: the convolution lowers into layouts made for those loops (see conv.py). Measured in Chromium 156
#: with Pyodide 0.27.7 (numpy 2.0.2), best of 3, ms, matmul -> einsum: LeNet's conv2 forward
#: (4096x500 by 500x50) 80 -> 30, its weight gradient 85 -> 33, its input gradient (all kernel
#: offsets in one product) 53 -> 33, fc3 21 -> 7.5; a LeNet training step (batch 64) 325 -> 155.
#: Natively the BLAS takes every layout as it is, faster: the switch is off there.
NO_BLAS = sys.platform == "emscripten"
#: Without a BLAS, an output at least this wide runs well with the second operand's rows
#: contiguous (einsum adds scaled rows); a narrower one is computed as dot products of contiguous
#: columns (the second operand copied column-major when it is not: a small copy).
WIDE = 64


def matmul(a, b, out=None):
    """a @ b of 2-D arrays (numpy's matmul; without a BLAS, einsum in a layout its loops run fast).

    Without a BLAS (:data:`NO_BLAS`), float operands of one dtype are multiplied by einsum, after
    copying an operand whose layout would make it walk memory across: one in neither order, a
    column-major ``a`` beside a column-major ``b`` (copied row-major), or, for a narrow output
    (fewer than :data:`WIDE` columns), a ``b`` not column-major. The sums are float32 sums in another order than
    matmul's loops: the same numbers to float32 rounding. Without ``out`` the result is row-major.

    Example:
        >>> import numpy as np
        >>> matmul(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))[0, 0]
        np.float32(3.0)
    """
    if not NO_BLAS or a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.kind != "f":
        return np.matmul(a, b, out=out)
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)
    if not (b.flags.c_contiguous or b.flags.f_contiguous):
        b = np.ascontiguousarray(b)
    if a.flags.f_contiguous and not a.flags.c_contiguous and (
            b.flags.f_contiguous or b.shape[1] < WIDE):
        a = np.ascontiguousarray(a)  # then rows of a meet columns of b: dot products
    if b.shape[1] < WIDE and not b.flags.f_contiguous:
        b = np.asfortranarray(b)
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    return np.einsum("ik,kj->ij", a, b, out=out)


_NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads"))
_funcs = None
_lock = threading.Lock()
_depth = 0  # regions open, in all threads: the count is restored when the last one closes
_saved = None


def _openblas():
    """(get, set) functions of the loaded OpenBLAS, or None."""
    global _funcs
    if _funcs is None:
        _funcs = False
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
        except OSError:
            libs = []
        for path in libs:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in _NAMES:
                get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    set_.argtypes = [ctypes.c_int]
                    _funcs = (get, set_)
                    break
            if _funcs:
                break
    return _funcs or None


def blas_threads():
    """Threads the BLAS uses now (None when unknown)."""
    f = _openblas()
    return f[0]() if f else None


@contextlib.contextmanager
def single_threaded_blas():
    """Run the block with one BLAS thread, then restore the count (regions may overlap in
    several threads: the count comes back when the last one ends)."""
    global _depth, _saved
    f = _openblas()
    if not f:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = f[0]()
            if _saved != 1:
                f[1](1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                f[1](_saved)
