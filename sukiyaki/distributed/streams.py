"""A worker's streams, layer by layer: the weights coming in, the gradient going out.

:class:`Incoming` holds the weights of one version as their PARAMS parts arrive: the event
loop writes each piece, the compute thread waits (just before running a layer) for that
layer's tensors only. :class:`Upload` sends a task's gradient as the backward pass reports
each layer's: a thread encodes piece after piece while the pieces already made go out in
GRADS parts; what is left when the pass is over (the small first layers) rides with RESULT.

Example:
    >>> inc = Incoming(version=3)      # doctest: +SKIP
    >>> inc.wait(["conv1/weight"])     # doctest: +SKIP
"""

import asyncio
import math
import threading
import time

import numpy as np

from sukiyaki.distributed import protocol as P


class Aborted(Exception):
    """The weights a task waits for will not come (the connection closed, or newer ones came)."""


class Incoming:
    """The weights of one version as their PARAMS parts arrive (filled by the event loop, read by
    the compute thread, which waits for a layer's tensors just before running it).

    Args:
        version: the iteration these weights are of.
    """

    def __init__(self, version):
        self.version = version
        self.values = {}  # wire name -> float32 values, column-major (flat)
        self.received = {}
        self.complete = set()
        self.done = False  # every part in
        self.aborted = False
        self.cond = threading.Condition()
        self.event = asyncio.Event()  # set when done or aborted (for the inline, thread-less path)

    def put(self, piece, values):
        """Write a piece's decoded values (on the event loop); values None: only counted (a
        simulated worker keeps no weights)."""
        n = math.prod(piece.shape)
        with self.cond:
            got = self.received.get(piece.name, 0)
            if piece.offset != got:
                raise P.ProtocolError(f"params: {piece.name!r} elements {piece.offset}.. arrived where {got} was due")
            if values is not None:
                buf = self.values.get(piece.name)
                if buf is None:
                    buf = self.values[piece.name] = np.empty(n, np.float32)
                buf[got:got + piece.count] = np.asarray(values).reshape(-1, order="F")
            self.received[piece.name] = got + piece.count
            if got + piece.count == n:
                self.complete.add(piece.name)
            self.cond.notify_all()

    def finish(self):
        """The last part is in."""
        with self.cond:
            self.done = True
            self.cond.notify_all()
        self.event.set()

    def abort(self):
        """Free every waiter: these weights will not be completed."""
        with self.cond:
            self.aborted = True
            self.cond.notify_all()
        self.event.set()

    def wait(self, names):
        """Block until every wire name is complete (in the compute thread); Aborted when they won't be.
        Returns the seconds waited."""
        t0 = time.perf_counter()
        with self.cond:
            while not all(n in self.complete for n in names):
                if self.aborted or self.done:
                    missing = [n for n in names if n not in self.complete]
                    raise Aborted(f"weights {missing[:3]} of version {self.version} will not come")
                self.cond.wait(1.0)
        return time.perf_counter() - t0


class Upload:
    """A task's upload as the worker sends it: pieces encoded in a thread as the backward pass
    reports gradients, sent in GRADS parts numbered in order as they come, and what is left
    (less than ``PART_BYTES / 4``: the small first layers, usually) carried by the RESULT.

    A part goes out as soon as a quarter of ``PART_BYTES`` is waiting: a small network's
    gradient then travels in its RESULT alone (one frame a task, as many tasks a second as the
    coordinator's message rate allows), a large one's layer by layer."""

    def __init__(self, worker, fields):
        self.worker = worker
        self.fields = fields
        self.parts = 0
        self.sent = set()  # names wholly encoded (sent, or waiting to go with the RESULT)
        self.nonfinite = False
        self.made = asyncio.Queue()
        self.sender = asyncio.get_running_loop().create_task(self._sender())

    async def send_encoded(self, names, grads):
        """Encode gradients ``names`` (the store's, or ``grads``'s) piece after piece (in a thread,
        where the transport has threads); their pieces go out while the next ones are made."""
        w = self.worker
        loop = asyncio.get_running_loop()

        def encode():
            for name in names:
                for item in w.encode_tensor(name, grads):
                    loop.call_soon_threadsafe(self.made.put_nowait, (name,) + item)

        await w._offload(encode)
        self.sent.update(names)

    async def finish(self):
        """Wait for the parts to be out; returns the tensors left for the RESULT."""
        self.made.put_nowait(None)
        return self._tensors(await self.sender)

    def cancel(self):
        self.sender.cancel()

    async def _sender(self):
        pending, size = [], 0
        while True:
            item = await self.made.get()
            if item is None:
                return pending
            if any(p[0] == item[0] for p in pending) or size + len(item[5]) > P.PART_BYTES:
                await self._send(pending)  # one piece of a tensor a frame; parts of PART_BYTES at most
                pending, size = [], 0
            pending.append(item)
            size += len(item[5])
            if size >= P.PART_BYTES // 4:
                await self._send(pending)
                pending, size = [], 0

    def _tensors(self, items):
        tensors = []
        for name, shape, codec, lo, hi, data, finite in items:
            self.nonfinite |= not finite
            n = math.prod(shape)
            whole = lo == 0 and hi == n
            tensors.append((name, P.Encoded(data, shape, 0 if whole else lo, None if whole else hi - lo), codec))
        return tensors

    async def _send(self, items):
        if not items:
            return
        await self.worker.send(P.GRADS, {"iteration": self.fields["iteration"], "task": self.fields["task"],
                                         "part": self.parts}, self._tensors(items))
        self.parts += 1
