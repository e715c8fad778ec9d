"""What the two device adapters share: the small device interface the backend uses, the
command-recording policy, buffer sizes and read windows, the limits asked for, the errors.

``native.py`` (the ``wgpu`` package) and ``browser.py`` (``navigator.gpu`` through Pyodide's
JavaScript bridge) subclass :class:`Device` and implement only the hooks that talk to
WebGPU (``_create``, ``_create_with_data``, ``_read``, ``_destroy``, ``_compile``,
``_new_encoder``, ``_record_dispatch``, ``_record_clear``, ``_record_copy``, ``_submit``).
Every shader (``kernels/*.wgsl``), every primitive and the launcher above are the same.

The interface (what ``backend.py``, ``kernels.py`` and ``nn.py`` call):

- ``info`` (dict: vendor, architecture, device, description, adapter_type, backend_type) and
  ``limits`` (dict of the limits the device was created with, WebGPU's dashed names);
- ``buffer(nbytes, zero=True)`` -> a storage buffer (``.size`` in bytes; zero-filled unless
  ``zero=False``: then its bytes are whatever its last owner left), ``upload(data)`` -> a
  buffer holding bytes (a small one: a buffer of the pool, filled by a recorded copy from
  the parameter arena), ``read(buffer, offset, nbytes)`` -> bytes (the only device-to-host
  path), ``recycle(buffer)`` (no array uses it any more: the pool of pool.py hands it out
  again), ``destroy(buffer)``;
- ``pipeline(code, label, layout)`` -> a compute pipeline of WGSL ``code`` (entry point
  ``main``) whose bindings 0..k-1 are storage buffers, read-only where ``layout[i] == 'r'``
  or ``'m'`` (``'m'``, last: the kernel's parameters, which ``params`` places; an adapter
  may bind them at a per-dispatch offset); a compile error raises :class:`ShaderError` with
  the compiler's log;
- ``dispatch(pipeline, bindings, groups)``: one compute pass (bindings: (buffer, offset,
  nbytes) triples), ``clear(buffer, offset, nbytes)``, ``copy(src, src_offset, dst,
  dst_offset, nbytes)``. These are recorded into one command encoder and submitted
  together at the next read, destroy or ``flush()`` (or every ``SUBMIT_EVERY`` commands):
  every write of this backend goes to a fresh buffer (``upload``) or is a recorded copy
  from the arena below, never through ``queue.writeBuffer`` into a live one, so deferring
  the submit cannot reorder anything;
- ``params(data)`` -> (buffer, offset, nbytes): a kernel's small parameter block, placed in
  the encoder's parameter arena (one buffer, written with ``queue.writeBuffer`` just before
  the encoder is submitted: the only commands that read it are that encoder's), instead of
  one new buffer a dispatch.

Example:
    >>> padded_size(5), read_window(6, 3)
    (8, (4, 12, 2))
"""

import weakref

from sukiyaki.backends.webgpu.pool import BufferPool

#: Commands recorded before the encoder is submitted even without a read: the device starts on
#: a step while the rest is recorded (H200, VGG16 b32 through Vulkan: 149 img/s submitting
#: every 256, 158 every 64, 32 or 16; benchmarks/webgpu_native.py --submit-every).
SUBMIT_EVERY = 64
#: Bytes of the parameter arena (kernels' META blocks, one per dispatch at aligned offsets).
ARENA_BYTES = 256 << 10
#: Uploads of at most this many bytes are staged through the arena (see ``upload``; the
#: arena grows to the largest, once: a training step's batch of images is one).
STAGED_BYTES = 64 << 20

#: Limits asked of the device at the adapter's own values (the WebGPU defaults are smaller).
WANTED_LIMITS = ("max-buffer-size", "max-storage-buffer-binding-size", "max-storage-buffers-per-shader-stage",
                 "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
                 "max-compute-workgroup-size-x")
#: Limits only read (their defaults are what the kernels assume when the adapter does not say).
READ_LIMITS = {"min-storage-buffer-offset-alignment": 256, "max-compute-workgroups-per-dimension": 65535}
INFO_KEYS = ("vendor", "architecture", "device", "description", "adapter_type", "backend_type")


class ShaderError(RuntimeError):
    """A WGSL shader failed to compile; the message holds the compiler's log."""


class DeviceError(RuntimeError):
    """The device was lost or reported an error: the results of the work since the last good
    read cannot be trusted (the message says what the device said)."""


def padded_size(nbytes):
    """Bytes of a buffer holding nbytes: a multiple of 4, at least 4 (WebGPU's rules)."""
    return max(4, -(-int(nbytes) // 4) * 4)


def read_window(offset, nbytes):
    """(start, end, skip) of the 4-byte-aligned range covering bytes offset .. offset + nbytes."""
    start = offset - offset % 4
    end = -(-(offset + nbytes) // 4) * 4
    return start, end, offset - start


def camel(name):
    """The JavaScript name of a dashed WebGPU name: 'max-buffer-size' -> 'maxBufferSize'."""
    first, *rest = name.split("-")
    return first + "".join(w.capitalize() for w in rest)


class Device:
    """The adapter-independent half of a WebGPU device (see the module docstring); subclasses
    set ``info`` and ``limits`` and implement the hooks."""

    kind = "abstract"

    def __init__(self):
        self.info = {}
        self.limits = {}
        self._encoder = None
        self._pending = 0
        self.submits = 0
        self._arena = None  # the parameter arena: (buffer, its bytes on the host, as many)
        self._arena_used = 0  # bytes of it placed since the last submit
        self.pool = BufferPool()
        self._unpooled = weakref.WeakSet()  # buffers of large uploads: dropped when given back

    # --- buffers ---
    def _check_size(self, size):
        limit = self.limits.get("max-buffer-size")
        if limit and size > limit:
            raise MemoryError(f"webgpu: a buffer of {size} bytes is more than this device's max-buffer-size "
                              f"({limit} bytes)")

    def buffer(self, nbytes, zero=True):
        """A storage buffer of at least nbytes (4-byte multiple, at least 4): one of the pool
        (cleared on the device first when zero) or a new one (zero-filled)."""
        size = padded_size(nbytes)
        buf = self.pool.take(size, self._usable)
        if buf is not None:
            if zero:
                self.clear(buf, 0, size)
            return buf
        self._check_size(size)
        try:
            buf = self._create(size)
        except Exception:
            if not self.pool.pooled:
                raise
            self.release_pool()  # out of memory, maybe: the kept buffers go, then once more
            buf = self._create(size)
        self.pool.handed_out(size)
        return buf

    def recycle(self, buffer):
        """Give back a buffer no array uses any more: the pool hands it out again (see pool.py),
        except one of a large upload (no later upload takes it: each makes its own)."""
        if buffer in self._unpooled:
            self._unpooled.discard(buffer)
            self.pool.forget(buffer.size)
            return
        self.pool.give(buffer)

    def release_pool(self):
        """Drop the buffers the pool keeps (their memory goes once the work recorded is done)."""
        self.flush()
        self.pool.clear()

    def upload(self, data):
        """A storage buffer holding the bytes of data (a bytes-like object): up to STAGED_BYTES,
        one of the pool filled from the parameter arena by a recorded copy; else a new one."""
        mv = memoryview(data).cast("B")
        n = len(mv)
        if n % 4 or n == 0:
            padded = bytearray(padded_size(n))
            padded[:n] = mv
            mv = memoryview(padded)
        if len(mv) <= STAGED_BYTES:
            buf = self.buffer(len(mv), zero=False)
            arena, start, size = self.params(mv)
            self.copy(arena, start, buf, 0, size)
            return buf
        self._check_size(len(mv))
        buf = self._create_with_data(mv)
        self.pool.handed_out(len(mv))
        self._unpooled.add(buf)
        return buf

    def params(self, data):
        """(buffer, offset, nbytes) holding the bytes of data (a kernel's parameters) when the
        commands recorded from now until the next submit run (see the module docstring)."""
        mv = memoryview(data).cast("B")
        n = padded_size(len(mv))
        align = self.limits.get("min-storage-buffer-offset-alignment") or 256
        start = -(-self._arena_used // align) * align
        arena = self._arena
        if arena is None or start + n > len(arena[1]):
            self.flush()
            if arena is None or n > len(arena[1]):
                buf = self._create(max(ARENA_BYTES, -(-n // align) * align))
                arena = self._arena = (buf, bytearray(buf.size))
            start = 0
        host = arena[1]
        host[start:start + len(mv)] = mv
        if n > len(mv):
            host[start + len(mv):start + n] = bytes(n - len(mv))
        self._arena_used = start + n
        return (arena[0], start, n)

    def read(self, buffer, offset, nbytes):
        """The bytes buffer[offset:offset + nbytes] (waits for the work recorded so far)."""
        self.flush()
        if nbytes <= 0:
            return b""
        start, end, skip = read_window(offset, nbytes)
        data = self._read(buffer, start, end - start)
        return bytes(memoryview(data).cast("B")[skip:skip + nbytes])

    def destroy(self, buffer):
        """Release a buffer's memory now (after the work recorded so far)."""
        self.flush()
        self._destroy(buffer)
        self.pool.forget(buffer.size)

    # --- shaders ---
    def pipeline(self, code, label, layout):
        """A compute pipeline (entry point ``main``) of WGSL code; ShaderError with the log on failure."""
        return self._compile(code, label, tuple(layout))

    # --- commands ---
    def _enc(self):
        if self._encoder is None:
            self._encoder = self._new_encoder()
        self._pending += 1
        return self._encoder

    def dispatch(self, pipeline, bindings, groups):
        """Record one compute pass of pipeline over groups (x, y, z) workgroups."""
        enc = self._encoder  # self._enc() and self._maybe_submit(), inline (one call a kernel)
        if enc is None:
            enc = self._encoder = self._new_encoder()
        self._pending += 1
        self._record_dispatch(enc, pipeline, bindings, groups)
        if self._pending >= SUBMIT_EVERY:
            self.flush()

    def clear(self, buffer, offset, nbytes):
        """Record zeroing buffer[offset:offset + nbytes] (4-byte multiples)."""
        if nbytes > 0:
            self._record_clear(self._enc(), buffer, offset, nbytes)
            self._maybe_submit()

    def copy(self, src, src_offset, dst, dst_offset, nbytes):
        """Record a buffer-to-buffer copy (4-byte multiples)."""
        if nbytes > 0:
            self._record_copy(self._enc(), src, src_offset, dst, dst_offset, nbytes)
            self._maybe_submit()

    def _maybe_submit(self):
        if self._pending >= SUBMIT_EVERY:
            self.flush()

    def flush(self):
        """Submit the commands recorded so far (the parameter arena written first)."""
        if self._arena_used:
            used, self._arena_used = self._arena_used, 0
            self._write(self._arena[0], 0, memoryview(self._arena[1])[:used])
        if self._encoder is not None:
            enc, self._encoder, self._pending = self._encoder, None, 0
            self._submit(enc)
            self.submits += 1

    # --- hooks (each adapter) ---
    def _usable(self, buffer):
        """Whether a buffer given back to the pool still works (not finalized by the garbage collector)."""
        return True

    def _create(self, size):
        raise NotImplementedError

    def _create_with_data(self, mv):
        raise NotImplementedError

    def _read(self, buffer, start, length):
        raise NotImplementedError

    def _write(self, buffer, offset, mv):
        """queue.writeBuffer: mv (4-byte multiple) into buffer at offset, before later submits."""
        raise NotImplementedError

    def _destroy(self, buffer):
        raise NotImplementedError

    def _compile(self, code, label, layout):
        raise NotImplementedError

    def _new_encoder(self):
        raise NotImplementedError

    def _record_dispatch(self, enc, pipeline, bindings, groups):
        raise NotImplementedError

    def _record_clear(self, enc, buffer, offset, nbytes):
        raise NotImplementedError

    def _record_copy(self, enc, src, src_offset, dst, dst_offset, nbytes):
        raise NotImplementedError

    def _submit(self, enc):
        raise NotImplementedError
