"""One rank of ``sukiyaki train NET --distributed`` (the command line's side of a cluster run).

Order of a rank's life: read the launcher's environment, meet the others at rank 0's store,
pin the GPU (``cuda`` becomes ``cuda:LOCAL_RANK``), build the network, make the communicator
(NCCL on cuda, the host communicator otherwise), take rank 0's weights, train on this
rank's slice of each global batch with the gradients averaged (overlapped with the backward
pass where the Trainer passes the layer hook), wait for the others, leave.

Example:
    >>> run = ClusterRun.start(timeout=300)                  # doctest: +SKIP
    >>> device = run.pin_device("cuda")                      # doctest: +SKIP
    >>> run.attach(trainer); trainer.train(); run.finish()   # doctest: +SKIP
"""

from sukiyaki.distributed.cluster.comm import HostCommunicator, rendezvous
from sukiyaki.distributed.cluster.env import ClusterEnv
from sukiyaki.distributed.cluster.overlap import DEFAULT_BUCKET_BYTES, GradientReducer

#: Default seconds to wait for a peer (rendezvous, a part of an all-reduce): as long as
#: rank 0's validation may take while the others wait for the next reduction.
DEFAULT_TIMEOUT = 600.0


class ClusterRun:
    """This rank's rendezvous, communicator and gradient reducer (see module docstring)."""

    def __init__(self, env, rdv, timeout, bucket_bytes):
        self.env, self.rdv, self.timeout, self.bucket_bytes = env, rdv, timeout, bucket_bytes
        self.comm = None
        self.reducer = None
        self.gpu = None

    @classmethod
    def start(cls, timeout=DEFAULT_TIMEOUT, bucket_bytes=DEFAULT_BUCKET_BYTES, environ=None):
        """Read the environment (ClusterEnvError, a usage error) and meet the other ranks (ClusterError)."""
        env = ClusterEnv.from_environ(environ)
        return cls(env, rendezvous(env, timeout), timeout, bucket_bytes)

    @property
    def rank(self):
        return self.env.rank

    @property
    def world_size(self):
        return self.env.world_size

    @property
    def is_root(self):
        """Whether this rank writes files, logs and the progress bar (rank 0)."""
        return self.env.rank == 0

    @property
    def who(self):
        return f"rank {self.rank}" + (f" (GPU {self.gpu})" if self.gpu is not None else "")

    @property
    def shard(self):
        """(rank, world_size), the Trainer's ``shard``."""
        return (self.env.rank, self.env.world_size)

    def pin_device(self, device):
        """The backend name of this rank: ``cuda`` -> ``cuda:LOCAL_RANK`` (checked: NCCL present, the GPU exists)."""
        if device.partition(":")[0] != "cuda":
            return device
        from sukiyaki.distributed.cluster.nccl import check_gpu, import_nccl

        self.gpu = self.env.local_rank
        cupy, _ = import_nccl(self.who)
        check_gpu(cupy, self.gpu, self.who)
        return f"cuda:{self.gpu}"

    def attach(self, trainer):
        """Make the communicator, take rank 0's weights and install the gradient averaging in ``trainer``."""
        net = trainer.net
        if self.gpu is not None:
            from sukiyaki.distributed.cluster.nccl import NcclCommunicator

            self.comm = NcclCommunicator(self.rdv, self.gpu, net.ops, timeout=self.timeout, exit_on_failure=True)
        else:
            self.comm = HostCommunicator(self.rdv.client, net.ops, timeout=self.timeout)
        self.comm.broadcast_(net.store.data, root=0)  # weights and states: rank 0's, bit for bit
        if getattr(trainer, "captured", None) is not None:
            trainer.captured = None  # a captured step would update before the gradients are averaged
        self.reducer = GradientReducer(self.comm, net.store, self.bucket_bytes,
                                       share=lambda: trainer.iterator.last_share or (1, self.world_size))
        trainer.grad_hook = self.reducer  # Trainer.step calls it between backward and the update
        return self.comm

    def finish(self):
        """Wait for every rank (rank 0 writes its files first), then leave cleanly."""
        try:
            if self.comm is not None:
                self.comm.barrier()
            else:
                self.rdv.client.barrier("finish", self.timeout)
        finally:
            self.close()

    def fail(self, message):
        """Tell the other ranks this one gives up (they stop at once, naming it), then leave."""
        try:
            (self.comm or self.rdv.client).fail(message)
        finally:
            self.close()

    def close(self):
        if self.comm is not None:
            self.comm.close()
        self.rdv.close()

    def explain(self, exc):
        """The message of a failure: the communicator's own (a dead peer) before its consequences."""
        failure = getattr(self.comm, "_failure", None)
        if failure:
            return failure
        text = str(exc)
        return text if text.startswith("rank ") else f"{self.who}: {text}"
