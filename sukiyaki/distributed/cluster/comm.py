"""Communicators: gradient averaging and broadcasts among the ranks of a cluster run.

:class:`Communicator` is the interface: ``all_reduce_mean_(buf)`` (in place, on a flat
float32 native buffer such as the ParamStore's gradient buffer or a view of it),
``start_all_reduce_mean_(buf)`` (the same, returning a handle to ``wait()`` on; the
overlapped path), ``broadcast_(buf, root)``, ``barrier()``, ``rank``, ``world_size``.
:class:`HostCommunicator` sums through the rendezvous store (this module);
:class:`sukiyaki.distributed.cluster.nccl.NcclCommunicator` through NCCL.

Example:
    >>> rdv = rendezvous(ClusterEnv(0, 1, "127.0.0.1", 0, 0), timeout=5)   # doctest: +SKIP
    >>> comm = HostCommunicator(rdv.client, ops)                            # doctest: +SKIP
    >>> comm.all_reduce_mean_(net.store.grad)                               # doctest: +SKIP
"""

import numpy as np

from sukiyaki.distributed.cluster.env import ClusterError
from sukiyaki.distributed.cluster.store import StoreClient, StoreServer

_LOOPBACK = ("localhost", "::1")


class Rendezvous:
    """The store connection of this rank (and, on rank 0, the store itself).

    Attributes: env, client (:class:`StoreClient`), server (:class:`StoreServer` or None).
    """

    def __init__(self, env, client, server):
        self.env, self.client, self.server = env, client, server

    def close(self, linger=10.0):
        """Leave cleanly; rank 0 keeps serving until the others left (at most ``linger`` s)."""
        self.client.close()
        if self.server is not None:
            self.server.wait_idle(linger)
            self.server.close()


def rendezvous(env, timeout=300.0, port=None):
    """Meet every rank of ``env`` at rank 0's store; returns a :class:`Rendezvous`.

    Rank 0 serves the store on MASTER_PORT (on the loopback interface when MASTER_ADDR is a
    loopback address, else on every interface); each rank connects (retrying until
    ``timeout``), says hello and waits for the others. ClusterError names the rank and the
    address: no store there, a rank that did not come, a WORLD_SIZE that differs.
    """
    server = None
    if env.rank == 0:
        host = env.master_addr
        loop = host in _LOOPBACK or host.startswith("127.")
        server = StoreServer(env.world_size, host if loop else "", env.master_port if port is None else port)
    try:
        client = StoreClient(env.master_addr, server.port if server is not None else env.master_port,
                             env.rank, env.world_size, timeout=timeout)
        try:
            client.barrier("rendezvous", timeout=timeout)
        except ClusterError as exc:
            client.fail(str(exc))
            client.close()
            raise
    except BaseException:
        if server is not None:
            server.close()
        raise
    return Rendezvous(env, client, server)


class _Done:
    """The handle of a reduction already finished."""

    @staticmethod
    def wait():
        return None


class Communicator:
    """What averaging and broadcasting among ranks needs (see module docstring).

    Attributes:
        rank, world_size: this process's place.
        who: how errors name this process ('rank 1', 'rank 1 (GPU 1)').
    """

    rank = 0
    world_size = 1
    who = "rank 0"

    def all_reduce_mean_(self, buf):
        """Replace ``buf`` (flat float32, on this rank's device) by its mean over the ranks."""
        raise NotImplementedError

    def start_all_reduce_mean_(self, buf):
        """Start :meth:`all_reduce_mean_`; returns a handle whose ``wait()`` orders later work after it."""
        self.all_reduce_mean_(buf)
        return _Done()

    def broadcast_(self, buf, root=0):
        """Replace ``buf`` by rank ``root``'s."""
        raise NotImplementedError

    def barrier(self):
        """Return when every rank got here."""
        raise NotImplementedError

    def fail(self, message):
        """Tell the other ranks that this one gives up, and why."""

    def close(self):
        """Release what the communicator holds (not the rendezvous)."""


class HostCommunicator(Communicator):
    """Averages through the rendezvous store: every rank sends its buffer to rank 0, which sums
    them in rank order (so every rank gets the same bits, whatever the arrival order), scales
    by 1/world_size and sends the mean back.

    For tests and CPU clusters (the numpy backend; any backend works, through one download
    and one upload per call). GPU clusters average through NCCL instead
    (:class:`sukiyaki.distributed.cluster.nccl.NcclCommunicator`).

    Args:
        client: this rank's :class:`StoreClient`.
        ops: the :class:`sukiyaki.nn.ops.Ops` of the backend the buffers live on.
        timeout: seconds to wait for a peer's part before failing (naming it).
    """

    def __init__(self, client, ops, timeout=None):
        self.client, self.ops = client, ops
        self.rank, self.world_size = client.rank, client.world_size
        self.who = client.who
        self.timeout = client.timeout if timeout is None else float(timeout)
        self._seq = 0

    def _host(self, buf):
        host = np.asarray(self.ops.download(buf), dtype=np.float32).reshape(-1)
        return host

    def _put(self, buf, flat):
        self.ops.assign_(buf, self.ops.upload(flat.reshape(buf.shape, order="F")))

    def all_reduce_mean_(self, buf):
        self._seq += 1
        seq, world = self._seq, self.world_size
        if world == 1:
            return
        key = f"allreduce/{seq}"
        if self.rank == 0:
            total = self._host(buf).copy()
            for r in range(1, world):
                part = self.client.get(f"{key}/{r}", self.timeout, what=f"all-reduce #{seq}: the gradient of rank {r}")
                if len(part) != total.nbytes:
                    raise ClusterError(f"{self.who}: all-reduce #{seq}: rank {r} sent {len(part)} bytes, "
                                       f"expected {total.nbytes} (do the ranks train the same network?)")
                total += np.frombuffer(part, dtype="<f4")
            total *= np.float32(1.0 / world)
            self.client.set(f"{key}/mean", total.astype("<f4", copy=False).tobytes(), reads=world - 1)
            self._put(buf, total)
        else:
            self.client.set(f"{key}/{self.rank}", self._host(buf).astype("<f4", copy=False).tobytes(), reads=1)
            data = self.client.get(f"{key}/mean", self.timeout, what=f"all-reduce #{seq}: the mean from rank 0")
            self._put(buf, np.frombuffer(data, dtype="<f4").copy())

    def broadcast_(self, buf, root=0):
        self._seq += 1
        key = f"broadcast/{self._seq}"
        if self.world_size == 1:
            return
        if self.rank == root:
            self.client.set(key, self._host(buf).astype("<f4", copy=False).tobytes(), reads=self.world_size - 1)
            return
        data = self.client.get(key, self.timeout, what=f"broadcast #{self._seq} from rank {root}")
        flat = np.frombuffer(data, dtype="<f4").copy()
        if flat.size != int(np.prod(buf.shape)):
            raise ClusterError(f"{self.who}: broadcast #{self._seq}: rank {root} sent {flat.size} values, this rank "
                               f"holds {int(np.prod(buf.shape))} (do the ranks build the same network?)")
        self._put(buf, flat)

    def barrier(self):
        self._seq += 1
        self.client.barrier(f"barrier/{self._seq}", self.timeout)

    def fail(self, message):
        self.client.fail(message)
