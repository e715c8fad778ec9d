"""Cluster mode: ``sukiyaki train NET --distributed``, one process per GPU (or CPU), no coordinator.

Any standard launcher starts one process per rank with ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` (and ``LOCAL_RANK``) set; rank 0 serves a small rendezvous
store (:mod:`.store`) where the ranks meet. Gradients are averaged by NCCL on GPUs
(:mod:`.nccl`) or through the store on CPUs (:mod:`.comm`), bucket by bucket as the backward
pass finishes layers (:mod:`.overlap`). Each rank trains on its slice of every global batch,
so the run computes what one process with the whole batch computes (within float32
summation order).

Modules: env.py (the launcher's environment), store.py (the rendezvous store), comm.py (the
Communicator interface, the host communicator, rendezvous), nccl.py (NCCL), overlap.py
(buckets), run.py (one rank of the command).
"""

from sukiyaki.distributed.cluster.comm import Communicator, HostCommunicator, Rendezvous, rendezvous
from sukiyaki.distributed.cluster.env import ClusterEnv, ClusterEnvError, ClusterError
from sukiyaki.distributed.cluster.overlap import GradientReducer, plan_buckets
from sukiyaki.distributed.cluster.run import ClusterRun

__all__ = ["ClusterEnv", "ClusterEnvError", "ClusterError", "ClusterRun", "Communicator", "GradientReducer",
           "HostCommunicator", "Rendezvous", "plan_buckets", "rendezvous"]
