"""SGD and momentum SGD (the paper's optimiser), each one fused backend primitive."""

from sukiyaki.nn.optim.base import Optimizer, check_number, register_optimizer


@register_optimizer
class SGD(Optimizer):
    """w <- w - lr * (g + weight_decay * w)."""

    type_name = "sgd"
    device_rate = True

    def update(self, ops, w, g, lr):
        ops.nn.sgd_update_(w, g, self.rate_argument(lr), self.weight_decay)


@register_optimizer
class MomentumSGD(Optimizer):
    """v <- momentum * v - lr * g; w <- w + v (as the original's optimizer_momentum_sgd)."""

    type_name = "momentum_sgd"
    slots = ("velocity",)
    device_rate = True

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = check_number("momentum_sgd", "momentum", momentum, 0, 1, hi_open=True)

    def update(self, ops, w, g, lr):
        ops.nn.momentum_update_(w, g, self.slot("velocity"), self.rate_argument(lr), self.momentum, self.weight_decay)

    def config(self):
        return super().config() | {"momentum": self.momentum}
