"""CIFAR-10, binary version: read ``data_batch_1..5.bin`` and ``test_batch.bin`` into blobs.

Each record of a batch file is 1 label byte followed by 3072 pixel bytes: the red, green and blue
planes in turn, each 32 rows of 32 bytes. Images come back in the original's blob layout, numpy
shape (h, w, c, n) = (32, 32, 3, n), uint8, Fortran-ordered (h fastest), with
``images[y, x, :, i]`` the RGB value at row ``y``, column ``x`` of image ``i``. Labels are int32
of shape (1, n) holding 0-based class ids (0 airplane .. 9 truck, see :data:`CIFAR10_CLASSES`).

Example:
    >>> from sukiyaki.data.cifar import load_cifar10
    >>> x, t = load_cifar10("cifar-10-batches-bin", "test")    # doctest: +SKIP
    >>> x.shape, t.shape                                       # doctest: +SKIP
    ((32, 32, 3, 10000), (1, 10000))
"""

import os
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


def read_cifar10_batch(path_or_bytes, name=None):
    """Read one CIFAR-10 binary batch file.

    Args:
        path_or_bytes: a path (str or PathLike) or the file's bytes.
        name: the name used in error messages (default: the path, or ``<bytes>``).

    Returns:
        (images, labels): uint8 (32, 32, 3, n) Fortran-ordered and int32 (1, n).

    Raises:
        ValueError: the length is not a positive multiple of 3073 bytes, or a label is not
            below 10; the message names the file (and the record index for a bad label).

    Example:
        >>> rec = bytes([3]) + bytes(3072)
        >>> x, t = read_cifar10_batch(rec)
        >>> x.shape, t.tolist()
        ((32, 32, 3, 1), [[3]])
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        raw, name = bytes(path_or_bytes), name or "<bytes>"
    else:
        with open(path_or_bytes, "rb") as f:
            raw = f.read()
        name = name or os.fspath(path_or_bytes)
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise ValueError(f"CIFAR-10 file '{name}': length {len(raw)} bytes is not a positive "
                         f"multiple of the record size {RECORD_BYTES}")
    recs = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = recs[:, 0]
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"CIFAR-10 file '{name}': record {i} has label {int(labels[i])}, "
                         f"expected 0..{len(CIFAR10_CLASSES) - 1}")
    # record pixels: (n, c, row, col) -> (row, col, c, n); Fortran order puts row fastest.
    pixels = recs[:, 1:].reshape(-1, 3, 32, 32)
    images = np.asfortranarray(pixels.transpose(2, 3, 1, 0))
    return images, labels.astype(np.int32).reshape(1, -1)


def _resolve_folder(path):
    """Accept the extracted folder itself or its parent holding ``cifar-10-batches-bin``."""
    p = Path(path).expanduser()
    if (p / "cifar-10-batches-bin").is_dir():
        return p / "cifar-10-batches-bin"
    if not p.is_dir():
        raise FileNotFoundError(f"load_cifar10: '{path}' is not a folder")
    return p


def load_cifar10(path, split="train"):
    """Load the CIFAR-10 training or test set (binary version) from a folder.

    Args:
        path: folder with ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``
            (the extracted ``cifar-10-batches-bin``, or its parent). For ``split="train"``,
            batches present are read in order; at least ``data_batch_1.bin`` is required.
        split: ``"train"`` or ``"test"``.

    Returns:
        (images, labels): uint8 (32, 32, 3, n) Fortran-ordered, h = image row; int32 (1, n)
        0-based class ids.

    Example:
        >>> x, t = load_cifar10("~/data/cifar-10-batches-bin", "train")   # doctest: +SKIP
        >>> x.shape                                                        # doctest: +SKIP
        (32, 32, 3, 50000)
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    folder = _resolve_folder(path)
    names = CIFAR10_FILES[split]
    files = [folder / n for n in names if (folder / n).is_file()]
    if not files or files[0].name != names[0]:
        raise FileNotFoundError(f"load_cifar10: '{names[0]}' not found in '{folder}'")
    parts = [read_cifar10_batch(f) for f in files]
    if len(parts) == 1:
        return parts[0]
    images = np.concatenate([p[0] for p in parts], axis=3)
    labels = np.concatenate([p[1] for p in parts], axis=1)
    return np.asfortranarray(images), labels
