"""Image folders: ``root/<class_name>/*.png|jpg`` read into a blob with labels.

Classes are the sub-folders of ``root`` sorted by name; class ``k`` (0-based) is the k-th name.
Files within a class are read in name order. Images come back in the original's blob layout,
numpy shape (h, w, c, n), uint8, Fortran-ordered (h fastest), ``images[y, x, :, i]`` being row
``y``, column ``x`` of image ``i``; labels are int32 of shape (1, n) holding 0-based class ids.

Needs Pillow, imported only when a folder is read: ``pip install sukiyaki[images]``.

Example:
    >>> from sukiyaki.data.folders import load_image_folder
    >>> x, t, classes = load_image_folder("flowers/train", size=(64, 64))   # doctest: +SKIP
    >>> x.shape, classes[:2]                                                 # doctest: +SKIP
    ((64, 64, 3, 1200), ['daisy', 'rose'])
"""

from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_MODES = {1: "L", 3: "RGB"}


def _pil_image():
    """Import Pillow's Image module, or say how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image folders needs Pillow: pip install sukiyaki[images] "
                          "(or pip install pillow)") from None
    return Image


def list_image_folder(root, extensions=IMAGE_EXTENSIONS):
    """List an image folder's classes and files without reading any image.

    Args:
        root: folder whose sub-folders are the classes.
        extensions: file name endings accepted (case-insensitive).

    Returns:
        (classes, files): class names sorted, and a list of (path, class_id) in class then name
        order. Hidden entries (starting with '.') are skipped.

    Example:
        >>> classes, files = list_image_folder("digits")    # doctest: +SKIP
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder '{root}' is not a folder")
    classes = sorted(d.name for d in root.iterdir()
                     if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder '{root}': no class sub-folders found")
    exts = tuple(e.lower() for e in extensions)
    files = []
    for k, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir(), key=lambda p: p.name):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in exts:
                files.append((f, k))
    if not files:
        raise ValueError(f"image folder '{root}': no images with extensions {list(exts)} "
                         f"in its {len(classes)} class folders")
    return classes, files


def load_image_folder(root, size, channels=3, resize=True, extensions=IMAGE_EXTENSIONS):
    """Read every image of an image folder into one blob.

    Args:
        root: folder with one sub-folder per class.
        size: (h, w) of the output images.
        channels: 3 (RGB) or 1 (grayscale); images are converted to that mode.
        resize: resize images of another size to ``size`` (bilinear); when False, an image of
            another size is an error naming the file.
        extensions: file name endings accepted (case-insensitive).

    Returns:
        (images, labels, classes): uint8 (h, w, channels, n) Fortran-ordered; int32 (1, n)
        0-based class ids; the list of class names (index = class id).

    Raises:
        ImportError: Pillow is not installed.
        ValueError: bad size or channels, an unreadable image, or (resize=False) a size mismatch.

    Example:
        >>> x, t, classes = load_image_folder("digits", size=(28, 28), channels=1)  # doctest: +SKIP
    """
    if len(size) != 2 or min(int(s) for s in size) <= 0:
        raise ValueError(f"load_image_folder: size must be (h, w) with positive values, "
                         f"got {size!r}")
    if channels not in _MODES:
        raise ValueError(f"load_image_folder: channels must be 1 or 3, got {channels!r}")
    h, w = int(size[0]), int(size[1])
    Image = _pil_image()
    classes, files = list_image_folder(root, extensions)
    images = np.empty((h, w, channels, len(files)), dtype=np.uint8, order="F")
    labels = np.empty((1, len(files)), dtype=np.int32)
    for i, (path, k) in enumerate(files):
        try:
            with Image.open(path) as im:
                im = im.convert(_MODES[channels])
                if im.size != (w, h):
                    if not resize:
                        raise ValueError(f"image '{path}': size (h, w) = "
                                         f"({im.size[1]}, {im.size[0]}), expected ({h}, {w})")
                    im = im.resize((w, h), getattr(Image, "Resampling", Image).BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except ValueError:
            raise
        except OSError as e:
            raise ValueError(f"image '{path}': cannot be read ({e})") from None
        images[:, :, :, i] = arr.reshape(h, w, channels)
        labels[0, i] = k
    return images, labels, classes
