"""Custom WGSL kernels on the webgpu backend (sukiyaki.matrix.kernel: createKernel /
executeKernel), on either device adapter.

The user's shader has the entry point ``main`` (``@compute @workgroup_size(B) fn main(...)``)
and one binding per argument, in order: ``@group(0) @binding(i) var<storage, read_write>``
(or ``read``). A matrix is bound from its first element, as the words the backend stores
(``array<f32>`` for single, ``array<i32>`` for int32, ``array<u32>`` for uint8 and logical,
one element a word); a number is bound as a 4-byte buffer (``var<storage, read> a: f32;``;
8 bytes for an int64 or float64). The access of each binding is read from the source.
"""

import re

import numpy as np

from sukiyaki.backends.webgpu.array import GPUArray
from sukiyaki.backends.webgpu.device import ShaderError

_BINDING = re.compile(r"@binding\(\s*(\d+)\s*\)\s*var\s*<\s*storage\s*(?:,\s*(read_write|read)\s*)?>")
_ENTRY = re.compile(r"@compute[\s\S]*?\bfn\s+main\s*\(")


class UserKernel:
    """A compiled user shader: its pipeline and its bindings' access ('w' or 'r')."""

    __slots__ = ("name", "pipeline", "layout")

    def __init__(self, name, pipeline, layout):
        self.name, self.pipeline, self.layout = name, pipeline, layout


def compile_user_kernel(backend, source, name):
    from sukiyaki.matrix.kernel import KernelError

    if name != "main" or not _ENTRY.search(source):
        raise KernelError(f"kernel {name!r}: a WGSL kernel's entry point is '@compute ... fn main(...)', and its "
                          f"name is 'main'")
    found = sorted((int(i), "w" if access == "read_write" else "r") for i, access in _BINDING.findall(source))
    if [i for i, _ in found] != list(range(len(found))):
        raise KernelError(f"kernel {name!r}: its storage bindings must be @group(0) @binding(0), (1), ... in order, "
                          f"one per argument (found {[i for i, _ in found]})")
    layout = "".join(a for _, a in found)
    try:
        pipeline = backend.device.pipeline(source, f"user kernel {name}", layout)
    except ShaderError as exc:
        raise KernelError(f"kernel {name!r} failed to compile (WGSL):\n{exc}") from None
    return UserKernel(name, pipeline, layout)


def launch_user_kernel(backend, kernel, args, threads, block):
    from sukiyaki.matrix.kernel import KernelError

    if len(args) != len(kernel.layout):
        raise KernelError(f"kernel {kernel.name!r} binds {len(kernel.layout)} arguments, got {len(args)}")
    launcher = backend.launcher
    groups = -(-threads // block)
    if groups > launcher.max_groups:
        raise KernelError(f"kernel {kernel.name!r}: {groups} workgroups of {block} are more than this device's "
                          f"{launcher.max_groups} a dimension; declare and pass a larger block")
    bindings, scalars = [], []
    for i, a in enumerate(args):
        if isinstance(a, GPUArray):
            if a.byte_offset % launcher.align:
                raise KernelError(f"kernel {kernel.name!r}: argument {i} is a view starting inside a buffer "
                                  f"(byte {a.byte_offset}); pass a copy of it")
            nbytes = max(4, 4 * a.words * a.size)
            (buf, start, size), _ = launcher.binding(a.buffer, a.byte_offset, nbytes, f"argument {i}")
            bindings.append((buf, start, size))
        else:
            buf = backend.device.upload(np.asarray(a).tobytes())
            scalars.append(buf)
            bindings.append((buf, 0, buf.size))
    backend.device.dispatch(kernel.pipeline, bindings, (groups, 1, 1))
    for buf in scalars:
        backend.device.recycle(buf)
