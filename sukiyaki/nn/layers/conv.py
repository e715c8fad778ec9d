"""convolution_2d and pooling_2d layers (blobs (h, w, c, n)); kernels come from the backend.

Each layer builds its :class:`sukiyaki.nn.shapes.ConvSpec` / ``PoolSpec`` once, when the
network is planned, and hands it to the backend's kernels.
"""

import numpy as np

from sukiyaki.nn.layer import REQUIRED, BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape, he_normal
from sukiyaki.nn.shapes import ConvSpec, PoolSpec


def _image_spec(layer, spec):
    shape = spec.shape
    if len(shape) > 3:
        raise layer.error(f"expects an image blob (h, w, c), got per-sample shape {spec}")
    return tuple(shape) + (1,) * (3 - len(shape))


def _image(layer, x, ops):
    """(native float32 (h, w, c, n) array of x, n) as the layer's spec sees it."""
    n = batch_size(x, layer.in_specs[0])
    return ops.single(ops.native(x, tuple(layer.spec.in_shape) + (n,))), n


@register_layer
class Convolution2D(Layer):
    """2-d convolution: weight (kh, kw, in_size / group, out_size), bias (out_size,).

    Params: in_size, out_size, ksize (n or [kh, kw]), stride, pad, group, bias.
    """

    type_name = "convolution_2d"
    defaults = {"in_size": REQUIRED, "out_size": REQUIRED, "ksize": REQUIRED, "stride": 1,
                "pad": 0, "group": 1, "bias": True}

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.in_size = self.int_param("in_size", 1)
        self.out_size = self.int_param("out_size", 1)
        self.ksize = self.pair_param("ksize", 1)
        self.stride = self.pair_param("stride", 1)
        self.pad = self.pair_param("pad", 0)
        self.group = self.int_param("group", 1)
        self.bool_param("bias")
        if self.in_size % self.group or self.out_size % self.group:
            raise self.error(f"in_size {self.in_size} and out_size {self.out_size} must be divisible by group {self.group}")

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        h, w, c = _image_spec(self, in_specs[0])
        if c != self.in_size:
            raise self.error(f"in_size is {self.in_size} but the input has {c} channels ({in_specs[0]})")
        try:
            self.spec = ConvSpec.make((h, w, c), self.out_size, self.ksize, self.stride, self.pad, self.group,
                                      getattr(self, "layout", "hwcn"))
        except ValueError as exc:
            raise self.error(str(exc)) from None
        return [BlobSpec(self.spec.out_shape, "single")]

    def param_shapes(self):
        shapes = {"weight": (self.ksize[0], self.ksize[1], self.in_size // self.group, self.out_size)}
        if self.params["bias"]:
            shapes["bias"] = (self.out_size,)
        return shapes

    def init_params(self, rng):
        shape = self.param_shapes()["weight"]
        fan_in = shape[0] * shape[1] * shape[2]
        out = {"weight": np.asfortranarray(he_normal(rng, shape, fan_in))}
        if self.params["bias"]:
            out["bias"] = np.zeros(self.out_size, np.float32)
        return out

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x, _ = _image(self, inputs[0], ops)
        b = ops.native(self.weights["bias"], (self.out_size,)) if "bias" in self.weights else None
        w = ops.native(self.weights["weight"], self.spec.weight_shape)
        y, cache = ops.nn.conv2d_forward(x, w, b, self.spec, ctx.need_backward)
        if cache is not None:
            ctx.saved[self.name] = cache
        return [ops.wrap(y)]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        x, n = _image(self, inputs[0], ops)
        dy = ops.native(deltas[0], full_shape(self.out_specs[0], n))
        w = ops.native(self.weights["weight"], self.spec.weight_shape)
        cache = ctx.saved.pop(self.name, None)
        dx, dw, db = ops.nn.conv2d_backward(x, w, dy, self.spec, self.needs_input_grad(0), True, cache)
        self.accumulate_grad("weight", ops.wrap(dw))
        if "bias" in self.weights:
            self.accumulate_grad("bias", ops.wrap(db))
        return [ops.wrap(dx) if dx is not None else None]


@register_layer
class Pooling2D(Layer):
    """Max or average pooling. Params: type ('max'|'average'), ksize, stride, pad,
    global_pool (average over the whole image), cover_all (ceil mode; default true for max,
    as Chainer and the original)."""

    type_name = "pooling_2d"
    defaults = {"type": "max", "ksize": None, "stride": None, "pad": 0, "global_pool": False,
                "cover_all": None}
    keeps_inputs = False

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.mode = self.params["type"]
        if self.mode not in ("max", "average"):
            raise self.error(f"type must be 'max' or 'average', got {self.mode!r}")
        self.global_pool = self.bool_param("global_pool")
        if not self.global_pool and self.params["ksize"] is None:
            raise self.error("missing required parameter 'ksize' (or set global_pool: true)")
        if not self.global_pool:
            self.ksize = self.pair_param("ksize", 1)
            self.stride = self.pair_param("stride", 1) if self.params["stride"] is not None else self.ksize
        self.pad = self.pair_param("pad", 0)
        if not self.global_pool and any(p >= k for p, k in zip(self.pad, self.ksize)):
            raise self.error(f"pad {list(self.pad)} must be smaller than ksize {list(self.ksize)}")
        ca = self.params["cover_all"]
        self.cover_all = (self.mode == "max") if ca is None else self.bool_param("cover_all")

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        h, w, c = _image_spec(self, in_specs[0])
        if self.global_pool:
            self.ksize, self.stride, self.pad = (h, w), (1, 1), (0, 0)
        try:
            self.spec = PoolSpec.make((h, w, c), self.mode, self.ksize, self.stride, self.pad, self.cover_all,
                                      getattr(self, "layout", "hwcn"))
        except ValueError as exc:
            raise self.error(str(exc)) from None
        return [BlobSpec(self.spec.out_shape, in_specs[0].klass)]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x, _ = _image(self, inputs[0], ops)
        y, cache = ops.nn.pool2d_forward(x, self.spec, ctx.need_backward)
        if cache is not None:
            ctx.saved[self.name] = cache
        return [ops.wrap(y)]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        n = batch_size(deltas[0], self.out_specs[0])
        dy = ops.native(deltas[0], full_shape(self.out_specs[0], n))
        return [ops.wrap(ops.nn.pool2d_backward(dy, self.spec, ctx.saved.pop(self.name)))]
