"""A training step stays on the device, and its randomness does not depend on how a batch is cut.

On the strict backend every device-to-host read is counted and located: 20 LeNet steps make
exactly the reads of the losses every ``read_every`` iterations. Dropout masks and
augmentation draws come from Philox keyed by (seed, layer) and counted by (iteration,
sample, element), so they are the same under ``batch_div`` 1, 2 and 4 and on every backend.
"""

from pathlib import Path

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend
from sukiyaki.data import load_mnist
from sukiyaki.nn import Net
from sukiyaki.nn.train import Trainer, evaluate, make_optimizer
from sukiyaki.nn.weights import weight_arrays

from nn_helpers import lenet_with_randomness  # noqa: E402  (tests/nn is on sys.path under pytest)

LENET = Path(__file__).resolve().parents[2] / "sukiyaki" / "nets" / "lenet.json"
STRICT = "strict" in available_backends()
needs_strict = pytest.mark.skipif(not STRICT, reason="the strict test backend is not available")


@pytest.fixture(scope="module")
def test_subset():
    x, t = load_mnist(split="test")
    return x[..., :100], t[:, :100]


def trainer(net, **kw):
    kw.setdefault("optimizer", make_optimizer("momentum_sgd", lr=0.01))
    return Trainer(net, batch_size=16, val_cycle=None, progress=False, log=None, **kw)


@needs_strict
@pytest.mark.parametrize("randomness", [False, True], ids=["lenet", "lenet+augmentation+dropout"])
def test_twenty_steps_read_only_the_losses_every_k_iterations(test_subset, randomness):
    net = Net(lenet_with_randomness() if randomness else str(LENET), device="strict",
              data_sources={"d_test": test_subset})
    be = get_backend("strict")
    tr = trainer(net, iterations=20, read_every=10)
    be.reset_counts()
    out = tr.train()
    assert out["iteration"] == 20 and np.isfinite(out["train_loss"])
    # two reads (iterations 10 and 20), both the trainer's loss read: nothing in forward,
    # backward or update reads back
    assert be.downloads == 2, be.download_log
    assert all(where.startswith("sukiyaki/nn/train.py") for _, where in be.download_log), be.download_log
    assert [it for it, _ in tr.losses] == list(range(1, 21))
    # uploads are the batches (images and labels), the sample ids of the random layers, and
    # the augmentation mean once: a fixed number per step, nothing proportional to the layers
    per_step = 3 if randomness else 2
    assert be.uploads <= 20 * per_step + 1


@needs_strict
def test_evaluation_reads_once_per_pass(test_subset):
    net = Net(str(LENET), device="strict", data_sources={"d_test": test_subset})
    be = get_backend("strict")
    be.reset_counts()
    res = evaluate(net, batch_size=30)  # 4 batches
    assert be.downloads == 1 and res["images"] == 100


def test_masks_do_not_depend_on_batch_div(device, test_subset):
    """The same 5 iterations with the batch cut in 1, 2 and 4 sub-batches give the same weights
    (within float32 summation tolerance): every sample keeps its dropout mask and its crop (a
    mask or crop that moved would differ from the first step on). Not 20: sums in another
    order differ in the last bits, and over 20 steps such a difference may tip a max-pooling
    choice between near-equal values, a jump of lr times a gradient (seen on webgpu with
    split-K sums at seed 3, not at seeds 4-9)."""
    finals = []
    for div in (1, 2, 4):
        net = Net(lenet_with_randomness(), device=device, seed=1, data_sources={"d_test": test_subset})
        trainer(net, iterations=5, batch_div=div, seed=3).train()
        finals.append(weight_arrays(net))
    for other in finals[1:]:
        for k in finals[0]:
            np.testing.assert_allclose(other[k], finals[0][k], rtol=2e-4, atol=2e-6, err_msg=k)
    # the randomness is real: another seed moves the weights far more than that
    net = Net(lenet_with_randomness(), device=device, seed=1, data_sources={"d_test": test_subset})
    trainer(net, iterations=5, seed=4).train()
    moved = max(np.abs(weight_arrays(net)[k] - finals[0][k]).max() for k in finals[0])
    assert moved > 1e-3


@needs_strict
def test_numpy_and_strict_train_bit_for_bit_alike(test_subset):
    """strict runs the numpy kernels behind opaque handles: same masks, same crops, same
    bits after 10 iterations of a network with augmentation and dropout."""
    finals = []
    for device in ("numpy", "strict"):
        net = Net(lenet_with_randomness(), device=device, seed=2, data_sources={"d_test": test_subset})
        trainer(net, iterations=10, seed=5).train()
        finals.append(weight_arrays(net))
    for k in finals[0]:
        assert finals[0][k].tobytes() == finals[1][k].tobytes(), k


def test_losses_stay_on_the_device_until_read(device, test_subset):
    net = Net(str(LENET), device=device, data_sources={"d_test": test_subset})
    tr = trainer(net, iterations=5, read_every=100)
    step = tr.step()
    assert set(step) == {"loss"} and step["loss"].device == device
    assert tr.losses == []  # not read yet
    tr.step()
    read = tr.read_losses()
    assert [it for it, _, _ in read] == [1, 2] and all(n == 16 for _, n, _ in read)
    assert read[0][2] == pytest.approx(float(step["loss"]), rel=1e-6)


def test_divergence_is_found_at_the_read_and_names_the_iteration(device, test_subset):
    net = Net(str(LENET), device=device, data_sources={"d_test": test_subset})
    tr = trainer(net, iterations=30, read_every=10, optimizer=make_optimizer("sgd", lr=1e6))
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"iteration \d+: the loss is") as info:
        tr.train()
    bad = int(str(info.value).split(":")[0].split()[1])
    assert 1 <= bad <= tr.iteration <= 30
