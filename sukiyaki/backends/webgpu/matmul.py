"""Matrix products: the strided batched GEMM in float32, by one of two kernels, and a plain
one-thread-an-output kernel for other dtypes (float64 in software, integers wrapping).

:func:`gemm` takes addressing as strides (see matmul.wgsl), so a transposed operand, a
column block, a batch of samples or a convolution's lowered columns need no copy.

Float32 kernels (:func:`choose` picks one by size and by the device's workgroup memory;
``SUKIYAKI_WEBGPU_MATMUL`` or :data:`KERNEL` forces one: ``auto``, ``simple``, ``t64``,
``t128`` (``t128k16``, ``t64s``, ``t128s``: variants measured beside them), or one of
matmul_db.py, ``db128``, ``db128x64``, ``db64``, ``db128k16``). Every kernel sums each
output's k in order with fused multiply-adds, so all give the same bits:

- ``simple`` (kernels/matmul.wgsl): 4 x 4 outputs a thread through the caches, no
  workgroup memory and no barriers; for products too small to fill the tiles;
- ``t64`` / ``t128`` (kernels/matmul_tiled.wgsl, completed by :func:`tiled_code`): a 64 x 64
  or 128 x 128 block a workgroup of 256, 4 x 4 or 8 x 8 outputs a thread in registers, A and
  B staged through workgroup memory (16 or 8 values of k at a time). When the blocks are
  too few to fill a GPU (a weight gradient: small M x N, long K), the contraction is split
  (split-K) and kernels/matmul_sum.wgsl adds the partial products in a fixed order.

- ``db128k16`` / ``db128x64`` (matmul_db.py): 128 x 128 (k 16 a slice, 32 KiB of workgroup
  memory) or 128 x 64 blocks (12 KiB, within WebGPU's default limit), 8 x 8 outputs a thread,
  double-buffered; the rule's choice for products with enough of these blocks to fill a GPU.

Example (a 4096-cube product, no split: 128 x 128 blocks where the device allows 32 KiB of
workgroup memory, as an H200's Vulkan driver does, else 128 x 64):
    >>> choose(4096, 4096, 4096, 1, workgroup_limit=49152)
    ('db128k16', 1, 4096)
    >>> choose(4096, 4096, 4096, 1)
    ('db128x64', 1, 4096)
"""

import os

import numpy as np

from sukiyaki.backends.webgpu import elementwise as E
from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu import matmul_db as DB

LIBS = ("f64", "common", "math")
_BIG = 1 << 31

#: The float32 kernel: 'auto' (choose's rule), 'simple', 't64', 't128', or one of matmul_db.DB.
KERNEL = os.environ.get("SUKIYAKI_WEBGPU_MATMUL", "auto")
#: Tiled kernels: name -> (rows a thread, columns a thread, k a slice); 16 x 16 threads.
#: t128k16 (its workgroup memory 16 KiB, WebGPU's default limit, so unpadded) is not in the
#: rule: it is there to be measured against t128 (benchmarks/webgpu_native.py --kernels).
TILED = {"t64": (4, 4, 16), "t128": (8, 8, 8), "t128k16": (8, 8, 16), "t64s": (4, 4, 16), "t128s": (8, 8, 8)}
#: Measured beside their namesakes (issue 8): the same kernels, each stored value picked from its
#: accumulator by a constant component (.x .. .w), not a loop index (Vulkan drivers may put a
#: variable indexed at run time, here every accumulator, in local memory); the same bits.
STATIC_STORE = ("t64s", "t128s")
#: Workgroup memory a kernel may take (WebGPU's default maxComputeWorkgroupStorageSize).
WORKGROUP_BYTES = 16384
#: Workgroups a product should give to fill a GPU (an H200 has 132 multiprocessors).
TARGET_GROUPS = 256
#: Below this many multiply-adds (M N K Z), the simple kernel.
SMALL = 1 << 18
#: The shortest stretch of k a split of split-K sums.
SPLIT_MIN_K = 256
#: Workgroups a product summed over a batch (``fill``: a weight gradient) is split for: about
#: four waves of two 128 x 128 blocks on each of an H200's 132 multiprocessors.
FILL_GROUPS = 1024


def _blocks(name, M, N, Z):
    tm, tn, _ = TILED[name]
    return -(-M // (16 * tm)) * -(-N // (16 * tn)) * Z


def choose(M, N, K, Z, kernel=None, max_partial=None, workgroup_limit=WORKGROUP_BYTES, fill=False):
    """(kernel, S, ks) of a float32 product: the kernel's name, the number of splits of the
    contraction and the k of each (S = 1: no split).

    The rule: split the contraction when the 64 x 64 blocks of one product (M N, the batch Z
    left out) are fewer than TARGET_GROUPS, into enough splits for about TARGET_GROUPS
    blocks, each summing at least SPLIT_MIN_K values of k (a multiple of 16), the partial
    products within max_partial bytes; then the simple kernel for a product of fewer than
    SMALL multiply-adds that is not split; else a double-buffered 128-row kernel where its
    blocks (times splits) number at least TARGET_GROUPS / 2: db128k16 where workgroup_limit
    allows its 32 KiB, else db128x64; else t64 (on an H200 through Vulkan, 4096-cube TFLOP/s,
    benchmarks/webgpu_native.py --kernels: db128k16 40.9, db128x64 37.6, db128 31.1, t64 25.9,
    t128 3.2, cuBLAS 51.4). Every kernel sums the k of a split in order, and the splits depend
    on M, N and K alone, so a sample's result does not depend on how many samples share the
    product (the batch Z, or N up to 64 columns).

    ``fill``: a product whose contraction runs over the samples (a weight gradient: the
    result is a sum over the batch anyway), whose few large blocks of a long contraction
    would leave most of a GPU idle: the 128-row kernel, split into enough pieces for about
    FILL_GROUPS workgroups (the batch Z counted), each of at least SPLIT_MIN_K values of k.
    H200, VGG16's conv4 weight gradient (4608 x 512 x 25088): 144 blocks unsplit took 9.9 ms."""
    kernel = kernel or KERNEL
    if kernel not in TILED and kernel not in DB.DB and kernel not in ("simple", "auto"):
        raise ValueError(f"gemm: unknown float32 kernel {kernel!r} (auto, simple, {', '.join(TILED)}, "
                         f"{', '.join(DB.DB)})")
    big = "db128k16" if DB.DB["db128k16"].workgroup_bytes <= workgroup_limit else "db128x64"
    if fill and kernel == "auto":
        got = _choose_fill(M, N, K, Z, max_partial, big)
        if got is not None:
            return got
    S = _split_count(_blocks("t64", M, N, 1), TARGET_GROUPS, 64, K, max_partial, 4 * M * N * Z)
    if kernel == "auto":
        bm, bn = DB.DB[big].block
        if S == 1 and M * N * K < SMALL:
            kernel = "simple"
        elif -(-M // bm) * -(-N // bn) * Z * S >= TARGET_GROUPS // 2:
            kernel = big
        else:
            kernel = "t64"
    if kernel == "simple":
        return kernel, 1, K
    return _splits(kernel, K, S)


def _split_count(blocks, target, most, K, max_partial, partial_bytes):
    """Splits of a contraction of K giving about ``target`` workgroups from ``blocks`` (at most
    ``most``, each of at least SPLIT_MIN_K values of k, the partial products within
    max_partial bytes at partial_bytes a split); 1 where the blocks are enough or K too short."""
    if blocks >= target or K < 2 * SPLIT_MIN_K:
        return 1
    S = min(-(-target // blocks), K // SPLIT_MIN_K, most)
    if max_partial is not None:
        S = max(1, min(S, max_partial // max(1, partial_bytes)))
    return S


def _splits(kernel, K, S):
    """(kernel, S, ks): k of each split a multiple of 16, S recounted from it."""
    ks = max(16, -(-(-(-K // S)) // 16) * 16)
    S = -(-K // ks) if K else 1
    return kernel, S, ks


def _choose_fill(M, N, K, Z, max_partial, big):
    """choose's rule for a ``fill`` product on kernel ``big``; None where its blocks, split as
    far as K allows, are too few for it (the plain rule then)."""
    bm, bn = DB.DB[big].block
    blocks = -(-M // bm) * -(-N // bn) * Z
    # up to FILL_GROUPS splits (conv1_1's 27 x 64 weight gradient is one block)
    S = _split_count(blocks, FILL_GROUPS, FILL_GROUPS, K, max_partial, 4 * M * N * Z)
    if blocks * S < TARGET_GROUPS // 2:
        return None
    return _splits(big, K, S)


def tiled_code(name):
    """WGSL of tiled kernel ``name`` (see TILED): kernels/matmul_tiled.wgsl with its
    generated, unrolled parts (loads, the products of a slice, the stores)."""
    tm, tn, bk = TILED[name]
    bm, bn = 16 * tm, 16 * tn
    la, lb = bm * bk // 256, bn * bk // 256
    pad = 1 if 16 * bk * (bm // 4 + bn // 4 + 2) <= WORKGROUP_BYTES else 0  # a vec4 a row: fewer bank conflicts
    ap, bp = bm // 4 + pad, bn // 4 + pad

    def setup(x, n_loads, rows, mapping, limit, base, s_rows, s_k, s_b, stride, t0):
        out = []
        for r in range(n_loads):
            out += [f"    let {x}s{r} = tile_slot(li + {256 * r}u, {mapping}, {rows});",
                    f"    let {x}ok{r} = {t0} + {x}s{r}.x < {limit};",
                    f"    let {x}row{r} = {base} + select(0u, ({t0} + {x}s{r}.x) * {s_rows}, {x}ok{r});",
                    f"    let {x}w{r} = {x}s{r}.y * {stride} + {x}s{r}.x / 4u;",
                    f"    let {x}c{r} = {x}s{r}.x % 4u;",
                    f"    var {x}v{r} = 0.0f;"]
        return out + load(x, n_loads, "kbeg", s_k, s_b, "    ")

    def load(x, n_loads, kstart, s_k, s_b, ind):
        buf = x.upper()
        out = []
        for r in range(n_loads):
            out += [f"{ind}{{",
                    f"{ind}    let k = {kstart} + {x}s{r}.y;",
                    f"{ind}    {x}v{r} = 0.0f;",
                    f"{ind}    if ({x}ok{r} && k < kend) {{",
                    f"{ind}        var ko = k * {s_k};",
                    f"{ind}        if (split) {{ {DB.split_offset(f'{x}s{r}.y', s_k, s_b)} }}",
                    f"{ind}        {x}v{r} = bitcast<f32>({buf}[{x}row{r} + ko]);",
                    f"{ind}    }}",
                    f"{ind}}}"]
        return out

    lines = {"SETUP": setup("a", la, "BM", "a_rows", "M", "abase", "a_si", "a_sk", "a_sb", "AP", "i0")
             + setup("b", lb, "BN", "b_cols", "N", "bbase", "b_sj", "b_sk", "b_sb", "BP", "j0"),
             "LOAD": [" " * 12 + DB.SPLIT_ADVANCE] + load("a", la, "kn", "a_sk", "a_sb", " " * 12)
             + load("b", lb, "kn", "b_sk", "b_sb", " " * 12),
             "TO_SHARED": [f"        AS[aw{r}][ac{r}] = av{r};" for r in range(la)]
             + [f"        BS[bw{r}][bc{r}] = bv{r};" for r in range(lb)]}
    acc = [(ha, hb, q) for ha in range(tm // 4) for hb in range(tn // 4) for q in range(4)]
    lines["ACC"] = [f"    var c{ha}{hb}{q} = vec4<f32>(0.0f);" for ha, hb, q in acc]
    prod = []
    for kk in range(bk):
        prod.append("        {")
        prod += [f"            let a{ha} = AS[{kk * ap + 16 * ha}u + lid.x];" for ha in range(tm // 4)]
        prod += [f"            let b{hb} = BS[{kk * bp + 16 * hb}u + lid.y];" for hb in range(tn // 4)]
        prod += [f"            c{ha}{hb}{q} = c{ha}{hb}{q} + a{ha} * b{hb}.{'xyzw'[q]};" for ha, hb, q in acc]
        prod.append("        }")
    lines["PRODUCT"] = prod
    store = []
    for ha, hb, q in acc:
        if name in STATIC_STORE:
            store += [f"    {{  // rows 4 x + {64 * ha} + (0..3), column 4 y + {64 * hb + q}",
                      f"        let j = j0 + 4u * lid.y + {64 * hb + q}u;",
                      f"        let ib = i0 + 4u * lid.x + {64 * ha}u;"]
            for r in range(4):
                store += [f"        if (j < N && ib + {r}u < M) {{",
                          f"            let c = cbase + (ib + {r}u) * c_si + j * c_sj;",
                          f"            var v = c{ha}{hb}{q}.{'xyzw'[r]};",
                          "            if (add) { v = v + bitcast<f32>(C[c]); }",
                          "            C[c] = bitcast<u32>(v);",
                          "        }"]
            store.append("    }")
            continue
        store += [f"    {{  // rows 4 x + {64 * ha} + (0..3), column 4 y + {64 * hb + q}",
                  f"        let j = j0 + 4u * lid.y + {64 * hb + q}u;",
                  f"        let ib = i0 + 4u * lid.x + {64 * ha}u;",
                  "        for (var r = 0u; r < 4u; r = r + 1u) {",
                  "            if (j >= N || ib + r >= M) { break; }",
                  "            let c = cbase + (ib + r) * c_si + j * c_sj;",
                  f"            var v = c{ha}{hb}{q}[r];",
                  "            if (add) { v = v + bitcast<f32>(C[c]); }",
                  "            C[c] = bitcast<u32>(v);",
                  "        }",
                  "    }"]
    lines["STORE"] = store
    subs = {k: "\n".join(v) for k, v in lines.items()}
    subs.update(BM=bm, BN=bn, BK=bk, AP=ap, BP=bp, ASN=bk * ap, BSN=bk * bp)
    return K.assemble("matmul_tiled", ["C"], ["A", "B"], subs=subs)


def _naive_body(ctype, kind, out_dtype):
    lines = ["@compute @workgroup_size(256)",
             "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,",
             "        @builtin(local_invocation_index) lid: u32) {",
             "    let t = thread_id(wid, nwg, lid);",
             "    if (t >= META[0]) { return; }",
             "    let M = m(0u);",
             "    let MN = M * m(1u);",
             "    let z = t / MN;",
             "    let i = (t % MN) % M;",
             "    let j = (t % MN) / M;",
             "    let z1 = z % m(3u);",
             "    let z2 = z / m(3u);",
             "    let abase = z1 * m(8u) + z2 * m(9u) + i * m(5u);",
             "    let bbase = z1 * m(13u) + z2 * m(14u) + j * m(10u);",
             f"    var acc = {'vec2<u32>(0u, 0u)' if ctype == 'f64' else E.convert('false', 'bool', ctype)};",
             "    for (var k = 0u; k < m(2u); k = k + 1u) {"]
    words = 2 if kind in ("f64", "i64") else 1
    sfx = " * 2u" if words == 2 else ""
    nat = E.NATURAL[kind]
    wa = f"off(1u) + (abase + (k % m(4u)) * m(6u) + (k / m(4u)) * m(7u)){sfx}"
    wb = f"off(2u) + (bbase + (k % m(4u)) * m(11u) + (k / m(4u)) * m(12u)){sfx}"
    a = E.convert(E.load(kind, "A", wa), nat, ctype)
    b = E.convert(E.load(kind, "B", wb), nat, ctype)
    mul, _ = E.binary_expr("mul", ctype)
    add, _ = E.binary_expr("add", ctype)
    lines.append(f"        acc = {add.format(a='acc', b=mul.format(a=a, b=b))};")
    lines.append("    }")
    lines.append("    let c = z1 * m(17u) + z2 * m(18u) + i * m(15u) + j * m(16u);")
    out_kind = kind
    w = "off(0u) + c" + sfx
    lines.append("    if (m(19u) != 0u) {")
    prev = E.convert(E.load(out_kind, "C", w), nat, ctype)
    lines.append(f"        acc = {add.format(a=prev, b='acc')};")
    lines.append("    }")
    lines.append("    " + E.store(out_dtype, "C", w, E.convert("acc", ctype, nat)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def gemm(be, C, A, B, M, N, Kdim, a, b, c, batch=(1, 1), accumulate=False, c_range=None, a_range=None,
         b_range=None, fill=False):
    """C(i, j) (+)= sum_k A(i, k) B(k, j) over a batch.

    Args:
        C, A, B: GPUArrays of one dtype (float32 uses the tiled kernel).
        a: (si, sk, kd, sb, z1, z2) strides of A (kd: the contraction splits as k % kd, k / kd;
            the same kd for A and B).
        b: (sj, sk, kd, sb, z1, z2) strides of B.
        c: (si, sj, z1, z2) strides of C.
        batch: (Z1, Z2), the batch z = z1 + Z1 z2.
        *_range: (buffer, byte_offset, nbytes) to bind instead of the whole array.
        fill: a sum over the batch of samples (a weight gradient): split to fill the GPU
            (see :func:`choose`).
    """
    Z1, Z2 = batch
    if M == 0 or N == 0 or Z1 * Z2 == 0:
        return
    if a[2] != b[2]:
        raise ValueError(f"gemm: A and B split the contraction differently ({a[2]} and {b[2]})")
    kd = max(1, min(a[2], Kdim)) if Kdim else 1
    params = [M, N, Kdim, Z1, kd, a[0], a[1], a[3], a[4], a[5], b[0], b[1], b[3], b[4], b[5]] + list(c) + \
        [1 if accumulate else 0]
    outs = [c_range or C]
    ins = [a_range or A, b_range or B]
    if C.dtype == np.float32 and A.dtype == np.float32 and B.dtype == np.float32:
        _gemm_f32(be, outs, ins, params, M, N, Kdim, Z1, Z2, c, accumulate, fill)
        return
    ctype = E.compute_of(C.dtype)
    key = ("matmul_naive", ctype, A.kind, C.dtype.str)
    be._run(key, lambda: K.assemble("matmul_naive", ["C"], ["A", "B"], LIBS, body=_naive_body(ctype, A.kind, C.dtype)),
            M * N * Z1 * Z2, outs, ins, params)


def _gemm_f32(be, outs, ins, params, M, N, Kdim, Z1, Z2, c, accumulate, fill=False):
    launcher = be.launcher
    ranges_out = [be._range(x) if not isinstance(x, tuple) else x for x in outs]
    ranges_in = [be._range(x) if not isinstance(x, tuple) else x for x in ins]
    Z = Z1 * Z2
    limit = launcher.device.limits.get("max-compute-workgroup-storage-size") or WORKGROUP_BYTES
    kernel, S, ks = choose(M, N, Kdim, Z, max_partial=launcher.max_binding, workgroup_limit=limit, fill=fill)
    if kernel == "simple":
        pipe = launcher.pipeline(("matmul_f32",), lambda: K.assemble("matmul", ["C"], ["A", "B"]), 1, 2)
        launcher.launch(pipe, M * N * Z, ranges_out, ranges_in, params, groups=(-(-M // 32), -(-N // 32), Z))
        return
    if kernel in DB.DB:
        cfg = DB.DB[kernel]
        if cfg.workgroup_bytes > limit:
            raise ValueError(f"gemm: kernel {kernel} needs {cfg.workgroup_bytes} bytes of workgroup memory, "
                             f"this device allows {limit}")
        a, b = (params[5], params[6], params[4], *params[7:10]), (params[10], params[11], params[4], *params[12:15])
        var = DB.variant(kernel, M, N, Kdim, ks, a, b, [r[1] for r in ranges_in], launcher.align)
        pipe = launcher.pipeline(("matmul_" + kernel, var), lambda: DB.code(kernel, var), 1, 2)
        bm, bn = cfg.block
    else:
        tm, tn, _ = TILED[kernel]
        pipe = launcher.pipeline(("matmul_" + kernel,), lambda: tiled_code(kernel), 1, 2)
        bm, bn = 16 * tm, 16 * tn
    groups = (-(-M // bm), -(-N // bn), Z * S)
    if S == 1:
        launcher.launch(pipe, M * N * Z, ranges_out, ranges_in, params + [1, ks, 0], groups=groups)
        return
    # split-K: partial products into a scratch buffer (dense, i + M (j + N (z + Z s))), then summed
    part = be._range(be._scratch_f32(M * N * Z * S))
    dense = [M, N, Kdim] + params[3:15] + [1, M, M * N, M * N * Z1, 0]
    launcher.launch(pipe, M * N * Z, [part], ranges_in, dense + [S, ks, M * N * Z], groups=groups)
    sum_pipe = launcher.pipeline(("matmul_sum",), lambda: K.assemble("matmul_sum", ["C"], ["W"]), 1, 1)
    launcher.launch(sum_pipe, M * N * Z, ranges_out, [part], [M, N, Z1, Z, S] + list(c) + [1 if accumulate else 0])


def matmul(be, x, y, trans_x=False, trans_y=False):
    """op(x) @ op(y) of 2-d arrays, column-major."""
    if len(x.shape) != 2 or len(y.shape) != 2:
        raise ValueError(f"matmul: operands must be 2-d, got {x.shape} and {y.shape}")
    M, Kx = (x.shape[1], x.shape[0]) if trans_x else x.shape
    Ky, N = (y.shape[1], y.shape[0]) if trans_y else y.shape
    if Kx != Ky:
        raise ValueError(f"matmul: inner dimensions differ: {x.shape}{'T' if trans_x else ''} and "
                         f"{y.shape}{'T' if trans_y else ''}")
    dtype = np.result_type(x.dtype, y.dtype)
    x = be.astype(x, dtype)
    y = be.astype(y, dtype)
    if M * N == 0 or Kx == 0:
        return be.full((M, N), 0, dtype)
    out = be._new((M, N), dtype, zero=False)  # the product writes every element
    a = (x.shape[0], 1, _BIG, 0, 0, 0) if trans_x else (1, x.shape[0], _BIG, 0, 0, 0)
    b = (1, y.shape[0], _BIG, 0, 0, 0) if trans_y else (y.shape[0], 1, _BIG, 0, 0, 0)
    gemm(be, out, x, y, M, N, Kx, a, b, (1, M, 0, 0))
    return out
