"""Matrix and layer cases that run inside the runtime's Web Worker (Pyodide), on the browser's
WebGPU backend and on numpy, compared there; ``tests/web/test_webgpu_browser.py`` sends this
file's text to the worker (``{cmd: "python"}``) and reads the JSON that :func:`run_cases` returns.

It imports only the package and numpy (no pytest: Pyodide has none). Each case returns the
largest difference it saw, or raises; :func:`run_cases` gathers
``{"name", "ok", "error", "seconds"}`` per case so that one failure names itself and the
others still run. Tolerances are float32's: elementwise functions within a few ulps (the
shaders follow numpy's algorithms), sums and products within accumulated rounding, Philox
bits and data movement exact.
"""

import json
import time

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.nn.shapes import ConvSpec, PoolSpec

GPU = get_backend("webgpu")
CPU = get_backend("numpy")
RNG = np.random.default_rng(8)


def f(a):
    return np.asfortranarray(np.asarray(a))


def both(fn, *arrays):
    """(fn on WebGPU, read back; fn on numpy) of numpy arrays (None passes through)."""
    gpu_in = [GPU.from_numpy(f(a)) if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(GPU, *gpu_in)
    ref = fn(CPU, *[f(a) if isinstance(a, np.ndarray) else a for a in arrays])
    return _read(out), ref


def _read(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_read(v) for v in x)
    if x is None or isinstance(x, (int, float, np.ndarray)):
        return x
    return GPU.to_numpy(x)


def close(got, ref, rtol, atol, what):
    """The largest difference relative to the reference's scale; AssertionError past the tolerance."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, numpy {ref.shape}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype}, numpy {ref.dtype}"
    if ref.dtype.kind in "biu":
        assert np.array_equal(got, ref), f"{what}: {int((got != ref).sum())} of {ref.size} differ"
        return 0.0
    g, r = got.astype(np.float64), ref.astype(np.float64)
    nan = np.isnan(r)
    assert np.array_equal(np.isnan(g), nan), f"{what}: NaN where numpy has none (or the reverse)"
    g, r = g[~nan], r[~nan]
    bad = np.abs(g - r) > atol + rtol * np.abs(r)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {r.size} beyond rtol {rtol}, atol {atol}; "
                           f"largest difference {float(np.max(np.abs(g - r))):.3g}")
    return float(np.max(np.abs(g - r), initial=0.0))


def exact(got, ref, what):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype, \
        f"{what}: {got.shape} {got.dtype} vs {ref.shape} {ref.dtype}"
    assert got.tobytes() == ref.tobytes(), f"{what}: the bits differ from numpy's"
    return 0.0


# ---------------------------------------------------------------- elementwise

def case_binary_ops_float32():
    a = RNG.standard_normal((23, 17)).astype(np.float32) * 3
    b = RNG.standard_normal((1, 17)).astype(np.float32) * 2 + 0.5  # broadcast along the first axis
    worst = 0.0
    for op in ("add", "sub", "mul", "div", "maximum", "minimum", "atan2", "mod", "rem"):
        got, ref = both(lambda be, x, y: be.binary[op](x, y), a, b)
        worst = max(worst, close(got, ref, 2e-6, 1e-6, op))
    got, ref = both(lambda be, x, y: be.binary["pow"](x, y), np.abs(a), b)  # pow through the software double
    worst = max(worst, close(got, ref, 2e-6, 1e-30, "pow"))
    for op in ("lt", "le", "eq", "ne", "gt", "ge"):
        got, ref = both(lambda be, x, y: be.binary[op](x, y), a, b)
        close(got, ref, 0, 0, op)
    return worst


def case_unary_ops_float32():
    x = RNG.standard_normal((31, 13)).astype(np.float32) * 4
    worst = 0.0
    for op in ("neg", "exp", "expm1", "abs", "sign", "floor", "ceil", "fix", "round", "sin", "cos", "tan", "atan",
               "sinh", "cosh", "tanh", "sigmoid"):
        got, ref = both(lambda be, v: be.unary[op](v), x)
        worst = max(worst, close(got, ref, 4e-6, 1e-6, op))
    for op in ("log", "log1p", "log2", "log10", "sqrt"):
        got, ref = both(lambda be, v: be.unary[op](v), np.abs(x) + 1e-3)
        worst = max(worst, close(got, ref, 4e-6, 1e-6, op))
    for op in ("asin", "acos"):
        got, ref = both(lambda be, v: be.unary[op](v), np.clip(x / 4, -1, 1))
        worst = max(worst, close(got, ref, 4e-6, 1e-6, op))
    return worst


def case_integer_bool_and_double_elementwise():
    i = RNG.integers(-1000, 1000, (19, 7)).astype(np.int32)
    j = RNG.integers(1, 50, (19, 7)).astype(np.int32)
    u = RNG.integers(0, 256, (19, 7)).astype(np.uint8)
    for op in ("add", "mul", "sub", "mod", "maximum"):
        close(*both(lambda be, x, y: be.binary[op](x, y), i, j), 0, 0, f"int32 {op}")
    close(*both(lambda be, x, y: be.binary["add"](x, y), u, u), 0, 0, "uint8 add (wraps)")
    close(*both(lambda be, x, y: be.binary["and"](x, y), i > 0, j > 20), 0, 0, "logical and")
    d = RNG.standard_normal((11, 5)) * 1e3
    e = RNG.standard_normal((11, 5)) + 2.0
    for op in ("add", "mul", "div"):  # the software binary64: numpy's bits
        exact(*both(lambda be, x, y: be.binary[op](x, y), d, e), f"float64 {op}")
    exact(*both(lambda be, x: be.cast_wrap(x, np.dtype(np.int32)), d), "float64 -> int32")
    return 0.0


def case_where_and_casts():
    x = RNG.standard_normal((9, 8)).astype(np.float32)
    close(*both(lambda be, v: be.where(be.binary["gt"](v, 0.0), v, 0.5), x), 0, 0, "where")
    close(*both(lambda be, v: be.astype(v, np.dtype(np.int32)), x * 100), 0, 0, "astype int32")
    close(*both(lambda be, v: be.cast_wrap(v, np.dtype(np.uint8)), x * 300), 0, 0, "cast_wrap uint8")
    return 0.0


# ---------------------------------------------------------------- reductions and products

def case_reductions():
    x = RNG.standard_normal((37, 29)).astype(np.float32)
    worst = 0.0
    for op in ("sum", "prod", "max", "min"):
        for axis in (0, 1):
            v = x if op != "prod" else 1 + x / 8
            worst = max(worst, close(*both(lambda be, a: be.reduce(op, a, axis), v), 1e-5, 1e-5, f"{op} axis {axis}"))
    for op in ("any", "all"):
        close(*both(lambda be, a: be.reduce(op, a, 0), x > 0.5), 0, 0, op)
    for op in ("max", "min"):
        (gv, gi), (rv, ri) = both(lambda be, a: be.argreduce(op, a, 1), x)
        close(gv, rv, 0, 0, f"arg{op} values")
        close(gi, ri, 0, 0, f"arg{op} indices")
    worst = max(worst, close(*both(lambda be, a: be.cumulative("cumsum", a, 0), x), 1e-5, 1e-5, "cumsum"))
    return worst


def case_matmul():
    worst = 0.0
    for (m, k, n), (ta, tb) in (((37, 53, 29), (False, False)), ((64, 100, 10), (True, False)),
                                ((33, 20, 47), (False, True)), ((128, 96, 80), (True, True))):
        a = RNG.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = RNG.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        got, ref = both(lambda be, x, y: be.matmul(x, y, ta, tb), a, b)
        worst = max(worst, close(got, ref, 1e-5, 1e-5 * np.sqrt(k), f"matmul {m}x{k}x{n} {ta} {tb}"))
    return worst


# ---------------------------------------------------------------- layer kernels

def case_convolution_forward_backward():
    worst = 0.0
    for in_shape, out_c, ksize, stride, pad, group, n in (((12, 10, 3), 8, (5, 5), (1, 1), (0, 0), 1, 4),
                                                          ((9, 11, 4), 6, (3, 3), (2, 2), (1, 1), 2, 3)):
        spec = ConvSpec.make(in_shape, out_c, ksize, stride, pad, group)
        x = RNG.standard_normal(in_shape + (n,)).astype(np.float32)
        w = (RNG.standard_normal(spec.weight_shape) * 0.2).astype(np.float32)
        b = RNG.standard_normal((out_c,)).astype(np.float32)
        dy = RNG.standard_normal(spec.out_shape + (n,)).astype(np.float32)
        (gy, _), (ry, _) = both(lambda be, *a: be.nn.conv2d_forward(a[0], a[1], a[2], spec, False), x, w, b)
        worst = max(worst, close(gy, ry, 1e-4, 1e-4, f"conv forward {spec}"))

        def backward(be, xx, ww, dd):
            _, cache = be.nn.conv2d_forward(xx, ww, None, spec, True)
            return be.nn.conv2d_backward(xx, ww, dd, spec, True, True, cache)

        (gdx, gdw, gdb), (rdx, rdw, rdb) = both(backward, x, w, dy)
        worst = max(worst, close(gdx, rdx, 1e-4, 1e-4, "conv dx"), close(gdw, rdw, 1e-4, 1e-3, "conv dw"),
                    close(gdb, rdb, 1e-4, 1e-3, "conv db"))
    return worst


def case_pooling_forward_backward():
    worst = 0.0
    for mode, ksize, stride, pad in (("max", (2, 2), (2, 2), (0, 0)), ("max", (3, 3), (2, 2), (1, 1)),
                                     ("average", (3, 3), (2, 2), (1, 1))):
        spec = PoolSpec.make((11, 10, 3), mode, ksize, stride, pad)
        n = 4
        x = RNG.permutation(np.arange(11 * 10 * 3 * n, dtype=np.float32) / 7).reshape((11, 10, 3, n), order="F")
        dy = RNG.standard_normal(spec.out_shape + (n,)).astype(np.float32)
        (gy, _), (ry, _) = both(lambda be, a: be.nn.pool2d_forward(a, spec, False), x)
        worst = max(worst, close(gy, ry, 1e-6, 1e-6, f"{mode} pool forward"))

        def backward(be, xx, dd):
            _, cache = be.nn.pool2d_forward(xx, spec, True)
            return be.nn.pool2d_backward(dd, spec, cache)

        worst = max(worst, close(*both(backward, x, dy), 1e-6, 1e-6, f"{mode} pool backward"))
    return worst


def _layer(type_name, params, in_shapes, klasses=None):
    from sukiyaki.nn.layer import BlobSpec, get_layer_class

    layer = get_layer_class(type_name, "l")("l", dict(params))
    specs = [BlobSpec(s, k) for s, k in zip(in_shapes, klasses or ["single"] * len(in_shapes))]
    layer.in_specs, layer.out_specs = specs, list(layer.infer(specs))
    return layer


def _run_layer(layer, inputs, dys, device):
    """Forward, then backward from dys, of one layer on device: (outputs, input gradients) as numpy."""
    import sukiyaki.nn.layers  # noqa: F401  (registers the layers)
    from sukiyaki.matrix import array, gather
    from sukiyaki.nn.context import Context

    ctx = Context("train", need_backward=True, device=device, seed=0)
    ins = [array(f(x), klass="int32" if x.dtype.kind == "i" else "single", device=device) for x in inputs]
    outs = layer.forward(ins, ctx)
    layer.grads = {}
    grads = layer.backward(ins, outs, [array(f(d), device=device) for d in dys], ctx)
    read = lambda m: None if m is None else np.array(gather(m).to_numpy())  # noqa: E731
    return [read(o) for o in outs], [read(g) for g in grads]


def case_softmax_and_cross_entropy():
    x = (RNG.standard_normal((10, 16)) * 3).astype(np.float32)
    x[3, 2] = 80.0  # a naive exp would overflow
    t = RNG.integers(0, 10, (1, 16)).astype(np.int32)
    worst = 0.0
    for type_name, inputs, in_shapes, klasses, dy in (
            ("softmax", [x], [(10,)], None, RNG.standard_normal((10, 16)).astype(np.float32)),
            ("softmax_cross_entropy", [x, t], [(10,), (1,)], ["single", "int32"], np.full((1, 1), 1.5, np.float32))):
        layer = _layer(type_name, {}, in_shapes, klasses)
        (go, gg), (ro, rg) = _run_layer(layer, inputs, [dy], "webgpu"), _run_layer(layer, inputs, [dy], "numpy")
        for a, b, what in zip(go + gg[:1], ro + rg[:1], ("output", "input gradient")):
            worst = max(worst, close(a, b, 1e-5, 1e-6, f"{type_name} {what}"))
    return worst


def case_philox_bits():
    from sukiyaki.backends.numpy.philox import philox_uniform

    ids = np.array([0, 7, 2 ** 31 - 1, 123456, 3, 64], np.int32)
    for key, iteration, per in (((0, 0), 0, 4), ((0xDEADBEEF, 0x12345678), 99, 37), ((1, 2), 2 ** 32 - 1, 784)):
        got = GPU.to_numpy(GPU.philox_uniform(key, iteration, GPU.from_numpy(ids), per))
        exact(got, philox_uniform(key, iteration, ids.view(np.uint32), per), f"philox {key} {iteration}")
    return 0.0


def case_data_movement_and_updates():
    x = RNG.standard_normal((6, 5, 4)).astype(np.float32)
    exact(*both(lambda be, a: be.transpose(a, (2, 0, 1)), x), "transpose")
    exact(*both(lambda be, a: be.concat([a, a], 1), x), "concat")
    idx = np.array([3, 0, 7, 119, 5], np.int64)
    exact(*both(lambda be, a, i: be.take_linear(a, i), x, idx), "take_linear")
    exact(*both(lambda be, a: be.nonzero_linear(be.binary["gt"](a, 0.5)), x), "nonzero_linear")
    w, g = RNG.standard_normal(300).astype(np.float32), RNG.standard_normal(300).astype(np.float32)
    v = np.full(300, 0.25, np.float32)

    def momentum(be, ww, gg, vv):
        be.nn.momentum_update_(ww, gg, vv, 0.1, 0.9, 5e-4)
        return ww, vv

    (gw, gv), (rw, rv) = both(momentum, w, g, v.copy())
    exact(gw, rw, "momentum update w")
    exact(gv, rv, "momentum update v")
    return 0.0


CASES = [(name[5:], fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]


def run_cases():
    """Every case, in order; JSON of [{"name", "ok", "error", "worst", "seconds"}, ...]."""
    results = []
    for name, fn in CASES:
        t = time.perf_counter()
        try:
            worst = fn()
            results.append({"name": name, "ok": True, "error": "", "worst": worst})
        except Exception as exc:  # reported per case, the others still run
            results.append({"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}", "worst": None})
        results[-1]["seconds"] = round(time.perf_counter() - t, 3)
    return json.dumps(results)
