"""One helper set to test a layer against a reference, forward and backward (house style 7).

Layers are built through the registry from their JSON ``type`` and ``params``, their shapes
inferred from per-sample BlobSpecs, and run on numpy arrays in the (h, w, c, n) column-major
layout. ``check_backward`` is a numerical gradient check in the style of Chainer's: central
differences of ``sum(output * upstream)`` along a direction, compared with the directional
derivative that backward gives, for every input and parameter separately.

Example:
    >>> layer = make_layer("linear", {"out_size": 3}, [(4,)])
    >>> set_weights(layer, {"weight": np.ones((4, 3)), "bias": np.zeros(3)})
    >>> outs, ctx = run_forward(layer, [np.ones((4, 2), np.float32)])
    >>> outs[0].shape
    (3, 2)
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import sukiyaki.nn.layers  # noqa: F401  (registers the built-in layers)
from sukiyaki.matrix import Matrix, array, gather
from sukiyaki.nn.context import Context
from sukiyaki.nn.layer import BlobSpec, get_layer_class

LENET_JSON = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
COMPAT = SHARED / "compat"
LAYER_CASES = COMPAT / "sukiyaki2-layers" / "layer"
AUGMENT_CASE = COMPAT / "sukiyaki2-layers" / "data_augmentation"
NETDEFS = COMPAT / "sukiyaki2-netdef"

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")


def need_dir(path):
    """Skip the calling test when a shared data folder is absent."""
    if not Path(path).is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return Path(path)


# ---------------------------------------------------------------- numpy <-> Matrix


def mat(a, klass=None, device="numpy"):
    """Matrix on device of a numpy array in column-major order; 1-d arrays become (k, 1) columns.

    klass defaults from the dtype: floats 'single', other integers 'int32', uint8 'uint8'.
    """
    if isinstance(a, Matrix):
        return a if a.device == device else array(a, device=device)
    a = np.asarray(a)
    if klass is None:
        klass = "uint8" if a.dtype == np.uint8 else "single" if a.dtype.kind in "fc" else "int32"
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    dtype = {"single": np.float32, "int32": np.int32, "uint8": np.uint8}[klass]
    return array(np.asfortranarray(a.astype(dtype, copy=False)), klass=klass, device=device)


def npy(m):
    """numpy copy of a Matrix on any device (None stays None)."""
    if m is None:
        return None
    return np.array(gather(m).to_numpy())


def scalar(m):
    """The single value of a 1x1 Matrix (a loss or an accuracy) as a Python float."""
    a = npy(m)
    assert a.size == 1, f"expected one value, got shape {a.shape}"
    return float(a.reshape(-1)[0])


def matlab_shape(shape):
    """MATLAB size of a numpy shape: 1-d n is (n, 1), trailing singletons dropped."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def assert_close(got, expected, rtol=1e-4, atol=1e-5, what="value", check_shape=True):
    """Compare an array (or Matrix) with a reference of the same MATLAB size (column-major)."""
    g = npy(got) if isinstance(got, Matrix) else np.asarray(got)
    e = np.asarray(expected)
    assert g.size == e.size, f"{what}: {g.size} values {g.shape}, reference has {e.size} {e.shape}"
    if check_shape:
        assert matlab_shape(g.shape) == matlab_shape(e.shape), f"{what}: shape {g.shape}, reference {e.shape}"
    g = g.reshape(-1, order="F").astype(np.float64)
    e = e.reshape(-1, order="F").astype(np.float64)
    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------- layers


def make_layer(type_name, params=None, in_shapes=((1,),), klasses=None, name="l"):
    """A layer from its JSON type and params, with infer() run on per-sample input shapes."""
    cls = get_layer_class(type_name, name)
    layer = cls(name, dict(params or {}))
    klasses = klasses or ["single"] * len(in_shapes)
    specs = [BlobSpec(s, k) for s, k in zip(in_shapes, klasses)]
    layer.out_specs = list(layer.infer(specs))
    layer.in_specs = specs
    return layer


def set_weights(layer, weights, states=None, device="numpy"):
    """Set trainable parameters (and states) from copies of numpy arrays, on device (layers
    update states in place); clears gradients."""
    layer.weights = {k: mat(np.array(v, np.float32), device=device) for k, v in weights.items()}
    if states is not None:
        layer.states = {k: mat(np.array(v, np.float32), device=device) for k, v in states.items()}
    layer.grads = {}


def init_weights(layer, seed=0, device="numpy"):
    """Initialise parameters and states as a network would, from a seeded generator."""
    rng = np.random.default_rng(seed)
    set_weights(layer, layer.init_params(rng), layer.init_states(), device=device)
    return {k: npy(v) for k, v in layer.weights.items()}


def run_forward(layer, inputs, phase="train", seed=None, need_backward=True, device="numpy"):
    """Forward on numpy inputs (uploaded to device); returns (output Matrices, ctx).
    ctx.inputs holds the input Matrices; seed keys the layer's random draws."""
    ctx = Context(phase, need_backward=need_backward, device=device, seed=seed or 0)
    ins = [mat(x, device=device) for x in inputs]
    outs = layer.forward(ins, ctx)
    ctx.inputs = ins
    return outs, ctx


def run_backward(layer, outs, ctx, deltas):
    """Backward from numpy output deltas; returns (input deltas as numpy or None, {param: grad numpy})."""
    layer.grads = {}
    bottoms = layer.backward(ctx.inputs, outs, [mat(np.asarray(d, np.float32), device=ctx.device) for d in deltas], ctx)
    return [npy(b) for b in bottoms], {k: npy(v) for k, v in layer.grads.items()}


# ---------------------------------------------------------------- numerical gradients


def _objective(layer, inputs, weights, gys, phase, seed, states, device):
    set_weights(layer, weights, states, device)
    outs, _ = run_forward(layer, inputs, phase=phase, seed=seed, need_backward=False, device=device)
    return sum(float(np.sum(npy(o).astype(np.float64).reshape(-1, order="F") * g.reshape(-1, order="F")))
               for o, g in zip(outs, gys))


def check_backward(layer, inputs, weights=None, *, grad_inputs=None, states=None, phase="train", seed=0,
                   gys=None, eps=1e-2, rtol=1e-2, atol=1e-4, n_random=2, device="numpy"):
    """Numerical gradient check of one layer along directions (Chainer's check_backward).

    For each differentiable input and each parameter separately, the directional derivative
    of ``f = sum_k sum(out_k * gy_k)`` along d is computed by central differences (float64
    sums of float32 outputs) and compared with ``<grad, d>`` from backward. Directions: the
    analytic gradient itself (so a wrong factor or a transposition shows up as a gap between
    |g| and the slope) and ``n_random`` random normal directions, all scaled to max |d| = 1.

    Args:
        layer: a built layer (make_layer); its weights are replaced by ``weights``.
        inputs: numpy inputs; integer arrays (labels) are not differentiated.
        weights: {name: numpy} parameters (None: the layer has none).
        grad_inputs: indices of inputs to check (default: every float input).
        states: {name: numpy} non-trainable states, restored before every pass.
        phase, seed: phase and rng seed of every forward (fixed seed: same dropout mask).
        gys: upstream gradients (default: standard normal of the outputs' shapes).
        eps: step of the central differences (|d| <= 1, so no value moves more than eps).
        device: backend the layer runs on.
    Returns:
        (input gradients, parameter gradients) as numpy arrays, for further checks.
    """
    weights = {k: np.asarray(v, np.float32) for k, v in (weights or {}).items()}
    inputs = [np.asarray(x) for x in inputs]
    rng = np.random.default_rng(1234)
    set_weights(layer, weights, states, device)
    outs, ctx = run_forward(layer, inputs, phase=phase, seed=seed, device=device)
    if gys is None:
        gys = [rng.standard_normal(npy(o).shape) for o in outs]
    gys = [np.asarray(g, np.float64).reshape(npy(o).shape, order="F") for g, o in zip(gys, outs)]
    gx, gw = run_backward(layer, outs, ctx, [g.astype(np.float32) for g in gys])
    if grad_inputs is None:
        grad_inputs = [i for i, x in enumerate(inputs) if x.dtype.kind == "f"]
    targets = []
    for i in grad_inputs:
        assert gx[i] is not None, f"{layer.type_name}: backward gave no gradient for input {i}"
        assert gx[i].size == inputs[i].size, f"input {i}: gradient has {gx[i].size} values for {inputs[i].size}"
        targets.append((f"input {i}", "in", i, inputs[i], gx[i]))
    for k, w in weights.items():
        assert k in gw, f"{layer.type_name}: backward gave no gradient for parameter {k!r}"
        assert gw[k].size == w.size, f"param {k}: gradient has {gw[k].size} values for {w.size}"
        targets.append((f"param {k}", "w", k, w, gw[k]))

    for what, kind, key, value, grad in targets:
        g = grad.reshape(-1, order="F").astype(np.float64)
        dirs = [g] + [rng.standard_normal(value.size) for _ in range(n_random)]
        for j, d in enumerate(dirs):
            if not np.any(d):
                continue
            d = d / np.max(np.abs(d))
            flat = value.reshape(-1, order="F").astype(np.float64)
            plus = (flat + eps * d).astype(np.float32)
            minus = (flat - eps * d).astype(np.float32)
            fs = []
            for p in (plus, minus):
                arr = p.reshape(value.shape, order="F")
                ins = list(inputs)
                ws = dict(weights)
                if kind == "in":
                    ins[key] = arr
                else:
                    ws[key] = arr
                fs.append(_objective(layer, ins, ws, gys, phase, seed, states, device))
            numeric = (fs[0] - fs[1]) / (2 * eps)
            # the step that was really taken (after rounding to float32), over 2 eps
            analytic = float(np.dot(g, plus.astype(np.float64) - minus.astype(np.float64))) / (2 * eps)
            label = "gradient direction" if j == 0 else f"random direction {j}"
            assert abs(numeric - analytic) <= atol + rtol * abs(analytic), (
                f"{layer.type_name} {what}, {label}: numerical slope {numeric:.6g}, "
                f"backward gives {analytic:.6g}"
            )
    set_weights(layer, weights, states, device)
    return gx, gw


def distinct_values(shape, rng, spacing=0.05):
    """float32 array of distinct values (a shuffled grid) so max pooling has no ties."""
    n = int(np.prod(shape))
    vals = (np.arange(n) - n / 2) * spacing
    return rng.permutation(vals).astype(np.float32).reshape(shape, order="F")


def away_from_zero(shape, rng, margin=0.1):
    """Standard normal float32 values with |x| >= margin (ReLU has a kink at 0)."""
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < margin, np.sign(x + 1e-12) * (margin + np.abs(x)), x)
    return x.astype(np.float32)


# ---------------------------------------------------------------- PyTorch layouts


def to_torch_images(x):
    """(h, w, c, n) -> NCHW torch tensor (float64 for references)."""
    return torch.tensor(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))), dtype=torch.float64)


def from_torch_images(t):
    """NCHW torch tensor -> (h, w, c, n) numpy."""
    return np.transpose(t.detach().numpy(), (2, 3, 1, 0))


def to_torch_conv_weight(w):
    """(kh, kw, cin, cout) -> (cout, cin, kh, kw)."""
    return torch.tensor(np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1))), dtype=torch.float64)


def from_torch_conv_weight(t):
    """(cout, cin, kh, kw) -> (kh, kw, cin, cout)."""
    return np.transpose(t.detach().numpy(), (2, 3, 1, 0))


# ---------------------------------------------------------------- networks


def net_loss(net, inputs, phase="train", seed=0):
    """Sum of the phase's loss blobs for the given inputs (no backward bookkeeping)."""
    blobs, _ = net.forward(inputs, phase, need_backward=False, seed=seed)
    return sum(scalar(blobs[b]) for b in net.schedules[phase].losses)


def check_net_gradients(net, inputs, names=None, *, seed=0, eps=1e-2, rtol=2e-2, atol=1e-4, n_random=1):
    """Numerical check of a network's parameter gradients (train phase), per parameter tensor.

    The analytic gradients come from one ``train_batch``; each parameter is moved along the
    gradient direction and ``n_random`` random directions (max |d| = 1), the loss is
    recomputed by central differences and compared with the directional derivative.
    Returns the analytic gradients as {name: numpy}.
    """
    net.zero_grads()
    net.train_batch(inputs, seed=seed)
    grads = {k: npy(v) for k, v in net.gradients().items()}
    params = {k: npy(v) for k, v in net.parameters().items()}
    rng = np.random.default_rng(99)
    for name in names or sorted(params):
        assert name in grads, f"no gradient for parameter {name}"
        w, g = params[name].astype(np.float64), grads[name].astype(np.float64)
        assert g.shape == w.shape, f"{name}: gradient shape {g.shape}, parameter {w.shape}"
        for j, d in enumerate([g] + [rng.standard_normal(w.shape) for _ in range(n_random)]):
            if not np.any(d):
                continue
            d = d / np.max(np.abs(d))
            plus, minus = (w + eps * d).astype(np.float32), (w - eps * d).astype(np.float32)
            fs = []
            for p in (plus, minus):
                net.set_parameter(name, p)
                fs.append(net_loss(net, inputs, seed=seed))
            net.set_parameter(name, params[name])
            numeric = (fs[0] - fs[1]) / (2 * eps)
            analytic = float(np.sum(g * (plus.astype(np.float64) - minus.astype(np.float64)))) / (2 * eps)
            label = "gradient direction" if j == 0 else "random direction"
            assert abs(numeric - analytic) <= atol + rtol * abs(analytic), (
                f"{name}, {label}: numerical slope {numeric:.6g}, backward gives {analytic:.6g}")
    return grads


def lenet_with_randomness():
    """LeNet with random-crop/flip augmentation (28 -> 24) and dropout before the classifier."""
    defs = json.loads(LENET_JSON.read_text())
    out = []
    for d in defs:
        if d["type"] == "data_augmentation":
            d = copy.deepcopy(d)
            d["params"].update({"out_shape": [24, 24], "random_crop": True, "random_flip": True})
        out.append(d)
        if d["name"] == "relu3":
            out.append({"name": "drop", "type": "dropout", "params": {"dropout_ratio": 0.3},
                        "inputs": [d["outputs"][0]], "outputs": ["dropped"]})
    for d in out:
        if d["name"] == "fc4":
            d["inputs"] = ["dropped"]
        if d["name"] == "fc3":  # 24x24 crops: its input is smaller than LeNet's
            d["params"] = {k: v for k, v in d["params"].items() if k not in ("in_shape", "in_size")}
    return out
