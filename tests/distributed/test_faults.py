"""Faults with real processes: ``python -m sukiyaki serve`` and ``worker`` subprocesses on loopback.

A worker killed mid-task, a worker that stalls (SIGSTOP) past its deadline, and the
coordinator itself killed mid-round and restarted from its checkpoint: each run completes,
and in the deterministic mode its final weights and optimizer state (read from the
coordinator's checkpoint, written when the run completes) equal those of a fault-free run
bit for bit. LeNet on 256 digits, batch 32 in 4 shards, 20 iterations: a second of
training a run. The faults are timed through the admin API (pause, then act, then resume),
not by sleeping, so that a fast or slow machine sees the same sequence.
"""

import re

import pytest

import dist_helpers as D  # noqa: E402

ITERATIONS = 20
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return D.digits_npz(tmp_path_factory.mktemp("data") / "digits.npz")


def metrics(url):
    return D.http_json(url + "/api/metrics") or {}


def worker(url, name):
    return D.worker_by_name(metrics(url), name) or {}


def start_cluster(ps, npz, port, checkpoint, *serve_extra, workers=("w0", "w1")):
    """serve (paused), the workers, then resume once all have joined. Returns the URL and {name: worker id}."""
    url = f"http://127.0.0.1:{port}"
    ps.start("serve", *D.serve_command(npz, port, ITERATIONS, "--checkpoint", checkpoint, *serve_extra))
    ps.wait_until(lambda: D.http_json(url + "/api/metrics"), 30, "the coordinator to answer")
    D.admin(url, "pause")
    for name in workers:
        ps.start(name, "worker", url, "--token", D.TOKEN, "--name", name)
    ps.wait_until(lambda: len(metrics(url).get("workers", [])) == len(workers), 30, "the workers to join")
    ids = {w["name"]: w["id"] for w in metrics(url)["workers"]}
    D.admin(url, "resume")
    return url, ids


def pause_at(ps, url, iteration):
    """Pause once the run reaches iteration, and wait until no task is out. Returns the iteration paused at."""
    ps.wait_until(lambda: metrics(url).get("iteration", -1) >= iteration, RUN_TIMEOUT, f"iteration {iteration}")
    D.admin(url, "pause")
    m = ps.wait_until(lambda: (lambda m: m if m and not any(w["busy"] for w in m["workers"]) else None)(metrics(url)),
                      30, "the tasks out to finish")
    assert m["iteration"] < ITERATIONS, "the run completed before the fault: make it longer"
    return m["iteration"]


def finish(ps, checkpoint, leave=("w0", "w1")):
    """Wait for serve to complete the run and the workers of leave to go on its BYE. Returns the checkpoint."""
    rc = ps.wait_exit("serve", RUN_TIMEOUT)
    assert rc == 0 and f"done: {ITERATIONS} iterations" in ps.log("serve"), ps.logs()
    for name in leave:
        assert ps.wait_exit(name, 20) == 0 and "done: " in ps.log(name), ps.logs()
    return D.checkpoint_tensors(checkpoint)


@pytest.fixture(scope="module")
def reference(npz, tmp_path_factory):
    """The final checkpoint tensors of a fault-free run with two workers."""
    folder = tmp_path_factory.mktemp("reference")
    ck = folder / "ck.safetensors"
    with D.Processes(folder) as ps:
        start_cluster(ps, npz, D.free_port(), ck)
        tensors = finish(ps, ck)
        assert "handed back" not in ps.log("serve"), ps.logs()  # fault-free indeed
    assert any(k.startswith("optimizer/") for k in tensors) and len(tensors) > 8
    return tensors


def test_worker_killed_mid_task(npz, reference, tmp_path):
    ck = tmp_path / "ck.safetensors"
    with D.Processes(tmp_path) as ps:
        url, ids = start_cluster(ps, npz, D.free_port(), ck)
        pause_at(ps, url, 3)
        # freeze the victim, let the coordinator hand it a task, then kill it: mid-task for sure
        ps.signal("w0", D.SIGSTOP)
        D.admin(url, "resume")
        ps.wait_until(lambda: worker(url, "w0").get("busy"), 30, "a task out to the frozen w0")
        ps.signal("w0", D.SIGKILL)
        final = finish(ps, ck, leave=["w1"])
        log = ps.log("serve")
    victim = ids["w0"]
    assert re.search(rf"task \d+ of worker {victim} \(8 samples\) handed back: its worker disconnected", log), log
    assert f"worker {victim} 'w0' disconnected" in log
    D.assert_same_weights(final, reference)


def test_stalled_worker_is_passed_over(npz, reference, tmp_path):
    ck = tmp_path / "ck.safetensors"
    with D.Processes(tmp_path) as ps:
        url, ids = start_cluster(ps, npz, D.free_port(), ck, "--deadline", "1")
        # the victim: the worker that joined second, once it has a measured speed (test_state's xfails: in this
        # mode a stalled first-joined worker gets the shard it missed straight back, and one that stalls on its
        # very first task is handed a shard of every later round with a deadline of 160 s)
        victim = max(ids, key=ids.get)
        pause_at(ps, url, 3)
        assert worker(url, victim)["samples"] >= 8
        ps.signal(victim, D.SIGSTOP)
        D.admin(url, "resume")
        miss = re.compile(rf"task \d+ of worker {ids[victim]} \(8 samples\) handed back: missed its deadline")
        at = ps.wait_until(lambda: miss.search(ps.log("serve")), 20, f"{victim}'s task to miss its deadline").end()
        # the run goes on without the victim: a round completes while it is still stopped
        ps.wait_until(lambda: re.search(r"iteration \d+: loss", ps.log("serve")[at:]), 20,
                      f"a round completed while {victim} is stopped")
        assert metrics(url)["iteration"] < ITERATIONS
        ps.signal(victim, D.SIGCONT)
        final = finish(ps, ck)
        late = ps.log(victim)
    # the victim's late result, sent when it woke, was answered with REJECT and dropped
    assert re.search(r"refused a result: task \d+ of iteration \d+ is not one of yours now", late), late
    D.assert_same_weights(final, reference)


def test_coordinator_killed_mid_round_and_resumed(npz, reference, tmp_path):
    ck = tmp_path / "ck.safetensors"
    port = D.free_port()
    with D.Processes(tmp_path) as ps:
        url, ids = start_cluster(ps, npz, port, ck, "--checkpoint-every", "1")
        pause_at(ps, url, 3)
        # a round in progress when the coordinator dies: w1 holds one shard (stopped), w0 did the others
        ps.signal("w1", D.SIGSTOP)
        D.admin(url, "resume")
        at = ps.wait_until(lambda: (lambda m: m["iteration"] if worker(url, "w1").get("busy") and not
                                    worker(url, "w0").get("busy") else None)(metrics(url)), 30, "a round stuck on w1")
        ps.wait_until(lambda: f"checkpoint written: {ck} (iteration {at})" in ps.log("serve"), 20, "the checkpoint")
        ps.signal("serve", D.SIGKILL)
        assert ps.wait_exit("serve", 10) == -9
        ps.signal("w1", D.SIGCONT)
        killed = ps.log("serve")
        ps.procs.pop("serve")
        (tmp_path / "serve.log").rename(tmp_path / "serve-killed.log")
        ps.start("serve", *D.serve_command(npz, port, ITERATIONS, "--checkpoint", ck, "--checkpoint-every", "1",
                                           "--resume", ck))
        final = finish(ps, ck)
        log = ps.log("serve")
        w = [ps.log("w0"), ps.log("w1")]
    assert f"iteration {at + 1}: loss" not in killed, killed  # the round of iteration at + 1 never completed
    assert re.search(rf"resumed from .* at iteration {at}\b", log), log
    # the same workers came back by themselves: each joined both coordinators
    assert all(len(re.findall(r"joined as worker \d+", x)) == 2 for x in w), w
    assert re.search(r"worker 2 'w[01]' joined", log), log
    D.assert_same_weights(final, reference)
