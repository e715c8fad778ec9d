"""Tests of the WebGPU backend itself (the device fixture runs the rest of the suite on it):
adapter, storage of the dtypes WGSL lacks, the software float64, Philox known answers on
the device, shader compile errors, buffers beyond one binding, and host reads."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.backends import BackendUnavailable, available_backends, get_backend

pytestmark = pytest.mark.skipif("webgpu" not in available_backends(),
                                reason="the webgpu backend is not available here (pip install 'sukiyaki[webgpu]' "
                                       "and a WebGPU adapter, e.g. Mesa's lavapipe)")
KAT = Path(__file__).resolve().parents[1].parent / "shared" / "compat" / "philox4x32-10.json"


@pytest.fixture(scope="module")
def be():
    return get_backend("webgpu")


def test_adapter_info_and_limits(be):
    info = be.device.info
    assert be.name == "webgpu" and be.is_gpu
    assert info["device"] or info["description"] or info["vendor"]
    assert info["backend_type"]  # e.g. Vulkan (lavapipe), Metal, D3D12
    limits = be.device.limits
    assert limits["max-storage-buffer-binding-size"] >= 128 << 20  # the WebGPU default at least
    assert limits["max-buffer-size"] >= limits["max-storage-buffer-binding-size"]
    memory = be.available_memory()
    assert memory is None or memory > 0


def test_create_without_wgpu_names_the_extra(monkeypatch):
    from sukiyaki.backends import webgpu

    monkeypatch.setitem(sys.modules, "wgpu", None)  # import wgpu now raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'sukiyaki\[webgpu\]'"):
        webgpu.create()


def test_create_without_an_adapter_says_so(monkeypatch):
    from sukiyaki.backends import webgpu

    def no_adapter():
        raise LookupError("wgpu found no WebGPU adapter")

    monkeypatch.setattr(webgpu, "open_device", no_adapter)
    with pytest.raises(BackendUnavailable, match="cannot run here: wgpu found no WebGPU adapter"):
        webgpu.create()


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint8", "bool", "int64", "float16", "int16",
                                   "uint32"])
def test_storage_round_trip_is_exact(be, dtype):
    rng = np.random.default_rng(0)
    if dtype == "bool":
        a = rng.integers(0, 2, (5, 7)).astype(bool)
    elif np.dtype(dtype).kind == "f":
        a = (rng.standard_normal((5, 7)) * 1e3).astype(dtype)
        a[0, :3] = [np.nan, np.inf, -0.0]
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, (5, 7), endpoint=True, dtype=np.int64 if dtype != "uint32" else np.uint64)
        a = a.astype(dtype)
    x = be.from_numpy(np.asfortranarray(a))
    assert (x.shape, x.dtype, x.nbytes) == (a.shape, a.dtype, a.nbytes)  # numpy's nbytes, whatever the storage
    back = be.to_numpy(x)
    assert back.dtype == a.dtype and back.flags.f_contiguous
    assert back.tobytes() == np.asfortranarray(a).tobytes()
    assert be.item(x) == a[0, 0] or (np.isnan(a[0, 0]) and np.isnan(be.item(x)))


def test_views_share_storage(be):
    buf = be.from_numpy(np.arange(10, dtype=np.float32))
    v = be.view(buf, 3, (2, 2))
    np.testing.assert_array_equal(be.to_numpy(v), np.arange(3, 7, dtype=np.float32).reshape(2, 2, order="F"))
    be.assign_(v, 0.5)  # writes through
    np.testing.assert_array_equal(be.to_numpy(buf)[2:8], [2, 0.5, 0.5, 0.5, 0.5, 7])
    r = be.reshape(v, (4,))
    be.scale_(r, 4.0)
    np.testing.assert_array_equal(be.to_numpy(buf)[3:7], [2, 2, 2, 2])


def _random_doubles(rng, n):
    x = rng.integers(0, 2 ** 64, n, dtype=np.uint64).view(np.float64).copy()
    k = n // 3
    x[:k] = rng.standard_normal(k) * 10.0 ** rng.integers(-8, 8, k)
    x[k:2 * k] = rng.integers(-2 ** 31, 2 ** 31, k)
    x[2 * k:2 * k + 8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308, 2.0 ** 53]
    return x


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "rem", "mod", "lt", "eq", "maximum"])
def test_float64_arithmetic_is_numpys_bit_for_bit(be, op):
    """float64 is a software binary64 (WGSL has none): correctly rounded, so numpy's bits."""
    rng = np.random.default_rng(1)
    x, y = _random_doubles(rng, 3000), _random_doubles(rng, 3000)
    y[:500] = x[:500] * (1 + rng.standard_normal(500) * 1e-12)  # cancellations
    ref = get_backend("numpy").binary[op](x.reshape(-1, 1), y.reshape(-1, 1))
    got = be.to_numpy(be.binary[op](be.from_numpy(x.reshape(-1, 1)), be.from_numpy(y.reshape(-1, 1))))
    assert got.dtype == ref.dtype
    if ref.dtype.kind == "f":
        same = (got.view(np.uint64) == ref.view(np.uint64)) | (np.isnan(got) & np.isnan(ref))
        assert same.all(), f"{op}: {int((~same).sum())} of {same.size} differ"
    else:
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "bool", "int64"])
def test_float64_conversions_are_exact(be, dtype):
    rng = np.random.default_rng(2)
    x = _random_doubles(rng, 3000).reshape(-1, 1)
    nb = get_backend("numpy")
    with np.errstate(all="ignore"):
        ref = nb.cast_wrap(x, np.dtype(dtype))
        back = nb.astype(ref, np.float64)
    got = be.to_numpy(be.cast_wrap(be.from_numpy(x), np.dtype(dtype)))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(be.to_numpy(be.astype(be.from_numpy(ref), np.float64)), back)


@pytest.fixture(scope="module")
def kat():
    if not KAT.is_file():
        pytest.skip(f"known-answer file not found: {KAT} (the shared folder is missing)")
    return json.loads(KAT.read_text())


def test_philox_known_answers_on_the_device(be, kat):
    """kernels/philox.wgsl (the high words of 32x32 products from 16-bit halves) gives the
    Random123 known answers."""
    from sukiyaki.backends.webgpu import kernels as K

    body = """@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wid: vec3<u32>) {
    let i = wid.x;
    let w = philox4x32(vec4<u32>(IN[6u * i], IN[6u * i + 1u], IN[6u * i + 2u], IN[6u * i + 3u]),
                       IN[6u * i + 4u], IN[6u * i + 5u]);
    OUT[4u * i] = w.x;
    OUT[4u * i + 1u] = w.y;
    OUT[4u * i + 2u] = w.z;
    OUT[4u * i + 3u] = w.w;
}
"""
    cases = kat["cases"]
    words = np.array([int(w, 16) for c in cases for w in c["counter"] + c["key"]], np.uint32)
    out = be.device.buffer(16 * len(cases))
    inp = be.device.upload(words.tobytes())
    pipe = be.launcher.pipeline(("test_philox",), lambda: K.assemble("test_philox", ["OUT"], ["IN"], ("philox",),
                                                                     body=body), 1, 1)
    be.launcher.launch(pipe, len(cases), [(out, 0, 16 * len(cases))], [(inp, 0, words.nbytes)],
                       groups=(len(cases), 1, 1))
    got = np.frombuffer(be.device.read(out, 0, 16 * len(cases)), np.uint32).reshape(len(cases), 4)
    for c, g in zip(cases, got):
        assert [f"{int(v):08x}" for v in g] == c["output"]


def test_philox_uniform_is_numpys_bit_for_bit(be, kat):
    from sukiyaki.backends.numpy.philox import philox_uniform

    ids = np.array([0, 7, 2 ** 31 - 1, 123456, 3], np.int32)
    for key, iteration, per in (((0, 0), 0, 4), ((0xDEADBEEF, 0x12345678), 99, 37), ((1, 2), 2 ** 32 - 1, 1)):
        got = be.to_numpy(be.philox_uniform(key, iteration, be.from_numpy(ids), per))
        ref = philox_uniform(key, iteration, ids.view(np.uint32), per)
        assert got.tobytes() == ref.tobytes()
    first = be.to_numpy(be.philox_uniform((0, 0), 0, be.from_numpy(np.array([0], np.int32)), 4))[:, 0]
    assert [int(v * 2 ** 24) for v in first] == [int(w, 16) >> 8 for w in kat["cases"][0]["output"]]


def test_shader_compile_error_carries_the_log(be):
    from sukiyaki.backends.webgpu import kernels as K
    from sukiyaki.backends.webgpu.native import ShaderError

    body = "@compute @workgroup_size(1)\nfn main() {\n    let x: f32 = 1u;\n}\n"
    with pytest.raises(ShaderError) as info:
        be.launcher.pipeline(("test_broken",), lambda: K.assemble("test_broken", ["OUT"], [], body=body), 1, 0)
    text = str(info.value)
    assert "test_broken" in text and "failed to compile" in text
    assert "f32" in text and "u32" in text  # the compiler's own message, with the offending types


def test_arrays_beyond_one_binding_run_in_pieces(be, monkeypatch):
    """Elementwise kernels and the fused updates cut arrays larger than the device's
    max-storage-buffer-binding-size into pieces (a VGG-16 parameter buffer is 553 MB; the
    WebGPU default binding limit is 128 MiB); other kernels refuse them, naming the limit."""
    monkeypatch.setattr(be.launcher, "max_binding", 4096)
    rng = np.random.default_rng(3)
    a = rng.standard_normal(5000).astype(np.float32)
    b = rng.standard_normal(5000).astype(np.float32)
    x, y = be.from_numpy(a), be.from_numpy(b)
    np.testing.assert_array_equal(be.to_numpy(be.binary["mul"](x, y)), a * b)
    w, g, v = be.from_numpy(a), be.from_numpy(b), be.full((5000,), 0.5, np.float32)
    be.nn.momentum_update_(w, g, v, 0.1, 0.9, 0.01)
    w_ref, v_ref = a.copy(), np.full(5000, 0.5, np.float32)
    get_backend("numpy").nn.momentum_update_(w_ref, b, v_ref, 0.1, 0.9, 0.01)
    assert be.to_numpy(w).tobytes() == w_ref.tobytes() and be.to_numpy(v).tobytes() == v_ref.tobytes()
    with pytest.raises(MemoryError, match="max-storage-buffer-binding-size"):
        be.reduce("sum", x, 0)


def test_only_the_transfers_read_back(be, monkeypatch):
    """A LeNet training step records work and reads nothing; to_numpy reads."""
    from sukiyaki.nn import Net
    from sukiyaki.nn.train import make_optimizer

    lenet = Path(__file__).resolve().parents[1] / "sukiyaki" / "nets" / "lenet.json"
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (28, 28, 1, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, (1, 8))
    net = Net(str(lenet), device="webgpu", data_sources={"d_train": (images, labels), "d_test": (images, labels)})
    opt = make_optimizer("momentum_sgd", lr=0.01)
    reads = []
    real_read = be.device.read
    monkeypatch.setattr(be.device, "read", lambda *a: reads.append(a) or real_read(*a))
    loss = net.train_batch({"batch": list(range(8))}, seed=0)
    opt.apply(net.store)
    assert reads == []
    assert np.isfinite(float(loss["loss"])) and len(reads) == 1


@pytest.mark.parametrize("n", [1, 3, 4, 5, 255, 1023, 1025, 4099])
def test_elementwise_covers_every_element(be, n):
    # several elements an invocation: the counts around its multiples
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(be.to_numpy(be.binary["add"](be.from_numpy(a), be.from_numpy(b))), a + b)
    np.testing.assert_array_equal(be.to_numpy(be.binary["maximum"](be.from_numpy(a), 0.0)), np.fmax(a, 0))


@pytest.mark.parametrize("sa,sb", [((4, 5, 6, 3), (1, 1, 6, 1)), ((4, 5, 6, 3), (4, 1, 6, 1)), ((7, 3), (7, 1)),
                                   ((7, 3), (1, 3)), ((2, 3, 4), (3, 1)), ((5,), (1,)), ((1, 1), (1,)),
                                   ((3, 1, 5), (1, 4, 1)), ((9, 1, 7, 2), (1, 5, 7, 1))])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8"])
def test_broadcast_patterns_are_numpys(be, sa, sb, dtype):
    # broadcasts index through a collapsed shape, counted up within an invocation
    rng = np.random.default_rng(len(sa) * 7 + len(sb))
    a = np.asfortranarray((rng.standard_normal(sa) * 50).astype(dtype))
    b = np.asfortranarray((rng.standard_normal(sb) * 50).astype(dtype))
    A, B = be.from_numpy(a), be.from_numpy(b)
    for op, ref in (("add", np.add), ("mul", np.multiply), ("gt", np.greater)):
        np.testing.assert_array_equal(be.to_numpy(be.binary[op](A, B)), ref(a, b))
        np.testing.assert_array_equal(be.to_numpy(be.binary[op](B, A)), ref(b, a))


def _im2col_ref(x, KH, KW, sh, sw, ph, pw):
    H, W, C, n = x.shape
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    xp = np.zeros((H + 2 * ph, W + 2 * pw, C, n), x.dtype)
    xp[ph:ph + H, pw:pw + W] = x
    cols = np.zeros((OH, OW, KH, KW, C, n), x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, kh, kw] = xp[kh:kh + sh * OH:sh, kw:kw + sw * OW:sw]
    # (P, K, n) column-major: p = oh + OH ow, k = kh + KH (kw + KW c)
    return cols.reshape((OH * OW, KH * KW * C, n), order="F"), OH, OW


@pytest.mark.parametrize("geo", [(7, 9, 3, 3, 3, 1, 1, 1, 1), (8, 8, 2, 3, 3, 2, 2, 1, 1),
                                 (11, 10, 2, 5, 4, 2, 3, 2, 1), (6, 7, 4, 1, 1, 1, 1, 0, 0),
                                 (9, 9, 1, 3, 2, 3, 2, 0, 2), (12, 13, 3, 2, 2, 2, 2, 0, 0)])
def test_im2col_and_col2im_are_the_lowering_and_its_adjoint(be, geo):
    from types import SimpleNamespace

    H, W, C, KH, KW, sh, sw, ph, pw = geo
    n = 3
    rng = np.random.default_rng(sum(geo))
    x = rng.standard_normal((H, W, C, n)).astype(np.float32)
    ref, OH, OW = _im2col_ref(x, KH, KW, sh, sw, ph, pw)
    spec = SimpleNamespace(in_shape=(H, W, C), out_shape=(OH, OW, 1), ksize=(KH, KW), group=1, stride=(sh, sw),
                           pad=(ph, pw))
    cols = be.nn._im2col(be.from_numpy(x), spec, 1, 2)  # samples 1 and 2
    np.testing.assert_array_equal(be.to_numpy(cols), ref[:, :, 1:])
    # col2im: <im2col(x), d> = <x, col2im(d)>, and the sums are the columns' own
    d = rng.integers(-8, 8, ref.shape).astype(np.float32)  # small integers: every order sums exactly
    dx = be._new((H, W, C, n), np.float32)
    be.nn._run("col2im", "col2im", [("DX", dx)], [("DCOLS", be.from_numpy(d))], dx.size,
               [H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, 0], libs=())
    expect = np.zeros(x.size, np.float32)
    for i in range(x.size):
        e = np.zeros(x.size, np.float32)
        e[i] = 1
        expect[i] = (_im2col_ref(e.reshape(x.shape, order="F"), KH, KW, sh, sw, ph, pw)[0] * d).sum()
    np.testing.assert_array_equal(be.to_numpy(dx), expect.reshape(x.shape, order="F"))
