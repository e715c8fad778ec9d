"""Net semantics: a DAG whose blobs used twice get summed gradients, branch/plus blocks,
phases (and gradient flags per phase), dropout masks keyed by sample id, file order that is
not topological, freeing of blobs, batches of one, and user-registered layers used from JSON.

Every test that runs a network takes the ``device`` fixture and runs on each backend present
(numpy, strict, and cuda/webgpu where they exist); tests about planning or about errors
raised before anything runs do not.
"""


from pathlib import Path

import numpy as np
import pytest

import sukiyaki.matrix as M
from device_check import numpy_device_allclose
from sukiyaki.backends import get_backend
from sukiyaki.nn import LAYER_TYPES, Layer, Net, register_layer


import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)


def L(name, type_, inputs, outputs, params=None, **extra):
    d = {"name": name, "type": type_, "params": params or {}, "inputs": inputs, "outputs": outputs}
    d.update(extra)
    return d


def vec_inputs(d, n=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((d, n)).astype(np.float32),
            "t": rng.integers(0, classes, (1, n)).astype(np.int32)}


VEC = {"x": ((4,), "single"), "t": ((1,), "int32")}


def copy_parameters(src, dst):
    for k, v in src.parameters().items():
        dst.set_parameter(k, H.npy(v))


# ---------------------------------------------------------------- gradients of shared blobs

# h feeds fc2 directly and tanh -> fc3; the two paths meet again in plus
SHARED_BLOB = [
    L("fc1", "linear", ["x"], ["h"], {"out_size": 5}),
    L("fc2", "linear", ["h"], ["a"], {"out_size": 3}),
    L("act", "tanh", ["h"], ["th"]),
    L("fc3", "linear", ["th"], ["b"], {"out_size": 3}),
    L("sum", "plus", ["a", "b"], ["s"]),
    L("loss", "softmax_cross_entropy", ["s", "t"], ["loss"]),
]

# the same network in the original's style: an explicit branch layer
SHARED_BLOB_BRANCH = [
    L("fc1", "linear", ["x"], ["h0"], {"out_size": 5}),
    L("br", "branch", ["h0"], ["h", "h_"], {"n_output": 2}),
    L("fc2", "linear", ["h"], ["a"], {"out_size": 3}),
    L("act", "tanh", ["h_"], ["th"]),
    L("fc3", "linear", ["th"], ["b"], {"out_size": 3}),
    L("sum", "plus", ["a", "b"], ["s"]),
    L("loss", "softmax_cross_entropy", ["s", "t"], ["loss"]),
]


def test_blob_used_twice_gets_the_sum_of_both_gradients(device):
    net = Net(SHARED_BLOB, device=device, input_specs=VEC, seed=1)
    inputs = vec_inputs(4)
    grads = H.check_net_gradients(net, inputs, eps=1e-2)
    # fc1's gradient is the sum of what comes through fc2 and through tanh/fc3; either alone is wrong
    x = inputs["x"].astype(np.float64)
    P = {k: H.npy(v).astype(np.float64) for k, v in net.parameters().items()}
    h = P["fc1/weight"].T @ x + P["fc1/bias"]
    th = np.tanh(h)
    s = P["fc2/weight"].T @ h + P["fc2/bias"] + P["fc3/weight"].T @ th + P["fc3/bias"]
    p = np.exp(s - s.max(0))
    p /= p.sum(0)
    ds = (p - np.eye(3)[inputs["t"][0]].T) / x.shape[1]
    dh_direct = P["fc2/weight"] @ ds
    dh_tanh = (P["fc3/weight"] @ ds) * (1 - th**2)
    np.testing.assert_allclose(grads["fc1/weight"], x @ (dh_direct + dh_tanh).T, rtol=1e-4, atol=1e-6)
    assert not np.allclose(grads["fc1/weight"], x @ dh_direct.T, rtol=1e-2)
    assert not np.allclose(grads["fc1/weight"], x @ dh_tanh.T, rtol=1e-2)


def test_dag_and_explicit_branch_give_the_same_gradients(device):
    dag = Net(SHARED_BLOB, device=device, input_specs=VEC, seed=1)
    orig = Net(SHARED_BLOB_BRANCH, device=device, input_specs=VEC, seed=1)
    copy_parameters(dag, orig)
    inputs = vec_inputs(4, seed=3)
    la, lb = dag.train_batch(inputs), orig.train_batch(inputs)
    assert float(la["loss"]) == pytest.approx(float(lb["loss"]), rel=1e-6)
    ga, gb = dag.gradients(), orig.gradients()
    assert set(ga) == set(gb)
    for k in ga:
        H.assert_close(ga[k], H.npy(gb[k]), rtol=1e-5, atol=1e-7, what=k)


def test_blob_used_twice_by_one_layer(device):
    """plus(h, h) doubles h: its gradient must count both uses."""
    defs = [L("fc1", "linear", ["x"], ["h"], {"out_size": 3}),
            L("twice", "plus", ["h", "h"], ["s"]),
            L("loss", "softmax_cross_entropy", ["s", "t"], ["loss"])]
    net = Net(defs, device=device, input_specs=VEC, seed=2)
    H.check_net_gradients(net, vec_inputs(4, seed=4))


def test_two_losses_sharing_a_blob(device):
    """Both losses get the upstream 1 and their gradients add in the shared layers."""
    defs = [L("fc1", "linear", ["x"], ["h"], {"out_size": 3}),
            L("sig", "sigmoid", ["h"], ["sh"]),
            L("l1", "softmax_cross_entropy", ["h", "t"], ["loss1"]),
            L("l2", "loss", ["sh", "y"], ["loss2"])]
    specs = dict(VEC, y=((3,), "single"))
    net = Net(defs, device=device, input_specs=specs, seed=5)
    inputs = vec_inputs(4, seed=6) | {"y": np.random.default_rng(7).random((3, 5)).astype(np.float32)}
    assert net.schedules["train"].losses == ["loss1", "loss2"]
    H.check_net_gradients(net, inputs)


@pytest.mark.parametrize("dead_end", [False, True])
def test_unused_output_of_a_branch_gets_zero_gradient(dead_end, device):
    """h2 is read by no layer; with dead_end, h3 feeds a relu whose output reaches no loss.
    Neither adds to fc1's gradient: it equals that of the network without the branch."""
    defs = [L("fc1", "linear", ["x"], ["h"], {"out_size": 3}),
            L("br", "branch", ["h"], ["h1", "h2", "h3"], {"n_output": 3}),
            L("loss", "softmax_cross_entropy", ["h1", "t"], ["loss"])]
    if dead_end:
        defs.append(L("probe", "relu", ["h3"], ["r"]))
    net = Net(defs, device=device, input_specs=VEC, seed=3)
    inputs = vec_inputs(4, seed=8)
    grads = H.check_net_gradients(net, inputs)
    plain = Net([defs[0], L("loss", "softmax_cross_entropy", ["h", "t"], ["loss"])], device=device,
                input_specs=VEC, seed=3)
    copy_parameters(net, plain)
    plain.train_batch(inputs)
    for k, g in plain.gradients().items():
        H.assert_close(grads[k], H.npy(g), rtol=1e-6, atol=1e-7, what=k)


# ---------------------------------------------------------------- ResNet-style blocks

CONV = {"ksize": 3, "pad": 1}


def resnet_block(style, act="relu"):
    """conv-bn-act, then a residual block (conv-bn-act-conv-bn plus the identity), act,
    global average pooling and a classifier; style 'branch' splits with an explicit branch
    layer (the original's way), 'dag' uses the blob twice."""
    head = [
        L("conv0", "convolution_2d", ["x"], ["c0"], {"in_size": 2, "out_size": 4, **CONV, "bias": False}),
        L("bn0", "batch_normalization", ["c0"], ["b0"], {"in_size": 4, "target_dim": 3}),
        L("relu0", act, ["b0"], ["r0"]),
    ]
    if style == "branch":
        head.append(L("split", "branch", ["r0"], ["skip", "main"], {"n_output": 2}))
        skip, main = "skip", "main"
    else:
        skip = main = "r0"
    body = [
        L("conv1", "convolution_2d", [main], ["c1"], {"in_size": 4, "out_size": 4, **CONV, "bias": False}),
        L("bn1", "batch_normalization", ["c1"], ["b1"], {"in_size": 4, "target_dim": 3}),
        L("relu1", act, ["b1"], ["r1"]),
        L("conv2", "convolution_2d", ["r1"], ["c2"], {"in_size": 4, "out_size": 4, **CONV}),
        L("bn2", "batch_normalization", ["c2"], ["b2"], {"in_size": 4, "target_dim": 3}),
        L("res", "plus", [skip, "b2"], ["s"], {"n_input": 2}),
        L("relu2", act, ["s"], ["r2"]),
        L("gap", "pooling_2d", ["r2"], ["g"], {"type": "average", "global_pool": True}),
        L("fc", "linear", ["g"], ["y"], {"out_size": 3}),
        L("loss", "softmax_cross_entropy", ["y", "t"], ["loss"]),
    ]
    return head + body


IMG = {"x": ((5, 4, 2), "single"), "t": ((1,), "int32")}


def img_inputs(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((5, 4, 2, n)).astype(np.float32),
            "t": rng.integers(0, 3, (1, n)).astype(np.int32)}


@pytest.mark.parametrize("style", ["branch", "dag"])
def test_resnet_block_gradients_numerically(style, device):
    """With tanh for relu: after batch normalisation many values sit near relu's kink, where
    central differences are meaningless (the relu block is compared with PyTorch below)."""
    net = Net(resnet_block(style, act="tanh"), device=device, input_specs=IMG, seed=4)
    H.check_net_gradients(net, img_inputs(), eps=1e-3, rtol=2e-2, atol=2e-4)


@H.needs_torch
def test_resnet_block_vs_torch(device):
    import torch
    import torch.nn.functional as F

    net = Net(resnet_block("branch"), device=device, input_specs=IMG, seed=4)
    inputs = img_inputs(seed=6)
    net.train_batch(inputs, loss_scale=1.0)
    P = {k: torch.tensor(H.npy(v).astype(np.float64), requires_grad=True) for k, v in net.parameters().items()}

    def conv(x, name, bias):
        w = P[f"{name}/weight"].permute(3, 2, 0, 1)
        b = P[f"{name}/bias"].reshape(-1) if bias else None
        return F.conv2d(x, w, b, padding=1)

    def bn(x, name):
        return F.batch_norm(x, None, None, P[f"{name}/gamma"].reshape(-1), P[f"{name}/beta"].reshape(-1),
                            training=True, eps=1e-5)

    x = H.to_torch_images(inputs["x"])
    r0 = F.relu(bn(conv(x, "conv0", False), "bn0"))
    r1 = F.relu(bn(conv(r0, "conv1", False), "bn1"))
    s = F.relu(r0 + bn(conv(r1, "conv2", True), "bn2"))
    g = s.mean(dim=(2, 3))  # (n, c): a 1x1xc blob flattens to its c channels
    y = g @ P["fc/weight"] + P["fc/bias"].reshape(1, -1)
    loss = F.cross_entropy(y, torch.tensor(inputs["t"][0], dtype=torch.long))
    loss.backward()
    assert H.net_loss(net, inputs) == pytest.approx(loss.item(), rel=1e-5)
    grads = net.gradients()
    assert set(grads) == set(P)
    for k, t in P.items():
        H.assert_close(grads[k], t.grad.numpy(), rtol=1e-4, atol=1e-5, what=k)


def test_resnet_block_branch_and_dag_agree(device):
    a = Net(resnet_block("branch"), device=device, input_specs=IMG, seed=4)
    b = Net(resnet_block("dag"), device=device, input_specs=IMG, seed=9)
    copy_parameters(a, b)
    inputs = img_inputs(seed=2)
    assert float(a.train_batch(inputs)["loss"]) == pytest.approx(float(b.train_batch(inputs)["loss"]), rel=1e-6)
    ga, gb = a.gradients(), b.gradients()
    assert set(ga) == set(gb)
    for k in ga:
        H.assert_close(ga[k], H.npy(gb[k]), rtol=1e-5, atol=1e-6, what=k)


# ---------------------------------------------------------------- phases

PHASED = [
    L("fc1", "linear", ["x"], ["h"], {"out_size": 6}),
    L("drop", "dropout", ["h"], ["hd"], {"dropout_ratio": 0.5}),
    L("fc2", "linear", ["hd"], ["y"], {"out_size": 3}),
    L("loss", "softmax_cross_entropy", ["y", "t"], ["loss"]),
    L("acc", "accuracy", ["y", "t"], ["accuracy"], phase="test"),
    L("noise", "sigmoid", ["x"], ["train_only"], phase=["train"]),
]


def test_phases_select_layers(device):
    net = Net(PHASED, device=device, input_specs=VEC)
    train = [d["name"] for d in net.schedules["train"].order]
    test = [d["name"] for d in net.schedules["test"].order]
    assert "acc" not in train and "noise" in train
    assert "acc" in test and "noise" not in test
    inputs = vec_inputs(4)
    blobs, _ = net.forward(inputs, "test")
    assert set(blobs) == {"loss", "accuracy"}
    blobs, _ = net.forward(inputs, "train", seed=0)
    assert set(blobs) == {"loss", "train_only"}


def test_dropout_is_identity_in_test_and_masks_in_train(device):
    net = Net(PHASED, device=device, input_specs=VEC, seed=1)
    inputs = vec_inputs(4, n=50)
    blobs, _ = net.forward(inputs, "test", keep=["h", "hd", "y"])
    np.testing.assert_array_equal(H.npy(blobs["hd"]), H.npy(blobs["h"]))
    P = {k: H.npy(v) for k, v in net.parameters().items()}
    h = P["fc1/weight"].T @ inputs["x"] + P["fc1/bias"]
    H.assert_close(blobs["y"], P["fc2/weight"].T @ h + P["fc2/bias"], rtol=1e-4, atol=1e-5)
    blobs, _ = net.forward(inputs, "train", keep=["h", "hd"], seed=0)
    h, hd = H.npy(blobs["h"]), H.npy(blobs["hd"])
    dropped = hd == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(hd[~dropped], 2 * h[~dropped], rtol=1e-6)
    # the same seed gives the same mask, so the train loss is a function of the parameters
    H.check_net_gradients(net, inputs, names=["fc1/weight", "fc2/weight"], seed=3)


def test_train_only_and_test_only_layers_share_the_rest(device):
    """Layers in both phases use the same parameters: the test loss equals the train loss
    when nothing random is active."""
    defs = [d | {} for d in PHASED if d["name"] != "drop"]
    defs[1] = L("fc2", "linear", ["h"], ["y"], {"out_size": 3})
    net = Net(defs, device=device, input_specs=VEC)
    inputs = vec_inputs(4)
    assert H.net_loss(net, inputs, "train") == pytest.approx(H.net_loss(net, inputs, "test"), rel=1e-6)


def _dropout_net(device, ratio=0.5):
    """data -> dropout over 12 samples of ones (3, 4, 2): the train output is the mask itself."""
    defs = [L("data", "mnist_data", ["batch"], ["x", "t"]),
            L("drop", "dropout", ["x"], ["xd"], {"dropout_ratio": ratio})]
    source = (np.ones((3, 4, 2, 12), np.float32), np.zeros(12, np.int32))
    return Net(defs, device=device, data_sources={"data": source})


def _masks(device, batch, seed=11, iteration=5):
    """(24, len(batch)) float32 dropout outputs for the given sample ids."""
    blobs, _ = _dropout_net(device).forward({"batch": batch}, "train", keep=["xd"], seed=seed, iteration=iteration)
    return H.npy(blobs["xd"]).reshape(24, len(batch), order="F")


def test_dropout_masks_are_bit_equal_across_backends_and_batch_compositions(device):
    """A sample's mask depends on (seed, layer name, iteration, sample id) only: the column of
    sample 7 is the same in the batches [7, 3] and [1, 7, 9], through a data layer or with the
    ids set on a Context, bit for bit on numpy and on every backend, and it is the host Philox
    reference's (keep where u >= ratio)."""
    from sukiyaki.backends.numpy.philox import philox_uniform
    from sukiyaki.nn.context import Context, layer_key

    u = philox_uniform(layer_key(11, "drop"), 5, np.array([7, 3, 1, 9], np.uint32), 24)
    expected = {i: np.where(u[:, j] >= np.float32(0.5), np.float32(2), np.float32(0))
                for j, i in enumerate((7, 3, 1, 9))}
    assert 0.2 < (expected[7] == 0).mean() < 0.8
    assert not np.array_equal(expected[7], expected[3])  # not one mask for every sample
    for dev in ("numpy", device):
        a, b = _masks(dev, [7, 3]), _masks(dev, [1, 7, 9])
        for got, ids in ((a, [7, 3]), (b, [1, 7, 9])):
            for j, i in enumerate(ids):
                np.testing.assert_array_equal(got[:, j], expected[i], err_msg=f"{dev}: sample {i} in batch {ids}")
        # the same ids through a Context, on the layer alone
        net = _dropout_net(dev)
        layer = net.layers["drop"]
        ctx = Context("train", need_backward=False, device=dev, seed=11, iteration=5, sample_ids=[1, 7, 9])
        out = layer.forward([H.mat(np.ones((3, 4, 2, 3), np.float32), device=dev)], ctx)[0]
        np.testing.assert_array_equal(H.npy(out).reshape(24, 3, order="F"), b, err_msg=f"{dev}: Context ids")
    # another iteration draws another mask
    assert not np.array_equal(_masks(device, [7, 3], iteration=6)[:, 0], expected[7])


PHASE_SPLIT = [
    L("convA", "convolution_2d", ["x"], ["h"], {"in_size": 2, "out_size": 2, "ksize": 3, "pad": 1},
      phase=["train"]),
    L("act", "relu", ["x"], ["h"], phase=["test"]),
    L("convB", "convolution_2d", ["h"], ["c"], {"in_size": 2, "out_size": 3, "ksize": 3, "pad": 1}),
    L("gap", "pooling_2d", ["c"], ["g"], {"type": "average", "global_pool": True}),
    L("loss", "softmax_cross_entropy", ["g", "t"], ["loss"]),
]


def test_a_layer_in_both_phases_takes_its_gradient_flags_from_the_phase_run(device):
    """convB reads h, made by convA in training (its input needs a gradient) and by a relu of
    x in testing (no gradient). The defect: flags taken from the last phase planned ('test')
    left convA with no gradient in training. It must get its true, nonzero gradient, also
    after a test-phase pass."""
    net = Net(PHASE_SPLIT, device=device, input_specs=IMG, seed=2)
    assert net.schedules["train"].input_grad["convB"] == [True]
    assert net.schedules["test"].input_grad["convB"] == [False]
    inputs = img_inputs(seed=3)
    net.forward(inputs, "test")  # the test phase's flags were the last used
    grads = H.check_net_gradients(net, inputs, names=["convA/weight", "convA/bias", "convB/weight"])
    assert np.abs(grads["convA/weight"]).max() > 1e-3 and np.abs(grads["convA/bias"]).max() > 1e-4
    net.forward(inputs, "test")
    net.zero_grads()
    net.train_batch(inputs)
    for k, g in net.gradients().items():
        H.assert_close(g, grads[k], rtol=1e-6, atol=1e-7, what=f"{k} after a test pass")


# ---------------------------------------------------------------- file order

ORDERED = [
    L("conv", "convolution_2d", ["x"], ["c"], {"in_size": 2, "out_size": 3, "ksize": 2}),
    L("pool", "pooling_2d", ["c"], ["p"], {"type": "max", "ksize": 2, "stride": 2}),
    L("br", "branch", ["p"], ["p1", "p2"]),
    L("act", "relu", ["p1"], ["r"]),
    L("cat", "concat", ["r", "p2"], ["cc"], {"axis": 3}),
    L("flat", "flatten", ["cc"], ["f"]),
    L("fc", "linear", ["f"], ["y"], {"out_size": 3}),
    L("loss", "softmax_cross_entropy", ["y", "t"], ["loss"]),
]


def test_unsorted_file_order_still_runs(device):
    ordered = Net(ORDERED, device=device, input_specs=IMG, seed=0)
    shuffled_defs = [ORDERED[i] for i in (7, 4, 0, 6, 2, 5, 3, 1)]
    shuffled = Net(shuffled_defs, device=device, input_specs=IMG, seed=5)
    copy_parameters(ordered, shuffled)
    order = [d["name"] for d in shuffled.schedules["train"].order]
    for a, b in zip(ORDERED, ORDERED[1:]):
        if set(a["outputs"]) & set(b["inputs"]):
            assert order.index(a["name"]) < order.index(b["name"])
    inputs = img_inputs(seed=1)
    assert float(ordered.train_batch(inputs)["loss"]) == pytest.approx(float(shuffled.train_batch(inputs)["loss"]),
                                                                      rel=1e-6)
    for k, g in ordered.gradients().items():
        H.assert_close(shuffled.gradients()[k], H.npy(g), rtol=1e-6, atol=1e-7, what=k)
    H.check_net_gradients(shuffled, inputs)


def test_file_order_breaks_ties():
    defs = [L("b", "relu", ["x"], ["y1"]), L("a", "tanh", ["x"], ["y2"]), L("c", "sigmoid", ["x"], ["y3"])]
    net = Net(defs, input_specs=VEC)
    assert [d["name"] for d in net.schedules["test"].order] == ["b", "a", "c"]


# ---------------------------------------------------------------- freeing blobs

FREED = [
    L("fc1", "linear", ["x"], ["h"], {"out_size": 5}),
    L("act", "relu", ["h"], ["r"]),
    L("fc2", "linear", ["r"], ["y"], {"out_size": 3}),
    L("prob", "softmax", ["y"], ["p"]),
    L("loss", "softmax_cross_entropy", ["y", "t"], ["loss"]),
]


def test_forward_without_backward_keeps_only_losses_outputs_and_requested(device):
    net = Net(FREED, device=device, input_specs=VEC)
    inputs = vec_inputs(4)
    blobs, _ = net.forward(inputs, "test")
    assert set(blobs) == {"loss", "p"}
    blobs, _ = net.forward(inputs, "train", keep=["h", "x"])
    assert set(blobs) == {"loss", "p", "h", "x"}
    H.assert_close(blobs["x"], inputs["x"], what="kept input")


def test_forward_for_backward_keeps_what_backward_reads(device):
    net = Net(FREED, device=device, input_specs=VEC)
    sched = net.schedules["train"]
    # linear reads its input, relu and softmax their output; the labels need no gradient
    assert {"x", "r", "y"} <= sched.keep
    assert "fc1" in sched.grad_layers and "act" in sched.grad_layers
    blobs, ctx = net.forward(vec_inputs(4), "train", need_backward=True)
    assert {"x", "r", "y", "loss"} <= set(blobs)
    net.zero_grads()
    net.backward(blobs, ctx)
    assert set(net.gradients()) == {"fc1/weight", "fc1/bias", "fc2/weight", "fc2/bias"}


def test_no_gradient_flows_into_network_inputs_and_labels():
    net = Net(FREED, input_specs=VEC)
    fc1 = net.layers["fc1"]
    loss = net.layers["loss"]
    assert fc1.input_needs_grad == [False]
    assert loss.input_needs_grad == [True, False]


def test_loss_scale_and_accumulation(device):
    net = Net(FREED, device=device, input_specs=VEC, seed=2)
    inputs = vec_inputs(4)
    net.train_batch(inputs)
    once = {k: H.npy(v) for k, v in net.gradients().items()}
    net.train_batch(inputs, loss_scale=0.25)
    for k, v in net.gradients().items():
        H.assert_close(v, 1.25 * once[k], rtol=1e-5, atol=1e-7, what=k)
    net.zero_grads()
    # gradients always exist for trained parameters (views into the store): zeroed, not removed
    assert set(net.gradients()) == set(once)
    for k, v in net.gradients().items():
        np.testing.assert_array_equal(H.npy(v), np.zeros_like(once[k]), err_msg=k)
    net.train_batch(inputs, loss_scale=3.0)
    for k, v in net.gradients().items():
        H.assert_close(v, 3 * once[k], rtol=1e-5, atol=1e-7, what=k)


# ---------------------------------------------------------------- batch of one


def test_batch_of_one_images(device):
    """(h, w, 1, 1) blobs are (h, w) matrices (MATLAB drops trailing singletons)."""
    defs = [L("conv", "convolution_2d", ["x"], ["c"], {"in_size": 1, "out_size": 1, "ksize": 3, "pad": 1}),
            L("bn", "batch_normalization", ["c"], ["b"], {"in_size": 1, "target_dim": 3}),
            L("pool", "pooling_2d", ["b"], ["p"], {"type": "max", "ksize": 2}),
            L("fc", "linear", ["p"], ["y"], {"out_size": 1}),
            L("loss", "loss", ["y", "target"], ["loss"])]
    specs = {"x": ((6, 6, 1), "single"), "target": ((1,), "single")}
    net = Net(defs, device=device, input_specs=specs, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 6, 1, 1)).astype(np.float32)
    blobs, _ = net.forward({"x": x, "target": np.ones((1, 1), np.float32)}, "test", keep=["c", "p", "y"])
    assert blobs["c"].shape == (6, 6) and blobs["p"].shape == (3, 3) and blobs["y"].shape == (1, 1)
    # one sample alone gives the same scores as in a batch of two (test phase)
    x2 = np.concatenate([x, rng.standard_normal((6, 6, 1, 1)).astype(np.float32)], axis=3)
    blobs2, _ = net.forward({"x": x2, "target": np.ones((1, 2), np.float32)}, "test", keep=["y"])
    H.assert_close(blobs["y"], H.npy(blobs2["y"])[:, :1], rtol=1e-5, atol=1e-6, what="y of sample 0")
    out = net.train_batch({"x": x, "target": np.ones((1, 1), np.float32)})
    assert out["loss"].device == device and np.isfinite(float(out["loss"]))
    shapes = {k: tuple(v.shape) for k, v in net.gradients().items()}
    assert shapes["conv/weight"] == (3, 3) and shapes["fc/weight"] == (9, 1)


def test_batch_of_one_gradient_equals_batch_of_copies(device):
    net = Net(ORDERED, device=device, input_specs=IMG, seed=3)
    inputs = img_inputs(n=1, seed=5)
    H.check_net_gradients(net, inputs)
    one = {k: H.npy(v) for k, v in net.gradients().items()}
    net.zero_grads()
    doubled = {"x": np.concatenate([inputs["x"].reshape(5, 4, 2, 1)] * 2, axis=3),
               "t": np.concatenate([inputs["t"]] * 2, axis=1)}
    net.train_batch(doubled)
    for k, g in net.gradients().items():
        H.assert_close(g, one[k], rtol=1e-5, atol=1e-7, what=k)


@numpy_device_allclose(rtol=1e-5, atol=1e-5)
def test_lenet_batch_of_one(device):
    """The original's LeNet on one sample; every backend gives numpy's scores, loss and gradients."""
    path = H.need_dir(H.NETDEFS) / "lenet.json"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (28, 28, 1, 3), dtype=np.uint8)
    net = Net(path, device=device, data_sources={"d_train": (images, [1, 2, 3]), "d_test": (images, [1, 2, 3])})
    blobs, _ = net.forward({"batch": [2]}, "test", keep=["pred", "pool2", "data"])
    assert blobs["data"].shape == (28, 28) and blobs["pool2"].shape == (4, 4, 50) and blobs["pred"].shape == (10, 1)
    all3, _ = net.forward({"batch": [0, 1, 2]}, "test", keep=["pred"])
    H.assert_close(blobs["pred"], H.npy(all3["pred"])[:, 2:], rtol=1e-5, atol=1e-5, what="pred")
    loss = net.train_batch({"batch": [1]})["loss"]
    assert np.isfinite(float(loss))
    return {"pred": blobs["pred"], "loss": loss, **net.gradients()}


# ---------------------------------------------------------------- user layers


@pytest.fixture
def scale_layer():
    """A user layer 'test_scale_shift': y = a * x + b with per-channel a, b (first dim)."""

    @register_layer
    class ScaleShift(Layer):
        type_name = "test_scale_shift"
        defaults = {"size": None, "init_scale": 1.0}

        def infer(self, in_specs):
            self.expect_inputs(in_specs)
            if in_specs[0].shape[0] != self.params["size"]:
                raise self.error(f"size is {self.params['size']} but the input is {in_specs[0]}")
            return [in_specs[0]]

        def param_shapes(self):
            return {"a": (self.params["size"],), "b": (self.params["size"],)}

        def init_params(self, rng):
            k = self.params["size"]
            return {"a": np.full(k, self.params["init_scale"], np.float32), "b": np.zeros(k, np.float32)}

        # written with sukiyaki.matrix functions only: it runs on every backend, on the device
        def forward(self, inputs, ctx):
            return [inputs[0] * self.weights["a"] + self.weights["b"]]

        def backward(self, inputs, outputs, deltas, ctx):
            x, dy = inputs[0], deltas[0]
            self.accumulate_grad("a", M.sum(x * dy, 2))
            self.accumulate_grad("b", M.sum(dy, 2))
            return [dy * self.weights["a"]]

    yield ScaleShift
    LAYER_TYPES.pop("test_scale_shift", None)


def test_registered_layer_from_json(scale_layer, device):
    text = """[
      {"name": "fc", "type": "linear", "params": {"out_size": 3}, "inputs": ["x"], "outputs": ["h"]},
      {"name": "ss", "type": "test_scale_shift", "params": {"size": 3, "init_scale": 2.0},
       "inputs": ["h"], "outputs": ["y"]},
      {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["y", "t"], "outputs": ["loss"]}
    ]"""
    net = Net(text, device=device, input_specs=VEC, seed=1)
    assert isinstance(net.layers["ss"], scale_layer)
    assert H.npy(net.parameters()["ss/a"]).reshape(-1).tolist() == [2.0, 2.0, 2.0]
    inputs = vec_inputs(4)
    blobs, _ = net.forward(inputs, "test", keep=["h", "y"])
    H.assert_close(blobs["y"], 2 * H.npy(blobs["h"]), what="user layer output")
    net.set_parameter("ss/b", np.array([0.5, -1.0, 0.25], np.float32))
    grads = H.check_net_gradients(net, inputs)
    assert set(grads) == {"fc/weight", "fc/bias", "ss/a", "ss/b"}
    assert net.layers["ss"].get_config() == {"name": "ss", "type": "test_scale_shift",
                                            "params": {"size": 3, "init_scale": 2.0}}


def test_registered_layer_parameters_are_checked(scale_layer):
    with pytest.raises(ValueError, match=r"test_scale_shift 'ss'.*unknown parameter\(s\) bogus"):
        Net([L("ss", "test_scale_shift", ["x"], ["y"], {"size": 4, "bogus": 1})], input_specs=VEC)
    with pytest.raises(ValueError, match=r"test_scale_shift 'ss'.*size is 3"):
        Net([L("ss", "test_scale_shift", ["x"], ["y"], {"size": 3})], input_specs=VEC)


def test_register_layer_needs_a_type_name():
    with pytest.raises(ValueError, match="type_name"):
        @register_layer
        class Nameless(Layer):
            pass


@pytest.fixture
def l1_loss():
    """A user loss layer: mean |x - y|, marked is_loss so the network starts backward there."""

    @register_layer
    class L1(Layer):
        type_name = "test_l1_loss"
        n_inputs = 2
        is_loss = True

        def infer(self, in_specs):
            self.expect_inputs(in_specs)
            return [type(in_specs[0])((1,), "single")]

        def forward(self, inputs, ctx):
            d = inputs[0] - inputs[1]
            return [M.sum(M.reshape(M.abs(d), -1, 1)) / d.numel]

        def backward(self, inputs, outputs, deltas, ctx):
            d = inputs[0] - inputs[1]
            g = M.sign(d) * (deltas[0] / d.numel)
            return [g, -g]

    yield L1
    LAYER_TYPES.pop("test_l1_loss", None)


def test_registered_loss_layer(l1_loss, device):
    defs = [L("fc", "linear", ["x"], ["h"], {"out_size": 2}),
            L("l1", "test_l1_loss", ["h", "y"], ["err"])]
    net = Net(defs, device=device, input_specs={"x": ((4,), "single"), "y": ((2,), "single")}, seed=2)
    assert net.schedules["train"].losses == ["err"]
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((4, 6)).astype(np.float32),
              "y": (rng.standard_normal((2, 6)) * 5).astype(np.float32)}  # far from the kink at 0
    H.check_net_gradients(net, inputs, eps=1e-2)


@numpy_device_allclose(rtol=1e-5, atol=1e-6)
def test_registered_layers_train_on_the_device(scale_layer, l1_loss, device):
    """User layers written with sukiyaki.matrix functions (test_scale_shift, test_l1_loss) run on
    the network's device: a training step reads nothing back to the host (counted on the
    strict backend), the loss matches float64 numpy, and every backend gives numpy's loss and
    gradients."""
    defs = [L("fc", "linear", ["x"], ["h"], {"out_size": 2}),
            L("ss", "test_scale_shift", ["h"], ["s"], {"size": 2, "init_scale": 1.5}),
            L("l1", "test_l1_loss", ["s", "y"], ["err"])]
    net = Net(defs, device=device, input_specs={"x": ((4,), "single"), "y": ((2,), "single")}, seed=2)
    net.set_parameter("ss/b", np.array([0.5, -0.25], np.float32))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = (rng.standard_normal((2, 6)) * 5).astype(np.float32)
    inputs = {"x": H.mat(x, device=device), "y": H.mat(y, device=device)}  # uploaded before counting
    backend = get_backend(device)
    counted = hasattr(backend, "downloads")
    if counted:
        backend.reset_counts()
    losses = net.train_batch(inputs)
    if counted:
        assert backend.downloads == 0, f"device-to-host reads in a training step: {backend.download_log}"
    assert losses["err"].device == device and all(g.device == device for g in net.gradients().values())
    P = {k: H.npy(v).astype(np.float64).reshape(-1, order="F") for k, v in net.parameters().items()}
    h = P["fc/weight"].reshape(4, 2, order="F").T @ x + P["fc/bias"][:, None]
    s = P["ss/a"][:, None] * h + P["ss/b"][:, None]
    assert float(losses["err"]) == pytest.approx(np.abs(s - y).mean(), rel=1e-5)
    return {"loss": losses["err"], **net.gradients()}


# ---------------------------------------------------------------- network inputs are checked

def _vector_net(device="numpy"):
    layers = [{"name": "fc", "type": "linear", "params": {"out_size": 3}, "inputs": ["x"], "outputs": ["y"]}]
    return Net(layers, device=device, input_specs={"x": ((4,), "single")})


@pytest.mark.parametrize("value,pattern", [
    (np.zeros((5, 2), np.float32), r"network input 'x': expected per-sample shape 4 single"),
    (np.zeros((2, 4), np.float32), r"network input 'x': expected per-sample shape"),
    (np.zeros((4, 0), np.float32), r"network input 'x': the batch is empty"),
    (np.array([["a"] * 4]).T, r"network input 'x': expected numbers"),
])
def test_bad_network_inputs_name_the_blob(value, pattern):
    with pytest.raises(ValueError, match=pattern):
        _vector_net().forward({"x": value})


def test_inputs_must_be_a_dict():
    with pytest.raises(ValueError, match="inputs must be a dict"):
        _vector_net().forward(None)


def test_one_sample_and_a_batch_are_accepted(device):
    net = _vector_net(device)
    one, _ = net.forward({"x": np.ones(4, np.float32)}, keep=["y"])
    many, _ = net.forward({"x": np.ones((4, 3), np.float32)}, keep=["y"])
    assert one["y"].shape == (3, 1) and many["y"].shape == (3, 3)


@pytest.mark.parametrize("batch,pattern", [
    ([0.5, 1.7], "values must be integers"),
    ([2 ** 32 + 3], "values must fit int32"),
    ([], "the batch is empty"),
])
def test_batch_indices_are_checked_before_conversion(batch, pattern):
    net = Net(Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json")
    with pytest.raises(ValueError, match=f"network input 'batch': {pattern}"):
        net.forward({"batch": batch}, phase="test")


def test_plus_and_concat_of_uint8_blobs_give_single(device):
    layers = [{"name": "p", "type": "plus", "inputs": ["x", "x"], "outputs": ["y"]},
              {"name": "c", "type": "concat", "params": {"axis": 1}, "inputs": ["x", "x"], "outputs": ["z"]}]
    net = Net(layers, device=device, input_specs={"x": ((2,), "uint8")})
    blobs, _ = net.forward({"x": np.full((2, 3), 200, np.uint8)}, keep=["y", "z"])
    assert blobs["y"].klass == "single" and blobs["y"].to_numpy().dtype == np.float32
    np.testing.assert_array_equal(blobs["y"].to_numpy(), 400)  # no uint8 wrap-around
    assert blobs["z"].klass == "single" and blobs["z"].to_numpy().dtype == np.float32
