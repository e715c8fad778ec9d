"""The weights of one version as PARAMS parts: encoded once, in forward order, shared by every worker.

When a round starts, the coordinator encodes W_t with the run's weight codec in a thread,
tensor after tensor in network (forward) order, and cuts the bytes into parts of about
``PART_BYTES`` (a large tensor in several pieces, small ones packed together). Each part is
ready as soon as its tensors are encoded: the first parts go out to the workers while the
last tensors are still being encoded, and a worker starts its forward pass when its first
layers have arrived (see :mod:`sukiyaki.distributed.protocol`). Every worker receives the
same bytes (a lossy codec's decoded copy is the same everywhere: no copy drifts).

The optimizer step that made these weights is taken here too, a tensor at a time just before
each tensor is encoded (:class:`~sukiyaki.distributed.coordinator.state.PendingStep`), so the
first layers go out before the last are updated. The weights must not change while they are
encoded: the coordinator waits for :attr:`Broadcast.encoded` before it takes in gradients
again (``app.py``).

Example:
    >>> bc = Broadcast(state, loop)                      # doctest: +SKIP
    >>> await bc.ready[0].wait(); bc.payloads[0]          # doctest: +SKIP
"""

import asyncio
import logging
import math

import numpy as np

from sukiyaki.distributed import codec as C
from sukiyaki.distributed.protocol import PART_BYTES, plan_parts
from sukiyaki.distributed.coordinator.state import STATE_PREFIX

log = logging.getLogger("sukiyaki.coordinator")


class Broadcast:
    """One version's PARAMS parts, made by a thread (see the module docstring).

    Args:
        state: the CoordinatorState (its store's current weights are encoded).
        loop: the event loop that waits on the parts.
        part_bytes: about how many bytes a part holds.

    Attributes:
        version, key: the iteration, and (iteration, weights generation) that identify W.
        codec: the weight codec.
        parts: how many parts.
        entries, payloads: per part, the header's tensor entries and the bytes that follow it
            (None until ready).
        ready: per part, an asyncio.Event set when it is.
        encoded: set when every part is ready (or the encoding failed: ``error`` says why).
    """

    def __init__(self, state, loop, part_bytes=PART_BYTES):
        self.version = state.iteration
        self.key = (state.iteration, state.weights_generation)
        self.codec = state.settings.codec_down
        self.loop = loop
        store = state.net.store
        order = []
        for name in state.params_order():
            raw = name.startswith(STATE_PREFIX)
            entry = store.entries[name[len(STATE_PREFIX):] if raw else name]
            order.append((name, entry.shape, "raw" if raw else self.codec))
        self.plan = plan_parts(order, part_bytes)
        self.parts = len(self.plan)
        self.entries = [None] * self.parts
        self.payloads = [None] * self.parts
        self.ready = [asyncio.Event() for _ in range(self.parts)]
        self.encoded = asyncio.Event()
        self.error = None
        self._store = store
        self._step = state.pending_step  # the optimizer step of this version, taken here tensor by tensor
        self.future = loop.run_in_executor(None, self._encode_all)

    def _set(self, event):
        self.loop.call_soon_threadsafe(event.set)

    def _values(self, name):
        """The store's values of a tensor, as a host float32 array of its shape (column-major)."""
        store = self._store
        key = name[len(STATE_PREFIX):] if name.startswith(STATE_PREFIX) else name
        m = store.view(key)
        return np.asarray(store.ops.download(store.ops.native(m)), dtype=np.float32)

    def _encode_all(self):
        pieces = {}  # name -> the generator of its pieces' bytes (a tensor is encoded piece after piece)
        try:
            for k, part in enumerate(self.plan):
                entries, chunks = [], []
                for name, shape, codec, lo, hi in part:
                    n = math.prod(shape)
                    if name not in pieces:
                        if self._step is not None and not name.startswith(STATE_PREFIX):
                            self._step.through(name)  # its new values, now (the later tensors' come later)
                        bounds = [(a, b) for p in self.plan for (m, _, _, a, b) in p if m == name]
                        pieces[name] = C.encode_pieces(self._values(name), codec, bounds)
                    data = next(pieces[name])
                    e = {"name": name, "shape": list(shape), "dtype": "float32", "codec": codec}
                    if not (lo == 0 and hi == n):
                        e.update(offset=lo, count=hi - lo)
                    if hi == n:
                        del pieces[name]
                    e["nbytes"] = len(data)
                    entries.append(e)
                    chunks.append(data)
                self.entries[k] = entries
                self.payloads[k] = b"".join(chunks)
                self._set(self.ready[k])
            if self._step is not None:
                self._step.finish()
        except Exception as exc:  # e.g. non-finite weights in an 8-bit codec: said, and every waiter freed
            self.error = f"the weights of iteration {self.version} could not be encoded: {exc}"
            log.error(self.error)
            for ev in self.ready:
                self._set(ev)
        finally:
            self._set(self.encoded)

    @property
    def nbytes(self):
        """Bytes of the parts made so far."""
        return sum(len(p) for p in self.payloads if p is not None)
