"""Adam (Kingma and Ba 2015) with bias correction."""

import math

from sukiyaki.matrix import sqrt
from sukiyaki.nn.optim.base import Optimizer, check_number, register_optimizer


@register_optimizer
class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2; w <- w - lr_t m / (sqrt(v) + eps)."""

    type_name = "adam"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = check_number("adam", "beta1", beta1, 0, 1, hi_open=True)
        self.beta2 = check_number("adam", "beta2", beta2, 0, 1, hi_open=True)
        self.eps = check_number("adam", "eps", eps, 0, lo_open=True)

    def update_one(self, w, g, state, lr):
        be = w._backend
        t = self.iteration + 1
        m, v = state.get("m"), state.get("v")
        if m is None:
            m = state["m"] = g.copy()
            be.scale_(m.data, 1 - self.beta1)
            v = state["v"] = g * g
            be.scale_(v.data, 1 - self.beta2)
        else:
            be.scale_(m.data, self.beta1)
            be.axpy_(m.data, 1 - self.beta1, g.data)
            be.scale_(v.data, self.beta2)
            be.axpy_(v.data, 1 - self.beta2, (g * g).data)
        lr_t = lr * math.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        be.axpy_(w.data, -lr_t, (m / (sqrt(v) + self.eps)).data)
        return w

    def config(self):
        return super().config() | {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
