"""Tests of sukiyaki.nn.params: safetensors and Sukiyaki2 parameter files, checks, atomic writes."""

import io
import json
import math
import os
import struct

import numpy as np
import pytest

from sukiyaki.nn import params as P

try:
    import safetensors
    import safetensors.numpy as stnp
except ImportError:
    safetensors = stnp = None
needs_st = pytest.mark.skipif(stnp is None, reason="safetensors package not installed")

RNG = np.random.default_rng(0)


def sample_tensors():
    return {
        "conv1/weight": RNG.standard_normal((5, 5, 1, 20)).astype(np.float32),
        "conv1/bias": np.zeros((20, 1), np.float32),
        "fc/weight": RNG.standard_normal((3, 4)),
        "half/w": RNG.standard_normal(7).astype(np.float16),
        "steps/count": np.array(12345678901, np.int64),
        "idx/i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "img/u8": np.arange(250, 256, dtype=np.uint8),
        "img/i8": np.arange(-4, 4, dtype=np.int8),
        "mask/m": np.array([[True, False], [False, True]]),
        "empty/e": np.zeros((0, 3), np.float32),
    }


def assert_same(a, b):
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def header_of(blob):
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]), n


def rebuild(header, data, pad=True):
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


# ---------------------------------------------------------------- safetensors: round trips


@pytest.mark.parametrize("kind", ["bytes", "path", "fileobj"])
def test_safetensors_round_trip(tmp_path, kind):
    t = sample_tensors()
    t["odd/u16"] = np.arange(5, dtype=np.uint16)
    t["odd/i16"] = np.arange(-2, 3, dtype=np.int16)
    t["odd/u32"] = np.arange(5, dtype=np.uint32)
    t["odd/u64"] = np.arange(5, dtype=np.uint64)
    t["scalar/s"] = np.array(2.5, np.float32)
    meta = {"epoch": "3", "net": "lenet"}
    if kind == "bytes":
        src = P.save_safetensors(None, t, meta)
    elif kind == "path":
        src = tmp_path / "x.safetensors"
        assert P.save_safetensors(src, t, meta) is None
    else:
        buf = io.BytesIO()
        P.save_safetensors(buf, t, meta)
        src = io.BytesIO(buf.getvalue())
    got, md = P.load_safetensors(src)
    assert md == meta
    assert_same(t, got)
    assert all(a.flags.writeable for a in got.values())


def test_safetensors_fortran_and_big_endian_arrays():
    f = np.asfortranarray(RNG.standard_normal((3, 4, 2)).astype(np.float32))
    be = np.arange(6, dtype=">i4").reshape(2, 3)
    got, _ = P.load_safetensors(P.save_safetensors(None, {"a/f": f, "a/be": be}))
    np.testing.assert_array_equal(got["a/f"], f)
    np.testing.assert_array_equal(got["a/be"], be)
    assert got["a/be"].dtype == np.int32


def test_safetensors_layout_padding_and_order():
    t = {"b/x": np.zeros(3, np.uint8), "a/x": np.ones(2, np.float32), "c/x": np.ones(1, np.int64)}
    blob = P.save_safetensors(None, t, {"k": "v"})
    header, n = header_of(blob)
    assert n % 8 == 0 and blob[8 + n - 1:8 + n] in (b" ", b"}")
    assert list(header) == ["__metadata__", "c/x", "a/x", "b/x"]
    assert header["a/x"] == {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}
    assert len(blob) == 8 + n + 8 + 8 + 3
    got, _ = P.load_safetensors(blob)
    assert list(got) == ["c/x", "a/x", "b/x"]


def test_bf16_conversion_is_round_to_nearest_even():
    one = 0x3F800000
    cases = {one: 0x3F80, one + 0x8000: 0x3F80, one + 0x18000: 0x3F82, one + 0x8001: 0x3F81,
             one + 0x7FFF: 0x3F80, 0x7F7FFFFF: 0x7F80, 0xFF800000: 0xFF80, 0x00000001: 0x0000}
    bits = np.array(list(cases), np.uint32)
    np.testing.assert_array_equal(P.float32_to_bf16(bits.view(np.float32)), list(cases.values()))
    nans = np.array([0x7F800001, 0xFFC00000, 0x7FFFFFFF], np.uint32).view(np.float32)
    assert np.isnan(P.bf16_to_float32(P.float32_to_bf16(nans))).all()
    x = (RNG.standard_normal(20000) * 10.0 ** RNG.integers(-30, 30, 20000)).astype(np.float32)
    y = P.bf16_to_float32(P.float32_to_bf16(x)).astype(np.float64)
    lo = (x.view(np.uint32) & 0xFFFF0000).view(np.float32).astype(np.float64)
    hi = ((x.view(np.uint32) & 0xFFFF0000) + 0x10000).view(np.float32).astype(np.float64)
    err = np.abs(y - x)
    assert (err <= np.minimum(np.abs(x - lo), np.abs(hi - x))).all()


@pytest.mark.parametrize("cast", ["BF16", "F16", {"w/a": "BF16"}])
def test_safetensors_cast(cast):
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    blob = P.save_safetensors(None, {"w/a": x, "w/n": np.arange(3)}, cast=cast)
    header, _ = header_of(blob)
    code = cast if isinstance(cast, str) else cast["w/a"]
    assert header["w/a"]["dtype"] == code and header["w/n"]["dtype"] == "I64"
    got, _ = P.load_safetensors(blob)
    want = P.bf16_to_float32(P.float32_to_bf16(x)) if code == "BF16" else x.astype(np.float16)
    np.testing.assert_array_equal(got["w/a"], want)
    assert got["w/a"].dtype == (np.float32 if code == "BF16" else np.float16)


# ---------------------------------------------------------------- safetensors: the reference


@needs_st
def test_reference_reads_ours(tmp_path):
    t = sample_tensors()
    meta = {"epoch": "7", "note": "ünïcode ✓"}
    path = tmp_path / "ours.safetensors"
    P.save_safetensors(path, t, meta)
    assert_same(t, stnp.load_file(str(path)))
    assert_same(t, stnp.load(P.save_safetensors(None, t)))
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata() == meta


@needs_st
def test_ours_reads_reference(tmp_path):
    t = sample_tensors()
    meta = {"a": "1", "b": "two", "c": ""}
    path = tmp_path / "ref.safetensors"
    stnp.save_file(t, str(path), metadata=meta)
    got, md = P.load_safetensors(path)
    assert md == meta
    assert_same(t, got)
    got, md = P.load_safetensors(stnp.save(t))
    assert md == {}
    assert_same(t, got)


@needs_st
@pytest.mark.parametrize("meta", [None, {}, {"format": "np"}])
@pytest.mark.parametrize("which", ["sample", "same_dtype", "unicode", "empty", "scalar"])
def test_bytes_equal_reference(which, meta):
    t = {"sample": sample_tensors(),
         "same_dtype": {n: np.full(i + 1, i, np.float32) for i, n in enumerate("zyxabc")},
         "unicode": {"é/w": np.ones(2, np.float32), "e/w": np.ones(2, np.float32),
                     "z\"q\\/w\n": np.ones(1, np.int8)},
         "empty": {},
         "scalar": {"s/x": np.array(1.5, np.float64), "s/y": np.zeros((2, 0), np.int32)}}[which]
    ours = P.save_safetensors(None, t, meta)
    if not t and meta == {}:  # safetensors 0.8 writes the invalid '{},"__metadata__":{}}' here
        assert stnp.load(ours) == {} and P.load_safetensors(ours) == ({}, {})
        return
    assert ours == stnp.save(t, metadata=meta)


def _reference_serialize(raw):
    """Serialize raw (dtype, shape, bytes) entries with the reference, whatever its version."""
    keep = {n: np.frombuffer(d, np.uint8).copy() for n, (_, _, d) in raw.items()}
    if hasattr(safetensors, "TensorSpec"):
        spec = {n: safetensors.TensorSpec(dtype=dt, shape=sh, data_ptr=keep[n].ctypes.data,
                                          data_len=keep[n].nbytes)
                for n, (dt, sh, _) in raw.items()}
    else:
        spec = {n: {"dtype": dt, "shape": sh, "data": d} for n, (dt, sh, d) in raw.items()}
    return safetensors.serialize(spec)


@needs_st
def test_bf16_cross_check_with_reference():
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    bits = P.float32_to_bf16(x)
    theirs = _reference_serialize({"w/b": ("bfloat16", [3, 5], bits.tobytes()),
                                   "w/f": ("float32", [2], np.ones(2, "<f4").tobytes())})
    got, _ = P.load_safetensors(theirs)
    np.testing.assert_array_equal(got["w/b"], P.bf16_to_float32(bits))
    ours = P.save_safetensors(None, {"w/b": x, "w/f": np.ones(2, np.float32)}, cast={"w/b": "BF16"})
    assert ours == theirs
    entries = dict(safetensors.deserialize(ours))
    assert entries["w/b"]["dtype"].upper() in ("BF16", "BFLOAT16")
    assert bytes(entries["w/b"]["data"]) == bits.tobytes()


# ---------------------------------------------------------------- safetensors: errors


def small_file():
    return P.save_safetensors(None, {"a/w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                     "b/w": np.arange(3, dtype=np.uint8)}, {"k": "v"})


def test_truncated_at_every_offset():
    blob = small_file()
    for cut in range(len(blob)):
        with pytest.raises(ValueError, match=r"expected .*\d+ bytes, got %d" % cut):
            P.load_safetensors(blob[:cut])
    P.load_safetensors(blob)
    with pytest.raises(ValueError, match=r"tensor 'a/w' needs data bytes 0..24: expected"):
        P.load_safetensors(blob[:-10])


def test_trailing_bytes():
    with pytest.raises(ValueError, match="3 bytes after the last tensor"):
        P.load_safetensors(small_file() + b"xyz")


def test_header_errors():
    blob = small_file()
    header, n = header_of(blob)
    huge = (10 ** 12).to_bytes(8, "little") + blob[8:]
    with pytest.raises(ValueError, match="exceeds"):
        P.load_safetensors(huge)
    with pytest.raises(ValueError, match="larger than the file"):
        P.load_safetensors((10 ** 6).to_bytes(8, "little") + blob[8:])
    bad = blob[:8] + b"{" + b"x" + blob[10:]
    with pytest.raises(ValueError, match="not valid JSON"):
        P.load_safetensors(bad)
    with pytest.raises(ValueError, match="must be a JSON object"):
        P.load_safetensors(rebuild([1, 2], b""))
    with pytest.raises(ValueError, match="not UTF-8"):
        P.load_safetensors((2).to_bytes(8, "little") + b"\xff\xfe")
    with pytest.raises(ValueError, match="appears twice"):
        P.load_safetensors(b"\x10" + bytes(7) + b'{"a":1, "a":2}  ')
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        P.load_safetensors(b"\x10" + bytes(7) + b'{"a":NaN}       ')


@pytest.mark.parametrize("change, pattern", [
    (lambda h: h["a/w"].update(dtype="F8_E4M3"), "'a/w': unknown or unsupported dtype 'F8_E4M3'"),
    (lambda h: h["a/w"].update(dtype="X"), "'a/w': unknown"),
    (lambda h: h["a/w"].update(shape=[2, 2]), r"'a/w': data_offsets \[0, 24\] span 24 bytes but "
                                              r"shape \[2, 2\] of F32 needs 16"),
    (lambda h: h["a/w"].update(shape=[2, -3]), "'a/w': shape must be"),
    (lambda h: h["a/w"].update(shape="23"), "'a/w': shape must be"),
    (lambda h: h["a/w"].update(data_offsets=[0]), "'a/w': data_offsets must be"),
    (lambda h: h["a/w"].update(data_offsets=[24, 0]), "'a/w': data_offsets must be"),
    (lambda h: h["a/w"].update(data_offsets=[0, 24.0]), "'a/w': data_offsets must be"),
    (lambda h: h["a/w"].pop("dtype"), "'a/w': entry must have"),
    (lambda h: h.update({"c/w": 5}), "'c/w': entry must have"),
    (lambda h: h["b/w"].update(data_offsets=[20, 23]), "'b/w'.*overlapping tensor 'a/w'"),
    (lambda h: h["a/w"].update(data_offsets=[3, 27]), "'a/w': hole of 3 bytes at the start"),
    (lambda h: h["b/w"].update(data_offsets=[25, 28]), "'b/w': hole of 1 bytes after tensor 'a/w'"),
    (lambda h: h["__metadata__"].update(k=3), "__metadata__ value of 'k' must be a string"),
    (lambda h: h.update(__metadata__=["k"]), "__metadata__ must be an object"),
])
def test_bad_entries(change, pattern):
    blob = small_file()
    header, n = header_of(blob)
    change(header)
    with pytest.raises(ValueError, match=pattern):
        P.load_safetensors(rebuild(header, blob[8 + n:]))


def test_unpadded_header_and_null_metadata_accepted():
    header, n = header_of(small_file())
    header["__metadata__"] = None
    got, md = P.load_safetensors(rebuild(header, small_file()[8 + n:], pad=False))
    assert md == {} and list(got) == ["a/w", "b/w"]


def test_save_errors():
    with pytest.raises(ValueError, match="invalid tensor name '__metadata__'"):
        P.save_safetensors(None, {"__metadata__": np.zeros(1)})
    with pytest.raises(ValueError, match="'c/z': dtype complex64 has no safetensors"):
        P.save_safetensors(None, {"c/z": np.zeros(2, np.complex64)})
    with pytest.raises(ValueError, match="metadata must be a dict of str to str"):
        P.save_safetensors(None, {}, {"a": 1})
    with pytest.raises(ValueError, match="'i/x': cannot cast I32 to 'BF16'"):
        P.save_safetensors(None, {"i/x": np.zeros(2, np.int32)}, cast={"i/x": "BF16"})


# ---------------------------------------------------------------- Sukiyaki2 format


def hand_built():
    """A file written by hand from the layout in the module docstring."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3)  # MATLAB [0 1 2; 3 4 5]
    b = np.array([[7], [8]], np.float32)
    head = b'{"fc/weight":{"offset":1024,"size":24},"fc/bias":{"offset":1048,"size":8}}'
    data = struct.pack("<6f", 0, 3, 1, 4, 2, 5) + struct.pack("<2f", 7, 8)
    return {"fc/weight": w, "fc/bias": b}, head + bytes(1024 - len(head)) + data


def test_sukiyaki2_matches_hand_built_layout():
    tensors, blob = hand_built()
    assert P.save_sukiyaki2(None, tensors) == blob
    flat = P.load_sukiyaki2(blob)
    np.testing.assert_array_equal(flat["fc/weight"], [0, 3, 1, 4, 2, 5])
    shaped = P.load_sukiyaki2(io.BytesIO(blob), {"fc/weight": (2, 3), "fc/bias": (2, 1)})
    assert list(shaped) == ["fc/weight", "fc/bias"]
    assert_same(tensors, shaped)


def test_sukiyaki2_round_trip(tmp_path):
    t = {k: v for k, v in sample_tensors().items() if v.dtype.kind == "f"}
    path = tmp_path / "w.bin"
    P.save_sukiyaki2(path, t)
    got = P.load_sukiyaki2(path, {k: v.shape for k, v in t.items()})
    assert list(got) == list(t)
    for k in t:
        assert got[k].dtype == np.float32 and got[k].shape == t[k].shape
        np.testing.assert_array_equal(got[k], t[k].astype(np.float32))


@pytest.mark.parametrize("count", [1, 20, 30, 40, 200, 2000])
def test_sukiyaki2_header_growth(count):
    t = {f"layer{i:04d}/weight": np.full(2, i, np.float32) for i in range(count)}
    blob = P.save_sukiyaki2(None, t)
    nul = blob.index(b"\0")
    header = json.loads(blob[:nul])
    first = header["layer0000/weight"]["offset"]
    assert first % 1024 == 0 and nul < first and not any(blob[nul:first])
    at_1024 = json.dumps({k: {"offset": 1024 + 8 * i, "size": 8} for i, k in enumerate(t)},
                         separators=(",", ":"))
    if len(at_1024) < 1024:
        assert first == 1024
    else:
        assert first >= math.ceil(len(at_1024) / 1024) * 1024 + 1024
    assert len(blob) == first + 8 * count
    assert list(P.load_sukiyaki2(blob)) == list(t)


def test_sukiyaki2_old_32768_header_loads():
    head = b'{"c/w":{"offset":32768,"size":8}}'
    blob = head + bytes(32768 - len(head)) + struct.pack("<2f", 1.5, -2)
    np.testing.assert_array_equal(P.load_sukiyaki2(blob)["c/w"], [1.5, -2])


def test_sukiyaki2_truncated_at_every_offset():
    _, blob = hand_built()
    for cut in list(range(0, 80)) + list(range(1020, len(blob))):
        with pytest.raises(ValueError) as e:
            P.load_sukiyaki2(blob[:cut])
        if cut > 1024:
            assert f"expected {len(blob)} bytes, got {cut}" in str(e.value)
    assert "fc/bias" in str(pytest.raises(ValueError, P.load_sukiyaki2, blob[:-1]).value)


def sk2(entries, total):
    head = json.dumps(entries).encode()
    return head + bytes(1024 - len(head)) + bytes(total - 1024)


@pytest.mark.parametrize("blob, pattern", [
    (b"{oops" + bytes(1019), "Sukiyaki2 header is not valid JSON"),
    (b"[1]" + bytes(1021), "must be a JSON object"),
    (b"{}" * 10, "no NUL byte"),
    (sk2({"a/w": {"offset": 1024}}, 1032), "'a/w': entry must be"),
    (sk2({"a/w": {"offset": 1024, "size": -4}}, 1032), "'a/w': entry must be"),
    (sk2({"a/w": {"offset": 1024, "size": 6}}, 1032), "'a/w': offset 1024 and size 6 must be"),
    (sk2({"a/w": {"offset": 8, "size": 8}}, 1032), "'a/w': offset 8 lies inside the header"),
    (sk2({"a/w": {"offset": 2048, "size": 8}}, 2056), None),
    (sk2({"a/w": {"offset": 1028, "size": 8}}, 1036), "'a/w': data starts at 1028"),
    (sk2({"a/w": {"offset": 1024, "size": 8}, "b/w": {"offset": 1028, "size": 8}}, 1036),
     "'b/w' at offset 1028 overlaps parameter 'a/w'"),
    (sk2({"a/w": {"offset": 1024, "size": 8}, "b/w": {"offset": 1036, "size": 8}}, 1044),
     "'b/w' at offset 1036 leaves 4 bytes unused after parameter 'a/w'"),
    (sk2({"a/w": {"offset": 1024, "size": 8}}, 1040), "8 bytes after the last parameter 'a/w': "
                                                      "expected 1032 bytes, got 1040"),
    (sk2({"a/w": {"offset": 1024, "size": 80}}, 1040), "truncated: parameter 'a/w' needs bytes "
                                                       "1024..1104: expected 1104 bytes, got 1040"),
])
def test_sukiyaki2_load_errors(blob, pattern):
    if pattern is None:  # a header region of 2048 bytes is fine (the original grows it so)
        assert P.load_sukiyaki2(blob)["a/w"].shape == (2,)
        return
    with pytest.raises(ValueError, match=pattern):
        P.load_sukiyaki2(blob)


def test_sukiyaki2_shape_and_save_errors():
    _, blob = hand_built()
    with pytest.raises(ValueError, match=r"'fc/weight': file holds 6 floats, shape \(4, 2\)"):
        P.load_sukiyaki2(blob, {"fc/weight": (4, 2)})
    with pytest.raises(ValueError, match="'a/i': the Sukiyaki2 format stores float32 only"):
        P.save_sukiyaki2(None, {"a/i": np.zeros(2, np.int32)})
    for name in ["noslash", "a/b/c", "/w", "a/", "é/w"]:
        with pytest.raises(ValueError, match="exactly one slash"):
            P.save_sukiyaki2(None, {name: np.zeros(2, np.float32)})


# ---------------------------------------------------------------- naming, checks, atomic writes


def test_split_name():
    assert P.split_name("conv1/weight") == ("conv1", "weight")
    assert P.split_name("block1/conv1/bias") == ("block1/conv1", "bias")
    with pytest.raises(ValueError, match="not of the form"):
        P.split_name("weight")


def test_check_against():
    t = {"conv1/weight": np.zeros((5, 5, 1, 20), np.float32), "conv1/bias": np.zeros((20, 1))}
    ok = {"conv1/weight": ((5, 5, 1, 20), np.float32), "conv1/bias": ((20, 1), np.float32)}
    P.check_against(t, ok, "x.safetensors")
    wrong = dict(ok, **{"conv1/weight": ((5, 5, 1, 32), np.float32)})
    with pytest.raises(ValueError) as e:
        P.check_against(t, wrong, "x.safetensors")
    assert str(e.value) == ("file 'x.safetensors': parameter 'conv1/weight' has shape "
                            "(5, 5, 1, 20), the network expects (5, 5, 1, 32)")
    with pytest.raises(ValueError, match=r"'x.bin': parameter 'fc/w' is missing \(the network "
                                         r"expects shape \(3,\)\)"):
        P.check_against(t, dict(ok, **{"fc/w": ((3,), None)}), "x.bin")
    with pytest.raises(ValueError, match="unexpected parameter 'conv1/bias'"):
        P.check_against(t, {"conv1/weight": ok["conv1/weight"]}, "x.bin")
    with pytest.raises(ValueError, match="'conv1/bias' has dtype float64, the network expects int32"):
        P.check_against(t, dict(ok, **{"conv1/bias": ((20, 1), np.int32)}), "x.bin")


def test_atomic_write_success_and_failure(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    P.atomic_write(path, lambda f: f.write(b"good"))
    assert path.read_bytes() == b"good"

    def failing(f):
        f.write(b"partial garbage")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        P.atomic_write(path, failing)
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    with pytest.raises(ValueError):
        P.save_safetensors(path, {"x/y": np.zeros(1, np.complex128)})
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_atomic_write_new_file_mode(tmp_path):
    P.atomic_write(tmp_path / "a", lambda f: f.write(b"x"))
    (tmp_path / "b").write_bytes(b"x")
    assert os.stat(tmp_path / "a").st_mode == os.stat(tmp_path / "b").st_mode


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_])
def test_integer_or_bool_tensors_are_not_float_parameters(dtype):
    tensors = {"fc/weight": np.ones((2, 3), dtype)}
    with pytest.raises(ValueError, match=r"parameter 'fc/weight' has dtype .* expects float32"):
        P.check_against(tensors, {"fc/weight": ((2, 3), np.float32)}, "w.safetensors")


# ---------------------------------------------------------------- deep nesting


def test_deeply_nested_headers_are_value_errors():
    text = b'{"a/b":' + b"[" * 100_000
    text += b" " * (-len(text) % 8)
    with pytest.raises(ValueError, match=r"^safetensors header: the JSON nests too deeply"):
        P.load_safetensors(len(text).to_bytes(8, "little") + text)
    with pytest.raises(ValueError, match=r"^Sukiyaki2 header: the JSON nests too deeply"):
        P.load_sukiyaki2(b"[" * 100_000 + b"\0")


# ---------------------------------------------------------------- temporaries, writability


def test_atomic_write_temporary_is_fixed_per_destination(tmp_path):
    path = tmp_path / "ck.safetensors"
    tmp = P.temp_path(path)
    assert tmp == str(tmp_path / ".ck.safetensors.sukiyaki-tmp")
    assert P.temp_path(str(path)) == tmp
    seen = []
    P.atomic_write(path, lambda f: seen.append(os.listdir(tmp_path)) or f.write(b"x"))
    assert seen == [[".ck.safetensors.sukiyaki-tmp"]]
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_write_after_a_killed_write_replaces_its_temporary(tmp_path):
    path = tmp_path / "ck.safetensors"
    P.atomic_write(path, lambda f: f.write(b"old"))
    with open(P.temp_path(path), "wb") as f:  # a writer killed mid-write leaves this
        f.write(b"\xff" * 100_000)
    assert sorted(os.listdir(tmp_path)) == [".ck.safetensors.sukiyaki-tmp", "ck.safetensors"]
    assert path.read_bytes() == b"old"
    P.atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_remove_stale_temp(tmp_path):
    path = tmp_path / "ck.safetensors"
    assert P.remove_stale_temp(path) is False
    P.atomic_write(path, lambda f: f.write(b"good"))
    with open(P.temp_path(path), "wb") as f:
        f.write(b"partial")
    assert P.remove_stale_temp(str(path)) is True
    assert os.listdir(tmp_path) == ["ck.safetensors"] and path.read_bytes() == b"good"
    assert P.remove_stale_temp(path) is False


def test_check_writable_leaves_nothing_behind(tmp_path):
    P.check_writable(tmp_path / "ck.safetensors", "--checkpoint")
    assert os.listdir(tmp_path) == []
    P.check_writable(tmp_path / "runs" / "a" / "ck.safetensors", "--checkpoint")  # folders a write would create
    assert os.listdir(tmp_path) == []
    (tmp_path / "ck.safetensors").write_bytes(b"keep")
    with open(P.temp_path(tmp_path / "ck.safetensors"), "wb") as f:  # stale
        f.write(b"stale")
    P.check_writable(tmp_path / "ck.safetensors", "--checkpoint")
    assert os.listdir(tmp_path) == ["ck.safetensors"] and (tmp_path / "ck.safetensors").read_bytes() == b"keep"


def test_check_writable_errors_name_the_option_and_path(tmp_path, monkeypatch):
    (tmp_path / "file").write_bytes(b"")
    for target in (tmp_path / "file" / "ck.safetensors", tmp_path / "file" / "sub" / "ck.safetensors"):
        with pytest.raises(ValueError, match=rf"^--checkpoint '{target}': '{tmp_path / 'file'}' is not a folder$"):
            P.check_writable(target, "--checkpoint")
    with pytest.raises(ValueError, match=rf"^--save-template '{tmp_path}': is a folder, not a file$"):
        P.check_writable(tmp_path, "--save-template")
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path, *args, **kw):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ValueError, match=rf"^--checkpoint '{tmp_path / 'ro' / 'ck'}': cannot write in folder "
                                         rf"'{tmp_path / 'ro'}' \(Permission denied\)$"):
        P.check_writable(tmp_path / "ro" / "ck", "--checkpoint")
    monkeypatch.setattr(os, "open", real_open)

    def no_mkdir(path, *args, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", no_mkdir)
    with pytest.raises(ValueError, match=rf"^--checkpoint '{tmp_path / 'new' / 'ck'}': cannot create its folder "
                                         rf"'{tmp_path / 'new'}' \(Permission denied\)$"):
        P.check_writable(tmp_path / "new" / "ck", "--checkpoint")
    monkeypatch.setattr(os, "mkdir", real_mkdir)
    assert sorted(os.listdir(tmp_path)) == ["file", "ro"] and os.listdir(tmp_path / "ro") == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_check_writable_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match=r"--checkpoint '.*ck': cannot write in folder .*Permission denied"):
            P.check_writable(ro / "ck", "--checkpoint")
        with pytest.raises(ValueError, match=r"cannot create its folder .*Permission denied"):
            P.check_writable(ro / "sub" / "ck", "--checkpoint")
    finally:
        ro.chmod(0o755)
