"""Backend registry: every backend that can run here implements the full primitive list."""

import pytest

from sukiyaki.backends import BACKEND_MODULES, BackendUnavailable, available_backends, get_backend
from sukiyaki.backends.base import check_backend


@pytest.mark.parametrize("name", list(BACKEND_MODULES))
def test_backend_implements_every_primitive(name):
    if name not in available_backends():
        try:
            get_backend(name)
        except (BackendUnavailable, RuntimeError) as exc:
            pytest.skip(f"backend {name!r} not available here: {exc}")
    check_backend(get_backend(name))


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        get_backend("nope")


def test_missing_gpu_backend_names_the_extra():
    if "cuda" in available_backends():
        pytest.skip("the cuda backend is available here, so it cannot be missing")
    with pytest.raises(BackendUnavailable, match=r"sukiyaki\[cuda\]"):
        get_backend("cuda")


def test_device_indices_are_checked():
    for bad in ("cuda:x", "numpy:1", "cuda:-1"):
        with pytest.raises(ValueError, match="a device index is written '<backend>:<n>'"):
            get_backend(bad)
    try:
        first = get_backend("cuda")
    except BackendUnavailable as exc:  # no GPU here: an index says the same, naming what is missing
        with pytest.raises(BackendUnavailable, match="backend 'cuda'"):
            get_backend("cuda:1")
        assert "cuda" in str(exc)
        return
    import cupy

    assert get_backend("cuda:0") is first
    count = cupy.cuda.runtime.getDeviceCount()
    with pytest.raises(BackendUnavailable, match=rf"GPU {count} asked for, but this machine has {count}"):
        get_backend(f"cuda:{count}")
