"""The WebGPU backend: WGSL compute shaders (``kernels/*.wgsl``) on any WebGPU device.

Natively it runs through the ``wgpu`` package (wgpu-native: Vulkan, Metal, D3D12; on a
machine without a GPU, Mesa's lavapipe gives a CPU Vulkan device), installed by
``pip install 'sukiyaki[webgpu]'``; in a browser (Pyodide), the same shaders run through
Pyodide's bridge to ``navigator.gpu`` (``browser.py`` in place of ``native.py``). ``wgpu`` is
imported only when the backend is asked for, so the package imports without it.

Layout (one folder, the same shaders natively and in a browser):

- ``device.py``: the device interface the code above uses and what both adapters share
  (command recording, sizes, limits, errors); ``native.py`` (wgpu) and ``browser.py``
  (``navigator.gpu``, awaited with ``pyodide.ffi.run_sync``) are the only modules that talk
  to WebGPU (adapter, device, buffers, pipelines, command encoder);
- ``array.py``: the native array (buffer, element offset, shape, dtype; column-major) and the
  storage of the dtypes WGSL lacks (float64, int64, uint8, bool);
- ``kernels.py``: loading, assembling, compiling (memoized) and launching ``kernels/*.wgsl``;
- ``backend.py``: the primitives of ``sukiyaki.backends.base``; ``elementwise.py`` (ops and
  dtype rules), ``reduce.py``, ``matmul.py`` (and ``matmul_db.py``, candidate kernels),
  ``indexing.py`` (data movement), ``nn.py`` (convolution, pooling, crops, fused updates)
  generate or drive the kernels;
- ``kernels/``: ``f64.wgsl`` (software binary64), ``math.wgsl`` (float32 functions to a few
  ulps, double log/exp/pow), ``common.wgsl``, ``philox.wgsl``, and one file per kernel.

Work is recorded into one command encoder and submitted at the next read (or every
``device.SUBMIT_EVERY`` commands), not once per primitive.
"""

import sys

from sukiyaki.backends import BackendUnavailable


def open_device():
    """The WebGPU device of this platform: the browser's (Pyodide) or native wgpu's."""
    if sys.platform == "emscripten":
        from sukiyaki.backends.webgpu import browser

        return browser.open_device()
    from sukiyaki.backends.webgpu import native

    return native.open_device()


def create():
    """Return a WebGPU backend on the default adapter; BackendUnavailable when none can run here."""
    if sys.platform != "emscripten":
        try:
            import wgpu  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"backend 'webgpu' needs the wgpu package ({exc}); install it with: "
                                     f"pip install 'sukiyaki[webgpu]'") from None
    try:
        device = open_device()
    except LookupError as exc:
        raise BackendUnavailable(f"backend 'webgpu' cannot run here: {exc}") from None
    except Exception as exc:  # a driver that fails to start
        raise BackendUnavailable(f"backend 'webgpu' cannot run here: no usable WebGPU adapter "
                                 f"({type(exc).__name__}: {exc})") from None
    from sukiyaki.backends.webgpu.backend import WebGPUBackend

    return WebGPUBackend(device)
