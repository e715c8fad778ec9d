"""CUDA graphs: a function's GPU work recorded once and replayed with one launch.

``CapturedGraph(fn)`` runs ``fn`` under stream capture on a stream of its own: nothing runs
then, every kernel, copy and cuDNN / cuBLAS call is recorded, and ``replay()`` launches them
all again, on the same memory, with one call. What ``fn`` allocates comes from a memory pool
private to the graph, kept as long as the graph lives, so that no later allocation is given
memory the graph writes. ``fn`` must not read the device from the host (a capture error) and
must take what changes between replays from device memory (inputs copied into buffers made
before the capture, a step counter and a learning rate as one-element device arrays).
"""

import cupy as cp

from sukiyaki.backends.base import CaptureError


class CapturedGraph:
    """The recorded work of ``fn()``; ``outputs`` is what fn returned (device arrays that each
    replay rewrites in place)."""

    def __init__(self, fn):
        self.stream = cp.cuda.Stream(non_blocking=False)  # ordered with the default stream's work
        self.pool = cp.cuda.MemoryPool()
        self.graph = None
        cp.cuda.get_current_stream().synchronize()
        cp.get_default_memory_pool().free_all_blocks()  # what eager steps left cached: the graph's pool takes over
        with self.stream, cp.cuda.using_allocator(self.pool.malloc):
            self.stream.begin_capture()
            try:
                self.outputs = fn()
            except Exception as exc:
                _abandon(self.stream)
                raise CaptureError(f"{type(exc).__name__}: {exc}") from exc
            try:
                self.graph = self.stream.end_capture()
            except Exception as exc:  # an operation that cannot be captured invalidated it
                raise CaptureError(f"{type(exc).__name__}: {exc}") from exc
        self.graph.upload(self.stream)

    def replay(self):
        """Launch the recorded work on the current stream."""
        self.graph.launch(cp.cuda.get_current_stream())

    @property
    def pool_bytes(self):
        """Device memory the graph's private pool holds."""
        return self.pool.total_bytes()


def _abandon(stream):
    """End a capture that failed half-way (its partial graph is dropped)."""
    try:
        stream.end_capture()
    except Exception:  # noqa: BLE001 - the capture is invalid anyway; its first error is the one reported
        pass
