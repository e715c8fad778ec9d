"""Device access through the native ``wgpu`` package (wgpu-native): the one module that talks
to WebGPU, so that a ``browser.py`` with the same small interface (Pyodide's bridge to
``navigator.gpu``) can replace it and every shader and primitive above stays the same.

The interface (:class:`Device`):

- ``info`` (dict: vendor, device, description, adapter_type, backend_type) and ``limits``
  (dict of the limits the device was created with);
- ``buffer(nbytes)`` -> a storage buffer (zero-filled, as WebGPU guarantees), ``upload(data)``
  -> a buffer holding bytes, ``read(buffer, offset, nbytes)`` -> bytes (the only
  device-to-host path), ``destroy(buffer)``;
- ``pipeline(code, label, layout)`` -> a compute pipeline of WGSL ``code`` whose bindings
  0..k-1 are storage buffers, read-only where ``layout[i] == 'r'``; a compile error raises
  :class:`ShaderError` with the compiler's log;
- ``dispatch(pipeline, bindings, groups)``: one compute pass (bindings: (buffer, offset,
  nbytes) triples), ``clear(buffer, offset, nbytes)``, ``copy(src, src_offset, dst,
  dst_offset, nbytes)``. These are recorded into one command encoder and submitted
  together at the next read, destroy or ``flush()`` (or every ``SUBMIT_EVERY`` commands):
  every write of this backend goes to a fresh buffer (``upload``), never through
  ``queue.writeBuffer`` into a live one, so deferring the submit cannot reorder anything.

The adapter is wgpu's default (high-performance) one, but not its OpenGL fallback unless
``SUKIYAKI_WEBGPU_ALLOW_GL=1``; the device is made with the adapter's own buffer limits (Mesa's
lavapipe: 2 GiB buffers, 128 MiB bindings). Without ``XDG_RUNTIME_DIR`` (Mesa warns), a
private 0700 folder is set for it.
"""

import os

#: Commands recorded before the encoder is submitted even without a read.
SUBMIT_EVERY = 256


_NO_ADAPTER = ("it needs a Vulkan, Metal or D3D12 device (on Linux without a GPU, Mesa's lavapipe gives one: "
               "apt-get install mesa-vulkan-drivers libvulkan1)")


class ShaderError(RuntimeError):
    """A WGSL shader failed to compile; the message holds the compiler's log."""


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


class Device:
    """One WebGPU device of the native wgpu package (see the module docstring)."""

    kind = "native"

    def __init__(self, power_preference="high-performance"):
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
        for name in ("max-buffer-size", "max-storage-buffer-binding-size", "max-storage-buffers-per-shader-stage",
                     "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
                     "max-compute-workgroup-size-x"):
            value = _limit(adapter.limits, name)
            if value is not None:
                want[name] = value
        self._device = adapter.request_device_sync(required_limits=want)
        self._adapter = adapter
        info = adapter.info
        names = ("vendor", "architecture", "device", "description", "adapter_type", "backend_type")
        self.info = {k: info.get(k, "") for k in names}
        self.limits = {k: _limit(self._device.limits, k) for k in want}
        self.limits["min-storage-buffer-offset-alignment"] = _limit(
            self._device.limits, "min-storage-buffer-offset-alignment") or 256
        self.limits["max-compute-workgroups-per-dimension"] = _limit(
            self._device.limits, "max-compute-workgroups-per-dimension") or 65535
        self._usage = (wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST)
        self._layouts = {}
        self._encoder = None
        self._pending = 0
        self.submits = 0

    # --- buffers ---
    def buffer(self, nbytes):
        """A new zero-filled storage buffer of at least nbytes (4-byte multiple, at least 4)."""
        return self._device.create_buffer(size=max(4, -(-nbytes // 4) * 4), usage=self._usage)

    def upload(self, data):
        """A new storage buffer holding the bytes of data (a bytes-like object)."""
        mv = memoryview(data).cast("B")
        n = len(mv)
        if n % 4 or n == 0:
            padded = bytearray(max(4, -(-n // 4) * 4))
            padded[:n] = mv
            mv = memoryview(padded)
        return self._device.create_buffer_with_data(data=mv, usage=self._usage)

    def read(self, buffer, offset, nbytes):
        """The bytes buffer[offset:offset + nbytes] (waits for the work recorded so far)."""
        self.flush()
        if nbytes <= 0:
            return b""
        start = offset - offset % 4
        end = -(-(offset + nbytes) // 4) * 4
        data = self._device.queue.read_buffer(buffer, start, end - start)
        return bytes(memoryview(data).cast("B")[offset - start:offset - start + nbytes])

    def destroy(self, buffer):
        """Release a buffer's memory now (after the work recorded so far)."""
        self.flush()
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

    def pipeline(self, code, label, layout):
        """A compute pipeline (entry point ``main``) of WGSL code; ShaderError with the log on failure."""
        try:
            module = self._device.create_shader_module(label=label, code=code)
            bgl, pl = self._layout(tuple(layout))
            pipe = self._device.create_compute_pipeline(label=label, layout=pl,
                                                        compute={"module": module, "entry_point": "main"})
        except self._wgpu.GPUError as exc:
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n{exc}") from None
        return (pipe, bgl)

    # --- commands ---
    def _enc(self):
        if self._encoder is None:
            self._encoder = self._device.create_command_encoder()
        self._pending += 1
        return self._encoder

    def dispatch(self, pipeline, bindings, groups):
        """Record one compute pass of pipeline over groups (x, y, z) workgroups."""
        pipe, bgl = pipeline
        entries = [{"binding": i, "resource": {"buffer": buf, "offset": off, "size": size}}
                   for i, (buf, off, size) in enumerate(bindings)]
        group = self._device.create_bind_group(layout=bgl, entries=entries)
        enc = self._enc()
        cp = enc.begin_compute_pass()
        cp.set_pipeline(pipe)
        cp.set_bind_group(0, group)
        cp.dispatch_workgroups(*groups)
        cp.end()
        self._maybe_submit()

    def clear(self, buffer, offset, nbytes):
        """Record zeroing buffer[offset:offset + nbytes] (4-byte multiples)."""
        if nbytes > 0:
            self._enc().clear_buffer(buffer, offset, nbytes)
            self._maybe_submit()

    def copy(self, src, src_offset, dst, dst_offset, nbytes):
        """Record a buffer-to-buffer copy (4-byte multiples)."""
        if nbytes > 0:
            self._enc().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)
            self._maybe_submit()

    def _maybe_submit(self):
        if self._pending >= SUBMIT_EVERY:
            self.flush()

    def flush(self):
        """Submit the commands recorded so far."""
        if self._encoder is not None:
            enc, self._encoder, self._pending = self._encoder, None, 0
            self._device.queue.submit([enc.finish()])
            self.submits += 1


def open_device():
    """The native device (LookupError when no adapter exists; ImportError without wgpu)."""
    return Device()
