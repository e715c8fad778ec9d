"""The coordinator's decode-and-add path: ``codec.decode_add`` gives the bits of
``dst += decode(data) * weight`` (float32) for every codec, weight (folded into the 8-bit table or
not), step, span and thread count; its sums of squares, ``uploads.piece_stats`` and
``uploads.encoded_stats`` are the statistic as defined: the float32 ``np.dot`` of each window of
64 Ki values from a piece's first (float64 when it overflows), summed in float64 in order."""

import math

import numpy as np
import pytest

from sukiyaki.distributed import codec as C
from sukiyaki.distributed import codec_threads as T
from sukiyaki.distributed.coordinator import uploads as U
from sukiyaki.distributed.protocol import Piece

W = C.SQUARES_WINDOW


def reference_windows(y):
    """The statistic's definition, one window at a time (the loop the coordinator ran before)."""
    out = []
    for lo in range(0, y.size, W):
        x = y[lo:lo + W]
        with np.errstate(over="ignore", invalid="ignore"):
            q = float(np.dot(x, x))
        if not math.isfinite(q):
            q = float(np.dot(x.astype(np.float64), x.astype(np.float64))) if np.all(np.isfinite(x)) else math.nan
        out.append(q)
    return out


def reference_stats(y):
    total = 0.0
    for q in reference_windows(y):
        if not math.isfinite(q):
            return False, math.nan
        total += q
    return True, total


def values(n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * np.exp(rng.normal(0, 3, n))).astype(np.float32)
    x[rng.random(n) < 0.05] = -0.0
    return x


@pytest.fixture(params=[1, 3], ids=["1thread", "3threads"])
def threads(request, monkeypatch):
    """1 or 3 threads, spans of a window or two: spans and steps (2 windows here) cut the tensors."""
    monkeypatch.setattr(T, "MIN_SPAN", W)
    monkeypatch.setattr(C, "ADD_STEP", 2 * W)
    before = T.threads()
    T.set_threads(request.param)
    yield request.param
    T.set_threads(before)


def same_bits(a, b):
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


@pytest.mark.parametrize("codec", C.CODECS)
@pytest.mark.parametrize("n", [0, 1, 3, 1000, W, W + 1, 5 * W + 3])
@pytest.mark.parametrize("weight", [1.0, 0.3, -2.5])
def test_decode_add_is_the_expression(threads, codec, n, weight):
    data = C.encode(values(n, n), codec)
    base = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    base[::7] = -0.0
    want = base + C.decode(data, codec, n) * np.float32(weight) if weight != 1.0 else base + C.decode(data, codec, n)
    for squares in (False, True):
        dst = base.copy()
        got = C.decode_add(data, codec, n, dst, weight, squares=squares)
        assert same_bits(dst, want), (codec, n, weight, squares)
        if squares:
            assert got == reference_windows(C.decode(data, codec, n))
        else:
            assert got is None


@pytest.mark.parametrize("weight", [1.0, 0.75, -3.0])
def test_dettmers8_folded_weight_on_zeros_of_both_signs(weight):
    """A zero scale (hostile bytes: signed codes) decodes to +-0.0; the weight folded into the table
    keeps every sign as the product does."""
    n = 3 * W + 1
    codes = np.random.default_rng(2).integers(0, 256, n).astype(np.uint8)
    for scale in (0.0, 1.5):
        data = codes.tobytes() + np.array([scale], "<f4").tobytes()
        base = np.zeros(n, np.float32)
        base[::2] = -0.0
        dst = base.copy()
        C.decode_add(data, "dettmers8", n, dst, weight)
        assert same_bits(dst, base + C.decode(data, "dettmers8", n) * np.float32(weight))


def test_the_real_step_and_threads():
    n = C.ADD_STEP * 2 + 3 * W + 5
    x = values(n, 3)
    before = T.threads()
    try:
        for t in (1, 2, 4):
            T.set_threads(t)
            for codec in C.CODECS:
                data = C.encode(x, codec)
                dst = np.ones(n, np.float32)
                got = C.decode_add(data, codec, n, dst, 0.5, squares=True)
                dec = C.decode(data, codec, n)
                assert same_bits(dst, np.float32(1) + dec * np.float32(0.5))
                assert got == reference_windows(dec)
                p = Piece("w", (n,), 0, n, codec=codec, data=data)
                assert U.encoded_stats(p) == U.piece_stats(dec) == reference_stats(dec)
    finally:
        T.set_threads(before)


def test_window_squares_is_np_dot_per_window():
    for n in (0, 1, W - 1, W, W + 1, 7 * W + 12345):
        y = values(n, n)
        assert C.window_squares(y) == [float(np.dot(y[lo:lo + W], y[lo:lo + W])) for lo in range(0, n, W)]


def test_overflow_and_non_finite_windows():
    n = 3 * W + 10
    big = np.full(n, 3e38, np.float32)
    big[5] = -3e38
    big[W:2 * W] = 1.0  # one window that does not overflow
    with np.errstate(over="ignore", invalid="ignore"):
        assert C.window_squares(big) == reference_windows(big)
        assert U.piece_stats(big) == reference_stats(big)
        data = C.encode(big, "dettmers8")
        got = C.decode_add(data, "dettmers8", n, np.zeros(n, np.float32), squares=True)
        assert got == reference_windows(C.decode(data, "dettmers8", n))
        piece = Piece("w", (n,), 0, n, codec="dettmers8", data=data)
        assert U.encoded_stats(piece) == reference_stats(C.decode(data, "dettmers8", n))
        for bad in (np.nan, np.inf):
            x = big.copy()
            x[2 * W + 3] = bad
            q = C.window_squares(x)
            assert math.isnan(q[2]) and q[:2] == reference_windows(x)[:2]
            finite, total = U.piece_stats(x)
            assert not finite and math.isnan(total)
            raw = Piece("w", (n,), 0, n, codec="raw", data=x.tobytes())
            finite, total = U.encoded_stats(raw)
            assert not finite and math.isnan(total)


def test_decode_steps_of_any_step_are_decode():
    n = 3 * W + 7
    x = values(n, 4)
    for codec in C.CODECS:
        data = C.encode(x, codec)
        dec = C.decode(data, codec, n)
        for step, lo in ((256, 0), (W, 256), (C.ADD_STEP, 0), (1000 * 256, 512)):
            got = np.concatenate([v.copy() for _, v in C.decode_steps(data, codec, n, lo=lo, step=step)])
            assert same_bits(got, dec[lo:])
