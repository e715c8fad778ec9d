"""Optimizers: SGD, momentum SGD (the original's v = m v - lr g; w += v), Adam, weight decay,
learning-rate schedules, gradient accumulation over sub-batches, user optimizers, state
round trips, bad hyper-parameters. Every rule runs as ``opt.apply(net.store)`` on each
backend (the ``device`` fixture). References: float64 re-implementations and, where present,
torch.optim (float64, fed the same float32-rounded gradients).
"""

import math

import numpy as np
import pytest

from sukiyaki.nn import Net
from sukiyaki.nn.ops import F32
from sukiyaki.nn.optim import (OPTIMIZERS, Optimizer, cosine_schedule, get_optimizer, make_schedule,
                               register_optimizer, step_schedule)

import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)
from device_check import numpy_device_allclose  # noqa: E402  (tests/ is on sys.path under pytest)

DEFS = [
    {"name": "fc1", "type": "linear", "params": {"out_size": 5}, "inputs": ["x"], "outputs": ["h"]},
    {"name": "act", "type": "tanh", "inputs": ["h"], "outputs": ["th"]},
    {"name": "fc2", "type": "linear", "params": {"out_size": 3}, "inputs": ["th"], "outputs": ["y"]},
    {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["y", "t"], "outputs": ["loss"]},
]
SPECS = {"x": ((4,), "single"), "t": ((1,), "int32")}
ALL = ["sgd", "momentum_sgd", "adam"]


def small_net(device, seed=0, defs=DEFS):
    return Net(defs, device=device, input_specs=SPECS, seed=seed)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((4, n)).astype(np.float32), "t": rng.integers(0, 3, (1, n)).astype(np.int32)}


def params_of(net):
    """{name: float64 numpy} of every parameter (trained or not)."""
    return {k: H.npy(v).astype(np.float64) for k, v in net.parameters().items()}


def trained_of(net):
    return {k: v for k, v in params_of(net).items() if k in net.store.names("trained")}


def set_grads(net, grads):
    """Write grads[name] (numpy, one per trained parameter) into the store's gradient buffer,
    as a backward pass would (one upload, one on-device copy)."""
    store = net.store
    store.ops.assign_(store.grad, store.slot_from_arrays({k: np.asarray(grads[k], np.float32)
                                                          for k in store.names("trained")}))


def random_grads(net, rng):
    """float32-representable random gradients (as float64) for every trained parameter."""
    return {k: rng.standard_normal(v.shape).astype(np.float32).astype(np.float64) for k, v in trained_of(net).items()}


def run_steps(opt, net, n_steps, seed=0):
    """Apply n_steps updates with fresh random gradients; returns the gradients used."""
    rng = np.random.default_rng(seed)
    used = []
    for _ in range(n_steps):
        g = random_grads(net, rng)
        set_grads(net, g)
        opt.apply(net.store)
        used.append(g)
    return used


def assert_params(net, expected, rtol=1e-5, atol=1e-6):
    for k, v in net.parameters().items():
        H.assert_close(v, expected[k], rtol=rtol, atol=atol, what=k)


def assert_same_bits(a, b, what="parameters"):
    assert list(a) == list(b), what
    for k in a:
        assert a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), \
            f"{what} {k}: max diff {np.abs(a[k].astype(np.float64) - b[k]).max()}"


# ---------------------------------------------------------------- update rules against float64 references


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd(device, weight_decay):
    net = small_net(device)
    w = params_of(net)
    opt = get_optimizer("sgd", lr=0.1, weight_decay=weight_decay)
    grads = run_steps(opt, net, 3)
    for g in grads:
        w = {k: w[k] - 0.1 * (g[k] + weight_decay * w[k]) for k in w}
    assert_params(net, w)
    assert opt.iteration == 3
    assert opt.state_arrays(net.store) == {}  # plain SGD keeps no state


@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
def test_momentum_sgd_is_the_originals_rule(device, weight_decay):
    net = small_net(device)
    w = params_of(net)
    lr, m = 0.05, 0.9
    opt = get_optimizer("momentum_sgd", lr=lr, momentum=m, weight_decay=weight_decay)
    grads = run_steps(opt, net, 4)
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for g in grads:
        for k in w:
            v[k] = m * v[k] - lr * (g[k] + weight_decay * w[k])
            w[k] = w[k] + v[k]
    assert_params(net, w)
    state = opt.state_arrays(net.store)
    assert set(state) == {f"{k}/velocity" for k in w}
    for k in w:
        assert state[f"{k}/velocity"].dtype == np.float32
        H.assert_close(state[f"{k}/velocity"], v[k], rtol=1e-5, atol=1e-6, what=f"{k} velocity")


def adam_reference(w, grads, lr, b1, b2, eps, weight_decay=0.0):
    """Kingma & Ba, Algorithm 1 with the 'efficient' step size (eps added to sqrt(v)), float64."""
    m = {k: np.zeros_like(x) for k, x in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, g in enumerate(grads, start=1):
        for k in w:
            gk = g[k] + weight_decay * w[k]
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk**2
            lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            w[k] = w[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps)
    return w, m, v


@pytest.mark.parametrize("hyper", [dict(), dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.01)])
def test_adam(device, hyper):
    net = small_net(device)
    w = params_of(net)
    opt = get_optimizer("adam", **hyper)
    grads = run_steps(opt, net, 5)
    full = dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0) | hyper
    ref, m, v = adam_reference(w, grads, full["lr"], full["beta1"], full["beta2"], full["eps"], full["weight_decay"])
    assert_params(net, ref)
    state = opt.state_arrays(net.store)
    assert set(state) == {f"{k}/{s}" for k in w for s in ("m", "v")}
    for k in w:
        H.assert_close(state[f"{k}/m"], m[k], rtol=1e-5, atol=1e-7, what=f"{k} m")
        H.assert_close(state[f"{k}/v"], v[k], rtol=1e-5, atol=1e-9, what=f"{k} v")
    # the first Adam step moves every weight by about lr (m / sqrt(v) = sign(g))
    net2 = small_net(device)
    w0 = params_of(net2)
    run_steps(get_optimizer("adam", lr=0.001), net2, 1, seed=7)
    for k, v in params_of(net2).items():
        np.testing.assert_allclose(np.abs(v - w0[k]), 0.001, rtol=1e-3)


def test_untrained_parameters_are_left_alone(device):
    """Only the trained prefix of the store is updated: a layer of the test phase only keeps its
    parameters, even under weight decay, and gets no optimizer state. A trained parameter whose
    gradient is zero moves by weight decay alone."""
    defs = DEFS + [{"name": "probe", "type": "linear", "params": {"out_size": 2}, "inputs": ["th"],
                    "outputs": ["p"], "phase": ["test"]}]
    net = small_net(device, defs=defs)
    assert net.store.names("param") == ["probe/weight", "probe/bias"]
    w = params_of(net)
    g = random_grads(net, np.random.default_rng(0))
    g = {k: (np.zeros_like(v) if k.startswith("fc1/") else v) for k, v in g.items()}
    set_grads(net, g)
    lr, wd = 0.1, 0.01
    opt = get_optimizer("momentum_sgd", lr=lr, momentum=0.9, weight_decay=wd)
    opt.apply(net.store)
    after = params_of(net)
    for k in ("probe/weight", "probe/bias"):
        np.testing.assert_array_equal(after[k], w[k], err_msg=k)
    for k in g:
        np.testing.assert_allclose(after[k], w[k] - lr * (g[k] + wd * w[k]), rtol=1e-5, atol=1e-7, err_msg=k)
    assert not any(k.startswith("probe/") for k in opt.state_arrays(net.store))
    assert {k.rpartition("/")[0] for k in opt.state_arrays(net.store)} == set(g)


def test_loss_scale_scales_the_gradients_and_the_step(device):
    """What ``grad_scale`` did before: a loss scaled by s gives s times the gradients (and an SGD
    step of s times the length)."""
    a, b = small_net(device), small_net(device)
    data = batch(8, seed=1)
    a.train_batch(data)
    b.train_batch(data, loss_scale=0.25)
    ga, gb = a.gradients(), b.gradients()
    assert set(ga) == set(gb) == set(a.parameters())
    for k in ga:
        H.assert_close(gb[k], 0.25 * H.npy(ga[k]), rtol=1e-6, atol=1e-8, what=k)
    w = params_of(a)
    get_optimizer("sgd", lr=0.1).apply(a.store)
    get_optimizer("sgd", lr=0.4).apply(b.store)
    assert_params(b, params_of(a), rtol=1e-6, atol=1e-7)
    assert any(np.abs(params_of(a)[k] - w[k]).max() > 1e-4 for k in w)


# ---------------------------------------------------------------- state round trip


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_continues_identically(device, name):
    """state_arrays -> load_state_arrays into a fresh optimizer on another network of the same
    layout: the next steps are bit for bit those of the original."""
    a, b = small_net(device), small_net(device, seed=5)
    opt_a = get_optimizer(name, lr=0.01, weight_decay=1e-3)
    run_steps(opt_a, a, 2, seed=3)
    saved = opt_a.state_arrays(a.store)
    assert set(saved) == {f"{k}/{s}" for k in a.store.names("trained") for s in type(opt_a).slots}
    copy = get_optimizer(name, lr=0.01, weight_decay=1e-3)
    copy.load_state_arrays(saved, b.store)
    copy.iteration = opt_a.config()["iteration"]
    assert_same_bits(copy.state_arrays(b.store), saved, "state")
    b.store.load_arrays(a.store.arrays())
    for seed in (11, 12):
        g = random_grads(a, np.random.default_rng(seed))
        set_grads(a, g)
        set_grads(b, g)
        opt_a.apply(a.store)
        copy.apply(b.store)
    assert_same_bits(b.store.arrays(), a.store.arrays())
    assert_same_bits(copy.state_arrays(b.store), opt_a.state_arrays(a.store), "state")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_state_arrays_refuses_non_finite_values(device, bad):
    net = small_net(device)
    opt = get_optimizer("adam", lr=0.01)
    run_steps(opt, net, 1)
    before = opt.state_arrays(net.store)
    arrays = {k: v.copy() for k, v in before.items()}
    arrays["fc2/bias/v"][1] = bad
    fresh = get_optimizer("adam", lr=0.01)
    for target in (opt, fresh):
        with pytest.raises(ValueError, match=r"adam: state 'fc2/bias/v' holds NaN or infinite values"):
            target.load_state_arrays(arrays, net.store)
    assert_same_bits(opt.state_arrays(net.store), before, "state")  # nothing changed
    assert fresh.state == {}


@pytest.mark.parametrize("name,key,pattern", [
    ("adam", "fc1/weight/velocity",
     r"adam: unknown state slot 'velocity' in 'fc1/weight/velocity' \(its slots: m, v\)"),
    ("momentum_sgd", "fc1/weight/m",
     r"momentum_sgd: unknown state slot 'm' in 'fc1/weight/m' \(its slots: velocity\)"),
    ("sgd", "fc1/weight/velocity", r"sgd: unknown state slot 'velocity' .*\(its slots: none\)"),
    ("momentum_sgd", "fc1weight", r"momentum_sgd: unknown state slot 'fc1weight'"),
])
def test_load_state_arrays_refuses_unknown_slots(device, name, key, pattern):
    net = small_net(device)
    opt = get_optimizer(name, lr=0.01)
    run_steps(opt, net, 1)
    before = opt.state_arrays(net.store)
    arrays = dict(before)
    arrays[key] = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=pattern):
        opt.load_state_arrays(arrays, net.store)
    assert_same_bits(opt.state_arrays(net.store), before, "state")


def test_load_state_arrays_refuses_unknown_parameters_and_sizes(device):
    defs = DEFS + [{"name": "probe", "type": "linear", "params": {"out_size": 2}, "inputs": ["th"],
                    "outputs": ["p"], "phase": ["test"]}]
    net = small_net(device, defs=defs)
    opt = get_optimizer("momentum_sgd", lr=0.01)
    run_steps(opt, net, 1)
    before = opt.state_arrays(net.store)
    for key in ("fc9/weight/velocity", "probe/weight/velocity"):  # no such parameter; not trained
        with pytest.raises(ValueError, match=f"no trained parameter '{key.rpartition('/')[0]}'"):
            opt.load_state_arrays(before | {key: np.zeros((5, 2), np.float32)}, net.store)
    with pytest.raises(ValueError, match=r"state of 'fc2/bias' has 4 values, the parameter has 3"):
        opt.load_state_arrays(before | {"fc2/bias/velocity": np.zeros(4, np.float32)}, net.store)
    assert_same_bits(opt.state_arrays(net.store), before, "state")


@pytest.mark.parametrize("name", ["momentum_sgd", "adam"])
def test_state_arrays_are_a_snapshot(device, name):
    net = small_net(device)
    opt = get_optimizer(name, lr=0.1)
    run_steps(opt, net, 1)
    snapshot = opt.state_arrays(net.store)
    frozen = {k: v.copy() for k, v in snapshot.items()}
    run_steps(opt, net, 1, seed=1)
    for k in snapshot:
        np.testing.assert_array_equal(snapshot[k], frozen[k], err_msg=k)
    assert any(not np.array_equal(v, frozen[k]) for k, v in opt.state_arrays(net.store).items())


# ---------------------------------------------------------------- against torch.optim


def _torch_run(device, opt_name, torch_opt_factory, ours_hyper, n_steps=5, torch_schedule=None):
    import torch

    net = small_net(device)
    w0 = params_of(net)
    opt = get_optimizer(opt_name, **ours_hyper)
    grads = run_steps(opt, net, n_steps)
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    topt = torch_opt_factory(list(tparams.values()))
    sched = torch_schedule(topt) if torch_schedule else None
    for g in grads:
        topt.zero_grad()
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        topt.step()
        if sched is not None:
            sched.step()
    assert_params(net, {k: p.detach().numpy() for k, p in tparams.items()})
    return net, opt, topt, tparams


@H.needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_vs_torch(device, weight_decay):
    """torch's eps is added to sqrt(v_hat), ours to sqrt(v): they differ by a factor of
    sqrt(1 - beta2^t) on eps, far below the tolerance with eps = 1e-8."""
    import torch

    net, opt, topt, tparams = _torch_run(
        device, "adam", lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=weight_decay),
        dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=weight_decay))
    state = opt.state_arrays(net.store)
    for k, p in tparams.items():
        H.assert_close(state[f"{k}/m"], topt.state[p]["exp_avg"].numpy(), rtol=1e-5, atol=1e-7, what=f"{k} m")
        H.assert_close(state[f"{k}/v"], topt.state[p]["exp_avg_sq"].numpy(), rtol=1e-5, atol=1e-9, what=f"{k} v")


@H.needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 0.001])
def test_momentum_sgd_vs_torch(device, weight_decay):
    """torch: v = m v + g; w -= lr v. Ours: v = m v - lr g; w += v. Equal for a constant lr
    (our velocity is -lr times torch's momentum buffer)."""
    import torch

    net, opt, topt, tparams = _torch_run(
        device, "momentum_sgd", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=weight_decay),
        dict(lr=0.05, momentum=0.9, weight_decay=weight_decay))
    state = opt.state_arrays(net.store)
    for k, p in tparams.items():
        H.assert_close(state[f"{k}/velocity"], -0.05 * topt.state[p]["momentum_buffer"].numpy(),
                       rtol=1e-5, atol=1e-7, what=f"{k} velocity")


@H.needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_sgd_vs_torch(device, weight_decay):
    import torch

    _torch_run(device, "sgd", lambda ps: torch.optim.SGD(ps, lr=0.2, weight_decay=weight_decay),
               dict(lr=0.2, weight_decay=weight_decay))


@H.needs_torch
def test_step_schedule_vs_torch(device):
    """A step schedule equals torch's StepLR (over SGD, through the momentum rule with momentum 0)."""
    import torch

    _torch_run(device, "momentum_sgd", lambda ps: torch.optim.SGD(ps, lr=0.4), dict(lr=0.4, momentum=0.0,
               schedule=step_schedule(2, 0.5)), n_steps=5,
               torch_schedule=lambda topt: torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5))


# ---------------------------------------------------------------- schedules


def test_step_schedule_values():
    s = step_schedule(step_size=100, gamma=0.1)
    assert [s(i) for i in (0, 99, 100, 199, 200, 250)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    s = step_schedule(3, 0.5)
    assert [s(i) for i in range(7)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])


def test_cosine_schedule_values():
    s = cosine_schedule(100)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.5)
    assert s(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert s(100) == pytest.approx(0.0, abs=1e-12) and s(500) == pytest.approx(0.0, abs=1e-12)
    s = cosine_schedule(110, min_factor=0.1, warmup=10)
    assert [s(i) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)
    assert s(110) == pytest.approx(0.1) and s(1000) == pytest.approx(0.1)
    values = [s(i) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_make_schedule_strings():
    assert make_schedule(None) is None and make_schedule("constant") is None and make_schedule("") is None
    assert make_schedule("step:10")(25) == pytest.approx(0.01)
    assert make_schedule("step:10:0.5")(25) == pytest.approx(0.25)
    assert make_schedule("cosine:100")(50) == pytest.approx(0.5)
    assert make_schedule("cosine:100:0.2")(100) == pytest.approx(0.2)


def test_optimizer_follows_its_schedule(device):
    net = small_net(device)
    w = params_of(net)
    opt = get_optimizer("sgd", lr=0.4, schedule=step_schedule(1, 0.5))
    lrs = []
    rng = np.random.default_rng(0)
    for _ in range(3):
        lrs.append(opt.current_lr())
        g = random_grads(net, rng)
        set_grads(net, g)
        opt.apply(net.store)
        w = {k: w[k] - lrs[-1] * g[k] for k in w}
    assert lrs == pytest.approx([0.4, 0.2, 0.1])
    assert_params(net, w)


# ---------------------------------------------------------------- gradient accumulation


def test_two_half_batches_equal_one_full_batch(device):
    full, halves = small_net(device, seed=2), small_net(device, seed=2)
    data = batch(8, seed=4)
    full.train_batch(data)
    halves.train_batch({"x": data["x"][:, :4], "t": data["t"][:, :4]}, loss_scale=0.5)
    halves.train_batch({"x": data["x"][:, 4:], "t": data["t"][:, 4:]}, loss_scale=0.5)
    gf, gh = full.gradients(), halves.gradients()
    assert set(gf) == set(gh)
    for k in gf:
        H.assert_close(gh[k], H.npy(gf[k]), rtol=1e-5, atol=1e-7, what=k)
    for net in (full, halves):
        get_optimizer("momentum_sgd", lr=0.1, momentum=0.9).apply(net.store)
    assert_params(halves, params_of(full))


@numpy_device_allclose(rtol=1e-5, atol=1e-6)
def test_training_reduces_the_loss(device):
    net = small_net(device, seed=1)
    data = batch(32, seed=5)
    opt = get_optimizer("momentum_sgd", lr=0.1, momentum=0.9)
    first = H.net_loss(net, data)
    losses = []
    for _ in range(30):
        net.zero_grads()
        losses.append(net.train_batch(data)["loss"])  # 1x1 matrices on the device, read at the end
        opt.apply(net.store)
    assert all(m.shape == (1, 1) and m.device == device for m in losses)
    assert H.net_loss(net, data) < 0.7 * first
    assert float(losses[0]) == pytest.approx(first, rel=1e-6)
    return losses


def test_apply_stays_on_the_device(device):
    """An update is one fused primitive on the store: no transfer either way (strict counts them),
    and the state buffers are made once."""
    net = small_net(device)
    for name in ALL:
        opt = get_optimizer(name, lr=0.01)
        set_grads(net, random_grads(net, np.random.default_rng(0)))
        be = net.backend
        if hasattr(be, "reset_counts"):
            be.reset_counts()
        opt.apply(net.store)
        buffers = dict(opt.state)
        opt.apply(net.store)
        if hasattr(be, "reset_counts"):
            assert (be.downloads, be.uploads) == (0, 0), be.download_log
        assert set(buffers) == set(type(opt).slots)
        assert all(opt.state[k] is buffers[k] for k in buffers)


# ---------------------------------------------------------------- user optimizers


@pytest.fixture
def sign_sgd():
    @register_optimizer
    class SignSGD(Optimizer):
        """w <- w - lr * sign(g), counting its steps in a lazily created state slot."""

        type_name = "test_sign_sgd"
        slots = ("steps",)

        def update(self, ops, w, g, lr):
            zero = np.float32(0)
            sign = ops.sub(ops.astype(ops.gt(g, zero), F32), ops.astype(ops.lt(g, zero), F32))
            ops.axpy_(w, -lr, sign)
            steps = self.slot("steps")
            ops.assign_(steps, ops.add(steps, np.float32(1)))

    yield SignSGD
    OPTIMIZERS.pop("test_sign_sgd", None)


def test_registered_optimizer(device, sign_sgd):
    net = small_net(device)
    w = params_of(net)
    opt = get_optimizer("test_sign_sgd", lr=0.01)
    assert isinstance(opt, sign_sgd)
    assert opt.state == {}  # created lazily
    grads = run_steps(opt, net, 2)
    for g in grads:
        w = {k: w[k] - 0.01 * np.sign(g[k]) for k in w}
    assert_params(net, w)
    state = opt.state_arrays(net.store)
    assert set(state) == {f"{k}/steps" for k in w}
    assert all(np.all(v == 2) for v in state.values())
    assert opt.config()["type"] == "test_sign_sgd"
    copy = get_optimizer("test_sign_sgd", lr=0.01)
    copy.load_state_arrays(state, net.store)
    assert_same_bits(copy.state_arrays(net.store), state, "state")


def test_optimizer_without_update_is_named(device):
    class Incomplete(Optimizer):
        type_name = "test_incomplete"

    with pytest.raises(TypeError, match="Incomplete must implement update"):
        Incomplete(lr=0.1).apply(small_net(device).store)


def test_state_is_bound_to_one_store_size(device):
    net = small_net(device)
    opt = get_optimizer("momentum_sgd", lr=0.1)
    run_steps(opt, net, 1)
    other = Net([DEFS[0] | {"params": {"out_size": 7}}] + DEFS[1:], device=device, input_specs=SPECS)
    with pytest.raises(ValueError, match=r"momentum_sgd: its state is for 43 parameters in 4 tensors, the store has 59 in 4"):
        opt.apply(other.store)


# ---------------------------------------------------------------- bad hyper-parameters


@pytest.mark.parametrize("name,hyper,pattern", [
    ("sgd", dict(lr=-0.1), r"sgd: lr must be a finite number in \[0, inf\], got -0\.1"),
    ("sgd", dict(lr="0.1"), r"sgd: lr"),
    ("sgd", dict(weight_decay=-1), r"sgd: weight_decay"),
    ("momentum_sgd", dict(momentum=1.0), r"momentum_sgd: momentum must be a finite number in \[0, 1\), got 1\.0"),
    ("momentum_sgd", dict(momentum=-0.5), r"momentum_sgd: momentum"),
    ("momentum_sgd", dict(momentum="high"), r"momentum_sgd: momentum"),
    ("adam", dict(beta1=1.0), r"adam: beta1"),
    ("adam", dict(beta2=-0.1), r"adam: beta2"),
    ("adam", dict(lr=-1), r"adam: lr"),
    ("nesterov", dict(), r"unknown optimizer 'nesterov'.*momentum_sgd"),
])
def test_bad_hyper_parameters(name, hyper, pattern):
    with pytest.raises(ValueError, match=pattern):
        get_optimizer(name, **hyper)


@pytest.mark.parametrize("name,hyper", [
    ("sgd", dict(lr=float("nan"))),
    ("sgd", dict(lr=float("inf"))),
    ("momentum_sgd", dict(weight_decay=float("nan"))),
    ("adam", dict(eps=-1.0)),
])
def test_non_finite_or_negative_hyper_parameters(name, hyper):
    with pytest.raises(ValueError, match=name):
        get_optimizer(name, **hyper)


def test_unknown_hyper_parameter_is_a_value_error():
    with pytest.raises(ValueError, match=r"sgd.*momentum"):
        get_optimizer("sgd", lr=0.1, momentum=0.9)


@pytest.mark.parametrize("make", [
    lambda: step_schedule(0), lambda: step_schedule(2.5), lambda: cosine_schedule(0),
    lambda: make_schedule("linear:10"), lambda: make_schedule("step:x"), lambda: make_schedule("step"),
    lambda: make_schedule("cosine:0"),
], ids=["step0", "step_float", "cosine0", "linear", "step_x", "step_no_size", "cosine_str0"])
def test_bad_schedules(make):
    with pytest.raises(ValueError, match="schedule"):
        make()


@pytest.mark.parametrize("make", [
    lambda: step_schedule(10, gamma=-1),
    lambda: cosine_schedule(10, min_factor=-1),
    lambda: cosine_schedule(10, warmup=-3),
], ids=["gamma_negative", "min_factor_negative", "warmup_negative"])
def test_bad_schedule_factors(make):
    with pytest.raises(ValueError, match="schedule"):
        make()


# ---------------------------------------------------------------- in-place updates must not leak


@pytest.mark.parametrize("as_matrix", [False, True], ids=["numpy", "matrix"])
def test_set_parameter_does_not_alias_the_given_value(device, as_matrix):
    a, b = small_net(device), small_net(device)
    w = np.asfortranarray(np.ones((4, 5), np.float32))
    value = H.mat(w, device=device) if as_matrix else w
    a.set_parameter("fc1/weight", value)
    b.set_parameter("fc1/weight", value)
    set_grads(a, random_grads(a, np.random.default_rng(0)))
    get_optimizer("sgd", lr=0.1).apply(a.store)
    assert not np.all(H.npy(a.parameters()["fc1/weight"]) == 1.0)  # a moved
    np.testing.assert_array_equal(H.npy(value) if as_matrix else w, 1.0)
    np.testing.assert_array_equal(H.npy(b.parameters()["fc1/weight"]), 1.0)


@pytest.mark.parametrize("name", ALL)
def test_updates_are_in_place(device, name):
    net = small_net(device)
    before = net.parameters()
    data, grad = net.store.data, net.store.grad
    snapshot = {k: H.npy(v).copy() for k, v in before.items()}
    opt = get_optimizer(name, lr=0.1)
    run_steps(opt, net, 2)
    after = net.parameters()
    assert net.store.data is data and net.store.grad is grad
    for k in before:
        assert after[k] is before[k], k  # the same matrix, a view of the store, updated
        assert not np.array_equal(H.npy(after[k]), snapshot[k]), k
