"""Tests for sukiyaki.matrix.npyformat against numpy's own .npy/.npz implementation."""

import io
import pathlib
import random
import struct
import zipfile

import numpy as np
import pytest

from sukiyaki.matrix.npyformat import _header_bytes, read_npy, read_npz, write_npy, write_npz

DTYPES = ["bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64"]
SHAPES = [(), (1,), (5,), (0,), (2, 3), (3, 1), (1, 1), (0, 4), (2, 3, 4), (2, 0, 3), (2, 1, 3, 2)]
VERSIONS = [(1, 0), (2, 0), (3, 0)]
SHARED = pathlib.Path(__file__).resolve().parents[2].parent / "shared"


def make(dtype, shape, order="C", seed=0):
    """A deterministic array of small values of the given dtype, shape and memory order."""
    rng = np.random.default_rng(seed)
    vals = rng.integers(0, 100, size=shape) * (0.5 if dtype.startswith("float") else 1)
    a = (vals % 2 == 0) if dtype == "bool" else vals.astype(dtype)
    return np.asfortranarray(a) if order == "F" else np.ascontiguousarray(a)


def np_bytes(a, version=None):
    """What numpy writes for a: np.save, or write_array at an explicit version."""
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def our_bytes(a, **kw):
    buf = io.BytesIO()
    write_npy(buf, a, **kw)
    return buf.getvalue()


def npy(header, data=b"", version=(1, 0)):
    """Hand-made .npy bytes with an arbitrary header text (padding added, no validation)."""
    fmt, enc = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}[version]
    body = header.encode(enc) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(body)) + body + data


def assert_same(ours, ref):
    assert ours.dtype == ref.dtype.newbyteorder("=") and ours.dtype.isnative
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_roundtrip_both_ways_and_bytes_equal_numpy(dtype, shape, order):
    a = make(dtype, shape, order)
    ours = our_bytes(a)
    assert ours == np_bytes(a)
    assert_same(np.load(io.BytesIO(ours)), a)
    back = read_npy(np_bytes(a))
    assert_same(back, a)
    assert back.flags.writeable
    if order == "F" and a.ndim >= 2 and not a.flags.c_contiguous:
        assert back.flags.f_contiguous and not back.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_versions_both_ways(dtype, version, order):
    a = make(dtype, (3, 2, 4), order)
    ref = np_bytes(a, version)
    assert ref[6:8] == bytes(version)
    assert_same(read_npy(ref), a)
    for v in (version, version[0]):
        ours = our_bytes(a, version=v)
        assert ours == ref
        assert_same(np.load(io.BytesIO(ours)), a)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if np.dtype(d).itemsize > 1])
@pytest.mark.parametrize("order", ["C", "F"])
def test_big_endian_both_ways(dtype, order):
    a = make(dtype, (2, 3), order).astype(np.dtype(dtype).newbyteorder(">"))
    ref = np_bytes(a)
    assert b"'>" in ref[:128]
    back = read_npy(ref)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, a)
    assert our_bytes(a) == ref


@pytest.mark.parametrize("prefix", ["<", ">", "=", "|", ""])
def test_byte_order_prefixes_in_descr(prefix):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    data = a.astype({"<": "<i4", ">": ">i4"}.get(prefix, "=i4")).tobytes()
    raw = npy(f"{{'descr': '{prefix}i4', 'fortran_order': False, 'shape': (2, 3), }}", data)
    assert_same(read_npy(raw), a)


def test_old_style_headers_are_accepted():
    data = np.arange(6, dtype="<f8").tobytes()
    for header in ["{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",
                   "{'shape': (2L, 3L), 'fortran_order': False, 'descr': '<f8'}",
                   '{"descr":"<f8","fortran_order":False,"shape":(2,3,),}  \t ']:
        np.testing.assert_array_equal(read_npy(npy(header, data)), np.arange(6.0).reshape(2, 3))


def test_fortran_order_choice_when_writing():
    c = np.arange(6, dtype=np.float32).reshape(2, 3)
    forced = our_bytes(c, fortran_order=True)
    assert b"'fortran_order': True" in forced
    assert_same(np.load(io.BytesIO(forced)), c)
    assert_same(read_npy(forced), c)
    f = np.asfortranarray(c)
    assert b"'fortran_order': False" in our_bytes(f, fortran_order=False)
    assert_same(read_npy(our_bytes(f, fortran_order=False)), c)
    strided = np.arange(40, dtype=np.int16).reshape(5, 8)[::2, 1::3]
    assert our_bytes(strided) == np_bytes(strided)
    assert_same(read_npy(our_bytes(strided)), strided)


def test_sources_and_destinations(tmp_path):
    a = make("float32", (3, 4))
    p = tmp_path / "a.npy"
    write_npy(p, a)
    assert p.read_bytes() == np_bytes(a)
    write_npy(str(tmp_path / "b.npy"), a)
    raw = p.read_bytes()
    for src in (p, str(p), raw, bytearray(raw), memoryview(raw), io.BytesIO(raw)):
        assert_same(read_npy(src), a)
    with open(p, "rb") as fh:
        assert_same(read_npy(fh), a)
    with pytest.raises(TypeError, match="int"):
        read_npy(42)


class Stream:
    """A read-only, non-seekable byte stream (a socket or pipe, as far as the reader knows)."""

    def __init__(self, raw):
        self._buf = io.BytesIO(raw)

    def read(self, n=-1):
        return self._buf.read(min(n, 7) if n >= 0 else n)  # short reads, too


def test_non_seekable_stream_whole_and_truncated():
    raw = np_bytes(make("float32", (3, 5), "F"))
    assert_same(read_npy(Stream(raw)), make("float32", (3, 5)))
    for n in range(len(raw)):
        with pytest.raises(ValueError):
            read_npy(Stream(raw[:n]))
    huge = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,)}", b"\0" * 16)
    with pytest.raises(ValueError, match="expected 8000000000 bytes, got 16"):
        read_npy(Stream(huge))


def test_sequential_arrays_in_one_stream():
    a, b = make("int32", (2, 2)), make("float64", (3,), seed=1)
    buf = io.BytesIO(our_bytes(a) + our_bytes(b))
    assert_same(read_npy(buf), a)
    assert_same(read_npy(buf), b)


def test_version_selection():
    assert our_bytes(np.zeros(3))[6:8] == b"\x01\x00"
    big = _header_bytes("<f8", False, (1,) * 30000, None)
    assert big[6:8] == b"\x02\x00" and len(big) % 64 == 0 and big.endswith(b"\n")
    assert _header_bytes("<\u20ac", False, (1,), None)[6:8] == b"\x03\x00"
    impl = getattr(np.lib, "_format_impl", None)
    if hasattr(impl, "_write_array_header"):  # numpy >= 2: compare with its private writer
        for descr, shape in (("<f8", (1,) * 30000), ("<\u20ac", (1,))):
            buf = io.BytesIO()
            with pytest.warns(UserWarning, match="format"):
                impl._write_array_header(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
            assert buf.getvalue() == _header_bytes(descr, False, shape, None)
    with pytest.raises(ValueError, match="too big"):
        _header_bytes("<f8", False, (1,) * 30000, (1, 0))
    with pytest.raises(ValueError, match="version"):
        write_npy(io.BytesIO(), np.zeros(2), version=(4, 0))


def test_write_rejects_unsupported_dtypes():
    for bad in (np.array([object()], dtype=object), np.zeros(2, dtype=[("a", "<i4")]),
                np.zeros(2, dtype=np.complex64), np.array(["x"])):
        with pytest.raises(ValueError):
            write_npy(io.BytesIO(), bad)


def test_object_and_structured_files_rejected():
    buf = io.BytesIO()
    np.save(buf, np.array([1, "x", None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays.*'\\|O'.*pickle"):
        read_npy(buf.getvalue())
    with pytest.raises(ValueError, match="structured"):
        read_npy(np_bytes(np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])))
    with pytest.raises(ValueError, match="unsupported dtype descr '<c16'"):
        read_npy(np_bytes(np.zeros(2, dtype=np.complex128)))


@pytest.mark.parametrize("raw, pattern", [
    (b"PK\x03\x04junkjunk", r"magic.*got b'PK\\x03\\x04junk'"),
    (b"\x93NUMP", r"magic.*got b'\\x93NUMP'"),
    (b"", r"magic.*got b''"),
    (b"\x93NUMPY\x04\x00\x10\x00", "version 4.0"),
    (b"\x93NUMPY\x01\x00", r"header length: expected 2 bytes, got 0"),
    (b"\x93NUMPY\x01\x00\xff\x00{'descr'", r"header length 255.*expected 255 bytes, got 8"),
    (b"\x93NUMPY\x02\x00\x00\x00\x00\x10{", r"header length 268435456.*got 1"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", b"\0" * 40),
     r"shape \(2, 3\) x 8-byte '<f8' is truncated: expected 48 bytes, got 40"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}"),
     "unexpected key 'extra'"),
    (npy("{'descr': '<f8', 'shape': (2, 3)}"), "missing key.*'fortran_order'"),
    (npy("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': ()}"),
     "duplicate key 'descr'"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3)}"), r"'shape' is \(3\), an int"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': 3}"),
     "unexpected 3 as value of 'shape'"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 2)}"), "unexpected text '-1, 2"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': ((1, 2),)}"), "non-negative ints"),
    (npy("{'descr': '<f8', 'fortran_order': 'no', 'shape': ()}"), "'fortran_order' must be True"),
    (npy("{'descr': True, 'fortran_order': False, 'shape': ()}"), "'descr' must be a string"),
    (npy("{'descr': '<f8', 'fortran_order': None, 'shape': ()}"), "unknown name None"),
    (npy("{'descr': __import__('os').system('x'), 'fortran_order': False, 'shape': ()}"),
     r"unexpected text \".system\('x'\)"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': ()} junk"), "trailing text.*'junk'"),
    (npy("{'descr': '<f8\\n', 'fortran_order': False, 'shape': ()}"), "unexpected text"),
    (npy("['descr', '<f8']"), r"expected '\{', got '\['"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3"), "end of header"),
    (npy("{'descr': 'float32', 'fortran_order': False, 'shape': ()}"), "descr 'float32'"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}"),
     "exceeds numpy's limits"),
    (npy("{'descr': '<f8', 'fortran_order': False, 'shape': ()}", b"", (1, 0))[:10] +
     b"\xff" * 64 + b"\n", "unexpected text"),
    (b"\x93NUMPY\x03\x00\x03\x00\x00\x00{\xff}", "not valid utf8"),
])
def test_error_messages(raw, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_npy(raw)


@pytest.mark.parametrize("maker", [
    lambda: np_bytes(make("int32", (2, 3))),
    lambda: np_bytes(make("float64", (2, 3), "F"), (2, 0)),
    lambda: np_bytes(make("uint16", (3,)).astype(">u2"), (3, 0)),
    lambda: np_bytes(make("bool", (1,))),
])
def test_truncated_at_every_byte_raises_value_error(maker):
    raw = maker()
    for n in range(len(raw)):
        with pytest.raises(ValueError):
            read_npy(raw[:n])
        with pytest.raises(ValueError):
            read_npy(io.BytesIO(raw[:n]))


def test_random_garbage_and_bit_flips_raise_only_value_error():
    rng = random.Random(1234)
    good = np_bytes(make("float32", (4, 5)))
    for _ in range(400):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        for raw in (garbage, good[:8] + garbage, good[:10] + garbage):
            with pytest.raises(ValueError):
                read_npy(raw)
    for _ in range(1000):  # a flipped byte gives a (data) array or a ValueError, nothing else
        raw = bytearray(good)
        raw[rng.randrange(len(raw))] = rng.randrange(256)
        try:
            out = read_npy(bytes(raw))
        except ValueError:
            continue
        assert isinstance(out, np.ndarray) and out.dtype.isnative


def sample_arrays():
    return {"a": make("float32", (2, 3)), "b": make("int32", (4,), "C", 1),
            "f": make("float64", (2, 3, 2), "F", 2), "m": make("bool", (3, 3)),
            "s": np.float64(2.5), "e": make("uint8", (0, 2)),
            "big": make("int16", (3,)).astype(">i2")}


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_both_ways(tmp_path, compressed):
    arrays = sample_arrays()
    p = tmp_path / "ours.npz"
    write_npz(p, arrays, compressed=compressed)
    with zipfile.ZipFile(p) as zf:
        kinds = {i.compress_type for i in zf.infolist()}
        assert kinds == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    with np.load(p) as z:
        assert list(z.files) == list(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype
            np.testing.assert_array_equal(z[k], v)
    ref = tmp_path / "numpy.npz"
    (np.savez_compressed if compressed else np.savez)(ref, *arrays.values(), **arrays)
    got = read_npz(ref)
    with zipfile.ZipFile(ref) as zf:
        assert list(got) == [n[:-4] for n in zf.namelist()]
    assert sorted(got) == sorted([f"arr_{i}" for i in range(len(arrays))] + list(arrays))
    for i, (k, v) in enumerate(arrays.items()):
        assert_same(got[k], v)
        assert_same(got[f"arr_{i}"], v)
    for src in (str(ref), ref.read_bytes(), io.BytesIO(ref.read_bytes())):
        assert list(read_npz(src)) == list(got)
    buf = io.BytesIO()
    write_npz(buf, {"x": arrays["a"]}, compressed=compressed)
    assert_same(read_npz(buf.getvalue())["x"], arrays["a"])


def test_npz_errors(tmp_path):
    with pytest.raises(ValueError, match=r"not an \.npz.*first bytes b'\\x93NUMPY"):
        read_npz(np_bytes(np.zeros(2)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.npy", np_bytes(np.zeros(2)))
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="member 'readme.txt' is not a .npy"):
        read_npz(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bad.npy", np_bytes(np.zeros(6))[:-8])
    with pytest.raises(ValueError, match="member 'bad.npy'.*expected 48 bytes, got 40"):
        read_npz(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, o=np.array([None], dtype=object))
    with pytest.raises(ValueError, match="member 'o.npy'.*object arrays"):
        read_npz(buf.getvalue())
    with pytest.raises(ValueError, match="names"):
        write_npz(io.BytesIO(), {1: np.zeros(2)})


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_truncated_and_corrupted_raise_value_error(compressed):
    buf = io.BytesIO()
    write_npz(buf, {"a": make("int32", (2, 3)), "b": make("float32", (3,))}, compressed=compressed)
    raw = buf.getvalue()
    for n in range(len(raw)):
        with pytest.raises(ValueError):
            read_npz(raw[:n])
    rng = random.Random(7)
    for _ in range(300):
        bad = bytearray(raw)
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        try:
            out = read_npz(bytes(bad))
        except ValueError:
            continue
        assert all(isinstance(v, np.ndarray) for v in out.values())


def corpus_files():
    folder = SHARED / "compat" / "sushi2-npy"
    return sorted(folder.glob("*.npy")) if folder.is_dir() else []


@pytest.mark.skipif(not corpus_files(), reason=f"compat corpus not found under {SHARED}")
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_sushi2_npy_corpus(path):
    parts = path.stem.split("_")
    shape = tuple(int(s) for s in parts[1].split("x"))
    if "1d" in parts:
        shape = (int(np.prod(shape)),)
    got, ref = read_npy(path), np.load(path)
    assert got.dtype == np.dtype(parts[0]) and got.shape == shape
    assert_same(got, ref)
    if "forder" in parts:
        assert got.flags.f_contiguous and not got.flags.c_contiguous
    assert_same(np.load(io.BytesIO(our_bytes(got))), ref)
