"""Output layers: softmax_cross_entropy, softmax, loss (mean squared error), accuracy.

Scores are (c, n) (any per-sample shape is flattened to c values); labels are int32
(1, n) with 0-based class ids, as the original's data layers give them.
"""

import numpy as np

from sukiyaki.nn.layer import BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import F32, native, wrap


def _scores_and_labels(layer, inputs):
    x, t = inputs
    be = x._backend
    c = layer.in_specs[0].size
    n = batch_size(x, layer.in_specs[0])
    xd = native(x, (c, n))
    if xd.dtype != F32:
        xd = be.astype(xd, F32)
    if t.numel != n:
        raise layer.error(f"got {t.numel} labels for {n} samples")
    td = native(t, (1, n))
    lo = be.item(be.reduce("min", td, 1)) if n else 0
    hi = be.item(be.reduce("max", td, 1)) if n else 0
    if n and (lo < 0 or hi >= c):
        bad = lo if lo < 0 else hi
        raise layer.error(f"label {bad} is out of range for {c} classes (labels are 0-based)")
    return be, xd, td, c, n


def _log_softmax(be, xd):
    m = be.reduce("max", xd, 0)
    z = be.binary["sub"](xd, m)
    e = be.unary["exp"](z)
    s = be.reduce("sum", e, 0)
    return z, e, s


def _one_hot(be, td, c):
    classes = be.reshape(be.arange(0, 1, c, np.dtype(np.int32)), (c, 1))
    return be.binary["eq"](classes, td)


class _TwoInputs(Layer):
    n_inputs = 2

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        if in_specs[1].size != 1:
            raise self.error(f"the label input must hold one value per sample, got {in_specs[1]}")
        return [BlobSpec((1,), "single")]


@register_layer
class SoftmaxCrossEntropy(_TwoInputs):
    """Mean over the batch of -log softmax(score)[label] (computed stably)."""

    type_name = "softmax_cross_entropy"

    def forward(self, inputs, ctx):
        be, xd, td, c, n = _scores_and_labels(self, inputs)
        z, e, s = _log_softmax(be, xd)
        logp = be.binary["sub"](z, be.unary["log"](s))
        onehot = _one_hot(be, td, c)
        picked = be.reduce("sum", be.where(onehot, logp, np.float32(0)), 0)
        loss = be.binary["div"](be.reduce("sum", picked, 1), np.float32(-max(n, 1)))
        if ctx.need_backward:
            ctx.saved[self.name] = (be.binary["div"](e, s), onehot, n)
        return [wrap(be.reshape(be.astype(loss, F32), (1, 1)), be)]

    def backward(self, inputs, outputs, deltas, ctx):
        p, onehot, n = ctx.saved.pop(self.name)
        dtop = deltas[0]
        be = dtop._backend
        scale = be.binary["div"](dtop.data, np.float32(max(n, 1)))
        g = be.binary["mul"](be.binary["sub"](p, be.astype(onehot, F32)), scale)
        return [wrap(be.reshape(g, tuple(self.in_specs[0].shape) + (n,)), be), None]


@register_layer
class Softmax(Layer):
    """Softmax over the first (class) dimension."""

    type_name = "softmax"
    keeps_inputs = False
    keeps_outputs = True

    def forward(self, inputs, ctx):
        x = inputs[0]
        be = x._backend
        c = self.in_specs[0].size
        n = batch_size(x, self.in_specs[0])
        xd = native(x, (c, n))
        _, e, s = _log_softmax(be, be.astype(xd, F32))
        return [wrap(be.reshape(be.binary["div"](e, s), tuple(self.in_specs[0].shape) + (n,)), be)]

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [BlobSpec(in_specs[0].shape, "single")]

    def backward(self, inputs, outputs, deltas, ctx):
        y = outputs[0]
        be = y._backend
        c = self.in_specs[0].size
        n = batch_size(y, self.in_specs[0])
        yd = native(y, (c, n))
        dy = native(deltas[0], (c, n))
        dot = be.reduce("sum", be.binary["mul"](yd, dy), 0)
        dx = be.binary["mul"](yd, be.binary["sub"](dy, dot))
        return [wrap(be.reshape(dx, tuple(self.in_specs[0].shape) + (n,)), be)]


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
        x, t = inputs
        be = x._backend
        if x.numel != t.numel:
            raise self.error(f"inputs differ in size: {x.numel} and {t.numel} values")
        xd = be.astype(native(x, (x.numel, 1)), F32)
        td = be.astype(native(t, (t.numel, 1)), F32)
        d = be.binary["sub"](xd, td)
        loss = be.binary["div"](be.reduce("sum", be.binary["mul"](d, d), 0), np.float32(max(x.numel, 1)))
        if ctx.need_backward:
            ctx.saved[self.name] = (d, x.shape, t.shape)
        return [wrap(loss, be)]

    def backward(self, inputs, outputs, deltas, ctx):
        d, xs, ts = ctx.saved.pop(self.name)
        dtop = deltas[0]
        be = dtop._backend
        g = be.binary["mul"](d, be.binary["div"](be.binary["mul"](dtop.data, np.float32(2)), np.float32(max(d.shape[0], 1))))
        neg = be.binary["sub"](np.float32(0), g)
        return [wrap(be.reshape(g, xs), be), wrap(be.reshape(neg, ts), be)]


@register_layer
class Accuracy(_TwoInputs):
    """Fraction of samples whose highest score is at the label (no backward)."""

    type_name = "accuracy"
    keeps_inputs = False

    def forward(self, inputs, ctx):
        be, xd, td, c, n = _scores_and_labels(self, inputs)
        _, idx = be.argreduce("max", xd, 0)
        hits = be.binary["eq"](be.astype(idx, np.dtype(np.int32)), td)
        acc = be.binary["div"](be.reduce("sum", be.astype(hits, F32), 1), np.float32(max(n, 1)))
        return [wrap(be.reshape(acc, (1, 1)), be)]

    def backward(self, inputs, outputs, deltas, ctx):
        return [None, None]
