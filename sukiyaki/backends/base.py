"""The backend contract: the primitives every backend implements, and nothing more.

Everything above a backend (``sukiyaki.matrix``, ``sukiyaki.nn``) treats a backend's
*native arrays* (numpy arrays, CuPy arrays, WebGPU buffers...) as opaque. It may read
three attributes of one, the metadata protocol:

- ``shape``: tuple of ints, the MATLAB size (or any fixed-rank shape the caller chose);
- ``dtype``: the numpy dtype of the elements;
- ``nbytes``: bytes of storage.

Everything else goes through the primitives below. Storage is column-major: every
primitive returns arrays laid out in column-major (Fortran) order, and every primitive
that linearises (``reshape``, ``view``, ``take_linear``, ``put_linear``,
``nonzero_linear``) does so in column-major order, so nothing above repairs layouts.
MATLAB semantics (1-based indices, implicit expansion, type promotion, reduction
defaults) are written once in :mod:`sukiyaki.matrix`; a backend only moves and computes
numbers. ``reshape`` and ``view`` return arrays that share the storage of their input;
every other primitive returns new storage unless its name ends in ``_`` (in place).

A backend is checked against these lists when it is registered
(:func:`sukiyaki.backends.get_backend`): one that lacks a primitive is refused with the
list of what is missing.

Device-to-host transfers happen only in ``to_numpy``, ``item`` and ``export``; host-to-
device only in ``from_numpy``. A training step calls none of the first three.

Attributes every backend has: ``name`` (str), ``is_gpu`` (bool), ``binary`` (dict op ->
function(x, y); operands of equal ndim that broadcast, or a Python number), ``unary``
(dict op -> function(x)), ``nn`` (an object with the layer kernels of NN_PRIMITIVES).

Example:
    >>> from sukiyaki.backends import get_backend
    >>> check_backend(get_backend('numpy'))
"""

#: The metadata a native array exposes (and the only attributes read above the backend).
ARRAY_PROTOCOL = ("shape", "dtype", "nbytes")

#: Binary elementwise operations (broadcasting operands of equal ndim).
BINARY_OPS = (
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "mod", "rem", "atan2",
    "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "xor",
)

#: Unary elementwise operations.
UNARY_OPS = (
    "neg", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "abs", "sign",
    "floor", "ceil", "fix", "round", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "not", "isnan", "isinf", "isfinite", "sigmoid",
)

#: Reductions of ``reduce`` and ``argreduce``, and the scans of ``cumulative``.
REDUCE_OPS = ("sum", "prod", "max", "min", "any", "all")
ARGREDUCE_OPS = ("max", "min")
CUMULATIVE_OPS = ("cumsum", "cumprod")

#: Methods, with what each must do.
PRIMITIVES = {
    # transfers and memory
    "from_numpy": "(a) -> native array of a numpy array's values, column-major (no copy when a already is, on the CPU)",
    "to_numpy": "(x) -> numpy array with the same shape and values (a device-to-host transfer on a GPU)",
    "item": "(x) -> the first element as a Python number (a device-to-host transfer on a GPU)",
    "export": "(x) -> an object with __dlpack__ / __dlpack_device__ holding x's values",
    "free": "(x) -> release device memory now (no-op on the CPU)",
    "available_memory": "() -> bytes that may still be allocated (None when unknown)",
    # creation
    "empty": "(shape, dtype) -> uninitialised array",
    "full": "(shape, value, dtype) -> array filled with value",
    "eye": "(n, m, dtype) -> identity-like n x m array",
    "arange": "(start, step, count, dtype) -> 1-d array start + step * k, k < count (integers wrap)",
    "rand": "(shape, dtype) -> uniform [0, 1) values from the backend's stream (MATLAB rand)",
    "randn": "(shape, dtype) -> standard normal values from the backend's stream",
    "randint": "(low, high, shape, dtype) -> integers in [low, high] inclusive from the backend's stream",
    "seed": "(n) -> reseed the backend's stream",
    "philox_uniform": "(key, iteration, sample_ids, per_sample) -> float32 (per_sample, n): Philox4x32-10 uniforms, "
                      "element [e, j] from word e % 4 of counter (e // 4, sample_ids[j], iteration, 0) and key (k0, k1), "
                      "as (bits >> 8) * 2**-24; sample_ids a native int32 (n,) array",
    # copies and conversions
    "copy": "(x) -> independent copy",
    "astype": "(x, dtype) -> value-converted array (x itself if already dtype)",
    "cast_wrap": "(x, dtype) -> to integer dtype by truncation toward zero and wrap-around; NaN/Inf -> 0; to bool by x != 0",
    "where": "(cond, x, y) -> elementwise choice (x, y arrays or numbers)",
    # reductions and products
    "reduce": "(op, x, axis) -> op in REDUCE_OPS along axis, keeping the axis",
    "argreduce": "(op, x, axis) -> (values, 0-based int64 indices) of max/min along axis, NaN ignored unless all NaN, first of ties",
    "cumulative": "(op, x, axis) -> cumsum/cumprod along axis",
    "matmul": "(x, y, trans_x=False, trans_y=False) -> 2-d product op(x) @ op(y), op transposing when asked",
    # shape
    "reshape": "(x, shape) -> the same storage with another shape (column-major order); shares x's storage",
    "view": "(buffer, offset, shape) -> the elements offset .. offset + prod(shape) of a 1-d buffer, shaped "
            "column-major; shares the buffer's storage (writes through)",
    "transpose": "(x, axes) -> a new array with the axes permuted",
    "concat": "(xs, axis) -> concatenation along axis",
    "tile": "(x, reps) -> repetition",
    # indexing (keys: one slice or one native int64 1-d array of 0-based indices per axis)
    "gather": "(x, keys) -> orthogonal indexing",
    "scatter": "(x, keys, values) -> in-place orthogonal assignment; values broadcast to the selection",
    "take_linear": "(x, idx) -> x's elements at 0-based column-major linear indices (native int64), shaped as idx",
    "put_linear": "(x, idx, values) -> in-place assignment at column-major linear indices; values (k,) or (1,)",
    "nonzero_linear": "(x) -> 1-d int64 array of 0-based column-major indices of nonzero elements",
    # in-place updates (parameters, gradients, optimizer state)
    "assign_": "(x, y) -> x[...] = y in place (y an array of x's shape or a number)",
    "scale_": "(x, a) -> x *= a in place",
    "axpy_": "(y, a, x) -> y += a * x in place, with no full-size temporary",
}

#: Layer kernels and fused update rules, in ``backend.nn``. Image blobs are (h, w, c, n)
#: column-major; specs are :class:`sukiyaki.nn.shapes.ConvSpec` / ``PoolSpec`` /
#: ``CropSpec``, computed once when a network is planned (a backend may key plans on them).
NN_PRIMITIVES = {
    "conv2d_forward": "(x, w, b, spec, keep) -> (y, cache for backward or None); b may be None",
    "conv2d_backward": "(x, w, dy, spec, need_dx, need_dw, cache) -> (dx or None, dw or None, db)",
    "pool2d_forward": "(x, spec, keep) -> (y, cache for backward or None)",
    "pool2d_backward": "(dy, spec, cache) -> dx",
    "crop_flip": "(x, spec, top, left, flip) -> per-sample crops (oh, ow, c, n) of x (h, w, c, n) at 0-based "
                 "corners top/left (native int32 (n,)), mirrored left-right where flip (native bool (n,)) is true",
    "sgd_update_": "(w, g, lr, weight_decay) -> w -= lr * (g + weight_decay * w), in place",
    "momentum_update_": "(w, g, v, lr, momentum, weight_decay) -> v = momentum * v - lr * (g + weight_decay * w); "
                        "w += v, in place",
    "adam_update_": "(w, g, m, v, lr_t, beta1, beta2, eps, weight_decay) -> g' = g + weight_decay * w; "
                    "m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2; w -= lr_t m / (sqrt(v) + eps), in place",
}

#: Layer kernels a backend may add to ``nn`` where they pay; layers use them when present and
#: compose the primitives above otherwise. C is the size of dim ``axis`` (0-based); per-channel
#: arrays hold C float32 values in any shape.
OPTIONAL_NN_PRIMITIVES = {
    "batchnorm_stats": "(x, axis, eps, running=None) -> (mean, var, inv_std): per-channel batch statistics over "
                       "every dim but axis (var biased; inv_std = 1 / sqrt(var + eps)), each C float32 values; "
                       "running (mean, var, decay): r = decay r + (1 - decay) statistic in place, var unbiased",
    "batchnorm_apply": "(x, mean, inv_std, gamma, beta, axis) -> (x - mean) * inv_std * gamma + beta, per channel",
    "batchnorm_backward": "(dy, x, mean, inv_std, gamma, axis, batch_stats) -> (dx, dgamma, dbeta); dx through the "
                          "batch statistics when batch_stats, else through fixed ones",
    "relu_forward": "(x) -> max(x, 0) as float32, NaN kept: one pass (the relu layer's forward)",
    "relu_backward": "(dy, y) -> dy where y > 0, else 0: one pass (the relu layer's backward; y its output)",
}


class CaptureError(RuntimeError):
    """A backend could not record a step (``capture``); the message says why."""


#: Backend methods beyond the primitives that callers use when present.
OPTIONAL_CAPABILITIES = {
    "capture": "(fn) -> a recording of fn's device work with ``outputs`` (what fn returned) and ``replay()`` "
               "(run it again on the same memory); raises CaptureError saying why where it cannot record "
               "(sukiyaki.nn.captured: CUDA graphs)",
}


def missing_primitives(backend):
    """Names of the primitives, ops and attributes a backend object lacks (empty when complete)."""
    missing = [name for name in PRIMITIVES if not callable(getattr(backend, name, None))]
    missing += [f"binary[{op!r}]" for op in BINARY_OPS if op not in getattr(backend, "binary", {})]
    missing += [f"unary[{op!r}]" for op in UNARY_OPS if op not in getattr(backend, "unary", {})]
    nn = getattr(backend, "nn", None)
    missing += [f"nn.{name}" for name in NN_PRIMITIVES if not callable(getattr(nn, name, None))]
    missing += [attr for attr in ("name", "is_gpu") if not hasattr(backend, attr)]
    return missing


def check_backend(backend):
    """Raise TypeError naming every primitive or op the backend lacks."""
    missing = missing_primitives(backend)
    if missing:
        raise TypeError(f"backend {getattr(backend, 'name', backend)!r} lacks: {', '.join(missing)}")
