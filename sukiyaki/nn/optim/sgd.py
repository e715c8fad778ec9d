"""SGD and momentum SGD (the paper's optimiser)."""

from sukiyaki.nn.optim.base import Optimizer, check_number, register_optimizer


@register_optimizer
class SGD(Optimizer):
    """w <- w - lr * g."""

    type_name = "sgd"

    def update_one(self, w, g, state, lr):
        w._backend.axpy_(w.data, -lr, g.data)
        return w


@register_optimizer
class MomentumSGD(Optimizer):
    """v <- momentum * v - lr * g; w <- w + v (as the original's optimizer_momentum_sgd)."""

    type_name = "momentum_sgd"

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = check_number("momentum_sgd", "momentum", momentum, 0, 1, hi_open=True)

    def update_one(self, w, g, state, lr):
        be = w._backend
        v = state.get("velocity")
        if v is None:
            v = state["velocity"] = g.copy()
            be.scale_(v.data, -lr)
        else:
            be.scale_(v.data, self.momentum)
            be.axpy_(v.data, -lr, g.data)
        be.axpy_(w.data, 1.0, v.data)
        return w

    def config(self):
        return super().config() | {"momentum": self.momentum}
