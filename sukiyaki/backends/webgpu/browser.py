"""Device access in a web browser: ``navigator.gpu`` through Pyodide's JavaScript bridge.

The second adapter beside ``native.py`` (the ``wgpu`` package): it implements the hooks of
:class:`~sukiyaki.backends.webgpu.device.Device` with the browser's WebGPU API, so every shader
(``kernels/*.wgsl``), primitive and pipeline cache above is the one the native backend runs.
It imports ``js`` and ``pyodide`` only when a device is opened, so the module loads anywhere.

WebGPU's asynchronous calls (``requestAdapter``, ``requestDevice``, ``getCompilationInfo``,
``createComputePipelineAsync``, ``mapAsync``, ``popErrorScope``) are awaited from synchronous
Python with ``pyodide.ffi.run_sync`` (JavaScript Promise Integration). That needs the Python
call stack to have been entered asynchronously: code run by ``pyodide.runPythonAsync``, an
asyncio task, an ``async def`` called from JavaScript, or a function called with
``callPromising``; elsewhere opening the device raises :class:`LookupError` saying so (the
runtime in ``sukiyaki/web`` arranges it). In a Web Worker the GPU is ``self.navigator.gpu``.

Failures are reported, never returned as numbers:

- no ``navigator.gpu``, or no adapter: :class:`LookupError` with the reason;
- a shader that fails to compile: :class:`ShaderError` with the compiler's messages (line,
  column, text) and the offending source lines;
- a buffer over ``maxBufferSize``: :class:`MemoryError` before anything is allocated;
- any validation, out-of-memory or internal error the device reports, and a lost device:
  :class:`DeviceError` at the next read (three error scopes stay pushed and are popped at
  every read, and ``device.lost`` is watched), so a wrong result never comes back;
- a promise that does not settle: :class:`DeviceError` after ``TIMEOUT_S`` seconds.

Example (in Pyodide, inside ``runPythonAsync`` or an asyncio task):
    >>> from sukiyaki.backends import get_backend                   # doctest: +SKIP
    >>> get_backend("webgpu").device.info["architecture"]           # doctest: +SKIP
    'swiftshader'
"""

from sukiyaki.backends.webgpu.device import (INFO_KEYS, READ_LIMITS, WANTED_LIMITS, Device as _Device,  # noqa: F401
                                             DeviceError, ShaderError, camel)

#: Seconds a WebGPU promise may stay unsettled before the call fails (a read waits for all the
#: work recorded before it, which on a software adapter can take long).
TIMEOUT_S = {"adapter": 30.0, "compile": 120.0, "read": 600.0}
_SCOPES = ("validation", "out-of-memory", "internal")


#: Promise.race of a promise and a timer (no Python callback, so nothing is left behind when it settles).
_RACE = """let t;
const guard = new Promise((_, reject) => {
  t = setTimeout(() => reject(new Error(what + " gave no answer within " + ms / 1000 + " s")), ms);
});
return Promise.race([p, guard]).finally(() => clearTimeout(t));"""


class _Buffer:
    """A GPUBuffer (``js``) and its size; destroyed (after the commands recorded so far are
    submitted) once Python drops it, so device memory does not wait for JavaScript's GC."""

    __slots__ = ("js", "size", "device", "__weakref__")

    def __init__(self, handle, size, device):
        self.js, self.size, self.device = handle, size, device

    def destroy(self):
        if self.js is not None:
            self.js.destroy()
            self.js = None

    def __del__(self):
        if self.js is not None and self.device is not None:
            self.device._doomed.append(self.js)
            self.js = None

    def __repr__(self):
        return f"<GPUBuffer {self.size} bytes>"


class Device(_Device):
    """One WebGPU device of the browser (see the module docstring).

    Args:
        power_preference: 'high-performance' or 'low-power'.
        gpu: the GPU object (default ``navigator.gpu`` of this window or worker).
    """

    kind = "browser"

    def __init__(self, power_preference="high-performance", gpu=None):
        super().__init__()
        import js
        from pyodide.ffi import JsException, can_run_sync, create_once_callable, run_sync, to_js

        self._jsmod, self._run_sync, self._JsException = js, run_sync, JsException
        self._race = js.Function.new("p", "ms", "what", _RACE)
        self._to_js = lambda x: to_js(x, dict_converter=js.Object.fromEntries)
        if not can_run_sync():
            raise LookupError("the browser WebGPU adapter awaits the GPU with pyodide.ffi.run_sync, which is not "
                              "available here: it needs JavaScript Promise Integration (Chromium 137+, Firefox with "
                              "javascript.options.wasm_js_promise_integration) and Python entered asynchronously "
                              "(runPythonAsync, an asyncio task, or callPromising)")
        if gpu is None:
            nav = getattr(js, "navigator", None)
            gpu = getattr(nav, "gpu", None) if nav is not None else None
        if gpu is None:
            raise LookupError("this browser gives the page no WebGPU (navigator.gpu is missing: WebGPU needs a "
                              "secure context, https or localhost, and a browser that has it enabled)")
        self._gpu = gpu
        adapter = self._await(gpu.requestAdapter(self._to_js({"powerPreference": power_preference})),
                              "requestAdapter", TIMEOUT_S["adapter"])
        if adapter is None:
            raise LookupError("navigator.gpu.requestAdapter() found no WebGPU adapter (the browser has WebGPU "
                              "but no usable GPU for it; Chromium gives a software one with --enable-unsafe-webgpu)")
        want = {}
        for name in WANTED_LIMITS:
            value = getattr(adapter.limits, camel(name), None)
            if value is not None:
                want[camel(name)] = int(value)
        device = self._await(adapter.requestDevice(self._to_js({"requiredLimits": want})), "requestDevice",
                             TIMEOUT_S["adapter"])
        if device is None:
            raise LookupError("the WebGPU adapter gave no device")
        self._adapter, self._device, self._queue = adapter, device, device.queue
        info = adapter.info
        self.info = {k: str(getattr(info, camel(k), "") or "") for k in INFO_KEYS}
        if getattr(info, "isFallbackAdapter", False) or self.info["architecture"] == "swiftshader":
            self.info["adapter_type"] = "cpu"  # a software adapter: its memory is the host's
        self.info["backend_type"] = self.info["backend_type"] or "browser"
        self.limits = {k: int(getattr(device.limits, camel(k))) for k in WANTED_LIMITS
                       if getattr(device.limits, camel(k), None) is not None}
        for name, default in READ_LIMITS.items():
            self.limits[name] = int(getattr(device.limits, camel(name), None) or default)
        usage = js.GPUBufferUsage
        self._usage = usage.STORAGE | usage.COPY_SRC | usage.COPY_DST
        self._read_usage = usage.MAP_READ | usage.COPY_DST
        self._map_read = js.GPUMapMode.READ
        self._layouts = {}
        self._pass = None  # (encoder, its open compute pass)
        self._doomed = []
        self.lost = None  # the reason, once the device is lost
        device.lost.then(create_once_callable(self._on_lost))
        for scope in _SCOPES:
            device.pushErrorScope(scope)

    # --- plumbing ---
    def _on_lost(self, info):
        self.lost = f"{getattr(info, 'reason', '') or 'unknown'}: {getattr(info, 'message', '') or 'no message'}"

    def _check_alive(self):
        if self.lost is not None:
            raise DeviceError(f"webgpu: the browser's GPU device was lost ({self.lost}); reload the page "
                              f"(or open it with ?backend=numpy)")

    def _await(self, promise, what, timeout_s):
        """The value of a JavaScript promise (run_sync), failing after timeout_s seconds."""
        try:
            return self._run_sync(self._race(promise, int(timeout_s * 1000), what))
        except self._JsException as exc:
            if "gave no answer within" in str(exc):
                raise DeviceError(f"webgpu: {exc}") from None
            raise
        except RuntimeError as exc:
            if "stack switch" in str(exc):
                raise DeviceError(f"webgpu: cannot await {what} here: {exc} (the browser adapter runs only from "
                                  f"Python entered asynchronously)") from None
            raise

    def _errors(self):
        """Pop the device's error scopes (and push them again): their messages."""
        d = self._device
        pops = [d.popErrorScope() for _ in _SCOPES]
        for scope in _SCOPES:
            d.pushErrorScope(scope)
        found = self._await(self._jsmod.Promise.all(self._to_js(pops)), "popErrorScope", TIMEOUT_S["read"])
        return [str(e.message) for e in found if e is not None]

    def _bury(self):
        doomed, self._doomed = self._doomed, []
        for handle in doomed:
            handle.destroy()

    # --- buffers ---
    def _create(self, size):
        desc = self._to_js({"size": size, "usage": self._usage})
        return _Buffer(self._device.createBuffer(desc), size, self)

    def _create_with_data(self, mv):
        size = len(mv)
        handle = self._device.createBuffer(self._to_js({"size": size, "usage": self._usage,
                                                        "mappedAtCreation": True}))
        self._jsmod.Uint8Array.new(handle.getMappedRange()).assign(mv)
        handle.unmap()
        return _Buffer(handle, size, self)

    def _read(self, buffer, start, length):
        self._check_alive()
        js = self._jsmod
        staging = self._device.createBuffer(self._to_js({"size": length, "usage": self._read_usage}))
        try:
            enc = self._device.createCommandEncoder()
            enc.copyBufferToBuffer(buffer.js, start, staging, 0, length)
            self._queue.submit(self._to_js([enc.finish()]))
            try:
                self._await(staging.mapAsync(self._map_read), "mapAsync (reading results)", TIMEOUT_S["read"])
            except Exception as exc:
                self._check_alive()
                errors = self._errors()
                raise DeviceError("webgpu: reading results failed: " + "; ".join(errors or [str(exc)])) from None
            data = js.Uint8Array.new(staging.getMappedRange()).to_bytes()
            staging.unmap()
        finally:
            staging.destroy()
        errors = self._errors()
        if errors:
            raise DeviceError("webgpu: the browser's GPU device reported an error, so the work since the last "
                              "read is void: " + "; ".join(errors))
        self._check_alive()
        return data

    def _write(self, buffer, offset, mv):
        data = self._jsmod.Uint8Array.new(len(mv))
        data.assign(mv)
        self._queue.writeBuffer(buffer.js, offset, data)

    def _destroy(self, buffer):
        buffer.destroy()

    def _usable(self, buffer):
        return buffer.js is not None  # _Buffer.__del__ hands the handle over to be destroyed

    # --- shaders ---
    def _layout(self, layout):
        pl = self._layouts.get(layout)
        if pl is None:
            js = self._jsmod
            entries = [{"binding": i, "visibility": js.GPUShaderStage.COMPUTE,
                        "buffer": {"type": "storage" if kind == "w" else "read-only-storage"}}
                       for i, kind in enumerate(layout)]
            bgl = self._device.createBindGroupLayout(self._to_js({"entries": entries}))
            pl = self._layouts[layout] = (bgl, self._device.createPipelineLayout(
                self._to_js({"bindGroupLayouts": [bgl]})))
        return pl

    def _compile(self, code, label, layout):
        self._check_alive()
        # a scope of its own: a shader's errors are reported here (ShaderError), not at the next read
        self._device.pushErrorScope("validation")
        try:
            pipe, bgl = self._compile_in_scope(code, label, layout)
        finally:
            scoped = self._await(self._device.popErrorScope(), "popErrorScope", TIMEOUT_S["compile"])
        if scoped is not None:
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n{scoped.message}")
        return (pipe, bgl)

    def _compile_in_scope(self, code, label, layout):
        module = self._device.createShaderModule(self._to_js({"label": label, "code": code}))
        info = self._await(module.getCompilationInfo(), f"compiling WGSL shader {label!r}", TIMEOUT_S["compile"])
        errors = [m for m in info.messages if m.type == "error"]
        if errors:
            lines = code.split("\n")
            log = []
            for m in errors:
                n = int(m.lineNum)
                log.append(f"{label}:{n}:{int(m.linePos)}: error: {m.message}")
                if 0 < n <= len(lines):
                    log.append("    " + lines[n - 1])
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n" + "\n".join(log))
        bgl, pl = self._layout(layout)
        desc = self._to_js({"label": label, "layout": pl, "compute": {"module": module, "entryPoint": "main"}})
        try:
            pipe = self._await(self._device.createComputePipelineAsync(desc), f"creating pipeline {label!r}",
                               TIMEOUT_S["compile"])
        except self._JsException as exc:
            self._check_alive()
            raise ShaderError(f"WGSL shader {label!r} failed to compile:\n{exc}") from None
        return pipe, bgl

    # --- commands ---
    def _new_encoder(self):
        self._check_alive()
        return self._device.createCommandEncoder()

    def _record_dispatch(self, enc, pipeline, bindings, groups):
        pipe, bgl = pipeline
        entries = [{"binding": i, "resource": {"buffer": buf.js, "offset": off, "size": size}}
                   for i, (buf, off, size) in enumerate(bindings)]
        group = self._device.createBindGroup(self._to_js({"layout": bgl, "entries": entries}))
        # consecutive dispatches share one compute pass (each dispatch is its own usage scope)
        if self._pass is None or self._pass[0] is not enc:
            self._pass = (enc, enc.beginComputePass())
        cp = self._pass[1]
        cp.setPipeline(pipe)
        cp.setBindGroup(0, group)
        cp.dispatchWorkgroups(*groups)

    def _end_pass(self):
        if self._pass is not None:
            self._pass[1].end()
            self._pass = None

    def _record_clear(self, enc, buffer, offset, nbytes):
        self._end_pass()
        enc.clearBuffer(buffer.js, offset, nbytes)

    def _record_copy(self, enc, src, src_offset, dst, dst_offset, nbytes):
        self._end_pass()
        enc.copyBufferToBuffer(src.js, src_offset, dst.js, dst_offset, nbytes)

    def _submit(self, enc):
        self._end_pass()
        self._queue.submit(self._to_js([enc.finish()]))
        self._bury()

    def flush(self):
        super().flush()
        if self._doomed and self._encoder is None:
            self._bury()


def open_device():
    """The browser's device (LookupError naming why when there is none)."""
    return Device()
