"""Tests of sukiyaki.nn.onnx_export: exported graphs run in onnxruntime give our test-phase outputs."""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.nn import Net

try:
    import onnx
except ImportError:
    onnx = None
try:
    import onnxruntime as ort
except ImportError:
    ort = None

pytestmark = pytest.mark.skipif(onnx is None or ort is None,
                                reason="onnx and onnxruntime not installed (pip install onnx onnxruntime)")

from sukiyaki.nn.onnx_export import export_onnx  # noqa: E402  (imports onnx lazily)

NETS = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets"


def randomize(net, rng):
    """Nontrivial BN scale/shift, biases and running statistics (He-initialised weights stay),
    written into the parameter store at once (one transfer each way)."""
    arrays = {}
    for key, v in net.parameters().items():
        if key.endswith("/gamma"):
            arrays[key] = rng.uniform(0.5, 1.5, v.shape)
        elif key.endswith(("/beta", "/bias")):
            arrays[key] = rng.normal(0, 0.2, v.shape)
    for key, v in net.states().items():
        if key.endswith("/running_var"):
            arrays[key] = rng.uniform(0.5, 2.0, v.shape)
        else:
            arrays[key] = rng.normal(0, 0.3, v.shape)
    net.store.load_arrays(arrays)


def run_onnx(model_or_path, x_nchw):
    src = model_or_path if isinstance(model_or_path, (str, Path)) else model_or_path.SerializeToString()
    sess = ort.InferenceSession(str(src) if isinstance(src, Path) else src, providers=["CPUExecutionProvider"])
    return sess.run(None, {"data": np.ascontiguousarray(x_nchw, dtype=np.float32)})[0]


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def shipped_case(name, size, channels, n, rng, tmp_path, device, **kw):
    imgs = rng.integers(0, 256, (size, size, channels, n), dtype=np.uint8)
    labels = rng.integers(0, 10, (1, n))
    net = Net(NETS / f"{name}.json", device=device, data_sources={"d_train": (imgs, labels), "d_test": (imgs, labels)})
    randomize(net, rng)
    score = [d for d in net.defs if d["type"] == "softmax_cross_entropy"][0]["inputs"][0]
    blobs, _ = net.forward({"batch": list(range(n))}, "test", keep=("data", score))
    x = blobs["data"].to_numpy()
    ours = blobs[score].to_numpy().reshape(-1, n).T
    path = tmp_path / f"{name}.onnx"
    model = export_onnx(net, path, **kw)
    onnx.checker.check_model(onnx.load(path))
    got = run_onnx(path, np.transpose(x, (3, 2, 0, 1)))
    return model, got, ours


@pytest.mark.parametrize("name,size,channels", [("lenet", 28, 1), ("cifar10", 32, 3), ("resnet18", 256, 3)])
def test_shipped_net_matches_onnxruntime(name, size, channels, tmp_path, device):
    rng = np.random.default_rng(1)
    model, got, ours = shipped_case(name, size, channels, 3, rng, tmp_path, device)
    assert got.shape == ours.shape
    assert rel_err(got, ours) < 1e-4, f"{name}: max abs diff {np.abs(got - ours).max()} of {np.abs(ours).max()}"
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "data" and out.name == "scores"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    crop = {"lenet": 28, "cifar10": 32, "resnet18": 224}[name]
    assert dims == ["N", channels, crop, crop]
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Dropout", "SoftmaxCrossEntropyLoss"}
    if name == "resnet18":
        assert {"Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Add", "Gemm"} <= ops


def test_softmax_and_fixed_batch(tmp_path, device):
    rng = np.random.default_rng(2)
    _, logits, _ = shipped_case("lenet", 28, 1, 4, rng, tmp_path, device)
    rng = np.random.default_rng(2)
    model, probs, _ = shipped_case("lenet", 28, 1, 4, rng, tmp_path, device, softmax=True, batch_size=4)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert model.graph.node[-1].op_type == "Softmax"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def tiny_net(layers, in_shape, device, seed=0):
    net = Net(layers, device=device, input_specs={"x": (in_shape, "single")}, seed=seed)
    randomize(net, np.random.default_rng(seed + 10))
    return net


def check_tiny(net, in_shape, n=3, output_blob=None, tol=1e-5):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(tuple(in_shape) + (n,)).astype(np.float32)
    out = output_blob or net.defs[-1]["outputs"][0]
    blobs, _ = net.forward({"x": x}, "test", keep=(out,))
    ours = blobs[out].to_numpy().reshape(-1, n, order="F").T
    model = export_onnx(net, None, output_blob=output_blob)
    x4 = x.reshape(tuple(in_shape) + (1,) * (3 - len(in_shape)) + (n,)) if len(in_shape) > 1 else x
    feed = np.transpose(x4, (3, 2, 0, 1)) if len(in_shape) > 1 else x.T
    got = run_onnx(model, feed)
    assert got.shape == ours.shape
    assert rel_err(got, ours) < tol, f"max abs diff {np.abs(got - ours).max()}"
    return model


def L(name, type_, inputs, params=None, outputs=None):
    return {"name": name, "type": type_, "params": params or {}, "inputs": inputs, "outputs": outputs or [name]}


@pytest.mark.parametrize("pool", [
    {"type": "max", "ksize": 3, "stride": 2, "pad": 0},                       # original ResNet-50: cover_all
    {"type": "max", "ksize": 3, "stride": 2, "pad": 1},                       # cover_all with pad
    {"type": "max", "ksize": 2, "stride": 2, "pad": 1},                       # 7 -> 4 (ONNX ceil_mode: 5)
    {"type": "max", "ksize": 3, "stride": 2, "pad": 1, "cover_all": False},   # torchvision's
    {"type": "average", "ksize": 3, "stride": 2, "pad": 1},                   # count_include_pad
    {"type": "average", "ksize": 3, "stride": 2, "pad": 0, "cover_all": True},  # cifar10_quick's
    {"type": "average", "ksize": [2, 3], "stride": [1, 2], "pad": [1, 0]},
    {"type": "max", "global_pool": True},
    {"type": "average", "global_pool": True},
])
def test_pooling_variants(pool, device):
    net = tiny_net([L("conv", "convolution_2d", ["x"], {"in_size": 2, "out_size": 4, "ksize": 2, "pad": 1}),
                    L("pool", "pooling_2d", ["conv"], pool),
                    L("fc", "linear", ["pool"], {"out_size": 5})], (6, 7, 2), device)
    check_tiny(net, (6, 7, 2))


def test_average_pooling_without_an_exact_onnx_form_is_refused(device):
    """Ceil mode, 7 -> 4 here (the last window would start in the padding); ONNX would give 5."""
    net = tiny_net([L("conv", "convolution_2d", ["x"], {"in_size": 2, "out_size": 4, "ksize": 2, "pad": 1}),
                    L("pool", "pooling_2d", ["conv"], {"type": "average", "ksize": 2, "stride": 2, "pad": 1,
                                                       "cover_all": True}),
                    L("fc", "linear", ["pool"], {"out_size": 5})], (6, 7, 2), device)
    with pytest.raises(ValueError, match="pool"):
        export_onnx(net, None)


def test_graph_plumbing_layers(device):
    """branch, plus of three, concat on each axis, grouped conv, vector BN, elementwise, reshape."""
    layers = [
        L("br", "branch", ["x"], {"n_output": 3}, ["x1", "x2", "x3"]),
        L("c1", "convolution_2d", ["x1"], {"in_size": 4, "out_size": 4, "ksize": 3, "pad": 1, "group": 2}),
        L("c2", "convolution_2d", ["x2"], {"in_size": 4, "out_size": 4, "ksize": [1, 3], "pad": [0, 1], "bias": False}),
        L("bn", "batch_normalization", ["c2"], {"in_size": 4, "target_dim": 3}),
        L("sig", "sigmoid", ["bn"]),
        L("sum", "plus", ["c1", "sig", "x3"], {"n_input": 3}),
        L("th", "tanh", ["sum"]),
        L("cat_c", "concat", ["th", "c1"], {"axis": 3}),
        L("cat_h", "concat", ["cat_c", "cat_c"], {"axis": 1}),
        L("cat_w", "concat", ["cat_h", "cat_h"], {"axis": 2}),
        L("drop", "dropout", ["cat_w"]),
        L("flat", "flatten", ["drop"]),
        L("back", "reshape", ["flat"], {"shape": [10, 12, 8]}),
        L("r", "relu", ["back"]),
        L("fc", "linear", ["r"], {"out_size": 6}),
        L("bn1", "batch_normalization", ["fc"], {"in_size": 6, "target_dim": 1}),
        L("sm", "softmax", ["bn1"]),
    ]
    check_tiny(tiny_net(layers, (5, 6, 4), device), (5, 6, 4))


def test_reshape_image_to_image_and_softmax_on_image(device):
    layers = [L("c", "convolution_2d", ["x"], {"in_size": 3, "out_size": 6, "ksize": 1}),
              L("rs", "reshape", ["c"], {"shape": [2, -1, 9]}),
              L("sm", "softmax", ["rs"])]
    model = check_tiny(tiny_net(layers, (4, 3, 3), device), (4, 3, 3))
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 72


def test_vector_input_mlp(device):
    layers = [L("fc1", "linear", ["x"], {"out_size": 7}), L("r", "relu", ["fc1"]),
              L("fc2", "linear", ["r"], {"out_size": 3, "bias": False})]
    model = check_tiny(tiny_net(layers, (5,), device), (5,))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 5]


def test_unsupported_layer_is_named(device):
    layers = [L("fc", "linear", ["x"], {"out_size": 3}), L("mse", "loss", ["fc", "t"], outputs=["l"])]
    net = Net(layers, device=device, input_specs={"x": ((4,), "single"), "t": ((3,), "single")})
    # the score blob is the loss layer's input: fine
    export_onnx(net)
    from sukiyaki.nn.layer import Layer, register_layer

    @register_layer
    class _Square(Layer):
        type_name = "test_onnx_square"

        def forward(self, inputs, ctx):
            return [inputs[0] * inputs[0]]

    net = Net([L("fc", "linear", ["x"], {"out_size": 3}), L("sq", "test_onnx_square", ["fc"])],
              device=device, input_specs={"x": ((4,), "single")})
    with pytest.raises(ValueError, match="layer 'sq' of type 'test_onnx_square'"):
        export_onnx(net)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(net, opset=9)
