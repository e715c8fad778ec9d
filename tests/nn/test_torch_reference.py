"""LeNet and ResNet-18 against PyTorch (CPU) with the same weights: forward, loss, every
parameter gradient, batch-norm running statistics after one step, and eval-mode outputs,
with our networks on each backend present (the ``device`` fixture).

The torch models are written by hand here (torchvision's module names, no torchvision), and
our initial weights are copied into them with the layout mapping of DESIGN.md:
blob (h, w, c, n) -> NCHW by ``np.transpose(x, (3, 2, 0, 1))``; conv weight (kh, kw, in, out)
-> (out, in, kh, kw) by the same transpose; linear weight (in, out) with inputs flattened
column-major over (h, w, c) -> torch's (out, c*H*W + h*W + w).

Max pooling: ResNet-18's stem pool is 3x3 stride 2 pad 1 with ``cover_all: false`` (floor),
the same windows as torchvision's ``MaxPool2d(3, 2, 1)`` (112 -> 56). Our default for max
pooling, Chainer's cover_all, would give 57 with pad 1 (as torch's ceil_mode does); the
original's ResNet-50 pool (pad 0 with cover_all) equals torch's
``MaxPool2d(3, 2, 0, ceil_mode=True)`` (also 112 -> 56, other windows than torchvision's).
"""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.nn import Net

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError:
    torch = None

pytestmark = pytest.mark.skipif(torch is None, reason="PyTorch not installed")

NETS = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets"


# --- layout mapping ---------------------------------------------------------------------------
def blob_to_nchw(x):
    return np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))


def conv_to_torch(w):
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def linear_to_torch(w, in_shape):
    """(in, out) with in = h + H*(w + W*c) -> torch's (out, c*H*W + h*W + w)."""
    shape = tuple(in_shape) + (1,) * (3 - len(in_shape))
    H, W, C = shape
    return np.ascontiguousarray(w.reshape((H, W, C, w.shape[1]), order="F").transpose(3, 2, 0, 1).reshape(w.shape[1], -1))


def rel_err(ours, ref):
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


# --- torch models, written by hand ---------------------------------------------------------
class TorchLeNet(tnn.Module if torch else object):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 20, 5)
        self.conv2 = tnn.Conv2d(20, 50, 5)
        self.fc3 = tnn.Linear(800, 500)
        self.fc4 = tnn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        return self.fc4(F.relu(self.fc3(x.flatten(1))))


class BasicBlock(tnn.Module if torch else object):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchResNet18(tnn.Module if torch else object):
    """torchvision.models.resnet18's structure and parameter names."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        cin = 64
        for i, width in enumerate([64, 128, 256, 512], start=1):
            blocks = [BasicBlock(cin, width, 1 if i == 1 else 2), BasicBlock(width, width, 1)]
            setattr(self, f"layer{i}", tnn.Sequential(*blocks))
            cin = width
        self.fc = tnn.Linear(512, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


BN_KEYS = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean", "running_var": "running_var"}


def resnet18_name_map(model):
    """{torch parameter/buffer name: our 'layer/param' name} for the entries of model."""
    m = {"conv1.weight": "conv1/weight", "fc.weight": "fc1000/weight", "fc.bias": "fc1000/bias"}
    m.update({f"bn1.{k}": f"bn_conv1/{v}" for k, v in BN_KEYS.items()})
    for i in range(1, 5):
        for j, letter in enumerate("ab"):
            t, tag = f"layer{i}.{j}", f"{i + 1}{letter}"
            parts = {"conv1": f"res{tag}_branch2a", "conv2": f"res{tag}_branch2b", "downsample.0": f"res{tag}_branch1"}
            bns = {"bn1": f"bn{tag}_branch2a", "bn2": f"bn{tag}_branch2b", "downsample.1": f"bn{tag}_branch1"}
            for tp, ours in parts.items():
                m[f"{t}.{tp}.weight"] = f"{ours}/weight"
            for tp, ours in bns.items():
                m.update({f"{t}.{tp}.{k}": f"{ours}/{v}" for k, v in BN_KEYS.items()})
    keys = set(model.state_dict())
    return {k: v for k, v in m.items() if k in keys}


def to_torch_value(net, ours_name, value):
    layer = net.layers[ours_name.rpartition("/")[0]]
    a = np.asarray(value, np.float32)
    if ours_name.endswith("/weight") and layer.type_name == "convolution_2d":
        return conv_to_torch(a)
    if ours_name.endswith("/weight") and layer.type_name == "linear":
        return linear_to_torch(a, layer.in_specs[0].shape)
    return a.reshape(-1)


def copy_into_torch(net, model, name_map):
    sd = model.state_dict()
    ours = net.parameters() | net.states()
    for tname, oname in name_map.items():
        v = to_torch_value(net, oname, ours[oname].to_numpy())
        assert tuple(sd[tname].shape) == v.shape, (tname, oname)
        sd[tname] = torch.from_numpy(v.copy())
    model.load_state_dict(sd)


def compare_grads(net, model, name_map, tol):
    grads = net.gradients()
    tparams = dict(model.named_parameters())
    worst = 0.0
    for tname, p in tparams.items():
        oname = name_map[tname]
        g = to_torch_value(net, oname, grads[oname].to_numpy())
        e = rel_err(g, p.grad.numpy())
        assert e < tol, f"gradient of {oname} ({tname}): relative error {e:.2e}"
        worst = max(worst, e)
    assert set(grads) == set(name_map[t] for t in tparams)
    return worst


# --- LeNet ---------------------------------------------------------------------------------------
def test_lenet_forward_backward_against_torch(device):
    from sukiyaki.data.mnist import load_mnist

    images, labels = load_mnist(split="train")
    src = (images[..., :8], labels[:, :8])
    net = Net(NETS / "lenet.json", device=device, data_sources={"d_train": src, "d_test": src}, seed=3)
    blobs, ctx = net.forward({"batch": range(8)}, "train", need_backward=True, keep=("data", "pred"))
    net.backward(blobs, ctx)
    x = blob_to_nchw(blobs["data"].to_numpy())
    assert x.shape == (8, 1, 28, 28)

    model = TorchLeNet()
    name_map = {f"{l}.{k}": f"{l}/{k}" for l in ("conv1", "conv2", "fc3", "fc4") for k in ("weight", "bias")}
    copy_into_torch(net, model, name_map)
    logits = model(torch.from_numpy(x))
    loss = F.cross_entropy(logits, torch.from_numpy(src[1][0].astype(np.int64)))
    loss.backward()

    ours = blobs["pred"].to_numpy().T
    ref = logits.detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(float(blobs["loss"].to_numpy().reshape(-1)[0]), loss.item(), rtol=1e-4)
    compare_grads(net, model, name_map, 1e-3)

    test_blobs, _ = net.forward({"batch": range(8)}, "test", keep=("pred",))
    np.testing.assert_allclose(test_blobs["pred"].to_numpy().T, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# --- ResNet-18 ----------------------------------------------------------------------------------
def resnet18_pair(defs, seed, device, input_specs=None, data_sources=None):
    """Our ResNet-18 with nontrivial batch-norm scale/shift, and the torch model with its weights."""
    rng = np.random.default_rng(seed)
    net = Net(defs, device=device, input_specs=input_specs, data_sources=data_sources, seed=seed)
    for key, v in net.parameters().items():   # the initial 1 and 0 would hide a gamma/beta swap
        shape = v.to_numpy().shape
        if key.endswith("/gamma"):
            net.set_parameter(key, rng.uniform(0.5, 1.5, shape))
        elif key.endswith("/beta"):
            net.set_parameter(key, rng.normal(0, 0.2, shape))
    model = TorchResNet18()
    name_map = resnet18_name_map(model)
    assert set(name_map) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert sum(v.numel for v in net.parameters().values()) == sum(p.numel() for p in model.parameters()) == 11_689_512
    copy_into_torch(net, model, name_map)
    return net, model, name_map


def check_running_stats(net, model, name_map, tol=1e-4):
    sd = model.state_dict()
    states = net.states()
    for tname, oname in name_map.items():
        if "running" in tname:
            e = rel_err(states[oname].to_numpy().reshape(-1), sd[tname].double().numpy())
            assert e < tol, f"{oname}: relative error {e:.2e}"


def test_resnet18_forward_backward_running_stats_eval_against_torch(device):
    """64x64 inputs (standard-normal, as normalised images), all gradients, against torch in
    float64 with the same float32 weights: ours stays within ~2e-5 of it, as torch's float32
    does. (At 224x224 the float32 results of both sometimes take the other side of a ReLU
    whose input is ~1e-6, which moves a whole channel's gradient: a tie, not an error.)"""
    from sukiyaki.nn.netdef import read_netdef

    n, size = 2, 64
    defs = [d for d in read_netdef(NETS / "resnet18.json") if d["type"] not in ("image_folder_data", "data_augmentation")]
    net, model, name_map = resnet18_pair(defs, 1, device, input_specs={"data": ((size, size, 3), "single"), "label": ((1,), "int32")})
    rng = np.random.default_rng(11)
    x = rng.standard_normal((size, size, 3, n)).astype(np.float32)
    labels = np.array([[3, 997]], np.int32)

    blobs, ctx = net.forward({"data": x, "label": labels}, "train", need_backward=True, keep=("fc1000", "pool1"))
    net.backward(blobs, ctx)
    assert blobs["pool1"].to_numpy().shape == (16, 16, 64, n)
    model = model.double().train()
    logits = model(torch.from_numpy(blob_to_nchw(x)).double())
    loss = F.cross_entropy(logits, torch.from_numpy(labels[0].astype(np.int64)))
    loss.backward()
    ref = logits.detach().numpy()
    np.testing.assert_allclose(blobs["fc1000"].to_numpy().T, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(float(blobs["loss"].to_numpy().reshape(-1)[0]), loss.item(), rtol=1e-4)
    compare_grads(net, model, name_map, 1e-3)
    check_running_stats(net, model, name_map)

    x2 = rng.standard_normal((size, size, 3, 3)).astype(np.float32)
    test_blobs, _ = net.forward({"data": x2, "label": np.zeros((1, 3), np.int32)}, "test", keep=("fc1000",))
    model.eval()
    with torch.no_grad():
        ref_eval = model(torch.from_numpy(blob_to_nchw(x2)).double()).numpy()
    np.testing.assert_allclose(test_blobs["fc1000"].to_numpy().T, ref_eval, rtol=1e-4, atol=1e-4 * np.abs(ref_eval).max())


def test_resnet18_shipped_definition_224_against_torch(device):
    """The shipped definition as is (data layers, 256x256 uint8 images cropped to 224): train-mode
    logits and loss, running statistics after one step, eval-mode logits, against torch float32."""
    rng = np.random.default_rng(0)
    n = 2
    images = rng.integers(0, 256, (256, 256, 3, n), dtype=np.uint8)
    labels = np.array([[3, 997]])
    net, model, name_map = resnet18_pair(NETS / "resnet18.json", 2, device,
                                         data_sources={"d_train": (images, labels), "d_test": (images, labels)})
    blobs, _ = net.forward({"batch": range(n)}, "train", seed=7, keep=("data", "fc1000", "pool1"))
    assert blobs["pool1"].to_numpy().shape == (56, 56, 64, n)
    x = blob_to_nchw(blobs["data"].to_numpy())
    assert x.shape == (n, 3, 224, 224)
    model.train()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    ref = logits.numpy()
    loss = F.cross_entropy(logits, torch.from_numpy(labels[0].astype(np.int64))).item()
    np.testing.assert_allclose(blobs["fc1000"].to_numpy().T, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(float(blobs["loss"].to_numpy().reshape(-1)[0]), loss, rtol=1e-4)
    check_running_stats(net, model, name_map)

    test_blobs, _ = net.forward({"batch": range(n)}, "test", keep=("data", "fc1000"))
    model.eval()
    with torch.no_grad():
        ref_eval = model(torch.from_numpy(blob_to_nchw(test_blobs["data"].to_numpy()))).numpy()
    np.testing.assert_allclose(test_blobs["fc1000"].to_numpy().T, ref_eval, rtol=1e-4, atol=1e-4 * np.abs(ref_eval).max())


# --- pooling conventions ----------------------------------------------------------------------
def pool_net(params, size=112, c=2, device="numpy"):
    layers = [{"name": "p", "type": "pooling_2d", "params": params, "inputs": ["x"], "outputs": ["y"]}]
    return Net(layers, device=device, input_specs={"x": ((size, size, c), "single")})


@pytest.mark.parametrize("params,torch_kw,out", [
    ({"type": "max", "ksize": 3, "stride": 2, "pad": 1, "cover_all": False}, {"padding": 1}, 56),   # resnet18.json
    ({"type": "max", "ksize": 3, "stride": 2, "pad": 0}, {"padding": 0, "ceil_mode": True}, 56),    # original ResNet-50
    ({"type": "average", "ksize": 3, "stride": 2, "pad": 1}, {"padding": 1, "count_include_pad": True}, 56),
])
def test_pooling_conventions_match_torch(params, torch_kw, out, device):
    x = np.random.default_rng(0).standard_normal((112, 112, 2, 2)).astype(np.float32)
    blobs, _ = pool_net(params, device=device).forward({"x": x}, "test", keep=("y",))
    y = blobs["y"].to_numpy()
    fn = F.max_pool2d if params["type"] == "max" else F.avg_pool2d
    ref = fn(torch.from_numpy(blob_to_nchw(x)), 3, 2, **torch_kw).numpy()
    assert y.shape == (out, out, 2, 2) and ref.shape == (2, 2, out, out)
    np.testing.assert_allclose(blob_to_nchw(y), ref, rtol=1e-6, atol=1e-6)


def test_cover_all_with_pad_is_not_torchvision():
    """Why resnet18.json sets cover_all false: with pad 1, our default cover_all (like torch's
    ceil_mode) gives 57, torchvision's floor mode 56. Like ceil_mode, cover_all drops a last
    window that would start in the padding (7, kernel 2, stride 2, pad 1: 4, not 5)."""
    net = pool_net({"type": "max", "ksize": 3, "stride": 2, "pad": 1})
    assert net.schedules["test"].specs["y"].shape == (57, 57, 2)
    assert tuple(F.max_pool2d(torch.zeros(1, 2, 112, 112), 3, 2, 1, ceil_mode=True).shape[2:]) == (57, 57)
    assert tuple(F.max_pool2d(torch.zeros(1, 2, 112, 112), 3, 2, 1).shape[2:]) == (56, 56)
    net = pool_net({"type": "max", "ksize": 2, "stride": 2, "pad": 1}, size=7)
    assert net.schedules["test"].specs["y"].shape == (4, 4, 2)
    assert tuple(F.max_pool2d(torch.zeros(1, 2, 7, 7), 2, 2, 1, ceil_mode=True).shape[2:]) == (4, 4)
