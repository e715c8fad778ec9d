"""The WebGPU float32 matrix-product kernels (sukiyaki/backends/webgpu/matmul.py): the simple
one, the register-tiled ones (64- and 128-blocks, split-K) and the double-buffered candidates
(matmul_db.py, their fast and checked variants) against numpy in float64, at edge sizes,
transposed, strided and batched as the convolutions use them; the rule that picks a kernel;
the kernels' parameter arena."""

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend

pytestmark = pytest.mark.skipif("webgpu" not in available_backends(),
                                reason="the webgpu backend is not available here (pip install 'sukiyaki[webgpu]' "
                                       "and a WebGPU adapter, e.g. Mesa's lavapipe)")
KERNELS = ("simple", "t64", "t128", "t128k16", "t64s", "t128s", "db128", "db128x64", "db64", "db128k16")
DB_KERNELS = ("db128", "db128x64", "db64", "db128k16")
TOL = 2e-6  # relative to the largest |value|: float32 sums of up to a few thousand terms


@pytest.fixture(scope="module")
def be():
    return get_backend("webgpu")


@pytest.fixture
def kernel(request, monkeypatch):
    from sukiyaki.backends.webgpu import matmul as MM

    monkeypatch.setattr(MM, "KERNEL", request.param)
    return request.param


def close(got, want):
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    return float(np.abs(got - want).max()) / scale <= TOL if want.size else True


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 5, 3), (1, 129, 63), (63, 64, 65), (64, 64, 64), (65, 1, 129),
                                   (129, 130, 7), (130, 65, 64), (66, 9, 1030), (5, 3, 2000)])
def test_products_at_edge_sizes_and_transposed(be, kernel, M, N, K):
    rng = np.random.default_rng(M * 10007 + N * 101 + K)
    bad = []
    for tx in (False, True):
        for ty in (False, True):
            x = rng.standard_normal((K, M) if tx else (M, K)).astype(np.float32)
            y = rng.standard_normal((N, K) if ty else (K, N)).astype(np.float32)
            want = (x.T if tx else x).astype(np.float64) @ (y.T if ty else y).astype(np.float64)
            got = be.to_numpy(be.matmul(be.from_numpy(x), be.from_numpy(y), tx, ty))
            if got.shape != want.shape or not close(got, want):
                bad.append((tx, ty))
    assert not bad, f"kernel {kernel}, {M}x{N}x{K}: wrong with (trans_x, trans_y) in {bad}"


def reference_gemm(C, A, B, M, N, K, a, b, c, batch, accumulate):
    """numpy float64 of matmul.gemm's addressing (see kernels/matmul.wgsl)."""
    kd = max(1, min(a[2], K))
    i = np.arange(M)[:, None, None]
    j = np.arange(N)[None, :, None]
    k = np.arange(K)[None, None, :]
    kr, kb = k % kd, k // kd
    out = C.astype(np.float64)
    for z2 in range(batch[1]):
        for z1 in range(batch[0]):
            av = A[i * a[0] + kr * a[1] + kb * a[3] + z1 * a[4] + z2 * a[5]].astype(np.float64)
            bv = B[j * b[0] + kr * b[1] + kb * b[3] + z1 * b[4] + z2 * b[5]].astype(np.float64)
            at = np.arange(M)[:, None] * c[0] + np.arange(N)[None, :] * c[1] + z1 * c[2] + z2 * c[3]
            out[at] = (out[at] if accumulate else 0) + (av * bv).sum(2)
    return out


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("M,N,K,Z1,Z2,kd", [(25, 20, 1152, 1, 1, 36), (70, 9, 700, 2, 1, 100), (5, 3, 9, 1, 3, 9),
                                            (65, 66, 520, 1, 2, 7), (130, 40, 300, 3, 1, 300), (1, 1, 600, 1, 1, 1)])
def test_strided_batched_products_split_contraction(be, kernel, M, N, K, Z1, Z2, kd):
    """The addressing a convolution uses: the contraction split in two strided axes (positions
    and samples), a batch of groups and samples, a weight shared through a zero stride,
    operands k-contiguous or not, accumulation into C; split-K where the rule splits."""
    from sukiyaki.backends.webgpu import matmul as MM

    rng = np.random.default_rng(K + M)
    nb = -(-K // kd)
    bad = []
    for ta in (False, True):
        for tb in (False, True):
            for accumulate in (False, True):
                a = (kd * nb, 1, kd, kd, M * kd * nb, M * kd * nb * Z1) if ta else \
                    (1, M, kd, M * kd, M * kd * nb, M * kd * nb * Z1)
                b = (1, N, kd, N * kd, N * kd * nb, N * kd * nb * Z1) if tb else (kd * nb, 1, kd, kd, N * kd * nb, 0)
                c = (1, M, M * N, M * N * Z1)
                Af = rng.standard_normal(M * kd * nb * Z1 * Z2).astype(np.float32)
                Bf = rng.standard_normal(N * kd * nb * Z1 * Z2).astype(np.float32)
                Cf = rng.standard_normal(M * N * Z1 * Z2).astype(np.float32)
                C = be.from_numpy(Cf)
                MM.gemm(be, C, be.from_numpy(Af), be.from_numpy(Bf), M, N, K, a, b, c, batch=(Z1, Z2),
                        accumulate=accumulate)
                if not close(be.to_numpy(C), reference_gemm(Cf, Af, Bf, M, N, K, a, b, c, (Z1, Z2), accumulate)):
                    bad.append((ta, tb, accumulate))
    assert not bad, f"kernel {kernel}: wrong with (A k-contiguous, B j-contiguous, accumulate) in {bad}"


def test_tiled_kernels_fit_webgpus_default_limits():
    """Workgroup memory within 16 KiB and 256 invocations (the browser's defaults)."""
    import re

    from sukiyaki.backends.webgpu.matmul import TILED, WORKGROUP_BYTES, tiled_code

    for name in TILED:
        code = tiled_code(name)
        sizes = [int(n) for n in re.findall(r"var<workgroup> \w+: array<vec4<f32>, (\d+)>", code)]
        assert len(sizes) == 2 and 16 * sum(sizes) <= WORKGROUP_BYTES, (name, sizes)
        assert "@workgroup_size(16, 16)" in code


def test_db_kernels_fit_their_limits():
    """The candidates' workgroup memory is what matmul_db says (16 KiB but db128k16's 32 KiB),
    their workgroups at most 256 invocations."""
    import re

    from sukiyaki.backends.webgpu.matmul_db import DB, code

    for name, cfg in DB.items():
        for var in ("checked", "fast-rr", "fast-kk"):
            text = code(name, var)
            sizes = re.findall(r"var<workgroup> \w+: array<array<vec4<f32>, (\d+)>, (\d+)>", text)
            assert len(sizes) == 2 and 16 * sum(int(a) * int(b) for a, b in sizes) == cfg.workgroup_bytes, (name, sizes)
            assert f"@workgroup_size({cfg.tx}, {cfg.ty})" in text and cfg.threads <= 256
            assert ("array<vec4<u32>>" in text) == (var != "checked")
        assert cfg.workgroup_bytes <= (32768 if name == "db128k16" else 16384), name


def test_db_variant_rule():
    """The fast variant only where the blocks, the slices and vec4 loads fit."""
    from sukiyaki.backends.webgpu.matmul_db import variant

    big = 1 << 31
    col_a, row_a = (1, 256, big, 0, 0, 0), (512, 1, big, 0, 0, 0)  # A(i, k) i-contiguous, k-contiguous
    col_b, row_b = (512, 1, big, 0, 0, 0), (1, 256, big, 0, 0, 0)  # B(k, j) k-contiguous, j-contiguous
    assert variant("db128", 256, 256, 512, 512, col_a, col_b, (0, 0), 256) == "fast-rk"
    assert variant("db128", 256, 256, 512, 512, row_a, row_b, (0, 0), 256) == "fast-kr"
    assert variant("db128", 256, 256, 512, 256, col_a, row_b, (16, 32), 32) == "fast-rr"
    assert variant("db128", 256, 192, 512, 512, col_a, col_b, (0, 0), 256) == "fast-rk-e"  # N off the blocks
    assert variant("db128", 784, 64, 512, 512, col_a, col_b, (0, 0), 256) == "fast-rk-e"
    assert variant("db128", 786, 64, 512, 512, col_a, col_b, (0, 0), 256) == "checked"  # M: no vec4 of rows
    assert variant("db128", 786, 66, 512, 512, row_a, col_b, (0, 0), 256) == "fast-kk-e"
    assert variant("db128x64", 256, 192, 512, 512, col_a, col_b, (0, 0), 256) == "fast-rk"
    assert variant("db64", 256, 256, 520, 528, col_a, col_b, (0, 0), 256) == "checked"  # K off the slices
    assert variant("db128", 256, 256, 512, 512, col_a, col_b, (4, 0), 256) == "checked"  # A not 16-byte aligned
    assert variant("db128", 256, 256, 512, 512, (1, 258, big, 0, 0, 0), col_b, (0, 0), 256) == "checked"
    assert variant("db128", 256, 256, 512, 512, (2, 512, big, 0, 0, 0), col_b, (0, 0), 256) == "checked"
    assert variant("db128", 256, 256, 512, 512, (1, 256, 64, 0, 0, 0), col_b, (0, 0), 256) == "checked"  # kd
    split_a, split_b = (1, 256, 64, 256 * 64, 0, 0), (64, 1, 64, 64 * 256, 0, 0)  # k = kr + 64 kb
    assert variant("db128", 256, 256, 512, 512, split_a, split_b, (0, 0), 256) == "fast-rk-s"
    assert variant("db128", 200, 256, 512, 256, split_a, split_b, (0, 0), 256) == "fast-rk-e-s"
    assert variant("db128", 256, 256, 520, 520, (1, 256, 10, 2560, 0, 0), (10, 1, 10, 2560, 0, 0), (0, 0), 256) \
        == "checked"  # kd not a multiple of 4
    assert variant("db128", 256, 256, 512, 512, (1, 256, big, 0, 6, 0), col_b, (0, 0), 256) == "checked"  # z1
    assert variant("db128", 256, 256, 0, 16, col_a, col_b, (0, 0), 256) == "checked"


@pytest.mark.parametrize("name", DB_KERNELS)
def test_db_fast_variant_equals_checked_bit_for_bit(be, name, monkeypatch):
    """Each fast variant (A and B each along their rows/columns or along k) against numpy, and
    the same bits as the checked variant of the same product; batched, accumulating, split-K,
    an operand at a 16-byte offset, and M, N off the blocks (the edge variants) included."""
    from sukiyaki.backends.webgpu import matmul as MM
    from sukiyaki.backends.webgpu import matmul_db as DB

    monkeypatch.setattr(MM, "KERNEL", name)
    seen = []
    pick = DB.variant
    monkeypatch.setattr(DB, "variant", lambda *a: seen.append(pick(*a)) or seen[-1])
    bm, bn = DB.DB[name].block
    rng = np.random.default_rng(len(name))
    for M, N, Z1, K, edge in [(2 * bm, bn, 2, 64, ""), (2 * bm, bn, 2, 1024, ""),  # 1024: split-K (S > 1)
                              (bm + 12, bn + 36, 1, 64, "-e"), (bm - 4, 8, 2, 1024, "-e")]:
        for ta in (False, True):
            for tb in (False, True):
                a = (K, 1, 1 << 31, 0, M * K, 0) if ta else (1, M, 1 << 31, 0, M * K, 0)
                b = (1, N, 1 << 31, 0, N * K, 0) if tb else (K, 1, 1 << 31, 0, N * K, 0)
                c = (1, M, M * N, 0)
                Af = rng.standard_normal(4 + M * K * Z1).astype(np.float32)
                Bf = rng.standard_normal(N * K * Z1).astype(np.float32)
                Cf = rng.standard_normal(M * N * Z1).astype(np.float32)
                A = be.from_numpy(Af)
                B = be.from_numpy(Bf)
                got = []
                for fast in (True, False):
                    monkeypatch.setattr(DB, "FAST", fast)
                    C = be.from_numpy(Cf)
                    MM.gemm(be, C, A, B, M, N, K, a, b, c, batch=(Z1, 1), accumulate=True,
                            a_range=(A.buffer, A.byte_offset + 16, 4 * M * K * Z1))
                    got.append(be.to_numpy(C))
                want = reference_gemm(Cf, Af[4:], Bf, M, N, K, a, b, c, (Z1, 1), True)
                assert seen[-2] == "fast-" + "rk"[ta] + "kr"[tb] + edge and seen[-1] == "checked", seen[-2:]
                assert close(got[0], want), (name, K, ta, tb)
                assert np.array_equal(got[0], got[1]), (name, K, ta, tb)


@pytest.mark.parametrize("name", ["db128", "db128k16"])
def test_db_split_variants_equal_checked_bit_for_bit(be, name, monkeypatch):
    """The fast variants of a split contraction (k = kr + kd kb, a weight gradient's
    positions and samples; A, B each along rows/columns or along k; M, N on and off the
    blocks; split-K over the whole GPU) against numpy, and the checked variant's bits."""
    from sukiyaki.backends.webgpu import matmul as MM
    from sukiyaki.backends.webgpu import matmul_db as DB

    limit = be.launcher.device.limits.get("max-compute-workgroup-storage-size") or MM.WORKGROUP_BYTES
    if DB.DB[name].workgroup_bytes > limit:
        pytest.skip(f"{name} needs {DB.DB[name].workgroup_bytes} bytes of workgroup memory; this device allows {limit}")
    monkeypatch.setattr(MM, "KERNEL", name)
    seen = []
    pick = DB.variant
    monkeypatch.setattr(DB, "variant", lambda *a: seen.append(pick(*a)) or seen[-1])
    bm, bn = DB.DB[name].block
    rng = np.random.default_rng(7)
    for M, N, kd, nb in [(bm, bn, 36, 4), (bm + 12, 20, 196, 4), (2 * bm, bn, 48, 11), (bm, 8, 16, 40)]:
        K = kd * nb
        for ta in (False, True):
            for tb in (False, True):
                a = (kd, 1, kd, M * kd, 0, 0) if ta else (1, M, kd, M * kd, 0, 0)
                b = (1, N, kd, N * kd, 0, 0) if tb else (kd, 1, kd, N * kd, 0, 0)
                c = (1, M, 0, 0)
                Af = rng.standard_normal(M * K).astype(np.float32)
                Bf = rng.standard_normal(N * K).astype(np.float32)
                Cf = rng.standard_normal(M * N).astype(np.float32)
                A, B = be.from_numpy(Af), be.from_numpy(Bf)
                got = []
                for fast in (True, False):
                    monkeypatch.setattr(DB, "FAST", fast)
                    C = be.from_numpy(Cf)
                    MM.gemm(be, C, A, B, M, N, K, a, b, c, accumulate=True, fill=True)
                    got.append(be.to_numpy(C))
                want = reference_gemm(Cf, Af, Bf, M, N, K, a, b, c, (1, 1), True)
                edge = "-e" if M % bm or N % bn else ""
                assert seen[-2] == "fast-" + "rk"[ta] + "kr"[tb] + edge + "-s" and seen[-1] == "checked", seen[-2:]
                assert close(got[0], want), (name, M, N, kd, ta, tb)
                assert np.array_equal(got[0], got[1]), (name, M, N, kd, ta, tb)


def test_the_rule():
    from sukiyaki.backends.webgpu.matmul import SPLIT_MIN_K, choose

    assert choose(4096, 4096, 4096, 1) == ("db128x64", 1, 4096)  # within WebGPU's default workgroup memory
    assert choose(4096, 4096, 4096, 1, workgroup_limit=32768) == ("db128k16", 1, 4096)
    assert choose(256, 256, 4096, 1, workgroup_limit=32768)[0] == "t64"  # too few 128-blocks to fill a GPU
    assert choose(8, 8, 8, 1)[0] == "simple"
    # a weight gradient (small M x N, long contraction) is split; each split sums >= SPLIT_MIN_K
    kernel, S, ks = choose(576, 64, 50176, 1)
    assert kernel in ("t64", "db128x64") and S > 8 and ks >= SPLIT_MIN_K and S * ks >= 50176 and ks % 16 == 0
    # the split does not depend on the batch: a sample's sums are the same whatever the batch
    for M, N, K in [(196, 512, 4608), (64, 50, 500), (500, 16, 800), (20, 1, 36864)]:
        splits = {choose(M, N, K, Z)[1:] for Z in (1, 4, 16, 64)}
        assert len(splits) == 1, (M, N, K, splits)
    # the partial products stay within the bytes allowed
    assert choose(100, 100, 100000, 1, max_partial=4 * 100 * 100 * 3)[1] <= 3
    with pytest.raises(ValueError, match="unknown float32 kernel 'fast'"):
        choose(8, 8, 8, 1, kernel="fast")


def test_the_rule_for_weight_gradients():
    """fill (a sum over the batch): few 128-blocks of a long contraction are split into about
    FILL_GROUPS workgroups, each split >= SPLIT_MIN_K; where even that leaves too few blocks,
    the plain rule."""
    from sukiyaki.backends.webgpu.matmul import FILL_GROUPS, SPLIT_MIN_K, choose

    plain = choose(4608, 512, 25088, 1, workgroup_limit=49152)
    kernel, S, ks = choose(4608, 512, 25088, 1, workgroup_limit=49152, fill=True)
    assert plain[1] == 1 and kernel == "db128k16" and 36 * 4 * S >= FILL_GROUPS and S * ks >= 25088
    assert ks >= SPLIT_MIN_K and ks % 16 == 0
    assert choose(4608, 512, 25088, 1, workgroup_limit=49152, fill=True, max_partial=4 * 4608 * 512 * 2)[1] <= 2
    kernel, S, ks = choose(27, 64, 401408, 1, workgroup_limit=49152, fill=True)  # conv1_1's: one block
    assert kernel == "db128k16" and S > 64 and S <= FILL_GROUPS and ks >= SPLIT_MIN_K
    assert choose(27, 64, 300, 1, workgroup_limit=49152, fill=True) == choose(27, 64, 300, 1, workgroup_limit=49152)
    assert choose(8, 8, 8, 1, fill=True)[0] == "simple"


@pytest.mark.parametrize("M,N,K,kd", [(300, 260, 4100, 410), (130, 40, 3000, 300), (20, 70, 1200, 12),
                                      (300, 129, 2048, 2048)])
def test_weight_gradient_products(be, M, N, K, kd):
    """A weight gradient's product (fill): k runs over positions (kd) and samples, A and B
    k-contiguous, split to fill the GPU; equal to the reference, accumulating or not."""
    from sukiyaki.backends.webgpu import matmul as MM

    if (M, kd) == (300, 410):  # the fill rule's split (where the device has the 128-row kernel)
        limit = be.launcher.device.limits.get("max-compute-workgroup-storage-size") or MM.WORKGROUP_BYTES
        kernel, S, _ = MM.choose(M, N, K, 1, workgroup_limit=limit, fill=True)
        assert S > 8 and kernel.startswith("db"), (kernel, S)
    rng = np.random.default_rng(M + K)
    nb = -(-K // kd)
    a = (kd, 1, kd, M * kd, 0, 0)  # A(i, k) at k % kd + kd i + M kd (k / kd): columns (P, Kd, n)
    b = (kd, 1, kd, N * kd, 0, 0)
    c = (1, M, 0, 0)
    Af = rng.standard_normal(M * kd * nb).astype(np.float32)
    Bf = rng.standard_normal(N * kd * nb).astype(np.float32)
    for accumulate in (False, True):
        Cf = rng.standard_normal(M * N).astype(np.float32)
        C = be.from_numpy(Cf)
        MM.gemm(be, C, be.from_numpy(Af), be.from_numpy(Bf), M, N, K, a, b, c, accumulate=accumulate, fill=True)
        assert close(be.to_numpy(C), reference_gemm(Cf, Af, Bf, M, N, K, a, b, c, (1, 1), accumulate)), accumulate


@pytest.mark.parametrize("kernel", ("auto",) + KERNELS, indirect=True)
def test_a_column_does_not_depend_on_the_others(be, kernel):
    """The bits of a column of W X are those of W times that column alone (so a sample's
    output does not depend on the batch it is in)."""
    rng = np.random.default_rng(0)
    for M, K in [(500, 800), (64, 500), (130, 1100)]:
        w = be.from_numpy(rng.standard_normal((M, K)).astype(np.float32))
        X = rng.standard_normal((K, 16)).astype(np.float32)
        whole = be.to_numpy(be.matmul(w, be.from_numpy(X)))
        one = be.to_numpy(be.matmul(w, be.from_numpy(np.asfortranarray(X[:, 3:4]))))
        assert np.array_equal(whole[:, 3:4], one), (M, K)


def test_kernels_share_one_parameter_arena(be, monkeypatch):
    """Launches between two reads create no buffer for their parameters, and an arena that
    fills up is submitted and reused without mixing parameters up."""
    from sukiyaki.backends.webgpu import device as D

    dev = be.device
    made = []
    create = dev._create_with_data
    monkeypatch.setattr(dev, "_create_with_data", lambda mv: made.append(len(mv)) or create(mv))
    x = be.from_numpy(np.arange(8, dtype=np.float32))
    be.to_numpy(x)
    monkeypatch.setattr(D, "ARENA_BYTES", 1024)
    monkeypatch.setattr(dev, "_arena", None)  # the next one of 1024 bytes
    made.clear()
    before = dev.submits
    y = x
    n = 2 * 1024 // max(32, dev.limits["min-storage-buffer-offset-alignment"]) + 5  # fills the arena twice
    for k in range(n):
        y = be.binary["add"](y, float(k % 3))
    got = be.to_numpy(y)
    assert made == []
    assert dev.submits - before >= 2
    np.testing.assert_array_equal(got, np.arange(8, dtype=np.float32) + sum(k % 3 for k in range(n)))
