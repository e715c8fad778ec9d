"""Elementwise kernels: loads, conversions, stores and the ops of BINARY_OPS / UNARY_OPS.

Result dtypes follow numpy's ufunc rules exactly (``ufunc.resolve_dtypes``, Python numbers
weak as in NEP 50), so every backend gives the same dtype. Each loop dtype computes in a
WGSL type:

- float16/float32: ``f32`` (float16 results are rounded to float16 when stored);
- float64: ``vec2<u32>``, the software binary64 of kernels/f64.wgsl: add, sub, mul, div,
  sqrt, fmod, comparisons, floor/ceil/round and every conversion are exact (numpy's bits);
  exp, log, log2, log10, log1p, expm1, sinh, cosh, tanh, sigmoid and pow are fdlibm-style
  algorithms on those (within a few units of the last place of a double); the trigonometric
  functions and atan2 of doubles go through float32 (about 1e-7 relative, and the argument
  rounded to float32 first: the documented gap; the front end computes them on single);
- int64: ``vec2<u32>`` two's complement: add, sub, mul, pow (wrapping), mod, rem and the
  comparisons exact, as numpy's; uint64: through float64 (exact below 2**53);
- int8/16/32: ``i32`` (wrapping), uint8/16/32: ``u32`` (wrapping; narrow dtypes wrap when
  stored), bool: ``bool``.

One kernel per (op, operand kinds, output dtype, broadcast pattern) is compiled (see
kernels.py); shapes, strides and scalar operands are parameters. The broadcast pattern is
None when the array operands have the output's shape (a flat index, several elements an
invocation, no integer division), else which axes of the collapsed shape each operand steps
through (a per-channel bias: one division an invocation, none an element).
"""

import functools
import math
import struct

import numpy as np

from sukiyaki.backends.webgpu.array import kind_of

#: numpy dtype (its canonical character, see _char) -> compute type (WGSL side), see the module docstring
_COMPUTE = {"f": "f32", "d": "f64", "e": "f32", "i": "i32", "h": "i32", "b": "i32", "I": "u32", "H": "u32",
            "B": "u32", "?": "bool", "q": "i64", "Q": "f64"}
#: integer (kind, itemsize) -> the character of its size: numpy's 'l'/'L' (C long) is 64 bits on
#: Linux but 32 bits in Pyodide (wasm32) and on Windows, so characters alone do not say the size
_SIZED = {("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
          ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q"}
WGSL_TYPE = {"f32": "f32", "f64": "vec2<u32>", "i32": "i32", "u32": "u32", "bool": "bool", "i64": "vec2<u32>"}
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")
#: storage kind -> the WGSL type its loads give
NATURAL = {"f32": "f32", "f64": "f64", "i32": "i32", "u32": "u32", "b32": "bool", "i64": "i64"}


def _char(dtype):
    """numpy's type character of dtype, by size for integers ('l' becomes 'i' or 'q')."""
    dtype = np.dtype(dtype)
    return _SIZED.get((dtype.kind, dtype.itemsize), dtype.char)


def compute_of(dtype):
    """The compute type of a numpy loop dtype."""
    dtype = np.dtype(dtype)
    try:
        return _COMPUTE[_char(dtype)]
    except KeyError:
        raise TypeError(f"webgpu backend: no compute type for dtype {dtype}") from None


def load(kind, buf, w):
    """WGSL expression loading the element at word w of buffer buf, of storage kind."""
    if kind == "f32":
        return f"bitcast<f32>({buf}[{w}])"
    if kind == "i32":
        return f"bitcast<i32>({buf}[{w}])"
    if kind == "u32":
        return f"{buf}[{w}]"
    if kind == "b32":
        return f"({buf}[{w}] != 0u)"
    return f"vec2<u32>({buf}[{w}], {buf}[({w}) + 1u])"


# conversions between WGSL-level types, as numpy's astype makes them: (from, to) -> format
# with {}. Floats to integers truncate; NaN and values out of range give what numpy gives on
# x86 for int32, int64 and the narrower types (uint32 and uint64 out of range: unspecified)
CONVERT = {
    ("f32", "f64"): "f64_from_f32({})", ("i32", "f64"): "f64_from_i32({})", ("u32", "f64"): "f64_from_u32({})",
    ("bool", "f64"): "select(vec2<u32>(0u, 0u), F64_ONE, {})", ("i64", "f64"): "f64_from_i64({})",
    ("f64", "f32"): "f64_to_f32({})", ("i32", "f32"): "i32_to_f32({})", ("u32", "f32"): "u32_to_f32({})",
    ("bool", "f32"): "select(0.0f, 1.0f, {})", ("i64", "f32"): "f64_to_f32(f64_from_i64({}))",
    ("f32", "i32"): "f64_to_i32_np(f64_from_f32({}))", ("f64", "i32"): "f64_to_i32_np({})",
    ("u32", "i32"): "bitcast<i32>({})", ("bool", "i32"): "select(0, 1, {})", ("i64", "i32"): "bitcast<i32>(({}).x)",
    ("f32", "u32"): "f64_to_u32_np(f64_from_f32({}))", ("f64", "u32"): "f64_to_u32_np({})",
    ("i32", "u32"): "bitcast<u32>({})",
    ("bool", "u32"): "select(0u, 1u, {})", ("i64", "u32"): "({}).x",
    ("f32", "bool"): "sk_truthy({})", ("f64", "bool"): "!f64_is_zero({})", ("i32", "bool"): "({} != 0)",
    ("u32", "bool"): "({} != 0u)", ("i64", "bool"): "!u64_is0({})",
    ("f64", "i64"): "f64_to_i64({})", ("f32", "i64"): "f64_to_i64(f64_from_f32({}))",
    ("i32", "i64"): "i64_from_i32({})",
    ("u32", "i64"): "vec2<u32>({}, 0u)", ("bool", "i64"): "vec2<u32>(select(0u, 1u, {}), 0u)",
}


def convert(expr, src, dst):
    """expr (of WGSL-level type src) converted to dst."""
    if src == dst:
        return expr
    return CONVERT[(src, dst)].format(expr)


def store(dtype, buf, w, value):
    """WGSL statement storing value (of the natural type of dtype's kind) at word w."""
    c = _char(dtype)
    if c == "f":
        return f"{buf}[{w}] = bitcast<u32>({value});"
    if c == "e":
        return f"{buf}[{w}] = bitcast<u32>(unpack2x16float(pack2x16float(vec2<f32>({value}, 0.0f))).x);"
    if c in "iI":
        return f"{buf}[{w}] = bitcast<u32>({value});"
    if c == "h":
        return f"{buf}[{w}] = bitcast<u32>(({value} << 16u) >> 16u);"
    if c == "b":
        return f"{buf}[{w}] = bitcast<u32>(({value} << 24u) >> 24u);"
    if c == "H":
        return f"{buf}[{w}] = ({value}) & 0xFFFFu;"
    if c == "B":
        return f"{buf}[{w}] = ({value}) & 0xFFu;"
    if c == "?":
        return f"{buf}[{w}] = select(0u, 1u, {value});"
    return f"{{ let v_ = {value}; {buf}[{w}] = v_.x; {buf}[({w}) + 1u] = v_.y; }}"


def _f32_word(value):
    """The bits of a Python float rounded to float32 (as numpy rounds it): struct for finite
    values in range (the same C conversion, without numpy's per-call cost), numpy otherwise."""
    if type(value) is float and math.isfinite(value):
        try:
            return _U32.unpack(_F32.pack(value))[0]
        except OverflowError:  # beyond float32: numpy gives the infinity
            pass
    return int(np.array([value], dtype=np.float32).view(np.uint32)[0])


def scalar_words(value, ctype):
    """The u32 words of a Python number as a constant of compute type ctype."""
    if ctype == "f32":
        return [_f32_word(value)]
    if ctype == "f64":
        w = np.array([value], dtype=np.float64).view(np.uint32)
        return [int(w[0]), int(w[1])]
    if ctype == "bool":
        return [1 if value else 0]
    if ctype == "i64" and isinstance(value, float):
        value = int(value) if np.isfinite(value) else 0
    if ctype == "i64":
        w = np.array([int(value)], dtype=np.uint64 if int(value) >= 2 ** 63 else np.int64).view(np.uint32)
        return [int(w[0]), int(w[1])]
    if isinstance(value, float):
        if not np.isfinite(value):
            return [0]
        value = int(value)
    return [int(value) & 0xFFFFFFFF]


def scalar_expr(ctype, pos):
    """WGSL expression of a constant of ctype stored at parameter pos."""
    if ctype == "f32":
        return f"mf({pos}u)"
    if ctype in ("f64", "i64"):
        return f"vec2<u32>(m({pos}u), m({pos + 1}u))"
    if ctype == "i32":
        return f"mi({pos}u)"
    if ctype == "u32":
        return f"m({pos}u)"
    return f"(m({pos}u) != 0u)"


# ---------------------------------------------------------------- the ops

_F32_BIN = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "div": "({a} / {b})",
    "pow": "sk_pow({a}, {b})", "maximum": "sk_fmax({a}, {b})", "minimum": "sk_fmin({a}, {b})",
    "mod": "sk_mod({a}, {b})", "rem": "sk_rem({a}, {b})", "atan2": "sk_atan2({a}, {b})",
    "eq": "({a} == {b})", "ne": "!({a} == {b})", "lt": "({a} < {b})", "le": "({a} <= {b})",
    "gt": "({a} > {b})", "ge": "({a} >= {b})",
}
_F64_BIN = {
    "add": "f64_add({a}, {b})", "sub": "f64_sub({a}, {b})", "mul": "f64_mul({a}, {b})", "div": "f64_div({a}, {b})",
    "pow": "f64_pow({a}, {b})", "maximum": "f64_max({a}, {b})", "minimum": "f64_min({a}, {b})",
    "mod": "f64_mod({a}, {b})", "rem": "f64_fmod({a}, {b})",
    "atan2": "f64_from_f32(sk_atan2(f64_to_f32({a}), f64_to_f32({b})))",
    "eq": "f64_eq({a}, {b})", "ne": "!f64_eq({a}, {b})", "lt": "f64_lt({a}, {b})", "le": "f64_le({a}, {b})",
    "gt": "f64_lt({b}, {a})", "ge": "f64_le({b}, {a})",
}
_INT_BIN = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})",
    "maximum": "max({a}, {b})", "minimum": "min({a}, {b})",
    "eq": "({a} == {b})", "ne": "({a} != {b})", "lt": "({a} < {b})", "le": "({a} <= {b})",
    "gt": "({a} > {b})", "ge": "({a} >= {b})",
}
_I32_BIN = dict(_INT_BIN, pow="ipow_i32({a}, {b})", mod="imod_i32({a}, {b})", rem="irem_i32({a}, {b})")
_U32_BIN = dict(_INT_BIN, pow="ipow_u32({a}, {b})", mod="select({a} % max({b}, 1u), {a}, {b} == 0u)",
                rem="select({a} % max({b}, 1u), 0u, {b} == 0u)")
_BOOL_BIN = {
    "add": "({a} || {b})", "sub": "({a} != {b})", "mul": "({a} && {b})", "maximum": "({a} || {b})",
    "minimum": "({a} && {b})", "pow": "({a} || !{b})",
    "eq": "({a} == {b})", "ne": "({a} != {b})", "lt": "(!{a} && {b})", "le": "(!{a} || {b})",
    "gt": "({a} && !{b})", "ge": "({a} || !{b})",
}
_I64_BIN = {
    "add": "u64_add({a}, {b})", "sub": "u64_sub({a}, {b})", "mul": "i64_mul({a}, {b})", "pow": "i64_pow({a}, {b})",
    "maximum": "i64_max({a}, {b})", "minimum": "i64_min({a}, {b})", "mod": "i64_mod({a}, {b})",
    "rem": "i64_rem({a}, {b})", "eq": "i64_eq({a}, {b})", "ne": "!i64_eq({a}, {b})", "lt": "i64_lt({a}, {b})",
    "le": "!i64_lt({b}, {a})", "gt": "i64_lt({b}, {a})", "ge": "!i64_lt({a}, {b})",
}
BINARY_EXPR = {"f32": _F32_BIN, "f64": _F64_BIN, "i32": _I32_BIN, "u32": _U32_BIN, "bool": _BOOL_BIN, "i64": _I64_BIN}
TRUTHY = {"f32": "sk_truthy({})", "f64": "!f64_is_zero({})", "i32": "({} != 0)", "u32": "({} != 0u)", "bool": "{}",
          "i64": "!u64_is0({})"}
LOGICAL = {"and": "({a} && {b})", "or": "({a} || {b})", "xor": "({a} != {b})"}
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")

_F32_UN = {
    "neg": "(-{a})", "exp": "sk_exp({a})", "expm1": "sk_expm1({a})", "log": "sk_log({a})",
    "log1p": "sk_log1p({a})", "log2": "sk_log2({a})", "log10": "sk_log10({a})", "sqrt": "sqrt({a})",
    "abs": "abs({a})", "sign": "sk_sign({a})", "floor": "floor({a})", "ceil": "ceil({a})", "fix": "trunc({a})",
    "round": "sk_round({a})", "sin": "sk_sin({a})", "cos": "sk_cos({a})", "tan": "sk_tan({a})",
    "asin": "sk_asin({a})", "acos": "sk_acos({a})", "atan": "sk_atan({a})", "sinh": "sk_sinh({a})",
    "cosh": "sk_cosh({a})", "tanh": "sk_tanh({a})", "sigmoid": "sk_sigmoid({a})",
    "isnan": "sk_isnan({a})", "isinf": "sk_isinf({a})", "isfinite": "sk_isfinite({a})",
}
_F64_EXACT = {
    "exp": "f64_exp({a})", "log": "f64_log({a})", "log1p": "f64_log1p({a})", "expm1": "f64_expm1({a})",
    "log2": "f64_mul(f64_log({a}), D_INVLN2)", "log10": "f64_mul(f64_log({a}), vec2<u32>(0x1526E50Eu, 0x3FDBCB7Bu))",
    "sigmoid": "f64_sigmoid({a})", "sinh": "f64_sinh({a})", "cosh": "f64_cosh({a})", "tanh": "f64_tanh({a})",
    "neg": "f64_neg({a})", "abs": "f64_abs({a})", "sign": "f64_sign_of({a})", "floor": "f64_floor({a})",
    "ceil": "f64_ceil({a})", "fix": "f64_trunc({a})", "round": "f64_round({a})", "sqrt": "f64_sqrt({a})",
    "isnan": "f64_is_nan({a})", "isinf": "f64_is_inf({a})",
    "isfinite": "(!f64_is_nan({a}) && !f64_is_inf({a}))",
}
_I32_UN = {
    "neg": "(-{a})", "abs": "abs({a})", "sign": "sign({a})", "floor": "{a}", "ceil": "{a}", "fix": "{a}",
    "round": "{a}", "isnan": "false", "isinf": "false", "isfinite": "true",
}
_U32_UN = {
    "sigmoid": "0u", "neg": "(0u - {a})", "abs": "{a}", "sign": "select(0u, 1u, {a} != 0u)", "floor": "{a}",
    "ceil": "{a}",
    "fix": "{a}", "round": "{a}", "isnan": "false", "isinf": "false", "isfinite": "true",
}
_I64_UN = {
    "neg": "u64_neg({a})", "abs": "i64_abs({a})", "sign": "i64_sign({a})", "floor": "{a}", "ceil": "{a}",
    "fix": "{a}", "round": "{a}", "isnan": "false", "isinf": "false", "isfinite": "true",
}
_BOOL_UN = {
    "abs": "{a}", "sign": "{a}", "floor": "{a}", "ceil": "{a}", "fix": "{a}", "round": "{a}", "neg": "{a}",
    "isnan": "false", "isinf": "false", "isfinite": "true",
}

BINARY_UFUNC = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide, "pow": np.power,
    "maximum": np.fmax, "minimum": np.fmin, "mod": np.remainder, "rem": np.fmod, "atan2": np.arctan2,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal, "and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
}
UNARY_UFUNC = {
    "neg": np.negative, "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "abs": np.absolute, "sign": np.sign, "floor": np.floor,
    "ceil": np.ceil, "fix": np.trunc, "round": np.rint, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "not": np.logical_not, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
    "sigmoid": np.tanh,
}


def unary_expr(op, ctype):
    """(WGSL expression in {a}, result compute type) of unary op on ctype."""
    if op == "not":
        return "!" + TRUTHY[ctype].format("{a}"), "bool"
    if ctype == "f32":
        return _F32_UN[op], ("bool" if op.startswith("is") else "f32")
    if ctype == "f64":
        if op in _F64_EXACT:
            return _F64_EXACT[op], ("bool" if op.startswith("is") else "f64")
        return "f64_from_f32(" + _F32_UN[op].format(a="f64_to_f32({a})") + ")", "f64"
    table = {"i32": _I32_UN, "u32": _U32_UN, "bool": _BOOL_UN, "i64": _I64_UN}[ctype]
    if op not in table:
        raise TypeError(f"webgpu backend: unary op {op!r} has no {ctype} loop")
    return table[op], ("bool" if op.startswith("is") else ctype)


def binary_expr(op, ctype):
    """(WGSL expression in {a}, {b}, result compute type) of binary op on ctype."""
    if op in LOGICAL:
        t = TRUTHY[ctype]
        return LOGICAL[op].format(a=t.format("{a}"), b=t.format("{b}")), "bool"
    table = BINARY_EXPR[ctype]
    if op not in table:
        raise TypeError(f"webgpu backend: binary op {op!r} has no {ctype} loop")
    return table[op], ("bool" if op in COMPARISONS else ctype)


def _resolve_operand(x):
    """What numpy's resolve_dtypes takes for an operand: a dtype or a weak Python type."""
    if isinstance(x, (bool, np.bool_)) and not hasattr(x, "shape"):
        return bool if isinstance(x, bool) else np.dtype(np.bool_)
    if isinstance(x, int):
        return int
    if isinstance(x, float):
        return float
    if isinstance(x, np.generic):
        return x.dtype
    return x.dtype


@functools.lru_cache(maxsize=4096)
def _binary_loop(op, tx, ty):
    """(loop input dtype, its compute type, output dtype) of numpy's loop of binary op on
    operands resolving to tx, ty (memoized: a training step asks the same ones)."""
    loop = BINARY_UFUNC[op].resolve_dtypes((tx, ty, None))
    return loop[0], compute_of(loop[0]), np.dtype(loop[2])


def resolve_binary(op, x, y):
    """(compute type, output dtype) of binary op on operands x, y (arrays or numbers)."""
    loop_in, ctype, out_dtype = _binary_loop(op, _resolve_operand(x), _resolve_operand(y))
    if op in COMPARISONS and ctype in ("i32", "u32"):
        # numpy compares a Python int beyond the loop's range by value: do so exactly in doubles
        for v in (x, y):
            if isinstance(v, int) and not isinstance(v, bool):
                info = np.iinfo(loop_in)
                if not info.min <= v <= info.max:
                    ctype = "f64"
    return ctype, out_dtype


def resolve_unary(op, x):
    """(compute type, output dtype) of unary op on array x."""
    if op == "round" and x.dtype.kind != "f":
        return compute_of(x.dtype), x.dtype
    if op == "sigmoid":
        if x.dtype.kind == "f":
            return compute_of(x.dtype), x.dtype
        if x.dtype == np.uint8:
            # as the numpy backend computes it: exp(-abs(x)) wraps in uint8 and overflows in
            # float16, 1 / (1 + e) < 0.5, truncated back to uint8: always 0
            return "u32", x.dtype
        return "f64", x.dtype
    loop = UNARY_UFUNC[op].resolve_dtypes((x.dtype, None))
    return compute_of(loop[0]), np.dtype(loop[1])


#: elements per invocation of an elementwise kernel (fewer workgroups; the index work and
#: the parameter reads shared by those elements)
PER_THREAD = 4


def _count_up(d, nd):
    """WGSL adding one to the multi-index i0, i1, ... from axis d (s0, s1, ...: the shape)."""
    if d == nd - 1:
        return f"i{d} = i{d} + 1u;"
    return f"i{d} = i{d} + 1u; if (i{d} == s{d}) {{ i{d} = 0u; {_count_up(d + 1, nd)} }}"


def map_kernel(inputs, expr, rt, out_dtype, bcast):
    """WGSL body of an elementwise kernel.

    Args:
        inputs: per operand ('arr', storage kind, compute type), ('const', compute type) or
            ('out', storage kind, compute type): the output's own element (in place).
        expr: WGSL expression in x0, x1, ... (compute-typed) and t (the element's index)
            giving a value of type rt.
        out_dtype: the output's numpy dtype.
        bcast: None when every array operand has the output's shape (one flat index), else
            per array operand a tuple of bools, one per axis of the (collapsed) shape: whether
            its stride there is nonzero.

    Parameters (after the constants, which come first): N (the element count), then for
    bcast: shape[nd] and the element strides of each array operand, nd each. The launch has
    ceil(N / PER_THREAD) threads (META[0]): flat, thread t0 takes elements t0, t0 + T, ...
    (T threads; neighbours read neighbouring words); broadcast, it takes PER_THREAD
    consecutive elements, its multi-index found by division once and then counted up (no
    division per element).
    """
    out_kind = kind_of(out_dtype)
    out_words = 2 if out_kind in ("f64", "i64") else 1
    lines = []
    pos = 0
    const_pos = []
    for op in inputs:
        if op[0] == "const":
            const_pos.append(pos)
            pos += 2 if op[1] in ("f64", "i64") else 1
        else:
            const_pos.append(None)
    n_arr = sum(1 for op in inputs if op[0] == "arr")
    lines.append("    let t0 = thread_id(wid, nwg, lid);")
    lines.append("    let T = META[0];")
    lines.append("    if (t0 >= T) { return; }")
    lines.append(f"    let N = m({pos}u);")
    for i, op in enumerate(inputs):
        if op[0] == "const":
            lines.append(f"    let x{i} = {scalar_expr(op[1], const_pos[i])};")
    k = 0
    for i, op in enumerate(inputs):  # word offsets of the bindings: OUT's, then IN0's, ...
        if op[0] == "arr":
            k += 1
            lines.append(f"    let o{i} = off({k}u);")
        elif op[0] == "out":
            lines.append(f"    let o{i} = off(0u);")
    lines.append("    let oo = off(0u);")
    ind = "        "
    if bcast is not None and n_arr:
        nd = len(bcast[0])
        for d in range(nd):
            lines.append(f"    let s{d} = m({pos + 1 + d}u);")
        for k, mask in enumerate(bcast):
            for d in range(nd):
                if mask[d]:
                    lines.append(f"    let st{k}_{d} = m({pos + 1 + nd * (k + 1) + d}u);")
        lines.append(f"    var t = t0 * {PER_THREAD}u;")
        lines.append("    var q = t;")
        for d in range(nd):
            if d < nd - 1:
                lines.append(f"    var i{d} = q % s{d};")
                lines.append(f"    q = q / s{d};")
            else:
                lines.append(f"    var i{d} = q;")
        lines.append(f"    for (var j = 0u; j < {PER_THREAD}u; j = j + 1u) {{")
        lines.append("        if (t >= N) { break; }")
        for k, mask in enumerate(bcast):
            terms = [f"i{d} * st{k}_{d}" for d in range(nd) if mask[d]]
            lines.append(f"        let e{k} = {' + '.join(terms) if terms else '0u'};")
    else:
        lines.append(f"    for (var j = 0u; j < {PER_THREAD}u; j = j + 1u) {{")
        lines.append("        let t = t0 + j * T;")
        lines.append("        if (t >= N) { break; }")
        for k in range(n_arr):
            lines.append(f"        let e{k} = t;")
    k = 0
    for i, op in enumerate(inputs):
        if op[0] == "const":
            continue
        kind, ctype = op[1], op[2]
        words = 2 if kind in ("f64", "i64") else 1
        if op[0] == "out":  # in place: the output's own element
            w = f"o{i} + t" + (" * 2u" if words == 2 else "")
            lines.append(f"{ind}let x{i} = {convert(load(kind, 'OUT', w), NATURAL[kind], ctype)};")
        else:
            w = f"o{i} + e{k}" + (" * 2u" if words == 2 else "")
            lines.append(f"{ind}let x{i} = {convert(load(kind, f'IN{k}', w), NATURAL[kind], ctype)};")
            k += 1
    lines.append(f"{ind}let r = {expr};")
    w = "oo + t" + (" * 2u" if out_words == 2 else "")
    lines.append(ind + store(out_dtype, "OUT", w, convert("r", rt, NATURAL[out_kind])))
    if bcast is not None and n_arr:
        lines.append(f"{ind}t = t + 1u;")
        lines.append(ind + _count_up(0, nd))  # the multi-index of t (no wrap on the last axis: t < N)
    lines.append("    }")
    body = "\n".join(lines)
    return ("@compute @workgroup_size(256)\n"
            "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,\n"
            "        @builtin(local_invocation_index) lid: u32) {\n" + body + "\n}\n")
