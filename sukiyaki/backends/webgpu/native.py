"""Device access through the native ``wgpu`` package (wgpu-native): one of the two adapters
(``browser.py`` is the other), implementing the hooks of :class:`~sukiyaki.backends.webgpu.device.Device`
with wgpu's calls; the interface, the recording policy and every shader above are shared.

The adapter is wgpu's default (high-performance) one, but not its OpenGL fallback unless
``SUKIYAKI_WEBGPU_ALLOW_GL=1``; the device is made with the adapter's own buffer limits (Mesa's
lavapipe: 2 GiB buffers, 128 MiB bindings). Without ``XDG_RUNTIME_DIR`` (Mesa warns), a
private 0700 folder is set for it. ``SUKIYAKI_WEBGPU_TIMESTAMPS=1`` asks for the
'timestamp-query' feature where the adapter has it (GPU timings of kernels, for profiling).

Recording a dispatch is kept cheap on the host (it is most of a training step's host time):
bind groups are memoized by what they bind (:class:`BindGroups`; the pool of pool.py hands
a step the same buffers every step, and a kernel's parameters, ``'m'`` in its layout, are
bound at a per-dispatch dynamic offset into the arena, so the offset is not part of the
key), and the compute-pass calls go straight to wgpu-native's C functions (wgpu-py's
wrappers convert and check their arguments on every call); a pipeline already set is not
set again.
"""

import os
import weakref

from sukiyaki.backends.webgpu.device import (INFO_KEYS, READ_LIMITS, SUBMIT_EVERY, WANTED_LIMITS,  # noqa: F401
                                             Device as _Device, ShaderError)

_NO_ADAPTER = ("it needs a Vulkan, Metal or D3D12 device (on Linux without a GPU, Mesa's lavapipe gives one: "
               "apt-get install mesa-vulkan-drivers libvulkan1)")


def _import_wgpu():
    if not os.environ.get("XDG_RUNTIME_DIR"):  # Mesa's Vulkan drivers warn without one
        path = os.path.join("/tmp", f"sukiyaki-xdg-{os.getuid()}") if hasattr(os, "getuid") else None
        if path:
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
                os.environ["XDG_RUNTIME_DIR"] = path
            except OSError:
                pass
    import wgpu

    return wgpu


def _limit(limits, name):
    try:
        return int(limits[name])
    except (KeyError, TypeError):
        return None


class Device(_Device):
    """One WebGPU device of the native wgpu package (see sukiyaki.backends.webgpu.device)."""

    kind = "native"

    def __init__(self, power_preference="high-performance"):
        super().__init__()
        wgpu = self._wgpu = _import_wgpu()
        adapter = wgpu.gpu.request_adapter_sync(power_preference=power_preference)
        if adapter is not None and str(adapter.info.get("backend_type", "")).lower() == "opengl":
            # wgpu's OpenGL backend is a downlevel fallback (its shaders compile ~30x slower here):
            # take another adapter, and OpenGL only when asked to
            others = [a for a in wgpu.gpu.enumerate_adapters_sync()
                      if str(a.info.get("backend_type", "")).lower() != "opengl"]
            if others:
                adapter = others[0]
            elif os.environ.get("SUKIYAKI_WEBGPU_ALLOW_GL") != "1":
                raise LookupError("wgpu found only an OpenGL adapter (set SUKIYAKI_WEBGPU_ALLOW_GL=1 to use it); "
                                  + _NO_ADAPTER)
        if adapter is None:
            raise LookupError("wgpu found no WebGPU adapter; " + _NO_ADAPTER)
        want = {}
        for name in WANTED_LIMITS:
            value = _limit(adapter.limits, name)
            if value is not None:
                want[name] = value
        # GPU timestamps, for profiling (benchmarks/webgpu_native.py --profile), only when asked
        stamps = os.environ.get("SUKIYAKI_WEBGPU_TIMESTAMPS") == "1" and "timestamp-query" in adapter.features
        self._device = adapter.request_device_sync(required_limits=want,
                                                   required_features=["timestamp-query"] if stamps else [])
        self._adapter = adapter
        info = adapter.info
        self.info = {k: info.get(k, "") for k in INFO_KEYS}
        self.limits = {k: _limit(self._device.limits, k) for k in want}
        for name, default in READ_LIMITS.items():
            self.limits[name] = _limit(self._device.limits, name) or default
        self._usage = (wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST)
        self._layouts = {}
        self._pass = None  # (encoder, its open compute pass)
        self._pass_pipe = None  # the pipeline set last in that pass
        self._groups = BindGroups(self._device)
        self._calls = PassCalls.of(wgpu)

    # --- buffers ---
    def _create(self, size):
        return self._device.create_buffer(size=size, usage=self._usage)

    def _create_with_data(self, mv):
        return self._device.create_buffer_with_data(data=mv, usage=self._usage)

    def _read(self, buffer, start, length):
        return self._device.queue.read_buffer(buffer, start, length)

    def _write(self, buffer, offset, mv):
        self._device.queue.write_buffer(buffer, offset, mv)

    def _destroy(self, buffer):
        buffer.destroy()

    def _usable(self, buffer):
        return buffer._internal is not None  # wgpu's __del__ releases the handle

    # --- shaders ---
    def _layout(self, layout):
        """(bind group layout, pipeline layout) of a layout string (see device.py): 'w' read-write,
        'r' read-only, 'm' read-only at a dynamic offset."""
        pl = self._layouts.get(layout)
        if pl is None:
            wgpu = self._wgpu
            entries = [{"binding": i, "visibility": wgpu.ShaderStage.COMPUTE,
                        "buffer": {"type": (wgpu.BufferBindingType.storage if kind == "w"
                                            else wgpu.BufferBindingType.read_only_storage),
                                   "has_dynamic_offset": kind == "m"}}
                       for i, kind in enumerate(layout)]
            bgl = self._device.create_bind_group_layout(entries=entries)
            pl = self._layouts[layout] = (bgl, self._device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return pl

    def _compile(self, code, label, layout):
        if "m" in layout[:-1]:
            raise ValueError(f"webgpu: layout {layout!r}: only the last binding may be the parameters ('m')")
        try:
            module = self._device.create_shader_module(label=label, code=code)
            bgl, pl = self._layout(layout)
            pipe = self._device.create_compute_pipeline(label=label, layout=pl,
                                                        compute={"module": module, "entry_point": "main"})
        except self._wgpu.GPUError as exc:
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n{exc}") from None
        return (pipe, bgl, layout[-1:] == ("m",))

    # --- commands ---
    def _new_encoder(self):
        return self._device.create_command_encoder()

    def _record_dispatch(self, enc, pipeline, bindings, groups):
        # consecutive dispatches share one compute pass (each dispatch is its own usage scope:
        # WebGPU orders their reads after the writes of the ones before)
        pipe, bgl, dynamic = pipeline
        group = self._groups.get(bgl, bindings, dynamic)
        cp = self._pass
        if cp is None or cp[0] is not enc:
            cp = self._pass = (enc, enc.begin_compute_pass())
            self._pass_pipe = None
        self._calls.dispatch(cp[1], pipe if pipe is not self._pass_pipe else None, group,
                             bindings[-1][1] if dynamic else None, groups)
        self._pass_pipe = pipe

    def _end_pass(self):
        if self._pass is not None:
            self._pass[1].end()
            self._pass = None

    def _record_clear(self, enc, buffer, offset, nbytes):
        self._end_pass()
        enc.clear_buffer(buffer, offset, nbytes)

    def _record_copy(self, enc, src, src_offset, dst, dst_offset, nbytes):
        self._end_pass()
        enc.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)

    def _submit(self, enc):
        self._end_pass()
        self._device.queue.submit([enc.finish()])


class BindGroups:
    """Bind groups memoized by (bind group layout, the bound (buffer, offset, size) ranges).

    Buffers are told apart by wgpu's ``uid`` (never reused, unlike ``id``); when a buffer
    is garbage-collected, the groups that bind it are dropped (so that they do not keep its
    memory). ``hits`` and ``made`` count lookups answered from the memo and groups created.
    """

    #: Groups kept at most (past it, the memo starts again).
    LIMIT = 1 << 14

    def __init__(self, device):
        self._device = device
        self._memo = {}
        self._by_buffer = {}  # buffer uid -> keys of the groups binding it
        self.hits = 0
        self.made = 0

    def get(self, bgl, bindings, dynamic=False):
        """The bind group of bgl binding the (buffer, offset, size) ranges in order (dynamic:
        the last one at offset 0, its offset given at each dispatch)."""
        key = [bgl._uid]
        for buf, off, size in bindings:
            key += (buf._uid, off, size)
        if dynamic:
            key[-2] = 0
        group = self._memo.get(tuple(key))
        if group is not None:
            self.hits += 1
            return group
        if dynamic:
            buf, _, size = bindings[-1]
            bindings = list(bindings[:-1]) + [(buf, 0, size)]
        return self._make(tuple(key), bgl, bindings)

    def _make(self, key, bgl, bindings):
        entries = [{"binding": i, "resource": {"buffer": buf, "offset": off, "size": size}}
                   for i, (buf, off, size) in enumerate(bindings)]
        group = self._device.create_bind_group(layout=bgl, entries=entries)
        self.made += 1
        if len(self._memo) >= self.LIMIT:
            self._memo.clear()
            self._by_buffer.clear()
        self._memo[key] = group
        for buf, _, _ in bindings:
            keys = self._by_buffer.get(buf._uid)
            if keys is None:
                keys = self._by_buffer[buf._uid] = []
                weakref.finalize(buf, self._forget, buf._uid)
            keys.append(key)
        return group

    def _forget(self, uid):
        for key in self._by_buffer.pop(uid, ()):
            self._memo.pop(key, None)


class PassCalls:
    """The compute-pass calls of a dispatch: wgpu-native's C functions directly where this
    wgpu exposes them (``PassCalls.of`` checks), else wgpu's methods. Errors in them are
    reported when the encoder is finished, as wgpu's own methods do for pass commands."""

    def __init__(self, lib=None, ffi=None):
        self._lib = lib
        self._offsets = ffi.new("uint32_t[1]") if ffi is not None else None

    @classmethod
    def of(cls, wgpu):
        """The direct calls when wgpu-native's ``lib`` has them, else wgpu's methods."""
        try:
            from wgpu.backends.wgpu_native import ffi, lib

            for name in ("wgpuComputePassEncoderSetPipeline", "wgpuComputePassEncoderSetBindGroup",
                         "wgpuComputePassEncoderDispatchWorkgroups"):
                getattr(lib, name)
            return cls(lib, ffi)
        except (ImportError, AttributeError):
            return cls()

    def dispatch(self, cp, pipe, group, offset, groups):
        """Record on compute pass cp: set pipe (None: it is set already), bind group 0 with the
        dynamic offset (None: the group has none), dispatch groups (x, y, z) workgroups."""
        lib = self._lib
        if lib is None:
            if pipe is not None:
                cp.set_pipeline(pipe)
            cp.set_bind_group(0, group, [] if offset is None else [offset])
            cp.dispatch_workgroups(*groups)
            return
        handle = cp._internal
        if pipe is not None:
            lib.wgpuComputePassEncoderSetPipeline(handle, pipe._internal)
        if offset is None:
            lib.wgpuComputePassEncoderSetBindGroup(handle, 0, group._internal, 0, self._offsets)
        else:
            self._offsets[0] = offset
            lib.wgpuComputePassEncoderSetBindGroup(handle, 0, group._internal, 1, self._offsets)
        x, y, z = groups
        lib.wgpuComputePassEncoderDispatchWorkgroups(handle, x, y, z)


def open_device():
    """The native device (LookupError when no adapter exists; ImportError without wgpu)."""
    return Device()
