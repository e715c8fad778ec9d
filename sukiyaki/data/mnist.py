"""MNIST: an IDX file reader, the bundled 10,000-digit sample, full MNIST from a folder.

Images come back in the original's blob layout: a numpy array of shape (h, w, c, n) =
(28, 28, 1, n), uint8, Fortran-ordered (the original's column-major memory, h fastest), where
``images[y, x, 0, i]`` is row ``y``, column ``x`` of digit ``i``. Labels are an int32 array of
shape (1, n) holding 0-based class ids (the digit itself, 0..9).

Example:
    >>> from sukiyaki.data.mnist import load_mnist
    >>> images, labels = load_mnist(split="test")     # bundled sample, offline
    >>> images.shape, labels.shape
    ((28, 28, 1, 2000), (1, 2000))
"""

import gzip
import os
import struct
from importlib import resources
from pathlib import Path

import numpy as np

# IDX type codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Where download_mnist fetches from by default; any mirror with the four standard .gz names works.
DEFAULT_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

_SAMPLE_PACKAGE = "sukiyaki.data"
_SAMPLE_FOLDER = "mnist10k"


def _read_source(path_or_bytes):
    """Return (raw bytes, name for messages) from a path, bytes or a binary file object."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    if hasattr(path_or_bytes, "read"):
        name = getattr(path_or_bytes, "name", "<stream>")
        return path_or_bytes.read(), str(name)
    with open(path_or_bytes, "rb") as f:
        return f.read(), os.fspath(path_or_bytes)


def read_idx(path_or_bytes, name=None):
    """Read one IDX file (gzip-compressed or not) into a numpy array.

    Compression is detected from the gzip magic bytes, not from the file name. The header is
    checked: two zero bytes, a known type code, a dimension count, then the dimensions as
    big-endian uint32; the data that follows must be exactly prod(dims) * itemsize bytes.

    Args:
        path_or_bytes: a path (str or PathLike), the file's bytes, or a binary file object.
        name: the name used in error messages (default: the path, or ``<bytes>``).

    Returns:
        numpy array with the file's dimensions in file order (for MNIST images: (n, rows, cols)),
        in native byte order.

    Raises:
        ValueError: bad magic, unknown type code, zero dimensions, or a data length that does
            not match the header; the message names the file and the byte counts.

    Example:
        >>> arr = read_idx("train-labels-idx1-ubyte.gz")   # doctest: +SKIP
        >>> arr.shape, arr.dtype                              # doctest: +SKIP
        ((60000,), dtype('uint8'))
    """
    raw, src_name = _read_source(path_or_bytes)
    name = name or src_name
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"IDX file '{name}': corrupt gzip stream ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"IDX file '{name}': expected at least 4 header bytes, got {len(raw)}")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"IDX file '{name}': bad magic {raw[:4].hex()}, expected 0000<type><ndims>")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(f"IDX file '{name}': unknown data type code 0x{code:02x} "
                         f"(known: {known})")
    if ndim == 0:
        raise ValueError(f"IDX file '{name}': number of dimensions must be positive, got 0")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"IDX file '{name}': header needs {header_len} bytes for {ndim} "
                         f"dimensions, got {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        raise ValueError(f"IDX file '{name}': dims {list(dims)} of {dtype.name} need "
                         f"{expected} data bytes, got {actual}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _to_blob(images, labels, name):
    """Turn IDX arrays (n, h, w), (n,) into a Fortran uint8 (h, w, 1, n) blob, int32 (1, n)."""
    if images.ndim != 3:
        raise ValueError(f"MNIST images '{name}': expected 3 dimensions (n, rows, cols), "
                         f"got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"MNIST labels for '{name}': expected shape ({images.shape[0]},), "
                         f"got {labels.shape}")
    blob = np.asfortranarray(images.transpose(1, 2, 0)[:, :, None, :].astype(np.uint8))
    return blob, labels.astype(np.int32).reshape(1, -1)


def _find(folder, base):
    """Return the path of ``base`` or ``base.gz`` in folder (also the '.' variant of the name)."""
    candidates = [base, base + ".gz", base.replace("-idx", ".idx"),
                  base.replace("-idx", ".idx") + ".gz"]
    for cand in candidates:
        p = Path(folder) / cand
        if p.is_file():
            return p
    raise FileNotFoundError(f"MNIST file '{base}' (or '{base}.gz') not found in '{folder}'")


def load_mnist(path=None, split="train"):
    """Load MNIST images and labels in blob layout.

    Args:
        path: None for the bundled sample (10,000 real MNIST digits: 8,000 train and
            2,000 test, shipped with the package so training works offline), or a folder
            holding the four standard files (``train-images-idx3-ubyte`` etc., gzipped or not),
            e.g. full MNIST (60,000 / 10,000).
        split: ``"train"`` or ``"test"``.

    Returns:
        (images, labels): images uint8 of shape (28, 28, 1, n), Fortran-ordered, h = image row;
        labels int32 of shape (1, n), 0-based class ids (0..9).

    Example:
        >>> x, t = load_mnist()
        >>> x.shape, int(t.max())
        ((28, 28, 1, 8000), 9)
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    img_base, lbl_base = MNIST_FILES[split]
    if path is None:
        folder = resources.files(_SAMPLE_PACKAGE).joinpath(_SAMPLE_FOLDER)
        img_src = folder.joinpath(img_base + ".gz")
        lbl_src = folder.joinpath(lbl_base + ".gz")
        images = read_idx(img_src.read_bytes(), name=f"<bundled>/{img_base}.gz")
        labels = read_idx(lbl_src.read_bytes(), name=f"<bundled>/{lbl_base}.gz")
        name = f"<bundled>/{img_base}.gz"
    else:
        if not Path(path).is_dir():
            raise FileNotFoundError(f"load_mnist: '{path}' is not a folder")
        img_path, lbl_path = _find(path, img_base), _find(path, lbl_base)
        images, labels = read_idx(img_path), read_idx(lbl_path)
        name = str(img_path)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"MNIST labels for '{name}': expected values 0..9, got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return _to_blob(images, labels, name)


def download_mnist(dest, url=None, overwrite=False, timeout=60):
    """Download the four standard MNIST .gz files into a folder (needs network access).

    Args:
        dest: destination folder (created if missing).
        url: base URL ending in '/', holding the four standard file names
            (default :data:`DEFAULT_MNIST_URL`; the environment variable ``SUKIYAKI_MNIST_URL``
            overrides the default).
        overwrite: download again even where a file is present.
        timeout: seconds per request.

    Returns:
        pathlib.Path of the folder, ready for ``load_mnist(dest)``.

    Raises:
        ConnectionError: the server cannot be reached (offline); the message names the URL.

    Example:
        >>> folder = download_mnist("~/data/mnist")            # doctest: +SKIP
        >>> x, t = load_mnist(folder, "train")                 # doctest: +SKIP
    """
    import urllib.error
    import urllib.request

    base = url or os.environ.get("SUKIYAKI_MNIST_URL") or DEFAULT_MNIST_URL
    if not base.endswith("/"):
        base += "/"
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        for fname in MNIST_FILES[split]:
            target = dest / (fname + ".gz")
            if target.exists() and not overwrite:
                continue
            src = base + fname + ".gz"
            try:
                with urllib.request.urlopen(src, timeout=timeout) as resp:
                    data = resp.read()
            except (urllib.error.URLError, OSError) as e:
                raise ConnectionError(
                    f"download_mnist: cannot fetch '{src}' ({e}); are you offline? Copy the "
                    f"four MNIST files into '{dest}' by hand, or pass url= a reachable mirror"
                ) from None
            read_idx(data, name=src)  # validate before writing
            tmp = target.with_suffix(".gz.part")
            tmp.write_bytes(data)
            tmp.replace(target)
    return dest
