"""Elementwise arithmetic, math functions, comparisons and logic with MATLAB names.

Binary functions accept matrices and numbers, with implicit expansion of singleton
dimensions (MATLAB R2016b); klass rules are the original library's (see klass.py).

Example:
    >>> import sukiyaki.matrix as M
    >>> M.plus(M.array([[1], [2]]), M.array([10, 20])).shape
    (2, 2)
"""

import numpy as np

from sukiyaki.matrix import klass as K
from sukiyaki.matrix.creation import cast
from sukiyaki.matrix.matrix import Matrix, arith, as_matrix, compare, logical_op, same_device, size_str


def plus(A, B):
    """A + B."""
    return arith("add", A, B)


def minus(A, B):
    """A - B."""
    return arith("sub", A, B)


def times(A, B):
    """Elementwise A .* B."""
    return arith("mul", A, B)


def rdivide(A, B):
    """Elementwise A ./ B."""
    return arith("div", A, B)


def ldivide(A, B):
    """Elementwise A .\\ B, that is B ./ A."""
    return arith("div", B, A)


def power(A, B):
    """Elementwise A .^ B."""
    return arith("pow", A, B)


def mod(A, B):
    """Remainder after division with the sign of B (MATLAB mod; mod(x, 0) = x)."""
    return arith("mod", A, B)


def rem(A, B):
    """Remainder after division with the sign of A (MATLAB rem)."""
    return arith("rem", A, B)


def atan2(A, B):
    """Four-quadrant arctangent."""
    return arith("atan2", A, B)


def _elementwise_max_min(op, A, B):
    return arith(op, A, B)


def uplus(A):
    """+A (a copy)."""
    A = as_matrix(A)
    return A.copy() if A.klass != "logical" else arith("add", A, 0)


def uminus(A):
    """-A (logical gives single; integers wrap)."""
    return arith("sub", 0, as_matrix(A))


def mtimes(A, B):
    """Matrix product A * B (a scalar operand multiplies elementwise)."""
    if type(A) is Matrix and type(B) is Matrix and A._klass == "single" == B._klass and A._backend is B._backend:
        sa, sb = A._data.shape, B._data.shape
        if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0] and sa != (1, 1) and sb != (1, 1):
            return Matrix(A._backend.matmul(A._data, B._data), "single", A._backend)  # fast path
    A = as_matrix(A)
    B = as_matrix(B)
    if A.numel == 1 or B.numel == 1:
        return arith("mul", A, B)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"mtimes: operands must be 2-d, got {size_str(A.shape)} and {size_str(B.shape)}")
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"mtimes: inner dimensions must agree, got {size_str(A.shape)} and {size_str(B.shape)}"
        )
    if A._backend is not B._backend:
        A, B = same_device(A, B)
    be = A._backend
    k = K.arith_klass((A.klass, B.klass))
    if k == "single":
        f32 = K.dtype_of("single")
        r = be.matmul(be.astype(A._data, f32), be.astype(B._data, f32))
    else:
        f64 = np.dtype(np.float64)
        r = be.cast_wrap(be.matmul(be.astype(A._data, f64), be.astype(B._data, f64)), K.dtype_of(k))
    return Matrix(r, k, be)


def _unary_float(op):
    def f(A):
        A = as_matrix(A)
        be = A._backend
        x = A._data if A.klass == "single" else be.astype(A._data, K.dtype_of("single"))
        return Matrix(be.unary[op](x), "single", be)

    f.__name__ = op
    f.__doc__ = f"Elementwise {op} (result single)."
    return f


def _unary_keep(op):
    def f(A):
        A = as_matrix(A)
        be = A._backend
        if A.klass == "logical":
            return Matrix(be.unary[op](be.astype(A._data, K.dtype_of("single"))), "single", be)
        if A.klass == "uint8" and op in ("abs", "floor", "ceil", "fix", "round"):
            return A.copy()
        if A.klass in ("int32", "uint8"):
            r = be.unary[op](A._data)
            return Matrix(be.cast_wrap(r, K.dtype_of(A.klass)), A.klass, be)
        return Matrix(be.unary[op](A._data), A.klass, be)

    f.__name__ = op
    f.__doc__ = f"Elementwise {op} (klass kept; logical gives single)."
    return f


def _unary_logical(op):
    def f(A):
        A = as_matrix(A)
        return Matrix(A._backend.unary[op](A._data), "logical", A._backend)

    f.__name__ = op
    f.__doc__ = f"Elementwise {op} (result logical)."
    return f


exp = _unary_float("exp")
expm1 = _unary_float("expm1")
log = _unary_float("log")
log1p = _unary_float("log1p")
log2 = _unary_float("log2")
log10 = _unary_float("log10")
sqrt = _unary_float("sqrt")
sin = _unary_float("sin")
cos = _unary_float("cos")
tan = _unary_float("tan")
asin = _unary_float("asin")
acos = _unary_float("acos")
atan = _unary_float("atan")
sinh = _unary_float("sinh")
cosh = _unary_float("cosh")
tanh = _unary_float("tanh")
sigmoid = _unary_float("sigmoid")
abs = _unary_keep("abs")  # noqa: A001 (MATLAB name)
sign = _unary_keep("sign")
floor = _unary_keep("floor")
ceil = _unary_keep("ceil")
fix = _unary_keep("fix")
round = _unary_keep("round")  # noqa: A001 (MATLAB name)
isnan = _unary_logical("isnan")
isinf = _unary_logical("isinf")
isfinite = _unary_logical("isfinite")


def eq(A, B):
    """A == B (logical)."""
    return compare("eq", A, B)


def ne(A, B):
    """A ~= B (logical)."""
    return compare("ne", A, B)


def lt(A, B):
    """A < B (logical)."""
    return compare("lt", A, B)


def le(A, B):
    """A <= B (logical)."""
    return compare("le", A, B)


def gt(A, B):
    """A > B (logical)."""
    return compare("gt", A, B)


def ge(A, B):
    """A >= B (logical)."""
    return compare("ge", A, B)


def and_(A, B):
    """Elementwise logical and (MATLAB and)."""
    return logical_op("and", A, B)


def or_(A, B):
    """Elementwise logical or (MATLAB or)."""
    return logical_op("or", A, B)


def xor(A, B):
    """Elementwise logical exclusive or."""
    return logical_op("xor", A, B)


def not_(A):
    """Elementwise logical not (MATLAB not)."""
    return logical_op("not", A)


def isequal(*mats):
    """True when all arguments have the same size and values (NaN is not equal to NaN)."""
    if len(mats) < 2:
        raise TypeError("isequal needs at least two arguments")
    first = as_matrix(mats[0])
    for other in mats[1:]:
        other = as_matrix(other)
        if first.shape != other.shape:
            return False
        if first.numel and not bool(np.all(np.asarray(compare("eq", first, other)))):
            return False
    return True


def isclose(A, B, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Elementwise |A - B| <= atol + rtol * |B| (logical), with implicit expansion."""
    A = as_matrix(A)
    B = as_matrix(B)
    diff = abs(minus(cast_single(A), cast_single(B)))
    ok = le(diff, plus(atol, times(rtol, abs(cast_single(B)))))
    ok = or_(ok, eq(cast_single(A), cast_single(B)))  # equal infinities
    if equal_nan:
        ok = or_(ok, and_(isnan(A), isnan(B)))
    return ok


def allclose(A, B, rtol=1e-5, atol=1e-8, equal_nan=False):
    """True when sizes are compatible and every element is close (see isclose)."""
    return bool(np.all(np.asarray(isclose(A, B, rtol, atol, equal_nan))))


def cast_single(A):
    """A as single (no copy if already single)."""
    if A.klass == "single":
        return A
    return cast(A, "single")
