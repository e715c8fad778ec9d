"""Double-buffered, register-blocked float32 products: the candidates of issue 8 beside the
``t*`` kernels of matmul.py (kernels/matmul_db.wgsl, completed here), forced by name
(``SUKIYAKI_WEBGPU_MATMUL``, matmul.KERNEL, benchmarks/webgpu_native.py --kernels) and not
yet in matmul.choose's rule.

Each is the usual SGEMM design for NVIDIA-like GPUs: a BM x BN block a workgroup, 8 x 8
outputs an invocation in 16 named vec4 accumulators, BK values of k a slice staged through
two workgroup buffers (the next slice read into registers while the current one is summed,
one barrier a slice), the rows of A and the columns of B of one k read from workgroup
memory as vec4s; and two variants of the code, picked for each product by :func:`variant`:

- ``fast``: the block sizes divide M and N, BK divides the contraction and each split,
  each operand has a unit stride along its rows/columns or along k with the other
  strides and its offset multiples of 4 (one vec4 a global load, no bounds checks);
- ``fast-..-e`` (edge): the same where the blocks do not divide M or N (a convolution's
  784 positions): the rows (columns) past the edge read the last ones in range instead
  (they only reach outputs past the edge, which are not stored), a vec4 along the rows
  then needs M (N) a multiple of 4; the stores bounded;
- ``fast-..-s`` (split): the same for a split contraction (k = kr + kd kb: a weight
  gradient's positions and samples) where kd >= BK and kd, the strides of kb and the
  offsets allow vec4s (a vec4 along k then never straddles two stretches of kd); the
  offset of each load from the slice's km, kq (see SPLIT_ADVANCE), no division;
- ``checked``: anything else (one value a load, zeros past the edges, bounded stores).

Both sum the same terms in the same order with ``fma``, so they give the same bits.

Candidates (name: invocations x, y; vec4s of rows, columns an invocation; BK):

- ``db128``: 16 x 16, 2 x 2 (8 x 8 outputs), BK 8: 128 x 128 blocks, 16 KiB;
- ``db128x64``: 16 x 8, 2 x 2, BK 8: 128 x 64 blocks of 128 invocations, 12 KiB;
- ``db64``: 8 x 8, 2 x 2, BK 16: 64 x 64 blocks of 64 invocations, 16 KiB;
- ``db128k16``: 16 x 16, 2 x 2, BK 16: 128 x 128 blocks, 32 KiB (more than WebGPU's
  default 16 KiB: only where the device allows it, e.g. Vulkan on NVIDIA, 48 KiB).

Example:
    >>> DB["db128"].block
    (128, 128)
"""

import os
from collections import namedtuple

from sukiyaki.backends.webgpu import kernels as K


class Config(namedtuple("_Config", "tx ty mv nv bk")):
    """A candidate's shape: invocations along x and y, vec4s of rows and of columns an
    invocation, values of k a slice."""

    @property
    def block(self):
        """(BM, BN): the rows and columns of C a workgroup."""
        return 4 * self.tx * self.mv, 4 * self.ty * self.nv

    @property
    def threads(self):
        return self.tx * self.ty

    @property
    def workgroup_bytes(self):
        """Two buffers of BK (BM + BN) floats."""
        return 2 * self.bk * sum(self.block) * 4


#: False: every product by the checked variant (to measure it; SUKIYAKI_WEBGPU_MATMUL_FAST=0).
FAST = os.environ.get("SUKIYAKI_WEBGPU_MATMUL_FAST", "1") != "0"
#: name -> Config (tx, ty, mv, nv, bk)
DB = {"db128": Config(16, 16, 2, 2, 8), "db128x64": Config(16, 8, 2, 2, 8), "db64": Config(8, 8, 2, 2, 16),
      "db128k16": Config(16, 16, 2, 2, 16)}
XYZW = "xyzw"


#: A split contraction (k = kr + kd kb, e.g. positions and samples of a weight gradient) is
#: addressed without a division per load where kd >= BK: each kernel keeps km, kq = kn % kd,
#: kn / kd of its slice start kn, moved on by BK a slice (:data:`SPLIT_ADVANCE`), and a load
#: d past kn wraps at most once (:func:`split_offset`); k_offset's division where kd < BK.
SPLIT_ADVANCE = "if (split && kd >= BK) { km = km + BK; if (km >= kd) { km = km - kd; kq = kq + 1u; } }"


def _split_words(d, s_k, s_b):
    """WGSL: the element offset of k = kn + d along an operand of a split contraction, d < kd
    (km, kq: kn % kd, kn / kd, see SPLIT_ADVANCE; the same as ``k_offset(k, kd, s_k, s_b)``)."""
    return (f"(km + {d} - select(0u, kd, km + {d} >= kd)) * {s_k} + "
            f"(kq + select(0u, 1u, km + {d} >= kd)) * {s_b}")


def split_offset(d, s_k, s_b):
    """WGSL statement setting ``ko`` to the offset of k = kn + d of a split contraction, d < BK
    (by :func:`_split_words` where kd >= BK, else by k_offset's division)."""
    return f"if (kd >= BK) {{ ko = {_split_words(d, s_k, s_b)}; }} else {{ ko = k_offset(k, kd, {s_k}, {s_b}); }}"


def _check(cfg):
    bm, bn = cfg.block
    for n in (bm, bn, bm // 4, bn // 4, cfg.bk, cfg.bk // 4):
        if cfg.threads % n:  # each invocation keeps one row (or k) for all its loads
            raise ValueError(f"matmul_db: {cfg} does not split its tiles evenly ({cfg.threads} invocations, {n})")


def variant(name, M, N, Kdim, ks, a, b, offsets, align):
    """'fast-XY' (X, Y in r, k: A along its rows or along k, B along its columns or along k)
    or 'checked', for a product of kernel ``name``: M, N, Kdim, split length ks; a, b: the
    strides (si or sj, sk, kd, sb, z1, z2); offsets: the byte offsets of A and B in their
    buffers; align: the device's storage-offset alignment."""
    cfg = DB[name]
    bm, bn = cfg.block
    kd = min(a[2], b[2])
    split = kd < Kdim
    if not FAST or Kdim <= 0 or Kdim % cfg.bk or ks % cfg.bk or align % 16:
        return "checked"
    if split and (a[2] != b[2] or kd < cfg.bk or kd % 4):  # a vec4 of k within one kd stretch
        return "checked"
    way = ""
    for s, o, rows in ((a, offsets[0], M), (b, offsets[1], N)):
        if o % 16 or s[4] % 4 or s[5] % 4 or (split and s[3] % 4):
            return "checked"
        if s[0] == 1 and s[1] % 4 == 0 and rows % 4 == 0:
            way += "r"
        elif s[1] == 1 and s[0] % 4 == 0:
            way += "k"
        else:
            return "checked"
    return "fast-" + way + ("-e" if M % bm or N % bn else "") + ("-s" if split else "")


def _fast_parts(x, cfg, rows, way, edge=False, split=False):
    """(setup, load, to_shared(buf)) of operand x ('a' or 'b') read a vec4 a load (edge:
    rows past M, columns past N, read as the last ones in range; split: a split contraction,
    kd >= BK and a multiple of 4, so that a vec4 along k stays within one stretch of kd)."""
    X = x.upper()
    tile = rows // 4 if way == "r" else cfg.bk // 4  # vec4s along the contiguous axis
    n = rows * cfg.bk // 4 // cfg.threads
    step = cfg.threads // tile  # of the other axis (k or rows) between two loads
    si, sk, sb, base, lo, lim = (("a_si", "a_sk", "a_sb", "abase", "i0", "M") if x == "a"
                                 else ("b_sj", "b_sk", "b_sb", "bbase", "j0", "N"))
    setup = [f"    let {x}f = li % {tile}u;  // vec4 along the contiguous axis",
             f"    let {x}o = li / {tile}u;  // the other axis"]
    if way == "r":
        first = f"min({lo} + 4u * {x}f, {lim} - 4u)" if edge else f"{lo} + 4u * {x}f"
        if split:
            setup += [f"    let {x}p = {base} + {first};"]
            load = [f"{x}v{r} = {X}[({x}p + {_split_words(f'{x}o + {step * r}u', sk, sb)}) >> 2u];"
                    for r in range(n)]
        else:
            setup += [f"    let {x}p = ({base} + {first} + {x}o * {sk}) >> 2u;",
                      f"    let {x}d = {sk} >> 2u;"]
            load = [f"{x}v{r} = {X}[{x}p + kn * {x}d + {step * r}u * {x}d];" for r in range(n)]

        def to_shared(buf):
            return [f"    {X}S[{cfg.bk * buf + step * r}u + {x}o][{x}f] = bitcast<vec4<f32>>({x}v{r});" for r in range(n)]
    else:
        if split:  # one row (column) a load, each its own address (clamped: edge), k split
            row = f"min({lo} + {x}o + {{}}u, {lim} - 1u)" if edge else f"{lo} + {x}o + {{}}u"
            setup += [f"    let {x}p{r} = {base} + ({row.format(step * r)}) * {si};" for r in range(n)]
            load = [f"{x}v{r} = {X}[({x}p{r} + {_split_words(f'4u * {x}f', '1u', sb)}) >> 2u];" for r in range(n)]
        elif edge:  # one row (column) a load: each its own address, clamped
            setup += [f"    let {x}p{r} = (({base} + min({lo} + {x}o + {step * r}u, {lim} - 1u) * {si}) >> 2u) + {x}f;"
                      for r in range(n)]
            load = [f"{x}v{r} = {X}[{x}p{r} + (kn >> 2u)];" for r in range(n)]
        else:
            setup += [f"    let {x}p = (({base} + ({lo} + {x}o) * {si}) >> 2u) + {x}f;",
                      f"    let {x}d = {si} >> 2u;"]
            load = [f"{x}v{r} = {X}[{x}p + (kn >> 2u) + {step * r}u * {x}d];" for r in range(n)]

        def to_shared(buf):
            out = []
            for r in range(n):
                for c in range(4):
                    o = f"({x}o + {step * r}u)"
                    out.append(f"    {X}S[{cfg.bk * buf + c}u + 4u * {x}f][{o} >> 2u][{o} & 3u] = "
                               f"bitcast<f32>({x}v{r}.{XYZW[c]});")
            return out
    setup += [f"    var {x}v{r} = vec4<u32>(0u);" for r in range(n)]
    return setup, load, to_shared


def _checked_parts(x, cfg, rows):
    """(setup, load, to_shared(buf)) of operand x read a value a load, either way round:
    along the rows (columns) when they have unit stride, else along k."""
    X = x.upper()
    n = rows * cfg.bk // cfg.threads
    t = cfg.threads
    si, sk, sb, base, lo, lim = (("a_si", "a_sk", "a_sb", "abase", "i0", "M") if x == "a"
                                 else ("b_sj", "b_sk", "b_sb", "bbase", "j0", "N"))
    setup = [f"    let {x}_rows = {si} == 1u;"]
    load = []
    for r in range(n):
        setup += [f"    let {x}r{r} = select(li / {cfg.bk}u + {t // cfg.bk * r}u, li % {rows}u, {x}_rows);",
                  f"    let {x}k{r} = select(li % {cfg.bk}u, li / {rows}u + {t // rows * r}u, {x}_rows);",
                  f"    let {x}ok{r} = {lo} + {x}r{r} < {lim};",
                  f"    let {x}row{r} = {base} + select(0u, ({lo} + {x}r{r}) * {si}, {x}ok{r});",
                  f"    var {x}v{r} = 0.0f;"]
        load += ["{",
                 f"    let k = kn + {x}k{r};",
                 f"    {x}v{r} = 0.0f;",
                 f"    if ({x}ok{r} && k < kend) {{",
                 f"        var ko = k * {sk};",
                 f"        if (split) {{ {split_offset(f'{x}k{r}', sk, sb)} }}",
                 f"        {x}v{r} = bitcast<f32>({X}[{x}row{r} + ko]);",
                 "    }",
                 "}"]

    def to_shared(buf):
        return [f"    {X}S[{cfg.bk * buf}u + {x}k{r}][{x}r{r} >> 2u][{x}r{r} & 3u] = {x}v{r};" for r in range(n)]
    return setup, load, to_shared


def code(name, var):
    """WGSL of candidate ``name`` (see DB) in variant ``var`` (see :func:`variant`)."""
    cfg = DB[name]
    _check(cfg)
    bm, bn = cfg.block
    if var == "checked":
        sa, la, ta = _checked_parts("a", cfg, bm)
        sb, lb, tb = _checked_parts("b", cfg, bn)
    elif var.startswith("fast-") and var[7:] in ("", "-e", "-s", "-e-s") and set(var[5:7]) <= set("rk"):
        edge, split = "-e" in var, var.endswith("-s")
        sa, la, ta = _fast_parts("a", cfg, bm, var[5], edge, split)
        sb, lb, tb = _fast_parts("b", cfg, bn, var[6], edge, split)
    else:
        raise ValueError(f"matmul_db: unknown variant {var!r} (checked, or fast-XY with X and Y r or k, then "
                         f"-e (edge) and/or -s (split contraction))")
    acc = [(h, g, q) for h in range(cfg.mv) for g in range(cfg.nv) for q in range(4)]
    lines = {"SETUP": sa + sb, "LOAD_FIRST": ["    " + x for x in la + lb],
             "LOAD": [" " * 12 + x for x in [SPLIT_ADVANCE] + la + lb], "TO_SHARED0": ta(0) + tb(0), "TO_SHARED1": ta(1) + tb(1),
             "ACC": [f"    var c{h}{g}{q} = vec4<f32>(0.0f);" for h, g, q in acc]}
    for buf in (0, 1):
        prod = []
        for kk in range(cfg.bk):
            row = cfg.bk * buf + kk
            prod.append("        {")
            prod += [f"            let a{h} = AS[{row}u][lid.x + {cfg.tx * h}u];" for h in range(cfg.mv)]
            prod += [f"            let b{g} = BS[{row}u][lid.y + {cfg.ty * g}u];" for g in range(cfg.nv)]
            prod += [f"            c{h}{g}{q} = fma(a{h}, vec4<f32>(b{g}.{XYZW[q]}), c{h}{g}{q});" for h, g, q in acc]
            prod.append("        }")
        lines[f"PRODUCT{buf}"] = prod
    checked = var == "checked" or "-e" in var  # stores bounded
    store = []
    for h in range(cfg.mv):
        for g in range(cfg.nv):
            for q in range(4):
                store += [f"    {{  // rows 4 x + {4 * cfg.tx * h} + (0..3), column 4 y + {4 * cfg.ty * g + q}",
                          f"        let i = i0 + 4u * lid.x + {4 * cfg.tx * h}u;",
                          f"        let j = j0 + 4u * lid.y + {4 * cfg.ty * g + q}u;"]
                if checked:
                    store.append("        if (j < N) {")
                for r in range(4):
                    cond = f"if (i + {r}u < M) " if checked else ""
                    store += [f"        {cond}{{",
                              f"            let c = cbase + (i + {r}u) * c_si + j * c_sj;",
                              f"            var v = c{h}{g}{q}.{XYZW[r]};",
                              "            if (add) { v = v + bitcast<f32>(C[c]); }",
                              "            C[c] = bitcast<u32>(v);",
                              "        }"]
                if checked:
                    store.append("        }")
                store.append("    }")
    lines["STORE"] = store
    subs = {k: "\n".join(v) for k, v in lines.items()}
    subs.update(BK=cfg.bk, BM=bm, BN=bn, AV=bm // 4, BV=bn // 4, KS=2 * cfg.bk, TX=cfg.tx, TY=cfg.ty)
    text = K.assemble("matmul_db", ["C"], ["A", "B"], subs=subs)
    if var != "checked":  # the operands read a vec4 at a time
        for x in "AB":
            old = f"var<storage, read> {x}: array<u32>;"
            if old not in text:
                raise AssertionError(f"matmul_db: binding of {x} not found in the generated header")
            text = text.replace(old, f"var<storage, read> {x}: array<vec4<u32>>;")
    return text
