"""MATLAB indexing (get/set, END, colon, masks, find, sub2ind/ind2sub) and numpy-style A[...],
against numpy with column-major linear order; hypothesis round trips of get/set."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, mat, to_numpy

END, colon = M.END, M.colon
X = np.arange(1, 13, dtype=np.float32).reshape(3, 4, order="F")   # MATLAB reshape(1:12, 3, 4)
X3 = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4, order="F")
FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def flat(x):
    return x.reshape(-1, order="F")


GET_CASES = [
    # (subs, expected from numpy)
    ((5,), np.array([[5]])),
    ((2, 3), np.array([[X[1, 2]]])),
    ((END,), np.array([[12]])),
    ((END - 1, END), np.array([[X[1, 3]]])),
    ((":",), flat(X)[:, None]),
    ((2, ":"), X[1:2, :]),
    ((":", 2), X[:, 1:2]),
    ((colon(2, END), 1), X[1:, 0:1]),
    ((colon(END, -1, 1), 1), X[::-1, 0:1]),
    ((1, colon(1, 2, END)), X[0:1, 0::2]),
    (([1, 3], [2, 4]), X[np.ix_([0, 2], [1, 3])]),
    (([3, 1, 3],), np.array([[3, 1, 3]])),                     # a list is a row
    ((np.array([[2], [4]]),), np.array([[2], [4]])),          # a column of indices
    ((np.array([[1, 2], [3, 4]]),), np.array([[1, 2], [3, 4]])),  # index matrix shape kept
    ((colon(3, 2),), np.zeros((1, 0))),                         # empty range
    ((2, END * 0 + 3), np.array([[X[1, 2]]])),
]


@pytest.mark.parametrize("subs,want", GET_CASES, ids=[str(i) for i in range(len(GET_CASES))])
def test_get_2d(subs, want, device):
    A = mat(X, device)
    assert_matrix(A.get(*subs), want, device=device)


def test_get_nd_and_fewer_subscripts(device):
    A = mat(X3, device)
    assert A.get(2, 3, 4) == X3[1, 2, 3]
    assert_matrix(A.get(2, 5), np.array([[X3.reshape(2, 12, order="F")[1, 4]]]), device=device)  # last spans rest
    assert_matrix(A.get(":", ":", 2), X3[:, :, 1], device=device)
    assert_matrix(A.get(1, ":", ":"), X3[0:1, :, :], device=device)
    assert_matrix(A.get(1, ":"), X3.reshape(2, 12, order="F")[0:1, :], device=device)
    assert_matrix(A.get(2, 3, 4, 1), np.array([[X3[1, 2, 3]]]), device=device)  # extra trailing 1
    assert_matrix(A.get(END), np.array([[24]]), device=device)


def test_get_vector_orientation(device):
    row = mat(np.arange(1, 6, dtype=np.float32)[None, :], device)
    col = mat(np.arange(1, 6, dtype=np.float32)[:, None], device)
    assert row.get(np.array([[1], [2]])).shape == (1, 2)   # vector indexed by vector: keeps its orientation
    assert col.get([1, 2]).shape == (2, 1)
    assert mat(X, device).get([1, 2]).shape == (1, 2)      # a matrix takes the index's shape


def test_get_logical_masks(device):
    A = mat(X, device)
    mask = A > 6
    assert_matrix(A.get(mask), flat(X)[flat(X) > 6][:, None], device=device)
    assert_matrix(A.get(mask.get(":", 1), 1), np.zeros((0, 1)), device=device)
    assert_matrix(A.get(":", [True, False, True, False]), X[:, [0, 2]], device=device)
    row = mat(np.arange(1, 6, dtype=np.float32)[None, :], device)
    assert_matrix(row.get(row > 2), np.array([[3, 4, 5]]), device=device)


def test_get_keeps_klass(device):
    for dtype, klass in ((np.int32, "int32"), (np.uint8, "uint8"), (np.bool_, "logical")):
        A = mat((X % 2).astype(dtype), device)
        assert A.get(":", 2).klass == klass


def test_set(device):
    A = mat(X, device)
    ref = X.copy()
    A.set(2, 3, 100.0)
    ref[1, 2] = 100
    A.set(END, -1.0)
    ref[2, 3] = -1
    A.set(":", 1, 0)
    ref[:, 0] = 0
    A.set(1, colon(2, 3), mat(np.array([[7, 8]], np.float32), device))
    ref[0, 1:3] = [7, 8]
    A.set([1, 2], mat(np.array([[5], [6]], np.float32), device))  # linear: counts must agree only
    flat_ref = flat(ref).copy()
    flat_ref[[0, 1]] = [5, 6]
    ref = flat_ref.reshape(3, 4, order="F")
    A.set(A > 10, 0)
    ref[ref > 10] = 0
    assert_matrix(A, ref, device=device)


def test_set_converts_to_klass(device):
    A = mat(np.zeros((1, 4), np.uint8), device)
    A.set(1, 300)
    A.set(2, -1)
    A.set(3, 2.7)
    A.set(4, float("nan"))
    assert_matrix(A, np.array([[44, 255, 2, 0]]), klass="uint8", device=device)
    B = mat(np.zeros((1, 2), np.int32), device)
    B.set(colon(1, 2), mat(np.array([[-3.7, 3e9]], np.float32), device))
    assert_matrix(B, np.array([[-3, -1294967296]]), klass="int32", device=device)


def test_set_nd(device):
    A = mat(X3, device)
    ref = X3.copy()
    A.set(":", ":", 2, mat(np.full((2, 3), -1, np.float32), device))
    ref[:, :, 1] = -1
    A.set(2, 7, 0.5)  # fewer subscripts: the last spans dims 2 and 3
    r2 = ref.reshape(2, 12, order="F").copy()
    r2[1, 6] = 0.5
    ref = r2.reshape(2, 3, 4, order="F")
    assert_matrix(A, ref, device=device)


def test_set_size_mismatch(device):
    A = mat(X, device)
    with pytest.raises(ValueError, match=r"3x1.*2x1"):
        A.set(colon(1, 3), 1, M.ones(2, 1, device=device))
    with pytest.raises(ValueError, match="2x2"):
        A.set(1, 1, M.ones(2, 2, device=device))


@pytest.mark.parametrize("subs,match", [
    ((0,), "got 0"), ((13,), "index 13 exceeds the extent 12"), ((1.5,), "got 1.5"), ((-1,), "got -1"),
    ((4, 1), "index 4 exceeds the extent 3"), ((1, 5), "index 5 exceeds the extent 4"),
    (([1, 0],), "got 0"), (([1, 2.5],), "got 2.5"), ((END + 1,), "13 exceeds"),
    ((float("nan"),), "nan"), (("a",), "'a'"), ((colon(0, 2),), "got 0"),
    (([True] * 13,), "position 13"),
])
def test_index_errors_name_the_value(subs, match, device):
    A = mat(X, device)
    with pytest.raises(IndexError, match=match):
        A.get(*subs)
    with pytest.raises(IndexError, match=match):
        A.set(*subs, 0)


def test_assignment_never_grows(device):
    A = mat(X, device)
    with pytest.raises(IndexError, match="exceeds"):
        A.set(4, 5, 1.0)
    assert A.shape == (3, 4)


def test_find(device):
    A = mat(np.array([[0, 2, 0], [3, 0, 4]], np.float32), device)
    assert_matrix(M.find(A), np.array([[2], [3], [6]]), klass="int32", device=device)
    assert_matrix(M.find(A, 2), np.array([[2], [3]]), klass="int32", device=device)
    r, c = M.find(A, nargout=2)
    assert_matrix(r, np.array([[2], [1], [2]]), klass="int32", device=device)
    assert_matrix(c, np.array([[1], [2], [3]]), klass="int32", device=device)
    r, c, v = M.find(A, nargout=3)
    assert_matrix(v, np.array([[3], [2], [4]]), device=device)
    assert_matrix(M.find(mat(np.array([[0, 1, 1]], np.float32), device)), np.array([[2, 3]]), klass="int32")
    assert M.find(M.zeros(2, 2, device=device)).shape == (0, 1)


def test_sub2ind_ind2sub(device):
    assert_matrix(M.sub2ind([3, 4], [1, 2, 3], [1, 2, 4]), np.array([[1, 5, 12]]), klass="int32")
    assert_matrix(M.sub2ind([2, 3, 4], 2, 3, 4), np.array([[24]]), klass="int32")
    r, c = M.ind2sub([3, 4], [1, 5, 12])
    assert_matrix(r, np.array([[1, 2, 3]]), klass="int32")
    assert_matrix(c, np.array([[1, 2, 4]]), klass="int32")
    i, j, k = M.ind2sub([2, 3, 4], [24, 7])
    assert (i.tolist(), j.tolist(), k.tolist()) == ([[2, 1]], [[3, 1]], [[4, 2]])
    r, c = M.ind2sub([2, 3, 4], [24], nargout=2)  # the last output spans the rest
    assert (r.item(), c.item()) == (2, 12)
    with pytest.raises(IndexError, match="13 exceeds"):
        M.ind2sub([3, 4], [13])
    with pytest.raises(IndexError, match="5 exceeds"):
        M.sub2ind([3, 4], [1], [5])
    with pytest.raises(ValueError, match="equal sizes"):
        M.sub2ind([3, 4], [1, 2], [1])


# --- numpy-style, 0-based indexing --------------------------------------------------------


def test_numpy_style_getitem(device):
    A = mat(X, device)
    assert A[0, 1] == X[0, 1] and isinstance(A[0, 1], float)
    assert_matrix(A[:, 1], X[:, 1], device=device)         # 1-d result: a column
    assert_matrix(A[1:, :2], X[1:, :2], device=device)
    assert_matrix(A[-1], X[-1], device=device)
    assert_matrix(A[A > 6], X[X > 6], device=device)        # numpy order (row-major) for masks
    assert_matrix(mat(X3, device)[..., 2], X3[..., 2], device=device)
    with pytest.raises(IndexError):
        A[3, 0]


def test_numpy_style_setitem(device):
    A = mat(X, device)
    ref = X.copy()
    A[0, 0] = 50
    A[:, 3] = np.array([1, 2, 3])
    A[A > 10] = 0
    ref[0, 0] = 50
    ref[:, 3] = [1, 2, 3]
    ref[ref > 10] = 0
    assert_matrix(A, ref, device=device)
    U = mat(np.zeros((2, 2), np.uint8), device)
    U[0, :] = mat(np.array([[3, 4]], np.float32), device)
    assert U.klass == "uint8" and U.tolist() == [[3, 4], [0, 0]]


# --- properties ------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 5), min_size=2, max_size=3).map(tuple)


@FAST
@given(shape=shapes, data=st.data())
def test_property_linear_get_set(shape, data, device):
    n = int(np.prod(shape))
    x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    idx = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=2 * n))
    A = mat(x.copy(), device)
    got = A.get(idx)
    np.testing.assert_array_equal(to_numpy(got).reshape(-1), flat(x)[np.array(idx) - 1])
    # set then get: the last assignment to a repeated index wins, as numpy
    vals = np.arange(len(idx), dtype=np.float32)[None, :] + 100
    A.set(idx, mat(vals, device))
    ref = flat(x).copy()
    ref[np.array(idx) - 1] = vals[0]
    np.testing.assert_array_equal(flat(to_numpy(A)), ref)
    np.testing.assert_array_equal(flat(x), flat(to_numpy(mat(x, device))))
    uniq = sorted(set(idx))
    np.testing.assert_array_equal(to_numpy(A.get(uniq)).reshape(-1), ref[np.array(uniq) - 1])


@FAST
@given(shape=shapes, data=st.data())
def test_property_subscript_get_set(shape, data, device):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    subs = [data.draw(st.lists(st.integers(1, s), min_size=1, max_size=4, unique=True)) for s in shape]
    A = mat(x.copy(), device)
    keys = np.ix_(*[np.array(s) - 1 for s in subs])
    np.testing.assert_array_equal(to_numpy(A.get(*subs)), x[keys].reshape(to_numpy(A.get(*subs)).shape))
    part = A.get(*subs) * 2 + 1
    A.set(*subs, part)
    ref = x.copy()
    ref[keys] = x[keys] * 2 + 1
    np.testing.assert_allclose(to_numpy(A), ref.reshape(A.shape), rtol=1e-6)
    B = mat(x.copy(), device)
    B.set(*subs, A.get(*subs))
    np.testing.assert_array_equal(to_numpy(B), to_numpy(A))


def test_set_with_collapsed_dimensions_keeps_sharing_the_array():
    a = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    A = M.array(a)
    A.set(1, 5, -2)          # A(1, 5): dims 2 and 3 collapsed, column 5 is a[0, 1, 1]
    A.set(2, M.colon(11, 12), 7)
    assert a[0, 1, 1] == -2 and A.get(1, 5).item() == -2
    assert a[1, 1, 3] == 7 and a[1, 2, 3] == 7
    assert np.shares_memory(A.to_numpy(), a)


def test_repeated_subscripts_in_an_assignment_keep_the_last_value(device):
    """numpy assigns repeats in order; a GPU scatter in no defined order: the last must win everywhere."""
    A = M.zeros(3, 4, device=device)
    A.set([2, 2, 1], ":", M.array([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]], device=device))
    np.testing.assert_array_equal(to_numpy(A)[:, 0], [3, 2, 0])
    A.set(1, [4, 4], M.array([[7, 8]], device=device))
    assert to_numpy(A)[0, 3] == 8
    B = M.zeros(2, 2, 2, device=device)
    B.set(1, [3, 3], M.array([[5, 6]], device=device))  # collapsed dimensions: linear indices
    assert to_numpy(B).reshape(-1, order="F")[4] == 6
