"""Learning-rate schedules: factors of the base rate as a function of the iteration.

Example:
    >>> step_schedule(step_size=100, gamma=0.1)(250)
    0.010000000000000002
"""

import math


def step_schedule(step_size, gamma=0.1):
    """Multiply by gamma every step_size iterations."""
    if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
        raise ValueError(f"step schedule: step_size must be a positive integer, got {step_size!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"step schedule: gamma must be in (0, 1], got {gamma!r}")
    return lambda it: gamma ** (it // step_size)


def cosine_schedule(total, min_factor=0.0, warmup=0):
    """Cosine decay from 1 to min_factor over total iterations, after a linear warmup."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"cosine schedule: total must be a positive integer, got {total!r}")
    if isinstance(min_factor, bool) or not isinstance(min_factor, (int, float)) or not 0 <= min_factor <= 1:
        raise ValueError(f"cosine schedule: min_factor must be in [0, 1], got {min_factor!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"cosine schedule: warmup must be a non-negative integer, got {warmup!r}")

    def f(it):
        if warmup and it < warmup:
            return (it + 1) / warmup
        p = min(max(it - warmup, 0) / max(total - warmup, 1), 1.0)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def make_schedule(spec):
    """A schedule from a string: 'constant', 'step:STEP[:GAMMA]', 'cosine:TOTAL[:MIN]'."""
    if spec in (None, "", "constant"):
        return None
    kind, *args = str(spec).split(":")
    detail = ""
    try:
        if kind == "step":
            return step_schedule(int(args[0]), float(args[1]) if len(args) > 1 else 0.1)
        if kind == "cosine":
            return cosine_schedule(int(args[0]), float(args[1]) if len(args) > 1 else 0.0)
    except (IndexError, ValueError) as exc:
        detail = f" ({exc})" if isinstance(exc, ValueError) and "schedule" in str(exc) else ""
    raise ValueError(f"learning-rate schedule {spec!r}: use constant, step:STEP[:GAMMA] or cosine:TOTAL[:MIN]{detail}")
