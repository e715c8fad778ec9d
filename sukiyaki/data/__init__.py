"""Data sets and input pipeline: MNIST, CIFAR-10, image folders, augmentation, mini-batches.

Every loader returns images in the original's blob layout, numpy shape (h, w, c, n) (uint8,
Fortran-ordered: the original's column-major memory, h fastest; ``images[y, x, :, i]`` is row
``y``, column ``x`` of sample ``i``) and labels as int32 arrays of shape (1, n) holding 0-based
class ids. Pure Python + numpy (imports under Pyodide); Pillow is needed only for image folders.

Example:
    >>> from sukiyaki.data import load_mnist, BatchIterator
    >>> from sukiyaki.data.augment import augment
    >>> x, t = load_mnist(split="train")                 # bundled 8,000-digit sample
    >>> it = BatchIterator(x, t, batch_size=64, seed=0)
    >>> xb, tb = it.next_batch()
    >>> augment(xb, {"out_shape": [28, 28], "scale": 1 / 256, "input_klass": "uint8"}).shape
    (28, 28, 1, 64)
"""

# ``augment`` (the function) is not re-exported: it would hide the submodule of that name.
from sukiyaki.data.augment import load_mean, normalize_params
from sukiyaki.data.cifar import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch
from sukiyaki.data.folders import list_image_folder, load_image_folder
from sukiyaki.data.loader import BatchIterator
from sukiyaki.data.mnist import download_mnist, load_mnist, read_idx

__all__ = [
    "BatchIterator", "CIFAR10_CLASSES", "download_mnist", "list_image_folder",
    "load_cifar10", "load_image_folder", "load_mean", "load_mnist", "normalize_params",
    "read_cifar10_batch", "read_idx",
]
