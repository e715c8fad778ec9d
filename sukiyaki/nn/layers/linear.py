"""linear (fully connected) layer: y = W' x + b with W of shape (in, out), as the original."""

import math

import numpy as np

from sukiyaki.nn.layer import REQUIRED, BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape, he_normal


@register_layer
class Linear(Layer):
    """Params: in_shape (per-sample input shape; inferred when omitted) or in_size (the
    original's name for a vector input), out_size, bias."""

    type_name = "linear"
    defaults = {"in_shape": None, "in_size": None, "out_size": REQUIRED, "bias": True}

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.out_size = self.int_param("out_size", 1)
        self.bool_param("bias")
        shp = self.params["in_shape"]
        if self.params["in_size"] is not None:
            size = self.int_param("in_size", 1)
            if shp is not None and math.prod(shp if isinstance(shp, (list, tuple)) else [shp]) != size:
                raise self.error(f"in_size {size} disagrees with in_shape {shp}")
            shp = shp if shp is not None else [size]
        if shp is not None:
            if isinstance(shp, int):
                shp = [shp]
            if not isinstance(shp, (list, tuple)) or not shp or any(not isinstance(s, int) or s < 1 for s in shp):
                raise self.error(f"in_shape must be a list of positive integers, got {self.params['in_shape']!r}")
        self.in_shape = shp

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        got = in_specs[0]
        if self.in_shape is not None and math.prod(self.in_shape) != got.size:
            raise self.error(f"in_shape {self.in_shape} ({math.prod(self.in_shape)} values) does not match the input {got}")
        self.in_size = got.size
        return [BlobSpec((self.out_size,), "single")]

    def param_shapes(self):
        shapes = {"weight": (self.in_size, self.out_size)}
        if self.params["bias"]:
            shapes["bias"] = (self.out_size,)
        return shapes

    def init_params(self, rng):
        out = {"weight": np.asfortranarray(he_normal(rng, (self.in_size, self.out_size), self.in_size))}
        if self.params["bias"]:
            out["bias"] = np.zeros(self.out_size, np.float32)
        return out

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x = inputs[0]
        n = batch_size(x, self.in_specs[0])
        x2 = ops.single(ops.native(x, (self.in_size, n)))
        W = ops.native(self.weights["weight"], (self.in_size, self.out_size))
        y = ops.matmul(W, x2, trans_x=True)
        if "bias" in self.weights:
            y = ops.add(y, ops.native(self.weights["bias"], (self.out_size, 1)))
        return [ops.wrap(y)]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        x = inputs[0]
        n = batch_size(x, self.in_specs[0])
        x2 = ops.single(ops.native(x, (self.in_size, n)))
        dy = ops.native(deltas[0], (self.out_size, n))
        W = ops.native(self.weights["weight"], (self.in_size, self.out_size))
        self.accumulate_grad("weight", ops.wrap(ops.matmul(x2, dy, trans_y=True)))  # x dy': (in, out)
        if "bias" in self.weights:
            self.accumulate_grad("bias", ops.wrap(ops.sum(dy, 1)))
        if not self.needs_input_grad(0):
            return [None]
        return [ops.wrap(ops.reshape(ops.matmul(W, dy), full_shape(self.in_specs[0], n)))]
