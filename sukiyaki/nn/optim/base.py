"""Optimizer base: per-parameter update rules with lazily created state (as Chainer's UpdateRule).

An optimizer holds hyper-parameters, a learning-rate schedule and, per parameter name, a
state dict created on first update. ``step(net)`` applies one update to every parameter
that has a gradient. Weight decay adds ``weight_decay * w`` to each gradient first.
Users add optimizers with ``@register_optimizer``.

Example:
    >>> from sukiyaki.nn.optim import get_optimizer
    >>> opt = get_optimizer("momentum_sgd", lr=0.01, momentum=0.9)
"""

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
    return cls(**hyper)


class Optimizer:
    """Base class: subclasses set ``type_name`` and implement ``update_one``."""

    type_name = None

    def __init__(self, lr=0.01, weight_decay=0.0, schedule=None):
        if not isinstance(lr, (int, float)) or lr < 0:
            raise ValueError(f"{self.type_name}: lr must be a non-negative number, got {lr!r}")
        if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ValueError(f"{self.type_name}: weight_decay must be a non-negative number, got {weight_decay!r}")
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
                    out[f"{name}/{slot}"] = np.asarray(v.to_numpy(), dtype=np.float32)
        return out

    def load_state_arrays(self, arrays, like):
        """Restore state from state_arrays() output; like(name) gives the parameter Matrix."""
        self.state = {}
        for full, a in arrays.items():
            name, _, slot = full.rpartition("/")
            w = like(name)
            st = self.state.setdefault(name, {})
            st[slot] = Matrix(w._backend.from_numpy(np.asfortranarray(np.asarray(a, dtype=np.float32).reshape(w.shape, order="F"))), "single", w._backend)

    def config(self):
        """JSON-able hyper-parameters and iteration count."""
        return {"type": self.type_name, "lr": self.base_lr, "weight_decay": self.weight_decay,
                "iteration": self.iteration}
