"""batch_normalization: per-channel normalisation with learned scale/shift and running statistics."""

import numpy as np

from sukiyaki.nn.layer import REQUIRED, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import F32, full_shape, native, reduce_axes, wrap


@register_layer
class BatchNormalization(Layer):
    """Params: in_size (channels), target_dim (1-based channel dim of the blob: 1 for (c, n),
    3 for (h, w, c, n)), eps, decay (running statistics: r = decay * r + (1 - decay) * batch).

    The train phase normalises with batch statistics and updates the running mean and the
    (unbiased) running variance; the test phase uses the running statistics.
    """

    type_name = "batch_normalization"
    defaults = {"in_size": REQUIRED, "target_dim": None, "eps": 1e-5, "decay": 0.9}

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.in_size = self.int_param("in_size", 1)
        self.number_param("eps", 0, None, lo_open=True)
        self.number_param("decay", 0, 1)

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        shape = in_specs[0].shape
        td = self.params["target_dim"]
        if td is None:
            td = len(shape) if len(shape) > 1 else 1
        if isinstance(td, bool) or not isinstance(td, int) or not 1 <= td <= max(len(shape), 1):
            raise self.error(f"target_dim must be a dim of the per-sample shape {in_specs[0]}, got {td!r}")
        self.axis = td - 1
        if shape[self.axis] != self.in_size:
            raise self.error(f"in_size is {self.in_size} but dim {td} of the input {in_specs[0]} is {shape[self.axis]}")
        return [type(in_specs[0])(shape, "single")]

    def param_shapes(self):
        return {"gamma": (self.in_size,), "beta": (self.in_size,)}

    def state_shapes(self):
        return {"running_mean": (self.in_size,), "running_var": (self.in_size,)}

    def init_params(self, rng):
        return {"gamma": np.ones(self.in_size, np.float32), "beta": np.zeros(self.in_size, np.float32)}

    def init_states(self):
        return {"running_mean": np.zeros(self.in_size, np.float32), "running_var": np.ones(self.in_size, np.float32)}

    def _layout(self, n):
        shape = full_shape(self.in_specs[0], n)
        bshape = tuple(s if i == self.axis else 1 for i, s in enumerate(shape))
        axes = [i for i in range(len(shape)) if i != self.axis]
        return shape, bshape, axes

    def forward(self, inputs, ctx):
        x = inputs[0]
        be = x._backend
        n = batch_size(x, self.in_specs[0])
        shape, bshape, axes = self._layout(n)
        xd = native(x, shape)
        if xd.dtype != F32:
            xd = be.astype(xd, F32)
        gamma = native(self.weights["gamma"], bshape)
        beta = native(self.weights["beta"], bshape)
        eps = np.float32(self.params["eps"])
        sub, mul, div = be.binary["sub"], be.binary["mul"], be.binary["div"]
        if ctx.phase == "train":
            m = int(np.prod(shape)) // self.in_size
            mean = div(reduce_axes(be, "sum", xd, axes), np.float32(m))
            xc = sub(xd, mean)
            var = div(reduce_axes(be, "sum", mul(xc, xc), axes), np.float32(m))
            inv_std = div(np.float32(1), be.unary["sqrt"](be.binary["add"](var, eps)))
            xhat = mul(xc, inv_std)
            d = np.float32(self.params["decay"])
            rm = self.states["running_mean"]
            rv = self.states["running_var"]
            adjust = np.float32(m / max(m - 1, 1))
            self.states["running_mean"] = wrap(be.binary["add"](mul(d, rm.data), mul(np.float32(1 - d), be.reshape(mean, rm.shape))), be)
            self.states["running_var"] = wrap(be.binary["add"](mul(d, rv.data), mul(np.float32((1 - d) * adjust), be.reshape(var, rv.shape))), be)
            if ctx.need_backward:
                ctx.saved[self.name] = (xhat, inv_std, m)
        else:
            rm = native(self.states["running_mean"], bshape)
            rv = native(self.states["running_var"], bshape)
            inv_std = div(np.float32(1), be.unary["sqrt"](be.binary["add"](rv, eps)))
            xhat = mul(sub(xd, rm), inv_std)
            if ctx.need_backward:
                ctx.saved[self.name] = (xhat, inv_std, None)
        y = be.binary["add"](mul(gamma, xhat), beta)
        return [wrap(y, be)]

    def backward(self, inputs, outputs, deltas, ctx):
        dy = deltas[0]
        be = dy._backend
        xhat, inv_std, m = ctx.saved.pop(self.name)
        n = batch_size(dy, self.out_specs[0])
        shape, bshape, axes = self._layout(n)
        dyd = native(dy, shape)
        mul, sub = be.binary["mul"], be.binary["sub"]
        dbeta = reduce_axes(be, "sum", dyd, axes)
        dgamma = reduce_axes(be, "sum", mul(dyd, xhat), axes)
        self.accumulate_grad("gamma", wrap(be.reshape(dgamma, (self.in_size, 1)), be))
        self.accumulate_grad("beta", wrap(be.reshape(dbeta, (self.in_size, 1)), be))
        gamma = native(self.weights["gamma"], bshape)
        if m is None:
            return [wrap(mul(dyd, mul(gamma, inv_std)), be)]
        inner = sub(sub(mul(np.float32(m), dyd), dbeta), mul(xhat, dgamma))
        dx = mul(mul(gamma, inv_std), be.binary["div"](inner, np.float32(m)))
        return [wrap(dx, be)]
