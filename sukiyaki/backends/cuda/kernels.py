"""The CUDA C kernels shipped as package data (``kernels/*.cu``), compiled lazily by NVRTC
through CuPy and memoized by (file, function, options)."""

import functools
from importlib import resources


@functools.lru_cache(maxsize=None)
def source(name):
    """The text of kernels/<name>.cu."""
    return resources.files("sukiyaki.backends.cuda").joinpath("kernels", f"{name}.cu").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def module(name, options=("-std=c++17",)):
    """The compiled RawModule of kernels/<name>.cu (compiled on first use)."""
    import cupy

    return cupy.RawModule(code=source(name), options=options)


@functools.lru_cache(maxsize=None)
def function(name, func):
    """Kernel ``func`` of kernels/<name>.cu."""
    return module(name).get_function(func)


def launch(name, func, n_threads, args, block=256):
    """Run kernel ``func`` on ceil(n_threads / block) blocks of ``block`` threads."""
    if n_threads <= 0:
        return
    function(name, func)(((n_threads + block - 1) // block,), (block,), args)
