"""Parameter files: safetensors (the main format) and the original Sukiyaki2 binary format.

Both work on an ordered dict ``{name: numpy.ndarray}``. A parameter's name is
``"<layer name>/<parameter name>"``, e.g. ``"conv1/weight"``, ``"conv1/bias"``, ``"bn1/gamma"``:
the layer's ``name`` from the network JSON, a slash, and the attribute name the layer gives the
parameter (the original's ``train_params``: ``weight``/``bias``, ``gamma``/``beta``). Parameter
names never contain a slash, so :func:`split_name` splits at the last one. Arrays keep the
MATLAB shapes of the original (a convolution weight is ``(kh, kw, in_size, out_size)``); a
network's vectors (biases, batch-norm gamma/beta and running statistics) are written 1-d,
``(out_size,)``, as ``Net.param_shapes()`` gives them and PyTorch stores them.

safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian unsigned header
length N, N bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]},
"__metadata__": {str: str}}`` padded with spaces to a multiple of 8, then the data buffer, each
tensor row-major little-endian, offsets relative to the buffer start, no holes, nothing after the
last tensor. Our writer orders tensors as the reference (Rust) writer does, by decreasing dtype
alignment then by name, and writes compact JSON with "__metadata__" first (its keys sorted; the
reference writes them in hash order), so a file without metadata, or with one metadata key, is
byte-identical to ``safetensors.numpy.save`` (0.8 writes invalid JSON for no tensors with an
empty metadata dict; ours is valid). Loading returns tensors in file (offset) order. BF16
loads as float32; ``cast=`` writes F16 or BF16 (round to nearest even) from float arrays.

Sukiyaki2 format, as written and read by ``src/array_serializer.ts`` (``ArraySerializer.dump`` /
``load``) of mil-tokyo/sukiyaki2 and used by ``run/train_node.ts`` for ``--initial_weight`` and
the saved snapshots. Layout:

- bytes ``[0, H)``: ASCII JSON ``{"<layer>/<param>": {"offset": o, "size": s}, ...}`` written
  compactly (``JSON.stringify``: no spaces), in network layer order then the layer's parameter
  order, followed by NUL bytes up to H. H is 1024; if the JSON would not fit with at least one NUL
  after it, H becomes ``ceil(len / 1024) * 1024 + 1024`` and the offsets are recomputed (an
  early version used a fixed H of 32768; it loads too, since offsets are absolute).
- ``o`` is the absolute byte offset of the parameter in the file, ``s`` its size in bytes
  (4 * numel); parameters follow each other with no gaps, the first at H, and the file ends at
  the last one's end.
- each parameter is float32 little-endian in column-major (Fortran) element order. The header has
  no shapes: the network supplies them, so :func:`load_sukiyaki2` returns flat arrays unless
  given ``shapes``.

Example:
    >>> import numpy as np
    >>> data = save_safetensors(None, {"fc1/weight": np.ones((2, 3), np.float32)})
    >>> load_safetensors(data)[0]["fc1/weight"].shape
    (2, 3)
"""

import json
import math
import os

import numpy as np

# code -> (numpy dtype, rank in the reference writer's dtype order: higher is written first)
_DTYPES = {
    "BOOL": ("?", 0), "U8": ("u1", 1), "I8": ("i1", 2), "I16": ("<i2", 5), "U16": ("<u2", 6),
    "F16": ("<f2", 7), "BF16": ("<u2", 8), "I32": ("<i4", 9), "U32": ("<u4", 10),
    "F32": ("<f4", 11), "F64": ("<f8", 12), "I64": ("<i8", 13), "U64": ("<u8", 14),
}
_CODES = {np.dtype(d).newbyteorder("<"): c for c, (d, _) in _DTYPES.items() if c != "BF16"}
_FLOATS = ("F16", "BF16", "F32", "F64")
_MAX_HEADER = 100 * 1024 * 1024  # the reference refuses larger safetensors headers too
_SK2_BLOCK = 1024


def split_name(name):
    """Split a parameter name into ``(layer name, parameter name)`` at the last slash.

    Args:
        name: e.g. ``"conv1/weight"``.
    Returns:
        ``("conv1", "weight")``; raises ValueError if there is no slash.
    Example:
        >>> split_name("block1/conv1/weight")
        ('block1/conv1', 'weight')
    """
    layer, sep, param = name.rpartition("/")
    if not sep or not layer or not param:
        raise ValueError(f"parameter name {name!r} is not of the form 'layer/param'")
    return layer, param


def float32_to_bf16(array):
    """Round float values to bfloat16 (nearest even), returned as their uint16 bit patterns.

    Example:
        >>> float32_to_bf16(np.array([1.0], np.float32))
        array([16256], dtype=uint16)
    """
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, (bits >> 16) | 0x0040, rounded).astype("<u2")


def bf16_to_float32(bits):
    """Widen bfloat16 bit patterns (uint16) to float32 exactly.

    Example:
        >>> bf16_to_float32(np.array([16256], np.uint16))
        array([1.], dtype=float32)
    """
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4").astype(np.float32)


def _read_all(source):
    """Bytes of a path, a binary file object or a bytes-like object."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    if hasattr(source, "read"):
        return source.read()
    return bytes(source)


def _emit(dest, chunks):
    """Write chunks to a path (atomically), a binary file object, or return bytes if dest is None."""
    if dest is None:
        return b"".join(chunks)
    if isinstance(dest, (str, os.PathLike)):
        atomic_write(dest, lambda f: [f.write(c) for c in chunks])
    else:
        for c in chunks:
            dest.write(c)
    return None


def _as_numpy(name, value):
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("cupy"):
        return value.get()
    try:
        return np.asarray(value)
    except Exception as e:
        raise TypeError(f"parameter {name!r}: cannot convert {type(value).__name__} to numpy: {e}")


def _strict_json(text, what):
    def pairs(items):
        obj = dict(items)
        if len(obj) != len(items):
            seen = set()
            dup = next(k for k, _ in items if k in seen or seen.add(k))
            raise ValueError(f"{what}: key {dup!r} appears twice")
        return obj

    def constant(c):
        raise ValueError(f"{what}: {c} is not valid JSON")

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{what}: the JSON nests too deeply to be read (deeper than Python's "
                         f"recursion limit)") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _safetensors_entry(name, value, cast):
    """(code, shape, bytes) of one tensor for the safetensors writer."""
    if not isinstance(name, str) or name == "__metadata__":
        raise ValueError(f"invalid tensor name {name!r}")
    a = _as_numpy(name, value)
    target = cast.get(name) if isinstance(cast, dict) else cast
    if a.dtype.name == "bfloat16":  # ml_dtypes' numpy dtype
        code, raw = "BF16", np.ascontiguousarray(a).view("<u2")
    else:
        code = _CODES.get(a.dtype.newbyteorder("<"))
        if code is None:
            raise ValueError(f"tensor {name!r}: dtype {a.dtype} has no safetensors equivalent")
        raw = a
    if isinstance(cast, str) and code not in _FLOATS:
        target = None  # a single cast code applies to float tensors only
    if target is not None and target != code:
        if target not in _FLOATS or code not in _FLOATS:
            raise ValueError(f"tensor {name!r}: cannot cast {code} to {target!r}")
        f32 = bf16_to_float32(raw) if code == "BF16" else raw
        raw = float32_to_bf16(f32) if target == "BF16" else f32.astype(_DTYPES[target][0])
        code = target
    data = np.ascontiguousarray(raw, dtype=np.dtype(_DTYPES[code][0])).tobytes()
    return code, [int(d) for d in a.shape], data


def save_safetensors(dest, tensors, metadata=None, cast=None):
    """Write tensors to a safetensors file, byte-compatible with the reference writer.

    Args:
        dest: a path (written atomically), a binary file object, or None to return the bytes.
        tensors: ``{name: array}`` of numpy arrays (or anything ``numpy.asarray`` takes).
        metadata: optional ``{str: str}`` stored as "__metadata__".
        cast: None, a dtype code ("F16", "BF16", "F32", "F64") applied to every float tensor, or
            ``{name: code}`` per tensor.
    Returns:
        The file's bytes when ``dest`` is None, else None.
    Example:
        >>> blob = save_safetensors(None, {"fc1/bias": np.zeros((10, 1), np.float32)})
        >>> blob[:8], blob[8:9]
        (b'H\\x00\\x00\\x00\\x00\\x00\\x00\\x00', b'{')
    """
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must be a dict of str to str")
    entries = [(n,) + _safetensors_entry(n, v, cast) for n, v in tensors.items()]
    entries.sort(key=lambda e: (-_DTYPES[e[1]][1], e[0]))  # the reference writer's order
    header, offset = {}, 0
    if metadata is not None:  # the reference writes an empty {} too
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name, code, shape, data in entries:
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    chunks = [len(text).to_bytes(8, "little"), text] + [e[3] for e in entries]
    return _emit(dest, chunks)


def load_safetensors(source):
    """Read a safetensors file, checking its header and offsets.

    Args:
        source: a path, a binary file object, or bytes.
    Returns:
        ``(tensors, metadata)``: ``{name: numpy array}`` in offset order (BF16 as float32) and the
        "__metadata__" dict (empty if absent). Raises ValueError naming the fault (and the file,
        when given a path).
    Example:
        >>> blob = save_safetensors(None, {"a/b": np.arange(3)}, {"epoch": "3"})
        >>> load_safetensors(blob)
        ({'a/b': array([0, 1, 2])}, {'epoch': '3'})
    """
    if isinstance(source, (str, os.PathLike)):
        data = _read_all(source)
        try:
            return load_safetensors(data)
        except ValueError as exc:
            raise ValueError(f"safetensors file {os.fspath(source)!r}: {exc}") from None
    buf = memoryview(_read_all(source))
    if len(buf) < 8:
        raise ValueError(f"safetensors file truncated: expected at least 8 bytes, got {len(buf)}")
    n = int.from_bytes(buf[:8], "little")
    if n > _MAX_HEADER:
        raise ValueError(f"safetensors header length {n} exceeds the {_MAX_HEADER}-byte limit")
    if 8 + n > len(buf):
        raise ValueError(f"safetensors header length {n} is larger than the file: expected at "
                         f"least {8 + n} bytes, got {len(buf)}")
    try:
        text = bytes(buf[8:8 + n]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"safetensors header is not UTF-8: {e}") from None
    header = _strict_json(text, "safetensors header")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ValueError(f"__metadata__ must be an object, got {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise ValueError(f"__metadata__ value of {k!r} must be a string, got {v!r}")
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise ValueError(f"tensor {name!r}: entry must have dtype, shape and data_offsets, "
                             f"got {info!r}")
        code, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if code not in _DTYPES:
            raise ValueError(f"tensor {name!r}: unknown or unsupported dtype {code!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers, "
                             f"got {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_count(o) for o in offs)
                or offs[0] > offs[1]):
            raise ValueError(f"tensor {name!r}: data_offsets must be [begin, end] with "
                             f"0 <= begin <= end, got {offs!r}")
        need = math.prod(shape) * np.dtype(_DTYPES[code][0]).itemsize
        if offs[1] - offs[0] != need:
            raise ValueError(f"tensor {name!r}: data_offsets {offs} span {offs[1] - offs[0]} "
                             f"bytes but shape {shape} of {code} needs {need}")
        spans.append((offs[0], offs[1], name, code, shape))
    spans.sort()
    data, end, prev = buf[8 + n:], 0, None
    for begin, stop, name, _, _ in spans:
        if begin < end:
            raise ValueError(f"tensor {name!r}: data_offsets start at {begin}, overlapping "
                             f"tensor {prev!r} which ends at {end}")
        if begin > end:
            where = f"after tensor {prev!r}" if prev else "at the start of the data"
            raise ValueError(f"tensor {name!r}: hole of {begin - end} bytes {where}")
        end, prev = stop, name
    if end > len(data):
        cut = next(s for s in spans if s[1] > len(data))
        raise ValueError(f"safetensors file truncated: tensor {cut[2]!r} needs data bytes "
                         f"{cut[0]}..{cut[1]}: expected {8 + n + end} bytes, got {len(buf)}")
    if end < len(data):
        raise ValueError(f"safetensors file has {len(data) - end} bytes after the last tensor: "
                         f"expected {8 + n + end} bytes, got {len(buf)}")
    tensors = {}
    for begin, stop, name, code, shape in spans:
        raw = np.frombuffer(data[begin:stop], dtype=_DTYPES[code][0])
        if code == "BF16":
            arr = bf16_to_float32(raw)
        elif code == "BOOL":
            arr = raw.view("u1") != 0
        else:
            arr = raw.astype(raw.dtype.newbyteorder("="))
        tensors[name] = arr.reshape(shape)
    return tensors, dict(metadata)


def save_sukiyaki2(dest, tensors):
    """Write float tensors in the original Sukiyaki2 binary format (see the module docstring).

    Args:
        dest: a path (written atomically), a binary file object, or None to return the bytes.
        tensors: ``{"layer/param": array}`` of float arrays in network order; stored as float32
            in column-major order. Names need exactly one slash, as the original splits on it.
    Returns:
        The file's bytes when ``dest`` is None, else None.
    Example:
        >>> blob = save_sukiyaki2(None, {"conv1/weight": np.zeros((5, 5, 1, 20), np.float32)})
        >>> blob[:45], len(blob)
        (b'{"conv1/weight":{"offset":1024,"size":2000}}\\x00', 3024)
    """
    blobs = []
    for name, value in tensors.items():
        a = _as_numpy(name, value)
        if not isinstance(name, str) or name.count("/") != 1 or name.startswith("/") \
                or name.endswith("/") or not name.isascii():
            raise ValueError(f"parameter name {name!r}: the Sukiyaki2 format needs ASCII "
                             f"'layer/param' with exactly one slash")
        if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
            raise ValueError(f"parameter {name!r}: the Sukiyaki2 format stores float32 only, "
                             f"got {a.dtype} (use safetensors)")
        blobs.append((name, np.asarray(a, dtype="<f4").ravel(order="F").tobytes()))
    size = _SK2_BLOCK
    while True:
        header, offset = {}, size
        for name, data in blobs:
            header[name] = {"offset": offset, "size": len(data)}
            offset += len(data)
        text = json.dumps(header, separators=(",", ":")).encode("ascii")
        if len(text) < size:
            break
        size = math.ceil(len(text) / _SK2_BLOCK) * _SK2_BLOCK + _SK2_BLOCK
    return _emit(dest, [text, bytes(size - len(text))] + [d for _, d in blobs])


def load_sukiyaki2(source, shapes=None):
    """Read a file in the original Sukiyaki2 binary format, checking header and sizes.

    Args:
        source: a path, a binary file object, or bytes.
        shapes: optional ``{name: MATLAB shape}``; those parameters are reshaped in column-major
            order, the others are returned flat.
    Returns:
        ``{name: float32 array}`` in file order. Raises ValueError naming the fault (and the
        file, when given a path).
    Example:
        >>> blob = save_sukiyaki2(None, {"fc/weight": np.eye(2, 3, dtype=np.float32)})
        >>> load_sukiyaki2(blob, {"fc/weight": (2, 3)})["fc/weight"][0]
        array([1., 0., 0.], dtype=float32)
    """
    if isinstance(source, (str, os.PathLike)):
        data = _read_all(source)
        try:
            return load_sukiyaki2(data, shapes)
        except ValueError as exc:
            raise ValueError(f"Sukiyaki2 file {os.fspath(source)!r}: {exc}") from None
    buf = _read_all(source)
    nul = buf.find(b"\0")
    if nul < 0:
        raise ValueError(f"Sukiyaki2 file has no NUL byte ending its JSON header "
                         f"({len(buf)} bytes read)")
    header = _strict_json(buf[:nul].decode("latin-1"), "Sukiyaki2 header")  # byte = char, as there
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or not _is_count(info.get("offset")) \
                or not _is_count(info.get("size")):
            raise ValueError(f"parameter {name!r}: entry must be {{\"offset\": int, \"size\": "
                             f"int}}, got {info!r}")
        off, size = info["offset"], info["size"]
        if size % 4 or off % 4:
            raise ValueError(f"parameter {name!r}: offset {off} and size {size} must be "
                             f"multiples of 4 (float32)")
        if off <= nul:
            raise ValueError(f"parameter {name!r}: offset {off} lies inside the header, which "
                             f"ends at byte {nul}")
        spans.append((off, off + size, name))
    spans.sort()
    end, prev = None, None
    for begin, stop, name in spans:
        if end is None and begin % _SK2_BLOCK:
            raise ValueError(f"parameter {name!r}: data starts at {begin}, not at a multiple of "
                             f"{_SK2_BLOCK} after the header")
        if end is not None and begin != end:
            what = "overlaps" if begin < end else f"leaves {begin - end} bytes unused after"
            raise ValueError(f"parameter {name!r} at offset {begin} {what} parameter {prev!r} "
                             f"(ending at {end}): sizes don't add up")
        if stop > len(buf):
            raise ValueError(f"Sukiyaki2 file truncated: parameter {name!r} needs bytes "
                             f"{begin}..{stop}: expected {spans[-1][1]} bytes, got {len(buf)}")
        end, prev = stop, name
    if end is not None and end != len(buf):
        raise ValueError(f"Sukiyaki2 file has {len(buf) - end} bytes after the last parameter "
                         f"{prev!r}: expected {end} bytes, got {len(buf)}")
    shapes = shapes or {}
    out = {}
    for name, info in header.items():
        a = np.frombuffer(buf, "<f4", info["size"] // 4, info["offset"]).astype(np.float32)
        if name in shapes:
            shape = tuple(int(d) for d in shapes[name])
            if math.prod(shape) != a.size:
                raise ValueError(f"parameter {name!r}: file holds {a.size} floats, shape "
                                 f"{shape} needs {math.prod(shape)}")
            a = a.reshape(shape, order="F")
        out[name] = a
    return out


def check_against(tensors, expected, source_name):
    """Check loaded parameters against what a network expects; raise ValueError on a mismatch.

    Args:
        tensors: ``{name: array}`` as loaded.
        expected: ``{name: (shape, dtype)}`` in network order; dtype may be None (not checked),
            otherwise the file's dtype must cast to it within its kind (float64 -> float32 is fine).
        source_name: the file name used in messages.
    Returns:
        None.
    Example:
        >>> check_against({"fc/bias": np.zeros(3)}, {"fc/bias": ((4,), np.float32)}, "a.bin")
        Traceback (most recent call last):
        ValueError: file 'a.bin': parameter 'fc/bias' has shape (3,), the network expects (4,)
    """
    where = f"file {str(source_name)!r}"
    for name, (shape, dtype) in expected.items():
        shape = tuple(int(d) for d in shape)
        if name not in tensors:
            raise ValueError(f"{where}: parameter {name!r} is missing (the network expects "
                             f"shape {shape})")
        got = np.shape(tensors[name])
        if got != shape:
            raise ValueError(f"{where}: parameter {name!r} has shape {got}, the network "
                             f"expects {shape}")
        if dtype is not None:
            have = np.asarray(tensors[name]).dtype
            want = np.dtype(dtype)
            if not np.can_cast(have, want, "same_kind") or (want.kind == "f" and have.kind != "f"):
                raise ValueError(f"{where}: parameter {name!r} has dtype {have}, the network "
                                 f"expects {want}")
    for name in tensors:
        if name not in expected:
            raise ValueError(f"{where}: unexpected parameter {name!r} (the network has no "
                             f"such parameter)")


TEMP_SUFFIX = ".sukiyaki-tmp"


def temp_path(path):
    """The one temporary file that :func:`atomic_write` uses for ``path``: ``.<name>.sukiyaki-tmp``.

    The name is fixed per destination, so a temporary left by a killed process is replaced by
    the next write and found by :func:`remove_stale_temp`.

    Args:
        path: the destination path.
    Returns:
        The temporary's absolute path, in the destination's folder.
    Example:
        >>> temp_path("/runs/ck.safetensors")
        '/runs/.ck.safetensors.sukiyaki-tmp'
    """
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{base}{TEMP_SUFFIX}")


def remove_stale_temp(path):
    """Delete the temporary that an interrupted :func:`atomic_write` of ``path`` left behind.

    Args:
        path: the destination path (not the temporary's).
    Returns:
        True if a temporary was there and is now removed, False if there was none.
    Example:
        >>> remove_stale_temp("runs/ck.safetensors")  # doctest: +SKIP
        False
    """
    try:
        os.unlink(temp_path(path))
    except FileNotFoundError:
        return False
    return True


def _open_temp(tmp):
    """Create ``tmp`` afresh (a stale one is deleted first) and return its descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(tmp, flags, 0o666)
    except FileExistsError:
        os.unlink(tmp)  # left by a killed writer (never followed if it is a link)
        return os.open(tmp, flags, 0o666)


def check_writable(path, what):
    """Check that ``path`` can be written, by creating and removing its temporary file.

    Missing parent folders are created for the probe and removed again: nothing is left
    behind and the file itself is not created.

    Args:
        path: the file that will be written later (e.g. a checkpoint).
        what: how messages call it, e.g. ``"--checkpoint"``.
    Returns:
        None.
    Raises:
        ValueError: naming ``what`` and the path, when the parent folder cannot be created, is
            not a folder or is not writable, or the path is a folder.
    Example:
        >>> check_writable("/etc/passwd/ck.safetensors", "--checkpoint")  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: --checkpoint '/etc/passwd/ck.safetensors': '/etc/passwd' is not a folder
    """
    where = f"{what} {os.fspath(path)!r}"
    full = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        raise ValueError(f"{where}: is a folder, not a file")
    created, probe = [], folder
    while not os.path.lexists(probe):  # the folders a write would create, innermost first
        created.append(probe)
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"{where}: {probe!r} is not a folder")
    try:
        for d in reversed(created):
            try:
                os.mkdir(d)
            except OSError as exc:
                raise ValueError(f"{where}: cannot create its folder {d!r} "
                                 f"({exc.strerror or exc})") from None
        tmp = temp_path(full)
        try:
            os.close(_open_temp(tmp))
            os.unlink(tmp)
        except OSError as exc:
            raise ValueError(f"{where}: cannot write in folder {folder!r} "
                             f"({exc.strerror or exc})") from None
    finally:
        for d in created:
            try:
                os.rmdir(d)
            except OSError:
                pass


def atomic_write(path, write_fn):
    """Write a file through its temporary (:func:`temp_path`), fsync, then os.replace.

    A failure inside ``write_fn`` leaves any existing file untouched and no temporary behind;
    a process killed mid-write leaves the temporary, which the next write of ``path`` replaces
    (or :func:`remove_stale_temp` deletes).

    Args:
        path: the destination path.
        write_fn: called with the open binary file object; writes the content.
    Returns:
        None.
    Example:
        >>> atomic_write(path, lambda f: f.write(save_safetensors(None, tensors)))  # doctest: +SKIP
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = temp_path(path)
    fd = _open_temp(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable where the platform allows it
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
