"""Data layers and data_augmentation.

A data layer takes the network input ``batch`` (0-based sample indices, any int vector)
and outputs the images of those samples (h, w, c, n) and their labels (1, n), int32,
0-based. Its source can be replaced without touching the definition
(``Net(..., data_sources={layer_name: (images, labels)})`` or ``layer.set_source``), so the
original's definitions, whose ``blob_data`` layers name files of the authors' machines,
load unchanged.
"""

import json
import os

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.nn.layer import REQUIRED, BlobSpec, Layer, register_layer
from sukiyaki.nn.layers._util import wrap


class DataLayer(Layer):
    """Base of the layers that read samples from a source."""

    n_outputs = 2
    is_data = True
    keeps_inputs = False

    def __init__(self, name, params=None):
        super().__init__(name, params)
        self.images = None
        self.labels = None

    def set_source(self, images, labels):
        """Use these arrays: images (h, w, c, n) and labels (1, n) int 0-based."""
        images = np.asarray(images)
        labels = np.asarray(labels).reshape(1, -1).astype(np.int32)
        if images.ndim < 2:
            raise self.error(f"images must be (h, w, c, n), got shape {images.shape}")
        images = images.reshape(images.shape + (1,) * (4 - images.ndim)) if images.ndim < 4 else images
        if images.shape[-1] != labels.shape[1]:
            raise self.error(f"{images.shape[-1]} images but {labels.shape[1]} labels")
        self.images, self.labels = images, labels

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
        be = get_backend(ctx.device)
        x = np.asfortranarray(self.images[..., idx])
        t = self.labels[:, idx]
        klass = "uint8" if x.dtype == np.uint8 else "single"
        if klass == "single" and x.dtype != np.float32:
            x = x.astype(np.float32)
        return [wrap(be.from_numpy(x), be, klass), wrap(be.from_numpy(t), be, "int32")]

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
                labels = np.asarray(json.load(f), dtype=np.int32).reshape(1, -1)
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
        return [BlobSpec((oh, ow, shape[2]), "single")]

    def forward(self, inputs, ctx):
        from sukiyaki.data.augment import augment

        x = inputs[0]
        be = x._backend
        y = augment(x.to_numpy() if not be.is_gpu else be.to_numpy(x.data), self.aug, ctx.rng, train=ctx.phase == "train")
        return [wrap(be.from_numpy(y), be)]

    def backward(self, inputs, outputs, deltas, ctx):
        return [None]
