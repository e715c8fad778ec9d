"""Reductions with MATLAB conventions (default dim, dim beyond ndims, 1-based indices), against numpy."""

import numpy as np
import pytest

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, check_op, mat

RNG = np.random.default_rng(99)
X3 = RNG.uniform(-2, 2, size=(3, 4, 2)).astype(np.float32)


def along(f, dim):
    """Reference of a reduction along a 1-based dim (identity beyond ndims), keeping the axis."""

    def ref(x):
        if dim > x.ndim:
            return x
        with np.errstate(all="ignore"):
            return f(x, axis=dim - 1, keepdims=True)

    return ref


def first_nonsingleton(shape):
    return next((i + 1 for i, s in enumerate(shape) if s != 1), 1)


def ref_argext(x, dim, op):
    """(values, 1-based indices) of max/min along dim: NaN ignored unless all NaN, first of ties."""
    if dim > x.ndim:
        return x, np.ones(x.shape)
    xm = np.moveaxis(x, dim - 1, -1)
    flat = xm.reshape(-1, xm.shape[-1])
    vals, idx = np.empty(flat.shape[0]), np.empty(flat.shape[0])
    for r, row in enumerate(flat):
        ok = ~np.isnan(row)
        if not ok.any():
            vals[r], idx[r] = np.nan, 1
            continue
        best = (np.max if op == "max" else np.min)(row[ok])
        i = int(np.flatnonzero(ok & (row == best))[0])
        vals[r], idx[r] = row[i], i + 1
    shape = xm.shape[:-1] + (1,)
    return (np.moveaxis(vals.reshape(shape), -1, dim - 1), np.moveaxis(idx.reshape(shape), -1, dim - 1))


STATS = [("sum", M.sum, np.sum), ("prod", M.prod, np.prod), ("mean", M.mean, np.mean)]


@pytest.mark.parametrize("name,ours,ref", STATS, ids=[s[0] for s in STATS])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_stats_each_dim(name, ours, ref, dim, device):
    check_op(lambda A: ours(A, dim), along(ref, dim), X3, device=device, rtol=1e-5)


@pytest.mark.parametrize("name,ours,ref", STATS, ids=[s[0] for s in STATS])
@pytest.mark.parametrize("shape", [(3, 4), (1, 5), (5, 1), (1, 1, 3), (1, 1), (2, 3, 4)])
def test_stats_default_dim(name, ours, ref, shape, device):
    x = RNG.uniform(0.5, 1.5, size=shape).astype(np.float32)
    check_op(ours, along(ref, first_nonsingleton(shape)), x, device=device, rtol=1e-5)


@pytest.mark.parametrize("klass,dtype", [("int32", np.int32), ("uint8", np.uint8), ("logical", np.bool_)])
def test_stats_of_integers_give_single(klass, dtype, device):
    x = np.array([[200, 100, 1], [250, 0, 3]]).astype(dtype)
    for ours, ref in ((M.sum, np.sum), (M.prod, np.prod), (M.mean, np.mean)):
        check_op(ours, along(ref, 1), x, device=device)
        check_op(lambda A, ours=ours: ours(A, 2), along(ref, 2), x, device=device)
    big = np.array([[2147483647, 2147483647]], np.int32)
    check_op(M.sum, along(np.sum, 2), big, device=device)  # no int32 wrap-around in sums


def test_empty_reductions(device):
    E = M.zeros(0, 0, device=device)
    assert_matrix(M.sum(E), np.zeros((1, 1)), device=device)
    assert_matrix(M.prod(E), np.ones((1, 1)), device=device)
    assert_matrix(M.mean(E), np.full((1, 1), np.nan), device=device)
    assert_matrix(M.max(E), np.zeros((0, 0)), device=device)
    assert_matrix(M.any(E), np.zeros((1, 1)), klass="logical", device=device)
    assert_matrix(M.all(E), np.ones((1, 1)), klass="logical", device=device)
    Z = M.zeros(0, 3, device=device)
    assert_matrix(M.sum(Z), np.zeros((1, 3)), device=device)
    assert_matrix(M.sum(Z, 2), np.zeros((0, 1)), device=device)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_max_min_two_outputs(op, dim, device):
    x = X3.copy()
    x[0, 1, 0] = np.nan
    x[:, 2, 1] = np.nan            # a column of NaN: value NaN, index 1
    x[1, 0, :] = x[0, 0, :]        # ties: the first wins
    ours = getattr(M, op)
    check_op(lambda A: ours(A, None, dim, nargout=2), lambda v: ref_argext(v, dim, op), x,
             device=device, klass=("single", "int32"))
    check_op(lambda A: ours(A, [], dim), lambda v: ref_argext(v, dim, op)[0], x, device=device)
    argf = M.argmax if op == "max" else M.argmin
    check_op(lambda A: argf(A, dim), lambda v: ref_argext(v, dim, op)[1], x, device=device, klass="int32")


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_default_dim_and_klass(op, device):
    ours = getattr(M, op)
    row = np.array([[3, 9, 9, 1]], np.int32)
    check_op(lambda A: ours(A, nargout=2), lambda v: ref_argext(v, 2, op), row, device=device,
             klass=("int32", "int32"))
    u = np.array([[3, 250], [7, 1]], np.uint8)
    check_op(ours, lambda v: ref_argext(v, 1, op)[0], u, device=device, klass="uint8")
    b = np.array([[True, False], [False, False]])
    check_op(ours, lambda v: ref_argext(v, 1, op)[0], b, device=device, klass="logical")
    allnan = np.full((3, 2), np.nan, np.float32)
    check_op(lambda A: ours(A, nargout=2), lambda v: ref_argext(v, 1, op), allnan, device=device,
             klass=("single", "int32"))
    inf = np.array([[np.nan], [-np.inf if op == "max" else np.inf], [np.nan]], np.float32)
    check_op(lambda A: ours(A, nargout=2), lambda v: ref_argext(v, 1, op), inf, device=device,
             klass=("single", "int32"))


def test_max_doc_example(device):
    v, i = M.max(mat(np.array([[3, 9, 9]], np.float32), device), nargout=2)
    assert (v.item(), i.item()) == (9.0, 2)


@pytest.mark.parametrize("w", [0, 1])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_variance_std(w, dim, device):
    def ref_var(x, axis, keepdims):
        n = x.shape[axis]
        return np.var(x, axis=axis, keepdims=keepdims, ddof=0 if (w == 1 or n == 1) else 1)

    if dim > X3.ndim:
        refv = lambda x: np.zeros_like(x)  # noqa: E731
    else:
        refv = along(ref_var, dim)
    check_op(lambda A: M.variance(A, w, dim), refv, X3, device=device, rtol=1e-5, atol=1e-6)
    check_op(lambda A: M.std(A, w, dim), lambda x: np.sqrt(refv(x)), X3, device=device, rtol=1e-5, atol=1e-6)


def test_variance_default_and_single_sample(device):
    x = np.array([[1, 2, 3, 4]], np.float32)
    check_op(M.variance, lambda v: np.var(v, axis=1, keepdims=True, ddof=1), x, device=device)
    check_op(lambda A: M.variance(A, 1), lambda v: np.var(v, axis=1, keepdims=True), x, device=device)
    check_op(M.std, lambda v: np.std(v, axis=1, keepdims=True, ddof=1), x, device=device)
    check_op(M.variance, lambda v: np.zeros((1, 1)), np.array([[5]], np.float32), device=device)  # N=1 -> 0
    check_op(M.variance, lambda v: np.var(v, axis=0, keepdims=True, ddof=1), np.array([[1], [3]], np.uint8),
             device=device)
    with pytest.raises(ValueError, match="w must be 0 or 1, got 2"):
        M.variance(mat(x, device), 2)


@pytest.mark.parametrize("name,ours,ref", [("any", M.any, np.any), ("all", M.all, np.all)])
@pytest.mark.parametrize("dim", [None, 1, 2, 3, 4])
def test_any_all(name, ours, ref, dim, device):
    x = np.array([[[0, 1], [0, 0], [2, 3]], [[0, 0], [0, 5], [1, 1]]], np.float32).transpose(1, 2, 0)
    d = first_nonsingleton(x.shape) if dim is None else dim
    r = lambda v: along(ref, d)(v) != 0  # noqa: E731 (beyond ndims: the truth of each element)
    check_op(lambda A: ours(A, dim), r, x, device=device, klass="logical")
    check_op(lambda A: ours(A, dim), r, x.astype(np.int32), device=device, klass="logical")
    check_op(lambda A: ours(A, dim), r, x != 0, device=device, klass="logical")


@pytest.mark.parametrize("name,ours,ref", [("cumsum", M.cumsum, np.cumsum), ("cumprod", M.cumprod, np.cumprod)])
@pytest.mark.parametrize("dim", [None, 1, 2, 3, 4])
def test_cumulative(name, ours, ref, dim, device):
    d = first_nonsingleton(X3.shape) if dim is None else dim
    r = (lambda x: x) if d > X3.ndim else (lambda x: ref(x, axis=d - 1))
    check_op(lambda A: ours(A, dim), r, X3, device=device, rtol=1e-5, atol=1e-6)
    row = np.array([[1, 2, 3, 4]], np.int32)
    check_op(lambda A: ours(A), lambda x: ref(x, axis=1), row, device=device)  # row: along dim 2, single


@pytest.mark.parametrize("f", [M.sum, M.mean, M.prod, M.cumsum, M.any, M.max, M.variance])
@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_dim(f, bad, device):
    A = mat(X3, device)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        if f is M.max:
            f(A, None, bad)
        elif f is M.variance:
            f(A, 0, bad)
        else:
            f(A, bad)


def test_reduction_of_nan_and_inf(device):
    x = np.array([[1, np.nan, 3], [np.inf, -np.inf, 2]], np.float32)
    check_op(M.sum, along(np.sum, 1), x, device=device)
    check_op(lambda A: M.sum(A, 2), along(np.sum, 2), x, device=device)
    check_op(M.mean, along(np.mean, 1), x, device=device)
    check_op(lambda A: M.max(A, [], 2), along(np.nanmax, 2), x, device=device)


def test_any_all_count_nan_as_nonzero(device):
    """Documented choice: NaN is nonzero (MATLAB's any ignores NaN; its all counts it)."""
    x = np.array([[np.nan, 0]], np.float32)
    check_op(M.any, lambda v: np.array([[True]]), x, device=device, klass="logical")
    check_op(lambda A: M.all(A, 1), lambda v: np.array([[True, False]]), x, device=device, klass="logical")
