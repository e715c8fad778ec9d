"""Generate the klass-promotion fixtures of sukiyaki.matrix with an independent emulation.

The original library (Sushi2, JavaScript) stores matrices in typed arrays and computes
every elementwise operation in double precision: the result klass of a binary arithmetic
operation is the highest klass among the *matrix* operands in the order
single > int32 > uint8 > logical (plain numbers do not vote; number op number gives
single), arithmetic on logical gives single, and the double result is stored as the
typed array of the result klass stores it:

- Float32Array (single): round to nearest float32, ties to even; beyond the float32
  range it becomes +-Infinity;
- Int32Array (int32): ECMAScript ToInt32: NaN and +-Infinity give 0, otherwise truncate
  toward zero and wrap modulo 2**32 into [-2**31, 2**31);
- Uint8Array (uint8): ToUint8: NaN and +-Infinity give 0, truncate toward zero, modulo 256;
- comparisons give logical (stored 0/1), computed on the double values.

This file re-implements those rules with Python floats, ``math.trunc`` and integer
modular arithmetic only -- no numpy, no sukiyaki -- and writes
``tests/matrix/fixtures/promotion.json``, which ``tests/matrix/test_promotion.py``
replays against the library (klass and exact values).

Two deliberate choices:

- ``power`` follows IEEE 754 / C99 ``pow`` (what numpy, MATLAB and Python's math.pow
  do), not ECMAScript ``Math.pow``, where they differ: pow(1, NaN) and pow(+-1, +-Inf)
  are 1 here and NaN in JavaScript.
- ``max``/``min`` ignore NaN (MATLAB), and are treated as arithmetic (logical gives single).

Cases (each one library call; column-by-row operands use implicit expansion, so one
call checks every pair of values):
    {"kind": "mm", "op", "a": {"klass", "values"} (n x 1), "b": {...} (1 x m),
     "klass": result klass, "expect": n x m values, column-major}
    {"kind": "mn" / "nm", "op", "a"/"b" as above (a column), "number": a Python number}
    {"kind": "nn", "op", "a": number, "b": number}
    {"kind": "unary", "op": "uminus", "a": {...}}
    {"kind": "cast", "a": {...}, "klass": target}
Values NaN, Inf, -Inf are the strings "NaN", "Inf", "-Inf"; logical values are 0/1.
Signed zeros are not distinguished.

``power`` cases carry ``"ulps": 2`` (single results may differ from the correctly rounded
value by that many float32 units in the last place, as pow implementations differ: numpy's
float32 pow is not correctly rounded) and ``"skip"``: column-major positions of integer
results whose double value is 2**53 or more, where a last-bit difference between pow
implementations changes the wrapped integer, and of (-Inf)**0.5 (IEEE pow: +Inf; numpy
computes x**0.5 as sqrt(x): NaN; MATLAB: complex).

Where a single or logical matrix meets a number that float32 cannot hold exactly, in an
operation giving single (or a comparison with a single matrix), the case carries
``"inexact_number": true`` and ``"expect_number_rounded"``: the result when the number is
first rounded to float32 -- what MATLAB and numpy do for single op double, and what
sukiyaki does (the original computed with the double; see test_promotion.py).

Usage:
    python tools/gen_promotion_fixtures.py            # rewrite the fixture file
    python tools/gen_promotion_fixtures.py --check    # exit 1 when the file is out of date
"""

import argparse
import json
import math
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "matrix" / "fixtures" / "promotion.json"
KLASSES = ("single", "int32", "uint8", "logical")
RANK = {"single": 0, "int32": 1, "uint8": 2, "logical": 3}
INF = float("inf")
NAN = float("nan")


# --------------------------------------------------------------------------- storage rules
def to_float32(x):
    """Round a double to the nearest float32 (ties to even), overflowing to +-Infinity."""
    if math.isnan(x) or math.isinf(x) or x == 0.0:
        return x
    m, e = math.frexp(abs(x))            # abs(x) = m * 2**e, 0.5 <= m < 1
    q = max(e - 24, -149)                # quantum: 24 significant bits, subnormals at 2**-149
    n = math.ldexp(abs(x), -q)           # exact: a scaling by a power of two
    r = math.ldexp(float(round(n)), q)   # round() on a float rounds halves to even
    if r >= 2.0 ** 128:
        r = INF
    return math.copysign(r, x)


def to_int32(x):
    """ECMAScript ToInt32."""
    if math.isnan(x) or math.isinf(x):
        return 0
    v = int(math.trunc(x)) % 2 ** 32
    return v - 2 ** 32 if v >= 2 ** 31 else v


def to_uint8(x):
    """ECMAScript ToUint8."""
    if math.isnan(x) or math.isinf(x):
        return 0
    return int(math.trunc(x)) % 256


def to_logical(x):
    """Anything nonzero (NaN included) is true."""
    return 0 if x == 0 else 1


STORE = {"single": to_float32, "int32": to_int32, "uint8": to_uint8, "logical": to_logical}


# --------------------------------------------------------------------------- double arithmetic
def _is_odd_integer(y):
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0


def div(x, y):
    """IEEE double division (Python raises on a zero divisor)."""
    if y != 0 or math.isnan(y):
        return x / y
    if math.isnan(x) or x == 0:
        return NAN
    return math.copysign(INF, x) * math.copysign(1.0, y)


def pow_(x, y):
    """IEEE / C99 pow, from math.pow with its exceptions turned back into values."""
    try:
        return math.pow(x, y)
    except OverflowError:
        return -INF if x < 0 and _is_odd_integer(y) else INF
    except ValueError:
        if x == 0:  # zero to a negative power
            return math.copysign(INF, x) if _is_odd_integer(y) else INF
        return NAN  # negative base, non-integer exponent


def fmax(x, y):
    """max ignoring NaN."""
    if math.isnan(x):
        return y
    if math.isnan(y):
        return x
    return x if x >= y else y


def fmin(x, y):
    """min ignoring NaN."""
    if math.isnan(x):
        return y
    if math.isnan(y):
        return x
    return x if x <= y else y


ARITH = {
    "plus": lambda x, y: x + y,
    "minus": lambda x, y: x - y,
    "times": lambda x, y: x * y,
    "rdivide": div,
    "power": pow_,
    "max": fmax,
    "min": fmin,
}
COMPARE = {"eq": lambda x, y: x == y, "lt": lambda x, y: x < y}
OPS = tuple(ARITH) + tuple(COMPARE)


def result_klass(op, klasses):
    """Klass of op's result given the klasses of its matrix operands."""
    if op in COMPARE:
        return "logical"
    best = min((RANK[k] for k in klasses), default=0)
    k = KLASSES[best]
    return "single" if k == "logical" else k


def apply(op, x, y, klass):
    """op on two doubles, stored as klass."""
    if op in COMPARE:
        return 1 if COMPARE[op](x, y) else 0
    return STORE[klass](ARITH[op](float(x), float(y)))


# --------------------------------------------------------------------------- value sets
def _stored(klass, values):
    return [STORE[klass](float(v)) for v in values]


VALUES = {
    # float32 values (rounded by to_float32): halves, truncation, wrap and overflow sources
    "single": _stored("single", [
        0, 1, -1, 2, 2.5, -2.5, 3.7, -3.7, 0.5, 7, 100, 250, 300, 16777216, 1e10, 3e38,
        NAN, INF, -INF,
    ]),
    "int32": [0, 1, -1, 2, 3, -3, 7, -7, 10, 255, 256, 46341, 16777217, 2147483647, -2147483648],
    "uint8": [0, 1, 2, 3, 5, 7, 10, 128, 200, 250, 255],
    "logical": [0, 1],
}
#: Numbers used beside a matrix (float32-exact, so every rule above applies exactly).
NUMBERS = [0, 1, -1, 2, 10, -5, 2.5, -3.75, 0.5, 256, 300, 2147483647, 1e10, NAN, INF, -INF]
#: Numbers float32 cannot hold: with a single matrix the library rounds them first.
INEXACT_NUMBERS = [0.1, 16777217, 1 / 3]
#: Pairs of plain numbers (number op number gives single).
NUMBER_PAIRS = [(2, 3), (7, 2), (-7, 2), (0.1, 0.2), (16777217, 1), (1e10, 3), (1, 0), (0, 0),
                (2, 0.5), (-8, 1 / 3), (3.7, -1), (NAN, 1)]

#: Casts checked beside the promotion rules, as (from klass, values).
CAST_VALUES = {
    "single": _stored("single", [0, 3.7, -3.7, 0.5, -0.5, 2.5, 255.9, 256, 300, -1, -300,
                                 2147483648.0, -2147483904.0, 3e9, 1e10, NAN, INF, -INF]),
    "int32": [0, 1, -1, 255, 256, 300, -300, 2147483647, -2147483648, 16777217],
    "uint8": [0, 1, 127, 128, 255],
    "logical": [0, 1],
}


def encode(v):
    """JSON-safe value: NaN/Inf as strings, integral results of integer klasses as ints."""
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Inf" if v > 0 else "-Inf"
    return v


def operand(klass, values):
    return {"klass": klass, "values": [encode(v) for v in values]}


def _outer(op, xs, ys, klass):
    """Column-major n x m values of op(xs[i], ys[j])."""
    return [encode(apply(op, x, y, klass)) for y in ys for x in xs]


def _inexact_f32(x):
    return math.isfinite(x) and to_float32(float(x)) != x


def _power_tolerance(klass, pairs):
    """Tolerance fields of a power case over (x, y) pairs in column-major order."""
    skip = []
    for i, (x, y) in enumerate(pairs):
        r = pow_(float(x), float(y))
        if klass in ("int32", "uint8") and math.isfinite(r) and abs(r) >= 2.0 ** 53:
            skip.append(i)
        elif x == -INF and y == 0.5:  # IEEE +Inf; numpy's x**0.5 is sqrt(x), NaN; MATLAB complex
            skip.append(i)
    return {"ulps": 2, "skip": skip}


def _case(kind, op, klass, pairs, **fields):
    """A case over (x, y) operand pairs (column-major), with its tolerance fields."""
    case = {"kind": kind, "op": op, **fields, "klass": klass}
    if op == "power":
        case.update(_power_tolerance(klass, pairs))
    case["expect"] = [encode(apply(op, x, y, klass)) for x, y in pairs]
    return case


def build_cases():
    cases = []
    for op in OPS:
        for ka in KLASSES:
            for kb in KLASSES:
                pairs = [(x, y) for y in VALUES[kb] for x in VALUES[ka]]
                cases.append(_case("mm", op, result_klass(op, (ka, kb)), pairs,
                                   a=operand(ka, VALUES[ka]), b=operand(kb, VALUES[kb])))
        for ka in KLASSES:
            k = result_klass(op, (ka,))
            for num in NUMBERS + INEXACT_NUMBERS:
                number = encode(float(num)) if isinstance(num, float) else num
                rounded = ka == "single" or (ka == "logical" and op in ARITH)
                for kind, side in (("mn", "a"), ("nm", "b")):
                    def pairs(n):
                        return [(x, n) if kind == "mn" else (n, x) for x in VALUES[ka]]
                    case = _case(kind, op, k, pairs(num), **{side: operand(ka, VALUES[ka])},
                                 number=number)
                    if rounded and _inexact_f32(num):
                        case["inexact_number"] = True
                        r = to_float32(float(num))
                        case["expect_number_rounded"] = [encode(apply(op, x, y, k)) for x, y in pairs(r)]
                    cases.append(case)
        k = result_klass(op, ())
        for x, y in NUMBER_PAIRS:
            cases.append(_case("nn", op, k, [(x, y)], a=encode(x), b=encode(y)))
    for ka in KLASSES:
        k = result_klass("minus", (ka,))
        cases.append({"kind": "unary", "op": "uminus", "a": operand(ka, VALUES[ka]), "klass": k,
                      "expect": [encode(STORE[k](-float(x))) for x in VALUES[ka]]})
    for ka, vals in CAST_VALUES.items():
        for k in KLASSES:
            cases.append({"kind": "cast", "op": "cast", "a": operand(ka, vals), "klass": k,
                          "expect": [encode(STORE[k](float(x))) for x in vals]})
    return cases


def _self_check():
    """The examples of the specification, checked against this emulation."""
    assert apply("plus", 250, 10, "uint8") == 4
    assert apply("minus", 3, 5, "uint8") == 254
    assert apply("plus", 2147483647, 1, "int32") == -2147483648
    assert apply("rdivide", 7, 2, "int32") == 3
    assert apply("rdivide", -7, 2, "int32") == -3
    assert apply("rdivide", 9, 0, "uint8") == 0
    assert to_int32(3.7) == 3 and to_int32(-3.7) == -3 and to_int32(NAN) == 0
    assert to_uint8(300) == 44 and to_uint8(-1) == 255
    assert to_float32(0.1) == 0.100000001490116119384765625
    assert to_float32(3.4028235677973366e38) == INF and to_float32(3.4028234663852886e38) < INF
    assert to_float32(1 + 2 ** -24) == 1.0 and to_float32(1 + 3 * 2 ** -25) == 1 + 2 ** -23
    assert to_float32(2 ** -150) == 0.0 and to_float32(3 * 2 ** -151) == 2 ** -149
    assert result_klass("plus", ("logical", "logical")) == "single"
    assert result_klass("plus", ("uint8", "int32")) == "int32"
    assert result_klass("plus", ()) == "single"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the fixture file is out of date")
    args = parser.parse_args(argv)
    _self_check()
    text = json.dumps({"generator": "tools/gen_promotion_fixtures.py", "cases": build_cases()},
                      separators=(",", ":")) + "\n"
    if args.check:
        current = FIXTURE.read_text() if FIXTURE.exists() else ""
        if current != text:
            print(f"{FIXTURE} is out of date; run python tools/gen_promotion_fixtures.py")
            return 1
        return 0
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(text)
    print(f"wrote {FIXTURE} ({len(json.loads(text)['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
