"""Read and write numpy ``.npy`` and ``.npz`` files without pickle, in pure Python.

A self-contained implementation of the format documented in ``numpy.lib.format``
(versions 1.0, 2.0 and 3.0), for plain numeric arrays only. The header, a Python
dict literal, is parsed by a small strict parser (no ``eval``), so a file can
never run code. Works wherever numpy does, Pyodide included.

Example:
    >>> import io, numpy as np
    >>> buf = io.BytesIO()
    >>> write_npy(buf, np.arange(6, dtype=np.int32).reshape(2, 3))
    >>> read_npy(buf.getvalue()).tolist()
    [[0, 1, 2], [3, 4, 5]]
"""

import io
import os
import re
import struct
import zipfile
import zlib

import numpy

MAGIC_PREFIX = b"\x93NUMPY"
ARRAY_ALIGN = 64
GROWTH_AXIS_MAX_DIGITS = 21  # numpy pads the header so the growth axis may gain digits
_VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
_KINDS = {"b1", "u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"}
_KEYS = ("descr", "fortran_order", "shape")
_CHUNK = 1 << 24
_MAX_BYTES = int(numpy.iinfo(numpy.intp).max)  # 2**31 - 1 under Pyodide (wasm32)
_TOKEN = re.compile(r"""\s*(?:(?P<str>'[^'\\]*'|"[^"\\]*")|(?P<int>\d+)[Ll]?|"""
                    r"""(?P<name>[A-Za-z_]\w*)|(?P<punct>[{}()\[\]:,]))""")
_END = re.compile(r"\s*\Z")


def _tokens(text):
    """Split a header dict literal into (kind, value) tokens; raise on anything else."""
    pos, out = 0, []
    while not _END.match(text, pos):
        m = _TOKEN.match(text, pos)
        if m is None:
            near = text[pos:pos + 20].strip()
            raise ValueError(f"malformed .npy header: unexpected text {near!r} at offset {pos}"
                             f" in {text.strip()!r}")
        kind = m.lastgroup
        val = m.group(kind)
        out.append((kind, val[1:-1] if kind == "str" else int(val) if kind == "int" else val))
        pos = m.end()
    return out


def _parse_header(text):
    """Parse ``{'descr': str, 'fortran_order': bool, 'shape': tuple}`` strictly.

    Args:
        text: the decoded header, padding included.
    Returns:
        dict with exactly the keys descr, fortran_order and shape.
    """
    toks, i, d = _tokens(text), 0, {}

    def bad(what):
        return ValueError(f"malformed .npy header: {what} in {text.strip()!r}")

    def expect(val):
        nonlocal i
        if i >= len(toks) or toks[i] != ("punct", val):
            got = repr(toks[i][1]) if i < len(toks) else "end of header"
            raise bad(f"expected {val!r}, got {got}")
        i += 1

    def value(key):
        nonlocal i
        kind, val = toks[i] if i < len(toks) else ("end", "end of header")
        if kind == "str" or kind == "name":
            if kind == "name" and val not in ("True", "False"):
                raise bad(f"unknown name {val} as value of {key!r}")
            i += 1
            return val if kind == "str" else val == "True"
        if (kind, val) == ("punct", "["):
            raise ValueError(f"structured dtypes are not supported (descr {text.strip()!r})")
        if (kind, val) != ("punct", "("):
            raise bad(f"unexpected {val!r} as value of {key!r}")
        i += 1
        items = []
        while toks[i:i + 1] != [("punct", ")")]:
            if i >= len(toks) or toks[i][0] != "int":
                raise bad(f"tuple for {key!r} must hold non-negative ints, got "
                          f"{toks[i][1] if i < len(toks) else 'end of header'!r}")
            items.append(toks[i][1])
            i += 1
            if toks[i:i + 1] != [("punct", ")")]:
                expect(",")
            elif len(items) == 1 and toks[i - 1] != ("punct", ","):
                raise bad(f"{key!r} is ({items[0]}), an int, not a tuple")
        i += 1
        return tuple(items)

    expect("{")
    while i < len(toks) and toks[i] != ("punct", "}"):
        if toks[i][0] != "str":
            raise bad(f"dict key must be a string, got {toks[i][1]!r}")
        key = toks[i][1]
        if key not in _KEYS:
            raise bad(f"unexpected key {key!r} (allowed: {', '.join(_KEYS)})")
        if key in d:
            raise bad(f"duplicate key {key!r}")
        i += 1
        expect(":")
        d[key] = value(key)
        if i < len(toks) and toks[i] != ("punct", "}"):
            expect(",")
    expect("}")
    if i != len(toks):
        raise bad(f"trailing text after '}}': {toks[i][1]!r}")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise bad(f"missing key(s) {', '.join(map(repr, missing))}")
    for key, typ, what in zip(_KEYS, (str, bool, tuple), ("a string", "True or False", "a tuple")):
        if not isinstance(d[key], typ):
            raise bad(f"{key!r} must be {what}, got {d[key]!r}")
    return d


def _descr_to_dtype(descr):
    """Map a descr such as ``'<f4'`` to a numpy dtype; raise ValueError for anything else."""
    if descr.lstrip("<>|=") in ("O", "O8", "O4"):
        raise ValueError(f"object arrays (descr {descr!r}, pickled data) are not supported:"
                         " pickle is never used")
    order, kind = (descr[0], descr[1:]) if descr[:1] in ("<", ">", "|", "=") else ("=", descr)
    if kind not in _KINDS:
        raise ValueError(f"unknown or unsupported dtype descr {descr!r} (supported: "
                         f"{', '.join(sorted(_KINDS))} with byte order <, >, | or =)")
    return numpy.dtype(("=" if order == "|" else order) + kind)


def _remaining(f):
    """Bytes left in a seekable file object from its position, or None if unknown."""
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return end - pos
    except (AttributeError, OSError, ValueError):
        return None


def _read_exact(f, n, what):
    """Read exactly n bytes (a writable buffer), or raise ValueError naming what was short."""
    avail = _remaining(f)
    if avail is not None and avail < n:
        raise ValueError(f"{what}: expected {n} bytes, got {avail}")
    if avail is not None and hasattr(f, "readinto"):  # size known: fill in place
        buf, got = numpy.empty(n, dtype=numpy.uint8), 0
        with memoryview(buf) as view:
            while got < n:
                k = f.readinto(view[got:])
                if not k:
                    raise ValueError(f"{what}: expected {n} bytes, got {got}")
                got += k
        return buf
    buf = _read_upto(f, n)  # size unknown: grow by chunks, never trusting n for allocation
    if len(buf) < n:
        raise ValueError(f"{what}: expected {n} bytes, got {len(buf)}")
    return buf


def _read_upto(f, n):
    """Read up to n bytes, retrying short reads until n bytes or end of file."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(n - len(buf), _CHUNK))
        if not chunk:
            break
        buf += chunk
    return buf


def _open(source):
    """Return (binary file object, should_close) for a path, bytes-like or file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source), True
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb"), True
    if hasattr(source, "read"):
        return source, False
    raise TypeError(f"expected a path, bytes or binary file object, got {type(source).__name__}")


def read_npy(source):
    """Read one ``.npy`` array (format 1.0, 2.0 or 3.0) without pickle.

    Args:
        source: path (str or PathLike), bytes/bytearray/memoryview, or a binary file
            object positioned at the start of the array (left just after its data).
    Returns:
        numpy.ndarray, native byte order, the file's shape; Fortran layout when the
        file is in Fortran order.
    Raises:
        ValueError: bad magic, unsupported version or dtype, malformed header, short data.

    Example:
        >>> read_npy(open("x.npy", "rb")).shape  # doctest: +SKIP
        (2, 3)
    """
    f, close = _open(source)
    try:
        magic = bytes(_read_upto(f, 8))
        if len(magic) < 8 or magic[:6] != MAGIC_PREFIX:
            raise ValueError(f"not a .npy file: expected magic {MAGIC_PREFIX!r} + 2 version bytes,"
                             f" got {magic!r}")
        version = (magic[6], magic[7])
        if version not in _VERSIONS:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}"
                             " (supported: 1.0, 2.0, 3.0)")
        fmt, encoding = _VERSIONS[version]
        size_bytes = _read_exact(f, struct.calcsize(fmt), "truncated .npy header length")
        hlen = struct.unpack(fmt, size_bytes)[0]
        raw = _read_exact(f, hlen, f"header length {hlen} goes beyond the end of the file")
        try:
            text = bytes(raw).decode(encoding)
        except UnicodeDecodeError as e:
            raise ValueError(f"malformed .npy header: not valid {encoding} ({e})") from None
        header = _parse_header(text)
        dtype = _descr_to_dtype(header["descr"])
        shape = header["shape"]
        count, span = 1, dtype.itemsize  # span: numpy's size limit ignores zero dims
        for s in shape:
            count, span = count * s, span * max(s, 1)
        if len(shape) > 64 or span > _MAX_BYTES:
            raise ValueError(f"malformed .npy header: shape {shape} of {header['descr']!r}"
                             f" exceeds numpy's limits (64 dims, {_MAX_BYTES} bytes)")
        nbytes = count * dtype.itemsize
        data = _read_exact(f, nbytes, f"array data of shape {shape} x {dtype.itemsize}-byte"
                                      f" {header['descr']!r} is truncated")
    finally:
        if close:
            f.close()
    arr = numpy.frombuffer(data, dtype=dtype, count=count)
    if not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    if header["fortran_order"]:
        return arr.reshape(shape[::-1]).T
    return arr.reshape(shape)


def _header_bytes(descr, fortran_order, shape, version):
    """Build magic + length + padded header exactly as ``numpy.lib.format`` does."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran_order!r}, 'shape': {shape!r}, }}"
    if shape:
        text += " " * (GROWTH_AXIS_MAX_DIGITS - len(repr(shape[-1 if fortran_order else 0])))
    errors = []
    for v in [version] if version else list(_VERSIONS):
        fmt, encoding = _VERSIONS[v]
        try:
            body = text.encode(encoding)
        except UnicodeEncodeError:
            errors.append(f"{v[0]}.{v[1]}: header is not {encoding}")
            continue
        hlen = len(body) + 1
        padlen = ARRAY_ALIGN - ((8 + struct.calcsize(fmt) + hlen) % ARRAY_ALIGN)
        try:
            prefix = MAGIC_PREFIX + bytes(v) + struct.pack(fmt, hlen + padlen)
        except struct.error:
            errors.append(f"{v[0]}.{v[1]}: header length {hlen + padlen} too big")
            continue
        return prefix + body + b" " * padlen + b"\n"
    raise ValueError(f"cannot write .npy header ({'; '.join(errors)})")


def write_npy(dest, array, version=None, fortran_order=None):
    """Write one array as ``.npy``, byte for byte as ``numpy.save`` would.

    Args:
        dest: path (str or PathLike; no suffix is added) or a binary file object.
        array: numpy array (or array-like) of a supported numeric or bool dtype.
        version: None (smallest that fits), (1, 0), (2, 0) or (3, 0) (or 1, 2, 3).
        fortran_order: None (Fortran only if the array is F- but not C-contiguous,
            like numpy), True or False.

    Example:
        >>> write_npy("w.npy", numpy.eye(2, dtype=numpy.float32))  # doctest: +SKIP
    """
    array = numpy.asarray(array)
    descr = array.dtype.str
    if array.dtype.names is not None:
        raise ValueError(f"structured dtypes are not supported, got {array.dtype}")
    _descr_to_dtype(descr)
    if isinstance(version, int):
        version = (version, 0)
    if version is not None and tuple(version) not in _VERSIONS:
        raise ValueError(f"unsupported .npy format version {version} (use (1, 0), (2, 0), (3, 0))")
    if fortran_order is None:
        fortran_order = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    header = _header_bytes(descr, bool(fortran_order), array.shape,
                           tuple(version) if version else None)
    flat = numpy.ascontiguousarray(array.T if fortran_order else array).reshape(-1)
    f, close = (open(dest, "wb"), True) if isinstance(dest, (str, os.PathLike)) else (dest, False)
    try:
        f.write(header)
        f.write(memoryview(flat.view(numpy.uint8)))
    finally:
        if close:
            f.close()


def read_npz(source):
    """Read every array of a ``.npz`` archive (plain or compressed).

    Args:
        source: path, bytes-like, or a binary seekable file object.
    Returns:
        dict mapping member name (without ``.npy``) to numpy.ndarray, in archive order.
    Raises:
        ValueError: not a zip, a member not ``.npy``, a corrupt member (named).

    Example:
        >>> sorted(read_npz("w.npz"))  # doctest: +SKIP
        ['b', 'w']
    """
    f, close = _open(source)
    try:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error,
                NotImplementedError) as e:
            try:
                f.seek(0)
                head = f.read(8)
            except (OSError, ValueError, AttributeError):
                head = b"?"
            raise ValueError(f"not an .npz (zip) archive ({e}); first bytes {head!r}") from None
        out = {}
        with zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"npz member {info.filename!r} is not a .npy file")
                key = info.filename[:-4]
                if key in out:
                    raise ValueError(f"npz member {info.filename!r} appears twice")
                try:
                    out[key] = read_npy(zf.read(info))
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                        RuntimeError, OSError, ValueError) as e:  # RuntimeError: encrypted
                    raise ValueError(f"npz member {info.filename!r}: {e}") from None
        return out
    finally:
        if close:
            f.close()


def write_npz(dest, arrays, compressed=False):
    """Write a dict of arrays as ``.npz`` (each as ``name.npy``), as ``numpy.savez`` does.

    Args:
        dest: path (no suffix is added) or a binary file object.
        arrays: dict mapping str names to arrays.
        compressed: deflate members, as ``numpy.savez_compressed``.

    Example:
        >>> write_npz("w.npz", {"w": numpy.ones((2, 2)), "b": numpy.zeros(2)})  # doctest: +SKIP
    """
    for name in arrays:
        if not isinstance(name, str) or not name:
            raise ValueError(f"npz member names must be non-empty str, got {name!r}")
    mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(dest, mode="w", compression=mode, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                write_npy(member, arr)
