"""Weight and gradient codecs: round trips, byte compatibility with the original's 8-bit code,
error bounds, error feedback, hostile input, column-major order."""

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from sukiyaki.distributed import codec as C
from sukiyaki.distributed.codec import CODECS, ErrorFeedback, decode, encode, encoded_size

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
COMPAT = SHARED / "compat" / "dettmers8bit.json"
SPEC = json.loads(resources.files("sukiyaki.distributed").joinpath("dettmers8bit.json").read_text("utf-8"))
LEVELS = np.array(SPEC["levels"], dtype=np.float32)
#: Largest error of the 8-bit code relative to the scale: half the widest gap between codes
#: (0, the levels, 1), or the zero threshold, whichever is larger.
HALF_GAP = float(np.max(np.diff(np.concatenate([[0.0], LEVELS.astype(np.float64), [1.0]]))) / 2)
EIGHT_BIT = ("dettmers8", "block8")


def f32(*values):
    return np.array(values, dtype=np.float32)


def codes_of(values, codec="dettmers8"):
    """The code bytes (without the trailing scales) of a 1-D float32 array."""
    return list(encode(f32(*values), codec)[:len(values)])


def reference_codes(x, scale):
    """The 8-bit code from its definition, written independently: float64 midpoints, no chunks.

    ``scale``: one float32 per value (or a scalar); a scale of 0 codes its values as 0."""
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), x.shape)
    r = (np.abs(x) / np.where(scale > 0, scale, np.float32(1))).astype(np.float32).astype(np.float64)
    mid = (LEVELS[:-1].astype(np.float64) + LEVELS[1:]) / 2
    code = np.searchsorted(mid, r, side="right")  # r == midpoint -> the upper level
    code[r < np.float32(SPEC["below_is_zero"])] = 126
    code[r > np.float32(SPEC["above_is_max"])] = 127
    return (code + 128 * (x < 0)).astype(np.uint8)


# ---------------------------------------------------------------------------------- the table


def test_packaged_table_equals_compat_file():
    if not COMPAT.is_file():
        pytest.skip(f"compat table not found: {COMPAT} (the shared folder is missing)")
    assert SPEC == json.loads(COMPAT.read_text("utf-8"))


def test_sizes_and_unknown_codec():
    assert [encoded_size(1000, c) for c in CODECS] == [4000, 2000, 1004, 1016]
    assert encoded_size(0, "dettmers8") == 4 and encoded_size(0, "block8") == 0
    assert encoded_size(257, "block8", block=256) == 257 + 8
    for c in CODECS:
        assert len(encode(np.zeros((3, 5), np.float32), c, block=4)) == encoded_size(15, c, block=4)
    with pytest.raises(ValueError, match="unknown codec 'int4'"):
        encode(f32(1), "int4")
    with pytest.raises(ValueError, match="block8: block must be a positive integer, got 0"):
        encode(f32(1), "block8", block=0)


# -------------------------------------------------------------------- byte compatibility


def test_value_exactly_at_each_level_gets_its_code():
    x = np.concatenate([[1.0], LEVELS]).astype(np.float32)  # max 1: r is the value itself
    data = encode(x, "dettmers8")
    assert list(data[:-4]) == [127, *range(126)]
    assert data[-4:] == bytes.fromhex("0000803f")  # float32 1.0, little-endian
    assert np.array_equal(decode(data, "dettmers8", x.shape), x)


def test_between_two_levels_nearest_wins():
    # 0.5 is 0.00703 from level 96 (0.49296874) and 0.01016 from level 97 (0.51015621)
    assert codes_of([1.0, 0.5, 0.505, 0.1]) == [127, 96, 97, 61]  # 0.1: 0.00172 from 0.09828124 (61)
    # the same ratios with a scale of 4 give the same codes, and the scale 4.0 is written
    data = encode(f32(4.0, 2.0, 2.02, 0.4), "dettmers8")
    assert list(data[:4]) == [127, 96, 97, 61] and data[4:] == bytes.fromhex("00008040")


def test_ties_go_to_the_larger_level():
    # 0.1328125 is exactly halfway between levels 64 (0.12734374) and 65 (0.13828126)
    tie = np.float32(0.1328125)
    below, above = np.nextafter(tie, np.float32(0)), np.nextafter(tie, np.float32(1))
    assert codes_of([1.0, tie, below, above, 0.1875, 0.2421875, 0.40625]) == [127, 65, 64, 65, 70, 75, 90]
    assert codes_of([2.0, 0.265625]) == [127, 65]  # r = 0.265625 / 2 = 0.1328125 exactly


def test_thresholds_zero_and_max():
    low, high = np.float32(1.5e-6), np.float32(0.995703)
    assert codes_of([1.0, 1.4e-6, np.nextafter(low, np.float32(0)), low, 0.0]) == [127, 126, 126, 0, 126]
    assert codes_of([1.0, 0.9958, np.nextafter(high, np.float32(1)), high, 0.9957]) == [127, 127, 127, 125, 125]


def test_sign_bit():
    assert codes_of([1.0, -1.0, -0.5, -1e-7, -0.0, 0.5]) == [127, 255, 224, 254, 126, 96]
    y = decode(encode(f32(-2.0, 1.0, -1e-9), "dettmers8"), "dettmers8", 3)
    assert y.tolist() == [-2.0, float(LEVELS[96] * np.float32(2)), 0.0]


def test_decode_hand_made_bytes():
    scale = bytes.fromhex("00000040")  # 2.0
    y = decode(bytes([0, 125, 126, 127, 128, 253, 254, 255]) + scale, "dettmers8", (2, 4))
    expect = np.float32(2) * f32(LEVELS[0], LEVELS[125], 0, 1, -LEVELS[0], -LEVELS[125], 0, -1)
    assert np.array_equal(y.reshape(-1, order="F"), expect)


def test_all_zero_tensor():
    for x in (np.zeros(5, np.float32), f32(0.0, -0.0, 0.0)):
        data = encode(x, "dettmers8")
        assert data == bytes([126] * x.size) + bytes(4)  # codes 126, scale +0.0
        assert not np.signbit(decode(data, "dettmers8", x.size)).any()
        assert not decode(data, "dettmers8", x.size).any()
    # the original floored its maximum at 1e-20; such bytes decode to zeros too
    assert not decode(bytes([126, 254]) + f32(1e-20).tobytes(), "dettmers8", 2).any()
    data = encode(np.zeros(600, np.float32), "block8", block=256)
    assert data == bytes([126] * 600) + bytes(12)


def test_nearest_is_exact_against_the_definition():
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.uniform(0, 1, 200_000), np.exp(rng.uniform(np.log(1e-7), 0, 200_000)),
                        LEVELS, (LEVELS[:-1].astype(np.float64) + LEVELS[1:]) / 2]).astype(np.float32)
    r = np.concatenate([r, np.nextafter(r, np.float32(0)), np.nextafter(r, np.float32(1))])
    x = np.concatenate([[1.0], r * np.where(rng.random(r.size) < 0.5, -1, 1)]).astype(np.float32)
    assert np.array_equal(np.frombuffer(encode(x, "dettmers8")[:-4], np.uint8), reference_codes(x, 1.0))


@pytest.mark.parametrize("block", [1, 7, 256, 300, 1 << 20])
def test_block8_bytes_over_several_chunks(block):
    n = 3 * C._CHUNK + 123
    x = (np.random.default_rng(block).standard_normal(n) * np.exp(np.random.default_rng(1).normal(0, 3, n)))
    x = x.astype(np.float32)
    data = encode(x, "block8", block=block)
    scales = np.frombuffer(data[n:], "<f4")
    expect = [np.abs(x[s:s + block]).max() for s in range(0, min(n, 40 * block), block)]
    assert np.array_equal(scales[:len(expect)], expect)
    full = np.repeat(scales, block)[:n]
    assert np.array_equal(np.frombuffer(data[:n], np.uint8), reference_codes(x, full))
    y = decode(data, "block8", n, block=block)
    assert np.all(np.abs(y - x) <= HALF_GAP * full * (1 + 1e-6))


# ------------------------------------------------------------------------------ round trips


def structured():
    rng = np.random.default_rng(3)
    outlier = rng.standard_normal(1000).astype(np.float32)
    outlier[17] = 1000
    return {
        "random": rng.standard_normal((37, 29)).astype(np.float32),
        "zeros": np.zeros((4, 3), np.float32),
        "outlier": outlier,
        "negative": -np.abs(rng.standard_normal(500)).astype(np.float32),
        "denormal": f32(1e-40, -3e-41, 1e-45, 0.0, 5e-39),
        "huge": f32(3e38, -1e38, 1e30, -3.4e38, 1.0),
        "scalar": np.array(-2.5, np.float32),
    }


@pytest.mark.parametrize("name", list(structured()))
@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec, name):
    x = structured()[name]
    y = decode(encode(x, codec, block=64), codec, x.shape, block=64)
    assert y.shape == x.shape and y.dtype == np.float32 and y.flags.f_contiguous and y.flags.writeable
    assert np.isfinite(y).all()
    if codec == "raw":
        assert np.array_equal(y.view(np.uint32), x.view(np.uint32))  # bit for bit, -0.0 included
    elif codec == "fp16":
        big = np.abs(x) > 65504
        assert np.array_equal(y[big], np.sign(x[big]) * 65504)
        assert np.all(np.abs(y - x)[~big] <= np.abs(x[~big]) * 2.0**-11 + 2.0**-25)
    else:
        flat = x.reshape(-1, order="F")
        block = flat.size if codec == "dettmers8" else 64
        scale = np.repeat([np.abs(flat[s:s + block]).max() for s in range(0, flat.size, block)], block)
        err = np.abs(y.reshape(-1, order="F") - flat)[:flat.size]
        assert np.all(err <= HALF_GAP * scale[:flat.size] * (1 + 1e-6) + 1.5e-45)


def test_nan_and_infinity():
    x = f32(1.0, np.nan, -np.inf, np.inf, 1e5, -7e4)
    raw = decode(encode(x, "raw"), "raw", x.shape)
    assert np.isnan(raw[1]) and raw[2] == -np.inf and raw[4] == 1e5
    half = decode(encode(x, "fp16"), "fp16", x.shape)
    assert np.isnan(half[1]) and half[[0, 2, 3, 4, 5]].tolist() == [1.0, -65504, 65504, 65504, -65504]
    for codec in EIGHT_BIT:
        for bad in (f32(1.0, np.nan), f32(np.inf, 1.0), f32(-np.inf)):
            with pytest.raises(ValueError, match=f"{codec}: cannot encode NaN or infinity in 8 bits"):
                encode(bad, codec)


def test_error_bound_dettmers8_relative_to_max():
    x = np.random.default_rng(5).standard_normal(100_000).astype(np.float32) * 3
    y = decode(encode(x, "dettmers8"), "dettmers8", x.shape)
    err = np.abs(y - x).max() / np.abs(x).max()
    assert err <= HALF_GAP * (1 + 1e-6) and HALF_GAP < 0.0087


def test_block8_beats_dettmers8_on_an_outlier():
    x = np.random.default_rng(6).standard_normal(100_000).astype(np.float32)
    x[12345] = 1000.0
    rms = {c: float(np.sqrt(np.mean((decode(encode(x, c), c, x.shape) - x) ** 2))) for c in EIGHT_BIT}
    assert rms["block8"] < rms["dettmers8"] / 5, rms  # measured: 0.0102 vs 0.0707


# ---------------------------------------------------------------------------- column order


def test_column_major_order():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)  # C-ordered input
    raw = encode(x, "raw")
    assert np.frombuffer(raw, "<f4").tolist() == x.T.reshape(-1).tolist()  # x[0,0], x[1,0], x[2,0], x[0,1]...
    for codec in CODECS:
        for a in (x, np.asfortranarray(x), x[:, ::2], np.arange(24, dtype=np.float32).reshape(2, 3, 4)):
            y = decode(encode(a, codec), codec, a.shape)
            assert y.shape == a.shape
            assert np.array_equal(np.argsort(y, axis=None), np.argsort(a, axis=None))  # same positions
    assert np.array_equal(decode(raw, "raw", (3, 4)), x)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("codec", CODECS)
def test_size_mismatch_names_codec_and_counts(codec):
    data = encode(np.ones(10, np.float32), codec, block=4)
    for wrong in (data[:-1], data + b"\0"):
        with pytest.raises(ValueError, match=rf"{codec}: expected {len(data)} bytes .* received {len(wrong)}"):
            decode(wrong, codec, 10, block=4)
    with pytest.raises(ValueError, match=f"{codec}: expected"):
        decode(data, codec, (3, 4), block=4)


@pytest.mark.parametrize("codec", EIGHT_BIT)
@pytest.mark.parametrize("scale", [np.nan, np.inf, -np.inf, -1.0])
def test_hostile_scales_raise(codec, scale):
    data = bytearray(encode(np.ones(10, np.float32), codec, block=4))
    data[-4:] = f32(scale).tobytes()
    where = "maximum" if codec == "dettmers8" else r"scale of block 2 \(of 3\)"
    with pytest.raises(ValueError, match=f"{codec}: decoded {where} is {float(scale)}; a scale must be finite"):
        decode(bytes(data), codec, 10, block=4)


def test_bad_shape_and_dtype():
    with pytest.raises(ValueError, match="raw: shape must be non-negative integers"):
        decode(b"", "raw", (-1, 0))
    with pytest.raises(ValueError, match="dettmers8: expected a float32 array, got dtype complex64"):
        encode(np.ones(2, np.complex64), "dettmers8")


# --------------------------------------------------------------------------- error feedback


@pytest.mark.parametrize("codec", ["fp16", "dettmers8", "block8"])
def test_error_feedback_tracks_the_running_sum(codec):
    rng = np.random.default_rng(7)
    base = (rng.standard_normal(4096) * np.exp(rng.normal(0, 2, 4096))).astype(np.float32)
    ef = ErrorFeedback()
    true = np.zeros(4096, np.float64)
    with_ef = np.zeros(4096, np.float64)
    without = np.zeros(4096, np.float64)
    worst = 0.0
    for _ in range(100):
        g = base * (1 + 0.01 * rng.standard_normal(4096)).astype(np.float32)
        true += g
        with_ef += decode(ef.compress("w", g, codec), codec, g.shape)
        without += decode(encode(g, codec), codec, g.shape)
        # what is not sent yet is the residual, and it stays within one step's quantization error
        assert np.allclose(true - with_ef, ef.residuals["w"], rtol=1e-4, atol=1e-3)
        worst = max(worst, float(np.abs(ef.residuals["w"]).max()))
    one_step = HALF_GAP * 1.2 * np.abs(base).max() if codec != "fp16" else 2.0**-11 * 1.2 * np.abs(base).max()
    assert worst <= one_step
    err_ef, err_plain = np.abs(true - with_ef).sum(), np.abs(true - without).sum()
    # measured: 3.7 vs 39 (fp16: errors of a random walk without feedback), 620 vs 42714
    # (dettmers8), 295 vs 15010 (block8)
    assert err_ef * 5 < err_plain, (err_ef, err_plain)


def test_error_feedback_shapes_reset_and_nan():
    ef = ErrorFeedback()
    ef.compress("a", np.ones((2, 3), np.float32), "dettmers8")
    assert ef.residuals["a"].shape == (2, 3) and ef.residuals["a"].dtype == np.float32
    with pytest.raises(ValueError, match="error feedback 'a': shape \\(3, 2\\) differs"):
        ef.compress("a", np.ones((3, 2), np.float32), "dettmers8")
    ef.compress("b", f32(np.nan, 70000.0), "fp16")  # non-finite residuals are not carried
    assert ef.residuals["b"].tolist() == [0.0, 70000.0 - 65504.0]
    ef.reset("a")
    assert list(ef.residuals) == ["b"]
    ef.reset()
    assert ef.residuals == {}
    raw = ef.compress("c", f32(1.5, -2.0), "raw")
    assert not ef.residuals["c"].any() and decode(raw, "raw", 2).tolist() == [1.5, -2.0]
