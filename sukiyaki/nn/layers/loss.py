"""Output layers: softmax_cross_entropy, softmax, loss (mean squared error), accuracy.

Scores are (c, n) (any per-sample shape is flattened to c values); labels are int32
(1, n) with 0-based class ids, as the original's data layers give them. Labels are
checked when their data source is loaded and when the network is planned (a label
outside 0..c-1 is an error there); the layers themselves never read values back.
"""

import numpy as np

from sukiyaki.nn.layer import BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape
from sukiyaki.nn.ops import I32


def _scores_and_labels(layer, inputs, ops):
    x, t = inputs
    c = layer.in_specs[0].size
    n = batch_size(x, layer.in_specs[0])
    if t.numel != n:
        raise layer.error(f"got {t.numel} labels for {n} samples")
    return ops.single(ops.native(x, (c, n))), ops.native(t, (1, n)), c, n


def _log_softmax(ops, xd):
    """(x - max, exp(x - max), sum of exp) along the class axis."""
    z = ops.sub(xd, ops.max(xd, 0))
    e = ops.exp(z)
    return z, e, ops.sum(e, 0)


def _one_hot(ops, td, c):
    """(c, n) logical: class k of sample j is its label."""
    return ops.eq(ops.reshape(ops.arange(c, I32), (c, 1)), td)


class _TwoInputs(Layer):
    n_inputs = 2
    #: the label input, whose values are checked against the class count when planned
    label_input = 1

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        if in_specs[1].size != 1:
            raise self.error(f"the label input must hold one value per sample, got {in_specs[1]}")
        self.classes = in_specs[0].size
        return [BlobSpec((1,), "single")]


@register_layer
class SoftmaxCrossEntropy(_TwoInputs):
    """Mean over the batch of -log softmax(score)[label] (computed stably)."""

    type_name = "softmax_cross_entropy"

    def forward(self, inputs, ctx):
        ops = ctx.ops
        xd, td, c, n = _scores_and_labels(self, inputs, ops)
        z, e, s = _log_softmax(ops, xd)
        logp = ops.sub(z, ops.log(s))
        onehot = _one_hot(ops, td, c)
        picked = ops.sum(ops.where(onehot, logp, np.float32(0)), 0)
        loss = ops.div(ops.sum(picked, 1), np.float32(-max(n, 1)))
        if ctx.need_backward:
            ctx.saved[self.name] = (ops.div(e, s), onehot, n)
        return [ops.wrap(ops.single(loss))]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        p, onehot, n = ctx.saved.pop(self.name)
        scale = ops.div(ops.native(deltas[0], (1, 1)), np.float32(max(n, 1)))
        g = ops.mul(ops.sub(p, ops.single(onehot)), scale)
        return [ops.wrap(ops.reshape(g, full_shape(self.in_specs[0], n))), None]


@register_layer
class Softmax(Layer):
    """Softmax over the first (class) dimension."""

    type_name = "softmax"
    keeps_inputs = False
    keeps_outputs = True

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [BlobSpec(in_specs[0].shape, "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        c = self.in_specs[0].size
        n = batch_size(inputs[0], self.in_specs[0])
        _, e, s = _log_softmax(ops, ops.single(ops.native(inputs[0], (c, n))))
        return [ops.wrap(ops.reshape(ops.div(e, s), full_shape(self.in_specs[0], n)))]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        c = self.in_specs[0].size
        n = batch_size(outputs[0], self.in_specs[0])
        yd = ops.native(outputs[0], (c, n))
        dy = ops.native(deltas[0], (c, n))
        dx = ops.mul(yd, ops.sub(dy, ops.sum(ops.mul(yd, dy), 0)))
        return [ops.wrap(ops.reshape(dx, full_shape(self.in_specs[0], n)))]


@register_layer
class MeanSquaredError(Layer):
    """loss: mean over all elements of (x - target)^2."""

    type_name = "loss"
    n_inputs = 2

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        if in_specs[0].size != in_specs[1].size:
            raise self.error(f"inputs differ in size: {in_specs[0]} and {in_specs[1]}")
        return [BlobSpec((1,), "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x, t = inputs
        if x.numel != t.numel:
            raise self.error(f"inputs differ in size: {x.numel} and {t.numel} values")
        d = ops.sub(ops.single(ops.native(x, (x.numel, 1))), ops.single(ops.native(t, (t.numel, 1))))
        loss = ops.div(ops.sum(ops.mul(d, d), 0), np.float32(max(x.numel, 1)))
        if ctx.need_backward:
            n = batch_size(x, self.in_specs[0])
            ctx.saved[self.name] = (d, n)
        return [ops.wrap(loss)]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        d, n = ctx.saved.pop(self.name)
        dtop = ops.native(deltas[0], (1, 1))
        g = ops.mul(d, ops.div(ops.mul(dtop, np.float32(2)), np.float32(max(d.shape[0], 1))))
        neg = ops.sub(np.float32(0), g)
        return [ops.wrap(ops.reshape(g, full_shape(self.in_specs[0], n))),
                ops.wrap(ops.reshape(neg, full_shape(self.in_specs[1], n)))]


@register_layer
class Accuracy(_TwoInputs):
    """Fraction of samples whose highest score is at the label (no backward)."""

    type_name = "accuracy"
    keeps_inputs = False

    def forward(self, inputs, ctx):
        ops = ctx.ops
        xd, td, c, n = _scores_and_labels(self, inputs, ops)
        hits = ops.eq(ops.astype(ops.argmax(xd, 0), I32), td)
        acc = ops.div(ops.sum(ops.single(hits), 1), np.float32(max(n, 1)))
        return [ops.wrap(ops.reshape(acc, (1, 1)))]

    def backward(self, inputs, outputs, deltas, ctx):
        return [None, None]
