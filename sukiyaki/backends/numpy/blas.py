"""The thread count of the BLAS that numpy loaded (OpenBLAS), read and set through ctypes.

While the kernels' own threads each run small products, BLAS must not start threads of
its own for them: the pool asks for one BLAS thread during a parallel region and gives
the count back after, so the large products outside (one BLAS call per chunk) keep every
core. Where the BLAS is not OpenBLAS, or there is none (Pyodide), this does nothing.

Example:
    >>> with single_threaded_blas():
    ...     pass
"""

import contextlib
import ctypes
import sys
import threading

#: numpy without a BLAS (Pyodide's) multiplies with its own loops, which walk a transposed
#: operand slowly: there, the convolution's weight-gradient product ``cols.T @ dY`` runs on a
#: column-major copy of dY (measured in Chromium 156, LeNet batch 64, medians of 8 interleaved
#: runs: the product 128 -> 91 ms, a training step 396 -> 325 ms; the same bits either way, as
#: those loops sum in the same order). Natively the BLAS takes the views as they are, faster.
COPY_FOR_LOOPS = sys.platform == "emscripten"

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
