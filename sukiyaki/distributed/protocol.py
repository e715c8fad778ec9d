"""The coordinator-worker protocol: every message kind, and the frame that carries it.

One frame per WebSocket binary message::

    uint32 little-endian   header length H
    H bytes                UTF-8 JSON object: {"v": VERSION, "kind": ..., "seq": ..., fields...,
                                               "tensors": [{"name", "shape", "dtype", "codec", "nbytes",
                                                            "offset"?, "count"?}, ...]}
    the rest               the tensors' encoded bytes, one after another, in header order

A tensor entry carries a whole tensor, or, with ``offset`` and ``count``, a *piece* of one:
its elements ``offset .. offset + count - 1`` in column-major order (``shape`` stays the
whole tensor's). A piece's bytes are a complete encoding of its ``count`` values in the
entry's codec (an 8-bit piece carries the scale of its tensor, or of its blocks), so the
receiver decodes each piece as it arrives. Weights and gradients stream this way, layer by
layer (version 2): the coordinator sends a TASK first, then the weights in PARAMS parts in
forward order, so a worker's forward pass starts when the first layers have arrived; the
worker sends its gradient in GRADS parts as the backward pass produces them (last layers
first), and RESULT closes the upload.

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

VERSION = 2

# --- worker -> coordinator ---
HELLO = "hello"      # join: token, protocol version, name, backend, device, codecs, max_batch (speed: samples/s)
GRADS = "grads"      # part of a task's upload as backward produces it: iteration, task, part number, tensors or pieces
RESULT = "result"    # a task's upload complete: iteration, task id, samples, loss sum, seconds, parts; last tensors
PONG = "pong"        # reply to ping: the ping's t (round-trip time), worker's state
BYE = "bye"          # leaving on purpose: reason

# --- coordinator -> worker ---
WELCOME = "welcome"  # joined: worker id, network definition, run settings, parameter layout, data URLs
PARAMS = "params"    # weights of a version, one part of several in forward order: version, codec, part, parts
TASK = "task"        # work: iteration, task id, loss scale, deadline, sub-batch size, sample ids tensor
REJECT = "reject"    # a message refused (bad upload, late result, rate limit): reason, what it refers to
PING = "ping"        # liveness check: t (the coordinator's clock)
ERROR = "error"      # fatal (bad token, version): reason; the connection closes after it

TO_COORDINATOR = (HELLO, GRADS, RESULT, PONG, BYE)
TO_WORKER = (WELCOME, PARAMS, TASK, REJECT, PING, ERROR, BYE)
KINDS = tuple(dict.fromkeys(TO_COORDINATOR + TO_WORKER))

#: Field types each kind must carry (beyond v, kind, seq, tensors); values are Python types.
FIELDS = {
    HELLO: {"token": str, "version": int, "name": str, "backend": str, "device": str, "codecs": list,
            "max_batch": int},
    GRADS: {"iteration": int, "task": int, "part": int},
    RESULT: {"iteration": int, "task": int, "samples": int, "loss": float, "seconds": float},
    PONG: {"t": float},
    BYE: {"reason": str},
    WELCOME: {"worker": int, "netdef": list, "settings": dict, "layout": list, "data": dict},
    PARAMS: {"version": int, "codec": str, "part": int, "parts": int},
    TASK: {"iteration": int, "task": int, "loss_scale": float, "deadline": float, "sub_batch": int,
           "params_version": int},
    REJECT: {"reason": str, "refers_to": str},
    PING: {"t": float},
    ERROR: {"reason": str},
}
#: Fields a kind may carry, checked when present.
OPTIONAL = {
    HELLO: {"speed": float},
    RESULT: {"parts": int, "nonfinite": bool},  # parts: GRADS frames before it (0: the whole upload here)
    TASK: {"local_steps": int},
}

#: dtypes a tensor may have on the wire (decoded arrays of the codecs, and sample ids).
DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
MAX_HEADER_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_TENSORS = 4096
#: Encoded bytes per PARAMS or GRADS part, about (a larger tensor goes in pieces).
PART_BYTES = 4 << 20


class ProtocolError(ValueError):
    """A frame that is malformed, of an unknown kind or version, or over a limit."""


@dataclass
class Encoded:
    """A tensor (or a piece of one) already encoded by a codec: its bytes and the tensor's shape.

    Attributes:
        data: the encoded bytes (of ``count`` values when a piece, else of the whole tensor).
        shape: the whole tensor's shape.
        offset, count: a piece's first element (column-major) and number of elements;
            ``count`` None: the whole tensor.
    """

    data: bytes
    shape: tuple
    offset: int = 0
    count: int = None


@dataclass
class Piece:
    """A tensor, or a piece of one, as a frame carried it (see the module docstring).

    ``data`` holds its encoded bytes (a view of the frame), decoded by :meth:`decode`;
    ``array`` the decoded values once known (1-D for a piece, of ``shape`` when whole).
    """

    name: str
    shape: tuple
    offset: int
    count: int
    dtype: str = "float32"
    codec: str = "raw"
    data: object = None
    array: object = None
    stats: tuple = None  # (finite, sum of squares) of the values, once a receiver took them

    @property
    def whole(self):
        """Whether this is the whole tensor."""
        return self.offset == 0 and self.count == math.prod(self.shape)

    def decode(self):
        """The values (cached in ``array``): int32 raw or float32 of the codec, shaped when whole.

        Raises:
            ProtocolError: bytes the codec refuses (e.g. a non-finite 8-bit scale).
        """
        if self.array is None:
            shape = tuple(self.shape) if self.whole else (self.count,)
            try:
                if self.dtype == "int32":
                    self.array = np.frombuffer(self.data, dtype="<i4").reshape(shape, order="F").astype(np.int32)
                else:
                    self.array = _codec().decode(self.data, self.codec, shape)
            except ValueError as exc:
                raise ProtocolError(f"tensor {self.name!r}: {exc}") from None
        return self.array


@dataclass
class Frame:
    """A decoded message: kind, fields, tensors by name (decoded arrays of the whole tensors it
    carries), every tensor or piece in order (:class:`Piece`), and its size on the wire."""

    kind: str
    fields: dict
    tensors: dict = field(default_factory=dict)
    nbytes: int = 0
    seq: int = 0
    pieces: list = None

    def __post_init__(self):
        if self.pieces is None:  # a frame built by hand from whole arrays
            self.pieces = [Piece(n, tuple(np.shape(a)), 0, int(np.size(a)), array=a) for n, a in self.tensors.items()]

    def decode(self):
        """Decode every piece (those of a lazily decoded frame); whole tensors join ``tensors``.

        Raises:
            ProtocolError: bytes a codec refuses.
        """
        for p in self.pieces:
            try:
                a = p.decode()
            except ProtocolError as exc:
                raise ProtocolError(f"{self.kind}: {exc}") from None
            if p.whole:
                self.tensors[p.name] = a
        return self


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


def encode_header(kind, fields, entries, seq=0):
    """The bytes of a frame's length prefix and JSON header (the tensors' bytes follow it)."""
    header = dict(fields, v=VERSION, kind=kind, seq=int(seq), tensors=entries)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return struct.pack("<I", len(text)) + text


def encode_frame(kind, fields, tensors=(), seq=0):
    """The bytes of one frame.

    Args:
        kind: a message kind of this module.
        fields: the kind's fields (JSON-able).
        tensors: (name, float32 or int32 array or :class:`Encoded`, codec) triples; int32
            arrays go raw; an Encoded with a ``count`` is a piece.
        seq: the sender's message counter.
    Returns:
        bytes.
    """
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r}")
    entries, chunks = [], []
    for name, array, codec_name in tensors:
        if isinstance(array, Encoded):
            e = {"name": name, "shape": list(array.shape), "dtype": "float32", "codec": codec_name,
                 "nbytes": len(array.data)}
            if array.count is not None:
                e.update(offset=int(array.offset), count=int(array.count))
            entries.append(e)
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
    return b"".join([encode_header(kind, fields, entries, seq)] + chunks)


def _type_ok(v, typ):
    if typ is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, typ)


def _check_fields(kind, header):
    for key, typ in FIELDS[kind].items():
        if key not in header:
            raise ProtocolError(f"{kind}: missing field {key!r}")
    for key, typ in list(FIELDS[kind].items()) + list(OPTIONAL.get(kind, {}).items()):
        if key not in header:
            continue
        v = header[key]
        if not _type_ok(v, typ):
            raise ProtocolError(f"{kind}: field {key!r} must be {typ.__name__}, got {type(v).__name__}")
        if typ is float and not math.isfinite(v):
            raise ProtocolError(f"{kind}: field {key!r} must be finite, got {v!r}")


def _nonneg_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def decode_frame(data, max_bytes=1 << 30, max_elements=None, lazy=False):
    """Check and decode one frame.

    Args:
        data: the message's bytes.
        max_bytes: refuse larger frames.
        max_elements: refuse a tensor or piece of more elements than this (None: max_bytes / 4).
        lazy: leave the tensors encoded (each :class:`Piece` decodes itself when asked;
            ``tensors`` stays empty): the receiver decodes them where and when it likes.
    Returns:
        a :class:`Frame`.
    Raises:
        ProtocolError naming what is wrong.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame must be binary, got {type(data).__name__}")
    if not isinstance(data, bytes):
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
    if type(header.get("v")) is not int or header.get("v") != VERSION:  # not true or 2.0, which == 2
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
    view = memoryview(data)
    tensors, pieces, names, offset = {}, [], set(), 4 + hlen
    for i, e in enumerate(entries):
        where = f"{kind}: tensor #{i + 1}"
        if not isinstance(e, dict):
            raise ProtocolError(f"{where} must be an object")
        name, shape, dtype, cname, nbytes = (e.get(k) for k in ("name", "shape", "dtype", "codec", "nbytes"))
        if not isinstance(name, str) or not name or name in names:
            raise ProtocolError(f"{where}: name must be a new non-empty string, got {name!r}")
        names.add(name)
        where = f"{kind}: tensor {name!r}"
        bad_dim = any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape) if isinstance(shape, list) else True
        if bad_dim or len(shape) > 8:
            raise ProtocolError(f"{where}: shape must be a list of at most 8 non-negative integers, got {shape!r}")
        total = math.prod(shape)
        if "offset" in e or "count" in e:  # a piece
            first, count = e.get("offset"), e.get("count")
            if not (_nonneg_int(first) and _nonneg_int(count)) or count < 1 or first + count > total:
                raise ProtocolError(f"{where}: a piece needs 0 <= offset, 1 <= count and offset + count <= "
                                    f"{total} elements, got offset {first!r}, count {count!r}")
        else:
            first, count = 0, total
        if count > max_elements:
            raise ProtocolError(f"{where}: {count} elements is over the limit of {max_elements}")
        if not isinstance(dtype, str) or dtype not in DTYPES:  # a list would not even hash
            raise ProtocolError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if cname not in codec.CODECS or (dtype == "int32" and cname != "raw"):
            raise ProtocolError(f"{where}: codec {cname!r} is not one of {', '.join(codec.CODECS)} for {dtype}")
        expected = 4 * count if dtype == "int32" else codec.encoded_size(count, cname)
        if nbytes != expected:
            size = f"{shape}" if count == total else f"{count} elements"
            raise ProtocolError(f"{where}: {nbytes!r} bytes announced, {expected} expected for {size} in {cname}")
        if offset + expected > len(data):
            raise ProtocolError(f"{where}: the frame ends before its bytes ({len(data)} < {offset + expected})")
        pieces.append(Piece(name, tuple(shape), first, count, dtype, cname, view[offset:offset + expected]))
        offset += expected
    if offset != len(data):
        raise ProtocolError(f"{kind}: {len(data) - offset} bytes after the last tensor")
    fields = {k: v for k, v in header.items() if k not in ("v", "kind", "seq", "tensors")}
    frame = Frame(kind, fields, tensors, len(data), seq, pieces)
    return frame if lazy else frame.decode()


def plan_parts(tensors, part_bytes=PART_BYTES):
    """Cut tensors into parts of about ``part_bytes`` encoded bytes, keeping their order.

    Args:
        tensors: [(name, shape, codec)] in sending order.
        part_bytes: the target size of a part.
    Returns:
        [[(name, shape, codec, lo, hi), ...], ...]: the parts; each entry is elements lo..hi-1
        of a tensor (the whole tensor when lo == 0 and hi == its size).

    Example:
        >>> [[(n, lo, hi) for n, _, _, lo, hi in part] for part in
        ...  plan_parts([("a", (600,), "dettmers8"), ("b", (10,), "raw")], 512)]
        [[('a', 0, 512)], [('a', 512, 600), ('b', 0, 10)]]
    """
    codec = _codec()
    parts, current, size = [], [], 0
    for name, shape, cname in tensors:
        n = math.prod(shape)
        for lo, hi in codec.piece_bounds(n, cname, part_bytes) or [(0, 0)]:
            nbytes = codec.encoded_size(hi - lo, cname)
            if current and (size + nbytes > part_bytes or current[-1][0] == name):  # one piece of a tensor a part
                parts.append(current)
                current, size = [], 0
            current.append((name, tuple(shape), cname, lo, hi))
            size += nbytes
    if current:
        parts.append(current)
    return parts


def part_tensors(part, blobs):
    """The (name, :class:`Encoded`, codec) triples of a part of :func:`plan_parts`, cut from
    ``blobs`` (name -> the whole tensor's encoding): whole tensors as they are, pieces cut."""
    codec = _codec()
    out = []
    for name, shape, cname, lo, hi in part:
        n = math.prod(shape)
        if lo == 0 and hi == n:
            out.append((name, Encoded(blobs[name], shape), cname))
        else:
            out.append((name, Encoded(codec.piece(blobs[name], cname, n, lo, hi), shape, lo, hi - lo), cname))
    return out


def check_handlers(handlers, direction, owner):
    """Raise TypeError unless ``handlers`` (kind -> callable) covers exactly the kinds of ``direction``."""
    missing = [k for k in direction if not callable(handlers.get(k))]
    extra = [k for k in handlers if k not in direction]
    if missing or extra:
        raise TypeError(f"{owner}: handlers missing for {missing or 'none'}, unexpected for {extra or 'none'}")


def bind_handlers(names, cls, direction, owner):
    """Check that class ``cls`` has a method for every kind of ``direction`` (``names``: kind ->
    method name) and return ``names``: a receiver dispatches through its instance
    (``getattr(self, names[kind])``), so a subclass's override of a handler is the one called.

    Raises:
        TypeError: a kind without a method, or a method for a kind of the other direction.
    """
    check_handlers({k: getattr(cls, n, None) for k, n in names.items()}, direction, owner)
    return dict(names)
