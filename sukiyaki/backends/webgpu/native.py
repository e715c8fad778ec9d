"""Device access through the native ``wgpu`` package (wgpu-native): one of the two adapters
(``browser.py`` is the other), implementing the hooks of :class:`~sukiyaki.backends.webgpu.device.Device`
with wgpu's calls; the interface, the recording policy and every shader above are shared.

The adapter is wgpu's default (high-performance) one, but not its OpenGL fallback unless
``SUKIYAKI_WEBGPU_ALLOW_GL=1``; the device is made with the adapter's own buffer limits (Mesa's
lavapipe: 2 GiB buffers, 128 MiB bindings). Without ``XDG_RUNTIME_DIR`` (Mesa warns), a
private 0700 folder is set for it.
"""

import os

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
        self._device = adapter.request_device_sync(required_limits=want)
        self._adapter = adapter
        info = adapter.info
        self.info = {k: info.get(k, "") for k in INFO_KEYS}
        self.limits = {k: _limit(self._device.limits, k) for k in want}
        for name, default in READ_LIMITS.items():
            self.limits[name] = _limit(self._device.limits, name) or default
        self._usage = (wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST)
        self._layouts = {}
        self._pass = None  # (encoder, its open compute pass)

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

    # --- shaders ---
    def _layout(self, layout):
        pl = self._layouts.get(layout)
        if pl is None:
            wgpu = self._wgpu
            entries = [{"binding": i, "visibility": wgpu.ShaderStage.COMPUTE,
                        "buffer": {"type": (wgpu.BufferBindingType.read_only_storage if kind == "r"
                                            else wgpu.BufferBindingType.storage)}}
                       for i, kind in enumerate(layout)]
            bgl = self._device.create_bind_group_layout(entries=entries)
            pl = self._layouts[layout] = (bgl, self._device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return pl

    def _compile(self, code, label, layout):
        try:
            module = self._device.create_shader_module(label=label, code=code)
            bgl, pl = self._layout(layout)
            pipe = self._device.create_compute_pipeline(label=label, layout=pl,
                                                        compute={"module": module, "entry_point": "main"})
        except self._wgpu.GPUError as exc:
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n{exc}") from None
        return (pipe, bgl)

    # --- commands ---
    def _new_encoder(self):
        return self._device.create_command_encoder()

    def _record_dispatch(self, enc, pipeline, bindings, groups):
        # consecutive dispatches share one compute pass (each dispatch is its own usage scope:
        # WebGPU orders their reads after the writes of the ones before)
        pipe, bgl = pipeline
        entries = [{"binding": i, "resource": {"buffer": buf, "offset": off, "size": size}}
                   for i, (buf, off, size) in enumerate(bindings)]
        group = self._device.create_bind_group(layout=bgl, entries=entries)
        if self._pass is None or self._pass[0] is not enc:
            self._pass = (enc, enc.begin_compute_pass())
        cp = self._pass[1]
        cp.set_pipeline(pipe)
        cp.set_bind_group(0, group)
        cp.dispatch_workgroups(*groups)

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


def open_device():
    """The native device (LookupError when no adapter exists; ImportError without wgpu)."""
    return Device()
