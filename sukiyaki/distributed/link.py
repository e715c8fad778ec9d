"""Link models for experiments: a token bucket that paces the bytes a side sends and receives.

Real deployments leave links alone (``link=None``). The scaling benchmark gives each worker a
:class:`Throttle` of its link's rate (e.g. 1 Gbit/s) and the coordinator one shared Throttle
of its own link's rate (e.g. 10 Gbit/s), so that loopback behaves like a network of those
speeds: a message of n bytes takes n / rate seconds on each link it crosses, and messages on
one link wait their turn.

Example:
    >>> import asyncio
    >>> link = Throttle(bits_per_s=8e6)          # 1 MB/s
    >>> asyncio.run(link.pace(250_000))           # takes about 0.25 s
"""

import asyncio
import time


class Throttle:
    """One direction-agnostic link of a fixed rate, shared by whoever paces bytes through it.

    Args:
        bits_per_s: the link's rate.
        latency: seconds added to each message (one way).
    """

    def __init__(self, bits_per_s, latency=0.0):
        if not bits_per_s > 0:
            raise ValueError(f"Throttle: bits_per_s must be positive, got {bits_per_s!r}")
        self.bytes_per_s = bits_per_s / 8.0
        self.latency = float(latency)
        self._free_at = 0.0  # when the link finishes what it carries now
        self.bytes = 0

    async def pace(self, nbytes):
        """Wait until n bytes have crossed the link (after the messages queued before them)."""
        now = time.monotonic()
        start = max(now, self._free_at)
        self._free_at = start + nbytes / self.bytes_per_s
        self.bytes += nbytes
        delay = self._free_at + self.latency - now
        if delay > 0:
            await asyncio.sleep(delay)
