"""Data layers and data_augmentation.

A data layer takes the network input ``batch`` (0-based sample indices, any int vector,
kept on the host) and outputs the images of those samples (h, w, c, n) and their labels
(1, n), int32, 0-based, uploaded to the network's device: the only transfers of a
training step. Its source can be replaced without touching the definition
(``Net(..., data_sources={layer_name: (images, labels)})`` or ``layer.set_source``), so the
original's definitions, whose ``blob_data`` layers name files of the authors' machines,
load unchanged. Labels are checked when a source is set (integers, not negative) and
against the class count of the layers that read them when the network is planned.

``data_augmentation`` runs on the device; its random crops and flips are drawn from the
counter-based generator (see :mod:`sukiyaki.nn.context`), per sample.
"""

import json
import os

import numpy as np

from sukiyaki.nn.layer import REQUIRED, BlobSpec, Layer, register_layer
from sukiyaki.nn.ops import I32
from sukiyaki.nn.shapes import CropSpec


def check_labels(labels, where):
    """Labels as int32 (1, n), after checking they are integers >= 0 (ValueError naming where)."""
    a = np.asarray(labels)
    if a.dtype.kind not in "iuf" or a.dtype.kind == "b":
        raise ValueError(f"{where}: labels must be integers, got {a.dtype}")
    a = a.reshape(-1)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.trunc(a))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{where}: label {float(a[i])!r} (sample {i}) is not an integer")
    if a.size and a.min() < 0:
        i = int(np.argmin(a))
        raise ValueError(f"{where}: label {a[i]:g} (sample {i}) is negative (labels are 0-based class ids)")
    if a.size and a.max() >= 2 ** 31:
        raise ValueError(f"{where}: label {a.max():g} does not fit int32")
    return a.astype(np.int32).reshape(1, -1)


class DataLayer(Layer):
    """Base of the layers that read samples from a source."""

    n_outputs = 2
    is_data = True
    keeps_inputs = False

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.images = None
        self.labels = None
        self.label_readers = {}  # layer name -> classes it accepts (set when a network is planned)

    def set_source(self, images, labels):
        """Use these arrays: images (h, w, c, n) and labels (n,) or (1, n), integer 0-based class ids."""
        images = np.asarray(images)
        if images.dtype.kind not in "biuf":
            raise self.error(f"images must be numbers, got {images.dtype}")
        labels = check_labels(labels, f"{self.type_name} '{self.name}'")
        if images.ndim < 2:
            raise self.error(f"images must be (h, w, c, n), got shape {images.shape}")
        images = images.reshape(images.shape + (1,) * (4 - images.ndim)) if images.ndim < 4 else images
        if images.shape[-1] != labels.shape[1]:
            raise self.error(f"{images.shape[-1]} images but {labels.shape[1]} labels")
        self._check_label_range(labels, self.label_readers)
        # column-major once, so that a batch (the last index) is whole samples copied as blocks
        self.images, self.labels = np.asfortranarray(images), labels

    def expect_labels_below(self, classes, reader):
        """Record that layer ``reader`` takes this layer's labels as ids of ``classes`` classes;
        a loaded source is checked now, a later one when it is set."""
        if self.labels is not None:
            self._check_label_range(self.labels, {reader: classes})
        self.label_readers[reader] = classes

    def _check_label_range(self, labels, readers):
        if not readers or not labels.size:
            return
        top = int(labels.max())
        for reader, classes in readers.items():
            if top >= classes:
                i = int(np.argmax(labels.reshape(-1)))
                raise self.error(f"label {top} (sample {i}) is out of range for the {classes} classes of "
                                 f"layer '{reader}' (labels are 0-based)")

    def load_source(self):
        """Read the source named by the parameters (called lazily on first use)."""
        raise self.error("has no data source; give one with data_sources= or set_source()", RuntimeError)

    def _ensure(self):
        if self.images is None:
            self.load_source()

    def sample_spec(self):
        """BlobSpec of one image."""
        self._ensure()
        return BlobSpec(self.images.shape[:3], "uint8" if self.images.dtype == np.uint8 else "single")

    def __len__(self):
        self._ensure()
        return self.images.shape[-1]

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        return [self.sample_spec(), BlobSpec((1,), "int32")]

    def forward(self, inputs, ctx):
        """inputs[0]: host integer sample indices (a numpy array or list; a Matrix is read back)."""
        self._ensure()
        idx = inputs[0]
        idx = np.asarray(idx.to_numpy() if hasattr(idx, "to_numpy") else idx).reshape(-1)
        if idx.dtype.kind == "f":
            if np.any(idx != np.trunc(idx)):
                raise self.error("batch indices must be integers")
        idx = idx.astype(np.int64)
        n = self.images.shape[-1]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise self.error(f"batch index {int(idx.max() if idx.max() >= n else idx.min())} out of range for {n} samples (0-based)")
        ctx.set_sample_ids(idx)
        ops = ctx.ops
        x = np.asfortranarray(self.images[..., idx])
        t = self.labels[:, idx]
        klass = "uint8" if x.dtype == np.uint8 else "single"
        if klass == "single" and x.dtype != np.float32:
            x = x.astype(np.float32)
        return [ops.wrap(ops.upload(x), klass), ops.wrap(ops.upload(t), "int32")]

    def backward(self, inputs, outputs, deltas, ctx):
        return [None]


@register_layer
class MnistData(DataLayer):
    """MNIST digits: the bundled 8,000/2,000 sample, or the full set from ``path``."""

    type_name = "mnist_data"
    defaults = {"split": "train", "path": None}

    def load_source(self):
        from sukiyaki.data.mnist import load_mnist

        if self.params["split"] not in ("train", "test"):
            raise self.error(f"split must be 'train' or 'test', got {self.params['split']!r}")
        self.set_source(*load_mnist(self.params["path"], split=self.params["split"]))


@register_layer
class Cifar10Data(DataLayer):
    """CIFAR-10 (binary version) from ``path``."""

    type_name = "cifar10_data"
    defaults = {"path": REQUIRED, "split": "train"}

    def load_source(self):
        from sukiyaki.data.cifar import load_cifar10

        self.set_source(*load_cifar10(self.params["path"], split=self.params["split"]))


@register_layer
class ImageFolderData(DataLayer):
    """Images in root/<class>/*.png|jpg, resized to size [h, w]."""

    type_name = "image_folder_data"
    defaults = {"root": REQUIRED, "size": REQUIRED, "channels": 3}

    def load_source(self):
        from sukiyaki.data.folders import load_image_folder

        images, labels, self.classes = load_image_folder(self.params["root"], self.params["size"], channels=self.params["channels"])
        self.set_source(images, labels)


@register_layer
class BlobData(DataLayer):
    """The original's blob files: ``file_prefix.bin`` (records of data_shape, column-major,
    uint8 or single) and ``file_prefix.json`` (a list of 0-based labels)."""

    type_name = "blob_data"
    defaults = {"file_prefix": REQUIRED, "data_shape": REQUIRED, "data_klass": "uint8"}

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        if self.images is not None:
            return super().infer(in_specs)
        shape = self.params["data_shape"]
        if not isinstance(shape, (list, tuple)) or not shape or any(not isinstance(s, int) or s < 1 for s in shape):
            raise self.error(f"data_shape must be a list of positive integers, got {shape!r}")
        if self.params["data_klass"] not in ("uint8", "single"):
            raise self.error(f"data_klass must be 'uint8' or 'single', got {self.params['data_klass']!r}")
        return [BlobSpec(shape, self.params["data_klass"]), BlobSpec((1,), "int32")]

    def load_source(self):
        prefix = self.params["file_prefix"]
        shape = tuple(self.params["data_shape"])
        dtype = np.uint8 if self.params["data_klass"] == "uint8" else np.dtype("<f4")
        label_path, data_path = prefix + ".json", prefix + ".bin"
        for p in (label_path, data_path):
            if not os.path.exists(p):
                raise self.error(f"data file {p!r} not found; replace the source with data_sources=", FileNotFoundError)
        with open(label_path, encoding="utf-8") as f:
            try:
                raw_labels = json.load(f)
                if not isinstance(raw_labels, list) or any(isinstance(v, (bool, list, dict, str)) or v is None
                                                           for v in raw_labels):
                    raise ValueError("expected a flat list of numbers")
                labels = check_labels(np.asarray(raw_labels, dtype=np.float64), repr(label_path))
            except RecursionError:
                raise self.error(f"{label_path!r}: the JSON nests too deeply to be a list of labels") from None
            except (ValueError, TypeError) as exc:
                raise self.error(f"{label_path!r} is not a JSON list of integer labels ({exc})") from None
        raw = np.fromfile(data_path, dtype=dtype)
        per = int(np.prod(shape))
        n = labels.shape[1]
        if raw.size != per * n:
            raise self.error(f"{data_path!r} holds {raw.size} values; {n} records of {list(shape)} need {per * n}")
        self.set_source(raw.reshape(shape + (n,), order="F"), labels)


@register_layer
class DataAugmentation(Layer):
    """The original's augmentation: subtract mean, scale, crop (random or centre), random flip.

    Params: out_shape [h, w], scale, mean (array or .npy path), mean_order, random_crop,
    random_flip, input_klass. In the test phase the crop is central and nothing is flipped.
    Runs on the device in float32 (every backend has it; WebGPU has no float64): it equals the
    host reference :func:`sukiyaki.data.augment.augment`, which rounds the double product as
    the original did, exactly when the scale is a float32 number (0.5, 1/256), and within one
    unit in the last place otherwise (1/255).
    """

    type_name = "data_augmentation"
    defaults = {"out_shape": REQUIRED, "scale": 1.0, "mean": None, "mean_order": "hwc",
                "random_crop": False, "random_flip": False, "input_klass": "single"}
    keeps_inputs = False

    def __init__(self, name, params=None):
        super().__init__(name, params)
        from sukiyaki.data.augment import normalize_params

        try:
            self.aug = normalize_params(self.params)
        except (ValueError, TypeError) as exc:
            raise self.error(str(exc).replace("data_augmentation: ", "")) from None

    def infer(self, in_specs):
        self.expect_inputs(in_specs)
        shape = tuple(in_specs[0].shape) + (1,) * (3 - len(in_specs[0].shape))
        oh, ow = self.aug["out_shape"]
        if oh > shape[0] or ow > shape[1]:
            raise self.error(f"out_shape {[oh, ow]} is larger than the input {in_specs[0]}")
        want = self.aug["input_klass"]
        if want is not None and in_specs[0].klass != want:
            raise self.error(f"input_klass is '{want}' but the input is {in_specs[0]}")
        mean = self.aug["mean"]
        if mean is not None:
            try:
                np.broadcast_shapes(mean.shape, shape)
            except ValueError:
                raise self.error(f"mean of shape {mean.shape} does not fit the input {in_specs[0]}") from None
        self.crop = CropSpec(shape, (oh, ow, shape[2]), getattr(self, "layout", "hwcn"))
        self._means = {}
        return [BlobSpec((oh, ow, shape[2]), "single")]

    def forward(self, inputs, ctx):
        ops = ctx.ops
        x = inputs[0]
        h, w, c = self.crop.in_shape
        oh, ow, _ = self.crop.out_shape
        n = x.numel // (h * w * c)
        y = ops.single(ops.native(x, (h, w, c, n)))
        if self.aug["mean"] is not None:
            y = ops.sub(y, self._mean(ops))
        y = ops.mul(y, np.float32(self.aug["scale"]))
        train = ctx.phase == "train"
        if train and (self.aug["random_crop"] or self.aug["random_flip"]):
            u = ctx.uniform(self.name, n, 3)  # per sample: top, left, flip
        if train and self.aug["random_crop"]:
            top = self._draw(ops, u, 0, h - oh + 1)
            left = self._draw(ops, u, 1, w - ow + 1)
        else:
            top = ops.full((n,), (h - oh) // 2, I32)
            left = ops.full((n,), (w - ow) // 2, I32)
        if train and self.aug["random_flip"]:
            flip = ops.reshape(ops.ge(ops.slice(u, 0, 2, 3), np.float32(0.5)), (n,))
        else:
            flip = ops.full((n,), False, np.dtype(bool))
        return [ops.wrap(ops.nn.crop_flip(y, self.crop, top, left, flip))]

    @staticmethod
    def _draw(ops, u, row, count):
        """Integers in 0..count-1 from row `row` of the uniforms u (3, n), as int32 (n,)."""
        k = ops.floor(ops.mul(ops.slice(u, 0, row, row + 1), np.float32(count)))
        k = ops.minimum(k, np.float32(count - 1))  # a product that rounds up to count
        return ops.reshape(ops.astype(k, I32), (u.shape[1],))

    def _mean(self, ops):
        """The mean image (h, w, c, 1) on the network's device (uploaded once per backend)."""
        cached = self._means.get(ops.name)
        if cached is None:
            h, w, c = self.crop.in_shape
            mean = np.broadcast_to(self.aug["mean"], (h, w, c)).astype(np.float32)
            cached = self._means[ops.name] = ops.upload(np.asfortranarray(mean.reshape(h, w, c, 1)))
        return cached

    def backward(self, inputs, outputs, deltas, ctx):
        return [None]
