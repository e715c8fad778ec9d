"""Bad input is refused at the boundary with an error that says what was received (house style 3)."""

import io

import numpy as np
import pytest

import sukiyaki.matrix as M
from matrix_helpers import mat

KLASS_TAKERS = [
    ("zeros", lambda k, d: M.zeros(2, klass=k, device=d)),
    ("ones", lambda k, d: M.ones(2, 3, klass=k, device=d)),
    ("eye", lambda k, d: M.eye(2, klass=k, device=d)),
    ("full", lambda k, d: M.full([2, 2], 1, klass=k, device=d)),
    ("rand", lambda k, d: M.rand(2, klass=k, device=d)),
    ("randn", lambda k, d: M.randn(2, klass=k, device=d)),
    ("randi", lambda k, d: M.randi(3, 2, klass=k, device=d)),
    ("colonvec", lambda k, d: M.colonvec(1, 3, klass=k, device=d)),
    ("array", lambda k, d: M.array([[1, 2]], klass=k, device=d)),
    ("cast", lambda k, d: M.cast(M.ones(2, device=d), k)),
    ("astype", lambda k, d: M.ones(2, device=d).astype(k)),
    ("load", lambda k, d: M.load(_npy_bytes(), klass=k)),
]


def _npy_bytes():
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 2), np.float32))
    return buf.getvalue()


@pytest.mark.parametrize("name,fn", KLASS_TAKERS, ids=[k[0] for k in KLASS_TAKERS])
@pytest.mark.parametrize("bad", ["double", "float32", "int64", "Single"])
def test_unknown_klass_is_named(name, fn, bad, device):
    with pytest.raises(TypeError, match=f"unknown klass '{bad}'"):
        fn(bad, device)


def test_gpu_only_klass_on_cpu():
    with pytest.raises(TypeError, match="'float16' exists only on GPU backends"):
        M.zeros(2, klass="float16")


@pytest.mark.parametrize("fn", [M.plus, M.minus, M.times, M.rdivide, M.power, M.max, M.min, M.eq, M.lt,
                                M.and_, M.or_, M.atan2, M.isclose])
def test_size_mismatch_names_both_sizes(fn, device):
    A, B = M.ones(3, 2, device=device), M.ones(4, 2, device=device)
    with pytest.raises(ValueError, match=r"3x2 and 4x2"):
        fn(A, B)


def test_other_size_errors(device):
    with pytest.raises(ValueError, match=r"inner dimensions.*2x3 and 2x3"):
        M.mtimes(M.ones(2, 3, device=device), M.ones(2, 3, device=device))
    with pytest.raises(ValueError, match=r"2x3 and 3x3"):
        M.horzcat(M.ones(2, 3, device=device), M.ones(3, 3, device=device))
    with pytest.raises(ValueError, match=r"select 2x1, the value is 3x1"):
        M.ones(3, 3, device=device).set(M.colon(1, 2), 1, M.ones(3, 1, device=device))
    with pytest.raises(ValueError, match=r"select 4x1, the value is 3x1"):
        M.ones(2, 2, device=device).set(":", M.ones(3, 1, device=device))
    with pytest.raises(ValueError, match="sub2ind: subscripts must have equal sizes, got 1x2 and 1x1"):
        M.sub2ind([3, 3], [1, 2], [1])


@pytest.mark.parametrize("sizes,match", [
    ((5, 5), r"reshape: 24 elements cannot be reshaped to 5x5"),
    ((7, -1), r"reshape: 24 elements cannot be reshaped to 7x\[\]"),
    ((2, 3, 5), r"24 elements cannot be reshaped to 2x3x5"),
])
def test_reshape_wrong_count(sizes, match, device):
    with pytest.raises(ValueError, match=match):
        M.reshape(M.zeros(4, 6, device=device), *sizes)


@pytest.mark.parametrize("subs,match", [
    ((0,), "index must be a positive integer, got 0"),
    ((25,), "index 25 exceeds the extent 24"),
    ((2.5,), "got 2.5"),
    ((1, 0), r"subscript 2 of 2: index must be a positive integer, got 0"),
    ((5, 1), r"subscript 1 of 2: index 5 exceeds the extent 4"),
    ((1, 1, 3), r"subscript 3 of 3: index 3 exceeds the extent 1"),
    (([1, 2, -4],), "got -4"),
    ((np.array([1.0, np.inf]),), "got inf"),
    ((M.END + 2,), "26 exceeds"),
    ((M.colon(1, 0.5, 3),), "colon step must be an integer"),
    (("end",), "the only string subscript is ':', got 'end'"),
    ((None,), "None"),
])
def test_index_errors(subs, match, device):
    A = M.zeros(4, 6, device=device)
    with pytest.raises(IndexError, match=match):
        A.get(*subs)


def test_set_errors(device):
    A = M.zeros(2, 2, device=device)
    with pytest.raises(TypeError, match="at least one subscript and a value"):
        A.set(1)
    with pytest.raises(IndexError, match="exceeds"):
        A.set(3, 1, 5.0)


def test_truncated_npy():
    raw = _npy_bytes()
    with pytest.raises(ValueError, match="truncated"):
        M.load(raw[:-1])
    with pytest.raises(ValueError, match="expected"):
        M.load(raw[:8])
    with pytest.raises(TypeError, match="expected a path, bytes or binary file object, got int"):
        M.load(42)


def test_dims_and_nargout(device):
    A = M.ones(2, 3, device=device)
    with pytest.raises(ValueError, match="sum: dim must be a positive integer, got 0"):
        M.sum(A, 0)
    with pytest.raises(ValueError, match="max: nargout must be 1 or 2, got 3"):
        M.max(A, None, 1, nargout=3)
    with pytest.raises(ValueError, match="variance: w must be 0 or 1, got 0.5"):
        M.variance(A, 0.5)
    with pytest.raises(ValueError, match=r"permute: order must be a permutation.*got \[2, 2\]"):
        M.permute(A, [2, 2])
    with pytest.raises(ValueError, match="transpose: defined for 2-d matrices, got 2x3x2"):
        M.transpose(M.ones(2, 3, 2, device=device))


def test_bad_values_for_creation():
    with pytest.raises(TypeError, match="complex"):
        M.array(np.array([1 + 2j]))
    with pytest.raises(ValueError, match="rectangular"):
        M.array([[1, 2], [3]])
    with pytest.raises(TypeError, match="object"):
        M.array(np.array([object()]))
    with pytest.raises(TypeError, match="ones: size arguments must be integers, got 'a'"):
        M.ones("a", 2)


def test_ambiguous_truth_and_item(device):
    A = mat(np.ones((2, 2), np.float32), device)
    with pytest.raises(ValueError, match="truth value of a 2x2 matrix is ambiguous"):
        if A:
            pass
    with pytest.raises(ValueError, match="item\\(\\) needs a 1x1 matrix, got 2x2"):
        A.item()
