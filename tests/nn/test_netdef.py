"""Network definitions: the original's files load unchanged, with the right blob shapes and
parameter counts, their data sources can be replaced; bad definitions are ValueErrors that
name the layer, blob or file at fault and say what is wrong.
"""

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.nn import Net


import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)


#: Trainable parameters (weights, biases, BN gamma/beta) of the original definitions.
#: resnet50.json has 3 blocks in stage 3 (res3a-res3c; the paper's ResNet-50 has res3a-res3d),
#: so it is one bottleneck block, 512*128 + 9*128*128 + 128*512 + 2*(128+128+512) = 280,064
#: parameters, short of torchvision's 25,557,032. ResNet-101/152 and VGG match torchvision.
KNOWN_TOTALS = {
    "lenet": 431_080,
    "example_mnist_lenet": 431_080,
    "lenet_invert": 431_080,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "resnet50": 25_557_032 - 280_064,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}

SHAPES = {
    "lenet": {"rawdata": ((28, 28, 1), "uint8"), "data": ((28, 28, 1), "single"), "conv1": (24, 24, 20),
              "pool1": (12, 12, 20), "conv2": (8, 8, 50), "pool2": (4, 4, 50), "fc3": (500,), "pred": (10,),
              "loss": (1,)},
    "vgg11": {"data": (224, 224, 3), "pool1": (112, 112, 64), "pool5": (7, 7, 512), "fc6": (4096,),
              "fc8": (1000,)},
    "vgg16": {"data": (224, 224, 3), "conv1_2": (224, 224, 64), "pool1": (112, 112, 64), "pool4": (14, 14, 512),
              "pool5": (7, 7, 512), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)},
    "resnet50": {"data": (224, 224, 3), "conv1": (112, 112, 64), "pool1": (56, 56, 64), "res2c": (56, 56, 256),
                 "res3c": (28, 28, 512), "res4f": (14, 14, 1024), "res5c": (7, 7, 2048), "pool5": (1, 1, 2048),
                 "fc1000": (1000,)},
    "resnet101": {"res3b3": (28, 28, 512), "res4b22": (14, 14, 1024), "res5c": (7, 7, 2048), "fc1000": (1000,)},
    "resnet152": {"res3b7": (28, 28, 512), "res4b35": (14, 14, 1024), "res5c": (7, 7, 2048), "fc1000": (1000,)},
}
SHAPES["example_mnist_lenet"] = SHAPES["lenet_invert"] = SHAPES["lenet"]
NAMES = sorted(KNOWN_TOTALS)


def netdef_path(name):
    return H.need_dir(H.NETDEFS) / f"{name}.json"


@pytest.fixture
def no_init(monkeypatch):
    """Build networks without allocating parameters (shape inference and checks only)."""
    monkeypatch.setattr(Net, "init_params", lambda self, seed=0: None)


def count_from_definition(layers):
    """Trainable parameters computed from the layer list alone (not from the library)."""
    total = 0
    for d in layers:
        p = d.get("params", {})
        if d["type"] == "convolution_2d":
            k = p["ksize"] if isinstance(p["ksize"], list) else [p["ksize"]] * 2
            total += k[0] * k[1] * p["in_size"] // p.get("group", 1) * p["out_size"]
            total += p["out_size"] if p.get("bias", True) else 0
        elif d["type"] == "batch_normalization":
            total += 2 * p["in_size"]
        elif d["type"] == "linear":
            fan_in = math.prod(p["in_shape"]) if "in_shape" in p else p["in_size"]
            total += fan_in * p["out_size"] + (p["out_size"] if p.get("bias", True) else 0)
    return total


def library_count(net):
    """Trainable parameters the network declares (layer.param_shapes, no allocation needed)."""
    return sum(math.prod(s) for layer in net.layers.values() if layer.in_specs is not None
               for s in layer.param_shapes().values())


# ---------------------------------------------------------------- the original definitions


def test_corpus_is_complete():
    d = H.need_dir(H.NETDEFS)
    assert {p.stem for p in d.glob("*.json")} >= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_original_definition_loads_unchanged(name, no_init):
    path = netdef_path(name)
    text = path.read_text()
    net = Net(str(path))
    assert set(net.schedules) == {"train", "test"}
    assert path.read_text() == text
    # the data layers were built from data_shape without touching their (missing) files
    for layer in net.layers.values():
        if layer.is_data:
            assert layer.images is None
    # loading from a Path or the parsed list gives the same plan
    for source in (path, json.loads(text)):
        again = Net(source)
        assert [d["name"] for d in again.schedules["train"].order] == [d["name"] for d in net.schedules["train"].order]


@pytest.mark.parametrize("name", NAMES)
def test_original_definition_blob_shapes(name, no_init):
    net = Net(netdef_path(name))
    for phase, sched in net.schedules.items():
        for blob, want in SHAPES[name].items():
            shape, klass = want if isinstance(want[0], tuple) else (want, "single")
            got = sched.specs[blob]
            assert (got.shape, got.klass) == (shape, klass), f"{name} {phase}: blob {blob} is {got}, expected {shape}"
        assert sched.losses == ["loss"]
        assert sched.inputs == {"batch": ((1,), "int32")}
    assert net.schedules["test"].specs["accuracy"].shape == (1,)
    assert "accuracy" not in net.schedules["train"].specs


@pytest.mark.parametrize("name", NAMES)
def test_original_definition_parameter_count(name, no_init):
    path = netdef_path(name)
    independent = count_from_definition(json.loads(path.read_text()))
    assert independent == KNOWN_TOTALS[name]
    assert library_count(Net(path)) == independent


def test_resnet50_parameters_allocated():
    net = Net(netdef_path("resnet50"))
    params = net.parameters()
    assert sum(p.numel for p in params.values()) == KNOWN_TOTALS["resnet50"]
    assert all(p.klass == "single" for p in params.values())
    assert params["conv1/weight"].shape == (7, 7, 3, 64)
    assert "conv1/bias" not in params  # bias: false
    assert params["bn_conv1/gamma"].numel == 64 and params["fc1000/weight"].shape == (2048, 1000)
    states = net.states()
    assert sum(s.numel for s in states.values()) == 2 * sum(
        p.numel for k, p in params.items() if k.endswith("/gamma"))


def test_vgg16_parameters_allocated():
    """The one test that allocates VGG16 (138M float32 values, about 550 MB)."""
    net = Net(netdef_path("vgg16"))
    params = net.parameters()
    assert sum(p.numel for p in params.values()) == KNOWN_TOTALS["vgg16"]
    assert params["fc6/weight"].shape == (7 * 7 * 512, 4096)
    assert params["fc8/weight"].shape == (4096, 1000)
    del net, params


# ---------------------------------------------------------------- replacing the data source


def _mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (28, 28, 1, n), dtype=np.uint8), rng.integers(0, 10, n)


def _lenet_reference(net, images):
    """LeNet's forward in plain numpy from the network's parameters (float64)."""
    P = {k: H.npy(v).astype(np.float64) for k, v in net.parameters().items()}
    x = images.astype(np.float64) * 0.00390625

    def conv(x, w, b):  # x (h, w, c, n), w (kh, kw, c, o): valid, stride 1
        win = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(0, 1))  # h', w', c, n, kh, kw
        return np.einsum("ijcnab,abco->ijon", win, w) + b.reshape(1, 1, -1, 1)

    def pool(x):  # 2x2 max, stride 2
        h, w, c, n = x.shape
        return x.reshape(h // 2, 2, w // 2, 2, c, n).max(axis=(1, 3))

    h = pool(conv(x, P["conv1/weight"], P["conv1/bias"]))
    h = pool(conv(h, P["conv2/weight"], P["conv2/bias"]))
    h = h.reshape(-1, h.shape[-1], order="F")
    h = np.maximum(P["fc3/weight"].T @ h + P["fc3/bias"], 0)
    return P["fc4/weight"].T @ h + P["fc4/bias"]


@pytest.mark.parametrize("name", ["lenet", "example_mnist_lenet", "lenet_invert"])
def test_lenet_with_replaced_data_source(name):
    train, test = _mnist_like(30, seed=1), _mnist_like(12, seed=2)
    net = Net(netdef_path(name), data_sources={"d_train": train, "d_test": test}, seed=3)
    blobs, _ = net.forward({"batch": range(12)}, "test", keep=["pred", "rawdata"])
    assert blobs["rawdata"].klass == "uint8"
    pred = H.npy(blobs["pred"])
    assert pred.shape == (10, 12)
    H.assert_close(pred, _lenet_reference(net, test[0]), rtol=1e-4, atol=1e-4, what="LeNet scores")
    p = np.exp(pred - pred.max(0))
    p /= p.sum(0)
    loss = -np.mean(np.log(p[test[1], np.arange(12)]))
    np.testing.assert_allclose(H.scalar(blobs["loss"]), loss, rtol=1e-4)
    acc = np.mean(pred.argmax(0) == test[1])
    np.testing.assert_allclose(H.scalar(blobs["accuracy"]), acc, rtol=1e-6)
    # the train phase reads the train source
    out = net.train_batch({"batch": np.arange(30)[::3]})
    assert set(out) == {"loss"} and np.isfinite(out["loss"])
    assert set(net.gradients()) == set(net.parameters())


def test_replacing_one_source_leaves_the_other_lazy():
    net = Net(netdef_path("lenet"), data_sources={"d_test": _mnist_like(4)})
    blobs, _ = net.forward({"batch": [0, 1, 2, 3]}, "test")
    assert np.isfinite(H.scalar(blobs["loss"]))
    with pytest.raises(FileNotFoundError, match="d_train.*mnist/mnist_train_8bit"):
        net.train_batch({"batch": [0]})


def test_data_source_of_the_wrong_shape_is_rejected_at_build():
    images = np.zeros((28, 28, 3, 4), np.uint8)
    with pytest.raises(ValueError, match=r"conv1.*in_size is 1 but the input has 3 channels"):
        Net(netdef_path("lenet"), data_sources={"d_train": (images, np.zeros(4)), "d_test": (images, np.zeros(4))})


def test_data_sources_must_name_data_layers():
    with pytest.raises(ValueError, match="'conv1' is not a data layer"):
        Net(netdef_path("lenet"), data_sources={"conv1": _mnist_like(2)})
    with pytest.raises(ValueError, match="'nope' is not a data layer"):
        Net(netdef_path("lenet"), data_sources={"nope": _mnist_like(2)})


def test_data_source_image_label_count_mismatch():
    images, labels = _mnist_like(5)
    with pytest.raises(ValueError, match=r"d_train.*5 images but 4 labels"):
        Net(netdef_path("lenet"), data_sources={"d_train": (images, labels[:4])})


# ---------------------------------------------------------------- bad definitions


def L(name, type_, inputs, outputs, params=None, **extra):
    d = {"name": name, "type": type_, "params": params or {}, "inputs": inputs, "outputs": outputs}
    d.update(extra)
    return d


X = {"x": ((4,), "single")}
IMG = L("r", "reshape", ["x"], ["img"], {"shape": [2, 2, 1]})

#: (definition, regexes the ValueError message must match): each names the culprit and the fault.
BAD = {
    "not_json": ("[{bad json", [r"not valid JSON", r"line 1 column"]),
    "trailing_garbage": ('[{"name": "a", "type": "relu"}] trailing', [r"not valid JSON"]),
    "empty_list": ([], [r"has no layers"]),
    "entry_not_object": (["relu"], [r"layer #1", r"must be an object, got str"]),
    "no_name": ([{"type": "relu", "inputs": ["x"], "outputs": ["y"]}], [r"layer #1", r"'name'"]),
    "empty_name": ([L("", "relu", ["x"], ["y"])], [r"layer #1", r"'name' must be a non-empty string"]),
    "no_type": ([{"name": "a", "inputs": ["x"], "outputs": ["y"]}], [r"layer 'a'", r"'type' must be a string"]),
    "unknown_key": ([L("a", "relu", ["x"], ["y"], input=["x"])], [r"layer 'a'", r"unknown key\(s\) input"]),
    "params_not_object": ([L("a", "relu", ["x"], ["y"]) | {"params": [1]}], [r"layer 'a'", r"'params' must be an object"]),
    "no_outputs": ([L("a", "relu", ["x"], [])], [r"layer 'a'", r"has no outputs"]),
    "unknown_type": ([L("a", "reluu", ["x"], ["y"])], [r"layer 'a'", r"unknown type 'reluu'", r"relu"]),
    "unknown_parameter": ([L("a", "relu", ["x"], ["y"], {"slope": 0.1})], [r"relu 'a'", r"unknown parameter\(s\) slope"]),
    "missing_required": ([L("fc", "linear", ["x"], ["y"])], [r"linear 'fc'", r"missing required parameter 'out_size'"]),
    "ksize_zero": ([IMG, L("c", "convolution_2d", ["img"], ["y"], {"in_size": 1, "out_size": 2, "ksize": 0})],
                   [r"convolution_2d 'c'", r"ksize", r"got 0"]),
    "out_size_string": ([L("fc", "linear", ["x"], ["y"], {"out_size": "x"})], [r"linear 'fc'", r"out_size", r"got 'x'"]),
    "out_size_float": ([L("fc", "linear", ["x"], ["y"], {"out_size": 2.5})], [r"linear 'fc'", r"out_size", r"2\.5"]),
    "stride_triple": ([IMG, L("c", "convolution_2d", ["img"], ["y"], {"in_size": 1, "out_size": 2, "ksize": 1,
                                                                     "stride": [1, 1, 1]})],
                      [r"convolution_2d 'c'", r"stride"]),
    "conv_bias_string": ([IMG, L("c", "convolution_2d", ["img"], ["y"], {"in_size": 1, "out_size": 2, "ksize": 1,
                                                                        "bias": "yes"})],
                         [r"convolution_2d 'c'", r"bias must be true or false"]),
    "pool_type": ([IMG, L("p", "pooling_2d", ["img"], ["y"], {"type": "min", "ksize": 2})],
                  [r"pooling_2d 'p'", r"type must be 'max' or 'average'", r"'min'"]),
    "dropout_ratio": ([L("d", "dropout", ["x"], ["y"], {"dropout_ratio": 1.5})], [r"dropout 'd'", r"dropout_ratio", r"1\.5"]),
    "group_divisibility": ([L("r", "reshape", ["x"], ["img"], {"shape": [1, 1, 4]}),
                            L("c", "convolution_2d", ["img"], ["y"], {"in_size": 4, "out_size": 3, "ksize": 1, "group": 2})],
                           [r"convolution_2d 'c'", r"divisible by group 2"]),
    "kernel_too_big": ([IMG, L("c", "convolution_2d", ["img"], ["y"], {"in_size": 1, "out_size": 3, "ksize": 3})],
                       [r"convolution_2d 'c'", r"does not fit the 2x2 input"]),
    "duplicate_name": ([L("a", "relu", ["x"], ["y"]), L("a", "relu", ["y"], ["z"])], [r"layer 'a'", r"duplicate layer name"]),
    "blob_produced_twice": ([L("a", "relu", ["x"], ["y"]), L("b", "tanh", ["x"], ["y"])],
                            [r"blob 'y'", r"produced by both 'a' and 'b'"]),
    "output_named_twice": ([L("a", "branch", ["x"], ["y", "y"])], [r"layer 'a'", r"output blob is named twice"]),
    "dangling_input": ([L("a", "plus", ["x", "q"], ["y"])], [r"blob 'q'", r"input of layer 'a'", r"produced by no layer"]),
    "cycle": ([L("a", "plus", ["x", "z"], ["y"]), L("b", "relu", ["y"], ["z"])], [r"cycle", r"a, b"]),
    "self_loop": ([L("a", "relu", ["y"], ["y"])], [r"cycle", r"\ba\b"]),
    "channel_mismatch": ([IMG, L("c", "convolution_2d", ["img"], ["y"], {"in_size": 3, "out_size": 2, "ksize": 1})],
                         [r"convolution_2d 'c'", r"in_size is 3 but the input has 1 channels"]),
    "linear_in_shape": ([L("fc", "linear", ["x"], ["y"], {"out_size": 2, "in_shape": [5]})],
                        [r"linear 'fc'", r"in_shape \[5\]", r"does not match the input"]),
    "linear_in_size": ([L("fc", "linear", ["x"], ["y"], {"out_size": 2, "in_size": 5})],
                       [r"linear 'fc'", r"does not match the input"]),
    "linear_in_size_vs_in_shape": ([L("fc", "linear", ["x"], ["y"], {"out_size": 2, "in_size": 4, "in_shape": [2, 3]})],
                                   [r"linear 'fc'", r"in_size 4", r"in_shape"]),
    "bn_in_size": ([L("bn", "batch_normalization", ["x"], ["y"], {"in_size": 3})], [r"batch_normalization 'bn'", r"in_size is 3"]),
    "arity_relu": ([L("a", "relu", ["x", "x"], ["y"])], [r"relu 'a'", r"takes 1 input\(s\), got 2"]),
    "arity_plus": ([L("a", "plus", ["x", "x", "x"], ["y"], {"n_input": 2})], [r"plus 'a'", r"takes 2 input\(s\), got 3"]),
    "arity_loss": ([L("a", "softmax_cross_entropy", ["x"], ["y"])], [r"softmax_cross_entropy 'a'", r"takes 2 input\(s\), got 1"]),
    "arity_outputs": ([L("a", "relu", ["x"], ["y", "z"])], [r"relu 'a'", r"produces 1 output\(s\)", r"names 2"]),
    "labels_not_per_sample": ([L("a", "softmax_cross_entropy", ["x", "x"], ["y"])], [r"softmax_cross_entropy 'a'", r"label input"]),
    "plus_shapes": ([L("r", "reshape", ["x"], ["v"], {"shape": [2, 2]}), L("a", "plus", ["x", "v"], ["y"])],
                    [r"plus 'a'", r"differ in shape"]),
    "concat_shapes": ([IMG, L("r2", "reshape", ["x"], ["img2"], {"shape": [1, 4, 1]}),
                       L("c", "concat", ["img", "img2"], ["y"], {"axis": 3})], [r"concat 'c'", r"differ outside axis 3"]),
    "reshape_size": ([L("r", "reshape", ["x"], ["y"], {"shape": [3, -1]})], [r"reshape 'r'", r"cannot reshape"]),
    "phase_value": ([L("a", "relu", ["x"], ["y"], phase="training")], [r"layer 'a'", r"'phase'", r"'training'"]),
    "phase_list_value": ([L("a", "relu", ["x"], ["y"], phase=["train", "valid"])], [r"layer 'a'", r"'phase'", r"valid"]),
    "phase_empty": ([L("a", "relu", ["x"], ["y"], phase=[])], [r"layer 'a'", r"'phase'"]),
    "phase_only_dangling": ([L("a", "relu", ["x"], ["y"], phase="train"), L("b", "relu", ["y"], ["z"])],
                            [r"phase 'test'", r"blob 'y'", r"layer 'b'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_definition_is_a_value_error(case):
    definition, patterns = BAD[case]
    with pytest.raises(ValueError) as info:
        Net(definition, input_specs=X)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{case}: {info.value!r} lacks {pattern!r}"


def test_bad_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("[{\"name\": \"a\", ")
    with pytest.raises(ValueError, match=r"broken\.json.*not valid JSON"):
        Net(bad)
    with pytest.raises(ValueError, match=r"broken\.json.*not valid JSON"):
        Net(str(bad))
    obj = tmp_path / "object.json"
    obj.write_text('{"name": "a", "type": "relu"}')
    with pytest.raises(ValueError, match=r"object\.json.*must be a JSON list of layers, got dict"):
        Net(obj)
    with pytest.raises(ValueError, match=r"missing\.json' not found \(no such file; shipped definitions, "
                                         r"given by name alone: .*lenet"):
        Net(tmp_path / "missing.json")
    layered = tmp_path / "layered.json"
    layered.write_text(json.dumps([L("a", "relu", ["x"], ["y"], phase="both")]))
    with pytest.raises(ValueError, match=r"layered\.json.*layer 'a'.*'phase'"):
        Net(layered, input_specs=X)


@pytest.mark.parametrize("definition", [{"name": "a", "type": "relu"}, 5])
def test_non_list_object_is_a_value_error(definition):
    with pytest.raises(ValueError, match=r"must be a JSON list of layers"):
        Net(definition, input_specs=X)


def test_non_list_json_text_is_reported_as_such():
    with pytest.raises(ValueError, match=r"must be a JSON list of layers, got dict"):
        Net('{"name": "a", "type": "relu", "inputs": ["x"], "outputs": ["y"]}', input_specs=X)


def test_linear_bias_must_be_boolean():
    with pytest.raises(ValueError, match=r"linear 'fc'.*bias"):
        Net([L("fc", "linear", ["x"], ["y"], {"out_size": 2, "bias": "yes"})], input_specs=X)


def test_missing_network_input_at_run_time():
    net = Net([L("a", "relu", ["x"], ["y"])], input_specs=X)
    with pytest.raises(ValueError, match=r"missing network input 'x'"):
        net.forward({}, "test")
    with pytest.raises(ValueError, match=r"no layers in phase 'train'"):
        Net([L("a", "relu", ["x"], ["y"], phase="test")], input_specs=X).forward({"x": np.ones((4, 1))}, "train")


#: parameter values that are wrong but build a network anyway; each should be a ValueError
SILENTLY_ACCEPTED = {
    "pool_cover_all_string": (
        [IMG, L("p", "pooling_2d", ["img"], ["y"], {"type": "max", "ksize": 2, "cover_all": "false"})],
        r"pooling_2d 'p'.*cover_all",
        "sukiyaki/nn/layers/conv.py Pooling2D.__init__ takes bool() of cover_all and global_pool, so "
        "\"cover_all\": \"false\" (a string) turns cover_all ON; expected ValueError \"pooling_2d 'p': cover_all "
        "must be true or false, got 'false'\""),
    "pool_global_pool_string": (
        [IMG, L("p", "pooling_2d", ["img"], ["y"], {"type": "average", "global_pool": "no"})],
        r"pooling_2d 'p'.*global_pool",
        "sukiyaki/nn/layers/conv.py Pooling2D.__init__: \"global_pool\": \"no\" is taken as true (bool('no'))"),
    "pool_pad_not_smaller_than_ksize": (
        [IMG, L("p", "pooling_2d", ["img"], ["y"], {"type": "max", "ksize": 1, "pad": 1})],
        r"pooling_2d 'p'.*pad",
        "sukiyaki/nn/layers/conv.py Pooling2D: pad >= ksize is accepted, so some windows lie entirely in the "
        "padding: max pooling of a 2x2 image with ksize 1, pad 1 gives a 4x4 output whose border is -inf "
        "(average: windows of zeros). Caffe requires pad < ksize, torch pad <= ksize/2; expected ValueError "
        "\"pooling_2d 'p': pad (1, 1) must be smaller than ksize (1, 1)\""),
    "bn_decay_above_one": (
        [L("bn", "batch_normalization", ["x"], ["y"], {"in_size": 4, "decay": 2.0})],
        r"batch_normalization 'bn'.*decay",
        "sukiyaki/nn/layers/normalization.py BatchNormalization.__init__ only checks decay >= 0: decay 2.0 "
        "is accepted and the running statistics diverge (r = 2 r - batch); expected ValueError for decay "
        "outside [0, 1]"),
    "augmentation_flag_string": (
        [IMG, L("a", "data_augmentation", ["img"], ["y"], {"out_shape": [2, 2], "random_crop": "false"})],
        r"data_augmentation 'a'.*random_crop",
        "sukiyaki/data/augment.py normalize_params takes bool() of random_crop / random_flip, so "
        "\"random_crop\": \"false\" turns random cropping ON; expected ValueError \"random_crop must be true "
        "or false, got 'false'\""),
}


@pytest.mark.parametrize("case", sorted(SILENTLY_ACCEPTED))
def test_wrong_parameter_values_are_rejected(case):
    definition, pattern, _ = SILENTLY_ACCEPTED[case]
    with pytest.raises(ValueError, match=pattern):
        Net(definition, input_specs=X)


# ---------------------------------------------------------------- deep nesting, shipped names


def test_deeply_nested_definition_is_a_value_error_naming_the_file(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    for source in (deep, str(deep)):
        with pytest.raises(ValueError, match=r"network definition '.*deep\.json': the JSON nests too deeply"):
            Net(source)
    with pytest.raises(ValueError, match=r"^network definition: the JSON nests too deeply"):
        Net("[" * 100_000)
    from sukiyaki.nn.netdef import parse_netdef

    with pytest.raises(ValueError, match=r"^network definition: the JSON nests too deeply"):
        parse_netdef('[{"name": "a", "params": ' + "[" * 100_000)


def test_shipped_definitions_by_name_from_another_folder(tmp_path, monkeypatch, no_init):
    from sukiyaki.nn.netdef import read_netdef, resolve_netdef, shipped_nets

    shipped = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"
    expected = read_netdef(shipped)
    monkeypatch.chdir(tmp_path)
    assert {"lenet", "vgg16", "resnet50"} <= set(shipped_nets())
    assert read_netdef("lenet") == expected and read_netdef("lenet.json") == expected
    assert os.path.samefile(resolve_netdef("lenet"), shipped)
    assert Net("lenet").defs == expected
    # an existing file wins over a shipped name
    (tmp_path / "lenet.json").write_text(json.dumps([L("a", "relu", ["x"], ["y"])]))
    assert [d["name"] for d in read_netdef("lenet.json")] == ["a"]
    assert read_netdef("lenet") == expected
    with pytest.raises(ValueError, match=r"network definition 'lenut' not found \(no such file, and no shipped "
                                         r"definition of that name; shipped: cifar10, lenet, resnet101"):
        read_netdef("lenut")
    with pytest.raises(ValueError, match=r"network definition 'sub/lenet' not found"):
        read_netdef("sub/lenet")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ValueError, match=r"'folder\.json' is a folder, not a JSON file"):
        read_netdef("folder.json")
