"""The coordinator-worker protocol: every message kind, and the frame that carries it.

One frame per WebSocket binary message::

    uint32 little-endian   header length H
    H bytes                UTF-8 JSON object: {"v": VERSION, "kind": ..., "seq": ..., fields...,
                                               "tensors": [{"name", "shape", "codec"}, ...]}
    the rest               the tensors' encoded bytes, one after another, in header order

No pickle and no eval: the header is JSON (nesting limited), tensors are raw little-endian
numbers in one of the codecs of :mod:`sukiyaki.distributed.codec`. Every frame is checked
when it is read (size limits, version, kind, field types, tensor shapes and byte counts)
and a bad one raises :class:`ProtocolError` naming what was wrong; the receiver logs it,
tells the sender when it can, and carries on.

Message kinds, each with its direction and one line on what it carries; the coordinator
and the worker each declare a handler for every kind they receive, checked when their
module is imported (:func:`check_handlers`).

Example:
    >>> import numpy as np
    >>> data = encode_frame(PONG, {"t": 1.5})
    >>> decode_frame(data).fields["t"]
    1.5
"""

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

VERSION = 1

# --- worker -> coordinator ---
HELLO = "hello"      # join: token, protocol version, name, backend, device, codecs, max_batch
RESULT = "result"    # a task done: iteration, task id, samples, loss sum, seconds, gradient tensors
PONG = "pong"        # reply to ping: the ping's t (round-trip time), worker's state
BYE = "bye"          # leaving on purpose: reason

# --- coordinator -> worker ---
WELCOME = "welcome"  # joined: worker id, network definition, run settings, parameter layout, data URLs
PARAMS = "params"    # weights: version (iteration), codec, one tensor per parameter (or their change)
TASK = "task"        # work: iteration, task id, loss scale, deadline, sub-batch size, sample ids tensor
REJECT = "reject"    # a message refused (bad upload, late result, rate limit): reason, what it refers to
PING = "ping"        # liveness check: t (the coordinator's clock)
ERROR = "error"      # fatal (bad token, version): reason; the connection closes after it

TO_COORDINATOR = (HELLO, RESULT, PONG, BYE)
TO_WORKER = (WELCOME, PARAMS, TASK, REJECT, PING, ERROR, BYE)
KINDS = tuple(dict.fromkeys(TO_COORDINATOR + TO_WORKER))

#: Field types each kind must carry (beyond v, kind, seq, tensors); values are Python types.
FIELDS = {
    HELLO: {"token": str, "version": int, "name": str, "backend": str, "device": str, "codecs": list,
            "max_batch": int},
    RESULT: {"iteration": int, "task": int, "samples": int, "loss": float, "seconds": float},
    PONG: {"t": float},
    BYE: {"reason": str},
    WELCOME: {"worker": int, "netdef": list, "settings": dict, "layout": list, "data": dict},
    PARAMS: {"version": int, "codec": str},
    TASK: {"iteration": int, "task": int, "loss_scale": float, "deadline": float, "sub_batch": int,
           "params_version": int},
    REJECT: {"reason": str, "refers_to": str},
    PING: {"t": float},
    ERROR: {"reason": str},
}

#: dtypes a tensor may have on the wire (decoded arrays of the codecs, and sample ids).
DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
MAX_HEADER_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_TENSORS = 4096


class ProtocolError(ValueError):
    """A frame that is malformed, of an unknown kind or version, or over a limit."""


@dataclass
class Encoded:
    """A tensor already encoded (by a codec, e.g. with error feedback): its bytes and shape."""

    data: bytes
    shape: tuple


@dataclass
class Frame:
    """A decoded message: kind, fields, tensors by name (decoded arrays), and its size on the wire."""

    kind: str
    fields: dict
    tensors: dict = field(default_factory=dict)
    nbytes: int = 0
    seq: int = 0


def _depth(obj, limit):
    """Raise ProtocolError when JSON nests deeper than limit (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            raise ProtocolError(f"the header nests deeper than {limit} levels")
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)


def _no_constant(name):
    raise ProtocolError(f"the header holds {name}, which JSON does not allow")


def _codec():
    from sukiyaki.distributed import codec

    return codec


def encode_frame(kind, fields, tensors=(), seq=0):
    """The bytes of one frame.

    Args:
        kind: a message kind of this module.
        fields: the kind's fields (JSON-able).
        tensors: (name, float32 or int32 array or :class:`Encoded`, codec) triples; int32
            arrays go raw.
        seq: the sender's message counter.
    Returns:
        bytes.
    """
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}")
    entries, chunks = [], []
    for name, array, codec_name in tensors:
        if isinstance(array, Encoded):
            entries.append({"name": name, "shape": list(array.shape), "dtype": "float32", "codec": codec_name,
                            "nbytes": len(array.data)})
            chunks.append(array.data)
            continue
        a = np.asarray(array)
        if a.dtype.kind in "iu":
            blob = np.ascontiguousarray(a.reshape(-1, order="F"), dtype="<i4").tobytes()
            entries.append({"name": name, "shape": list(a.shape), "dtype": "int32", "codec": "raw"})
        else:
            blob = _codec().encode(np.asarray(a, dtype=np.float32), codec_name)
            entries.append({"name": name, "shape": list(a.shape), "dtype": "float32", "codec": codec_name})
        entries[-1]["nbytes"] = len(blob)
        chunks.append(blob)
    header = dict(fields, v=VERSION, kind=kind, seq=int(seq), tensors=entries)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"".join([struct.pack("<I", len(text)), text] + chunks)


def _check_fields(kind, header):
    for key, typ in FIELDS[kind].items():
        if key not in header:
            raise ProtocolError(f"{kind}: missing field {key!r}")
        v = header[key]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if typ is float else isinstance(v, typ)
        if typ is int and isinstance(v, bool):
            ok = False
        if not ok:
            raise ProtocolError(f"{kind}: field {key!r} must be {typ.__name__}, got {type(v).__name__}")
        if typ is float and not math.isfinite(v):
            raise ProtocolError(f"{kind}: field {key!r} must be finite, got {v!r}")


def decode_frame(data, max_bytes=1 << 30, max_elements=None):
    """Check and decode one frame.

    Args:
        data: the message's bytes.
        max_bytes: refuse larger frames.
        max_elements: refuse a tensor of more elements than this (None: max_bytes / 4).
    Returns:
        a :class:`Frame`.
    Raises:
        ProtocolError naming what is wrong.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame must be binary, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ProtocolError(f"frame of {len(data)} bytes is over the limit of {max_bytes}")
    if len(data) < 4:
        raise ProtocolError(f"frame of {len(data)} bytes is too short for its header length")
    (hlen,) = struct.unpack_from("<I", data, 0)
    if hlen > min(MAX_HEADER_BYTES, len(data) - 4):
        raise ProtocolError(f"header length {hlen} does not fit the frame ({len(data)} bytes) or the limit")
    try:
        header = json.loads(data[4:4 + hlen].decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("the header nests too deeply") from None
    except ProtocolError:  # NaN or Infinity (parse_constant)
        raise
    except ValueError as exc:  # not UTF-8, not JSON, or an integer past Python's 4300-digit limit
        raise ProtocolError(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"the header must be a JSON object, got {type(header).__name__}")
    _depth(header, MAX_JSON_DEPTH)
    if type(header.get("v")) is not int or header.get("v") != VERSION:  # not true or 1.0, which == 1
        raise ProtocolError(f"protocol version {header.get('v')!r} is not supported (this side speaks {VERSION})")
    kind = header.get("kind")
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}")
    seq = header.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProtocolError(f"{kind}: seq must be a non-negative integer, got {seq!r}")
    _check_fields(kind, header)
    entries = header.get("tensors", [])
    if not isinstance(entries, list) or len(entries) > MAX_TENSORS:
        raise ProtocolError(f"{kind}: 'tensors' must be a list of at most {MAX_TENSORS} entries")
    max_elements = max_elements if max_elements is not None else max_bytes // 4
    codec = _codec()
    tensors, offset = {}, 4 + hlen
    for i, e in enumerate(entries):
        where = f"{kind}: tensor #{i + 1}"
        if not isinstance(e, dict):
            raise ProtocolError(f"{where} must be an object")
        name, shape, dtype, cname, nbytes = (e.get(k) for k in ("name", "shape", "dtype", "codec", "nbytes"))
        if not isinstance(name, str) or not name or name in tensors:
            raise ProtocolError(f"{where}: name must be a new non-empty string, got {name!r}")
        where = f"{kind}: tensor {name!r}"
        bad_dim = any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape) if isinstance(shape, list) else True
        if bad_dim or len(shape) > 8:
            raise ProtocolError(f"{where}: shape must be a list of at most 8 non-negative integers, got {shape!r}")
        count = math.prod(shape)
        if count > max_elements:
            raise ProtocolError(f"{where}: {count} elements is over the limit of {max_elements}")
        if not isinstance(dtype, str) or dtype not in DTYPES:  # a list would not even hash
            raise ProtocolError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if cname not in codec.CODECS or (dtype == "int32" and cname != "raw"):
            raise ProtocolError(f"{where}: codec {cname!r} is not one of {', '.join(codec.CODECS)} for {dtype}")
        expected = 4 * count if dtype == "int32" else codec.encoded_size(count, cname)
        if nbytes != expected:
            raise ProtocolError(f"{where}: {nbytes!r} bytes announced, {expected} expected for {shape} in {cname}")
        if offset + expected > len(data):
            raise ProtocolError(f"{where}: the frame ends before its bytes ({len(data)} < {offset + expected})")
        blob = data[offset:offset + expected]
        offset += expected
        try:
            if dtype == "int32":
                tensors[name] = np.frombuffer(blob, dtype="<i4").reshape(shape, order="F").astype(np.int32)
            else:
                tensors[name] = codec.decode(blob, cname, tuple(shape))
        except ValueError as exc:
            raise ProtocolError(f"{where}: {exc}") from None
    if offset != len(data):
        raise ProtocolError(f"{kind}: {len(data) - offset} bytes after the last tensor")
    fields = {k: v for k, v in header.items() if k not in ("v", "kind", "seq", "tensors")}
    return Frame(kind, fields, tensors, len(data), seq)


def check_handlers(handlers, direction, owner):
    """Raise TypeError unless ``handlers`` (kind -> callable) covers exactly the kinds of ``direction``."""
    missing = [k for k in direction if not callable(handlers.get(k))]
    extra = [k for k in handlers if k not in direction]
    if missing or extra:
        raise TypeError(f"{owner}: handlers missing for {missing or 'none'}, unexpected for {extra or 'none'}")
