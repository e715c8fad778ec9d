"""Weights files: safetensors shapes must match the network exactly (the column-major flat
rule is the Sukiyaki2 format's alone), and deeply nested headers are ValueErrors naming the
file, not RecursionErrors.
"""

import pytest

from sukiyaki.nn import Net
from sukiyaki.nn import params as P
from sukiyaki.nn.weights import load_weights, read_weights, save_weights, weight_arrays

DEFS = [
    {"name": "conv1", "type": "convolution_2d", "params": {"in_size": 1, "out_size": 20, "ksize": 5},
     "inputs": ["x"], "outputs": ["c"]},
    {"name": "fc", "type": "linear", "params": {"out_size": 3}, "inputs": ["c"], "outputs": ["y"]},
]
SPECS = {"x": ((8, 8, 1), "single")}


def small_net(seed=0):
    return Net(DEFS, input_specs=SPECS, seed=seed)


def test_files_we_write_load_exactly(tmp_path):
    src = small_net()
    for name in ("w.safetensors", "w.bin"):
        save_weights(src, tmp_path / name)
        dst = small_net(seed=3)
        load_weights(dst, tmp_path / name)
        for k, v in weight_arrays(src).items():
            assert weight_arrays(dst)[k].tobytes() == v.tobytes(), (name, k)
    tensors = P.load_safetensors(tmp_path / "w.safetensors")[0]
    assert tensors["conv1/weight"].shape == (5, 5, 1, 20) and tensors["conv1/bias"].shape == (20,)


@pytest.mark.parametrize("shape", [(500,), (5, 5, 20, 1), (20, 1, 5, 5), (5, 5, 1, 20, 1)])
def test_safetensors_tensor_of_the_right_size_but_another_shape_is_refused(tmp_path, shape):
    net = small_net()
    arrays = weight_arrays(net)
    arrays["conv1/weight"] = arrays["conv1/weight"].reshape(shape, order="F")
    path = tmp_path / "w.safetensors"
    P.save_safetensors(path, arrays)
    before = weight_arrays(net)
    message = (f"weights file '{path}': parameter 'conv1/weight' has shape {shape}, "
               f"the network expects (5, 5, 1, 20)")
    with pytest.raises(ValueError) as info:
        load_weights(net, path)
    assert str(info.value) == message
    for k, v in before.items():
        assert weight_arrays(net)[k].tobytes() == v.tobytes(), k


def test_safetensors_bias_of_another_shape_is_refused(tmp_path):
    arrays = weight_arrays(small_net())
    arrays["fc/bias"] = arrays["fc/bias"].reshape(1, 3)
    P.save_safetensors(tmp_path / "b.safetensors", arrays)
    with pytest.raises(ValueError, match=r"b\.safetensors': parameter 'fc/bias' has shape \(1, 3\), "
                                         r"the network expects \(3,\)"):
        read_weights(small_net(), tmp_path / "b.safetensors")


def test_sukiyaki2_flat_arrays_take_the_network_shape_in_column_major_order(tmp_path):
    src = small_net()
    arrays = weight_arrays(src, states=False)
    P.save_sukiyaki2(tmp_path / "o.bin", {k: v.ravel(order="F") for k, v in arrays.items()})
    fmt, got, _ = read_weights(small_net(seed=7), tmp_path / "o.bin")
    assert fmt == "sukiyaki2"
    for k, v in arrays.items():
        assert got[k].shape == v.shape and got[k].tobytes() == v.tobytes(), k
    arrays["conv1/weight"] = arrays["conv1/weight"][..., :10]  # 250 floats, not 500
    P.save_sukiyaki2(tmp_path / "short.bin", arrays)
    with pytest.raises(ValueError, match=r"short\.bin': parameter 'conv1/weight' has shape \(250,\), "
                                         r"the network expects \(5, 5, 1, 20\)"):
        read_weights(small_net(), tmp_path / "short.bin")


DEEP = 100_000


def deep_safetensors():
    text = b'{"a/b":' + b"[" * DEEP
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def deep_sukiyaki2():
    return b'{"a/b":' + b"[" * DEEP + b"\0" * 1024


@pytest.mark.parametrize("name,blob", [("deep.safetensors", deep_safetensors()),
                                       ("deep.bin", deep_sukiyaki2()),
                                       ("brackets.bin", b"[" * DEEP + b"\0")])
def test_deeply_nested_weights_header_is_a_value_error_naming_the_file(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=rf"weights file '{path}': .*the JSON nests too deeply"):
        load_weights(small_net(), path)


def test_deeply_nested_headers_in_the_file_readers(tmp_path):
    with pytest.raises(ValueError, match=r"safetensors header: the JSON nests too deeply"):
        P.load_safetensors(deep_safetensors())
    with pytest.raises(ValueError, match=r"Sukiyaki2 header: the JSON nests too deeply"):
        P.load_sukiyaki2(deep_sukiyaki2())
    (tmp_path / "d.safetensors").write_bytes(deep_safetensors())
    with pytest.raises(ValueError, match=r"safetensors file '.*d\.safetensors': .*nests too deeply"):
        P.load_safetensors(tmp_path / "d.safetensors")
    (tmp_path / "d.bin").write_bytes(deep_sukiyaki2())
    with pytest.raises(ValueError, match=r"Sukiyaki2 file '.*d\.bin': .*nests too deeply"):
        P.load_sukiyaki2(tmp_path / "d.bin")
