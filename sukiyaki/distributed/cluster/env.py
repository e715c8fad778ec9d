"""Where this process stands in a cluster run: the launcher's environment.

Any standard launcher sets it: torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``), Slurm's ``srun`` (``SLURM_PROCID``, ``SLURM_NTASKS``,
``SLURM_LOCALID``, read when ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` are absent; the master
address and port must still be given), or a shell by hand.

Example:
    >>> env = ClusterEnv.from_environ({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
    ...                                "MASTER_PORT": "29500"})
    >>> env.rank, env.world_size, env.local_rank, env.address
    (1, 2, 1, '127.0.0.1:29500')
"""

import os
from collections import namedtuple


class ClusterError(RuntimeError):
    """A cluster run failed: a peer died or hung, the rendezvous failed, NCCL is missing.

    The message names the rank (and GPU) that reports it and, where known, the rank at fault.
    """


class ClusterEnvError(ValueError):
    """The launcher's environment is missing or malformed (a usage error)."""


#: Environment names, torchrun's first, then Slurm's.
_NAMES = {"rank": ("RANK", "SLURM_PROCID"), "world_size": ("WORLD_SIZE", "SLURM_NTASKS"),
          "local_rank": ("LOCAL_RANK", "SLURM_LOCALID")}


class ClusterEnv(namedtuple("ClusterEnv", "rank world_size master_addr master_port local_rank")):
    """rank, world_size, master_addr, master_port, local_rank of this process."""

    @property
    def address(self):
        """'host:port' of rank 0's rendezvous store."""
        host = f"[{self.master_addr}]" if ":" in self.master_addr else self.master_addr
        return f"{host}:{self.master_port}"

    @classmethod
    def from_environ(cls, environ=None):
        """Read the environment (default ``os.environ``); ClusterEnvError says what is missing or wrong.

        ``LOCAL_RANK`` (the GPU index on this host) defaults to the rank, right when every rank
        runs on one host.
        """
        environ = os.environ if environ is None else environ

        def lookup(key):
            for name in _NAMES[key]:
                if environ.get(name, "") != "":
                    return name, environ[name]
            return None, None

        missing = [_NAMES[k][0] for k in ("rank", "world_size") if lookup(k)[0] is None]
        missing += [n for n in ("MASTER_ADDR", "MASTER_PORT") if environ.get(n, "") == ""]
        if missing:
            raise ClusterEnvError(f"--distributed needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the "
                                  f"environment (as torchrun and Slurm launchers set them); missing: "
                                  f"{', '.join(missing)}")

        def integer(key, name, text, lo, hi=None):
            try:
                value = int(text)
            except ValueError:
                raise ClusterEnvError(f"{name} must be an integer, got {text!r}") from None
            if value < lo or (hi is not None and value > hi):
                raise ClusterEnvError(f"{name} must be in {lo}..{hi if hi is not None else 'n'}, got {value}")
            return value

        world = integer("world_size", *lookup("world_size"), 1)
        rank_name, rank_text = lookup("rank")
        rank = integer("rank", rank_name, rank_text, 0)
        if rank >= world:
            raise ClusterEnvError(f"{rank_name} {rank} is out of range for {lookup('world_size')[0]} {world} "
                                  f"(ranks are 0..{world - 1})")
        port = integer("port", "MASTER_PORT", environ["MASTER_PORT"], 1, 65535)
        local_name, local_text = lookup("local_rank")
        local = rank if local_name is None else integer("local_rank", local_name, local_text, 0)
        return cls(rank, world, environ["MASTER_ADDR"].strip(), port, local)
