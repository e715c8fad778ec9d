"""Uploads as they stream in, and the round's sums they go into. No I/O.

A worker sends the gradient of its task in parts (GRADS frames, then RESULT), each tensor
whole or cut in pieces (see :mod:`sukiyaki.distributed.protocol`), the last layers first as
its backward pass produces them. The coordinator checks each piece when it arrives (a
parameter's name, its shape and dtype, the next elements of that tensor and no others,
finite values) and, outside the deterministic mode, adds it to the round's sums at once:
decoding and summing then overlap the transfer and the workers' backward passes.

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
    >>> sums.flat.tolist()
    [0.0, 2.0, 4.0]
"""

import math

import numpy as np

#: Values per step of a sum of squares in float32 (BLAS), accumulated in float64 between steps.
_STEP = 1 << 16


def piece_stats(a):
    """(finite, sum of squares) of a float32 array: one pass of float32 dot products over steps of
    64 Ki values, summed in float64 (a step whose squares overflow float32 is redone in float64).

    Example:
        >>> piece_stats(np.array([3.0, 4.0], np.float32))
        (True, 25.0)
        >>> piece_stats(np.array([1.0, np.nan], np.float32))[0]
        False
    """
    flat = np.asarray(a).reshape(-1, order="A")
    total = 0.0
    for lo in range(0, flat.size, _STEP):
        x = flat[lo:lo + _STEP]
        d = float(np.dot(x, x))
        if not math.isfinite(d):
            if not np.all(np.isfinite(x)):
                return False, math.nan
            y = x.astype(np.float64)
            d = float(np.dot(y, y))
        total += d
    return True, total


class Upload:
    """One task's upload as it arrives (see the module docstring).

    Attributes:
        task: the :class:`~sukiyaki.distributed.coordinator.state.Task`.
        order: its place among the round's uploads (rebuilds add in this order).
        weight: what its values are multiplied by in the sums (1, or its share of the samples
            for a local-steps weight change).
        parts: GRADS frames received.
        received: name -> elements received so far.
        sumsq: sum of squares of its gradient (trained parameters) so far.
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
        self.sumsq = 0.0
        self.pieces = []
        self.added = set()
        self.nonfinite = None

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
    """

    def __init__(self, layout, flat):
        self.layout = layout
        self.flat = flat
        self.views = {n: None for n in layout}

    def add(self, name, offset, values, weight=1.0):
        """Add values (a piece's, column-major) at element ``offset`` of tensor ``name``."""
        v = self.views[name]
        if v is None:
            off, size, _ = self.layout[name]
            v = self.views[name] = self.flat[off:off + size]
            v.fill(0)
        src = np.asarray(values).reshape(-1, order="F")
        dst = v[offset:offset + src.size]
        if weight == 1.0:
            np.add(dst, src, out=dst)
        else:
            np.add(dst, np.multiply(src, np.float32(weight)), out=dst)

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
                    self.add(name, p.offset, up.values(p), up.weight)

    def finish(self):
        """The whole buffer, with the tensors nothing was added to set to 0."""
        for n, v in self.views.items():
            if v is None:
                off, size, _ = self.layout[n]
                self.flat[off:off + size] = 0
        return self.flat
