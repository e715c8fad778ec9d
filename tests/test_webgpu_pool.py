"""Tests of the WebGPU backend's host-side recording machinery: the buffer pool (pool.py),
uploads staged through the parameter arena, and (natively) the memoized bind groups. What
they must keep: the same results, bit for bit, as fresh buffers would give."""

import gc

import numpy as np
import pytest

from sukiyaki.backends import available_backends, get_backend
from sukiyaki.backends.webgpu.pool import BufferPool

webgpu = pytest.mark.skipif("webgpu" not in available_backends(),
                            reason="the webgpu backend is not available here (pip install 'sukiyaki[webgpu]' "
                                   "and a WebGPU adapter, e.g. Mesa's lavapipe)")


class _Buf:
    def __init__(self, size):
        self.size = size


def test_pool_takes_by_size_lowest_id_first_and_keeps_a_bounded_amount():
    pool = BufferPool(floor=100)
    bufs = [_Buf(40) for _ in range(3)]
    for b in bufs:
        pool.handed_out(40)
    for b in reversed(bufs):
        pool.give(b)
    assert pool.take(8) is None
    assert pool.take(40) is min(bufs, key=id)  # whatever order they came back in
    assert pool.in_use == 40 and pool.peak == 120 and pool.pooled == 80
    pool.peak = 0  # the limit is then the floor: 100 bytes
    more = [_Buf(40) for _ in range(2)]
    for b in more:
        pool.give(b)
    assert pool.pooled <= 100  # the oldest given back went first
    kept = [pool.take(40) for _ in range(3)]
    assert more[-1] in kept and bufs[0] not in kept
    dead = _Buf(24)
    pool.give(dead)
    assert pool.take(24, usable=lambda b: b is not dead) is None and pool.pooled == 0


@pytest.fixture(scope="module")
def be():
    if "webgpu" not in available_backends():
        pytest.skip("the webgpu backend is not available here: needs the wgpu package and a WebGPU adapter "
                    "(runs on lavapipe in CI, or on a GPU)")
    return get_backend("webgpu")


@webgpu
def test_reused_buffers_give_zeros_where_zeros_are_asked(be):
    n = 12347  # a size no other test uses
    x = be.from_numpy(np.arange(n, dtype=np.float32) + 1)
    y = be.binary["add"](x, x)
    np.testing.assert_array_equal(be.to_numpy(y), 2 * (np.arange(n, dtype=np.float32) + 1))
    reused = be.device.pool.reused
    del y  # its buffer goes back to the pool, holding non-zeros
    z = be.full((n,), 0.0, np.float32)
    assert be.device.pool.reused == reused + 1
    np.testing.assert_array_equal(be.to_numpy(z), np.zeros(n, np.float32))
    w = be.empty((n,), np.float32)  # may hold anything; written whole, it is what was written
    be.assign_(w, x)
    np.testing.assert_array_equal(be.to_numpy(w), be.to_numpy(x))


@webgpu
def test_arrays_freed_by_the_garbage_collector_leave_no_dead_buffer_in_the_pool(be):
    """An array in a reference cycle is freed by the collector, which finalizes its buffer
    too: the pool must not hand that buffer out again (wgpu-native aborts on it)."""
    n = 7771

    class Holder:
        pass

    gc.collect()
    for _ in range(3):
        h = Holder()
        h.me = h
        h.a = be.from_numpy(np.ones(n, np.float32))
        h.b = be.binary["add"](h.a, h.a)
        del h
        gc.collect()
    x = be.from_numpy(np.full(n, 3, np.float32))
    outs = [be.binary["mul"](x, 2.0) for _ in range(4)]
    for out in outs:
        np.testing.assert_array_equal(be.to_numpy(out), np.full(n, 6, np.float32))


@webgpu
def test_uploads_small_and_large_hold_their_bytes(be, monkeypatch):
    from sukiyaki.backends.webgpu import device as D

    rng = np.random.default_rng(0)
    small = [rng.standard_normal(k).astype(np.float32) for k in (1, 3, 1000)]
    got = [be.from_numpy(a) for a in small]  # staged: copies from the arena, one encoder
    got.append(be.from_numpy(np.arange(5, dtype=np.uint8)))  # 5 bytes: padded
    monkeypatch.setattr(D, "STAGED_BYTES", 64)
    big = rng.standard_normal(4000).astype(np.float32)  # past the limit now: a new buffer
    got.append(be.from_numpy(big))
    for a, g in zip(small + [np.arange(5, dtype=np.uint8), big], got):
        np.testing.assert_array_equal(be.to_numpy(g), a)
    pooled = be.device.pool.pooled
    del got[-1]  # a large upload's buffer is not kept (no later upload would take it)
    assert be.device.pool.pooled == pooled


@webgpu
def test_results_do_not_depend_on_the_pool(be, monkeypatch):
    """A chain of kernels gives the same bits with reused buffers as with new ones."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((33, 17)).astype(np.float32)
    b = rng.standard_normal((17, 9)).astype(np.float32)

    def chain():
        x, y = be.from_numpy(a), be.from_numpy(b)
        outs = []
        for k in range(3):
            p = be.matmul(x, y)
            q = be.binary["maximum"](be.binary["add"](p, float(k)), 0.0)
            s = be.reduce("sum", q, 0)
            outs.append(be.to_numpy(s))
            x = be.binary["mul"](x, 0.5)
        return np.concatenate([o.ravel() for o in outs])

    chain()  # the pool now holds buffers of these sizes
    reused = be.device.pool.reused
    pooled = chain()
    assert be.device.pool.reused > reused
    monkeypatch.setattr(be.device.pool, "take", lambda size, usable=None: None)
    fresh = chain()
    assert pooled.tobytes() == fresh.tobytes()


@webgpu
def test_a_repeated_kernel_creates_no_bind_group(be):
    groups = getattr(be.device, "_groups", None)
    if groups is None:
        pytest.skip("bind groups are memoized by the native adapter only")
    x = be.from_numpy(np.arange(5003, dtype=np.float32))

    def once():
        y = be.binary["add"](x, 1.0)
        del y

    for _ in range(2):
        once()
    made, hits = groups.made, groups.hits
    for _ in range(5):
        once()
    assert groups.made == made and groups.hits == hits + 5
    np.testing.assert_array_equal(be.to_numpy(be.binary["add"](x, 1.0)), np.arange(5003, dtype=np.float32) + 1)
