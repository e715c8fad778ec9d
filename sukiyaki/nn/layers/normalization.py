"""batch_normalization: per-channel normalisation with learned scale/shift and running statistics."""

import numpy as np

from sukiyaki.nn.layer import REQUIRED, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape


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
        ops = ctx.ops
        x = inputs[0]
        n = batch_size(x, self.in_specs[0])
        shape, bshape, axes = self._layout(n)
        xd = ops.single(ops.native(x, shape))
        gamma = ops.native(self.weights["gamma"], bshape)
        beta = ops.native(self.weights["beta"], bshape)
        eps = np.float32(self.params["eps"])
        fused = getattr(ops.nn, "batchnorm_apply", None)
        if fused is not None:  # the backend's own kernels (sukiyaki.backends.base.OPTIONAL_NN_PRIMITIVES)
            return [ops.wrap(self._forward_fused(ops, ctx, xd, shape, gamma, beta, eps))]
        if ctx.phase == "train":
            m = int(np.prod(shape)) // self.in_size
            mean = ops.div(ops.sum(xd, axes), np.float32(m))
            xc = ops.sub(xd, mean)
            var = ops.div(ops.sum(ops.mul(xc, xc), axes), np.float32(m))
            inv_std = ops.div(np.float32(1), ops.sqrt(ops.add(var, eps)))
            xhat = ops.mul(xc, inv_std)
            self._update_running(ops, mean, var, m)
            if ctx.need_backward:
                ctx.saved[self.name] = (xhat, inv_std, m)
        else:
            rm = ops.native(self.states["running_mean"], bshape)
            rv = ops.native(self.states["running_var"], bshape)
            inv_std = ops.div(np.float32(1), ops.sqrt(ops.add(rv, eps)))
            xhat = ops.mul(ops.sub(xd, rm), inv_std)
            if ctx.need_backward:
                ctx.saved[self.name] = (xhat, inv_std, None)
        return [ops.wrap(ops.add(ops.mul(gamma, xhat), beta))]

    def _forward_fused(self, ops, ctx, xd, shape, gamma, beta, eps):
        nn = ops.nn
        if ctx.phase == "train":
            m = int(np.prod(shape)) // self.in_size
            running = (ops.native(self.states["running_mean"]), ops.native(self.states["running_var"]),
                       float(self.params["decay"]))
            mean, _, inv_std = nn.batchnorm_stats(xd, self.axis, eps, running)
        else:
            m = None
            mean = ops.native(self.states["running_mean"])
            inv_std = ops.div(np.float32(1), ops.sqrt(ops.add(ops.native(self.states["running_var"]), eps)))
        if ctx.need_backward:
            ctx.saved[self.name] = (xd, mean, inv_std, m)
        return nn.batchnorm_apply(xd, mean, inv_std, gamma, beta, self.axis)

    def _update_running(self, ops, mean, var, m):
        """r = decay * r + (1 - decay) * batch statistic, in place (the variance unbiased)."""
        d = float(self.params["decay"])
        adjust = m / max(m - 1, 1)
        for key, stat, factor in (("running_mean", mean, 1.0 - d), ("running_var", var, (1.0 - d) * adjust)):
            r = ops.native(self.states[key])
            stat = ops.reshape(stat, r.shape)
            ops.scale_(r, d)
            ops.axpy_(r, factor, stat)

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        saved = ctx.saved.pop(self.name)
        n = batch_size(deltas[0], self.out_specs[0])
        shape, bshape, axes = self._layout(n)
        dyd = ops.native(deltas[0], shape)
        if len(saved) == 4:  # the backend's kernels (see forward)
            xd, mean, inv_std, m = saved
            dx, dgamma, dbeta = ops.nn.batchnorm_backward(dyd, xd, mean, inv_std, ops.native(self.weights["gamma"]),
                                                          self.axis, m is not None)
            self.accumulate_grad("gamma", ops.wrap(ops.reshape(dgamma, (self.in_size, 1))))
            self.accumulate_grad("beta", ops.wrap(ops.reshape(dbeta, (self.in_size, 1))))
            return [ops.wrap(dx)]
        xhat, inv_std, m = saved
        dbeta = ops.sum(dyd, axes)
        dgamma = ops.sum(ops.mul(dyd, xhat), axes)
        self.accumulate_grad("gamma", ops.wrap(ops.reshape(dgamma, (self.in_size, 1))))
        self.accumulate_grad("beta", ops.wrap(ops.reshape(dbeta, (self.in_size, 1))))
        gamma = ops.native(self.weights["gamma"], bshape)
        if m is None:
            return [ops.wrap(ops.mul(dyd, ops.mul(gamma, inv_std)))]
        inner = ops.sub(ops.sub(ops.mul(np.float32(m), dyd), dbeta), ops.mul(xhat, dgamma))
        return [ops.wrap(ops.mul(ops.mul(gamma, inv_std), ops.div(inner, np.float32(m))))]
