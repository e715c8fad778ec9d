"""The coordinator's records: the run's settings, what it knows of a worker and of a task, and
the actions its state machine returns for the I/O layer to carry out. No I/O.

Example:
    >>> Settings(batch_size=64).shard_size
    2
"""

from dataclasses import dataclass, field

import numpy as np

#: Names of running statistics (batch normalization) in PARAMS and RESULT frames.
STATE_PREFIX = "state:"


@dataclass
class Settings:
    """A distributed run's settings (all JSON-able; they go to every worker).

    Attributes:
        batch_size: samples per iteration (the whole batch, over all workers).
        iterations: rounds to run (None: until stopped).
        seed: seed of the data order and of the random draws (dropout, augmentation).
        shard_size: samples per shard, the unit of work (0: batch_size // 32, at least 1).
        codec_down / codec_up: codec of the weights sent / of the gradients received.
        deterministic: one shard per task, gradients summed in shard order: the weights are
            bit-equal whatever the number of workers.
        deadline: seconds a task may take at least; its deadline is the larger of this and
            deadline_factor times the time the worker's speed predicts (measured; else the
            speed it declared when joining; else the median of the others' measured speeds).
        first_deadline: seconds a task may take when nothing predicts its worker's speed (a
            worker's first task, no speed declared, no worker measured yet; None: ``deadline``).
            A long round (VGG16 at 5 images/s: 51 s for 256 samples) must not be taken for a
            stall: ``sukiyaki serve`` sets 600 s unless told (``--first-deadline``).
        max_grad_norm: uploads whose gradient norm exceeds this are rejected (None: 1000
            times the median of the accepted norms, once 5 are known).
        val_cycle: validate on the coordinator every this many iterations (0: never).
        local_steps: H > 1 is the low-communication mode (as DiLoCo): a round is H batches;
            each worker takes H optimizer steps of its own (momentum SGD, inner_lr,
            inner_momentum) on its share, and returns the change of its weights; the
            coordinator averages the changes (weighted by samples) and takes the outer step,
            Nesterov momentum with outer_lr and outer_momentum, on that average.
    """

    batch_size: int = 64
    iterations: int = None
    seed: int = 0
    shard_size: int = 0
    codec_down: str = "raw"
    codec_up: str = "raw"
    deterministic: bool = False
    deadline: float = 30.0
    deadline_factor: float = 5.0
    first_deadline: float = None
    max_grad_norm: float = None
    val_cycle: int = 0
    max_rejections: int = 5
    local_steps: int = 1
    inner_lr: float = 0.02
    inner_momentum: float = 0.9
    outer_lr: float = 0.7
    outer_momentum: float = 0.5

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"settings: batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.shard_size:
            self.shard_size = max(1, self.batch_size // 32)
        if self.shard_size < 1 or self.shard_size > self.batch_size:
            raise ValueError(f"settings: shard_size must be in 1..{self.batch_size}, got {self.shard_size}")
        if isinstance(self.local_steps, bool) or not isinstance(self.local_steps, int) or self.local_steps < 1:
            raise ValueError(f"settings: local_steps must be a positive integer, got {self.local_steps!r}")
        if self.local_steps > 1 and self.deterministic:
            raise ValueError("settings: the deterministic mode is synchronous (local_steps 1)")
        from sukiyaki.distributed.codec import CODECS

        for key in ("codec_down", "codec_up"):
            if getattr(self, key) not in CODECS:
                raise ValueError(f"settings: {key} must be one of {', '.join(CODECS)}, got {getattr(self, key)!r}")


@dataclass
class WorkerInfo:
    """What a worker says of itself when it joins."""

    name: str
    backend: str
    device: str
    codecs: list = field(default_factory=lambda: ["raw"])
    max_batch: int = 1 << 30
    speed: float = None  # samples/s it declared (None: unknown until measured)


@dataclass
class Worker:
    """A joined worker as the coordinator sees it."""

    id: int
    info: WorkerInfo
    joined: float
    last_seen: float
    speed: float = None  # samples per second, measured
    params_version: int = -1
    task: int = None
    samples_done: int = 0
    rejected: int = 0
    late: bool = False  # missed a deadline and has not answered since: no work while others can do it
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class Task:
    """Shards of a round given to one worker."""

    id: int
    iteration: int
    worker: int
    shards: list
    ids: np.ndarray
    sent: float
    deadline: float


@dataclass
class Send:
    """Send a message to a worker."""

    worker: int
    kind: str
    fields: dict
    tensors: list = field(default_factory=list)


@dataclass
class SendParams:
    """Stream the weights of ``version`` to a worker: PARAMS parts in forward order (the I/O
    layer encodes each version once and cuts it into parts; see ``app.py``)."""

    worker: int
    version: int


@dataclass
class Close:
    """Close a worker's connection (after sending it an error)."""

    worker: int
    reason: str


@dataclass
class Log:
    """A line for the coordinator's log."""

    text: str
