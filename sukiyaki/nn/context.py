"""What a forward/backward pass carries besides the blobs: phase, random generator, saved state."""

import numpy as np


class Context:
    """State of one pass through a network.

    Attributes:
        phase: 'train' or 'test'.
        rng: numpy Generator for dropout masks and augmentation (seeded for exact resume).
        need_backward: whether layers must keep what their backward needs.
        device: backend name the blobs live on.
        saved: per-layer scratch space (layer name -> anything the layer keeps).
    """

    def __init__(self, phase="train", rng=None, need_backward=True, device="numpy"):
        if phase not in ("train", "test"):
            raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
        self.phase = phase
        self.rng = rng if rng is not None else np.random.default_rng()
        self.need_backward = need_backward
        self.device = device
        self.saved = {}
