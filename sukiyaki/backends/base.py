"""The primitives every backend implements; the matrix front end reaches arrays only through them.

A backend object holds *native arrays* (numpy arrays, CuPy arrays, WebGPU buffers...)
whose shape is the MATLAB size of the matrix. Element order is column-major as far as
the front end can tell: every primitive that linearises (``reshape``, ``take_linear``,
``put_linear``, ``nonzero_linear``) does so in column-major order. MATLAB semantics
(1-based indices, implicit expansion, type promotion, reduction defaults) are written
once in :mod:`sukiyaki.matrix`; a backend only moves and computes numbers.

Attributes every backend has: ``name`` (str), ``is_gpu`` (bool), ``binary`` (dict
op -> function(x, y)), ``unary`` (dict op -> function(x)).

Example:
    >>> from sukiyaki.backends import get_backend
    >>> check_backend(get_backend('numpy'))
"""

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

#: Methods, with what each must do.
PRIMITIVES = {
    "from_numpy": "(a) -> native array holding a numpy array's values (no copy where possible)",
    "to_numpy": "(x) -> numpy array with the same shape and values",
    "empty": "(shape, dtype) -> uninitialised array",
    "full": "(shape, value, dtype) -> array filled with value",
    "eye": "(n, m, dtype) -> identity-like n x m array",
    "arange": "(start, step, count, dtype) -> 1-d array start + step * k, k < count",
    "rand": "(shape, dtype) -> uniform [0, 1) values from the backend's generator",
    "randn": "(shape, dtype) -> standard normal values",
    "randint": "(low, high, shape, dtype) -> integers in [low, high] inclusive",
    "seed": "(n) -> reseed the backend's generator",
    "copy": "(x) -> independent copy",
    "astype": "(x, dtype) -> value-converted array (no copy if already dtype)",
    "cast_wrap": "(x, dtype) -> to integer dtype by truncation toward zero and wrap-around; NaN/Inf -> 0; to bool by x != 0",
    "where": "(cond, x, y) -> elementwise choice",
    "reduce": "(op, x, axis) -> op in sum/prod/max/min/any/all along axis, keeping the axis",
    "argreduce": "(op, x, axis) -> (values, 0-based indices) of max/min along axis, NaN ignored unless all NaN, first of ties",
    "cumulative": "(op, x, axis) -> cumsum/cumprod along axis",
    "matmul": "(x, y) -> 2-d matrix product",
    "reshape": "(x, shape) -> reshaped in column-major order",
    "transpose": "(x, axes) -> axes permuted",
    "concat": "(xs, axis) -> concatenation along axis",
    "tile": "(x, reps) -> repetition",
    "gather": "(x, keys) -> orthogonal indexing: keys has one slice or 0-based int array per axis",
    "scatter": "(x, keys, values) -> in-place orthogonal assignment; values broadcast to the selection",
    "take_linear": "(x, idx) -> x's elements at 0-based column-major linear indices, shaped as idx",
    "put_linear": "(x, idx, values) -> in-place assignment at column-major linear indices",
    "nonzero_linear": "(x) -> 1-d int64 array of 0-based column-major indices of nonzero elements",
    "item": "(x) -> the single element as a Python number",
    "scale_": "(x, a) -> x *= a in place (optimizers update without temporaries)",
    "axpy_": "(y, a, x) -> y += a * x in place, with no full-size temporary",
    "free": "(x) -> release device memory now (no-op on the CPU)",
}


#: Layer kernels, in ``backend.nn`` (blobs are (h, w, c, n) column-major).
NN_PRIMITIVES = {
    "conv2d_forward": "(x, w, b, stride, pad, group, keep) -> (y, cache for backward or None)",
    "conv2d_backward": "(x, w, dy, stride, pad, group, need_dx, need_dw, cache) -> (dx, dw, db)",
    "pool2d_forward": "(x, mode, ksize, stride, pad, cover_all) -> (y, cache)",
    "pool2d_backward": "(dy, cache, mode, ksize, stride, pad) -> dx",
}


def check_backend(backend):
    """Raise TypeError naming any primitive or op the backend lacks."""
    missing = [name for name in PRIMITIVES if not callable(getattr(backend, name, None))]
    missing += [f"binary[{op!r}]" for op in BINARY_OPS if op not in getattr(backend, "binary", {})]
    missing += [f"unary[{op!r}]" for op in UNARY_OPS if op not in getattr(backend, "unary", {})]
    nn = getattr(backend, "nn", None)
    missing += [f"nn.{name}" for name in NN_PRIMITIVES if not callable(getattr(nn, name, None))]
    for attr in ("name", "is_gpu"):
        if not hasattr(backend, attr):
            missing.append(attr)
    if missing:
        raise TypeError(f"backend {getattr(backend, 'name', backend)!r} lacks: {', '.join(missing)}")
