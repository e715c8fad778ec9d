"""A small thread pool for the numpy kernels' data movement (lowering, col2im, transposes).

numpy releases the GIL in copies and ufunc loops, so samples of a batch can be moved by
several threads at once while BLAS threads its own products. The pool has
``SUKIYAKI_NUM_THREADS`` workers (default: two, or one core; see DEFAULT_MAX_WORKERS);
where threads do not exist (Pyodide, one core) every call runs inline.

Example:
    >>> out = [0] * 10
    >>> def fill(lo, hi):
    ...     for i in range(lo, hi):
    ...         out[i] = i * i
    >>> _ = parallel_for(fill, 10, cost=1 << 20)
    >>> out[9]
    81
"""

import contextvars
import os
import sys

from sukiyaki.backends.numpy.blas import single_threaded_blas

#: Elements moved per thread below which another thread costs more than it saves.
MIN_WORK_PER_THREAD = 1 << 16
_pool = None
_workers = None


#: Threads by default: measured on LeNet (batch 64) on a 16-core Xeon, 2 threads ran fastest
#: (3,628 img/s; 1: 2,864; 4: 3,318; 8: 2,491; 16: 1,661): beyond, the GIL and the threads'
#: wake-ups cost more than the shared data movement saves at these sizes.
DEFAULT_MAX_WORKERS = 2


def workers():
    """Threads the kernels use: SUKIYAKI_NUM_THREADS, else min(cores, DEFAULT_MAX_WORKERS) (1 under Pyodide)."""
    global _workers
    if _workers is None:
        env = os.environ.get("SUKIYAKI_NUM_THREADS", "")
        if sys.platform == "emscripten":
            n = 1
        elif env.strip():
            try:
                n = max(1, int(env))
            except ValueError:
                raise ValueError(f"SUKIYAKI_NUM_THREADS must be a positive integer, got {env!r}") from None
        else:
            try:
                n = len(os.sched_getaffinity(0))
            except (AttributeError, OSError):
                n = os.cpu_count() or 1
            n = min(n, DEFAULT_MAX_WORKERS)
        _workers = n
    return _workers


def set_workers(n):
    """Use n threads from now on (1: no pool)."""
    global _workers, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_workers: n must be a positive integer, got {n!r}")
    if _pool is not None and n != _workers:
        _pool.shutdown(wait=True)
        _pool = None
    _workers = n


def _get_pool():
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="sukiyaki-numpy")
    return _pool


def ranges(n, parts):
    """parts contiguous (lo, hi) ranges covering range(n), sizes differing by at most one."""
    parts = max(1, min(parts, n))
    q, r = divmod(n, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = lo + q + (1 if i < r else 0)
        out.append((lo, hi))
        lo = hi
    return out


def parallel_for(fn, n, cost):
    """Call fn(lo, hi) over a split of range(n) on the pool; returns the results in order.

    The BLAS runs one thread inside the region (see blas.py): the products fn makes are
    small, and the pool's threads are the parallelism.

    Args:
        fn: function of a range of items (samples), writing disjoint outputs.
        n: number of items.
        cost: elements moved in all (how many threads pay: one per MIN_WORK_PER_THREAD).
    """
    parts = min(workers(), n, max(1, int(cost) // MIN_WORK_PER_THREAD))
    if parts < 2:
        return [fn(0, n)]
    split = ranges(n, parts)
    pool = _get_pool()
    with single_threaded_blas():
        # each task runs in a copy of the caller's context: numpy's error state goes along
        futures = [pool.submit(contextvars.copy_context().run, fn, lo, hi) for lo, hi in split[1:]]
        first = fn(*split[0])  # the calling thread takes a share too
        return [first] + [f.result() for f in futures]
