"""Creating matrices: zeros/ones/eye/full/rand/randn/randi/colonvec, from lists and numpy,
``klass=``/``like=``/``device=``, and to/from numpy without copies."""

import numpy as np
import pytest

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, mat, to_numpy

KLASSES = ["single", "int32", "uint8", "logical"]
DTYPES = {"single": np.float32, "int32": np.int32, "uint8": np.uint8, "logical": np.bool_}


@pytest.mark.parametrize("klass", KLASSES)
def test_zeros_ones_full_eye(klass, device):
    assert_matrix(M.zeros(2, 3, klass=klass, device=device), np.zeros((2, 3)), klass=klass, device=device)
    assert_matrix(M.ones(3, klass=klass, device=device), np.ones((3, 3)), klass=klass, device=device)
    assert_matrix(M.ones([2, 3, 4], klass=klass, device=device), np.ones((2, 3, 4)), klass=klass, device=device)
    assert_matrix(M.zeros(2, 3, 1, 1, klass=klass, device=device), np.zeros((2, 3)), klass=klass, device=device)
    assert_matrix(M.eye(3, klass=klass, device=device), np.eye(3), klass=klass, device=device)
    assert_matrix(M.eye(2, 4, klass=klass, device=device), np.eye(2, 4), klass=klass, device=device)
    assert_matrix(M.full([2, 2], 1, klass=klass, device=device), np.ones((2, 2)), klass=klass, device=device)


def test_size_arguments(device):
    assert M.zeros(device=device).shape == (1, 1)
    assert M.zeros(0, device=device).shape == (0, 0)
    assert M.zeros(-2, 3, device=device).shape == (0, 3)   # negative sizes are 0, as MATLAB
    assert M.zeros((2, 5), device=device).shape == (2, 5)
    assert M.zeros(np.array([2, 5]), device=device).shape == (2, 5)
    assert M.zeros(2.0, 3, device=device).shape == (2, 3)
    assert M.ones(M.array([2, 4]), device=device).shape == (2, 4)
    with pytest.raises(TypeError, match="zeros: size arguments must be integers, got 2.5"):
        M.zeros(2.5, device=device)
    with pytest.raises(ValueError, match="eye: size must be 2-d"):
        M.eye(2, 2, 2, device=device)


def test_default_klass_is_single(device):
    for A in (M.zeros(2, device=device), M.rand(2, device=device), M.eye(2, device=device),
              M.colonvec(1, 3, device=device), M.array([1, 2]), M.array([[1, 2], [3, 4]]), M.array(3),
              M.array(2.5)):
        assert A.klass == "single"


@pytest.mark.parametrize("klass", KLASSES)
def test_like(klass, device):
    L = M.zeros(1, klass=klass, device=device)
    for A in (M.zeros(2, like=L), M.ones(2, 3, like=L), M.eye(2, like=L), M.rand(2, like=L),
              M.colonvec(0, 1, like=L), M.array([[0, 1]], like=L)):
        assert A.klass == klass and A.device == device
    assert M.zeros(2, like=L, klass="int32").klass == "int32"  # klass= wins over like=


def test_rand_randn_randi(device):
    M.rng(5, device=device)
    a = to_numpy(M.rand(200, 50, device=device))
    M.rng(5, device=device)
    assert np.array_equal(a, to_numpy(M.rand(200, 50, device=device)))  # reproducible with rng
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() < 1 and 0.45 < a.mean() < 0.55
    n = to_numpy(M.randn(200, 50, device=device))
    assert abs(n.mean()) < 0.05 and 0.95 < n.std() < 1.05
    r = M.randi(6, 100, 30, device=device)
    assert r.klass == "single" and r.shape == (100, 30)
    v = to_numpy(r)
    assert set(np.unique(v)) == {1, 2, 3, 4, 5, 6}
    v = to_numpy(M.randi([-2, 2], 1, 500, klass="int32", device=device))
    assert v.dtype == np.int32 and set(np.unique(v)) == {-2, -1, 0, 1, 2}
    assert M.rand(2, 3, 4, device=device).shape == (2, 3, 4)
    assert M.rand(device=device).shape == (1, 1)
    with pytest.raises(ValueError, match=r"empty range \[3, 1\]"):
        M.randi([3, 1], 2)
    with pytest.raises(ValueError, match="range must be"):
        M.randi([1, 2, 3], 2)


@pytest.mark.parametrize("args,want", [
    ((1, 5), [1, 2, 3, 4, 5]), ((1, 2, 7), [1, 3, 5, 7]), ((5, -2, 0), [5, 3, 1]), ((0, 0.25, 1), [0, .25, .5, .75, 1]),
    ((5, 1), []), ((1, 0, 3), []), ((1, 1), [1]), ((0, 0.1, 0.3), [0, 0.1, 0.2, 0.3]),
])
def test_colonvec(args, want, device):
    out = M.colonvec(*args, device=device)
    assert_matrix(out, np.array(want, np.float64).reshape(1, -1), device=device)


def test_colonvec_klass(device):
    assert_matrix(M.colonvec(1, 4, klass="int32", device=device), np.array([[1, 2, 3, 4]]), klass="int32")
    assert_matrix(M.colonvec(250, 2, 256, klass="uint8", device=device), np.array([[250, 252, 254, 0]]),
                  klass="uint8")


def test_from_lists():
    assert_matrix(M.array([1, 2, 3]), np.array([[1, 2, 3]]))                # a flat list is a row
    assert_matrix(M.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]))
    assert_matrix(M.array([[[1, 2]], [[3, 4]]]), np.array([[[1, 2]], [[3, 4]]]))
    assert_matrix(M.array([True, False]), np.array([[1, 0]]), klass="logical")
    assert_matrix(M.array([1, 2], klass="uint8"), np.array([[1, 2]]), klass="uint8")
    assert_matrix(M.array([-1.5, 300], klass="uint8"), np.array([[255, 44]]), klass="uint8")  # truncate, wrap
    assert M.array([]).shape == (0, 0)
    assert_matrix(M.array(7), np.array([[7]]))
    with pytest.raises(ValueError, match="rectangular"):
        M.array([[1, 2], [3]])
    with pytest.raises(TypeError, match="complex"):
        M.array([1j])
    with pytest.raises(TypeError, match="<U"):
        M.array(np.array(["a"]))


@pytest.mark.parametrize("dtype,klass", [
    (np.float32, "single"), (np.float64, "single"), (np.float16, "single"), (np.int32, "int32"),
    (np.int64, "int32"), (np.int8, "int32"), (np.uint16, "int32"), (np.uint8, "uint8"), (np.bool_, "logical"),
])
def test_from_numpy_klass(dtype, klass):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    assert_matrix(M.array(a), a, klass=klass)
    assert M.array(a[0]).shape == (3, 1)       # 1-d is a column
    assert M.array(a[0, 0]).shape == (1, 1)    # 0-d is 1x1


def test_numpy_shapes_are_matlab_sizes():
    assert M.array(np.zeros((2, 3, 1, 1))).shape == (2, 3)
    assert M.array(np.zeros((1, 1, 3))).shape == (1, 1, 3)
    assert M.array(np.zeros((2, 1, 3))).shape == (2, 1, 3)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.bool_])
def test_numpy_round_trip_without_copy(order, dtype):
    # storage is column-major: a column-major array is shared, a row-major one copied once
    a = np.asarray(np.arange(12).reshape(3, 4) % 3, dtype=dtype, order=order)
    A = M.array(a)
    assert np.shares_memory(A.to_numpy(), a) == (order == "F")
    assert np.shares_memory(np.asarray(A), a) == (order == "F")
    assert A.to_numpy().flags.f_contiguous
    b = np.asarray(A)
    assert b.shape == (3, 4) and b.dtype == dtype and np.array_equal(b, a)
    c = np.array(A)  # np.array copies
    assert not np.shares_memory(c, a) and np.array_equal(c, a)
    assert np.asarray(A, dtype=np.float64).dtype == np.float64


def test_numpy_conversion_copies_when_needed():
    a = np.arange(6.0).reshape(2, 3)  # float64 -> single: a converted copy
    A = M.array(a)
    assert A.klass == "single" and not np.shares_memory(A.to_numpy(), a)
    assert A.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert M.array(np.float32(2.5)).item() == 2.5
    with pytest.raises(ValueError, match="2x3"):
        A.item()


def test_array_of_matrix(device):
    A = mat(np.array([[1.7, -1]], np.float32), device)
    assert M.array(A) is A
    assert_matrix(M.array(A, klass="int32"), np.array([[1, -1]]), klass="int32", device=device)
    assert M.array(A, device="numpy").device == "numpy"
    assert_matrix(M.array(A, like=M.zeros(1, klass="uint8")), np.array([[1.7, -1]], np.float32), device="numpy")


def test_cast(device):
    A = mat(np.array([[3.7, -3.7, 300, -1, np.nan, 0]], np.float32), device)
    assert_matrix(M.cast(A, "int32"), np.array([[3, -3, 300, -1, 0, 0]]), klass="int32", device=device)
    assert_matrix(M.cast(A, "uint8"), np.array([[3, 253, 44, 255, 0, 0]]), klass="uint8", device=device)
    assert_matrix(M.cast(A, "logical"), np.array([[1, 1, 1, 1, 1, 0]]), klass="logical", device=device)
    S = M.cast(A, "single")
    assert S is not A and np.array_equal(to_numpy(S), to_numpy(A), equal_nan=True)
    assert_matrix(M.cast([1.5, 2.5], "int32"), np.array([[1, 2]]), klass="int32")
    with pytest.raises(TypeError, match="'double'"):
        M.cast(A, "double")


def test_conversions_to_python(device):
    A = mat(np.array([[2.5]], np.float32), device)
    assert float(A) == 2.5 and int(A) == 2 and bool(A) is True
    assert bool(M.zeros(1, device=device)) is False
    with pytest.raises(ValueError, match="ambiguous"):
        bool(M.ones(2, device=device))
    i = mat(np.array([[3]], np.int32), device)
    assert [10, 11, 12, 13][i] == 13   # int32 1x1 works as a Python index
    with pytest.raises(TypeError, match="single"):
        [1, 2][A]


def test_fill_values_follow_the_storage_rules(device):
    """full/zeros/ones and colonvec store values as the original's typed arrays (truncate, wrap, NaN -> 0)."""
    assert_matrix(M.full([1, 2], 300, klass="uint8", device=device), np.array([[44, 44]]), klass="uint8")
    assert_matrix(M.full([1, 2], -1, klass="uint8", device=device), np.array([[255, 255]]), klass="uint8")
    assert_matrix(M.full([1, 2], -2.7, klass="int32", device=device), np.array([[-2, -2]]), klass="int32")
    assert_matrix(M.full([1, 2], np.nan, klass="int32", device=device), np.array([[0, 0]]), klass="int32")
    assert_matrix(M.full([1, 1], 3e9, klass="int32", device=device), np.array([[-1294967296]]), klass="int32")
    assert_matrix(M.full([1, 1], 0.5, klass="logical", device=device), np.array([[1]]), klass="logical")
    assert_matrix(M.colonvec(-1, 1, klass="uint8", device=device), np.array([[255, 0, 1]]), klass="uint8")
    assert_matrix(M.colonvec(2147483646, 2147483648, klass="int32", device=device),
                  np.array([[2147483646, 2147483647, -2147483648]]), klass="int32")
    assert_matrix(M.colonvec(0, 0.5, 1.5, klass="int32", device=device), np.array([[0, 0, 1, 1]]), klass="int32")
