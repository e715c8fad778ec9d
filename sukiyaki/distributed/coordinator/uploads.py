"""Uploads as they stream in, and the round's sums they go into. No I/O.

A worker sends the gradient of its task in parts (GRADS frames, then RESULT), each tensor
whole or cut in pieces (see :mod:`sukiyaki.distributed.protocol`), the last layers first as
its backward pass produces them. The coordinator checks each piece when it arrives (a
parameter's name, its shape and dtype, the next elements of that tensor and no others,
finite values) and, outside the deterministic mode, adds it to the round's sums at once:
decoding and summing then overlap the transfer and the workers' backward passes. A piece's
values are added where they are decoded, straight from its bytes, a step at a time on the
codec's threads (:func:`~sukiyaki.distributed.codec.decode_add`), by one thread that takes the
adds in the order they were asked for (:class:`Sums`): the sums have the bits of adding them
one after the other on the event loop, without holding it.

Nothing of an upload counts before the whole of it is accepted (every tensor complete, the
sample count, the loss, the norm bound over the whole upload): an upload refused or lost
midway is taken out again by rebuilding each tensor it touched from the uploads still
standing, whose pieces are kept (encoded) until the round ends. The deterministic mode adds
nothing early: each accepted upload (one shard) is added in shard order, so the sums have
the same bits whatever the arrival order or the number of workers.

Example:
    >>> import numpy as np
    >>> sums = Sums({"w": (0, 3, (3,))}, np.zeros(3, np.float32))
    >>> sums.add("w", 1, np.array([2.0, 4.0], np.float32))
    >>> sums.finish().tolist()
    [0.0, 2.0, 4.0]
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sukiyaki.distributed import codec as C
from sukiyaki.distributed.protocol import Piece

#: Values per pass of the statistic: whole windows of the sum of squares (``codec.window_squares``).
_STEP = C.ADD_STEP // C.SQUARES_WINDOW * C.SQUARES_WINDOW


def _total(windows):
    """(finite, the windows' sums of squares added in float64 in order)."""
    total = 0.0
    for d in windows:
        total += d
    return (True, total) if math.isfinite(total) else (False, math.nan)


def piece_stats(a):
    """(finite, sum of squares) of a float32 array: the float32 dot products of its windows of 64 Ki
    values from the first (``codec.window_squares``: a window whose squares overflow float32 is
    redone in float64), summed in float64 in order; (False, NaN) when a value is NaN or infinite.
    The same bits as :func:`encoded_stats` and ``codec.decode_add``'s squares on the same values.

    Example:
        >>> piece_stats(np.array([3.0, 4.0], np.float32))
        (True, 25.0)
        >>> piece_stats(np.array([1.0, np.nan], np.float32))[0]
        False
    """
    flat = np.asarray(a).reshape(-1, order="A")
    return _total(d for lo in range(0, flat.size, _STEP) for d in C.window_squares(flat[lo:lo + _STEP]))


def encoded_stats(piece):
    """:func:`piece_stats` of a piece's values, decoded from its bytes a step at a time (no array of
    its size): the same windows, so the same bits. ValueError for bytes the codec refuses.

    Example:
        >>> p = Piece("w", (2,), 0, 2, codec="raw", data=np.array([3.0, 4.0], np.float32).tobytes())
        >>> encoded_stats(p)
        (True, 25.0)
    """
    return _total(d for _, x in C.decode_steps(piece.data, piece.codec, piece.count, step=_STEP)
                  for d in C.window_squares(x))


def _decode_add(p, dst, weight):
    """A piece's bytes decoded and added into ``dst``; its stats taken on the way when still unknown
    (``p.stats`` of (True, None): an 8-bit piece, finite), with the bits of :func:`piece_stats`."""
    if p.stats is not None and p.stats[1] is None:
        p.stats = _total(C.decode_add(p.data, p.codec, p.count, dst, weight, squares=True))
    else:
        C.decode_add(p.data, p.codec, p.count, dst, weight)


_adder = None
_adder_lock = threading.Lock()


def _after_fork():
    global _adder, _adder_lock
    _adder, _adder_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _submit(fn):
    """fn() on the one thread that adds to the sums, after everything submitted before it (None:
    no thread could start; the caller runs it)."""
    global _adder
    with _adder_lock:
        if _adder is None:
            _adder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sukiyaki-sums")
        try:
            return _adder.submit(fn)
        except RuntimeError:  # no threads here, or the interpreter shutting down
            return None


class Upload:
    """One task's upload as it arrives (see the module docstring).

    Attributes:
        task: the :class:`~sukiyaki.distributed.coordinator.state.Task`.
        order: its place among the round's uploads (rebuilds add in this order).
        weight: what its values are multiplied by in the sums (1, or its share of the samples
            for a local-steps weight change).
        parts: GRADS frames received.
        received: name -> elements received so far.
        counted: its gradient pieces (trained parameters) so far, whose ``stats`` give the sum of
            squares (:meth:`sumsq`; an 8-bit piece's are taken as it is added to the sums).
        pieces: every piece received (:class:`~sukiyaki.distributed.protocol.Piece`, kept
            encoded once added).
        added: names of which pieces went into the round's sums.
        nonfinite: why it holds NaN or infinity (decided when RESULT arrives), or None.
    """

    def __init__(self, task, order, weight=1.0):
        self.task = task
        self.order = order
        self.weight = weight
        self.parts = 0
        self.received = {}
        self.counted = []
        self.pieces = []
        self.added = set()
        self.nonfinite = None

    def sumsq(self):
        """The sum of squares of its gradient (every piece's stats known: after the sums' wait)."""
        total = 0.0
        for p in self.counted:
            total += p.stats[1]
        return total

    def values(self, piece):
        """The decoded values of one of its pieces (decoded again when they were dropped)."""
        return piece.array if piece.array is not None else piece.decode()


class Sums:
    """A round's gradient sums in one float32 buffer laid out as the store's trained prefix.

    Args:
        layout: name -> (offset, size, shape) in the buffer.
        flat: the buffer (its padding between tensors must be and stays 0).

    ``views[name]`` is the tensor's slice of the buffer once something was added to it, None
    before (a tensor's slice is zeroed when first touched, so the buffer is reused round
    after round without clearing it all).

    The adds (and those zeroings) run on one thread of their own, in the order they were asked
    for, each spread over the codec's threads: :meth:`add` returns at once. Read the buffer
    after :meth:`wait` (``finish`` waits; ``pending`` is what an event loop can await).
    """

    def __init__(self, layout, flat):
        self.layout = layout
        self.flat = flat
        self.views = {n: None for n in layout}
        self._queued = []  # futures of the adds asked for and not yet waited for

    def _run(self, fn):
        f = _submit(fn)
        if f is None:
            self.wait()
            fn()
        else:
            self._queued.append(f)
            if len(self._queued) > 256:  # done ones are forgotten (their errors kept for wait)
                self._queued = [q for q in self._queued if not q.done() or q.exception() is not None]

    def add(self, name, offset, values, weight=1.0):
        """Add values at element ``offset`` of tensor ``name``: an array (a piece's, column-major),
        or a :class:`~sukiyaki.distributed.protocol.Piece` (its decoded values, or else its bytes,
        decoded as they are added)."""
        v = self.views[name]
        if v is None:
            off, size, _ = self.layout[name]
            v = self.views[name] = self.flat[off:off + size]
            self._run(lambda: v.fill(0))
        if isinstance(values, Piece):
            if values.array is None:
                p = values
                dst = v[offset:offset + p.count]
                self._run(lambda: _decode_add(p, dst, weight))
                return
            values = values.array
        src = np.asarray(values).reshape(-1, order="F")
        dst = v[offset:offset + src.size]
        if weight == 1.0:
            self._run(lambda: np.add(dst, src, out=dst))
        else:
            self._run(lambda: np.add(dst, np.multiply(src, np.float32(weight)), out=dst))

    def pending(self):
        """A concurrent future done when every add asked for so far is (None: none is pending)."""
        return self._queued[-1] if self._queued and not self._queued[-1].done() else None

    def wait(self):
        """Block until every add asked for so far is done (raising the first one's error)."""
        queued, self._queued = self._queued, []
        for f in queued:
            f.result()

    def drop(self, name):
        """Forget everything added to ``name`` (its slice is zeroed when next touched)."""
        self.views[name] = None

    def rebuild(self, name, uploads):
        """Tensor ``name`` summed again from ``uploads`` alone (in their order): what an upload
        taken out had added is gone, exactly."""
        self.drop(name)
        for up in sorted(uploads, key=lambda u: u.order):
            for p in up.pieces:
                if p.name == name:
                    self.add(name, p.offset, p, up.weight)

    def finish(self):
        """The whole buffer, with the tensors nothing was added to set to 0."""
        self.wait()
        for n, v in self.views.items():
            if v is None:
                off, size, _ = self.layout[n]
                self.flat[off:off + size] = 0
        return self.flat
