"""ParamStore: one flat buffer per dtype, named column-major views, gradients alike."""

import numpy as np
import pytest

from sukiyaki.backends import get_backend
from sukiyaki.matrix import gather
from sukiyaki.nn import Net
from sukiyaki.nn.ops import Ops
from sukiyaki.nn.store import ParamStore


def store_on(device):
    entries = [("a/w", (2, 3), "trained"), ("s/m", (3,), "state"), ("b/w", (2, 3, 1), "trained"), ("t/w", (4,), "param")]
    return ParamStore(Ops.of(get_backend(device)), entries)


def host(m):
    return np.asarray(gather(m))


def test_layout_puts_the_trained_parameters_first(device):
    st = store_on(device)
    # every entry starts on a 64-element (256-byte) boundary: cuDNN wants aligned pointers
    assert (st.size, st.trained_size) == (4 * 64, 2 * 64)
    assert [st.entries[n].offset for n in ("a/w", "b/w", "t/w", "s/m")] == [0, 64, 128, 192]
    assert st.names("trained") == ["a/w", "b/w"] and st.names() == ["a/w", "s/m", "b/w", "t/w"]
    assert st.nbytes == 4 * 256


def test_views_write_through_to_the_flat_buffer_in_column_major_order(device):
    st = store_on(device)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    st.load_arrays({"a/w": a})
    np.testing.assert_array_equal(st.to_numpy()[:6], a.reshape(-1, order="F"))
    np.testing.assert_array_equal(host(st.view("a/w")), a)
    ops = st.ops
    ops.fill_(ops.native(st.view("b/w")), 7.0)  # a write through the view
    np.testing.assert_array_equal(st.to_numpy()[64:70], 7.0)
    np.testing.assert_array_equal(st.to_numpy()[:6], a.reshape(-1, order="F"))  # neighbours untouched
    assert not np.any(st.to_numpy()[6:64]) and not np.any(st.to_numpy()[70:128])  # the padding stays zero


def test_load_arrays_checks_everything_before_writing(device):
    st = store_on(device)
    st.load_arrays({"a/w": np.ones((2, 3))})
    before = st.to_numpy()
    with pytest.raises(ValueError, match=r"parameter 'b/w' has 5 values, the store expects 6 \(2, 3, 1\)"):
        st.load_arrays({"a/w": np.zeros((2, 3)), "b/w": np.zeros(5)})
    with pytest.raises(KeyError, match="no entry 'c/w'"):
        st.load_arrays({"a/w": np.zeros((2, 3)), "c/w": np.zeros(1)})
    np.testing.assert_array_equal(st.to_numpy(), before)


def test_slot_buffers_round_trip_in_column_major_order(device):
    st = store_on(device)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    # the same values given with another shape of the same size (a MATLAB-shaped (2, 3) for (2, 3, 1))
    buf = st.slot_from_arrays({"b/w": a, "a/w": a * 10})
    back = st.slot_arrays(buf)
    np.testing.assert_array_equal(back["b/w"].reshape(2, 3), a)
    np.testing.assert_array_equal(back["a/w"], a * 10)
    with pytest.raises(ValueError, match="no trained parameter 't/w'"):
        st.slot_from_arrays({"t/w": np.zeros(4)})


def test_gradients_live_in_their_own_buffer_and_zero_at_once(device):
    net = Net([{"name": "fc", "type": "linear", "params": {"out_size": 3}, "inputs": ["x"], "outputs": ["y"]},
               {"name": "loss", "type": "softmax_cross_entropy", "inputs": ["y", "t"], "outputs": ["loss"]}],
              device=device, input_specs={"x": ((4,), "single"), "t": ((1,), "int32")})
    rng = np.random.default_rng(0)
    net.train_batch({"x": rng.standard_normal((4, 5)).astype(np.float32), "t": rng.integers(0, 3, (1, 5))})
    flat = np.asarray(net.ops.download(net.store.grad))
    assert flat.size == 128 and np.abs(flat).max() > 0
    np.testing.assert_array_equal(flat[:12].reshape(4, 3, order="F"), host(net.gradients()["fc/weight"]))
    net.zero_grads()
    assert not np.any(np.asarray(net.ops.download(net.store.grad)))
