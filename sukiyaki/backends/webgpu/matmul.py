"""Matrix products: the strided batched GEMM of kernels/matmul.wgsl (float32, tiled), and a
plain one-thread-an-output kernel for other dtypes (float64 in software, integers wrapping).

:func:`gemm` takes addressing as strides (see matmul.wgsl), so a transposed operand, a
column block, a batch of samples or a convolution's lowered columns need no copy.
"""

import numpy as np

from sukiyaki.backends.webgpu import elementwise as E
from sukiyaki.backends.webgpu import kernels as K

LIBS = ("f64", "common", "math")
_BIG = 1 << 31


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
         b_range=None):
    """C(i, j) (+)= sum_k A(i, k) B(k, j) over a batch.

    Args:
        C, A, B: GPUArrays of one dtype (float32 uses the tiled kernel).
        a: (si, sk, kd, sb, z1, z2) strides of A (kd: the contraction splits as k % kd, k / kd;
            the same kd for A and B).
        b: (sj, sk, kd, sb, z1, z2) strides of B.
        c: (si, sj, z1, z2) strides of C.
        batch: (Z1, Z2), the batch z = z1 + Z1 z2.
        *_range: (buffer, byte_offset, nbytes) to bind instead of the whole array.
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
        pipe = be.launcher.pipeline(("matmul_f32",), lambda: K.assemble("matmul", ["C"], ["A", "B"]), 1, 2)
        ranges_out = [be._range(x) if not isinstance(x, tuple) else x for x in outs]
        ranges_in = [be._range(x) if not isinstance(x, tuple) else x for x in ins]
        be.launcher.launch(pipe, M * N * Z1 * Z2, ranges_out, ranges_in, params,
                           groups=(-(-M // 32), -(-N // 32), Z1 * Z2))
        return
    ctype = E.compute_of(C.dtype)
    key = ("matmul_naive", ctype, A.kind, C.dtype.str)
    be._run(key, lambda: K.assemble("matmul_naive", ["C"], ["A", "B"], LIBS, body=_naive_body(ctype, A.kind, C.dtype)),
            M * N * Z1 * Z2, outs, ins, params)


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
    out = be._new((M, N), dtype)
    if out.size == 0:
        return out
    if Kx == 0:
        return be.full((M, N), 0, dtype)
    a = (x.shape[0], 1, _BIG, 0, 0, 0) if trans_x else (1, x.shape[0], _BIG, 0, 0, 0)
    b = (1, y.shape[0], _BIG, 0, 0, 0) if trans_y else (y.shape[0], 1, _BIG, 0, 0, 0)
    gemm(be, out, x, y, M, N, Kx, a, b, (1, M, 0, 0))
    return out
