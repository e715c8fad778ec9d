"""A training step recorded once as a device graph and replayed (CUDA graphs).

On a GPU a small network's step is bound by the launch of its hundreds of kernels, not by
their work; recorded once and replayed with one launch, it is bound by the work. What a
replay needs from the host each step is written into buffers the graph reads: the batch
(the data layers run eagerly, as they gather from a host source, and their outputs are
copied into the graph's input blobs), the samples' global indices and the iteration word
(Philox), and the optimizer's rate (schedules, Adam's bias correction).

The first step of each batch size runs eagerly (it builds what the step needs: cuDNN plans,
compiled kernels, the optimizer's state); the second is captured, then replayed. Where
capture is impossible (a backend without graphs, a layer that reads the device from the
host) the step runs eagerly, and the reason is said once. A custom optimizer that does not
take its rate from device memory (``device_rate`` False) has its update run eagerly after
each replay of the rest.

Example:
    >>> step = CapturedStep(net)                                          # doctest: +SKIP
    >>> losses = step.run(indices, 0, 0, ["batch"], optimizer)            # doctest: +SKIP
"""

import numpy as np

from sukiyaki.backends.base import CaptureError
from sukiyaki.nn.context import Context

_U32 = 2 ** 32


class CapturedStep:
    """zero_grads + train_batch + optimizer.apply on one whole batch, as a replayed graph.

    Args:
        net: the Net (its backend must offer ``capture``; see sukiyaki.backends.base).
        log: function taking a line of text (the reason when capture is off); None for none.
    """

    def __init__(self, net, log=print):
        self.net = net
        self.log = log if log is not None else (lambda line: None)
        self.off = None  # why steps run eagerly, once decided
        if not callable(getattr(net.ops.backend, "capture", None)):
            self.off = f"the {net.device} backend has no graph capture"
        self._graphs = {}  # batch size -> _Recorded
        self._warm = set()  # batch sizes that ran one eager step

    @property
    def active(self):
        """Whether steps may be replayed (no reason to run them eagerly was found)."""
        return self.off is None

    def memory_bytes(self):
        """Device memory the recorded graphs hold of their own (their private pools)."""
        return sum(getattr(rec.graph, "pool_bytes", 0) for rec in self._graphs.values())

    def turn_off(self, reason):
        """Run every later step eagerly, saying why (once)."""
        if self.off is None:
            self.off = reason
            self._graphs.clear()
            self.log(f"note: CUDA graph off, training eagerly: {reason}")

    def run(self, indices, seed, iteration, inputs, optimizer):
        """One step on the batch ``indices`` (host int64); ``inputs``: the names of the
        network inputs that take them; ``optimizer`` updates ``net.store`` (another one than
        the last step's, or new state buffers, are recorded again). Returns {loss blob: native (1, 1)} (device buffers
        of the graph: read or copy them before the next step), or None when the step must
        run eagerly (the caller runs it)."""
        if self.off is not None:
            return None
        n = len(indices)
        if n not in self._warm:
            self._warm.add(n)
            return None
        rec = self._graphs.get(n)
        if rec is not None and rec.buffers != _buffers(self.net, optimizer):
            rec = None  # the store, the optimizer or its state was replaced (weights loaded, resumed): record again
        if rec is None:
            try:
                rec = self._graphs[n] = _Recorded(self.net, optimizer, indices, seed, inputs)
            except CaptureError as exc:
                self.turn_off(f"the step could not be captured ({exc})")
                return None
        return rec.replay(indices, seed, iteration, inputs)


def _buffers(net, opt):
    """Identities of the buffers a recorded step writes: a new one means recording again."""
    store = net.store
    return (id(opt), id(store.data), id(store.trained), id(store.grad),
            tuple((k, id(v)) for k, v in sorted(opt.state.items())))


class _Recorded:
    """The graph of one batch size, its input buffers, and how to fill them."""

    def __init__(self, net, opt, indices, seed, inputs):
        self.net, self.opt = net, opt
        ops = net.ops
        self.ops = ops
        ctx = Context("train", True, net.device, seed=seed, iteration=0)
        data = net.run_data_layers({b: indices for b in inputs}, ctx)
        self.data = {b: ops.native(m) for b, m in data.items()}  # the graph's input blobs, refilled per step
        self.klass = {b: m.klass for b, m in data.items()}
        n = len(indices)
        self.ids = ops.upload(np.zeros(n, dtype=np.int32))
        self.counter = ops.upload(np.zeros(1, dtype=np.int32))
        self.rate = ops.upload(np.zeros(1, dtype=np.float32))
        self.update_inside = opt.device_rate
        store = net.store
        if self.update_inside and store.trained_size:
            opt._bind(store)
            for name in opt.slots:  # state made now: made inside the graph, it would be zeroed at each replay
                opt.slot(name)
        losses = net.schedules["train"].losses

        def step():
            store.zero_grad()
            cctx = Context("train", True, net.device, seed=seed, iteration=0)
            cctx.use_device_step(self.ids, self.counter)
            given = {b: ops.wrap(x, self.klass[b]) for b, x in self.data.items()}
            out = net.train_batch({}, given=given, ctx=cctx)
            if self.update_inside and store.trained_size:
                opt._device_rate = self.rate
                try:
                    opt.update(ops, store.trained, store.grad, 0.0)
                finally:
                    opt._device_rate = None
            return {b: ops.native(out[b], (1, 1)) for b in losses}

        self.buffers = _buffers(net, opt)
        self.graph = ops.backend.capture(step)
        self.losses = self.graph.outputs

    def replay(self, indices, seed, iteration, inputs):
        ops, opt, net = self.ops, self.opt, self.net
        ctx = Context("train", True, net.device, seed=seed, iteration=iteration)
        data = net.run_data_layers({b: indices for b in inputs}, ctx)
        for b, m in data.items():
            ops.assign_(self.data[b], ops.native(m))
        ids = (np.asarray(indices, dtype=np.int64) % _U32).astype(np.uint32).view(np.int32)
        ops.assign_(self.ids, ops.upload(ids))
        ops.assign_(self.counter, ops.upload(np.array([iteration % _U32], dtype=np.uint32).view(np.int32)))
        if self.update_inside:
            ops.assign_(self.rate, ops.upload(np.array([opt.rate(opt.current_lr())], dtype=np.float32)))
        self.graph.replay()
        if self.update_inside:
            opt.iteration += 1
        else:
            opt.apply(net.store)
        return self.losses
