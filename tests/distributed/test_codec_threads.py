"""The fused, threaded 8-bit coder gives the very bytes and residuals of the codec before it
(``codec_before.py``, kept verbatim): encode, encode_pieces, ErrorFeedback.compress and
compress_pieces, on random data of awkward sizes, zeros of both signs, subnormals, values at
the levels, the midpoints and the thresholds, all-zero blocks, and cuts at block and step
edges; with 1 thread and several, small steps and the real ones. Also the thread setting."""

import json
from importlib import resources

import numpy as np
import pytest

import codec_before as B  # noqa: E402  (tests/distributed is on sys.path under pytest)
from sukiyaki.distributed import codec as C
from sukiyaki.distributed import codec_threads as T

EIGHT_BIT = ("dettmers8", "block8")
SPEC = json.loads(resources.files("sukiyaki.distributed").joinpath("dettmers8bit.json").read_text("utf-8"))
LEVELS = np.array(SPEC["levels"], dtype=np.float32)
SIZES = (0, 1, 2, 3, 255, 256, 257, 511, 1000, 1023, 1024, 1025, 4099, 3 * 4096 + 17)


@pytest.fixture(params=[1, 3], ids=["1thread", "3threads"])
def threads(request, monkeypatch):
    """The codec with 1 or 3 threads, small steps and small spans (so that the small tensors
    here cross step and span edges), the thread setting restored afterwards."""
    monkeypatch.setattr(C, "_CHUNK", 1000)
    monkeypatch.setattr(T, "MIN_SPAN", 300)
    before = T.threads()
    T.set_threads(request.param)
    yield request.param
    T.set_threads(before)


def awkward(n, seed):
    """float32 values of many magnitudes with the cases the code treats apart, shuffled in."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * np.exp(rng.normal(0, 3, n))).astype(np.float32)
    if n < 8:
        return x
    peak = np.float32(np.abs(x).max())
    special = np.concatenate([
        [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, np.float32(np.finfo(np.float32).tiny)],
        LEVELS * peak, -LEVELS * peak,
        (LEVELS[:-1].astype(np.float64) + LEVELS[1:]) / 2 * peak,  # the midpoints (ties)
        np.float32(SPEC["below_is_zero"]) * peak * np.array([0.999, 1.0, 1.001]),
        np.float32(SPEC["above_is_max"]) * peak * np.array([0.999, 1.0, 1.001]),
        [peak, -peak],
    ]).astype(np.float32)
    k = min(n // 2, special.size)
    x[rng.choice(n, k, replace=False)] = special[rng.choice(special.size, k, replace=False)]
    x[rng.random(n) < 0.05] = 0.0
    x[rng.random(n) < 0.05] = -0.0
    if n >= 600:  # whole blocks (of 256, of 100) of zeros, of -0.0, of subnormals
        x[256:512] = -0.0
        x[100:200] = 0.0
        x[512:600] = np.float32(3e-42)
    return x


def same_bits(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("codec", C.CODECS)
@pytest.mark.parametrize("n", SIZES)
def test_encode_equals_the_codec_before(threads, codec, n):
    for seed in range(3):
        x = awkward(n, seed)
        for block in (1, 3, 100, 256):
            assert C.encode(x, codec, block) == B.encode(x, codec, block), (seed, block)
    y = np.zeros(n, np.float32)  # all zero, then all -0.0
    assert C.encode(y, codec) == B.encode(y, codec) and C.encode(-y, codec) == B.encode(-y, codec)


@pytest.mark.parametrize("codec", EIGHT_BIT)
def test_encode_of_2d_c_order_float64_and_scale_edges(threads, codec):
    x = awkward(3 * 1003, 4).reshape(3, -1)  # C-order: read column-major
    assert C.encode(x, codec) == B.encode(x, codec)
    assert C.encode(x.astype(np.float64), codec) == B.encode(x.astype(np.float64), codec)
    big = np.array([3e38, -3.4e38, 1.0, -1e-45, np.finfo(np.float32).max], np.float32)
    assert C.encode(big, codec, 2) == B.encode(big, codec, 2)


@pytest.mark.parametrize("codec", C.CODECS)
@pytest.mark.parametrize("n", [1000, 4099, 3 * 4096 + 17])
def test_encode_pieces_equals_the_codec_before(threads, codec, n):
    x = awkward(n, 5)
    for max_bytes in (256, 1024, 3000, 1 << 20):
        bounds = C.piece_bounds(n, codec, max_bytes)
        assert list(C.encode_pieces(x, codec, bounds)) == list(B.encode_pieces(x, codec, bounds))
    with pytest.raises(ValueError, match="not a valid cut"):
        list(C.encode_pieces(x, "block8", [(0, 100)]))


@pytest.mark.parametrize("codec", ("fp16",) + EIGHT_BIT)
@pytest.mark.parametrize("n", SIZES)
def test_error_feedback_equals_the_codec_before(threads, codec, n):
    """Four rounds of compress and of compress_pieces: the same bytes and residual bits as before."""
    new, old, new_p, old_p = C.ErrorFeedback(), B.ErrorFeedback(), C.ErrorFeedback(), B.ErrorFeedback()
    bounds = C.piece_bounds(n, codec, 1024) or [(0, 0)]  # as the worker cuts them
    for k in range(4):
        g = awkward(n, 10 + k) * np.float32(10.0 ** -k)  # later rounds: the residual dominates
        assert new.compress("w", g, codec) == old.compress("w", g, codec), k
        assert same_bits(new.residuals["w"], old.residuals["w"]), k
        got = list(new_p.compress_pieces("w", g, codec, bounds))
        assert got == list(old_p.compress_pieces("w", g, codec, bounds)), k
        assert same_bits(new_p.residuals["w"], old_p.residuals["w"]), k


@pytest.mark.parametrize("codec", EIGHT_BIT)
def test_error_feedback_of_2d_arrays_in_either_order(threads, codec):
    new, old = C.ErrorFeedback(), B.ErrorFeedback()
    for k, order in enumerate("CFCF"):
        g = np.asarray(awkward(60 * 70, 20 + k).reshape(60, 70), order=order)
        bounds = C.piece_bounds(g.size, codec, 1024)
        assert list(new.compress_pieces("w", g, codec, bounds)) == list(old.compress_pieces("w", g, codec, bounds))
        assert same_bits(new.residuals["w"], old.residuals["w"]) and new.residuals["w"].flags.f_contiguous
        assert new.compress("v", g.astype(np.float64), codec) == old.compress("v", g.astype(np.float64), codec)
        assert np.array_equal(new.residuals["v"].view(np.uint32), old.residuals["v"].view(np.uint32))


@pytest.mark.parametrize("codec", EIGHT_BIT)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises_the_same_error_and_keeps_the_residual(threads, codec, bad):
    x = awkward(5000, 30)
    x[3333] = bad
    with pytest.raises(ValueError) as before:
        B.encode(x, codec)
    with pytest.raises(ValueError, match=f"^{before.value}$".replace("(", r"\(").replace(")", r"\)")):
        C.encode(x, codec)
    new, old = C.ErrorFeedback(), B.ErrorFeedback()
    g = awkward(5000, 31)
    new.compress("w", g, codec), old.compress("w", g, codec)
    kept = new.residuals["w"].copy()
    bounds = C.piece_bounds(5000, codec, 1024)
    got, ref = [], []
    with pytest.raises(ValueError) as e_new:
        for data in new.compress_pieces("w", x, codec, bounds):
            got.append(data)
    with pytest.raises(ValueError) as e_old:
        for data in old.compress_pieces("w", x, codec, bounds):
            ref.append(data)
    assert (str(e_new.value), got) == (str(e_old.value), ref)  # block8: the pieces before it went out
    assert same_bits(new.residuals["w"], kept)
    huge = np.full(5000, 3e38, np.float32)  # finite, but gradient + residual overflows
    new.residuals["w"] = old.residuals["w"] = huge.copy()
    with pytest.raises(ValueError) as e_new:
        new.compress("w", huge, codec)
    with pytest.raises(ValueError) as e_old:
        old.compress("w", huge, codec)
    assert str(e_new.value) == str(e_old.value)


@pytest.mark.parametrize("codec", EIGHT_BIT)
def test_real_steps_and_threads_on_a_larger_tensor(codec):
    """The package's own step (256 Ki values) and spans, 1 and 4 threads, 1.3 M values."""
    before = T.threads()
    try:
        x = awkward(5 * C._CHUNK + 4097, 40)
        ref = B.ErrorFeedback()
        ref.compress("w", x * 0.5, codec)
        want = list(ref.compress_pieces("w", x, codec, C.piece_bounds(x.size, codec, 1 << 20)))
        for n in (1, 4):
            T.set_threads(n)
            ef = C.ErrorFeedback()
            ef.compress("w", x * 0.5, codec)
            assert list(ef.compress_pieces("w", x, codec, C.piece_bounds(x.size, codec, 1 << 20))) == want
            assert same_bits(ef.residuals["w"], ref.residuals["w"])
            assert C.encode(x, codec) == B.encode(x, codec)
    finally:
        T.set_threads(before)


# ------------------------------------------------------------------------------ the threads


def test_spans_cover_in_order_at_aligned_cuts():
    for n in (0, 1, 7, 256, 1000, 4097):
        for parts in (1, 2, 3, 8):
            for align in (1, 3, 256):
                cut = T.spans(n, parts, align)
                assert cut[0][0] == 0 and cut[-1][1] == n and len(cut) <= parts
                assert all(a[1] == b[0] and b[0] % align == 0 for a, b in zip(cut, cut[1:]))
                assert all(lo < hi for lo, hi in cut) or n == 0


def test_no_thread_can_start_then_one_thread(monkeypatch):
    """Where threads cannot start (as under Pyodide), the spans are coded inline, and from then
    on the codec uses one thread."""
    class NoThreads:
        def submit(self, *a):
            raise RuntimeError("can't start new thread")

    before = T.threads()
    try:
        T.set_threads(4)
        monkeypatch.setattr(T, "_pool_or_none", lambda: NoThreads())
        monkeypatch.setattr(T, "MIN_SPAN", 10)
        x = awkward(4099, 50)
        assert C.encode(x, "block8") == B.encode(x, "block8")
        assert T.threads() == 1
    finally:
        T.set_threads(before)


def test_the_setting(monkeypatch):
    monkeypatch.setattr(T, "_threads", None)
    monkeypatch.setenv("SUKIYAKI_CODEC_THREADS", "3")
    assert T.threads() == 3
    monkeypatch.setattr(T, "_threads", None)
    monkeypatch.setenv("SUKIYAKI_CODEC_THREADS", "zero")
    with pytest.raises(ValueError, match="SUKIYAKI_CODEC_THREADS must be a positive integer, got 'zero'"):
        T.threads()
    monkeypatch.setattr(T, "_threads", None)
    monkeypatch.delenv("SUKIYAKI_CODEC_THREADS")
    assert 1 <= T.threads() <= T.DEFAULT_MAX_THREADS
    monkeypatch.setattr(T, "_threads", None)
    monkeypatch.setattr(T.sys, "platform", "emscripten")
    assert T.threads() == 1
    with pytest.raises(ValueError, match="codec threads: expected a positive integer, got 0"):
        T.set_threads(0)
    monkeypatch.setattr(T, "_threads", None)


def test_an_error_in_a_span_is_raised_after_every_span_is_done(monkeypatch):
    monkeypatch.setattr(T, "_threads", None)
    before = T.threads()
    done = []
    try:
        T.set_threads(3)

        def fn(lo, hi):
            if lo == 0:
                raise KeyError("first span")
            done.append(lo)

        with pytest.raises(KeyError, match="first span"):
            T.parallel(fn, 30, min_span=1)
        assert sorted(done) == [10, 20]
    finally:
        T.set_threads(before)


def test_the_spans_go_to_the_threads(threads, monkeypatch):
    """With 3 threads, a tensor of 4,099 values (spans of 300 at least here) is cut in 3 spans."""
    calls = []
    real = T.parallel

    def spy(fn, n, align=1, min_span=None):
        out = real(fn, n, align, min_span)
        calls.append((n, len(out)))
        return out

    monkeypatch.setattr(C, "parallel", spy)
    x = awkward(4099, 60)
    assert C.encode(x, "dettmers8") == B.encode(x, "dettmers8")
    assert calls == [(4099, threads)] * 2  # the maximum, then the codes


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX: runs on Linux, macOS)")
def test_a_forked_child_makes_its_own_threads():
    """A child forked after the pool has started still codes on threads (its own, new pool)."""
    import multiprocessing

    before = T.threads()
    try:
        T.set_threads(2)
        x = awkward(3 * T.MIN_SPAN, 70)
        want = C.encode(x, "dettmers8")  # the parent's pool is running now
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(C.encode, (x, "dettmers8")).get(timeout=60)
        assert got == want
    finally:
        T.set_threads(before)


def test_the_coordinators_cap_applies_to_the_default_only(monkeypatch):
    """cap_default lowers the default number of threads; a number asked for (set_threads, the
    environment variable) is kept."""
    monkeypatch.setattr(T, "_pool", None)
    monkeypatch.delenv("SUKIYAKI_CODEC_THREADS", raising=False)
    monkeypatch.setattr(T, "_threads", 8)
    monkeypatch.setattr(T, "_explicit", False)
    T.cap_default(4)
    assert T.threads() == 4
    T.cap_default(16)
    assert T.threads() == 4  # a cap never raises the number
    monkeypatch.setattr(T, "_threads", 8)
    monkeypatch.setattr(T, "_explicit", True)  # set_threads(8) was called
    T.cap_default(2)
    assert T.threads() == 8
    monkeypatch.setattr(T, "_explicit", False)
    monkeypatch.setenv("SUKIYAKI_CODEC_THREADS", "6")
    monkeypatch.setattr(T, "_threads", 6)
    T.cap_default(2)
    assert T.threads() == 6
    T.set_threads(3)
    assert T.threads() == 3 and T._explicit
