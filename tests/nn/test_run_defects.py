"""Defects found by trying the package as a new user would: sizes checked before allocating,
diverged runs, damaged checkpoints, labels, output paths checked before training."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.cli import main
from sukiyaki.matrix import gather
from sukiyaki.data import load_mnist
from sukiyaki.nn import Net
from sukiyaki.nn import params as P
from sukiyaki.nn.train import CHECKPOINT_KEY, Trainer, make_optimizer

LENET = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"


def L(name, type_, inputs, outputs, params=None, **extra):
    return {"name": name, "type": type_, "params": params or {}, "inputs": inputs, "outputs": outputs} | extra


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """200 training and 100 test digits as .npz files for --data."""
    folder = tmp_path_factory.mktemp("data")
    paths = {}
    for split, n in (("train", 200), ("test", 100)):
        x, t = load_mnist(split=split)
        paths[split] = folder / f"{split}.npz"
        np.savez(paths[split], images=x[..., :n], labels=t[0, :n])
    return paths


# ---------------------------------------------------------------- sizes before allocating


@pytest.mark.parametrize("layer,params,pattern", [
    ("linear", {"out_size": 10 ** 12}, r"linear 'big': its parameters \(weight 4x1000000000000, bias 1000000000000\) need 18\.2 TiB"),
    ("convolution_2d", {"in_size": 4, "out_size": 10 ** 12, "ksize": 1}, r"convolution_2d 'big': its parameters .* need \d+\.\d TiB"),
])
def test_huge_parameters_are_refused_before_allocating(device, layer, params, pattern):
    shape = (4,) if layer == "linear" else (1, 1, 4)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=pattern) as info:
        Net([L("big", layer, ["x"], ["y"], params)], device=device, input_specs={"x": (shape, "single")})
    assert f"the {device} backend can allocate" in str(info.value)
    assert time.perf_counter() - t0 < 5  # refused from the sizes, nothing was drawn or allocated


def test_branch_n_output_must_match_the_definition():
    with pytest.raises(ValueError, match=r"branch 'br': n_output is 1000000000 but the definition names 2 output"):
        Net([L("br", "branch", ["x"], ["a", "b"], {"n_output": 10 ** 9})], input_specs={"x": ((4,), "single")})


def test_huge_pooling_kernel_in_ceil_mode_pools_the_whole_padded_image(device):
    """ksize and stride 10**6 in ceil mode give one window over the whole image (as PyTorch),
    computed without padding the input to the kernel's size."""
    net = Net([L("pool", "pooling_2d", ["x"], ["y"], {"type": "max", "ksize": 10 ** 6, "stride": 10 ** 6})],
              device=device, input_specs={"x": ((6, 5, 2), "single")})
    x = np.random.default_rng(0).standard_normal((6, 5, 2, 3)).astype(np.float32)
    t0 = time.perf_counter()
    blobs, _ = net.forward({"x": x}, keep=["y"])
    assert time.perf_counter() - t0 < 5
    y = np.asarray(gather(blobs["y"]))
    np.testing.assert_array_equal(y.reshape(2, 3), x.max(axis=(0, 1)))


def test_a_batch_larger_than_the_device_is_refused_naming_the_blob(device, monkeypatch):
    net = Net([L("fc", "linear", ["x"], ["y"], {"out_size": 3})], device=device, input_specs={"x": ((4,), "single")})
    monkeypatch.setattr(net.backend, "available_memory", lambda: 40)  # bytes: 3 values x 4 samples fit, x 5 do not
    net.forward({"x": np.ones((4, 3), np.float32)})
    with pytest.raises(MemoryError, match=r"linear 'fc': output 'y' \(3 single\) for a batch of 4 needs 48 B, more than the 40 B"):
        net.forward({"x": np.ones((4, 4), np.float32)})


def test_reshape_shape_must_hold_integers_not_booleans():
    with pytest.raises(ValueError, match=r"reshape 'r': shape must be a list of positive integers"):
        Net([L("r", "reshape", ["x"], ["y"], {"shape": [True, 4]})], input_specs={"x": ((4,), "single")})


# ---------------------------------------------------------------- phases plan their own gradient flags


def test_a_layer_in_both_phases_takes_the_gradient_flags_of_the_phase_run(device):
    """train: x -> A (train only) -> h; test: x -> relu (test only) -> h; both: h -> B -> loss.
    Planning 'test' after 'train' must not stop B passing the gradient to A in training."""
    defs = [L("A", "linear", ["x"], ["h"], {"out_size": 4}, phase="train"),
            L("R", "relu", ["x"], ["h"], phase="test"),
            L("B", "linear", ["h"], ["y"], {"out_size": 3}),
            L("loss", "softmax_cross_entropy", ["y", "t"], ["loss"])]
    net = Net(defs, device=device, seed=1, input_specs={"x": ((4,), "single"), "t": ((1,), "int32")})
    rng = np.random.default_rng(0)
    net.train_batch({"x": rng.standard_normal((4, 5)).astype(np.float32), "t": rng.integers(0, 3, (1, 5))})
    ga = np.asarray(gather(net.gradients()["A/weight"]))
    assert np.abs(ga).max() > 1e-4
    assert net.schedules["train"].input_grad["B"] == [True]
    assert net.schedules["test"].input_grad["B"] == [False]


# ---------------------------------------------------------------- diverged runs


def test_diverged_run_exits_non_zero_naming_the_iteration_and_writes_nothing(tmp_path, small, capsys):
    rc, out, err = run(["train", "lenet", "--lr", "1e30", "--iterations", "2", "--no-progress", "--val-cycle", "0",
                        "--data", f"d_train={small['train']}", "--data", f"d_test={small['test']}",
                        "--out-dir", tmp_path], capsys)
    assert rc == 1
    assert "sukiyaki train: error at iteration" in err and "diverged" in err
    assert "iteration" in err.split("diverged")[0]
    assert not list(tmp_path.glob("*.safetensors"))


def test_a_diverged_run_never_replaces_a_good_checkpoint(tmp_path, small, capsys):
    ck = tmp_path / "ck.safetensors"
    common = ["--no-progress", "--val-cycle", "0", "--data", f"d_train={small['train']}",
              "--data", f"d_test={small['test']}", "--out-dir", tmp_path, "--checkpoint", ck]
    assert run(["train", "lenet", "--iterations", "2"] + common, capsys)[0] == 0
    good = ck.read_bytes()
    rc, _, err = run(["train", "lenet", "--lr", "1e30", "--iterations", "3", "--checkpoint-every", "1"] + common, capsys)
    assert rc == 1 and "diverged" in err
    # what remains is finite: iteration 1's checkpoint (finite, if huge) or the good one
    tensors, meta = P.load_safetensors(ck)
    assert all(np.all(np.isfinite(a)) for a in tensors.values())
    state = json.loads(meta[CHECKPOINT_KEY])
    assert state["iteration"] <= 2 or ck.read_bytes() == good


# ---------------------------------------------------------------- damaged checkpoints


def _rewrite_checkpoint(src, dst, tensors_fn=None, state_fn=None):
    tensors, meta = P.load_safetensors(src)
    if tensors_fn:
        tensors = tensors_fn(tensors)
    if state_fn:
        state = json.loads(meta[CHECKPOINT_KEY])
        meta[CHECKPOINT_KEY] = json.dumps(state_fn(state))
    P.save_safetensors(dst, tensors, metadata=meta)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    x, t = load_mnist(split="test")
    folder = tmp_path_factory.mktemp("ck")
    net = Net(str(LENET), data_sources={"d_test": (x[..., :50], t[:, :50])})
    tr = Trainer(net, make_optimizer("momentum_sgd"), batch_size=8, iterations=2, val_cycle=None, progress=False,
                 log=None, checkpoint=str(folder / "ck.safetensors"))
    tr.train()
    return folder / "ck.safetensors"


def _fresh_trainer(iterations=10):
    x, t = load_mnist(split="test")
    net = Net(str(LENET), data_sources={"d_test": (x[..., :50], t[:, :50])})
    return Trainer(net, make_optimizer("momentum_sgd"), batch_size=8, iterations=iterations, val_cycle=None,
                   progress=False, log=None)


def test_checkpoint_with_non_finite_optimizer_state_is_refused(checkpoint, tmp_path):
    def poison(tensors):
        tensors = dict(tensors)
        a = tensors["optimizer/fc3/weight/velocity"].copy()
        a.reshape(-1)[7] = np.nan
        tensors["optimizer/fc3/weight/velocity"] = a
        return tensors

    _rewrite_checkpoint(checkpoint, tmp_path / "nan.safetensors", tensors_fn=poison)
    tr = _fresh_trainer()
    with pytest.raises(ValueError, match=r"optimizer state 'fc3/weight/velocity' holds NaN or infinite values"):
        tr.resume(tmp_path / "nan.safetensors")
    assert tr.iteration == 0


@pytest.mark.parametrize("change,pattern", [
    (lambda s: s | {"iteration": 10 ** 12}, r"inconsistent: iteration 1000000000000"),
    (lambda s: s | {"iteration": 10 ** 12, "optimizer": s["optimizer"] | {"iteration": 10 ** 12},
                    "iterator": s["iterator"] | {"epoch": 10 ** 12 // 1000}},
     r"inconsistent|past the end of this run"),
])
def test_checkpoint_claiming_a_huge_iteration_is_refused(checkpoint, tmp_path, change, pattern):
    _rewrite_checkpoint(checkpoint, tmp_path / "huge.safetensors", state_fn=change)
    tr = _fresh_trainer()
    with pytest.raises(ValueError, match=pattern):
        tr.resume(tmp_path / "huge.safetensors")
    assert tr.iteration == 0


def test_checkpoint_past_the_end_of_the_run_is_refused_by_the_cli(checkpoint, tmp_path, capsys):
    rc, _, err = run(["train", "lenet", "--resume", checkpoint, "--iterations", "1", "--no-progress",
                      "--out-dir", tmp_path], capsys)
    assert rc == 2 and "past the end of this run (1 iterations)" in err


# ---------------------------------------------------------------- labels


def test_non_integer_labels_are_refused_when_the_source_is_loaded(tmp_path, capsys):
    x, _ = load_mnist(split="test")
    np.savez(tmp_path / "bad.npz", images=x[..., :20], labels=np.full(20, 2.7))
    rc, _, err = run(["train", "lenet", "--data", f"d_train={tmp_path / 'bad.npz'}", "--iterations", "1"], capsys)
    assert rc == 2 and "mnist_data 'd_train': label 2.7 (sample 0) is not an integer" in err


def test_labels_out_of_range_are_refused_when_the_network_is_planned(device):
    x, _ = load_mnist(split="test")
    labels = np.zeros(20, np.int64)
    labels[13] = 10
    with pytest.raises(ValueError, match=r"mnist_data 'd_train': label 10 \(sample 13\) is out of range for the 10 classes of layer 'loss'"):
        Net(str(LENET), device=device, data_sources={"d_train": (x[..., :20], labels)})
    with pytest.raises(ValueError, match=r"label -1 \(sample 0\) is negative"):
        Net(str(LENET), device=device, data_sources={"d_train": (x[..., :20], np.full(20, -1))})


# ---------------------------------------------------------------- output paths, before training


def test_unwritable_outputs_are_refused_before_the_first_iteration(tmp_path, small, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    common = ["--iterations", "5", "--no-progress", "--data", f"d_train={small['train']}",
              "--data", f"d_test={small['test']}", "--out-dir", tmp_path]
    for option in ("--save-template", "--checkpoint"):
        target = blocker / "sub" / "w_{iteration}.safetensors"
        rc, out, err = run(["train", "lenet", option, target] + common, capsys)
        assert rc == 2, err
        assert option.lstrip("-").replace("-", "_") in err and str(blocker) in err
        assert "training lenet" not in out  # refused before training started


def test_a_killed_checkpoint_write_leaves_no_temporary_for_long(tmp_path):
    ck = tmp_path / "ck.safetensors"
    stale = Path(P.temp_path(ck))
    stale.write_bytes(b"\0" * 4096)  # what a kill during a write leaves
    tr = _fresh_trainer(iterations=1)
    Trainer(tr.net, make_optimizer("momentum_sgd"), batch_size=8, iterations=1, val_cycle=None, progress=False,
            log=None, checkpoint=str(ck))
    assert not stale.exists()
    assert sorted(os.listdir(tmp_path)) == []
