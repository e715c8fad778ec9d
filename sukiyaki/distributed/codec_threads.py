"""The codec's threads: a large tensor is encoded by several threads at once, each a span of it.

numpy releases the GIL in its ufunc loops and in ``take``, so the spans of one tensor are
coded side by side; every span writes its own slice of the output, so the bytes are the same
whatever the number of threads (1 is the plain loop of one thread). The coordinator encodes
the weights it broadcasts this way and a worker its gradients (:mod:`sukiyaki.distributed.codec`).

The number of threads: ``set_threads(n)``, else the environment variable
``SUKIYAKI_CODEC_THREADS``, else ``min(DEFAULT_MAX_THREADS, cores this process may use)``; 1
under Pyodide (no threads), and 1 from the moment a thread fails to start. The coordinator
caps that default (:func:`cap_default`): its event loop shares the GIL with these threads.

Example:
    >>> out = [0] * 10
    >>> def fill(lo, hi):
    ...     out[lo:hi] = [i * i for i in range(lo, hi)]
    ...     return hi - lo
    >>> sum(parallel(fill, 10, min_span=1)), out[9]
    (10, 81)
"""

import os
import sys
import threading
from concurrent.futures import wait

#: Threads by default, at most: a 138 M-value gradient is coded in spans of millions of values,
#: and 8 threads already make the codec faster than a 10 Gbit/s link needs.
DEFAULT_MAX_THREADS = 8
#: Values a span holds at least: below, another thread costs more than it saves.
MIN_SPAN = 1 << 16

_threads = None
_explicit = False  # set_threads was called
_pool = None
_lock = threading.Lock()


def _after_fork():
    """In a forked child: the parent's pool has no threads here; a new one is made when needed."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def threads():
    """Threads the codec uses (see the module docstring)."""
    global _threads
    if _threads is None:
        env = os.environ.get("SUKIYAKI_CODEC_THREADS", "")
        if sys.platform == "emscripten":
            n = 1
        elif env.strip():
            try:
                n = int(env)
            except ValueError:
                n = 0
            if n < 1:
                raise ValueError(f"SUKIYAKI_CODEC_THREADS must be a positive integer, got {env!r}")
        else:
            try:
                n = len(os.sched_getaffinity(0))
            except (AttributeError, OSError):
                n = os.cpu_count() or 1
            n = max(1, min(n, DEFAULT_MAX_THREADS))
        _threads = n
    return _threads


def cap_default(n):
    """At most ``n`` threads unless a number was asked for (``set_threads``, ``SUKIYAKI_CODEC_THREADS``):
    the coordinator's cap, whose event loop shares the GIL with these threads (each span's
    Python between numpy calls holds it: on 16 cores, 8 threads slowed the loop's reading of
    the uploads; benchmarks/distributed_scaling.py --coordinator-codec-threads)."""
    global _pool, _threads
    if _explicit or os.environ.get("SUKIYAKI_CODEC_THREADS", "").strip():
        return
    n = max(1, min(threads(), int(n)))
    with _lock:
        if _pool is not None and n != _threads:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n


def set_threads(n):
    """Use ``n`` threads from now on (1: every span in the calling thread, no pool).

    Example:
        >>> before = threads(); set_threads(1); threads()
        1
        >>> set_threads(before)
    """
    global _threads, _pool, _explicit
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"codec threads: expected a positive integer, got {n!r}")
    with _lock:
        if _pool is not None and n != _threads:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n
        _explicit = True


def spans(n, parts, align=1):
    """``parts`` (at most) contiguous (lo, hi) covering range(n), in order, every cut a multiple of
    ``align``, sizes as even as that allows.

    Example:
        >>> spans(10, 3), spans(1000, 3, align=256)
        ([(0, 4), (4, 7), (7, 10)], [(0, 512), (512, 768), (768, 1000)])
    """
    units = -(-n // align)
    parts = max(1, min(parts, units))
    q, r = divmod(units, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = min(n, lo + (q + (i < r)) * align)
        out.append((lo, hi))
        lo = hi
    return out


def _pool_or_none():
    global _pool
    with _lock:
        if _pool is None and _threads is not None and _threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="sukiyaki-codec")
        return _pool


def parallel(fn, n, align=1, min_span=None):
    """``fn(lo, hi)`` over spans of range(n) (:func:`spans`, one a thread, none smaller than about
    ``min_span``, default :data:`MIN_SPAN`); returns the results in span order. The calling thread
    takes the first span; every span is done before this returns or raises. When a thread cannot
    start (no threads here), the spans are done inline, and from then on with one thread."""
    global _threads
    parts = min(threads(), max(1, n // max(1, MIN_SPAN if min_span is None else min_span)))
    if parts < 2:
        return [fn(0, n)]
    cut = spans(n, parts, align)
    pool = _pool_or_none()
    futures = []
    try:
        for lo, hi in cut[1:]:
            futures.append(pool.submit(fn, lo, hi))
    except (RuntimeError, AttributeError):  # can't start new thread, the interpreter shutting down, no pool
        _threads = 1
    error = None
    try:
        first = [fn(*cut[0])]
        rest = [fn(*span) for span in cut[1 + len(futures):]]  # the spans no thread took
    except BaseException as exc:  # raised once every thread is done with this tensor
        error = exc
    if futures:
        wait(futures)
    if error is not None:
        raise error
    return first + [f.result() for f in futures] + rest
