"""Elementwise arithmetic, math, comparisons, logic and implicit expansion, against numpy."""

import operator

import numpy as np
import pytest

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, check_op, mat, to_numpy

RNG = np.random.default_rng(1234)


def rnd(*shape, lo=-2.0, hi=2.0):
    """float32 values in [lo, hi), of a numpy shape."""
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


def padded(*arrays):
    """numpy arrays padded with trailing singleton axes to a common ndim (MATLAB alignment)."""
    n = max(a.ndim for a in arrays)
    return [a.reshape(a.shape + (1,) * (n - a.ndim)) for a in arrays]


def expand_ref(f):
    """A numpy reference for a binary op with MATLAB's trailing-singleton alignment."""

    def ref(a, b):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            a, b = padded(a, b)
        with np.errstate(all="ignore"):
            return f(a, b)

    return ref


ARITH = [
    ("plus", M.plus, np.add),
    ("minus", M.minus, np.subtract),
    ("times", M.times, np.multiply),
    ("rdivide", M.rdivide, np.divide),
    ("ldivide", M.ldivide, lambda a, b: np.divide(b, a)),
]
SHAPE_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),          # 3x1 + 1x4 -> 3x4
    ((2, 3, 1), (1, 1, 4)),    # 2x3x1 + 1x1x4 -> 2x3x4
    ((3, 1), (1, 1, 4)),       # 3x1 + 1x1x4 -> 3x1x4 (trailing alignment, not numpy's leading)
    ((2, 3, 4), (2, 3)),       # 2x3x4 + 2x3
    ((1, 1), (2, 5)),          # scalar matrix
    ((0, 3), (1, 3)),          # empty
]


@pytest.mark.parametrize("name,ours,ref", ARITH, ids=[a[0] for a in ARITH])
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=[f"{a}-{b}" for a, b in SHAPE_PAIRS])
def test_arith_expansion(name, ours, ref, sa, sb, device):
    b = rnd(*sb, lo=0.5, hi=2.0)
    check_op(ours, expand_ref(ref), rnd(*sa), b, device=device)


@pytest.mark.parametrize("name,ours,ref", ARITH, ids=[a[0] for a in ARITH])
def test_arith_with_numbers(name, ours, ref, device):
    a = rnd(3, 4, lo=0.5, hi=2)
    check_op(lambda A: ours(A, 1.5), lambda x: ref(x, 1.5), a, device=device)
    check_op(lambda A: ours(2.5, A), lambda x: ref(2.5, x), a, device=device)


def test_power(device):
    a = rnd(3, 4, lo=0.1, hi=3)
    check_op(M.power, expand_ref(np.power), a, rnd(1, 4, lo=-2, hi=2), device=device, rtol=2e-6)
    check_op(lambda A: M.power(A, 2), lambda x: x ** 2, a, device=device)
    check_op(lambda A: M.power(2, A), lambda x: 2.0 ** x, a, device=device)
    # a negative base to a non-integer power is NaN (real results only)
    check_op(lambda A: M.power(A, 0.5), lambda x: np.full_like(x, np.nan), -a, device=device)


def test_uplus_uminus(device):
    a = rnd(2, 3, 2)
    out = check_op(M.uplus, lambda x: x, a, device=device)
    check_op(M.uminus, np.negative, a, device=device)
    check_op(M.uminus, np.negative, np.array([[1, -2, 3]], np.int32), device=device, klass="int32")
    check_op(M.uplus, lambda x: x, np.array([[True, False]]), device=device)  # logical -> single
    A = mat(a, device)
    assert M.uplus(A) is not A and out is not None


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((1, 3), (3, 1)), ((3, 1), (1, 3)), ((2, 0), (0, 3))])
def test_mtimes(sa, sb, device):
    check_op(M.mtimes, np.matmul, rnd(*sa), rnd(*sb), device=device, rtol=1e-5, atol=1e-5)
    check_op(operator.matmul, np.matmul, rnd(*sa), rnd(*sb), device=device, rtol=1e-5, atol=1e-5)


def test_mtimes_scalar_and_klass(device):
    check_op(M.mtimes, np.multiply, rnd(1, 1), rnd(3, 2), device=device)
    a = np.array([[1, 2], [3, 4]], np.int32)
    check_op(M.mtimes, np.matmul, a, a, device=device, klass="int32")
    big = np.array([[65536]], np.int32)
    check_op(M.mtimes, lambda x, y: np.zeros((1, 1)), big, big, device=device, klass="int32")  # 2**32 wraps
    check_op(M.mtimes, np.matmul, np.array([[1, 2]], np.uint8), rnd(2, 2), device=device)


def test_mtimes_errors(device):
    with pytest.raises(ValueError, match=r"3x4.*3x4"):
        M.mtimes(mat(rnd(3, 4), device), mat(rnd(3, 4), device))
    with pytest.raises(ValueError, match="2x2x2"):
        M.mtimes(mat(rnd(2, 2, 2), device), mat(rnd(2, 2), device))


@pytest.mark.parametrize("sa,sb", [((3, 2), (4, 2)), ((2, 3, 4), (2, 3, 5)), ((3, 1), (2, 4, 2))])
def test_expansion_mismatch_names_both_sizes(sa, sb, device):
    A, B = mat(rnd(*sa), device), mat(rnd(*sb), device)
    a_txt, b_txt = "x".join(map(str, A.shape)), "x".join(map(str, B.shape))
    for f in (M.plus, M.times, M.eq, M.max, M.and_, operator.add, operator.lt):
        with pytest.raises(ValueError) as info:
            f(A, B)
        assert a_txt in str(info.value) and b_txt in str(info.value), str(info.value)


UNARY_FLOAT = [
    ("exp", M.exp, np.exp, (-3, 3)), ("log", M.log, np.log, (0.1, 5)), ("sqrt", M.sqrt, np.sqrt, (0, 5)),
    ("sin", M.sin, np.sin, (-4, 4)), ("cos", M.cos, np.cos, (-4, 4)), ("tan", M.tan, np.tan, (-1.2, 1.2)),
    ("tanh", M.tanh, np.tanh, (-4, 4)), ("asin", M.asin, np.arcsin, (-1, 1)),
    ("acos", M.acos, np.arccos, (-1, 1)), ("atan", M.atan, np.arctan, (-5, 5)),
    ("sinh", M.sinh, np.sinh, (-3, 3)), ("cosh", M.cosh, np.cosh, (-3, 3)),
    ("log2", M.log2, np.log2, (0.1, 5)), ("log10", M.log10, np.log10, (0.1, 5)),
    ("log1p", M.log1p, np.log1p, (-0.9, 5)), ("expm1", M.expm1, np.expm1, (-3, 3)),
    ("sigmoid", M.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-30, 30)),
]


@pytest.mark.parametrize("name,ours,ref,rng", UNARY_FLOAT, ids=[u[0] for u in UNARY_FLOAT])
def test_unary_float(name, ours, ref, rng, device):
    check_op(ours, ref, rnd(3, 4, 2, lo=rng[0], hi=rng[1]), device=device, rtol=2e-6, atol=1e-6)
    # integer and logical inputs give single
    check_op(ours, ref, np.array([[1, 0]], np.int32) if name not in ("log", "log2", "log10") else
             np.array([[1, 2]], np.int32), device=device, rtol=2e-6, atol=1e-6)


def test_unary_float_specials(device):
    x = np.array([[0, -1, np.inf, -np.inf, np.nan]], np.float32)
    with np.errstate(all="ignore"):
        for ours, ref in ((M.log, np.log), (M.sqrt, np.sqrt), (M.exp, np.exp), (M.sigmoid, None)):
            if ref is None:
                ref = lambda v: np.where(np.isnan(v), np.nan, 1 / (1 + np.exp(-v)))  # noqa: E731
            check_op(ours, ref, x, device=device)


def test_round_half_away_and_fix(device):
    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6, 0.49999997, np.nan, np.inf]], np.float32)
    away = np.array([[-3, -2, -1, 1, 2, 3, 2, -3, 0, np.nan, np.inf]])
    check_op(M.round, lambda v: away, x, device=device)
    check_op(M.fix, np.trunc, x, device=device)
    check_op(M.floor, np.floor, x, device=device)
    check_op(M.ceil, np.ceil, x, device=device)
    check_op(M.abs, np.abs, x, device=device)
    check_op(M.sign, np.sign, x, device=device)
    assert M.round(mat(x, device)).get(3) == -1.0  # not -0.0's "round half to even" 0


@pytest.mark.parametrize("klass,dtype", [("int32", np.int32), ("uint8", np.uint8)])
@pytest.mark.parametrize("name", ["abs", "sign", "floor", "ceil", "fix", "round"])
def test_unary_keep_integer_klass(klass, dtype, name, device):
    vals = np.array([[0, 1, 7, 100, 255]] if dtype is np.uint8 else [[0, -3, 7, -100, 2147483647]], dtype)
    ref = {"abs": np.abs, "sign": np.sign}.get(name, lambda v: v)
    check_op(getattr(M, name), ref, vals, device=device, klass=klass)


def test_unary_on_logical_gives_single(device):
    check_op(M.abs, lambda v: v, np.array([[True, False]]), device=device)
    check_op(M.exp, np.exp, np.array([[True, False]]), device=device)


def test_abs_int32_min_wraps(device):
    check_op(M.abs, lambda v: v, np.array([[-2147483648]], np.int32), device=device, klass="int32")


def test_elementwise_max_min_ignore_nan(device):
    a = np.array([[1, np.nan, np.nan, -np.inf, 3]], np.float32)
    b = np.array([[2, 5, np.nan, 0, np.inf]], np.float32)
    check_op(M.max, np.fmax, a, b, device=device)
    check_op(M.min, np.fmin, a, b, device=device)
    check_op(lambda A: M.max(A, 2), lambda v: np.fmax(v, 2), a, device=device)
    check_op(lambda A: M.min(0, A), lambda v: np.fmin(0, v), a, device=device)
    check_op(M.max, expand_ref(np.fmax), rnd(3, 1), rnd(1, 4), device=device)
    check_op(M.min, expand_ref(np.fmin), np.array([[1, 200]], np.uint8), np.array([[3], [250]], np.uint8),
             device=device, klass="uint8")
    with pytest.raises(ValueError, match="two outputs"):
        M.max(mat(a, device), mat(b, device), nargout=2)


def test_mod_rem_atan2(device):
    a = np.array([[5, -5, 5, -5, 5.5, 0, 3]], np.float32)
    b = np.array([[3, 3, -3, -3, 2, 3, 0]], np.float32)
    check_op(M.mod, lambda x, y: np.where(y == 0, x, np.mod(x, np.where(y == 0, 1, y))), a, b, device=device)
    check_op(M.rem, lambda x, y: np.where(y == 0, np.nan, np.fmod(x, np.where(y == 0, 1, y))), a, b, device=device)
    check_op(M.atan2, np.arctan2, rnd(3, 4), rnd(3, 4), device=device)
    check_op(operator.mod, lambda x, y: np.mod(x, y), rnd(2, 3, lo=0, hi=5), 1.5, device=device)


def test_predicates_isnan_isinf_isfinite(device):
    x = np.array([[0, np.nan, np.inf, -np.inf, 1]], np.float32)
    check_op(M.isnan, np.isnan, x, device=device, klass="logical")
    check_op(M.isinf, np.isinf, x, device=device, klass="logical")
    check_op(M.isfinite, np.isfinite, x, device=device, klass="logical")
    check_op(M.isnan, lambda v: np.zeros_like(v), np.array([[1, 2]], np.int32), device=device, klass="logical")


CMP = [("eq", M.eq, np.equal, operator.eq), ("ne", M.ne, np.not_equal, operator.ne),
       ("lt", M.lt, np.less, operator.lt), ("le", M.le, np.less_equal, operator.le),
       ("gt", M.gt, np.greater, operator.gt), ("ge", M.ge, np.greater_equal, operator.ge)]


@pytest.mark.parametrize("name,ours,ref,op", CMP, ids=[c[0] for c in CMP])
def test_comparisons(name, ours, ref, op, device):
    a = np.array([[1, 2, 3, np.nan], [0, -1, 5, 2]], np.float32)
    b = np.array([[1, 3, 2, np.nan]], np.float32)
    check_op(ours, expand_ref(ref), a, b, device=device, klass="logical")
    check_op(op, expand_ref(ref), a, b, device=device, klass="logical")
    check_op(lambda A: op(A, 2), lambda x: ref(x, 2), a, device=device, klass="logical")
    check_op(lambda A: op(2, A), lambda x: ref(2, x), a, device=device, klass="logical")
    i = np.array([[1, 255, 0]], np.uint8)
    check_op(ours, expand_ref(ref), i, np.array([[1], [-1], [300]], np.int32), device=device, klass="logical")


LOGIC = [("and", M.and_, np.logical_and, operator.and_), ("or", M.or_, np.logical_or, operator.or_),
         ("xor", M.xor, np.logical_xor, operator.xor)]


@pytest.mark.parametrize("name,ours,ref,op", LOGIC, ids=[c[0] for c in LOGIC])
def test_logical_ops(name, ours, ref, op, device):
    a = np.array([[0, 1, 2, 0], [-1, 0, 3, 0.5]], np.float32)
    b = np.array([[1, 0, 1, 0]], np.float32)
    check_op(ours, expand_ref(ref), a, b, device=device, klass="logical")
    check_op(op, expand_ref(ref), a, b, device=device, klass="logical")
    check_op(ours, expand_ref(ref), np.array([[True, False]]), np.array([[True], [False]]), device=device,
             klass="logical")


def test_not(device):
    a = np.array([[0, 1, -2, 0.5]], np.float32)
    check_op(M.not_, np.logical_not, a, device=device, klass="logical")
    check_op(operator.invert, np.logical_not, a, device=device, klass="logical")
    check_op(operator.invert, np.logical_not, np.array([[True, False]]), device=device, klass="logical")
    check_op(M.not_, np.logical_not, np.array([[0, 7]], np.uint8), device=device, klass="logical")


def test_python_operators(device):
    a, b = rnd(2, 3), rnd(2, 3, lo=0.5, hi=2)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv):
        check_op(op, op, a, b, device=device)
        check_op(lambda A, op=op: op(A, 3), lambda x, op=op: op(x, 3), a, device=device)
        check_op(lambda A, op=op: op(3, A), lambda x, op=op: op(3, x), b, device=device)
    check_op(lambda A: A ** 2, lambda x: x ** 2, a, device=device)
    check_op(lambda A: 2 ** A, lambda x: 2.0 ** x, a, device=device)
    check_op(operator.pow, np.power, b, a, device=device, rtol=2e-6)
    check_op(operator.neg, np.negative, a, device=device)
    check_op(operator.pos, lambda x: x, a, device=device)
    check_op(operator.abs, np.abs, a, device=device)
    # numpy arrays on the left defer to the Matrix
    A = mat(a, device)
    out = np.float32(2) * A
    assert isinstance(out, M.Matrix) and out.klass == "single"
    assert isinstance(a + A, M.Matrix)


def test_lists_as_operands(device):
    A = mat(rnd(2, 3), device)
    out = A + [1, 2, 3]  # a list is a row, as MATLAB's [1 2 3]
    np.testing.assert_allclose(to_numpy(out), to_numpy(A) + np.array([[1, 2, 3]], np.float32))


def test_isequal(device):
    A = mat(np.array([[1, 2], [3, 4]], np.float32), device)
    assert M.isequal(A, A.copy())
    assert M.isequal(A, M.cast(A, "int32"))  # values, not klasses
    assert M.isequal(A, A, A)
    assert not M.isequal(A, A.T)
    assert not M.isequal(A, M.reshape(A, 1, 4))  # same values, other size
    assert not M.isequal(A, A + 1e-3)
    N = mat(np.array([[np.nan]], np.float32), device)
    assert not M.isequal(N, N)  # NaN is not equal to NaN
    assert M.isequal(M.zeros(0, 3, device=device), M.ones(0, 3, device=device))
    assert not M.isequal(M.zeros(0, 3, device=device), M.zeros(3, 0, device=device))
    with pytest.raises(TypeError):
        M.isequal(A)


def test_isclose_allclose(device):
    a = np.array([[1, 1, np.inf, np.nan, 0, 100]], np.float32)
    b = np.array([[1 + 1e-6, 1.1, np.inf, np.nan, 1e-9, 100.0001]], np.float32)
    check_op(M.isclose, lambda x, y: np.isclose(x, y, rtol=1e-5, atol=1e-8), a, b, device=device, klass="logical")
    check_op(lambda x, y: M.isclose(x, y, equal_nan=True),
             lambda x, y: np.isclose(x, y, rtol=1e-5, atol=1e-8, equal_nan=True), a, b, device=device,
             klass="logical")
    check_op(lambda x, y: M.isclose(x, y, rtol=0.2, atol=0), lambda x, y: np.isclose(x, y, rtol=0.2, atol=0),
             a, b, device=device, klass="logical")
    A, B = mat(a, device), mat(b, device)
    assert not M.allclose(A, B)
    assert M.allclose(A, B, rtol=0.2, equal_nan=True)
    assert M.allclose(mat(rnd(3, 1), device) * 0 + 1, M.ones(1, 4, device=device))  # with expansion
    with pytest.raises(ValueError, match="3x2"):
        M.allclose(M.ones(3, 2, device=device), M.ones(4, 2, device=device))


def test_results_are_new_matrices(device):
    A = mat(rnd(2, 2), device)
    for out in (A + 0, A * 1, M.abs(A), M.uplus(A), M.max(A, A)):
        out.set(1, 1, 99.0)
        assert A.get(1, 1) != 99.0


def test_number_only_operands_give_single():
    assert M.plus(2, 3).klass == "single" and M.plus(2, 3).shape == (1, 1)
    assert M.uminus(3).klass == "single"
    assert M.abs(-3).klass == "single" and M.abs(-3).item() == 3.0
    assert M.eq(2, 2).klass == "logical" and M.eq(2, 2).item() is True


def test_klass_of_mixed_expression(device):
    i = mat(np.array([[1, 2]], np.int32), device)
    u = mat(np.array([[1, 2]], np.uint8), device)
    t = mat(np.array([[True, False]]), device)
    s = mat(np.array([[0.5, 1.5]], np.float32), device)
    assert (i + u).klass == "int32" and (u + t).klass == "uint8" and (t * t).klass == "single"
    assert (i * s).klass == "single" and (u - 0.5).klass == "uint8" and (t - 1).klass == "single"
    assert_matrix(u - 3, np.array([[254, 255]]), klass="uint8", device=device)
    assert_matrix(i / 2, np.array([[0, 1]]), klass="int32", device=device)  # 0.5 -> 0, 1
