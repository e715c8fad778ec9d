"""Graph plumbing: branch, plus, concat, flatten, reshape."""

import math

from sukiyaki.nn.layer import BlobSpec, Layer, batch_size, register_layer
from sukiyaki.nn.layers._util import full_shape


@register_layer
class Branch(Layer):
    """Copies its input to n_output outputs (the network sums their gradients)."""

    type_name = "branch"
    n_outputs = None
    defaults = {"n_output": 2}
    keeps_inputs = False

    def check_arity(self, n_inputs, n_outputs):
        n = self.int_param("n_output", 1)
        if n != n_outputs:
            raise self.error(f"n_output is {n} but the definition names {n_outputs} output(s)")

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [in_specs[0]] * self.int_param("n_output", 1)

    def forward(self, inputs, ctx):
        return [inputs[0]] * self.int_param("n_output", 1)

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        total = None
        for d in deltas:
            if d is not None:
                total = ops.native(d) if total is None else ops.add(total, ops.native(d, total.shape))
        return [None if total is None else ops.wrap(total)]


@register_layer
class Plus(Layer):
    """Elementwise sum of n_input inputs of one shape."""

    type_name = "plus"
    n_inputs = None
    defaults = {"n_input": None}
    keeps_inputs = False

    def infer(self, in_specs):
        n = self.params["n_input"]
        if n is not None:
            self.expect_inputs(in_specs, self.int_param("n_input", 1))
        if len(in_specs) < 1:
            raise self.error("needs at least one input")
        for s in in_specs[1:]:
            if s.shape != in_specs[0].shape:
                raise self.error(f"inputs differ in shape: {in_specs[0]} and {s}")
        return [BlobSpec(in_specs[0].shape, "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        n = batch_size(inputs[0], self.in_specs[0])
        shape = full_shape(self.out_specs[0], n)
        total = None
        for x in inputs:  # in single, whatever the inputs' klass (uint8 would wrap)
            xd = ops.single(ops.native(x, shape))
            total = xd if total is None else ops.add(total, xd)
        return [ops.wrap(total)]

    def backward(self, inputs, outputs, deltas, ctx):
        return [deltas[0]] * len(self.in_specs)


@register_layer
class Concat(Layer):
    """Concatenation along axis (1-based dim of the per-sample shape; 3 = channels of images)."""

    type_name = "concat"
    n_inputs = None
    defaults = {"axis": None}
    keeps_inputs = False

    def infer(self, in_specs):
        if not in_specs:
            raise self.error("needs at least one input")
        nd = max(len(s.shape) for s in in_specs)
        axis = self.params["axis"] if self.params["axis"] is not None else nd
        if isinstance(axis, bool) or not isinstance(axis, int) or not 1 <= axis <= nd:
            raise self.error(f"axis must be in 1..{nd}, got {axis!r}")
        self.axis = axis - 1
        shapes = [tuple(s.shape) + (1,) * (nd - len(s.shape)) for s in in_specs]
        for s in shapes[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != self.axis):
                raise self.error(f"inputs {shapes[0]} and {s} differ outside axis {axis}")
        self.shapes = shapes
        out = list(shapes[0])
        out[self.axis] = sum(s[self.axis] for s in shapes)
        return [BlobSpec(out, "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        n = batch_size(inputs[0], self.in_specs[0])
        parts = [ops.single(ops.native(x, s + (n,))) for x, s in zip(inputs, self.shapes)]
        return [ops.wrap(ops.concat(parts, self.axis))]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        n = batch_size(deltas[0], self.out_specs[0])
        d = ops.native(deltas[0], full_shape(self.out_specs[0], n))
        outs, start = [], 0
        for s in self.shapes:
            outs.append(ops.wrap(ops.slice(d, self.axis, start, start + s[self.axis])))
            start += s[self.axis]
        return outs


@register_layer
class Reshape(Layer):
    """Per-sample reshape (column-major); ``shape`` may hold one -1."""

    type_name = "reshape"
    defaults = {"shape": None}
    keeps_inputs = False

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        shape = self.params["shape"]
        size = in_specs[0].size
        if shape is None:
            return [BlobSpec((size,), in_specs[0].klass)]
        if not isinstance(shape, (list, tuple)) or sum(1 for s in shape if s == -1) > 1 or any(
            isinstance(s, bool) or not isinstance(s, int) or (s < 1 and s != -1) for s in shape
        ):
            raise self.error(f"shape must be a list of positive integers with at most one -1, got {shape!r}")
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if size % known:
                raise self.error(f"cannot reshape {in_specs[0]} to {shape}")
            shape = [size // known if s == -1 else s for s in shape]
        if math.prod(shape) != size:
            raise self.error(f"cannot reshape {in_specs[0]} ({size} values) to {shape}")
        return [BlobSpec(shape, in_specs[0].klass)]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x = inputs[0]
        n = batch_size(x, self.in_specs[0])
        return [ops.wrap(ops.native(x, full_shape(self.out_specs[0], n)), x.klass)]

    def backward(self, inputs, outputs, deltas, ctx):
        ops = ctx.ops
        n = batch_size(deltas[0], self.out_specs[0])
        return [ops.wrap(ops.native(deltas[0], full_shape(self.in_specs[0], n)))]


@register_layer
class Flatten(Reshape):
    """Per-sample flatten to a vector (column-major)."""

    type_name = "flatten"
    defaults = {}

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [BlobSpec((in_specs[0].size,), in_specs[0].klass)]
