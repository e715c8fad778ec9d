"""Distributed training end to end on loopback: the coordinator and in-process native workers.

The weights after k iterations do not depend on the number of workers (bit-equal in the
deterministic mode, within float32 summation tolerance otherwise), and equal those of one
process training the same batches; a worker that leaves mid-run, a wrong token, a lossy
codec and a restarted coordinator are handled.
"""

import asyncio

import numpy as np
import pytest

from sukiyaki.distributed.coordinator.checkpoint import restore_checkpoint
from sukiyaki.distributed.coordinator.state import Settings
from sukiyaki.distributed.worker import FatalError, Worker
from sukiyaki.nn.train import Trainer, make_optimizer

import dist_helpers as D  # noqa: E402


def run(state, **kw):
    return asyncio.run(D.run_cluster(state, **kw))


def test_workers_count_changes_nothing_in_deterministic_mode():
    finals = []
    for n in (1, 3):
        state = D.make_state(Settings(batch_size=32, iterations=4, seed=1, shard_size=8, deterministic=True))
        server = run(state, n_workers=n)
        assert state.iteration == 4 and len(state.history) == 4
        assert sum(w.tasks_done for w in server.workers_run) == 4 * 32 // 8  # one shard per task
        finals.append(D.weights(state))
    D.assert_same_weights(finals[0], finals[1])  # bit for bit


def test_distributed_equals_one_process_training():
    state = D.make_state(Settings(batch_size=32, iterations=5, seed=2))
    run(state, n_workers=2)
    net = D.small_lenet()
    tr = Trainer(net, make_optimizer("momentum_sgd", lr=0.02), batch_size=32, iterations=5, val_cycle=None,
                 seed=2, progress=False, log=None)
    tr.train()
    D.assert_same_weights(D.weights(state), net.store.arrays(), rtol=1e-5, atol=1e-7)
    one = [v for _, v in tr.losses]
    dist = [loss for _, loss in state.history]
    np.testing.assert_allclose([sum(v.values()) for v in one], dist, rtol=1e-5)


def test_speed_proportional_splits_and_a_worker_that_leaves():
    # the second worker leaves after 2 tasks: its share goes to the first, the run completes
    state = D.make_state(Settings(batch_size=32, iterations=6, seed=3, shard_size=4))
    server = run(state, n_workers=2, worker_kw=[{}, {"max_tasks": 2, "reconnect": False}])
    assert state.iteration == 6
    done = [w.tasks_done for w in server.workers_run]
    assert done[1] == 2 and done[0] >= 6
    reference = D.make_state(Settings(batch_size=32, iterations=6, seed=3, shard_size=4))
    run(reference, n_workers=1)
    D.assert_same_weights(D.weights(state), D.weights(reference), rtol=1e-5, atol=1e-7)


def test_wrong_token_is_refused():
    async def attempt():
        state = D.make_state()
        server, runner, url = await D.serve(state)
        try:
            with pytest.raises(FatalError, match="wrong join token"):
                await Worker(url, "not-the-token", reconnect=False).run()
            assert not state.workers
        finally:
            await runner.cleanup()

    asyncio.run(attempt())


@pytest.mark.parametrize("codec", ["fp16", "dettmers8", "block8"])
def test_lossy_codecs_train(codec):
    state = D.make_state(Settings(batch_size=32, iterations=6, seed=4, codec_down=codec, codec_up=codec))
    run(state, n_workers=2)
    exact = D.make_state(Settings(batch_size=32, iterations=6, seed=4))
    run(exact, n_workers=2)
    losses = [loss for _, loss in state.history]
    assert state.iteration == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    # close to the exact run, but not equal: the codec is really applied
    a, b = D.weights(state), D.weights(exact)
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert 0 < diff < 0.05


def test_restarted_coordinator_resumes_exactly(tmp_path):
    ck = tmp_path / "coordinator.safetensors"
    settings = dict(batch_size=32, seed=5, shard_size=8, deterministic=True)
    first = D.make_state(Settings(iterations=3, **settings))
    run(first, n_workers=2, checkpoint=str(ck), checkpoint_every=1)
    assert ck.exists()
    second = D.make_state(Settings(iterations=6, **settings), net=D.small_lenet(seed=9))
    assert restore_checkpoint(second, ck) == 3
    run(second, n_workers=2)
    straight = D.make_state(Settings(iterations=6, **settings))
    run(straight, n_workers=1)
    D.assert_same_weights(D.weights(second), D.weights(straight))


def test_local_steps_mode_trains_with_far_fewer_bytes_per_sample():
    sync = D.make_state(Settings(batch_size=32, iterations=8, seed=6))
    sync_server = run(sync, n_workers=2)
    settings = Settings(batch_size=32, iterations=32, seed=6, local_steps=8, codec_down="dettmers8",
                        codec_up="dettmers8", inner_lr=0.02)
    local = D.make_state(settings)
    local_server = run(local, n_workers=2)
    assert local.iteration == 32 and len(local.history) == 4  # 4 rounds of 8 local steps
    losses = [loss for _, loss in local.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]

    def per_sample(server, state):
        return (server.bytes_in + server.bytes_out) / state.samples_total

    ratio = per_sample(sync_server, sync) / per_sample(local_server, local)
    assert ratio > 20, ratio  # 8 steps per synchronisation and 8-bit codes both ways: about 30x


def test_local_steps_checkpoint_keeps_the_outer_momentum(tmp_path):
    ck = tmp_path / "c.safetensors"
    settings = dict(batch_size=32, seed=7, local_steps=4, inner_lr=0.02)
    first = D.make_state(Settings(iterations=8, **settings))
    run(first, n_workers=1, checkpoint=str(ck), checkpoint_every=4)
    assert first.outer_velocity is not None
    second = D.make_state(Settings(iterations=8, **settings), net=D.small_lenet(seed=3))
    assert restore_checkpoint(second, ck) == 8
    np.testing.assert_array_equal(second.outer_velocity, first.outer_velocity)
    D.assert_same_weights(D.weights(second), D.weights(first))


def test_a_diverged_run_stops_with_a_clear_reason():
    state = D.make_state(Settings(batch_size=32, iterations=20, seed=8),
                         optimizer=make_optimizer("sgd", lr=1e8))
    with np.errstate(all="ignore"):
        run(state, n_workers=2)
    assert state.stopped and state.iteration < 20
    assert "training diverged at iteration" in state.diverged and "lower learning rate" in state.diverged


def test_the_coordinator_validates_every_cycle_and_at_the_end():
    state = D.make_state(Settings(batch_size=32, iterations=5, seed=9, val_cycle=2))
    run(state, n_workers=1)
    assert [it for it, _ in state.validations] == [2, 4, 5]
    for _, metrics in state.validations:
        assert set(metrics) == {"accuracy", "loss"} and 0 <= metrics["accuracy"] <= 1


def bn_defs():
    """A small network with batch normalization (running statistics are states)."""
    return [
        {"name": "d_train", "type": "mnist_data", "params": {"split": "train"}, "inputs": ["batch"],
         "outputs": ["raw", "label"], "phase": "train"},
        {"name": "d_test", "type": "mnist_data", "params": {"split": "test"}, "inputs": ["batch"],
         "outputs": ["raw", "label"], "phase": "test"},
        {"name": "aug", "type": "data_augmentation", "inputs": ["raw"], "outputs": ["x"],
         "params": {"out_shape": [28, 28], "scale": 0.00390625, "input_klass": "uint8"}},
        {"name": "conv", "type": "convolution_2d", "inputs": ["x"], "outputs": ["c"],
         "params": {"in_size": 1, "out_size": 4, "ksize": 5, "stride": 2}},
        {"name": "bn", "type": "batch_normalization", "inputs": ["c"], "outputs": ["b"], "params": {"in_size": 4}},
        {"name": "relu", "type": "relu", "inputs": ["b"], "outputs": ["r"]},
        {"name": "fc", "type": "linear", "inputs": ["r"], "outputs": ["pred"], "params": {"out_size": 10}},
        {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["pred", "label"], "outputs": ["loss"]},
        {"name": "acc", "type": "accuracy", "inputs": ["pred", "label"], "outputs": ["accuracy"], "phase": "test"},
    ]


def test_running_statistics_come_back_from_the_workers():
    finals = []
    for n in (1, 2):
        state = D.make_state(Settings(batch_size=32, iterations=3, seed=10, shard_size=8, deterministic=True),
                             net=D.small_lenet(defs=bn_defs()))
        run(state, n_workers=n)
        finals.append(D.weights(state))
    mean = finals[0]["bn/running_mean"]
    assert np.abs(mean).max() > 1e-3 and np.all(finals[0]["bn/running_var"] != 1)  # moved from their start
    D.assert_same_weights(finals[0], finals[1])  # statistics included, bit for bit
