"""The coordinator's state machine alone: no sockets, no threads, the clock given by the test.

Results are built by hand (constant gradients of the right shapes), so each test decides
exactly what comes back, when, and from whom: splits by measured speed, deadlines and late
results, every kind of bad upload, workers leaving, pause and resume.
"""

import re

import numpy as np
import pytest

from sukiyaki.distributed import protocol as P
from sukiyaki.distributed.coordinator.state import Close, Log, Send, Settings, WorkerInfo

import dist_helpers as D  # noqa: E402


def task_sends(actions, worker=None):
    """The TASK messages among actions (of one worker, when given)."""
    return [a for a in actions if isinstance(a, Send) and a.kind == P.TASK and worker in (None, a.worker)]


def rejects(actions, worker):
    return [a for a in actions if isinstance(a, Send) and a.kind == P.REJECT and a.worker == worker]


def ids_of(send):
    return sorted(int(i) for i in dict((n, a) for n, a, _ in send.tensors)["ids"].reshape(-1))


def result(state, task_id, value=1e-3, tensors=None, **fields):
    """A RESULT frame for a task: gradients all equal to value (of the right shapes), fields overridable."""
    t = state.tasks[task_id]
    f = {"iteration": t.iteration, "task": t.id, "samples": len(t.ids), "loss": 0.5, "seconds": 0.1}
    f.update(fields)
    if tensors is None:
        tensors = {n: np.full(state.shapes[n], value, np.float32) for n in state.names}
    return P.Frame(P.RESULT, f, tensors)


def model_bytes(state):
    """The weights and the optimizer state, as bytes."""
    store = state.net.store
    opt = state.optimizer.state_arrays(store)
    return store.to_numpy().tobytes() + b"".join(opt[k].tobytes() for k in sorted(opt))


def join(state, name, now):
    return state.add_worker(WorkerInfo(name, "numpy", "cpu"), now)


def test_shards_follow_measured_speed():
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=1))
    a = task_sends(join(st, "fast", 0.0))
    b = task_sends(join(st, "slow", 0.0))
    # the first worker took every shard: it was the only one idle
    assert len(a) == 1 and not b and len(st.tasks[a[0].fields["task"]].ids) == 32
    st.on_result(1, result(st, a[0].fields["task"], seconds=0.2), 1.0)  # 160 samples/s; round 0 done
    # round 1: the unknown worker counts as the median known speed, so the split is even
    assert {t.worker: len(t.ids) for t in st.tasks.values()} == {1: 16, 2: 16}
    # give both a speed: worker 1 at 160/s, worker 2 at 10/s
    for t in list(st.tasks.values()):
        secs = len(t.ids) / (160.0 if t.worker == 1 else 10.0)
        acts = st.on_result(t.worker, result(st, t.id, seconds=secs), 2.0)
    assert st.iteration == 2
    split = {t.worker: len(t.ids) for t in st.tasks.values()}
    assert sum(split.values()) == 32
    w1 = st.workers[1].speed
    w2 = st.workers[2].speed
    assert w1 > 4 * w2
    expected = 32 * w1 / (w1 + w2)
    assert split[1] > split[2] and abs(split[1] - expected) < 1.0, (split, expected)
    assert task_sends(acts)  # the new round's tasks went out with the last result


def test_first_split_is_even_between_unknown_workers():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=4))
    st.pause()
    join(st, "a", 0.0)
    join(st, "b", 0.0)
    acts = st.resume(0.0)
    assert sorted(len(st.tasks[s.fields["task"]].ids) for s in task_sends(acts)) == [16, 16]


def test_late_result_is_rejected_and_its_shards_go_to_the_other_worker():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8, deadline=5.0))
    st.pause()
    join(st, "prompt", 0.0)
    join(st, "stalls", 0.0)
    st.resume(0.0)
    mine = {t.worker: t.id for t in st.tasks.values()}
    stalled = st.tasks[mine[2]]
    stalled_ids = sorted(stalled.ids.tolist())
    st.on_result(1, result(st, mine[1]), 0.5)  # worker 1 done; worker 2 silent
    assert st.tick(4.9) == []  # not yet
    acts = st.tick(5.1)
    assert any(isinstance(a, Log) and "missed its deadline" in a.text for a in acts)
    again = task_sends(acts)
    assert [s.worker for s in again] == [1] and ids_of(again[0]) == stalled_ids  # to the prompt worker
    before, done = model_bytes(st), set(st.round.done)
    late = result(st, again[0].fields["task"], value=5.0, task=stalled.id)  # the late result, bogus values
    acts = st.on_result(2, late, 6.0)
    (rej,) = rejects(acts, 2)
    assert re.search(rf"task {stalled.id} of iteration 0 is not one of yours", rej.fields["reason"])
    assert model_bytes(st) == before and st.round.done == done and len(done) == 2
    st.on_result(1, result(st, again[0].fields["task"]), 6.5)
    assert st.iteration == 1


def test_deterministic_straggler_does_not_get_its_shard_back():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8, deterministic=True, deadline=5.0))
    join(st, "stalls", 0.0)  # joined first: first in the idle list
    join(st, "prompt", 0.0)
    (stalled,) = [t for t in st.tasks.values() if t.worker == 1]
    while any(t.worker == 2 for t in st.tasks.values()):  # worker 2 does every other shard
        (t,) = [t for t in st.tasks.values() if t.worker == 2]
        st.on_result(2, result(st, t.id), 1.0)
    assert not st.round.pending and len(st.round.done) == 3
    acts = st.tick(5.5)
    again = task_sends(acts)
    assert len(again) == 1 and ids_of(again[0]) == sorted(stalled.ids.tolist())
    assert again[0].worker == 2, "the missed shard went back to the worker that missed it"


BAD_UPLOADS = {
    # name: (frame builder (state, task id) -> Frame, settings overrides, reason pattern)
    "wrong_shape": (lambda st, t: result(st, t, tensors={n: np.zeros(st.shapes[n][::-1] + (1,), np.float32)
                                                         for n in st.names}), {}, r"gradient '.+' has shape"),
    "float64": (lambda st, t: result(st, t, tensors={n: np.zeros(st.shapes[n], np.float64) for n in st.names}), {},
                r"float64, expected .* float32"),
    "nan": (lambda st, t: result(st, t, tensors={n: np.full(st.shapes[n], np.nan, np.float32) for n in st.names}), {},
            r"gradient '.+' holds NaN or infinite values"),
    "inf": (lambda st, t: result(st, t, tensors={n: np.full(st.shapes[n], -np.inf, np.float32) for n in st.names}), {},
            r"gradient '.+' holds NaN or infinite values"),
    "missing_tensor": (lambda st, t: result(st, t, tensors={n: np.zeros(st.shapes[n], np.float32)
                                                            for n in st.names if n != "conv1/weight"}), {},
                       r"do not match the parameters \(missing \['conv1/weight'\], unexpected \[\]\)"),
    "extra_tensor": (lambda st, t: result(st, t, tensors=dict({n: np.zeros(st.shapes[n], np.float32) for n in st.names},
                                                              bogus=np.zeros(3, np.float32))), {},
                     r"missing \[\], unexpected \['bogus'\]"),
    "sample_count": (lambda st, t: result(st, t, samples=len(st.tasks[t].ids) + 1), {},
                     r"(\d+) samples reported, the task had \d+"),
    "norm_bound": (lambda st, t: result(st, t, value=1.0), {"max_grad_norm": 10.0},
                   r"gradient norm per sample [\d.e+]+ is over the bound 10"),
    "loss_nan": (lambda st, t: result(st, t, loss=float("nan")), {}, r"loss nan is not finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_is_rejected_and_its_shards_reassigned(case):
    build, overrides, pattern = BAD_UPLOADS[case]
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8, **overrides))
    st.pause()
    join(st, "bad", 0.0)
    join(st, "good", 0.0)
    st.resume(0.0)
    (bad,) = [t for t in st.tasks.values() if t.worker == 1]
    bad_ids = sorted(bad.ids.tolist())
    before, done = model_bytes(st), set(st.round.done)
    acts = st.on_result(1, build(st, bad.id), 1.0)
    (rej,) = rejects(acts, 1)
    assert rej.fields["refers_to"] == P.RESULT and re.search(pattern, rej.fields["reason"]), rej.fields["reason"]
    assert any(isinstance(a, Log) and "upload rejected" in a.text for a in acts)
    assert model_bytes(st) == before and st.round.done == done and st.round.sum[st.names[0]] is None
    assert bad.id not in st.tasks and st.workers[1].rejected == 1
    again = task_sends(acts)  # the rejected shards were handed out again (worker 2 is busy: to worker 1)
    assert [ids_of(s) for s in again] == [bad_ids]
    assert not any(isinstance(a, Close) for a in acts)
    # the round still completes from good uploads, and no bad value reached the weights
    for t in list(st.tasks.values()):
        st.on_result(t.worker, result(st, t.id, value=0.0), 2.0)
    assert st.iteration == 1 and np.isfinite(st.net.store.to_numpy()).all()


@pytest.mark.parametrize("case", ["wrong_iteration", "unknown_task", "other_workers_task", "before_any_task"])
def test_result_that_is_not_the_workers_task_is_rejected(case):
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=16))
    st.pause()
    join(st, "a", 0.0)
    join(st, "b", 0.0)
    st.resume(0.0)
    join(st, "newcomer", 0.0)  # nothing pending: no task
    mine = {t.worker: t.id for t in st.tasks.values()}
    assert set(mine) == {1, 2}
    wid, frame = {
        "wrong_iteration": (1, result(st, mine[1], iteration=1)),
        "unknown_task": (1, result(st, mine[1], task=10_000)),
        "other_workers_task": (1, result(st, mine[2])),
        "before_any_task": (3, result(st, mine[1])),
    }[case]
    tasks_before = {k: (t.worker, t.shards) for k, t in st.tasks.items()}
    before = model_bytes(st)
    acts = st.on_result(wid, frame, 1.0)
    (rej,) = rejects(acts, wid)
    f = frame.fields
    assert f"task {f['task']} of iteration {f['iteration']} is not one of yours" in rej.fields["reason"]
    assert model_bytes(st) == before and not st.round.done
    # nothing changes hands: the real tasks stay with their workers, who may still deliver them
    assert {k: (t.worker, t.shards) for k, t in st.tasks.items()} == tasks_before and not task_sends(acts)
    for w, t in mine.items():
        st.on_result(w, result(st, t), 2.0)
    assert st.iteration == 1


def test_worker_is_closed_after_max_rejections():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8, max_rejections=3))
    st.pause()
    join(st, "bad", 0.0)
    join(st, "good", 0.0)
    st.resume(0.0)
    (good,) = [t for t in st.tasks.values() if t.worker == 2]
    for k in range(3):
        (bad,) = [t for t in st.tasks.values() if t.worker == 1]
        acts = st.on_result(1, result(st, bad.id, samples=0), 1.0 + k)
        assert len(rejects(acts, 1)) == 1 and (1 in st.workers) == (k < 2)
    closes = [a for a in acts if isinstance(a, Close)]
    assert [c.worker for c in closes] == [1] and "3 uploads rejected" in closes[0].reason
    assert 1 not in st.workers and all(t.worker == 2 for t in st.tasks.values())
    assert len(st.round.pending) == 2  # worker 1's two shards wait for worker 2
    acts = st.on_result(2, result(st, good.id), 5.0)
    (t,) = task_sends(acts)
    assert t.worker == 2 and len(st.tasks[t.fields["task"]].ids) == 16  # both shards, to the one left


def test_worker_leaving_mid_task_gives_its_shards_back():
    st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=8))
    st.pause()
    join(st, "leaves", 0.0)
    join(st, "stays", 0.0)
    st.resume(0.0)
    (gone,) = [t for t in st.tasks.values() if t.worker == 1]
    (kept,) = [t for t in st.tasks.values() if t.worker == 2]
    acts = st.remove_worker(1, 0.5, "disconnected")
    assert any(isinstance(a, Log) and f"task {gone.id} of worker 1" in a.text and "handed back" in a.text for a in acts)
    assert gone.id not in st.tasks and sorted(st.round.pending) == sorted(gone.shards)
    assert not task_sends(acts)  # worker 2 is busy: the shards wait
    acts = st.on_result(2, result(st, kept.id), 1.0)
    (t,) = task_sends(acts)
    assert t.worker == 2 and ids_of(t) == sorted(gone.ids.tolist())
    st.on_result(2, result(st, t.fields["task"]), 1.5)
    assert st.iteration == 1 and len(st.history) == 1


def test_round_completes_while_one_worker_lives():
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=4, deadline=5.0))
    st.pause()
    for name in ("a", "b", "c"):
        join(st, name, 0.0)
    st.resume(0.0)
    now, covered = 0.0, {}
    st.remove_worker(2, 0.1, "lost")  # mid-task
    stalled = next(t for t in st.tasks.values() if t.worker == 3)  # worker 3 never answers
    while not st.stopped and now < 100:
        now += 1.0
        st.tick(now)
        for t in [t for t in st.tasks.values() if t.worker == 1]:
            covered.setdefault(t.iteration, []).extend(t.ids.tolist())
            st.on_result(1, result(st, t.id), now)
        if 3 in st.workers and now > 12:
            st.remove_worker(3, now, "lost")
    assert st.stopped and st.iteration == 3 and stalled.id not in st.tasks
    # every sample of each batch was computed exactly once by the survivor
    assert [len(covered[i]) for i in range(3)] == [32, 32, 32]
    assert all(len(set(covered[i])) == 32 for i in range(3))


def test_pause_stops_handing_out_work_and_resume_restarts_it():
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=8))
    join(st, "a", 0.0)
    (t,) = st.tasks.values()
    assert st.pause() == [Log("paused")]
    assert not task_sends(join(st, "b", 0.1))  # a newcomer gets nothing while paused
    acts = st.on_result(1, result(st, t.id), 0.5)  # the task out still counts
    assert st.iteration == 1 and not task_sends(acts) and not st.tasks and st.round is None
    assert st.tick(100.0) == [] and not st.tasks
    acts = st.resume(101.0)
    assert acts[0] == Log("resumed") and {s.worker for s in task_sends(acts)} == {1, 2}
    assert sum(len(st.tasks[s.fields["task"]].ids) for s in task_sends(acts)) == 32


def test_deterministic_mode_is_bit_equal_whatever_the_arrival_order():
    finals = []
    for order in (1, -1):
        st = D.make_state(Settings(batch_size=32, iterations=2, seed=0, shard_size=4, deterministic=True))
        st.pause()
        for k in range(8):
            join(st, f"w{k}", 0.0)
        for it in range(2):
            st.resume(float(it))
            ts = sorted(st.tasks.values(), key=lambda t: t.shards[0])[::order]
            assert len(ts) == 8
            for t in ts:  # random values per shard, so the order of a sum would show
                rng = np.random.default_rng([it, t.shards[0]])
                g = {n: (rng.standard_normal(st.shapes[n]) * 1e-3).astype(np.float32) for n in st.names}
                st.on_result(t.worker, result(st, t.id, tensors=g), float(it))
        assert st.iteration == 2
        finals.append(model_bytes(st))
    assert finals[0] == finals[1]


def run_with_a_silent_worker(deterministic, until=30.0):
    """Worker 1 answers every task at once; worker 2 (joined second) never answers. Ticks every 0.5 s
    of simulated time; returns (state, time the run completed or None, tasks handed to worker 2)."""
    st = D.make_state(Settings(batch_size=32, iterations=4, seed=0, shard_size=8, deadline=1.0,
                               deterministic=deterministic))
    st.pause()
    join(st, "prompt", 0.0)
    join(st, "silent", 0.0)
    st.resume(0.0)
    now, given = 0.0, set()
    while not st.stopped and now < until:
        while mine := [t for t in st.tasks.values() if t.worker == 1]:  # it answers at once, task after task
            st.on_result(1, result(st, mine[0].id, seconds=0.01), now)
        given |= {t.id for t in st.tasks.values() if t.worker == 2}
        now += 0.5
        st.tick(now)
    return st, (now if st.stopped else None), given


def test_a_silent_worker_stops_getting_work_after_a_miss():
    st, done, given = run_with_a_silent_worker(deterministic=False)
    assert done is not None and done <= 5.0 and st.iteration == 4, (done, st.iteration)
    assert len(given) == 1  # its first task only: its measured speed then gives it no share


def test_a_silent_worker_does_not_stall_the_deterministic_mode():
    st, done, given = run_with_a_silent_worker(deterministic=True)
    assert done is not None and done <= 5.0, f"4 iterations took over 30 s of simulated time ({st.iteration} done)"


@pytest.mark.parametrize("how", ["flag", "nan"])
def test_workers_claiming_non_finite_results_do_not_stop_a_healthy_run(how):
    """Two connections (one hostile party) saying "non-finite": the coordinator re-runs the step on
    those samples, finds it finite, and rejects them; the run goes on untouched."""
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=8))
    st.pause()
    join(st, "liar-1", 0.0)
    join(st, "liar-2", 0.0)
    st.resume(0.0)
    before = model_bytes(st)
    for t in list(st.tasks.values()):
        if how == "flag":
            frame = result(st, t.id, nonfinite=True)
        else:
            frame = result(st, t.id, tensors={n: np.full(st.shapes[n], np.nan, np.float32) for n in st.names})
        (rej,) = rejects(st.on_result(t.worker, frame, 1.0), t.worker)
        assert "the coordinator's own step on these samples is finite" in rej.fields["reason"]
    assert not st.stopped and st.diverged is None
    assert model_bytes(st) == before and st.iteration == 0
    assert st.tasks and all(t.worker in (1, 2) for t in st.tasks.values())  # the shards went out again


def test_a_claim_the_coordinator_confirms_stops_the_run():
    """A real divergence: the coordinator's weights give a non-finite loss; one worker's report is enough."""
    st = D.make_state(Settings(batch_size=32, iterations=3, seed=0, shard_size=8))
    st.pause()
    join(st, "honest", 0.0)
    st.net.store.load_arrays({n: np.full(st.shapes[n], np.inf, np.float32) for n in st.names})
    st.resume(0.0)
    (t,) = st.tasks.values()
    st.on_result(t.worker, result(st, t.id, nonfinite=True), 1.0)
    assert st.stopped and "not finite" in st.diverged and "coordinator's own step agrees" in st.diverged
