"""Data layers on the device: the images and labels of the asked sample ids, uploaded in their
klass, and the label checks (integers, not negative, below the class count of their readers)."""

import numpy as np
import pytest

from sukiyaki.matrix import gather
from sukiyaki.nn import Net


def defs(classes=None):
    layers = [{"name": "d", "type": "mnist_data", "inputs": ["batch"], "outputs": ["raw", "label"]}]
    if classes:
        layers += [{"name": "flat", "type": "flatten", "inputs": ["raw"], "outputs": ["f"]},
                   {"name": "fc", "type": "linear", "params": {"out_size": classes}, "inputs": ["f"], "outputs": ["y"]},
                   {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["y", "label"], "outputs": ["loss"]}]
    return layers


def host(m):
    return np.array(gather(m).to_numpy())


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_images_and_labels_of_the_asked_ids_on_the_device(device, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 3, 2, 12)).astype(dtype)
    t = rng.integers(0, 5, 12)
    net = Net(defs(), device=device, data_sources={"d": (x, t.astype(np.float64))})  # whole floats are labels
    ids = [7, 0, 7, 11]
    blobs, _ = net.forward({"batch": ids}, "train", keep=["raw", "label"])
    raw, label = blobs["raw"], blobs["label"]
    assert raw.device == label.device == device
    assert raw.klass == ("uint8" if dtype == np.uint8 else "single") and label.klass == "int32"
    assert raw.shape == (4, 3, 2, 4) and label.shape == (1, 4)
    np.testing.assert_array_equal(host(raw), x[..., ids])
    np.testing.assert_array_equal(host(label), t[ids].reshape(1, -1))


def test_labels_are_checked_when_the_source_is_set(device):
    x = np.zeros((2, 2, 1, 3), np.uint8)
    net = Net(defs(classes=4), device=device, data_sources={"d": (x, [0, 3, 1])})
    layer = net.layers["d"]
    for labels, pattern in (([0, 1.5, 2], r"label 1\.5 \(sample 1\) is not an integer"),
                            ([0, -2, 1], r"label -2 \(sample 1\) is negative"),
                            ([0, 4, 1], r"label 4 \(sample 1\) is out of range for the 4 classes of layer 'loss'"),
                            (["a", "b", "c"], r"labels must be integers")):
        with pytest.raises(ValueError, match=r"mnist_data 'd'.*" + pattern):
            layer.set_source(x, labels)
    # a refused source leaves the previous one in place
    blobs, _ = net.forward({"batch": [0, 1, 2]}, "train", keep=["label"])
    np.testing.assert_array_equal(host(blobs["label"]), [[0, 3, 1]])


def test_batch_indices_out_of_range_name_the_layer(device):
    net = Net(defs(), device=device, data_sources={"d": (np.zeros((2, 2, 1, 3), np.float32), [0, 1, 2])})
    with pytest.raises(ValueError, match=r"mnist_data 'd'.*batch index 3 out of range for 3 samples"):
        net.forward({"batch": [0, 3]}, "train")
