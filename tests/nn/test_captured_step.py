"""A training step recorded once and replayed (sukiyaki.nn.captured) trains exactly as eagerly.

On the GPU (the ``device`` fixture's cuda backends) the step is a real CUDA graph: the weights
after some steps with dropout, augmentation, a changing learning rate and Adam's bias
correction equal the eager run's. Everywhere, a test double of ``capture`` that replays by
running the recorded function again (its outputs rewritten in place, as a graph's are)
checks the part that is not CUDA's: that everything a step changes reaches the recording
through its buffers (batch, sample ids, iteration word, rate), and the fallback with its
reason when capture fails.
"""

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend
from sukiyaki.backends.base import CaptureError
from sukiyaki.nn import Net
from sukiyaki.nn.train import Trainer, make_optimizer
from sukiyaki.nn.weights import weight_arrays

from nn_helpers import lenet_with_randomness  # noqa: E402  (tests/nn is on sys.path under pytest)


class RerunCapture:
    """Test double of a backend's ``capture``: recording runs fn with the training state put
    back afterwards (a real capture runs nothing); replay runs it again and copies its
    outputs into the recorded ones."""

    def __init__(self, net, opt, fail=None):
        self.net, self.opt, self.fail, self.recorded = net, opt, fail, 0

    def __call__(self, fn):
        if self.fail:
            raise CaptureError(self.fail)
        store, opt = self.net.store, self.opt() if callable(self.opt) else self.opt
        saved = [a.copy() for a in (store.data, store.grad)] + [v.copy() for v in opt.state.values()]
        outputs = fn()
        for dst, src in zip([store.data, store.grad] + list(opt.state.values()), saved):
            dst[...] = src
        self.recorded += 1
        return _Rerun(fn, outputs)


class _Rerun:
    def __init__(self, fn, outputs):
        self.fn, self.outputs = fn, outputs

    def replay(self):
        for k, v in self.fn().items():
            self.outputs[k][...] = v


def _train(device, graph, optimizer, steps=5, capture=None, log=None):
    net = Net(lenet_with_randomness(), device=device, seed=3)
    opt = make_optimizer(**optimizer)
    if capture is not None:
        net.ops.backend.capture = capture(net, opt)
    trainer = Trainer(net, opt, batch_size=16, iterations=steps, val_cycle=0, progress=False, graph=graph,
                      log=log if log is not None else (lambda line: None), read_every=1)
    losses = [float(trainer.step()["loss"]) for _ in range(steps)]
    return {k: np.asarray(v) for k, v in weight_arrays(net).items()}, losses, trainer


OPTIMIZERS = [
    {"name": "momentum_sgd", "lr": 0.05, "schedule": "step:2:0.5"},
    {"name": "adam", "lr": 0.002},
]


@pytest.fixture
def numpy_capture():
    backend = get_backend("numpy")
    yield
    backend.__dict__.pop("capture", None)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o["name"])
def test_recorded_step_trains_as_eager_steps(numpy_capture, optimizer):
    eager_w, eager_l, _ = _train("numpy", False, optimizer)
    w, losses, trainer = _train("numpy", True, optimizer, capture=RerunCapture)
    assert trainer.captured.active and trainer.captured._graphs, "the step was never recorded"
    assert net_capture(trainer).recorded == 1
    assert losses == eager_l
    for k in eager_w:
        np.testing.assert_array_equal(w[k], eager_w[k], err_msg=k)


def net_capture(trainer):
    return trainer.net.ops.backend.capture


def test_capture_failure_says_why_and_trains_eagerly(numpy_capture):
    lines = []
    eager_w, eager_l, _ = _train("numpy", False, OPTIMIZERS[0])
    w, losses, trainer = _train("numpy", True, OPTIMIZERS[0], log=lines.append,
                                capture=lambda net, opt: RerunCapture(net, opt, fail="a host read in layer 'x'"))
    assert not trainer.captured.active
    assert any("CUDA graph off" in line and "a host read in layer 'x'" in line for line in lines), lines
    assert losses == eager_l
    for k in eager_w:
        np.testing.assert_array_equal(w[k], eager_w[k], err_msg=k)


def test_sub_batches_are_not_captured_and_say_so(numpy_capture):
    lines = []
    net = Net(lenet_with_randomness(), device="numpy", seed=3)
    net.ops.backend.capture = RerunCapture(net, make_optimizer())
    trainer = Trainer(net, batch_size=16, batch_div=2, iterations=1, val_cycle=0, progress=False, log=lines.append)
    assert trainer.captured is None
    assert any("batch_div > 1" in line for line in lines), lines


def test_weights_loaded_between_steps_are_recorded_again(numpy_capture):
    net = Net(lenet_with_randomness(), device="numpy", seed=3)
    opt = make_optimizer()
    cap = net.ops.backend.capture = RerunCapture(net, opt)
    trainer = Trainer(net, opt, batch_size=16, iterations=6, val_cycle=0, progress=False, log=lambda line: None)
    for _ in range(3):
        trainer.step()
    assert cap.recorded == 1
    opt.state = {k: v.copy() for k, v in opt.state.items()}  # as a resumed checkpoint's state
    trainer.step()
    assert cap.recorded == 2


CUDA = [d for d in available_backends() if d.startswith("cuda")]
on_cuda = pytest.mark.parametrize("cuda", CUDA or [pytest.param("cuda", marks=pytest.mark.skip(
    reason="no CUDA GPU here (CuPy and a driver): CUDA graphs are tested on the GPU machine"))])


@on_cuda
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o["name"])
def test_cuda_graph_step_trains_as_eager_steps(cuda, optimizer, deterministic):
    """In deterministic mode (cuDNN without atomics: two eager runs give the same bits), the
    graph's steps give the eager steps' numbers."""
    device = cuda
    deterministic(device)
    eager_w, eager_l, _ = _train(device, False, optimizer, steps=6)
    w, losses, trainer = _train(device, True, optimizer, steps=6)
    assert trainer.captured.active, trainer.captured.off
    assert trainer.captured._graphs, "no graph was recorded"
    np.testing.assert_allclose(losses, eager_l, rtol=1e-6, atol=1e-7)
    for k in eager_w:
        np.testing.assert_allclose(w[k], eager_w[k], rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.fixture
def deterministic():
    """Put a cuda backend in deterministic mode for the test (restored after)."""
    changed = []

    def on(device):
        backend = get_backend(device)
        changed.append((backend, backend.deterministic))
        backend.set_deterministic(True)

    yield on
    for backend, flag in changed:
        backend.set_deterministic(flag)


@on_cuda
def test_cuda_graph_host_read_falls_back_with_reason(cuda, monkeypatch):
    device = cuda
    from sukiyaki.nn.layers.activation import ReLU

    real = ReLU.forward

    def reading(self, inputs, ctx):
        inputs[0].to_numpy()  # a device-to-host read inside the step: cannot be captured
        return real(self, inputs, ctx)

    monkeypatch.setattr(ReLU, "forward", reading)
    lines = []
    w, losses, trainer = _train(device, True, OPTIMIZERS[0], steps=4, log=lines.append)
    assert not trainer.captured.active
    assert any("CUDA graph off" in line and "could not be captured" in line for line in lines), lines
    monkeypatch.setattr(ReLU, "forward", real)
    eager_w, eager_l, _ = _train(device, False, OPTIMIZERS[0], steps=4)
    np.testing.assert_allclose(losses, eager_l, rtol=1e-5, atol=1e-6)


def test_resumed_run_with_recorded_steps_equals_the_whole_run(numpy_capture, tmp_path):
    """resume() puts a copy of the optimizer in the trainer: the recording follows it."""
    def trainer(iterations, seed=3, **kw):
        net = Net(lenet_with_randomness(), device="numpy", seed=seed)
        tr = Trainer(net, make_optimizer("momentum_sgd", schedule="cosine:6"), batch_size=8, iterations=iterations,
                     val_cycle=0, progress=False, log=lambda line: None, **kw)
        net.ops.backend.capture = RerunCapture(net, lambda: tr.optimizer)
        return tr

    whole = trainer(6)
    whole.train()
    trainer(3, checkpoint=str(tmp_path / "ck.safetensors")).train()
    resumed = trainer(6, seed=7)
    resumed.resume(tmp_path / "ck.safetensors")
    resumed.train()
    assert resumed.captured._graphs, "the resumed run recorded no step"
    a, b = weight_arrays(whole.net), weight_arrays(resumed.net)
    for k in a:
        np.testing.assert_array_equal(np.asarray(b[k]), np.asarray(a[k]), err_msg=k)


def test_an_optimizer_without_device_rate_updates_after_each_replay(numpy_capture):
    """A user's rule that takes its rate as a number: the rest of the step is replayed, its
    update runs eagerly after, with this iteration's rate."""
    from sukiyaki.nn.optim.base import Optimizer
    from sukiyaki.nn.optim.schedule import make_schedule

    class PlainSGD(Optimizer):
        type_name = "plain_sgd_for_test"

        def update(self, ops, w, g, lr):
            ops.nn.sgd_update_(w, g, lr, 0.0)

    def run(graph):
        net = Net(lenet_with_randomness(), device="numpy", seed=3)
        opt = PlainSGD(lr=0.05, schedule=make_schedule("step:2:0.5"))
        if graph:
            net.ops.backend.capture = RerunCapture(net, opt)
        tr = Trainer(net, opt, batch_size=16, iterations=5, val_cycle=0, progress=False, log=lambda line: None,
                     graph=graph)
        for _ in range(5):
            tr.step()
        return tr, {k: np.asarray(v) for k, v in weight_arrays(net).items()}

    _, eager = run(False)
    tr, w = run(True)
    assert tr.captured.active and tr.captured._graphs
    assert not next(iter(tr.captured._graphs.values())).update_inside
    for k in eager:
        np.testing.assert_array_equal(w[k], eager[k], err_msg=k)
