"""The NVIDIA GPU backend, on CuPy (arrays, cuBLAS, elementwise kernels) and cuDNN (through
the ``nvidia-cudnn-frontend`` package) for convolutions. Installed by ``sukiyaki[cuda]``;
imported only when asked for, so the package and its tests run where CuPy is absent."""

from sukiyaki.backends import BackendUnavailable


def create(device=0):
    """Return a CUDA backend on GPU ``device``; BackendUnavailable when none can run here."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailable(f"backend 'cuda' needs CuPy ({exc}); install it with: pip install 'sukiyaki[cuda]'") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, or a driver too old for this CuPy
        raise BackendUnavailable(f"backend 'cuda' cannot run here: no usable CUDA driver ({type(exc).__name__}: "
                                 f"{exc}); it needs an NVIDIA GPU with its driver, and pip install 'sukiyaki[cuda]'") from None
    if count == 0:
        raise BackendUnavailable("backend 'cuda' cannot run here: CuPy found no CUDA GPU (pip install 'sukiyaki[cuda]' "
                                 "is not enough without one)")
    if not 0 <= device < count:
        raise BackendUnavailable(f"backend 'cuda': GPU {device} asked for, but this machine has {count} (0..{count - 1})")
    from sukiyaki.backends.cuda.backend import CudaBackend

    return CudaBackend(device)
