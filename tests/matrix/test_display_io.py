"""MATLAB-like text display; .npy/.npz through M.save/M.load/M.savez/M.loadz (checked against
numpy's own reader and writer); __array__ and __dlpack__."""

import io

import numpy as np
import pytest

import sukiyaki.matrix as M
from matrix_helpers import assert_matrix, mat, to_numpy


# --- display ------------------------------------------------------------------------------

def test_display_2d_single():
    assert str(M.array([[1, -2.5], [3, 4]])) == "2x2 single\n    1.0000   -2.5000\n    3.0000    4.0000"
    assert str(M.array([[1, 2], [3, 4]])) == "2x2 single\n     1     2\n     3     4"  # integral: no decimals
    assert repr(M.array([[1, 2]])) == str(M.array([[1, 2]]))
    assert str(M.array([[-1e6]])) == "1x1 single\n   -1.0000e+06"


def test_display_int_and_logical():
    assert str(M.array(np.array([[1, -20]], np.int32))) == "1x2 int32\n     1   -20"
    assert str(M.array(np.array([[0, 255]], np.uint8))) == "1x2 uint8\n     0   255"
    assert str(M.array([[True, False]])) == "1x2 logical\n     1     0"


def test_display_nan_inf():
    assert str(M.array([[np.nan, 1]])) == "1x2 single\n   NaN     1"
    assert str(M.array([[np.inf, -np.inf]])) == "1x2 single\n    Inf   -Inf"
    text = str(M.array([[np.nan, 0.5, -np.inf]]))
    assert text.split("\n")[1].split() == ["NaN", "0.5000", "-Inf"]


def test_display_3d_pages():
    A = M.reshape(M.colonvec(1, 12), 2, 3, 2)
    assert str(A) == ("2x3x2 single\n\n(:,:,1) =\n     1     3     5\n     2     4     6\n\n"
                      "(:,:,2) =\n     7     9    11\n     8    10    12")
    B = M.zeros(1, 1, 2, 2, klass="logical")
    labels = [line for line in str(B).split("\n") if line.startswith("(")]
    assert labels == ["(:,:,1,1) =", "(:,:,2,1) =", "(:,:,1,2) =", "(:,:,2,2) ="]  # column-major pages


def test_display_empty_and_large():
    assert str(M.zeros(0, 0)) == "0x0 single (empty)"
    assert str(M.zeros(0, 3, klass="int32")) == "0x3 int32 (empty)"
    assert str(M.ones(40, 30)) == "40x30 single (1200 elements; use to_numpy() to see them)"


def test_display_device_suffix(device):
    text = str(M.ones(1, device=device))
    assert text.startswith("1x1 single") and (device == "numpy") == (" on " not in text.split("\n")[0])


# --- npy / npz ----------------------------------------------------------------------------

@pytest.mark.parametrize("klass,dtype", [("single", np.float32), ("int32", np.int32), ("uint8", np.uint8),
                                         ("logical", np.bool_)])
@pytest.mark.parametrize("shape", [(2, 3), (3, 1), (1, 1), (2, 3, 4), (0, 3)])
def test_save_load_round_trip(klass, dtype, shape, device, tmp_path):
    a = (np.arange(int(np.prod(shape))).reshape(shape) % 7).astype(dtype)
    A = mat(a, device)
    path = tmp_path / "a.npy"
    M.save(path, A)
    B = M.load(path)
    assert_matrix(B, a, klass=klass)
    np.testing.assert_array_equal(np.load(path), a)  # numpy reads what we write (Fortran order)
    buf = io.BytesIO()
    M.save(buf, A, fortran_order=False)
    assert_matrix(M.load(buf.getvalue()), a, klass=klass)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_load_what_numpy_writes(version, order, tmp_path):
    a = np.asarray(np.arange(24).reshape(2, 3, 4) * 0.5, dtype=np.float32, order=order)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version)
    assert_matrix(M.load(buf.getvalue()), a)
    M.save(tmp_path / "v.npy", M.array(a), version=version)
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), a)


@pytest.mark.parametrize("dtype,klass", [(np.float64, "single"), (np.float16, "single"), (np.int64, "int32"),
                                         (np.int16, "int32"), (np.uint8, "uint8"), (np.bool_, "logical")])
def test_load_klass_rules(dtype, klass, tmp_path):
    a = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    np.save(tmp_path / "k.npy", a)
    assert_matrix(M.load(tmp_path / "k.npy"), a, klass=klass)
    assert M.load(tmp_path / "k.npy", klass="uint8").klass == "uint8"


def test_load_1d_and_0d(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(5, dtype=np.float32))
    assert M.load(tmp_path / "v.npy").shape == (5, 1)
    np.save(tmp_path / "s.npy", np.float32(2.5))
    assert M.load(tmp_path / "s.npy").item() == 2.5


def test_savez_loadz(device, tmp_path):
    W = mat(np.arange(6, dtype=np.float32).reshape(2, 3), device)
    b = mat(np.array([[1, 2]], np.int32), device)
    for compressed in (False, True):
        path = tmp_path / f"p{int(compressed)}.npz"
        M.savez(path, compressed=compressed, W=W, b=b, t=M.array([[True]]))
        d = M.loadz(path)
        assert sorted(d) == ["W", "b", "t"]
        assert_matrix(d["W"], to_numpy(W))
        assert_matrix(d["b"], np.array([[1, 2]]), klass="int32")
        assert d["t"].klass == "logical"
        with np.load(path) as z:  # numpy reads our archives
            np.testing.assert_array_equal(z["W"], to_numpy(W))
    np.savez(tmp_path / "np.npz", x=np.ones((2, 2)), y=np.arange(3))
    d = M.loadz(tmp_path / "np.npz")
    assert d["x"].klass == "single" and d["y"].shape == (3, 1) and d["y"].klass == "int32"
    assert M.loadz(tmp_path / "np.npz", klass="uint8")["x"].klass == "uint8"
    with pytest.raises(ValueError, match="at least one matrix"):
        M.savez(tmp_path / "e.npz")


def test_truncated_and_bad_files(tmp_path):
    buf = io.BytesIO()
    M.save(buf, M.array([[1, 2], [3, 4]]))
    raw = buf.getvalue()
    with pytest.raises(ValueError, match=r"truncated: expected 16 bytes, got 13"):
        M.load(raw[:-3])
    with pytest.raises(ValueError, match="header"):
        M.load(raw[:20])
    with pytest.raises(ValueError, match="not a .npy file"):
        M.load(b"hello world, not numpy at all")
    with pytest.raises(ValueError, match="object arrays"):
        b2 = io.BytesIO()
        np.save(b2, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        M.load(b2.getvalue())
    with pytest.raises(ValueError, match="not an .npz"):
        M.loadz(raw)
    (tmp_path / "cut.npz").write_bytes(raw[:10])
    with pytest.raises(ValueError):
        M.loadz(tmp_path / "cut.npz")


# --- __array__ and __dlpack__ -------------------------------------------------------------

def test_array_protocol(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    A = mat(a, device)
    np.testing.assert_array_equal(np.asarray(M.gather(A)), a)
    assert np.asarray(M.gather(A), dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.add(M.gather(A).to_numpy(), 1), a + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.bool_])
def test_dlpack_to_numpy(dtype):
    a = np.asfortranarray((np.arange(12).reshape(3, 4) % 3).astype(dtype))
    A = M.array(a)
    b = np.from_dlpack(A)
    assert b.shape == (3, 4) and b.dtype == dtype
    np.testing.assert_array_equal(b, a)
    assert np.shares_memory(b, a)  # no copy on the CPU
    assert A.__dlpack_device__()[0] == 1  # kDLCPU
