"""Optimizer base: update rules applied to a whole ParamStore, with lazily created state.

An optimizer holds hyper-parameters, a learning-rate schedule and its state slots (one
flat buffer per slot, laid out like the store's trained prefix, created on first use, as
Chainer's UpdateRule state). ``apply(store)`` updates every trained parameter from its
gradient with one fused backend primitive (a kernel on a GPU; on numpy, one chunked pass
with no full-size temporary), then counts one iteration. Weight decay adds
``weight_decay * w`` to each gradient inside that primitive. No optimizer knows about
networks: it sees the store's flat buffers. Users add optimizers with
``@register_optimizer``, implementing ``update(ops, w, g, lr)`` on those buffers.

Example:
    >>> from sukiyaki.nn.optim import get_optimizer
    >>> opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9)
    >>> opt.apply(net.store)                                    # doctest: +SKIP
"""

import copy
import inspect
import math

import numpy as np

OPTIMIZERS = {}


def register_optimizer(cls):
    """Class decorator: make cls available by cls.type_name."""
    OPTIMIZERS[cls.type_name] = cls
    return cls


def get_optimizer(name, **hyper):
    """An optimizer by registered name with its hyper-parameters."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(sorted(OPTIMIZERS))}") from None
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(hyper) - set(accepted))
    if unknown:
        raise ValueError(f"optimizer {name!r}: unknown hyper-parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    return cls(**hyper)


def check_number(owner, key, v, lo=None, hi=None, lo_open=False, hi_open=False):
    """Raise ValueError unless v is a finite number in the given range."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
        raise ValueError(f"{owner}: {key} must be a finite number in {rng}, got {v!r}")
    return float(v)


class Optimizer:
    """Base class: subclasses set ``type_name``, list their state ``slots`` and implement ``update``."""

    type_name = None
    #: names of the state buffers the rule keeps (each the size of the trained parameters)
    slots = ()

    def __init__(self, lr=0.01, weight_decay=0.0, schedule=None):
        check_number(self.type_name, "lr", lr, 0)
        check_number(self.type_name, "weight_decay", weight_decay, 0)
        self.base_lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.schedule = schedule
        self.iteration = 0
        self.state = {}  # slot name -> native buffer
        self._size = None

    def current_lr(self):
        """Learning rate at the current iteration (schedule applied)."""
        if self.schedule is None:
            return self.base_lr
        return self.base_lr * self.schedule(self.iteration)

    def apply(self, store):
        """Update every trained parameter of the store from its gradient, then count one iteration."""
        self._bind(store)
        if store.trained_size:
            self.update(store.ops, store.trained, store.grad, self.current_lr())
        self.iteration += 1

    def apply_in_pieces(self, store, bounds, split=None):
        """:meth:`apply`, one range ``[lo, hi)`` of the trained buffer after another (a generator:
        it stops after each range; the iteration is counted when it is exhausted). The update
        rules are elementwise, so the result is the same, bit for bit, as one :meth:`apply`;
        what it allows is to use the first ranges (e.g. send the first layers' new weights)
        before the last are updated.

        Args:
            store: the ParamStore.
            bounds: the ranges, covering 0..trained_size once each, in any order.
            split: None, or ``split(fn, n)`` that calls ``fn(a, b)`` over spans covering range(n),
                on several threads, and returns when all are done
                (:func:`sukiyaki.distributed.codec_threads.parallel`): a range of a host (numpy)
                store is then updated by spans side by side, each by a shallow copy of this
                optimizer whose state is its span's (the same bits: elementwise).
        """
        self._bind(store)
        lr = self.current_lr()
        ops = store.ops
        for name in self.slots:
            self.slot(name)  # made whole before it is cut
        whole = self.state

        def update(rule, lo, hi):
            rule.state = {k: ops.view(buf, lo, (hi - lo,)) for k, buf in whole.items()}
            shape = (hi - lo,)
            rule.update(ops, ops.view(store.trained, lo, shape), ops.view(store.grad, lo, shape), lr)

        try:
            for lo, hi in bounds:
                if hi > lo:
                    if split is not None and ops.name == "numpy":
                        split(lambda a, b: update(copy.copy(self), lo + a, lo + b), hi - lo)
                    else:
                        update(self, lo, hi)
                        self.state = whole
                yield lo, hi
        finally:
            self.state = whole
        self.iteration += 1

    def _bind(self, store):
        layout = store.trained_layout
        if self._size is not None and self._layout != layout:
            count = lambda lay: sum(math.prod(s) for _, s in lay)  # noqa: E731
            raise ValueError(f"{self.type_name}: its state is for {count(self._layout)} parameters in "
                             f"{len(self._layout)} tensors, the store has {count(layout)} in {len(layout)}")
        self._size, self._layout = store.trained_size, layout
        self._store = store

    def slot(self, name):
        """The state buffer ``name`` (zeros on first use)."""
        buf = self.state.get(name)
        if buf is None:
            buf = self.state[name] = self._store.ops.zeros((self._size,), self._store.dtype)
        return buf

    def update(self, ops, w, g, lr):
        """Update the flat parameter buffer w in place from gradient g (g must not change)."""
        raise TypeError(f"{type(self).__name__} must implement update")

    # --- captured steps (sukiyaki.nn.captured) ---
    #: the update takes its rate through :meth:`rate_argument`, so that a captured graph can read
    #: it from device memory; a rule that does not is run outside the graph
    device_rate = False
    _device_rate = None

    def rate(self, lr):
        """The rate the update primitive takes this iteration for learning rate lr."""
        return lr

    def rate_argument(self, lr):
        """rate(lr), or the one-element device buffer a captured graph reads it from."""
        return self._device_rate if self._device_rate is not None else self.rate(lr)

    # --- checkpointing ---
    def state_arrays(self, store):
        """{'param name/slot': host float32 array of the parameter's shape} of the optimizer state."""
        out = {}
        for slot, buf in self.state.items():
            for name, a in store.slot_arrays(buf).items():
                out[f"{name}/{slot}"] = a
        return out

    def load_state_arrays(self, arrays, store):
        """Restore the state from state_arrays() output (every entry checked first)."""
        per_slot = {}
        for full, a in arrays.items():
            name, _, slot = full.rpartition("/")
            if slot not in self.slots:
                raise ValueError(f"{self.type_name}: unknown state slot {slot!r} in {full!r} "
                                 f"(its slots: {', '.join(self.slots) or 'none'})")
            a = np.asarray(a)
            if a.size and not np.all(np.isfinite(a)):
                raise ValueError(f"{self.type_name}: state {full!r} holds NaN or infinite values")
            per_slot.setdefault(slot, {})[name] = a
        buffers = {slot: store.slot_from_arrays(named) for slot, named in per_slot.items()}
        self._size = None
        self._bind(store)
        self.state = buffers

    def config(self):
        """JSON-able hyper-parameters and iteration count."""
        return {"type": self.type_name, "lr": self.base_lr, "weight_decay": self.weight_decay,
                "iteration": self.iteration}
