"""Size queries, predicates and shape functions, against numpy (column-major, MATLAB sizes);
with hypothesis properties for permute/ipermute, reshape order and sums over dims."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, check_op, mat, matlab_shape, to_numpy

RNG = np.random.default_rng(7)
X3 = RNG.uniform(-1, 1, size=(2, 3, 4)).astype(np.float32)
FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_size_numel_ndims_length(device):
    A = mat(X3, device)
    assert M.size(A) == (2, 3, 4) and A.shape == (2, 3, 4)
    assert [M.size(A, d) for d in (1, 2, 3, 4, 7)] == [2, 3, 4, 1, 1]
    assert M.numel(A) == 24 and A.numel == 24
    assert M.ndims(A) == 3 and A.ndim == 3
    assert M.length(A) == 4
    assert M.length(M.zeros(3, 0, device=device)) == 0
    assert M.ndims(M.zeros(3, 1, 1, 1, device=device)) == 2  # trailing singletons dropped
    assert M.size(M.zeros(2, 1, 3, 1, device=device)) == (2, 1, 3)
    assert len(A) == 2
    with pytest.raises(ValueError, match="got 0"):
        M.size(A, 0)


@pytest.mark.parametrize("shape,row,col,vec,scalar,empty,matrix", [
    ((1, 5), True, False, True, False, False, True),
    ((5, 1), False, True, True, False, False, True),
    ((1, 1), True, True, True, True, False, True),
    ((2, 3), False, False, False, False, False, True),
    ((0, 0), False, False, False, False, True, True),
    ((1, 0), True, False, True, False, True, True),
    ((2, 3, 4), False, False, False, False, False, False),
    ((1, 1, 3), False, False, False, False, False, False),
])
def test_predicates(shape, row, col, vec, scalar, empty, matrix, device):
    A = M.zeros(*shape, device=device)
    assert (M.isrow(A), M.iscolumn(A), M.isvector(A), M.isscalar(A), M.isempty(A), M.ismatrix(A)) == \
        (row, col, vec, scalar, empty, matrix)


@pytest.mark.parametrize("shape", [(4, 6), (24, 1), (1, 24), (2, 3, 4), (3, 2, 2, 2), (6, -1), (-1, 2, 3),
                                   (2, None, 2)])
def test_reshape_column_major(shape, device):
    want = [24 // -np.prod([s for s in shape if s not in (-1, None)]) * -1 if s in (-1, None) else s for s in shape]
    check_op(lambda A: M.reshape(A, *shape), lambda x: x.reshape(want, order="F"), X3, device=device)
    check_op(lambda A: M.reshape(A, list(shape)), lambda x: x.reshape(want, order="F"), X3, device=device)


def test_reshape_errors_name_the_numbers(device):
    A = mat(X3, device)
    with pytest.raises(ValueError, match=r"24 elements.*5x5"):
        M.reshape(A, 5, 5)
    with pytest.raises(ValueError, match=r"24 elements.*5"):
        M.reshape(A, -1, 5)
    with pytest.raises(ValueError, match="only one size may be -1"):
        M.reshape(A, -1, -1)
    with pytest.raises(TypeError, match="2.5"):
        M.reshape(A, 2.5, 2)


def test_reshape_does_not_share_memory(device):
    A = mat(X3, device)
    B = M.reshape(A, 6, 4)
    B.set(1, 1, 42.0)
    assert A.get(1) != 42.0
    C = M.squeeze(M.reshape(A, 1, 24))
    C.set(1, 7.0)
    assert A.get(1) != 7.0


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 3, 1, 2), (2, 3), (1, 1, 1, 5), (2, 1, 3)])
def test_squeeze(shape, device):
    x = RNG.uniform(size=shape).astype(np.float32)

    def ref(v):
        if v.ndim <= 2:
            return v
        s = [d for d in v.shape if d != 1]
        return v.reshape(s + [1] * (2 - len(s)), order="F")

    check_op(M.squeeze, ref, x, device=device)


def test_transpose(device):
    x = RNG.uniform(size=(3, 5)).astype(np.float32)
    check_op(M.transpose, np.transpose, x, device=device)
    check_op(M.t, np.transpose, x, device=device)
    check_op(lambda A: A.T, np.transpose, x, device=device)
    check_op(M.transpose, np.transpose, np.array([[1, 2, 3]], np.uint8), device=device, klass="uint8")
    with pytest.raises(ValueError, match="2x3x4"):
        M.transpose(mat(X3, device))


@pytest.mark.parametrize("order", [[1, 2, 3], [3, 1, 2], [2, 3, 1], [3, 2, 1], [1, 2, 3, 4], [4, 1, 2, 3]])
def test_permute_ipermute(order, device):
    ref = lambda v: np.transpose(v.reshape(v.shape + (1,) * (len(order) - v.ndim)), [o - 1 for o in order])  # noqa
    check_op(lambda A: M.permute(A, order), ref, X3, device=device)
    check_op(lambda A: M.ipermute(M.permute(A, order), order), lambda v: v, X3, device=device)


def test_permute_errors(device):
    A = mat(X3, device)
    for bad in ([1, 2], [1, 1, 2], [0, 1, 2], [1, 2, 4]):
        with pytest.raises(ValueError, match="permute"):
            M.permute(A, bad)


@pytest.mark.parametrize("reps", [(2,), (2, 3), (1, 1, 2), ([2, 1],), (3, 1, 1, 2)])
def test_repmat(reps, device):
    x = RNG.uniform(size=(2, 3)).astype(np.float32)
    r = list(reps[0]) if isinstance(reps[0], list) else list(reps)
    r = r * 2 if len(r) == 1 else r

    def ref(v):
        v = v.reshape(v.shape + (1,) * (len(r) - v.ndim))
        return np.tile(v, r)

    check_op(lambda A: M.repmat(A, *reps), ref, x, device=device)
    check_op(lambda A: M.repmat(A, *reps), ref, x.astype(np.int32), device=device, klass="int32")


def test_cat(device):
    a = RNG.uniform(size=(2, 3)).astype(np.float32)
    b = RNG.uniform(size=(2, 3)).astype(np.float32)
    check_op(M.horzcat, lambda x, y: np.concatenate([x, y], 1), a, b, device=device)
    check_op(M.vertcat, lambda x, y: np.concatenate([x, y], 0), a, b, device=device)
    check_op(lambda x, y: M.cat(3, x, y), lambda x, y: np.stack([x, y], 2), a, b, device=device)
    check_op(lambda x, y: M.cat(4, x, y), lambda x, y: np.stack([x, y], 2)[:, :, None, :], a, b, device=device)
    check_op(lambda x, y: M.cat(2, [x, y, x]), lambda x, y: np.concatenate([x, y, x], 1), a, b, device=device)
    # 0x0 operands are skipped, as MATLAB's []
    check_op(lambda x: M.horzcat(M.zeros(0, 0, device=device), x), lambda x: x, a, device=device)
    # klass promotion: highest klass of the operands
    out = M.vertcat(mat(np.array([[1, 2]], np.uint8), device), mat(np.array([[300, -1]], np.int32), device))
    assert_matrix(out, np.array([[1, 2], [300, -1]]), klass="int32", device=device)
    # plain numbers do not vote (as in arithmetic), except that beside logical they give single
    i32 = mat(np.array([[1]], np.int32), device)
    assert_matrix(M.horzcat(i32, 5, 2.5), np.array([[1, 5, 2]]), klass="int32", device=device)
    assert_matrix(M.horzcat(mat(np.array([[250]], np.uint8), device), 300), np.array([[250, 44]]), klass="uint8")
    assert M.horzcat(mat(np.array([[True]]), device), 3).klass == "single"
    assert M.horzcat(mat(np.array([[True]]), device), False).klass == "logical"
    assert M.horzcat(1, 2).klass == "single"
    with pytest.raises(ValueError, match=r"2x3 and 2x4"):
        M.vertcat(M.ones(2, 3, device=device), M.ones(2, 4, device=device))
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        M.cat(0, M.ones(2, 3, device=device))


# --- properties ------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


@FAST
@given(shape=shapes, data=st.data())
def test_property_permute_roundtrip(shape, data, device):
    n = len(shape) + data.draw(st.integers(0, 1))
    order = data.draw(st.permutations(list(range(1, n + 1))))
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    A = M.array(x, device=device)
    P = M.permute(A, order)
    assert P.shape == matlab_shape(np.transpose(x.reshape(x.shape + (1,) * (n - x.ndim)), [o - 1 for o in order]).shape)
    assert M.isequal(M.ipermute(P, order), A)


@FAST
@given(shape=shapes, data=st.data())
def test_property_reshape_column_major(shape, data, device):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape, order="F")
    new = list(data.draw(st.permutations(list(shape))))
    if data.draw(st.booleans()):
        new[data.draw(st.integers(0, len(new) - 1))] = -1
    out = to_numpy(M.reshape(M.array(x, device=device), new))
    want = x.reshape([int(np.prod(shape)) // -int(np.prod(new)) * -1 if s == -1 else s for s in new], order="F")
    assert out.shape == matlab_shape(want.shape)
    np.testing.assert_array_equal(out.reshape(-1, order="F"), x.reshape(-1, order="F"))
    np.testing.assert_array_equal(out, want.reshape(out.shape, order="F"))


@FAST
@given(shape=shapes, dim=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_property_sum_over_dims(shape, dim, seed, device):
    x = np.random.default_rng(seed).integers(-50, 50, size=shape).astype(np.float32)
    want = x if dim > x.ndim else np.sum(x, axis=dim - 1, keepdims=True)
    out = M.sum(M.array(x, device=device), dim)
    assert out.shape == matlab_shape(want.shape) and out.klass == "single"
    np.testing.assert_array_equal(to_numpy(out), want.reshape(out.shape))
    total = M.array(x, device=device)
    for d in range(1, len(shape) + 1):
        total = M.sum(total, d)
    assert total.shape == (1, 1) and total.item() == float(x.sum())
