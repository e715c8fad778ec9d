"""Optimizer base: per-parameter update rules with lazily created state (as Chainer's UpdateRule).

An optimizer holds hyper-parameters, a learning-rate schedule and, per parameter name, a
state dict created on first update. ``step(net)`` applies one update to every parameter
that has a gradient. Weight decay adds ``weight_decay * w`` to each gradient first.
Users add optimizers with ``@register_optimizer``.

Example:
    >>> from sukiyaki.nn.optim import get_optimizer
    >>> opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9)
"""

import inspect
import math

import numpy as np

from sukiyaki.matrix import Matrix

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
    """Base class: subclasses set ``type_name`` and implement ``update_one``."""

    type_name = None

    def __init__(self, lr=0.01, weight_decay=0.0, schedule=None):
        check_number(self.type_name, "lr", lr, 0)
        check_number(self.type_name, "weight_decay", weight_decay, 0)
        self.base_lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.schedule = schedule
        self.iteration = 0
        self.state = {}

    def current_lr(self):
        """Learning rate at the current iteration (schedule applied)."""
        if self.schedule is None:
            return self.base_lr
        return self.base_lr * self.schedule(self.iteration)

    def step(self, net, grad_scale=1.0):
        """Update every parameter of net that has a gradient, then count one iteration."""
        lr = self.current_lr()
        for layer in net.layers.values():
            for key, grad in layer.grads.items():
                name = f"{layer.name}/{key}"
                w = layer.weights[key]
                g = grad if grad_scale == 1.0 else grad * grad_scale
                if self.weight_decay:
                    g = g.copy() if g is grad else g
                    g._backend.axpy_(g.data, self.weight_decay, w.data)
                st = self.state.get(name)
                if st is None:
                    st = self.state[name] = self.init_state(w)
                layer.weights[key] = self.update_one(w, g, st, lr)
        self.iteration += 1

    def init_state(self, w):
        """New state dict for parameter w."""
        return {}

    def update_one(self, w, g, state, lr):
        """Updated w from gradient g: in place where the backend allows (w is returned).

        g must not be modified (it is the layer's accumulated gradient); state may be.
        """
        raise TypeError(f"{type(self).__name__} must implement update_one")

    # --- checkpointing ---
    def state_arrays(self):
        """{'param name/slot': numpy array} of the optimizer state."""
        out = {}
        for name, st in self.state.items():
            for slot, v in st.items():
                if isinstance(v, Matrix):
                    out[f"{name}/{slot}"] = np.array(v.to_numpy(), dtype=np.float32, copy=True)
        return out

    def load_state_arrays(self, arrays, like):
        """Restore state from state_arrays() output; like(name) gives the parameter Matrix."""
        self.state = {}
        for full, a in arrays.items():
            name, _, slot = full.rpartition("/")
            w = like(name)
            st = self.state.setdefault(name, {})
            arr = np.array(a, dtype=np.float32, copy=True).reshape(w.shape, order="F")
            st[slot] = Matrix(w._backend.from_numpy(np.asfortranarray(arr)), "single", w._backend)

    def config(self):
        """JSON-able hyper-parameters and iteration count."""
        return {"type": self.type_name, "lr": self.base_lr, "weight_decay": self.weight_decay,
                "iteration": self.iteration}
