"""Gradient averaging overlapped with the backward pass, bucket by bucket.

The ParamStore lays the trained parameters out in network order, so the backward pass
finishes them from the end of the gradient buffer toward its start. :func:`plan_buckets`
cuts the buffer into contiguous ranges of whole layers, at least ``bucket_bytes`` each, last
layers first; :class:`GradientReducer` is told (``after_layer``, the Net's backward hook) as
each layer's gradients become final and starts a bucket's all-reduce as soon as the bucket
and every bucket before it are complete (the same order on every rank, as NCCL requires).
Called on the store after the backward pass (the Trainer's ``grad_hook``), it starts what
is left and waits for all of them, so the optimizer then sees the mean gradient.

Unequal shares: a rank whose share of the global batch of N samples is n_r computes the mean
gradient of its n_r samples; each bucket is scaled by n_r * W / N before the mean over the W
ranks, which gives the gradient of the whole batch (the sum over its samples divided by N).

Example:
    >>> reducer = GradientReducer(comm, net.store, share=lambda: (n_local, n_global))   # doctest: +SKIP
    >>> net.train_batch(inputs, after_layer=reducer.after_layer); reducer(net.store)    # doctest: +SKIP
"""

from collections import namedtuple

#: DDP's default bucket size.
DEFAULT_BUCKET_BYTES = 25 << 20

#: A contiguous range [start, stop) of the gradient buffer and the layers whose gradients it holds.
Bucket = namedtuple("Bucket", "start stop layers")


def layer_of(param_name):
    """'conv1/weight' -> 'conv1' (the store names entries 'layer/param')."""
    return param_name.rpartition("/")[0]


def plan_buckets(store, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Buckets tiling [0, store.trained_size), last layers first (see module docstring).

    Example:
        >>> [b.layers for b in plan_buckets(net.store, 1)]              # doctest: +SKIP
        [('fc2',), ('fc1',), ('conv2',), ('conv1',)]
    """
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    starts = {}  # layer -> lowest offset of its trained entries
    for name, e in store.entries.items():
        if e.kind == "trained":
            layer = layer_of(name)
            starts[layer] = min(starts.get(layer, e.offset), e.offset)
    layers = sorted(starts, key=starts.get, reverse=True)
    limit = max(1, bucket_bytes // store.dtype.itemsize)
    buckets, stop, members = [], store.trained_size, []
    for i, layer in enumerate(layers):
        members.append(layer)
        start = starts[layer]
        if stop - start >= limit or i == len(layers) - 1:
            buckets.append(Bucket(start if i < len(layers) - 1 else 0, stop, tuple(members)))
            stop, members = start, []
    return buckets


class GradientReducer:
    """Averages a ParamStore's gradients over the ranks, overlapped with backward (module docstring).

    Args:
        comm: a :class:`sukiyaki.distributed.cluster.comm.Communicator`.
        store: the network's ParamStore.
        bucket_bytes: the least bytes of a bucket.
        share: a function returning (this rank's samples, the global batch's samples) of the
            current step, or None for equal shares.
    """

    def __init__(self, comm, store, bucket_bytes=DEFAULT_BUCKET_BYTES, share=None):
        self.comm, self.store, self.share = comm, store, share
        self.ops = store.ops
        self.buckets = plan_buckets(store, bucket_bytes)
        self._views = [self.ops.view(store.grad, b.start, (b.stop - b.start,)) for b in self.buckets]
        self._bucket_of = {layer: i for i, b in enumerate(self.buckets) for layer in b.layers}
        self.steps = 0
        self._reset()

    def _reset(self):
        self._left = [set(b.layers) for b in self.buckets]
        self._next = 0
        self._handles = []
        self._factor = None

    def _scale(self):
        if self._factor is None:
            self._factor = 1.0
            if self.share is not None:
                n_local, n_global = self.share()
                if n_global <= 0:
                    raise ValueError(f"{self.comm.who}: the global batch is empty")
                self._factor = n_local * self.comm.world_size / n_global
        return self._factor

    def _launch_ready(self):
        while self._next < len(self.buckets) and not self._left[self._next]:
            view = self._views[self._next]
            factor = self._scale()
            if factor != 1.0:
                self.ops.scale_(view, factor)
            self._handles.append(self.comm.start_all_reduce_mean_(view))
            self._next += 1

    def after_layer(self, layer):
        """The Net's backward hook: ``layer``'s gradients of this step are final."""
        i = self._bucket_of.get(layer)
        if i is None:
            return
        self._left[i].discard(layer)
        self._launch_ready()

    def __call__(self, store=None):
        """Finish the step: start what is left, wait for every bucket; the gradients are then the mean."""
        try:
            for left in self._left:
                left.clear()
            self._launch_ready()
            for h in self._handles:
                h.wait()
        finally:
            self._reset()
        self.steps += 1
