"""The low-communication (local-steps) mode's compressed exchange.

A worker uploads the change of its weights after H local steps through the same path as a
gradient: 8-bit codes (``dettmers8``, ``block8``) piece by piece, with error feedback on the
worker, so what one round's code loses goes out with the next round's change. The coordinator
sends the new weights down in the run's weight codec (every worker the same decoded copy).

The code's stated error (``codec.py``): an 8-bit value is off by at most half the widest gap
between its levels, HALF_GAP (< 0.87 %), times its tensor's (or block's) maximum absolute value.
"""

import asyncio
import json
from importlib import resources

import numpy as np
import pytest

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator.state import Settings
from sukiyaki.distributed.worker import Worker

import dist_helpers as D  # noqa: E402

LEVELS = np.array(json.loads(resources.files("sukiyaki.distributed").joinpath("dettmers8bit.json")
                             .read_text("utf-8"))["levels"], dtype=np.float64)
HALF_GAP = float(np.max(np.diff(np.concatenate([[0.0], LEVELS, [1.0]]))) / 2)


def run(state, **kw):
    return asyncio.run(D.run_cluster(state, **kw))


@pytest.mark.parametrize("codec", ["dettmers8", "block8"])
def test_a_weight_change_round_trips_through_the_worker_upload_with_error_feedback(codec, monkeypatch):
    monkeypatch.setattr(P, "PART_BYTES", 4096)  # several pieces per tensor
    w = Worker("http://127.0.0.1:9", "token", reconnect=False)
    w.settings = {"codec_up": codec}
    rng = np.random.default_rng(3)
    shape = (50, 400)  # 20,000 values: 5 pieces of 4096 codes
    base = (rng.standard_normal(shape) * np.exp(rng.normal(0, 1.5, shape))).astype(np.float32) * 1e-3
    true = np.zeros(shape, np.float64)
    sent = np.zeros(shape, np.float64)
    for _ in range(5):  # five rounds' changes of one tensor
        change = np.asfortranarray(base * (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32))
        residual = w.feedback.residuals.get("fc/weight")
        x = change + (residual if residual is not None else 0)  # what this round encodes
        pieces = list(w.encode_tensor("fc/weight", {"fc/weight": change}))
        assert len(pieces) == len(C.piece_bounds(change.size, codec, 4096)) > 1
        flat = np.empty(change.size, np.float32)
        for shape_, codec_, lo, hi, data, finite in pieces:
            assert (shape_, codec_, finite) == (shape, codec, True)
            flat[lo:hi] = C.decode(data, codec, hi - lo)  # a piece decodes alone, as the coordinator does
        got = flat.reshape(shape, order="F")
        # within the code's stated error of what was encoded (the change plus the last residual)
        assert np.abs(got - x).max() <= HALF_GAP * np.abs(x).max() * (1 + 1e-6)
        true += change
        sent += got
        # nothing is lost: what was not sent yet is the residual
        np.testing.assert_allclose(true - sent, w.feedback.residuals["fc/weight"], rtol=1e-4,
                                   atol=1e-6 * np.abs(base).max())


def _distance(a, b):
    return float(np.sqrt(sum(np.sum((a[k].astype(np.float64) - b[k]) ** 2) for k in a)))


@pytest.mark.parametrize("codec", ["dettmers8", "block8"])
def test_compressed_local_steps_follow_the_uncompressed_run(codec):
    """3 rounds of H = 4 on one worker (one worker: the raw run is deterministic). Compressing only
    the upload (error feedback) stays within a few per cent of the distance the weights moved
    (measured 1.5 % dettmers8, 1.0 % block8 after a round); compressing the weights sent down too
    makes the workers start each round from 8-bit weights, which perturbs the round's trajectory
    (measured ~7 % after a round, ~12-17 % after 3): it still trains, and stays close."""
    kw = dict(batch_size=32, iterations=12, seed=11, local_steps=4, inner_lr=0.02)
    initial = D.weights(D.make_state(Settings(**kw)))
    exact = D.make_state(Settings(**kw))
    run(exact, n_workers=1)
    a = D.weights(exact)
    moved = _distance(a, initial)
    assert moved > 0 and exact.iteration == 12 and len(exact.history) == 3
    up = D.make_state(Settings(codec_up=codec, **kw))
    run(up, n_workers=1)
    both = D.make_state(Settings(codec_down=codec, codec_up=codec, **kw))
    server = run(both, n_workers=1)
    d_up, d_both = _distance(D.weights(up), a) / moved, _distance(D.weights(both), a) / moved
    assert 0 < d_up < 0.06, d_up
    assert 0 < d_both < 0.3, d_both
    losses = [loss for _, loss in both.history]
    assert both.iteration == 12 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    # the worker kept a residual for every trained tensor (error feedback on the change)
    worker = server.workers_run[0]
    assert set(worker.feedback.residuals) == set(a)


def test_the_coordinator_keeps_exact_weights_while_workers_start_from_8bit_copies():
    """Workers start their H steps from the decoded 8-bit weights, but the change they return is
    taken from that copy: with an inner rate of 0 every change is zero, and the coordinator's own
    float32 weights come out bit-equal (the 8-bit copy never replaces them)."""
    kw = dict(batch_size=32, iterations=8, seed=12, local_steps=4, inner_lr=0.0, codec_down="dettmers8",
              codec_up="dettmers8")
    state = D.make_state(Settings(**kw))
    before = D.weights(state)
    run(state, n_workers=2)
    after = D.weights(state)
    assert state.iteration == 8
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
