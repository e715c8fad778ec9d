"""Optimizers: SGD, momentum SGD (the original's v = m v - lr g; w += v), Adam, weight decay,
learning-rate schedules, gradient accumulation over sub-batches, user optimizers, bad
hyper-parameters. References: float64 re-implementations and, where present, torch.optim.
"""

import math

import numpy as np
import pytest

from sukiyaki.nn import Net
from sukiyaki.nn.optim import (OPTIMIZERS, Optimizer, cosine_schedule, get_optimizer, make_schedule,
                               register_optimizer, step_schedule)


import nn_helpers as H  # noqa: E402  (tests/nn is on sys.path under pytest)

DEFS = [
    {"name": "fc1", "type": "linear", "params": {"out_size": 5}, "inputs": ["x"], "outputs": ["h"]},
    {"name": "act", "type": "tanh", "inputs": ["h"], "outputs": ["th"]},
    {"name": "fc2", "type": "linear", "params": {"out_size": 3}, "inputs": ["th"], "outputs": ["y"]},
    {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["y", "t"], "outputs": ["loss"]},
]
SPECS = {"x": ((4,), "single"), "t": ((1,), "int32")}


def small_net(seed=0):
    return Net(DEFS, input_specs=SPECS, seed=seed)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((4, n)).astype(np.float32), "t": rng.integers(0, 3, (1, n)).astype(np.int32)}


def params_of(net):
    return {k: H.npy(v).astype(np.float64) for k, v in net.parameters().items()}


def set_grads(net, grads):
    """Give every parameter the gradient grads[name] (numpy), as a backward pass would."""
    for layer in net.layers.values():
        layer.grads = {k: H.mat(grads[f"{layer.name}/{k}"].astype(np.float32)) for k in layer.weights}


def random_grads(net, rng):
    return {k: rng.standard_normal(v.shape) for k, v in params_of(net).items()}


def run_steps(opt, net, n_steps, seed=0):
    """Apply n_steps updates with fresh random gradients; returns the gradients used."""
    rng = np.random.default_rng(seed)
    used = []
    for _ in range(n_steps):
        g = {k: v.astype(np.float32).astype(np.float64) for k, v in random_grads(net, rng).items()}
        set_grads(net, g)
        opt.step(net)
        used.append(g)
    return used


def assert_params(net, expected, rtol=1e-5, atol=1e-6):
    for k, v in net.parameters().items():
        H.assert_close(v, expected[k], rtol=rtol, atol=atol, what=k)


# ---------------------------------------------------------------- update rules against float64 references


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd(weight_decay):
    net = small_net()
    w = params_of(net)
    opt = get_optimizer("sgd", lr=0.1, weight_decay=weight_decay)
    grads = run_steps(opt, net, 3)
    for g in grads:
        w = {k: w[k] - 0.1 * (g[k] + weight_decay * w[k]) for k in w}
    assert_params(net, w)
    assert opt.iteration == 3


@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
def test_momentum_sgd_is_the_originals_rule(weight_decay):
    net = small_net()
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
    state = opt.state_arrays()
    assert set(state) == {f"{k}/velocity" for k in w}
    for k in w:
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
    return w


@pytest.mark.parametrize("hyper", [dict(), dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.01)])
def test_adam(hyper):
    net = small_net()
    w = params_of(net)
    opt = get_optimizer("adam", **hyper)
    grads = run_steps(opt, net, 5)
    full = dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0) | hyper
    ref = adam_reference(w, grads, full["lr"], full["beta1"], full["beta2"], full["eps"], full["weight_decay"])
    assert_params(net, ref)
    # the first Adam step moves every weight by about lr (m / sqrt(v) = sign(g))
    net2 = small_net()
    w0 = params_of(net2)
    run_steps(get_optimizer("adam", lr=0.001), net2, 1, seed=7)
    for k, v in params_of(net2).items():
        np.testing.assert_allclose(np.abs(v - w0[k]), 0.001, rtol=1e-3)


def test_parameters_without_gradients_are_left_alone():
    net = small_net()
    w = params_of(net)
    g = random_grads(net, np.random.default_rng(0))
    set_grads(net, g)
    net.layers["fc1"].grads = {}
    opt = get_optimizer("momentum_sgd", lr=0.1, momentum=0.9)
    opt.step(net)
    for k, v in params_of(net).items():
        if k.startswith("fc1/"):
            np.testing.assert_array_equal(v, w[k])
        else:
            np.testing.assert_allclose(v, w[k] - 0.1 * g[k], rtol=1e-5, atol=1e-6)
    assert not any(k.startswith("fc1/") for k in opt.state)  # state is created lazily


def test_grad_scale():
    a, b = small_net(), small_net()
    g = random_grads(a, np.random.default_rng(1))
    set_grads(a, {k: 0.25 * v for k, v in g.items()})
    get_optimizer("sgd", lr=0.1).step(a)
    set_grads(b, g)
    get_optimizer("sgd", lr=0.1).step(b, grad_scale=0.25)
    assert_params(b, params_of(a))


def test_state_round_trip_continues_identically():
    a, b = small_net(), small_net()
    opt_a = get_optimizer("adam", lr=0.01)
    run_steps(opt_a, a, 2, seed=3)
    copy = get_optimizer("adam", lr=0.01)
    copy.load_state_arrays(opt_a.state_arrays(), lambda name: a.parameters()[name])
    copy.iteration = opt_a.config()["iteration"]
    for k, v in a.parameters().items():
        b.set_parameter(k, H.npy(v))
    g = random_grads(a, np.random.default_rng(11))
    set_grads(a, g)
    set_grads(b, g)
    opt_a.step(a)
    copy.step(b)
    assert_params(b, params_of(a), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- against torch.optim


def _torch_run(opt_name, torch_opt_factory, ours_hyper, n_steps=5):
    import torch

    net = small_net()
    w0 = params_of(net)
    opt = get_optimizer(opt_name, **ours_hyper)
    grads = run_steps(opt, net, n_steps)
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    topt = torch_opt_factory(list(tparams.values()))
    for g in grads:
        topt.zero_grad()
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        topt.step()
    assert_params(net, {k: p.detach().numpy() for k, p in tparams.items()})


@H.needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_vs_torch(weight_decay):
    import torch

    _torch_run("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=weight_decay),
               dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=weight_decay))


@H.needs_torch
@pytest.mark.parametrize("weight_decay", [0.0, 0.001])
def test_momentum_sgd_vs_torch(weight_decay):
    """torch: v = m v + g; w -= lr v. Ours: v = m v - lr g; w += v. Equal for a constant lr."""
    import torch

    _torch_run("momentum_sgd",
               lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=weight_decay),
               dict(lr=0.05, momentum=0.9, weight_decay=weight_decay))


@H.needs_torch
def test_sgd_vs_torch():
    import torch

    _torch_run("sgd", lambda ps: torch.optim.SGD(ps, lr=0.2, weight_decay=0.1), dict(lr=0.2, weight_decay=0.1))


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


def test_optimizer_follows_its_schedule():
    net = small_net()
    w = params_of(net)
    opt = get_optimizer("sgd", lr=0.4, schedule=step_schedule(1, 0.5))
    lrs = []
    rng = np.random.default_rng(0)
    for _ in range(3):
        lrs.append(opt.current_lr())
        g = {k: v.astype(np.float32).astype(np.float64) for k, v in random_grads(net, rng).items()}
        set_grads(net, g)
        opt.step(net)
        w = {k: w[k] - lrs[-1] * g[k] for k in w}
    assert lrs == pytest.approx([0.4, 0.2, 0.1])
    assert_params(net, w)


# ---------------------------------------------------------------- gradient accumulation


def test_two_half_batches_equal_one_full_batch():
    full, halves = small_net(seed=2), small_net(seed=2)
    data = batch(8, seed=4)
    full.train_batch(data)
    halves.train_batch({"x": data["x"][:, :4], "t": data["t"][:, :4]}, loss_scale=0.5)
    halves.train_batch({"x": data["x"][:, 4:], "t": data["t"][:, 4:]}, loss_scale=0.5)
    gf, gh = full.gradients(), halves.gradients()
    assert set(gf) == set(gh)
    for k in gf:
        H.assert_close(gh[k], H.npy(gf[k]), rtol=1e-5, atol=1e-7, what=k)
    for net in (full, halves):
        get_optimizer("momentum_sgd", lr=0.1, momentum=0.9).step(net)
    assert_params(halves, params_of(full))


def test_training_reduces_the_loss():
    net = small_net(seed=1)
    data = batch(32, seed=5)
    opt = get_optimizer("momentum_sgd", lr=0.1, momentum=0.9)
    first = H.net_loss(net, data)
    for _ in range(30):
        net.zero_grads()
        net.train_batch(data)
        opt.step(net)
    assert H.net_loss(net, data) < 0.7 * first


# ---------------------------------------------------------------- user optimizers


@pytest.fixture
def sign_sgd():
    @register_optimizer
    class SignSGD(Optimizer):
        """w <- w - lr * sign(g), counting its steps in a lazily created state."""

        type_name = "test_sign_sgd"

        def init_state(self, w):
            return {"steps": 0}

        def update_one(self, w, g, state, lr):
            state["steps"] += 1
            sign = H.mat(np.sign(H.npy(g)))
            return w - sign * lr

    yield SignSGD
    OPTIMIZERS.pop("test_sign_sgd", None)


def test_registered_optimizer(sign_sgd):
    net = small_net()
    w = params_of(net)
    opt = get_optimizer("test_sign_sgd", lr=0.01)
    assert isinstance(opt, sign_sgd)
    grads = run_steps(opt, net, 2)
    for g in grads:
        w = {k: w[k] - 0.01 * np.sign(g[k]) for k in w}
    assert_params(net, w)
    assert {k: s["steps"] for k, s in opt.state.items()} == {k: 2 for k in w}
    assert opt.config()["type"] == "test_sign_sgd"


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
def test_set_parameter_does_not_alias_the_given_value(as_matrix):
    a, b = small_net(), small_net()
    w = np.asfortranarray(np.ones((4, 5), np.float32))
    value = H.mat(w) if as_matrix else w
    a.set_parameter("fc1/weight", value)
    b.set_parameter("fc1/weight", value)
    set_grads(a, random_grads(a, np.random.default_rng(0)))
    get_optimizer("sgd", lr=0.1).step(a)
    np.testing.assert_array_equal(H.npy(value) if as_matrix else w, 1.0)
    np.testing.assert_array_equal(H.npy(b.parameters()["fc1/weight"]), 1.0)




@pytest.mark.parametrize("name", ["momentum_sgd", "adam"])
def test_state_arrays_are_a_snapshot(name):
    net = small_net()
    opt = get_optimizer(name, lr=0.1)
    run_steps(opt, net, 1)
    snapshot = opt.state_arrays()
    frozen = {k: v.copy() for k, v in snapshot.items()}
    run_steps(opt, net, 1, seed=1)
    for k in snapshot:
        np.testing.assert_array_equal(snapshot[k], frozen[k], err_msg=k)


@pytest.mark.parametrize("name", ["sgd", "momentum_sgd", "adam"])
def test_updates_are_in_place(name):
    net = small_net()
    before = net.parameters()
    snapshot = {k: v.to_numpy().copy() for k, v in before.items()}
    opt = get_optimizer(name, lr=0.1)
    run_steps(opt, net, 2)
    after = net.parameters()
    for k in before:
        assert after[k] is before[k], k  # the same matrix, updated
        assert not np.array_equal(after[k].to_numpy(), snapshot[k]), k
