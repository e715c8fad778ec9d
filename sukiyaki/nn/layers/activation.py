"""Elementwise layers: relu, sigmoid, tanh, dropout."""

import numpy as np

from sukiyaki.nn.layer import Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape


class _Elementwise(Layer):
    keeps_inputs = False
    keeps_outputs = True

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [type(in_specs[0])(in_specs[0].shape, "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        return [ops.wrap(self.apply(ops, ops.single(ops.native(inputs[0]))))]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        y = ops.native(outputs[0])
        return [ops.wrap(ops.mul(ops.native(deltas[0], y.shape), self.slope(ops, y)))]


@register_layer
class ReLU(_Elementwise):
    """max(x, 0)."""

    type_name = "relu"

    def apply(self, ops, x):
        return ops.maximum(x, 0.0)

    def slope(self, ops, y):
        return ops.gt(y, 0.0)

    def forward(self, inputs, ctx):
        fused = getattr(ctx.ops.nn, "relu_forward", None)  # one kernel (base.OPTIONAL_NN_PRIMITIVES)
        if fused is None:
            return super().forward(inputs, ctx)
        ops = ctx.ops
        return [ops.wrap(fused(ops.single(ops.native(inputs[0]))))]

    def backward(self, inputs, outputs, deltas, ctx):
        fused = getattr(ctx.ops.nn, "relu_backward", None)
        if fused is None:
            return super().backward(inputs, outputs, deltas, ctx)
        ops = ctx.ops
        y = ops.native(outputs[0])
        return [ops.wrap(fused(ops.native(deltas[0], y.shape), y))]


@register_layer
class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    type_name = "sigmoid"

    def apply(self, ops, x):
        return ops.sigmoid(x)

    def slope(self, ops, y):
        return ops.mul(y, ops.sub(1.0, y))


@register_layer
class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    type_name = "tanh"

    def apply(self, ops, x):
        return ops.tanh(x)

    def slope(self, ops, y):
        return ops.sub(1.0, ops.mul(y, y))


@register_layer
class Dropout(Layer):
    """In the train phase zero each value with probability dropout_ratio and scale the rest
    by 1 / (1 - dropout_ratio); identity in the test phase.

    The mask is drawn on the device from the counter-based generator (Philox4x32-10), keyed
    by the run's seed and this layer's name and counted by (iteration, sample index,
    element): a sample gets the same mask in any batch, sub-batch or worker, on any backend.
    """

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
        ops = ctx.ops
        per = self.in_specs[0].size
        n = batch_size(inputs[0], self.in_specs[0])
        x = ops.single(ops.native(inputs[0], (per, n)))
        shape = full_shape(self.in_specs[0], n)
        if ctx.phase != "train" or self.ratio == 0:
            return [ops.wrap(ops.reshape(x, shape))]
        u = ctx.uniform(self.name, x.shape[1], per)
        mask = ops.where(ops.ge(u, np.float32(self.ratio)), np.float32(1.0 / (1.0 - self.ratio)), np.float32(0))
        if ctx.need_backward:
            ctx.saved[self.name] = mask
        return [ops.wrap(ops.reshape(ops.mul(x, mask), shape))]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        mask = ctx.saved.pop(self.name, None)
        if mask is None:
            return [deltas[0]]
        dx = ops.mul(ops.native(deltas[0], mask.shape), mask)
        return [ops.wrap(ops.reshape(dx, full_shape(self.in_specs[0], mask.shape[1])))]
