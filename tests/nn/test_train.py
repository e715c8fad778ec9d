"""Tests of sukiyaki.nn.train (Trainer, checkpoints, exact resume) and sukiyaki.nn.weights."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.data import load_mnist
from sukiyaki.nn import Net
from sukiyaki.nn import params as P
from sukiyaki.nn.train import (CHECKPOINT_KEY, ProgressBar, Trainer, evaluate, fill_template,
                               make_optimizer)
from sukiyaki.nn.weights import (load_weights, netdef_hash, read_weights, save_weights, sniff_format,
                                 weight_arrays)

import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)
from device_check import numpy_device_allclose  # noqa: E402  (tests/ is on sys.path under pytest)

LENET = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"
TEST_N = 200


@pytest.fixture(scope="module")
def test_subset():
    x, t = load_mnist(split="test")
    return x[..., :TEST_N], t[:, :TEST_N]


def lenet(test_subset, device, seed=0, defs=None):
    """LeNet on the bundled digits on device, its test phase cut to TEST_N images (fast validation)."""
    return Net(defs or str(LENET), device=device, seed=seed, data_sources={"d_test": test_subset})


def other_lenet_defs(out=100):
    """LeNet with another fc3 width: same layer names, other shapes."""
    defs = json.loads(LENET.read_text())
    for d in defs:
        if d["name"] == "fc3":
            d["params"]["out_size"] = out
        if d["name"] == "fc4":
            d["params"]["in_shape"] = [out]
    return defs


def bn_defs():
    """A small net with batch normalization (running statistics are states)."""
    return [
        {"name": "d", "type": "mnist_data", "params": {"split": "train"}, "inputs": ["batch"],
         "outputs": ["raw", "label"], "phase": "train"},
        {"name": "dt", "type": "mnist_data", "params": {"split": "test"}, "inputs": ["batch"],
         "outputs": ["raw", "label"], "phase": "test"},
        {"name": "aug", "type": "data_augmentation", "inputs": ["raw"], "outputs": ["x"],
         "params": {"out_shape": [28, 28], "scale": 0.00390625, "input_klass": "uint8"}},
        {"name": "conv", "type": "convolution_2d", "inputs": ["x"], "outputs": ["c"],
         "params": {"in_size": 1, "out_size": 4, "ksize": 5, "stride": 2, "pad": 0}},
        {"name": "bn", "type": "batch_normalization", "inputs": ["c"], "outputs": ["b"],
         "params": {"in_size": 4}},
        {"name": "relu", "type": "relu", "inputs": ["b"], "outputs": ["r"]},
        {"name": "fc", "type": "linear", "inputs": ["r"], "outputs": ["pred"], "params": {"out_size": 10}},
        {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["pred", "label"], "outputs": ["loss"]},
        {"name": "acc", "type": "accuracy", "inputs": ["pred", "label"], "outputs": ["accuracy"],
         "phase": "test"},
    ]


def quiet(net, **kw):
    kw.setdefault("optimizer", make_optimizer("momentum_sgd", lr=0.01))
    kw.setdefault("batch_size", 8)
    kw.setdefault("val_cycle", None)
    return Trainer(net, progress=False, log=None, **kw)


def snapshot(net):
    return {k: v.copy() for k, v in weight_arrays(net).items()}


def assert_bitwise(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k}: max diff {np.abs(a[k] - b[k]).max()}"


# ---------------------------------------------------------------- training


def test_training_reduces_loss_and_logs_validation(device, test_subset):
    lines = []
    net = lenet(test_subset, device)
    tr = Trainer(net, make_optimizer("momentum_sgd", lr=0.02), batch_size=16, iterations=40, val_cycle=20,
                 progress=False, log=lines.append)
    before = tr.validate()
    out = tr.train()
    after = out["val"]
    assert after["loss"] < 0.6 * before["loss"]
    assert after["accuracy"] > 0.6 > before["accuracy"]
    assert [h["iteration"] for h in tr.history] == [20, 40]
    assert lines[-1] == f"iter 40: val accuracy {after['accuracy']:.4f}, val loss {after['loss']:.4f} ({TEST_N} images)"
    assert out["iteration"] == 40 and out["iterations_run"] == 40
    assert out["epoch"] == pytest.approx(40 * 16 / 8000)


def test_epochs_give_the_iteration_count(device, test_subset):
    tr = quiet(lenet(test_subset, device), batch_size=64, epochs=3)
    assert tr.total_iterations == 3 * 125
    tr = quiet(lenet(test_subset, device), batch_size=3000, epochs=2)  # 8000 = 2 full batches + 2000
    assert tr.total_iterations == 6


@pytest.mark.parametrize("div", [2, 4])
def test_batch_div_gives_the_same_update(device, test_subset, div):
    nets = []
    for d in (1, div):
        net = lenet(test_subset, device)
        tr = quiet(net, batch_size=16, batch_div=d, iterations=1,
                   optimizer=make_optimizer("momentum_sgd", lr=0.05, weight_decay=0.0005))
        losses = tr.step()
        assert losses["loss"].device == device and losses["loss"].shape == (1, 1)  # not read yet
        nets.append((snapshot(net), float(losses["loss"])))
    (w1, l1), (w2, l2) = nets
    assert l1 == pytest.approx(l2, rel=1e-5)
    # On a GPU cuDNN picks its convolution algorithm per batch size (another rounding), and a
    # last-bit difference can break a tie of LeNet's max pooling (digits have flat background)
    # the other way: a valid gradient either way, so the weights agree to a looser tolerance.
    rtol, atol = (1e-5, 1e-7) if device in ("numpy", "strict") else (2e-3, 5e-5)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=rtol, atol=atol, err_msg=k)
    w0 = weight_arrays(lenet(test_subset, device))
    moved = max(np.abs(w1[k] - w0[k]).max() for k in w1)
    assert moved > 1e-4  # the step did something


def test_bad_trainer_options(device, test_subset):
    net = lenet(test_subset, device)
    with pytest.raises(ValueError, match="batch_div 3 does not divide batch_size 16"):
        Trainer(net, batch_size=16, batch_div=3)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        Trainer(net, batch_size=0)
    with pytest.raises(ValueError, match="iterations or epochs, not both"):
        Trainer(net, iterations=3, epochs=1)
    with pytest.raises(ValueError, match="checkpoint_every needs a checkpoint path"):
        Trainer(net, checkpoint_every=5)
    other = "cuda" if device != "cuda" else "numpy"
    with pytest.raises(ValueError, match=f"device '{other}' differs from the network's '{device}'"):
        Trainer(net, device=other)


@numpy_device_allclose(rtol=1e-5, atol=1e-6)
def test_evaluate_is_sample_weighted(device, test_subset):
    net = lenet(test_subset, device)
    whole = evaluate(net, batch_size=TEST_N)
    uneven = evaluate(net, batch_size=64)  # 64 + 64 + 64 + 8
    assert whole["images"] == uneven["images"] == TEST_N
    assert list(whole) == ["accuracy", "loss", "images"]
    assert uneven["accuracy"] == pytest.approx(whole["accuracy"], abs=1e-6)
    assert uneven["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    return whole, uneven


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_training_stops_with_a_clear_error(device, test_subset):
    net = lenet(test_subset, device)
    tr = quiet(net, iterations=30, optimizer=make_optimizer("sgd", lr=1e6))
    with pytest.raises(FloatingPointError, match="training diverged"):
        tr.train()


# ---------------------------------------------------------------- checkpoints and resume


@pytest.fixture
def deterministic(device):
    """The backend in its deterministic mode for the test, where it has one (the CUDA backend
    otherwise picks the fastest cuDNN engines, some of which sum with atomics); numpy always is."""
    from sukiyaki.backends import get_backend

    backend = get_backend(device)
    set_mode = getattr(backend, "set_deterministic", None)
    if set_mode is None:
        yield
        return
    before = backend.deterministic
    set_mode(True)
    try:
        yield
    finally:
        set_mode(before)


@pytest.mark.parametrize("opt", ["momentum_sgd", "adam"])
def test_resume_is_bitwise_exact(device, deterministic, test_subset, tmp_path, opt):
    def optimizer():
        return make_optimizer(opt, weight_decay=0.0005, schedule="cosine:6")

    full = quiet(lenet(test_subset, device), optimizer=optimizer(), iterations=6)
    full.train()
    ck = tmp_path / "ck_{iteration}.safetensors"
    first = quiet(lenet(test_subset, device), optimizer=optimizer(), iterations=3, checkpoint=str(ck))
    assert first.train()["checkpoint"] == str(tmp_path / "ck_3.safetensors")
    # a new network and trainer, seeded differently: everything must come from the file
    resumed = quiet(lenet(test_subset, device, seed=7), optimizer=optimizer(), iterations=6)
    assert resumed.resume(tmp_path / "ck_3.safetensors") == 3
    assert resumed.optimizer.iteration == 3
    resumed.train()
    assert_bitwise(weight_arrays(full.net), weight_arrays(resumed.net))
    a, b = full.optimizer.state_arrays(full.net.store), resumed.optimizer.state_arrays(resumed.net.store)
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert full.iterator.state_dict() == resumed.iterator.state_dict()


def test_checkpoint_contents(device, test_subset, tmp_path):
    tr = quiet(lenet(test_subset, device), iterations=2, checkpoint=str(tmp_path / "ck.safetensors"))
    tr.train()
    tensors, meta = P.load_safetensors(tmp_path / "ck.safetensors")
    state = json.loads(meta[CHECKPOINT_KEY])
    assert state["iteration"] == 2 and state["iterator"]["position"] == 16
    assert state["optimizer"]["type"] == "momentum_sgd" and state["optimizer"]["iteration"] == 2
    assert state["trainer"]["batch_size"] == 8 and state["netdef_sha256"] == netdef_hash(tr.net)
    assert "optimizer/fc3/weight/velocity" in tensors and "fc3/weight" in tensors
    # a checkpoint loads as plain weights too
    net = lenet(test_subset, device, seed=3)
    assert load_weights(net, tmp_path / "ck.safetensors") == "safetensors"
    assert_bitwise(weight_arrays(net), weight_arrays(tr.net))


def test_resume_restores_the_checkpoint_options(device, test_subset, tmp_path):
    ck = str(tmp_path / "ck.safetensors")
    quiet(lenet(test_subset, device), iterations=2, batch_size=8, checkpoint=ck,
          optimizer=make_optimizer("momentum_sgd", lr=0.03, schedule="step:5:0.5")).train()
    notes = []
    tr = Trainer(lenet(test_subset, device), make_optimizer("sgd", lr=0.1), batch_size=4, iterations=4,
                 val_cycle=None, progress=False, log=notes.append)
    tr.resume(ck)
    assert tr.batch_size == 8 and tr.optimizer.type_name == "momentum_sgd"
    assert tr.optimizer.base_lr == 0.03 and tr.optimizer.current_lr() == 0.03
    assert tr.optimizer.schedule(5) == 0.5
    assert any("batch_size 8 from the checkpoint (this run asked for 4)" in n for n in notes)
    assert any("optimizer lr 0.03" in n for n in notes)


def test_resume_of_another_network_or_a_bad_file_changes_nothing(device, test_subset, tmp_path):
    other = quiet(Net(other_lenet_defs(), device=device, data_sources={"d_test": test_subset}), iterations=1,
                  checkpoint=str(tmp_path / "other.safetensors"))
    other.train()
    good = quiet(lenet(test_subset, device), iterations=2, checkpoint=str(tmp_path / "good.safetensors"))
    good.train()
    blob = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[:len(blob) - 1000])
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    save_weights(good.net, tmp_path / "weights.safetensors")
    meta_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + meta_len])
    header["__metadata__"][CHECKPOINT_KEY] = "{broken"
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (tmp_path / "badmeta.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + meta_len:])

    tr = quiet(lenet(test_subset, device), iterations=5)
    tr.step()
    before, it_state = snapshot(tr.net), tr.iterator.state_dict()
    opt_before = {k: v.copy() for k, v in tr.optimizer.state_arrays(tr.net.store).items()}
    cases = {
        "other.safetensors": "is of another network",
        "cut.safetensors": "truncated",
        "junk.safetensors": "not a valid checkpoint",
        "weights.safetensors": "not a training checkpoint",
        "badmeta.safetensors": "training state is damaged",
        "missing.safetensors": "cannot read it",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message) as info:
            tr.resume(tmp_path / name)
        assert name in str(info.value)
        assert_bitwise(before, weight_arrays(tr.net))
        assert tr.iteration == 1 and tr.iterator.state_dict() == it_state
        after = tr.optimizer.state_arrays(tr.net.store)
        assert sorted(after) == sorted(opt_before) and all(after[k].tobytes() == opt_before[k].tobytes() for k in opt_before)


def test_failed_checkpoint_write_keeps_the_old_one(device, test_subset, tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    tr = quiet(lenet(test_subset, device), iterations=3, checkpoint=str(path))
    tr.step()
    tr.save_checkpoint()
    good = path.read_bytes()
    tr.step()

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(P.os, "fsync", boom)
    with pytest.raises(OSError):
        tr.save_checkpoint()
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors"]


def test_non_finite_weights_are_never_written(device, test_subset, tmp_path):
    """A diverged network's weights are refused (FloatingPointError naming the parameter and the
    file) by save_weights and save_checkpoint, and the files already there stay as they were."""
    w, ck = tmp_path / "w.safetensors", tmp_path / "ck.safetensors"
    tr = quiet(lenet(test_subset, device), iterations=3, checkpoint=str(ck))
    tr.step()
    tr.save_weights(w)
    tr.save_checkpoint()
    good = {p: p.read_bytes() for p in (w, ck)}
    bias = weight_arrays(tr.net)["fc4/bias"]
    bias[3] = np.inf
    tr.net.set_parameter("fc4/bias", bias)
    with pytest.raises(FloatingPointError, match=r"iteration 1: parameter 'fc4/bias' holds NaN or infinite .*"
                                                 r"'.*w\.safetensors' was not written"):
        tr.save_weights(w)
    with pytest.raises(FloatingPointError, match=r"parameter 'fc4/bias' .*ck\.safetensors' was not written"):
        tr.save_checkpoint()
    assert {p: p.read_bytes() for p in (w, ck)} == good
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors", "w.safetensors"]


def test_save_template_and_final_weights(device, test_subset, tmp_path):
    tr = quiet(lenet(test_subset, device), iterations=4, val_cycle=2,
               save_template=str(tmp_path / "runs" / "w_{iteration}.bin"),
               save_final=str(tmp_path / "final.safetensors"))
    out = tr.train()
    assert out["saved"] == [str(tmp_path / "runs" / f) for f in ("w_2.bin", "w_4.bin")] + [str(tmp_path / "final.safetensors")]
    assert sniff_format((tmp_path / "runs" / "w_4.bin").read_bytes()) == "sukiyaki2"
    assert fill_template("snap_%d.bin", 12) == "snap_12.bin"


# ---------------------------------------------------------------- weights files


@pytest.mark.parametrize("name", ["w.safetensors", "w.bin"])
def test_weights_round_trip(device, test_subset, tmp_path, name):
    src = lenet(test_subset, device)
    quiet(src, iterations=2).train()
    path = tmp_path / name
    fmt = save_weights(src, path)
    assert fmt == ("sukiyaki2" if name.endswith(".bin") else "safetensors")
    dst = lenet(test_subset, device, seed=5)
    assert load_weights(dst, path) == fmt
    assert_bitwise(weight_arrays(src), weight_arrays(dst))
    assert evaluate(dst) == evaluate(src)


def test_weights_file_layout(device, test_subset, tmp_path):
    net = lenet(test_subset, device)
    save_weights(net, tmp_path / "w.safetensors")
    tensors, meta = P.load_safetensors(tmp_path / "w.safetensors")
    names = json.loads(meta["names"])
    assert names == list(net.parameters()) and meta["netdef_sha256"] == netdef_hash(net)
    assert tensors["conv1/weight"].shape == (5, 5, 1, 20) and tensors["conv1/bias"].shape == (20,)
    save_weights(net, tmp_path / "w.bin")
    raw = (tmp_path / "w.bin").read_bytes()
    assert raw.startswith(b'{"conv1/weight":{"offset":1024,"size":2000}')
    flat = P.load_sukiyaki2(raw)
    assert list(flat) == names
    np.testing.assert_array_equal(flat["fc3/weight"], tensors["fc3/weight"].ravel(order="F"))
    # safetensors tensors must have the network's exact shape: a MATLAB-shaped (n, 1) bias is
    # refused, naming the file and the parameter, and nothing is loaded
    P.save_safetensors(tmp_path / "m.safetensors",
                       {k: (v.reshape(-1, 1) if v.ndim == 1 else v) for k, v in tensors.items()})
    other = lenet(test_subset, device, seed=9)
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"m\.safetensors'.*parameter 'conv1/bias' has shape \(20, 1\), "
                                         r"the network expects \(20,\)"):
        load_weights(other, tmp_path / "m.safetensors")
    assert_bitwise(before, weight_arrays(other))
    # a .bin file stores flat arrays: they take the network's shapes
    P.save_sukiyaki2(tmp_path / "flat.bin", {k: v.ravel(order="F") for k, v in tensors.items()})
    assert load_weights(other, tmp_path / "flat.bin") == "sukiyaki2"
    assert_bitwise(weight_arrays(net), weight_arrays(other))


def test_states_are_saved_in_both_formats(device, tmp_path):
    net = Net(bn_defs(), device=device)
    quiet(net, iterations=3).train()
    st = net.states()
    assert set(st) == {"bn/running_mean", "bn/running_var"}
    assert not np.allclose(H.npy(st["bn/running_mean"]), 0)
    save_weights(net, tmp_path / "w.safetensors")
    save_weights(net, tmp_path / "w.bin")
    assert "bn/running_mean" in P.load_safetensors(tmp_path / "w.safetensors")[0]
    assert "bn/running_mean" in P.load_sukiyaki2(tmp_path / "w.bin")
    for name in ("w.safetensors", "w.bin"):
        fresh = Net(bn_defs(), device=device, seed=4)
        load_weights(fresh, tmp_path / name)
        assert_bitwise(weight_arrays(net), weight_arrays(fresh))
    # a file in the original's style (parameters only) loads; states keep their values
    P.save_sukiyaki2(tmp_path / "orig.bin", weight_arrays(net, states=False))
    fresh = Net(bn_defs(), device=device, seed=4)
    load_weights(fresh, tmp_path / "orig.bin")
    assert_bitwise(weight_arrays(net, states=False), weight_arrays(fresh, states=False))
    np.testing.assert_array_equal(H.npy(fresh.states()["bn/running_var"]), 1)


@pytest.mark.parametrize("ext", ["safetensors", "bin"])
def test_loading_a_wrong_or_truncated_file_changes_nothing(device, test_subset, tmp_path, ext):
    save_weights(Net(other_lenet_defs(), device=device, data_sources={"d_test": test_subset}), tmp_path / f"other.{ext}")
    net = lenet(test_subset, device)
    save_weights(net, tmp_path / f"good.{ext}")
    blob = (tmp_path / f"good.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(blob[:-4])
    (tmp_path / f"junk.{ext}").write_bytes(b"\x00\x01garbage")
    nan = weight_arrays(net)
    nan["fc4/bias"][3] = np.nan
    (P.save_safetensors if ext == "safetensors" else P.save_sukiyaki2)(tmp_path / f"nan.{ext}", nan)

    target = lenet(test_subset, device, seed=11)
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"other\.%s'.*parameter 'fc3/weight' has shape" % ext):
        load_weights(target, tmp_path / f"other.{ext}")
    with pytest.raises(ValueError, match=r"cut\.%s'.*truncated.*'fc4/(weight|bias)'" % ext):
        load_weights(target, tmp_path / f"cut.{ext}")
    with pytest.raises(ValueError, match=r"junk\.%s'" % ext):
        load_weights(target, tmp_path / f"junk.{ext}")
    with pytest.raises(ValueError, match=r"nan\.%s'.*'fc4/bias' holds NaN" % ext):
        load_weights(target, tmp_path / f"nan.{ext}")
    with pytest.raises(ValueError, match="cannot read it"):
        load_weights(target, tmp_path / f"missing.{ext}")
    assert_bitwise(before, weight_arrays(target))


def test_missing_and_extra_parameters_are_named(device, test_subset, tmp_path):
    net = lenet(test_subset, device)
    arrays = weight_arrays(net)
    del arrays["conv2/bias"]
    P.save_safetensors(tmp_path / "missing.safetensors", arrays)
    with pytest.raises(ValueError, match="'conv2/bias' is missing"):
        read_weights(net, tmp_path / "missing.safetensors")
    arrays = weight_arrays(net) | {"fc9/weight": np.zeros((2, 2), np.float32)}
    P.save_safetensors(tmp_path / "extra.safetensors", arrays)
    with pytest.raises(ValueError, match="unexpected parameter 'fc9/weight'"):
        read_weights(net, tmp_path / "extra.safetensors")


# ---------------------------------------------------------------- progress bar


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_off_a_terminal_prints_lines():
    s = io.StringIO()
    bar = ProgressBar(10, stream=s, every=4)
    for i in range(1, 11):
        bar.update(i, 64, 0.25)
    lines = s.getvalue().splitlines()
    assert [ln.split()[0] for ln in lines] == ["4/10", "8/10", "10/10"]
    assert "img/s" in lines[-1] and "loss 0.2500" in lines[-1] and "ETA 00:00" in lines[-1]
    assert "\r" not in s.getvalue()


def test_progress_bar_on_a_terminal_redraws_in_place():
    s = FakeTTY()
    bar = ProgressBar(3, stream=s)
    bar.update(1, 8, 1.0)
    with bar.paused():
        s.write("validation line\n")
    bar.update(3, 8, 0.5)
    bar.close()
    out = s.getvalue()
    assert out.startswith("\r1/3 [")
    erased = out.split("validation line")[0].split("ETA 00:00", 1)[1]
    assert erased.startswith("\r ") and erased.endswith(" \r") and erased.strip() == ""
    assert "\r3/3 [" in out and out.endswith("\n") and out.count("\n") == 2
