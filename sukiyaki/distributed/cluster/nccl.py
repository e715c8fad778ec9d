"""NCCL all-reduce among the GPUs of a cluster run, through CuPy (imported lazily).

Rank 0 makes NCCL's unique id and hands it out through the rendezvous store; each rank then
joins one NCCL communicator on its GPU. ``all_reduce_mean_`` sums in float32 and scales by
1/world_size on the current CuPy stream; ``start_all_reduce_mean_`` does the same on a side
stream that first waits for the work already queued (the gradient being final), and its
handle's ``wait()`` makes the current stream wait for the reduction: the backward pass goes
on meanwhile.

NCCL blocks forever when a peer dies. A watchdog thread per rank listens to the rendezvous
store (which notices a dead rank's closed connection at once) and checks that every queued
reduction finishes within the timeout; on either failure it aborts the NCCL communicator
(the stuck kernels return), records an error naming this rank, its GPU and the rank at
fault, which the next call raises, and, if the process still has not ended after a grace
period (a thread stuck in the driver), prints it and ends the process with status 1.

Example:
    >>> comm = NcclCommunicator(rdv, device_id=0, ops=net.ops)   # doctest: +SKIP
    >>> comm.all_reduce_mean_(net.store.grad)                    # doctest: +SKIP
"""

import json
import os
import sys
import threading
import time
import warnings
from collections import deque

from sukiyaki.distributed.cluster.comm import Communicator
from sukiyaki.distributed.cluster.env import ClusterError
from sukiyaki.distributed.cluster.store import StoreClient

#: Seconds between the watchdog's checks of queued reductions.
POLL_S = 0.05
#: Seconds the watchdog lets the main thread report a failure before it ends the process.
GRACE_S = 15.0


def import_nccl(who="this rank"):
    """(cupy, cupy.cuda.nccl), or ClusterError saying what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise ClusterError(f"{who}: NCCL needs CuPy ({exc}); install it with: pip install 'sukiyaki[cuda]'") from None
    try:
        with warnings.catch_warnings():  # CuPy warns when libnccl cannot be loaded: the error below says it
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
    except ImportError as exc:
        nccl, reason = None, str(exc)
    else:
        reason = "CuPy could not load the NCCL library, libnccl.so.2"
    if nccl is None or not getattr(nccl, "available", True):
        raise ClusterError(f"{who}: NCCL is not available ({reason}); CuPy's wheels load it from the "
                           f"nvidia-nccl package of their CUDA version (pip install nvidia-nccl-cu13 for "
                           f"cupy-cuda13x), or run the cluster on the host communicator with --device numpy")
    return cupy, nccl


def check_gpu(cupy, device_id, who):
    """ClusterError when GPU ``device_id`` does not exist here (or no GPU can be used)."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver
        raise ClusterError(f"{who}: no usable CUDA driver ({type(exc).__name__}: {exc})") from None
    if not 0 <= device_id < count:
        raise ClusterError(f"{who}: GPU {device_id} (LOCAL_RANK) does not exist: this host has {count} GPU(s) "
                           f"(0..{count - 1}); launch at most {count} ranks per host, with LOCAL_RANK 0..{count - 1}")


class _Handle:
    def __init__(self, owner, done):
        self.owner, self.done = owner, done

    def wait(self):
        self.owner._check()
        self.owner.cupy.cuda.get_current_stream().wait_event(self.done)


class NcclCommunicator(Communicator):
    """Averages over the ranks' GPUs with NCCL (see module docstring).

    Args:
        rdv: this rank's :class:`sukiyaki.distributed.cluster.comm.Rendezvous`.
        device_id: this rank's GPU (LOCAL_RANK).
        ops: the Ops of the rank's cuda backend (buffers are its native arrays).
        timeout: seconds a reduction may take before the watchdog gives up.
        exit_on_failure: let the watchdog end a process stuck after a failure (the CLI's choice).
    """

    def __init__(self, rdv, device_id, ops, timeout=None, exit_on_failure=False):
        env = rdv.env
        self.rank, self.world_size = env.rank, env.world_size
        self.device_id = device_id
        self.who = f"rank {self.rank} (GPU {device_id})"
        self.cupy, self.nccl = import_nccl(self.who)
        check_gpu(self.cupy, device_id, self.who)
        self.ops, self.client = ops, rdv.client
        self.timeout = rdv.client.timeout if timeout is None else float(timeout)
        self.exit_on_failure = exit_on_failure
        cp, nccl = self.cupy, self.nccl
        self.device = cp.cuda.Device(device_id)
        self.device.use()
        if self.rank == 0:
            uid = nccl.get_unique_id()
            self.client.set("nccl/unique_id", json.dumps(list(uid)).encode(), reads=self.world_size - 1)
        else:
            uid = json.loads(self.client.get("nccl/unique_id", self.timeout, what="NCCL's unique id from rank 0"))
        self.client.barrier("nccl/init", self.timeout)  # every rank alive before NCCL's blocking init
        try:
            self.comm = nccl.NcclCommunicator(self.world_size, _unique_id(uid), self.rank)
        except Exception as exc:  # NcclError
            raise ClusterError(f"{self.who}: NCCL could not start ({type(exc).__name__}: {exc})") from None
        self.side = cp.cuda.Stream(non_blocking=True)
        self._seq = 0
        self._failure = None
        self._raised = False
        self._closing = False
        self._lock = threading.Lock()
        self._pending = deque()  # (event, what, queued at)
        self._watch = StoreClient(*_host_port(rdv.client.address), self.rank, self.world_size,
                                  timeout=self.timeout, role="watch", who=self.who)
        threading.Thread(target=self._listen, name="sukiyaki-nccl-listen", daemon=True).start()
        threading.Thread(target=self._poll, name="sukiyaki-nccl-watch", daemon=True).start()

    # --- the watchdog ---
    def _fail(self, message):
        with self._lock:
            if self._failure is not None or self._closing:
                return
            self._failure = f"{self.who}: {message}"
        try:
            self.comm.abort()
        except Exception:
            pass
        if self.exit_on_failure:
            def end():
                time.sleep(GRACE_S)
                if not self._raised:
                    print(f"sukiyaki: error: {self._failure}", file=sys.stderr, flush=True)
                    os._exit(1)
            threading.Thread(target=end, daemon=True).start()

    def _listen(self):
        try:
            failure = self._watch.wait_failure()
        except Exception as exc:  # the store (rank 0) went away
            failure = None if self._closing else f"lost the rendezvous store of rank 0 ({exc}); rank 0 ended or died"
        if failure and not self._closing:
            self._fail(failure if failure.startswith("lost") else f"{failure}; NCCL aborted")

    def _poll(self):
        while not self._closing and self._failure is None:
            with self._lock:
                head = self._pending[0] if self._pending else None
            if head is None:
                time.sleep(POLL_S)
                continue
            event, what, since = head
            if event.done:
                with self._lock:
                    self._pending.popleft()
                continue
            if time.monotonic() - since > self.timeout:
                self._fail(f"{what} did not finish within {self.timeout:g} s (a peer hangs or died); NCCL aborted")
                return
            time.sleep(POLL_S)

    def _check(self):
        if self._failure is not None:
            self._raised = True
            raise ClusterError(self._failure)

    def _track(self, stream, what):
        event = stream.record()
        with self._lock:
            self._pending.append((event, what, time.monotonic()))
        return event

    # --- the interface ---
    def _array(self, buf):
        x = self.cupy.from_dlpack(self.ops.backend.export(buf))
        if x.dtype != self.cupy.float32 or not x.flags.c_contiguous:
            raise ValueError(f"{self.who}: NCCL reduces contiguous float32 buffers, got {x.dtype}")
        return x.reshape(-1)

    def _reduce(self, x, stream):
        self._seq += 1
        nccl = self.nccl
        self.comm.allReduce(x.data.ptr, x.data.ptr, x.size, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, stream.ptr)
        if self.world_size > 1:
            with stream:
                x *= self.cupy.float32(1.0 / self.world_size)
        return self._track(stream, f"all-reduce #{self._seq} ({x.size} values)")

    def all_reduce_mean_(self, buf):
        self._check()
        self._reduce(self._array(buf), self.cupy.cuda.get_current_stream())
        self._check()

    def start_all_reduce_mean_(self, buf):
        self._check()
        x = self._array(buf)
        ready = self.cupy.cuda.get_current_stream().record()
        self.side.wait_event(ready)
        return _Handle(self, self._reduce(x, self.side))

    def broadcast_(self, buf, root=0):
        self._check()
        x = self._array(buf)
        stream = self.cupy.cuda.get_current_stream()
        self._seq += 1
        self.comm.bcast(x.data.ptr, x.size, self.nccl.NCCL_FLOAT32, root, stream.ptr)
        self._track(stream, f"broadcast #{self._seq} from rank {root}")
        self._check()

    def barrier(self):
        self._check()
        self.cupy.cuda.get_current_stream().synchronize()
        self._check()
        self.client.barrier(f"nccl/barrier/{self._seq}", self.timeout)

    def fail(self, message):
        self.client.fail(message)

    def close(self):
        with self._lock:
            self._closing = True
        self._watch.close()
        if self._failure is None:
            try:
                self.comm.destroy()
            except Exception:
                pass


def _host_port(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _unique_id(values):
    """NCCL's unique id as CuPy 14 takes it (bytes), from the list of byte values rank 0 sent."""
    try:
        return bytes(int(x) % 256 for x in values)
    except (TypeError, ValueError):
        raise ClusterError(f"NCCL's unique id from rank 0 is not a list of byte values: {values!r:.80}") from None
