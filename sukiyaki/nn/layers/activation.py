"""Elementwise layers: relu, sigmoid, tanh, dropout."""

import numpy as np

from sukiyaki.nn.layer import Layer, register_layer
from sukiyaki.nn.layers._util import F32, wrap


class _Elementwise(Layer):
    keeps_inputs = False
    keeps_outputs = True

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [type(in_specs[0])(in_specs[0].shape, "single")]


def _single(x):
    be = x._backend
    return x.data if x.data.dtype == F32 else be.astype(x.data, F32)


@register_layer
class ReLU(_Elementwise):
    """max(x, 0)."""

    type_name = "relu"

    def forward(self, inputs, ctx):
        x = inputs[0]
        return [wrap(x._backend.binary["maximum"](_single(x), np.float32(0)), x._backend)]

    def backward(self, inputs, outputs, deltas, ctx):
        be = outputs[0]._backend
        return [wrap(be.binary["mul"](deltas[0].data, be.binary["gt"](outputs[0].data, 0)), be)]


@register_layer
class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    type_name = "sigmoid"

    def forward(self, inputs, ctx):
        x = inputs[0]
        return [wrap(x._backend.unary["sigmoid"](_single(x)), x._backend)]

    def backward(self, inputs, outputs, deltas, ctx):
        be = outputs[0]._backend
        y = outputs[0].data
        return [wrap(be.binary["mul"](deltas[0].data, be.binary["mul"](y, be.binary["sub"](np.float32(1), y))), be)]


@register_layer
class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    type_name = "tanh"

    def forward(self, inputs, ctx):
        x = inputs[0]
        return [wrap(x._backend.unary["tanh"](_single(x)), x._backend)]

    def backward(self, inputs, outputs, deltas, ctx):
        be = outputs[0]._backend
        y = outputs[0].data
        return [wrap(be.binary["mul"](deltas[0].data, be.binary["sub"](np.float32(1), be.binary["mul"](y, y))), be)]


@register_layer
class Dropout(Layer):
    """In the train phase zero each value with probability dropout_ratio and scale the rest
    by 1 / (1 - dropout_ratio); identity in the test phase."""

    type_name = "dropout"
    defaults = {"dropout_ratio": 0.5}
    keeps_inputs = False

    def __init__(self, name, params=None):
        super().__init__(name, params)
        r = self.params["dropout_ratio"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise self.error(f"dropout_ratio must be in [0, 1), got {r!r}")
        self.ratio = float(r)

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [type(in_specs[0])(in_specs[0].shape, "single")]

    def forward(self, inputs, ctx):
        x = inputs[0]
        be = x._backend
        if ctx.phase != "train" or self.ratio == 0:
            return [wrap(_single(x), be)]
        keep = (ctx.rng.random(x.shape, dtype=np.float32) >= self.ratio).astype(np.float32)
        mask = be.from_numpy(np.asfortranarray(keep * np.float32(1.0 / (1.0 - self.ratio))))
        if ctx.need_backward:
            ctx.saved[self.name] = mask
        return [wrap(be.binary["mul"](_single(x), mask), be)]

    def backward(self, inputs, outputs, deltas, ctx):
        dy = deltas[0]
        be = dy._backend
        mask = ctx.saved.pop(self.name, None)
        if mask is None:
            return [dy]
        return [wrap(be.binary["mul"](dy.data, mask), be)]
