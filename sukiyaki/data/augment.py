"""Data augmentation with the semantics of the original's ``data_augmentation`` layer.

For each image ``i`` of an (in_h, in_w, c, n) batch, the original (Sukiyaki2,
``src/layers/data_augmentation_layer.ts``, CPU path) computed, in single precision::

    img = single(batch[:, :, :, i])
    if mean: img = img - mean            # mean is (in_h, in_w, c): the full input size
    img = img * scale
    top[:, :, :, i] = img[t : t+out_h, cols, :]

where the window's top-left corner (t, l) is uniform over all positions with ``random_crop``
(both ends included), else the centre ``((in_h-out_h)//2, (in_w-out_w)//2)``; and
``cols = l .. l+out_w-1``, reversed (a horizontal mirror of that same window) with probability
1/2 when ``random_flip``. Because the mean is subtracted before cropping, the mean is cropped
and mirrored together with the image. The output is float32 (out_h, out_w, c, n).

Differences from the original, on purpose: the default ``scale`` is 1.0 (the original's 0.0
silently zeroed the output); ``train=False`` turns off the random crop and flip (the original
used a separate layer instance per phase for that); randomness comes from a numpy Generator so
a seed reproduces a batch. (The original's OpenCL kernel mirrored a different window than its
CPU path; the CPU path is the one followed here.)

Example:
    >>> import numpy as np
    >>> x = np.arange(4 * 5, dtype=np.float32).reshape(4, 5, 1, 1)
    >>> augment(x, {"out_shape": [2, 3], "scale": 2.0})[:, :, 0, 0]
    array([[12., 14., 16.],
           [22., 24., 26.]], dtype=float32)
"""

from pathlib import Path

import numpy as np

_KLASS_DTYPES = {"single": np.dtype(np.float32), "uint8": np.dtype(np.uint8)}
_KNOWN_KEYS = {"out_shape", "scale", "mean", "mean_order", "random_crop", "random_flip",
               "input_klass"}


def load_mean(mean, order="hwc"):
    """Load a mean image for subtraction, as float32 (h, w, c).

    Args:
        mean: an array, or the path of a ``.npy`` file.
        order: axis order of the given array: ``"hwc"`` (default; also accepts a trailing n=1
            axis) or ``"chw"``, the layout of the original's ``imagenet_mean.npy`` files, which
            its training script permuted to (h, w, c).

    Returns:
        float32 array of 3 dimensions (h, w, c); size-1 axes broadcast (e.g. (1, 1, 3) is a
        per-channel mean).

    Example:
        >>> load_mean(np.zeros((3, 8, 8)), order="chw").shape
        (8, 8, 3)
    """
    if isinstance(mean, (str, Path)):
        try:
            mean = np.load(Path(mean).expanduser(), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"data_augmentation: cannot read the mean file {str(mean)!r} ({exc})") from None
    try:
        m = np.asarray(mean, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"data_augmentation: mean must be an array of numbers or a .npy path, got {mean!r}") from None
    if order == "chw":
        if m.ndim != 3:
            raise ValueError(f"data_augmentation: a 'chw' mean needs 3 dimensions, "
                             f"got shape {m.shape}")
        m = m.transpose(1, 2, 0)
    elif order == "hwc":
        if m.ndim == 4 and m.shape[3] == 1:
            m = m[:, :, :, 0]
        if m.ndim == 2:
            m = m[:, :, None]
        if m.ndim != 3:
            raise ValueError(f"data_augmentation: mean must have shape (h, w, c) or "
                             f"(h, w, c, 1), got {m.shape}")
    else:
        raise ValueError(f"data_augmentation: mean_order must be 'hwc' or 'chw', got {order!r}")
    return m


def normalize_params(params):
    """Validate augmentation parameters and fill in defaults.

    Args:
        params: dict with ``out_shape`` [h, w] (required), ``scale`` (default 1.0), ``mean``
            (None, array or .npy path; default None), ``mean_order`` ("hwc" or "chw"),
            ``random_crop`` and ``random_flip`` (default False), ``input_klass`` ("single"
            for float32 input, "uint8", or None to accept either; default "single").

    Returns:
        a new dict with every key present and ``mean`` loaded as float32 (h, w, c) or None
        (so ``mean_order`` becomes "hwc"); normalizing it again gives the same dict.

    Example:
        >>> normalize_params({"out_shape": [24, 24]})["scale"]
        1.0
    """
    unknown = set(params) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"data_augmentation: unknown parameters {sorted(unknown)}; "
                         f"known: {sorted(_KNOWN_KEYS)}")
    if "out_shape" not in params:
        raise ValueError("data_augmentation: parameter 'out_shape' [h, w] is required")
    out_shape = params["out_shape"]
    out_shape = list(out_shape) if isinstance(out_shape, (list, tuple)) else [out_shape]
    if len(out_shape) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0
                                  for s in out_shape):
        raise ValueError(f"data_augmentation: out_shape must be [h, w] with positive "
                         f"integers, got {params['out_shape']!r}")
    klass = params.get("input_klass", "single")
    if klass is not None and (not isinstance(klass, str) or klass not in _KLASS_DTYPES):
        raise ValueError(f"data_augmentation: input_klass must be 'single' or 'uint8', "
                         f"got {klass!r}")
    for key in ("random_crop", "random_flip"):
        if not isinstance(params.get(key, False), (bool, np.bool_)):
            raise ValueError(f"data_augmentation: {key} must be true or false, got {params[key]!r}")
    scale = params.get("scale", 1.0)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating))
                              or not np.isfinite(scale)):
        raise ValueError(f"data_augmentation: scale must be a finite number, got {scale!r}")
    order = params.get("mean_order", "hwc")
    mean = params.get("mean")
    return {
        "out_shape": [int(s) for s in out_shape],
        "scale": float(1.0 if scale is None else scale),
        "mean": None if mean is None else load_mean(mean, order),
        "mean_order": "hwc",  # the loaded mean is (h, w, c): normalizing again is a no-op
        "random_crop": bool(params.get("random_crop", False)),
        "random_flip": bool(params.get("random_flip", False)),
        "input_klass": klass,
    }


def _as_generator(rng):
    """Turn None, an int seed or a numpy Generator into a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def augment(batch, params, rng=None, train=True):
    """Crop, mirror, subtract the mean and scale a batch of images, as the original layer did.

    Args:
        batch: numpy array (in_h, in_w, c, n) (trailing axes may be omitted: (h, w) or
            (h, w, c)), float32 or uint8 as ``params["input_klass"]`` says.
        params: augmentation parameters, see :func:`normalize_params` (normalize once and
            pass the result to avoid reloading a mean file per batch).
        rng: numpy Generator, int seed or None; used only for random crop or flip.
        train: when False, crop at the centre and never flip, whatever the parameters say.

    Returns:
        float32 array (out_h, out_w, c, n), Fortran-ordered.

    Raises:
        ValueError: the input's dtype does not match ``input_klass``, the output is larger than
            the input, or the mean's shape does not fit the input.

    Example:
        >>> x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 8), dtype=np.uint8)
        >>> p = {"out_shape": [28, 28], "scale": 1 / 255, "random_crop": True,
        ...      "random_flip": True, "input_klass": "uint8"}
        >>> augment(x, p, rng=1).shape
        (28, 28, 3, 8)
    """
    p = normalize_params(params)
    x = np.asarray(batch)
    if not 2 <= x.ndim <= 4:
        raise ValueError(f"data_augmentation: input must be (h, w, c, n), got shape {x.shape}")
    x = x.reshape(x.shape + (1,) * (4 - x.ndim))
    klass = p["input_klass"]
    if klass is not None and x.dtype != _KLASS_DTYPES[klass]:
        raise ValueError(f"data_augmentation: input_klass '{klass}' expects "
                         f"{_KLASS_DTYPES[klass].name} input, got {x.dtype.name}")
    in_h, in_w, c, n = x.shape
    out_h, out_w = p["out_shape"]
    if out_h > in_h or out_w > in_w:
        raise ValueError(f"data_augmentation: out_shape {[out_h, out_w]} is larger than the "
                         f"input (h, w) = ({in_h}, {in_w})")
    mean = p["mean"]
    if mean is not None:
        try:
            mean = np.broadcast_to(mean, (in_h, in_w, c))
        except ValueError:
            raise ValueError(f"data_augmentation: mean of shape {p['mean'].shape} does not "
                             f"fit input (h, w, c) = ({in_h}, {in_w}, {c})") from None

    gen = None
    if train and (p["random_crop"] or p["random_flip"]):
        gen = _as_generator(rng)
    if train and p["random_crop"]:
        tops = gen.integers(0, in_h - out_h + 1, size=n)
        lefts = gen.integers(0, in_w - out_w + 1, size=n)
    else:
        tops = np.full(n, (in_h - out_h) // 2)
        lefts = np.full(n, (in_w - out_w) // 2)
    if train and p["random_flip"]:
        flips = gen.random(n) > 0.5
    else:
        flips = np.zeros(n, dtype=bool)

    rows = (tops[:, None] + np.arange(out_h))[:, :, None]          # (n, out_h, 1)
    cols = lefts[:, None] + np.arange(out_w)                       # (n, out_w)
    cols = np.where(flips[:, None], cols[:, ::-1], cols)[:, None, :]  # (n, 1, out_w)
    picked = x.transpose(3, 0, 1, 2)[np.arange(n)[:, None, None], rows, cols]  # (n, oh, ow, c)
    out = picked.astype(np.float32)
    if mean is not None:
        out -= mean[rows, cols]
    scale = p["scale"]
    if float(np.float32(scale)) == scale:
        # float32 * float32 rounds once, like the original's double product rounded to single.
        out *= np.float32(scale)
    else:
        out = (out.astype(np.float64) * scale).astype(np.float32)
    return np.asfortranarray(out.transpose(1, 2, 3, 0))
