"""WGSL bodies of reductions, arg-reductions and scans along one axis.

The array is seen as (pre, n, post) column-major; one thread per (pre, post) pair walks the
n elements of its line. Float32 sums are pairwise (blocks of 128 with eight accumulators,
as numpy's pairwise sum, the blocks combined by a binary tree), so their rounding is of
numpy's order, not n times it; products and scans are sequential, as numpy's are; float64
(software) reductions are sequential (exact on integers).
"""

from sukiyaki.backends.webgpu import elementwise as E
from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu.array import kind_of

_HEAD = """@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let pre = m(0u);
    let n = m(1u);
    let base = (t % pre) + pre * n * (t / pre);
"""

_ZERO = {"f32": "0.0f", "f64": "vec2<u32>(0u, 0u)", "i32": "0", "u32": "0u", "bool": "false", "i64": "vec2<u32>(0u, 0u)"}
_ONE = {"f32": "1.0f", "f64": "F64_ONE", "i32": "1", "u32": "1u", "bool": "true", "i64": "vec2<u32>(1u, 0u)"}
_NAN = {"f32": "sk_isnan({})", "f64": "f64_is_nan({})"}


def _loader(kind, ctype, buf="X", binding=1):
    words = 2 if kind in ("f64", "i64") else 1
    w = f"off({binding}u) + e" + (" * 2u" if words == 2 else "")
    value = E.convert(E.load(kind, buf, w), E.NATURAL[kind], ctype)
    return f"fn ld(e: u32) -> {E.WGSL_TYPE[ctype]} {{ return {value}; }}\n"


def _store(out_dtype, ctype, value, buf="OUT", index="t", binding=0):
    kind = kind_of(out_dtype)
    w = f"off({binding}u) + {index}" + (" * 2u" if kind in ("f64", "i64") else "")
    return E.store(out_dtype, buf, w, E.convert(value, ctype, E.NATURAL[kind]))


def reduce_kernel(op, kind, nat, ctype, out_dtype):
    """Body of reduce(op) over X (storage kind) into OUT (out_dtype), computing in ctype."""
    if op in ("any", "all"):
        truth = E.convert("ld(base + pre * k)", nat, "bool")
        body = [_HEAD, f"    var acc = {'false' if op == 'any' else 'true'};",
                "    for (var k = 0u; k < n; k = k + 1u) {",
                f"        if ({'' if op == 'any' else '!'}{truth}) {{ acc = {str(op == 'any').lower()}; break; }}",
                "    }",
                "    " + _store(out_dtype, "bool", "acc"), "}"]
        return _loader(kind, nat) + "\n".join(body) + "\n"
    loader = _loader(kind, ctype)
    if op == "sum" and ctype == "f32":
        return loader + K.source("pairwise") + _HEAD + "    let acc = pairwise_sum(base, pre, n);\n    " + \
            _store(out_dtype, ctype, "acc") + "\n}\n"
    combine = {
        ("sum", "f64"): "f64_add(acc, v)", ("prod", "f64"): "f64_mul(acc, v)",
        ("prod", "f32"): "(acc * v)", ("max", "f32"): "sk_fmax(acc, v)", ("min", "f32"): "sk_fmin(acc, v)",
        ("max", "f64"): "f64_max(acc, v)", ("min", "f64"): "f64_min(acc, v)",
    }.get((op, ctype))
    if combine is None:
        expr, _ = E.binary_expr({"sum": "add", "prod": "mul", "max": "maximum", "min": "minimum"}[op], ctype)
        combine = expr.format(a="acc", b="v")
    init = {"sum": _ZERO[ctype], "prod": _ONE[ctype]}.get(op, "ld(base)")
    first = "0u" if op in ("sum", "prod") else "1u"
    body = [_HEAD, f"    var acc = {init};",
            f"    for (var k = {first}; k < n; k = k + 1u) {{",
            "        let v = ld(base + pre * k);",
            f"        acc = {combine};",
            "    }",
            "    " + _store(out_dtype, ctype, "acc"), "}"]
    return loader + "\n".join(body) + "\n"


def argreduce_kernel(op, kind, ctype, dtype):
    """Body of argreduce(op): VALS (dtype) and IDX (int64) from X; NaN ignored unless all are
    NaN, the first of ties."""
    nat = E.NATURAL[kind]
    words = 2 if kind in ("f64", "i64") else 1
    w = "off(2u) + e" + (" * 2u" if words == 2 else "")
    loader = f"fn ldn(e: u32) -> {E.WGSL_TYPE[nat]} {{ return {E.load(kind, 'X', w)}; }}\n"
    cmp = E.binary_expr("gt" if op == "max" else "lt", ctype)[0].format(
        a=E.convert("v", nat, ctype), b=E.convert("best", nat, ctype))
    isnan = _NAN.get(ctype, "false").format(E.convert("v", nat, ctype)) if ctype in _NAN else "false"
    body = [_HEAD,
            "    var best = ldn(base);",
            "    var bi = 0u;",
            "    var found = false;",
            "    for (var k = 0u; k < n; k = k + 1u) {",
            "        let v = ldn(base + pre * k);",
            f"        if ({isnan}) {{ continue; }}",
            f"        if (!found || {cmp}) {{ best = v; bi = k; found = true; }}",
            "    }",
            "    " + _store(dtype, nat, "best", "VALS", "t", 0),
            "    IDX[off(1u) + 2u * t] = bi;",
            "    IDX[off(1u) + 2u * t + 1u] = 0u;",
            "}"]
    return loader + "\n".join(body) + "\n"


def cumulative_kernel(op, kind, ctype, out_dtype):
    """Body of cumsum/cumprod into OUT (out_dtype), sequential along the axis."""
    loader = _loader(kind, ctype)
    combine = {("cumsum", "f64"): "f64_add(acc, v)", ("cumprod", "f64"): "f64_mul(acc, v)"}.get((op, ctype))
    if combine is None:
        expr, _ = E.binary_expr("add" if op == "cumsum" else "mul", ctype)
        combine = expr.format(a="acc", b="v")
    init = _ZERO[ctype] if op == "cumsum" else _ONE[ctype]
    body = [_HEAD, f"    var acc = {init};",
            "    for (var k = 0u; k < n; k = k + 1u) {",
            "        let e = base + pre * k;",
            "        let v = ld(e);",
            f"        acc = {combine};",
            "        " + _store(out_dtype, ctype, "acc", "OUT", "e"),
            "    }", "}"]
    return loader + "\n".join(body) + "\n"
