"""The wire format alone: every kind round-trips, every limit of decode_frame refuses with its
message, check_handlers catches a missing handler, and no input makes decode_frame raise
anything but ProtocolError."""

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import protocol as P

V = b'{"v":%d,' % P.VERSION  # the start of a header of this version, as bytes
SAMPLE = {str: "text é", int: 7, float: 1.25, list: [{"name": "a", "type": "b"}, "raw"], dict: {"k": [1, 2.5, None]}}


def sample_fields(kind):
    return {k: SAMPLE[t] for k, t in P.FIELDS[kind].items()}


def frame_bytes(header, tail=b""):
    """A frame of a header given as a dict (JSON-encoded) or as raw bytes."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<I", len(text)) + text + tail


def pong(**over):
    h = {"v": P.VERSION, "kind": "pong", "seq": 0, "t": 1.0, "tensors": []}
    h.update(over)
    return h


def with_tensor(entry, tail):
    """A PONG frame carrying one tensor entry (defaults filled) and the given payload."""
    e = {"name": "x", "shape": [2], "dtype": "float32", "codec": "raw", "nbytes": 8}
    e.update(entry)
    return frame_bytes(pong(tensors=[e]), tail)


def test_every_kind_has_fields_and_a_direction():
    assert set(P.FIELDS) == set(P.KINDS) == set(P.TO_COORDINATOR) | set(P.TO_WORKER)
    assert len(P.KINDS) == len(set(P.KINDS)) == 11


@pytest.mark.parametrize("kind", P.KINDS)
def test_every_kind_round_trips(kind):
    fields = sample_fields(kind)
    data = P.encode_frame(kind, fields, seq=41)
    f = P.decode_frame(data)
    assert (f.kind, f.fields, f.seq, f.tensors, f.nbytes) == (kind, fields, 41, {}, len(data))


@pytest.mark.parametrize("codec", C.CODECS)
def test_tensors_round_trip_in_every_codec(codec):
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, 5, 2)).astype(np.float32)
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    empty = np.zeros((0, 4), np.float32)
    enc = P.Encoded(C.encode(g * 2, codec), g.shape)
    data = P.encode_frame(P.RESULT, sample_fields(P.RESULT),
                          [("g", g, codec), ("ids", ids, codec), ("e", empty, codec), ("pre", enc, codec)], seq=3)
    f = P.decode_frame(data)
    assert list(f.tensors) == ["g", "ids", "e", "pre"]
    assert f.tensors["ids"].dtype == np.int32 and np.array_equal(f.tensors["ids"], ids)  # ints go raw, exact
    assert f.tensors["g"].dtype == np.float32 and f.tensors["g"].shape == g.shape
    expected = C.decode(C.encode(g, codec), codec, g.shape)
    assert f.tensors["g"].tobytes() == expected.tobytes()
    assert f.tensors["pre"].tobytes() == C.decode(enc.data, codec, g.shape).tobytes()
    assert f.tensors["e"].shape == (0, 4)
    if codec == "raw":
        assert f.tensors["g"].tobytes() == g.tobytes()
    header = json.loads(data[4:4 + struct.unpack_from("<I", data)[0]])
    assert [t["codec"] for t in header["tensors"]] == [codec, "raw", codec, codec]
    assert [t["nbytes"] for t in header["tensors"]] == [C.encoded_size(30, codec), 48, C.encoded_size(0, codec),
                                                        len(enc.data)]


def test_encode_refuses_an_unknown_kind_and_nan_fields():
    with pytest.raises(P.ProtocolError, match="unknown message kind 'nope'"):
        P.encode_frame("nope", {})
    with pytest.raises(ValueError):
        P.encode_frame(P.PONG, {"t": float("nan")})


# (frame bytes, max_bytes, message pattern) for each limit decode_frame enforces
LIMITS = {
    "text": ("a text frame", None, r"a frame must be binary, got str"),
    "over_max_bytes": (frame_bytes(pong()) + b"", 20, r"frame of \d+ bytes is over the limit of 20"),
    "too_short": (b"\x01\x00", None, r"frame of 2 bytes is too short for its header length"),
    "header_length_lies": (struct.pack("<I", 500) + b"{}", None,
                           r"header length 500 does not fit the frame \(6 bytes\)"),
    "header_over_limit": (struct.pack("<I", P.MAX_HEADER_BYTES + 1) + b" " * (P.MAX_HEADER_BYTES + 1), None,
                          r"header length 1048577 does not fit"),
    "not_utf8": (frame_bytes(b"\xff\xfe{}"), None, r"the header is not JSON"),
    "not_json": (frame_bytes(b"{'v': 1}"), None, r"the header is not JSON"),
    "truncated_json": (frame_bytes(json.dumps(pong()).encode()[:-3]), None, r"the header is not JSON"),
    "nan": (frame_bytes(V + b'"kind":"pong","t":NaN}'), None, r"the header holds NaN, which JSON does not allow"),
    "infinity": (frame_bytes(V + b'"kind":"pong","t":-Infinity}'), None, r"holds -Infinity"),
    "overflow_float": (frame_bytes(V + b'"kind":"pong","t":1e999}'), None,
                       r"pong: field 't' must be finite, got inf"),
    "huge_int": (frame_bytes(V + b'"kind":"pong","t":1.0,"x":' + b"9" * 5000 + b"}"), None,
                 r"the header is not JSON \(Exceeds the limit"),
    "deep_nesting": (frame_bytes(pong(x=json.loads("[" * 40 + "]" * 40))), None, r"nests deeper than 32 levels"),
    "very_deep_nesting": (frame_bytes(b'{"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"), None, r"nests too deeply"),
    "not_an_object": (frame_bytes([1, 2]), None, r"the header must be a JSON object, got list"),
    "wrong_version": (frame_bytes(pong(v=1)), None, r"protocol version 1 is not supported \(this side speaks 2\)"),
    "no_version": (frame_bytes({"kind": "pong", "t": 1.0}), None, r"protocol version None is not supported"),
    "version_true": (frame_bytes(pong(v=True)), None, r"protocol version True is not supported"),
    "version_float": (frame_bytes(pong(v=2.0)), None, r"protocol version 2.0 is not supported"),
    "unknown_kind": (frame_bytes(pong(kind="gimme")), None, r"unknown message kind 'gimme'"),
    "kind_not_a_string": (frame_bytes(pong(kind=["pong"])), None, r"unknown message kind \['pong'\]"),
    "negative_seq": (frame_bytes(pong(seq=-1)), None, r"pong: seq must be a non-negative integer, got -1"),
    "bool_seq": (frame_bytes(pong(seq=True)), None, r"seq must be a non-negative integer, got True"),
    "missing_field": (frame_bytes({"v": P.VERSION, "kind": "result", "iteration": 1}), None,
                      r"result: missing field 'task'"),
    "wrong_type": (frame_bytes(pong(t="soon")), None, r"pong: field 't' must be float, got str"),
    "bool_for_int": (frame_bytes({"v": P.VERSION, "kind": "hello", "token": "t", "version": True, "name": "n",
                                  "backend": "b", "device": "d", "codecs": [], "max_batch": 1}), None,
                     r"hello: field 'version' must be int, got bool"),
    "bool_for_float": (frame_bytes(pong(t=False)), None, r"field 't' must be float, got bool"),
    "int_for_str": (frame_bytes({"v": P.VERSION, "kind": "bye", "reason": 3}), None,
                    r"bye: field 'reason' must be str, got int"),
    "tensors_not_list": (frame_bytes(pong(tensors={"x": 1})), None, r"'tensors' must be a list of at most 4096"),
    "too_many_tensors": (frame_bytes(pong(tensors=[{}] * (P.MAX_TENSORS + 1))), None, r"at most 4096 entries"),
    "entry_not_object": (frame_bytes(pong(tensors=["x"])), None, r"pong: tensor #1 must be an object"),
    "empty_name": (with_tensor({"name": ""}, b"\0" * 8), None,
                   r"tensor #1: name must be a new non-empty string, got ''"),
    "duplicate_name": (frame_bytes(pong(tensors=[{"name": "x", "shape": [], "dtype": "float32", "codec": "raw",
                                                  "nbytes": 4}] * 2), b"\0" * 8), None,
                       r"tensor #2: name must be a new non-empty string, got 'x'"),
    "negative_dim": (with_tensor({"shape": [2, -1]}, b""), None,
                     r"tensor 'x': shape must be a list of at most 8 non-negative integers, got \[2, -1\]"),
    "float_dim": (with_tensor({"shape": [2.0]}, b""), None, r"shape must be a list of at most 8 non-negative"),
    "nine_dims": (with_tensor({"shape": [1] * 9}, b""), None, r"at most 8 non-negative integers"),
    "huge_dims": (with_tensor({"shape": [1 << 40, 1 << 40]}, b""), None,
                  r"tensor 'x': 1208925819614629174706176 elements is over the limit of 268435456"),
    "over_max_elements": (with_tensor({"shape": [2]}, b"\0" * 8), None, r"over the limit"),  # max_elements=1 below
    "unknown_dtype": (with_tensor({"dtype": "float64"}, b"\0" * 8), None,
                      r"dtype must be one of float32, int32, got 'float64'"),
    "unknown_codec": (with_tensor({"codec": "zip"}, b"\0" * 8), None, r"codec 'zip' is not one of raw, fp16"),
    "int_in_lossy_codec": (with_tensor({"dtype": "int32", "codec": "fp16", "nbytes": 4}, b"\0" * 4), None,
                           r"codec 'fp16' is not one of .* for int32"),
    "nbytes_lie_low": (with_tensor({"nbytes": 4}, b"\0" * 4), None, r"4 bytes announced, 8 expected for \[2\] in raw"),
    "nbytes_lie_high": (with_tensor({"nbytes": 800}, b"\0" * 800), None, r"800 bytes announced, 8 expected"),
    "nbytes_missing": (with_tensor({"nbytes": None}, b"\0" * 8), None, r"None bytes announced"),
    "truncated_payload": (with_tensor({}, b"\0" * 7), None, r"the frame ends before its bytes \(\d+ < \d+\)"),
    "trailing_bytes": (with_tensor({}, b"\0" * 9), None, r"pong: 1 bytes after the last tensor"),
    "bad_8bit_scale": (with_tensor({"codec": "dettmers8", "nbytes": 6}, b"\0\0" + struct.pack("<f", float("nan"))),
                       None, r"tensor 'x': .*scale"),
}


@pytest.mark.parametrize("case", sorted(LIMITS))
def test_decode_refuses_with_a_message(case):
    data, max_bytes, pattern = LIMITS[case]
    kw = {"max_bytes": max_bytes} if max_bytes else {}
    if case == "over_max_elements":
        kw["max_elements"] = 1
    with pytest.raises(P.ProtocolError, match=pattern):
        P.decode_frame(data, **kw)


def test_limits_are_inclusive_at_the_boundary():
    data = P.encode_frame(P.PONG, {"t": 1.0}, [("x", np.zeros(4, np.float32), "raw")])
    assert P.decode_frame(data, max_bytes=len(data), max_elements=4).tensors["x"].shape == (4,)
    with pytest.raises(P.ProtocolError, match="over the limit"):
        P.decode_frame(data, max_bytes=len(data) - 1)
    with pytest.raises(P.ProtocolError, match="4 elements is over the limit of 3"):
        P.decode_frame(data, max_elements=3)
    nested = pong(x=json.loads("[" * 31 + "]" * 31))  # the header object itself is level 1: 32 in all
    assert P.decode_frame(frame_bytes(nested)).fields["x"] == json.loads("[" * 31 + "]" * 31)


def test_check_handlers_catches_a_missing_an_extra_and_an_uncallable_handler():
    full = {k: (lambda *a: None) for k in P.TO_WORKER}
    P.check_handlers(full, P.TO_WORKER, "w")
    with pytest.raises(TypeError, match=r"worker: handlers missing for \['ping'\], unexpected for none"):
        P.check_handlers({k: v for k, v in full.items() if k != P.PING}, P.TO_WORKER, "worker")
    with pytest.raises(TypeError, match=r"handlers missing for none, unexpected for \['hello'\]"):
        P.check_handlers(dict(full, hello=lambda: None), P.TO_WORKER, "w")
    with pytest.raises(TypeError, match=r"missing for \['error'\]"):
        P.check_handlers(dict(full, error="not callable"), P.TO_WORKER, "w")


def test_coordinator_and_worker_declare_every_handler():
    from sukiyaki.distributed import worker
    from sukiyaki.distributed.coordinator import app

    assert set(app.HANDLERS) == set(P.TO_COORDINATOR)
    assert set(worker.HANDLERS) == set(P.TO_WORKER)


# ---------------------------------------------------------------- property: nothing but ProtocolError

JSON = hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False) | hs.text(max_size=8),
                    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(max_size=6), inner, max_size=4),
                    max_leaves=20)
ENTRY = hs.fixed_dictionaries({}, optional={"name": hs.text(max_size=3) | JSON,
                                            "shape": hs.lists(hs.integers(-3, 1 << 62), max_size=9) | JSON,
                                            "dtype": hs.sampled_from(["float32", "int32", "x"]) | JSON,
                                            "codec": hs.sampled_from(list(C.CODECS) + ["?"]) | JSON,
                                            "nbytes": hs.integers(-1, 64) | JSON})


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=hs.sampled_from(P.KINDS + ("x",)),
       extra=hs.dictionaries(hs.sampled_from(["v", "seq", "t", "task", "iteration", "samples", "loss", "seconds",
                                              "reason", "token", "codecs"]), JSON, max_size=4),
       entries=hs.lists(ENTRY, max_size=3), tail=hs.binary(max_size=64))
def test_decode_raises_nothing_but_protocol_errors_on_structured_junk(kind, extra, entries, tail):
    header = {"v": P.VERSION, "kind": kind, **sample_fields(kind if kind in P.FIELDS else P.PONG), **extra,
              "tensors": entries}
    data = frame_bytes(json.dumps(header).encode(), tail)
    try:
        f = P.decode_frame(data, max_bytes=1 << 16)
    except P.ProtocolError as exc:
        assert str(exc)
    else:
        assert f.kind in P.KINDS and f.nbytes == len(data)


@settings(max_examples=150, deadline=None, database=None)
@given(cut=hs.integers(0, 10_000), flips=hs.lists(hs.tuples(hs.integers(0, 10_000), hs.integers(1, 255)), max_size=4))
def test_decode_raises_nothing_but_protocol_errors_on_damaged_frames(cut, flips):
    good = bytearray(P.encode_frame(P.RESULT, sample_fields(P.RESULT),
                                    [("g", np.ones((3, 4), np.float32), "block8"), ("ids", np.arange(5), "raw")]))
    for pos, x in flips:
        good[pos % len(good)] ^= x
    data = bytes(good[: len(good) - cut % len(good)])
    try:
        P.decode_frame(data)
    except P.ProtocolError as exc:
        assert str(exc)
