"""convolution_2d and pooling_2d layers (blobs (h, w, c, n)); kernels come from backend.nn."""

import numpy as np

from sukiyaki.nn.layer import REQUIRED, BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import F32, full_shape, he_normal, native, wrap


def _image_spec(layer, spec):
    shape = spec.shape
    if len(shape) > 3:
        raise layer.error(f"expects an image blob (h, w, c), got per-sample shape {spec}")
    return tuple(shape) + (1,) * (3 - len(shape))


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
        oh = (h + 2 * self.pad[0] - self.ksize[0]) // self.stride[0] + 1
        ow = (w + 2 * self.pad[1] - self.ksize[1]) // self.stride[1] + 1
        if oh <= 0 or ow <= 0:
            raise self.error(f"kernel {self.ksize} with pad {self.pad} does not fit the {h}x{w} input")
        return [BlobSpec((oh, ow, self.out_size), "single")]

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

    def _image(self, x):
        """(backend, native single (h, w, c, n) array, n) of the input x."""
        be = x._backend
        n = batch_size(x, self.in_specs[0])
        xd = native(x, full_shape(BlobSpec(_image_spec(self, self.in_specs[0])), n))
        return be, (xd if xd.dtype == F32 else be.astype(xd, F32)), n

    def forward(self, inputs, ctx):
        be, xd, _ = self._image(inputs[0])
        b = native(self.weights["bias"], (self.out_size,)) if "bias" in self.weights else None
        w = native(self.weights["weight"], self.param_shapes()["weight"])
        y, cache = be.nn.conv2d_forward(xd, w, b, self.stride, self.pad, self.group, keep=ctx.need_backward)
        if cache is not None:
            ctx.saved[self.name] = cache
        return [wrap(y, be)]

    def backward(self, inputs, outputs, deltas, ctx):
        be, xd, n = self._image(inputs[0])
        dy = native(deltas[0], full_shape(self.out_specs[0], n))
        w = native(self.weights["weight"], self.param_shapes()["weight"])
        need_dx = self.needs_input_grad(0)
        cache = ctx.saved.pop(self.name, None)
        dx, dw, db = be.nn.conv2d_backward(xd, w, dy, self.stride, self.pad, self.group, need_dx, True, cache)
        self.accumulate_grad("weight", wrap(dw, be))
        if "bias" in self.weights:
            self.accumulate_grad("bias", wrap(be.reshape(db, (self.out_size, 1)), be))
        return [wrap(dx, be) if dx is not None else None]


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
        from sukiyaki.backends.numpy.nn import pool_out_size

        oh = pool_out_size(h, self.ksize[0], self.stride[0], self.pad[0], self.cover_all)
        ow = pool_out_size(w, self.ksize[1], self.stride[1], self.pad[1], self.cover_all)
        if oh <= 0 or ow <= 0:
            raise self.error(f"kernel {self.ksize} does not fit the {h}x{w} input")
        return [BlobSpec((oh, ow, c), in_specs[0].klass)]

    def forward(self, inputs, ctx):
        x = inputs[0]
        be = x._backend
        n = batch_size(x, self.in_specs[0])
        xd = native(x, full_shape(BlobSpec(_image_spec(self, self.in_specs[0])), n))
        y, cache = be.nn.pool2d_forward(xd, self.mode, self.ksize, self.stride, self.pad, self.cover_all)
        if ctx.need_backward:
            ctx.saved[self.name] = cache
        return [wrap(y, be)]

    def backward(self, inputs, outputs, deltas, ctx):
        dy = deltas[0]
        be = dy._backend
        cache = ctx.saved.pop(self.name)
        n = cache[2][0]
        dyd = native(dy, full_shape(self.out_specs[0], n))
        return [wrap(be.nn.pool2d_backward(dyd, cache, self.mode, self.ksize, self.stride, self.pad), be)]
