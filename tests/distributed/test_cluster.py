"""Cluster mode (``sukiyaki train --distributed``): rendezvous, communicators, overlap, failures.

CPU ranks are subprocesses on loopback (numpy backend, host communicator, LeNet on the
bundled digits, a few iterations); their final weights must equal one process's with the
whole batch within float32 summation tolerance. The GPU tests run NCCL with one GPU (and
two where present) and skip elsewhere, naming what is missing.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import digits_npz  # noqa: E402  (tests/ is on sys.path under pytest)
from sukiyaki.cli import main
from sukiyaki.data import load_mnist
from sukiyaki.data.loader import BatchIterator, ShardedBatches
from sukiyaki.distributed.cluster import (ClusterEnv, ClusterEnvError, ClusterError, GradientReducer,
                                          HostCommunicator, plan_buckets, rendezvous)
from sukiyaki.distributed.cluster.store import StoreClient, StoreServer
from sukiyaki.nn import Net
from sukiyaki.nn.params import load_safetensors

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "lenet", "--iterations", "4", "--batch-size", "16", "--no-progress", "--seed", "3"]
RUN_S = 60  # the most a launched rank may take


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(path):
    with open(path, "rb") as f:
        return load_safetensors(f.read())[0]


@pytest.fixture(scope="module")
def test20(tmp_path_factory):
    """The first 20 test digits as an .npz for --data d_test=... (fast validation)."""
    return digits_npz(tmp_path_factory.mktemp("data"), 20)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, test20):
    """Final weights of one process training on the whole batch."""
    out = tmp_path_factory.mktemp("single")
    assert main(TRAIN + ["--data", f"d_test={test20}", "--out-dir", str(out)]) == 0
    return weights(out / "lenet_final.safetensors")


def launch(tmp_path, world, argv, env=None, ranks=None):
    """Start ranks (default all) of a ``world``-rank run as subprocesses; returns {rank: (Popen, folder)}."""
    port = free_port()
    procs = {}
    for rank in range(world) if ranks is None else ranks:
        folder = tmp_path / f"rank{rank}"
        folder.mkdir()
        e = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
        e.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                 PYTHONPATH=str(ROOT), SUKIYAKI_NUM_THREADS="1", **(env or {}))
        with open(folder / "out", "w") as out, open(folder / "err", "w") as err:
            procs[rank] = (subprocess.Popen([sys.executable, "-m", "sukiyaki"] + argv + ["--out-dir", str(folder)],
                                            cwd=folder, env=e, stdout=out, stderr=err), folder)
    return procs


def finish(procs, limit=RUN_S):
    """{rank: (exit status, stdout, stderr)}, every rank ended (killed past ``limit`` s: a hang fails the test)."""
    deadline = time.monotonic() + limit
    result = {}
    for rank, (p, folder) in procs.items():
        try:
            rc = p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q, _ in procs.values():
                q.kill()
            pytest.fail(f"rank {rank} still runs after {limit} s (a hang)")
        result[rank] = (rc, (folder / "out").read_text(), (folder / "err").read_text())
    return result


# ------------------------------------------------------------------ results equal one process's


@pytest.mark.parametrize("world, extra", [(2, []), (3, ["--bucket-mb", "0.1", "--batch-div", "2"])],
                         ids=["2 ranks", "3 ranks, uneven shares, buckets, sub-batches"])
def test_ranks_equal_one_process(tmp_path, test20, reference, world, extra):
    procs = launch(tmp_path, world, TRAIN + ["--data", f"d_test={test20}", "--distributed"] + extra)
    done = finish(procs)
    for rank, (rc, out, err) in done.items():
        assert rc == 0, f"rank {rank}: {err}"
    assert f"cluster: {world} ranks" in done[0][1] and "weights saved to" in done[0][1]
    assert all(out == "" for rank, (_, out, _) in done.items() if rank)  # only rank 0 talks
    assert sorted(p.name for p in (tmp_path / "rank1").iterdir()) == ["err", "out"]  # ... and writes
    got = weights(tmp_path / "rank0" / "lenet_final.safetensors")
    for name, want in reference.items():
        np.testing.assert_allclose(got[name], want, rtol=0, atol=2e-6 * max(1.0, float(np.abs(want).max())),
                                   err_msg=name)


def test_sharded_batches_split_within_one():
    it = ShardedBatches(BatchIterator(np.arange(30).reshape(1, -1), None, 11, shuffle=True, seed=4), 0, 3)
    parts = [ShardedBatches(BatchIterator(np.arange(30).reshape(1, -1), None, 11, shuffle=True, seed=4), r, 3)
             for r in range(3)]
    for _ in range(4):  # across an epoch's end (30 = 11 + 11 + 8)
        whole = it.iterator.next_batch()[0]
        got = [p.next_batch()[0] for p in parts]
        np.testing.assert_array_equal(np.concatenate(got, axis=-1), whole)
        sizes = [g.shape[-1] for g in got]
        assert max(sizes) - min(sizes) <= 1 and parts[0].last_share == (sizes[0], whole.shape[-1])


def small_net(seed=0):
    x, t = load_mnist(split="train")
    return Net("lenet", seed=seed, data_sources={"d_train": (x[..., :64], t[:, :64])})


def in_threads(world, fn, timeout=30.0):
    """Run fn(rank, rendezvous) on ``world`` threads meeting on a fresh port; returns the results by rank."""
    port = free_port()
    results, errors = {}, {}

    def body(rank):
        try:
            rdv = rendezvous(ClusterEnv(rank, world, "127.0.0.1", port, rank), timeout=timeout)
            try:
                results[rank] = fn(rank, rdv)
            finally:
                rdv.close(linger=2)
        except Exception as exc:  # reported below
            errors[rank] = exc

    threads = [threading.Thread(target=body, args=(r,), daemon=True) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    assert not any(t.is_alive() for t in threads), "a rank hangs"
    return results, errors


def test_overlapped_buckets_give_the_whole_batch_gradient():
    idx = np.arange(10, 31)  # 21 samples: shares 7, 7, 7 of 3 ranks... and 11, 10 of 2
    ref = small_net()
    ref.zero_grads()
    ref.train_batch({"batch": idx})
    want = np.asarray(ref.store.ops.download(ref.store.grad)).copy()

    def rank_fn(world):
        def run(rank, rdv):
            net = small_net()
            part = np.array_split(idx, world)[rank]
            comm = HostCommunicator(rdv.client, net.ops)
            reducer = GradientReducer(comm, net.store, bucket_bytes=64 << 10, share=lambda: (len(part), len(idx)))
            launched = []
            net.zero_grads()
            net.train_batch({"batch": part}, after_layer=lambda name: (reducer.after_layer(name),
                                                                       launched.append(reducer._next)))
            reducer(net.store)
            return np.asarray(net.ops.download(net.store.grad)).copy(), max(launched), len(reducer.buckets)
        return run

    for world in (2, 3):
        results, errors = in_threads(world, rank_fn(world))
        assert not errors, errors
        for rank, (grad, launched, n_buckets) in results.items():
            assert n_buckets > 1 and launched == n_buckets  # every bucket started during the backward pass
            np.testing.assert_allclose(grad, want, rtol=0, atol=1e-6 * np.abs(want).max())
        assert all(np.array_equal(results[0][0], g) for g, _, _ in results.values())  # identical bits


def test_buckets_tile_the_gradient_buffer():
    store = small_net().store
    for size in (1, 4 << 10, 64 << 10, 1 << 30):
        buckets = plan_buckets(store, size)
        assert buckets[0].stop == store.trained_size and buckets[-1].start == 0
        assert all(a.start == b.stop for a, b in zip(buckets, buckets[1:]))
        layers = [layer for b in buckets for layer in b.layers]
        assert layers == ["fc4", "fc3", "conv2", "conv1"]  # the backward pass's order, each layer once
    assert len(plan_buckets(store, 1)) == 4 and len(plan_buckets(store, 1 << 30)) == 1


def test_host_communicator_mean_broadcast_barrier():
    from sukiyaki.backends import get_backend
    from sukiyaki.nn.ops import Ops

    ops = Ops.of(get_backend("numpy"))

    def run(rank, rdv):
        comm = HostCommunicator(rdv.client, ops)
        buf = ops.upload(np.full(1000, rank + 1, dtype=np.float32))
        comm.all_reduce_mean_(buf)
        other = ops.upload(np.arange(5, dtype=np.float32) * (rank + 1))
        comm.broadcast_(other, root=1)
        comm.barrier()
        return np.asarray(ops.download(buf)).copy(), np.asarray(ops.download(other)).copy()

    results, errors = in_threads(3, run)
    assert not errors, errors
    for mean, bcast in results.values():
        np.testing.assert_array_equal(mean, np.full(1000, 2.0, np.float32))
        np.testing.assert_array_equal(bcast, np.arange(5, dtype=np.float32) * 2)


# ------------------------------------------------------------------ rendezvous errors


def test_environment_errors():
    with pytest.raises(ClusterEnvError, match="missing: RANK, MASTER_PORT"):
        ClusterEnv.from_environ({"WORLD_SIZE": "2", "MASTER_ADDR": "h"})
    with pytest.raises(ClusterEnvError, match="RANK 2 is out of range for WORLD_SIZE 2"):
        ClusterEnv.from_environ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    with pytest.raises(ClusterEnvError, match="MASTER_PORT must be an integer, got 'x'"):
        ClusterEnv.from_environ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "x"})
    env = ClusterEnv.from_environ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                                   "MASTER_ADDR": "n1", "MASTER_PORT": "29500"})
    assert env == (3, 8, "n1", 29500, 1)


def test_cli_without_environment_is_a_usage_error(monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert main(TRAIN + ["--distributed"]) == 2
    assert "--distributed needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT" in capsys.readouterr().err


def test_wrong_world_size_fails_every_rank_at_once():
    port = free_port()
    errors = {}

    def join(rank, world):
        try:
            rendezvous(ClusterEnv(rank, world, "127.0.0.1", port, 0), timeout=20).close()
        except ClusterError as exc:
            errors[rank] = str(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=join, args=a) for a in ((0, 2), (1, 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert time.monotonic() - t0 < 10  # not the 20 s timeout
    for rank in (0, 1):
        assert errors[rank].startswith(f"rank {rank}: rank 1 has WORLD_SIZE 3, rank 0 has 2"), errors


def test_dead_master_times_out_naming_the_rank():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=rf"rank 1: no rendezvous store at 127.0.0.1:{port} after 1 s"):
        rendezvous(ClusterEnv(1, 2, "127.0.0.1", port, 1), timeout=1)
    assert time.monotonic() - t0 < 5


def test_missing_rank_times_out_naming_it():
    with pytest.raises(ClusterError, match=r"rank 0: barrier 'rendezvous': rank\(s\) 1, 2 did not arrive within 1 s"):
        rendezvous(ClusterEnv(0, 3, "127.0.0.1", free_port(), 0), timeout=1)


def test_store_refuses_a_taken_rank():
    server = StoreServer(2, "127.0.0.1", 0)
    try:
        first = StoreClient("127.0.0.1", server.port, 1, 2, timeout=5)
        with pytest.raises(ClusterError, match="two processes claim rank 1"):
            StoreClient("127.0.0.1", server.port, 1, 2, timeout=5)
        first.close()
    finally:
        server.close()


def test_cli_dead_master(tmp_path, test20):
    done = finish(launch(tmp_path, 2, TRAIN + ["--data", f"d_test={test20}", "--distributed", "--dist-timeout", "1"],
                         ranks=[1]))
    rc, _, err = done[1]
    assert rc == 1 and "rank 1: no rendezvous store at 127.0.0.1:" in err, err


# ------------------------------------------------------------------ a rank dies mid-run


def wait_for(path, text, limit=RUN_S):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    pytest.fail(f"{path} never said {text!r}")


@pytest.mark.parametrize("world, victim", [(3, 2), (2, 0)], ids=["rank 2 of 3", "rank 0 (the store) of 2"])
def test_killed_rank_stops_the_others_naming_it(tmp_path, test20, world, victim):
    argv = ["train", "lenet", "--iterations", "100000", "--batch-size", "16", "--no-progress",
            "--data", f"d_test={test20}", "--val-cycle", "0", "--distributed", "--dist-timeout", "60"]
    procs = launch(tmp_path, world, argv)
    wait_for(tmp_path / "rank0" / "out", "training lenet")
    time.sleep(0.5)  # well into the all-reduces
    procs[victim][0].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    done = finish({r: p for r, p in procs.items() if r != victim}, limit=20)
    assert time.monotonic() - t0 < 15  # told by the store, not by the 60 s timeout
    for rank, (rc, _, err) in done.items():
        assert rc == 1, err
        if victim == 0:
            assert f"rank {rank}: lost the connection to rank 0's store" in err and "rank 0 ended or died" in err, err
        else:
            assert f"rank {rank}: " in err and f"rank {victim} left" in err, err
    procs[victim][0].wait()


# ------------------------------------------------------------------ NCCL (GPU)


def cuda_missing(gpus=1):
    """Why the NCCL tests cannot run here (None: they can)."""
    try:
        import cupy
    except ImportError:
        return "needs CuPy (pip install 'sukiyaki[cuda]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"needs a CUDA GPU with its driver ({type(exc).__name__})"
    try:
        from cupy.cuda import nccl
        ok = getattr(nccl, "available", True)
    except ImportError:
        ok = False
    if not ok:
        return "needs NCCL for CuPy (pip install nvidia-nccl-cu13)"
    if count < gpus:
        return f"needs {gpus} GPUs (found {count})"
    return None


def test_nccl_unavailable_is_named(monkeypatch):
    from sukiyaki.distributed.cluster.nccl import import_nccl

    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ClusterError, match=r"rank 1 \(GPU 1\): NCCL needs CuPy"):
        import_nccl("rank 1 (GPU 1)")


@pytest.mark.skipif(cuda_missing() is not None, reason=str(cuda_missing()))
def test_nccl_communicator_one_gpu():
    from sukiyaki.backends import get_backend
    from sukiyaki.distributed.cluster.nccl import NcclCommunicator
    from sukiyaki.nn.ops import Ops

    ops = Ops.of(get_backend("cuda"))
    rdv = rendezvous(ClusterEnv(0, 1, "127.0.0.1", free_port(), 0), timeout=30)
    comm = NcclCommunicator(rdv, 0, ops, timeout=30)
    try:
        values = np.arange(1000, dtype=np.float32)
        buf = ops.upload(values)
        comm.all_reduce_mean_(buf)
        comm.start_all_reduce_mean_(ops.view(buf, 64, (128,))).wait()
        comm.broadcast_(buf, root=0)
        comm.barrier()
        np.testing.assert_array_equal(np.asarray(ops.download(buf)), values)
    finally:
        comm.close()
        rdv.close()


@pytest.mark.skipif(cuda_missing() is not None, reason=str(cuda_missing()))
def test_nccl_gpu_that_does_not_exist(tmp_path, test20):
    procs = launch(tmp_path, 1, TRAIN + ["--data", f"d_test={test20}", "--distributed", "--device", "cuda"],
                   env={"LOCAL_RANK": "99"})
    rc, _, err = finish(procs)[0]
    assert rc == 1 and "rank 0 (GPU 99): GPU 99 (LOCAL_RANK) does not exist" in err, err


def _cuda_reference(tmp_path, test20):
    folder = tmp_path / "single"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), SUKIYAKI_CUDA_DETERMINISTIC="1")
    subprocess.run([sys.executable, "-m", "sukiyaki"] + TRAIN + ["--data", f"d_test={test20}", "--device", "cuda",
                                                                 "--out-dir", str(folder)],
                   check=True, env=env, timeout=RUN_S, capture_output=True)
    return weights(folder / "lenet_final.safetensors")


@pytest.mark.parametrize("gpus", [1, pytest.param(2, marks=pytest.mark.skipif(
    cuda_missing(2) is not None, reason=str(cuda_missing(2))))])
@pytest.mark.skipif(cuda_missing() is not None, reason=str(cuda_missing()))
def test_nccl_cluster_equals_one_gpu(tmp_path, test20, gpus):
    want = _cuda_reference(tmp_path, test20)
    procs = launch(tmp_path, gpus, TRAIN + ["--data", f"d_test={test20}", "--distributed", "--device", "cuda"],
                   env={"SUKIYAKI_CUDA_DETERMINISTIC": "1"})
    done = finish(procs)
    for rank, (rc, _, err) in done.items():
        assert rc == 0, f"rank {rank}: {err}"
    assert "gradients averaged by NCCL" in done[0][1]
    got = weights(tmp_path / "rank0" / "lenet_final.safetensors")
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=0, atol=1e-5 * max(1.0, float(np.abs(w).max())), err_msg=name)


# ------------------------------------------------------------------ the scaling benchmark's cluster parts

SCALING = ROOT / "benchmarks" / "distributed_scaling.py"


def test_scaling_benchmark_cluster_part(tmp_path):
    proc = subprocess.run([sys.executable, str(SCALING), "--quick", "--parts", "cluster", "--workers", "1,2",
                           "--json", str(tmp_path / "c.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "C. Cluster mode" in proc.stdout
    import json

    rows = json.loads((tmp_path / "c.json").read_text())["cluster"]
    assert [r["ranks"] for r in rows] == [1, 2] and all(r["img_s"] > 0 for r in rows)


def test_scaling_benchmark_refuses_too_few_gpus():
    have = 0 if cuda_missing(1) else next(n for n in range(1, 64) if cuda_missing(n + 1))
    if have >= 8:
        pytest.skip("this machine has 8 GPUs: nothing to refuse")
    proc = subprocess.run([sys.executable, str(SCALING), "--parts", "cluster-gpu", "--workers", "1,2,4,8"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "needs 8 GPUs, one per rank; this machine has" in proc.stderr, proc.stderr
