"""What a forward/backward pass carries besides the blobs: phase, randomness, saved state.

Randomness is counter-based (Philox4x32-10 on the backend): a layer's draws are keyed
by (seed, the layer's name) and counted by (iteration, sample index, element), so a
sample gets the same dropout mask and the same augmentation whatever batch, sub-batch
or worker it is computed in, and on every backend.
"""

import zlib

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.nn.ops import Ops

_U32 = 2 ** 32


def layer_key(seed, layer_name):
    """The Philox key (k0, k1) of a layer: the run's seed and a CRC-32 of the layer's name."""
    return (int(seed) % _U32, zlib.crc32(str(layer_name).encode("utf-8")))


class Context:
    """State of one pass through a network.

    Attributes:
        phase: 'train' or 'test'.
        need_backward: whether layers must keep what their backward needs.
        device: backend name the blobs live on; ops: its :class:`sukiyaki.nn.ops.Ops`.
        seed, iteration: the Philox key's seed and the counter's iteration word.
        saved: per-layer scratch space (layer name -> anything the layer keeps).
    """

    def __init__(self, phase="train", need_backward=True, device="numpy", seed=0, iteration=0, sample_ids=None):
        if phase not in ("train", "test"):
            raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
        self.phase = phase
        self.need_backward = need_backward
        self.device = device
        self.ops = Ops.of(get_backend(device))
        self.seed = int(seed)
        self.iteration = int(iteration)
        self._host_ids = None if sample_ids is None else np.asarray(sample_ids, dtype=np.int64).reshape(-1)
        self._ids = None
        self._counter = None  # the iteration word in device memory (a captured graph's)
        self.saved = {}

    def use_device_step(self, ids, counter):
        """Take the sample indices (native int32 (n,)) and the iteration word (native int32 (1,))
        from device memory: a captured graph writes them before each replay."""
        self._ids, self._counter = ids, counter
        self._host_ids = np.zeros(ids.shape[0], dtype=np.int64)  # only its size is read

    def set_sample_ids(self, ids):
        """Global indices (host integers) of the samples of this pass, as the data layers read them."""
        self._host_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._ids = None

    def sample_ids(self, n):
        """Native int32 (n,) global sample indices: those set, or 0..n-1 when none were."""
        if self._host_ids is None:
            self._host_ids = np.arange(n, dtype=np.int64)
        if self._host_ids.size != n:
            raise ValueError(f"the pass has {self._host_ids.size} sample indices but a layer got {n} samples")
        if self._ids is None:
            self._ids = self.ops.upload((self._host_ids % _U32).astype(np.uint32).view(np.int32))
        return self._ids

    def uniform(self, layer_name, n, per_sample):
        """Native float32 (per_sample, n) uniforms in [0, 1) for a layer's samples of this pass."""
        counter = self._counter if self._counter is not None else self.iteration % _U32
        return self.ops.philox_uniform(layer_key(self.seed, layer_name), counter,
                                       self.sample_ids(n), per_sample)
