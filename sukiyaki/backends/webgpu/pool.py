"""The buffer pool of a WebGPU device: storage buffers whose arrays are gone, kept by exact
size and handed out again, so that a training step, which allocates the same sizes every
step, creates (and frees) no buffer after its first one.

Reuse needs no synchronisation: every command of the backend runs in the order it was
recorded and no buffer is written from the host once it was handed out (see device.py), so
the work recorded before a buffer came back has read and written it before the work of its
next owner does. A reused buffer is not zero-filled (a new one is): the device clears it
when its new owner asks for zeros.

The pool keeps at most ``max(floor, the high-water mark of bytes in use)`` (the oldest
buffers are dropped first), so it never holds more than the work itself needed at once.

Example:
    >>> class B:
    ...     def __init__(self, size): self.size = size
    >>> pool = BufferPool(floor=64)
    >>> pool.handed_out(16); a = B(16); pool.give(a)
    >>> pool.take(16) is a, pool.take(16), pool.pooled
    (True, None, 0)
"""

import heapq
from collections import OrderedDict

#: Bytes of released buffers kept at least (more when the work had more in use at once).
POOL_FLOOR = 256 << 20


class BufferPool:
    """Released buffers by exact size; of a size, the one first in a fixed order (``id``) is
    taken first, so that work repeating the same allocations and releases (a training step)
    gets the same buffers each time, whatever order they came back in.

    Attributes:
        pooled: bytes of the buffers kept.
        in_use: bytes handed out and not given back (an upper bound: buffers dropped
            without being given back still count).
        peak: the high-water mark of in_use.
        reused, created: buffers taken from the pool, and made new (handed_out), so far.
    """

    def __init__(self, floor=POOL_FLOOR):
        self.floor = floor
        self._free = {}  # size -> heap of (id(buffer), buffer)
        self._age = OrderedDict()  # id(buffer) -> buffer, oldest given back first
        self.pooled = 0
        self.in_use = 0
        self.peak = 0
        self.reused = 0
        self.created = 0

    def _count(self, size):
        self.in_use += size
        if self.in_use > self.peak:
            self.peak = self.in_use

    def handed_out(self, size):
        """Count a new buffer of size bytes as in use."""
        self.created += 1
        self._count(size)

    def take(self, size, usable=None):
        """A kept buffer of exactly size bytes (now in use), or None. usable(buffer): whether a
        kept buffer still works; those that do not are dropped (the garbage collector, freeing
        a cycle that held an array, finalizes the buffer too, even after it was given back)."""
        heap = self._free.get(size)
        while heap:
            _, buf = heapq.heappop(heap)
            del self._age[id(buf)]
            self.pooled -= size
            if usable is None or usable(buf):
                self.reused += 1
                self.in_use += size
                if self.in_use > self.peak:
                    self.peak = self.in_use
                return buf
        return None

    def give(self, buf):
        """Keep buf (no longer used by any array) for reuse; drop the oldest kept ones past the limit."""
        size = buf.size
        self.in_use = self.in_use - size if self.in_use > size else 0
        heapq.heappush(self._free.setdefault(size, []), (id(buf), buf))
        self._age[id(buf)] = buf
        self.pooled += size
        limit = max(self.floor, self.peak)
        while self.pooled > limit:
            self._drop(next(iter(self._age.values())))

    def forget(self, size):
        """Count a buffer of size bytes, destroyed or dropped by its owner, as no longer in use."""
        self.in_use = max(0, self.in_use - size)

    def _drop(self, buf):
        del self._age[id(buf)]
        heap = [entry for entry in self._free[buf.size] if entry[1] is not buf]
        heapq.heapify(heap)
        if heap:
            self._free[buf.size] = heap
        else:
            del self._free[buf.size]
        self.pooled -= buf.size

    def clear(self):
        """Drop every kept buffer (their memory is freed once the work recorded with them is done)."""
        self._free.clear()
        self._age.clear()
        self.pooled = 0
