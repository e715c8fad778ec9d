"""Layer base class and the registry that maps JSON ``type`` strings to layer classes.

A layer declares its JSON type name, its arity, its parameters with defaults, and
implements ``infer`` (per-sample output shapes from input shapes, checked once when a
network is built), ``forward`` and ``backward`` on matrices. Users add layers with
``@register_layer``.

Blob shapes in ``infer`` exclude the batch dimension, which is always last (the
original's (h, w, c, n) layout for images, (d, n) for vectors). Blobs are matrices on
the network's device; a layer computes on them with ``sukiyaki.matrix`` functions (as
below) or, for speed, through ``ctx.ops`` (:mod:`sukiyaki.nn.ops`), and never reads a
value back to the host (that would stall a GPU and forbid capturing the step).

Example:
    >>> from sukiyaki.nn.layer import Layer, register_layer
    >>> @register_layer
    ... class Double(Layer):
    ...     type_name = "double_it"
    ...     def forward(self, inputs, ctx):
    ...         return [inputs[0] * 2]
    ...     def backward(self, inputs, outputs, deltas, ctx):
    ...         return [deltas[0] * 2]
"""

import math

import numpy as np

from sukiyaki.nn.ops import ops_of

LAYER_TYPES = {}


#: A blob's description: per-sample shape (tuple) and klass.
class BlobSpec(tuple):
    """(shape, klass) of a blob, shape without the batch dimension."""

    __slots__ = ()

    def __new__(cls, shape, klass="single"):
        return super().__new__(cls, (tuple(int(s) for s in shape), klass))

    @property
    def shape(self):
        return self[0]

    @property
    def klass(self):
        return self[1]

    @property
    def size(self):
        return math.prod(self[0])

    def __repr__(self):
        return f"{'x'.join(map(str, self[0])) or 'scalar'} {self[1]}"


def register_layer(cls):
    """Class decorator: make cls available to network definitions under cls.type_name."""
    name = getattr(cls, "type_name", None)
    if not name or not isinstance(name, str):
        raise ValueError(f"layer class {cls.__name__} needs a type_name string")
    LAYER_TYPES[name] = cls
    return cls


def get_layer_class(type_name, layer_name="?"):
    """Class registered under type_name, or a ValueError naming the layer and known types."""
    try:
        return LAYER_TYPES[type_name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(LAYER_TYPES))
        raise ValueError(f"layer '{layer_name}': unknown type {type_name!r}; known types: {known}") from None


class Layer:
    """Base of every layer (see module docstring).

    Class attributes:
        type_name: the JSON ``type``.
        n_inputs, n_outputs: arity (an int, or None when a parameter decides).
        defaults: accepted parameters and their default values (``REQUIRED`` for none).
        keeps_inputs / keeps_outputs: whether backward reads the forward inputs / outputs
            (the network frees what no backward needs).
    """

    type_name = None
    n_inputs = 1
    n_outputs = 1
    defaults = {}
    keeps_inputs = True
    keeps_outputs = False
    is_data = False

    def __init__(self, name, params=None):
        self.name = name
        self.params = self.check_params(dict(params or {}))
        self.weights = {}
        self.grads = {}
        self.states = {}
        self.in_specs = None
        self.out_specs = None

    # --- parameters ---
    def error(self, message, exc=ValueError):
        """An exception whose message names this layer."""
        return exc(f"{self.type_name} '{self.name}': {message}")

    def check_params(self, params):
        """Merge defaults and reject unknown or missing parameters."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise self.error(f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(self.defaults)) or 'none'}")
        out = {}
        for key, default in self.defaults.items():
            if key in params:
                out[key] = params[key]
            elif default is REQUIRED:
                raise self.error(f"missing required parameter '{key}'")
            else:
                out[key] = default
        return out

    def get_config(self):
        """JSON-able {name, type, params} that rebuilds this layer."""
        return {"name": self.name, "type": self.type_name, "params": dict(self.params)}

    # --- helpers for subclasses ---
    def int_param(self, key, minimum=0):
        v = self.params[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise self.error(f"{key} must be an integer >= {minimum}, got {v!r}")
        return int(v)

    def bool_param(self, key):
        """A parameter that must be true or false (JSON booleans only)."""
        v = self.params[key]
        if not isinstance(v, bool):
            raise self.error(f"{key} must be true or false, got {v!r}")
        return v

    def number_param(self, key, lo=None, hi=None, lo_open=False):
        """A finite number parameter within [lo, hi] (or (lo, hi] when lo_open)."""
        v = self.params[key]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise self.error(f"{key} must be a number in {rng}, got {v!r}")
        return float(v)

    def pair_param(self, key, minimum=0):
        """A parameter given as n or [a, b], as a pair of ints."""
        v = self.params[key]
        vals = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(vals) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum for x in vals):
            raise self.error(f"{key} must be an integer >= {minimum} or a pair of them, got {v!r}")
        return int(vals[0]), int(vals[1])

    def expect_inputs(self, specs, count=None):
        count = self.n_inputs if count is None else count
        if count is not None and len(specs) != count:
            raise self.error(f"takes {count} input(s), got {len(specs)}")

    def check_arity(self, n_inputs, n_outputs):
        """Check the numbers of blobs the definition gives, before shapes are inferred."""
        if self.n_outputs is not None and n_outputs != self.n_outputs:
            raise self.error(f"produces {self.n_outputs} output(s) but the definition names {n_outputs}")

    # --- the interface ---
    def infer(self, in_specs):
        """Output BlobSpecs from input BlobSpecs (default: one output like the first input)."""
        return [in_specs[0]]

    def param_shapes(self):
        """{name: shape} of trainable parameters (after infer)."""
        return {}

    def state_shapes(self):
        """{name: shape} of non-trainable persistent state (after infer)."""
        return {}

    def init_params(self, rng):
        """{name: numpy float32 array} initial values of trainable parameters (on the host,
        once per run)."""
        return {}

    def init_states(self):
        """{name: numpy float32 array} initial state (e.g. running statistics)."""
        return {}

    def forward(self, inputs, ctx):
        """List of output matrices from input matrices."""
        return [inputs[0]]

    def backward(self, inputs, outputs, deltas, ctx):
        """Input deltas (None where no gradient) from output deltas; adds to self.grads."""
        return list(deltas[:1])

    def needs_input_grad(self, i):
        """Whether the network needs the gradient of input i in the phase being run (the
        network sets the flags of each phase's plan before running it)."""
        flags = getattr(self, "input_needs_grad", None)
        return True if flags is None else flags[i]

    def accumulate_grad(self, name, value):
        """Add value to the gradient of parameter name, in place (gradients accumulate over
        sub-batches; in a network they live in its ParamStore)."""
        old = self.grads.get(name)
        if old is None:
            self.grads[name] = value
            return
        ops = ops_of(old)
        target = ops.native(old)
        ops.add_(target, ops.native(value, target.shape))


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


def batch_size(x, spec):
    """Number of samples in blob x whose per-sample BlobSpec is spec."""
    per = spec.size
    return x.numel // per if per else 0
