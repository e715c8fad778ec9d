"""WGSL kernels: sources shipped as package data (``kernels/*.wgsl``), assembled, compiled
lazily and memoized by (kernel, specialisation), and launched.

Every kernel is ``fn main`` over a 1-d range of threads (256 a workgroup, the workgroups
laid out over x and y when there are more than 65,535). Buffers are bound as
``array<u32>``: outputs first (read-write), then inputs (read-only), then ``META``, a
read-only array of u32 parameters: META[0] is the thread count, META[1 + k] the word offset
of binding k's first element within its bound range, and the kernel's own parameters
follow from ``P``. A kernel reads them with ``m(j)`` (= META[P + j]).

A specialisation is text substituted into the kernel's source (``string.Template``:
``$NAME``); library files (``f64.wgsl``, ``math.wgsl``, ...) are prepended as the kernel
asks. Shapes and sizes are parameters, not specialisations, so one pipeline serves every
shape.
"""

import functools
import string
from array import array
from importlib import resources

import numpy as np

WG = 256
_HEADER = """// ---- generated: bindings and parameters ----
{bindings}
@group(0) @binding({meta}) var<storage, read> META: array<u32>;
const WG: u32 = {wg}u;
const P: u32 = {p}u;
fn m(j: u32) -> u32 {{ return META[P + j]; }}
fn mi(j: u32) -> i32 {{ return bitcast<i32>(META[P + j]); }}
fn mf(j: u32) -> f32 {{ return bitcast<f32>(META[P + j]); }}
fn off(k: u32) -> u32 {{ return META[1u + k]; }}
fn thread_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {{ return (wid.y * nwg.x + wid.x) * WG + lid; }}
"""


@functools.lru_cache(maxsize=None)
def source(name):
    """The text of kernels/<name>.wgsl."""
    path = resources.files("sukiyaki.backends.webgpu").joinpath("kernels").joinpath(f"{name}.wgsl")
    return path.read_text(encoding="utf-8")


def assemble(name, outputs, inputs, libs=(), subs=None, body=None):
    """WGSL of kernel ``name``: header with ``outputs`` read-write and ``inputs`` read-only
    bindings (their WGSL names, in binding order; an output 'NAME:atomic<u32>' is an array of
    atomics), the library files, then the kernel (``body``, or kernels/<name>.wgsl)."""
    lines = []
    for i, var in enumerate(outputs):
        var, _, elem = var.partition(":")
        lines.append(f"@group(0) @binding({i}) var<storage, read_write> {var}: array<{elem or 'u32'}>;")
    for j, var in enumerate(inputs):
        lines.append(f"@group(0) @binding({len(outputs) + j}) var<storage, read> {var}: array<u32>;")
    nb = len(outputs) + len(inputs)
    head = _HEADER.format(bindings="\n".join(lines), meta=nb, wg=WG, p=1 + nb)
    parts = [head] + [source(lib) for lib in libs]
    text = body if body is not None else source(name)
    if subs:
        text = string.Template(text).substitute(subs)
    parts.append(text)
    return "\n".join(parts)


class Launcher:
    """Compiles (memoized) and launches kernels on one device."""

    def __init__(self, device):
        self.device = device
        self.align = device.limits.get("min-storage-buffer-offset-alignment") or 256
        self.max_binding = device.limits.get("max-storage-buffer-binding-size") or (128 << 20)
        self.max_groups = device.limits.get("max-compute-workgroups-per-dimension") or 65535
        self._pipelines = {}
        self.compiled = 0

    def pipeline(self, key, make_code, n_out, n_in):
        """The pipeline memoized under key; make_code() gives its WGSL (n_out read-write and
        n_in read-only bindings, then META) on first use."""
        p = self._pipelines.get(key)
        if p is None:
            layout = "w" * n_out + "r" * n_in + "m"
            p = self._pipelines[key] = self.device.pipeline(make_code(), str(key[0]), layout)
            self.compiled += 1
        return p

    def binding(self, buffer, byte_offset, nbytes, what="array"):
        """((buffer, start, size), word offset of byte_offset within the bound range)."""
        start = byte_offset - byte_offset % self.align
        size = max(4, byte_offset + nbytes - start)
        size = -(-size // 4) * 4
        if size > self.max_binding:
            raise MemoryError(f"webgpu: a kernel would bind {size} bytes of one {what}, more than this device's "
                              f"max-storage-buffer-binding-size ({self.max_binding} bytes)")
        return (buffer, start, min(size, buffer.size - start)), (byte_offset - start) // 4

    def launch(self, pipeline, n_threads, outputs, inputs, params=(), groups=None):
        """Run pipeline over n_threads threads (or the workgroup grid ``groups``, META[0] still
        n_threads). outputs/inputs: (buffer, byte_offset, nbytes) ranges bound in that order;
        params: the kernel's u32 parameters (ints, wrapped)."""
        if n_threads <= 0:
            return
        bindings, meta = [], [n_threads]
        align = self.align
        for ranges in (outputs, inputs):
            for buf, off, nb in ranges:  # self.binding, inline (most of a launch's arithmetic)
                start = off - off % align
                size = (off + nb - start + 3) & ~3
                if size < 4:
                    size = 4
                if size > self.max_binding:
                    self.binding(buf, off, nb)  # raises
                left = buf.size - start
                bindings.append((buf, start, size if size <= left else left))
                meta.append((off - start) >> 2)
        bindings.append(self.device.params(_words(meta, params)))
        if groups is None:
            count = -(-n_threads // WG)
            gx = count if count <= self.max_groups else self.max_groups
            groups = (gx, -(-count // gx), 1)
        if groups[0] > self.max_groups or groups[1] > self.max_groups or groups[2] > self.max_groups:
            raise MemoryError(f"webgpu: a grid of {tuple(groups)} workgroups exceeds the device's dispatch limits")
        self.device.dispatch(pipeline, bindings, tuple(groups))


def _words(meta, params):
    """array('I') of meta then params (ints, wrapped to u32)."""
    try:
        return array("I", meta + params if type(params) is list else meta + list(params))
    except (OverflowError, TypeError):  # negative or float-typed values: wrap each
        return array("I", meta + [int(p) & 0xFFFFFFFF for p in params])


def f32_bits(x):
    """The u32 bit pattern of x as float32."""
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f64_words(x):
    """(low, high) u32 words of x as float64."""
    w = np.array([x], dtype=np.float64).view(np.uint32)
    return int(w[0]), int(w[1])
