"""ParamStore: a network's parameters in one flat buffer per dtype, with named views.

Every parameter and state of a network lives in one contiguous native buffer per dtype
(float32 today): the trained parameters first, then the parameters no phase trains,
then the states (running statistics). Each name is a column-major view of its slice, so
a layer reads and writes its weights in place. Gradients live in a second buffer laid
out like the trained prefix. Optimizers update the whole prefix with one fused
primitive; weight files, checkpoints, the 8-bit codec and all-reduce read and write the
whole buffer, with one transfer each way.

Example:
    >>> from sukiyaki.backends import get_backend
    >>> from sukiyaki.nn.ops import Ops
    >>> store = ParamStore(Ops.of(get_backend("numpy")), [("fc/weight", (3, 2), True), ("fc/bias", (2,), True)])
    >>> store.size, store.trained_size, store.view("fc/bias").shape   # each view 64-aligned
    (128, 128, (2, 1))
"""

import math
from collections import namedtuple

import numpy as np

from sukiyaki.nn.ops import F32

#: One name's place: its buffer's dtype, offset and size there, its shape, and its kind
#: ('trained', 'param' for a parameter no phase trains, 'state').
Entry = namedtuple("Entry", "name dtype offset size shape kind")
KINDS = ("trained", "param", "state")
#: Every view starts at a multiple of this many elements (256 bytes of float32): libraries
#: such as cuDNN need aligned pointers, and aligned rows load faster everywhere.
ALIGN = 64


class ParamStore:
    """Named views over flat per-dtype buffers (see module docstring).

    Args:
        ops: the facade of the backend the buffers live on.
        entries: (name, shape, trained) or (name, shape, kind) triples, in network order.
        dtype: the dtype of every entry (float32).
    """

    def __init__(self, ops, entries, dtype=F32):
        self.ops = ops
        self.dtype = np.dtype(dtype)
        rows = []
        for name, shape, kind in entries:
            kind = ("trained" if kind else "param") if isinstance(kind, bool) else kind
            if kind not in KINDS:
                raise ValueError(f"ParamStore: kind of {name!r} must be one of {KINDS}, got {kind!r}")
            rows.append((name, tuple(int(s) for s in shape), kind))
        names = [r[0] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"ParamStore: a name appears twice in {names}")
        self.entries = {}
        offset = 0
        for kind in KINDS:  # trained first: the optimizer's prefix
            for name, shape, k in rows:
                if k == kind:
                    size = math.prod(shape)
                    self.entries[name] = Entry(name, self.dtype, offset, size, shape, kind)
                    offset += -(-size // ALIGN) * ALIGN
            if kind == "trained":
                self.trained_size = offset
        self.size = offset
        self.order = names
        self.data = ops.zeros((self.size,), self.dtype)
        self.grad = ops.zeros((self.trained_size,), self.dtype)
        self.trained = ops.view(self.data, 0, (self.trained_size,))
        self._views = {name: ops.wrap(ops.view(self.data, e.offset, e.shape)) for name, e in self.entries.items()}
        self._grads = {name: ops.wrap(ops.view(self.grad, e.offset, e.shape))
                       for name, e in self.entries.items() if e.kind == "trained"}

    @property
    def trained_layout(self):
        """((name, shape), ...) of the trained parameters, in buffer order."""
        return tuple((n, e.shape) for n, e in self.entries.items() if e.kind == "trained")

    @property
    def nbytes(self):
        """Bytes of the parameter buffer (gradients take trained_size more)."""
        return self.size * self.dtype.itemsize

    def names(self, kind=None):
        """Names in network order (of one kind if given)."""
        return [n for n in self.order if kind is None or self.entries[n].kind == kind]

    def view(self, name):
        """The Matrix viewing parameter or state ``name`` (writes go to the buffer)."""
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"the parameter store has no entry {name!r}") from None

    def grad_view(self, name):
        """The Matrix viewing the gradient of trained parameter ``name``."""
        try:
            return self._grads[name]
        except KeyError:
            raise KeyError(f"the parameter store has no trained parameter {name!r}") from None

    def zero_grad(self):
        """Set every gradient to 0 (one fill of the gradient buffer)."""
        self.ops.fill_(self.grad, 0)

    # --- the whole buffer on the host ---
    def to_numpy(self):
        """A host copy of the parameter buffer (one transfer)."""
        return np.array(self.ops.download(self.data), dtype=self.dtype, copy=True).reshape(-1)

    def arrays(self, flat=None, names=None):
        """{name: host array of its shape} from the buffer (or from ``flat``, its host copy)."""
        flat = self.to_numpy() if flat is None else flat
        out = {}
        for name in self.order if names is None else names:
            e = self.entries[name]
            out[name] = flat[e.offset:e.offset + e.size].reshape(e.shape, order="F").copy(order="F")
        return out

    def load_arrays(self, arrays):
        """Write {name: host array} into the buffer in place (one transfer each way, or, for a
        few entries, one upload each into their views); every name and size is checked before
        anything is written."""
        for name, a in arrays.items():
            e = self.entries.get(name)
            if e is None:
                raise KeyError(f"the parameter store has no entry {name!r}")
            if np.asarray(a).size != e.size:
                raise ValueError(f"parameter {name!r} has {np.asarray(a).size} values, the store expects "
                                 f"{e.size} {e.shape}")
        if 4 * sum(self.entries[n].size for n in arrays) < self.size:  # a few: through their views
            for name, a in arrays.items():
                e = self.entries[name]
                flat = np.asarray(a, dtype=self.dtype).reshape(e.shape, order="F").reshape(-1, order="F")
                self.ops.assign_(self.ops.view(self.data, e.offset, (e.size,)), self.ops.upload(flat))
            return
        flat = self.to_numpy() if set(arrays) != set(self.entries) else np.zeros(self.size, self.dtype)
        for name, a in arrays.items():
            e = self.entries[name]
            flat[e.offset:e.offset + e.size] = np.asarray(a, dtype=self.dtype).reshape(e.shape, order="F").reshape(-1, order="F")
        self.ops.assign_(self.data, self.ops.upload(flat))

    def slot_arrays(self, buffer, names=None):
        """{name: host array} of a trained-prefix-sized buffer (gradients, optimizer state)."""
        flat = np.array(self.ops.download(buffer), dtype=self.dtype).reshape(-1)
        out = {}
        for name in self.names("trained") if names is None else names:
            e = self.entries[name]
            out[name] = flat[e.offset:e.offset + e.size].reshape(e.shape, order="F").copy(order="F")
        return out

    def slot_from_arrays(self, arrays):
        """A new trained-prefix-sized native buffer from {name: host array} (absent names 0)."""
        flat = np.zeros(self.trained_size, self.dtype)
        for name, a in arrays.items():
            e = self.entries.get(name)
            if e is None or e.kind != "trained":
                raise ValueError(f"the parameter store has no trained parameter {name!r}")
            a = np.asarray(a, dtype=self.dtype)
            if a.size != e.size:
                raise ValueError(f"state of {name!r} has {a.size} values, the parameter has {e.size} {e.shape}")
            flat[e.offset:e.offset + e.size] = a.reshape(-1, order="F")  # column-major, as every view
        return self.ops.upload(flat)
