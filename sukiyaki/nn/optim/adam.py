"""Adam (Kingma and Ba 2015) with bias correction, one fused backend primitive."""

import math

from sukiyaki.nn.optim.base import Optimizer, check_number, register_optimizer


@register_optimizer
class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2; w <- w - lr_t m / (sqrt(v) + eps)."""

    type_name = "adam"
    slots = ("m", "v")
    device_rate = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = check_number("adam", "beta1", beta1, 0, 1, hi_open=True)
        self.beta2 = check_number("adam", "beta2", beta2, 0, 1, hi_open=True)
        self.eps = check_number("adam", "eps", eps, 0, lo_open=True)

    def rate(self, lr):
        """The bias-corrected rate lr_t of this iteration."""
        t = self.iteration + 1
        return lr * math.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)

    def update(self, ops, w, g, lr):
        ops.nn.adam_update_(w, g, self.slot("m"), self.slot("v"), self.rate_argument(lr), self.beta1, self.beta2,
                            self.eps, self.weight_decay)

    def config(self):
        return super().config() | {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
