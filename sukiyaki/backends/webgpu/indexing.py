"""Data movement by offset tables: transpose, concat, tile, gather, scatter, take/put_linear,
and nonzero_linear.

One kernel, ``copy``, moves dst[dpos(j)] = src[spos(j)] for every multi-index j of an
iteration shape (column-major), each position a sum over axes of a per-axis table entry:
``pos(j) = sum_d T[seg_d + j_d]``. Slices and strides become tables on the host (a few
integers an axis); index arrays (device int64 or int32) become table segments on the
device (kernel ``idx_table``), never read back. Scatters with index arrays may write one
element twice: the last in order wins, as in numpy, through ``copy_last`` (atomicMax of
the writer's number per destination, then only the winner writes).
"""

import numpy as np

from sukiyaki.backends.webgpu import elementwise as E
from sukiyaki.backends.webgpu import kernels as K
from sukiyaki.backends.webgpu.array import GPUArray, kind_of


def _fstrides(shape):
    out, s = [], 1
    for n in shape:
        out.append(s)
        s *= n
    return out


def _words(kind):
    return 2 if kind in ("f64", "i64") else 1


def _copy_body(src_kind, dst_dtype, mode):
    """kernels/copy.wgsl for mode 0: plain copy; 1: mark (atomicMax of t + 1 per destination);
    2: write if this thread won."""
    dst_kind = kind_of(dst_dtype)
    tb = 3 if mode else 2  # binding of T
    sb = tb - 1  # binding of SRC
    if mode == 1:
        finish = "atomicMax(&WIN[u32(d)], t + 1u);"
    else:
        sw = f"off({sb}u) + u32(s)" + (" * 2u" if _words(src_kind) == 2 else "")
        dw = "off(0u) + u32(d)" + (" * 2u" if _words(dst_kind) == 2 else "")
        value = E.convert(E.load(src_kind, "SRC", sw), E.NATURAL[src_kind], E.NATURAL[dst_kind])
        finish = E.store(dst_dtype, "DST", dw, value)
        if mode == 2:
            finish = "if (atomicLoad(&WIN[u32(d)]) != t + 1u) { return; }\n    " + finish
    return K.source("copy").replace("$TB", str(tb)).replace("$FINISH", finish)


def index_copy(be, dst, src, it_shape, src_tables, dst_tables, last_wins=False):
    """dst[dpos(j)] = src[spos(j)] over the multi-indices j of it_shape (see module docstring).

    Tables: per axis a list of ints (element offsets) or (index GPUArray, stride)."""
    it_shape = tuple(int(n) for n in it_shape)
    n = int(np.prod(it_shape, dtype=np.int64)) if it_shape else 1
    if n == 0:
        return
    nd = len(it_shape)
    parts, device_parts, segs, size = [], [], [], 0
    for tables in (src_tables, dst_tables):
        for d, tab in enumerate(tables):
            segs.append(size)
            if isinstance(tab, tuple):
                idx, stride = tab
                device_parts.append((size, idx, stride))
                tab = np.zeros(it_shape[d], np.int64)
            tab = np.asarray(tab, dtype=np.int64).reshape(-1)
            parts.append(tab)
            size += tab.size
    table = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
    tbuf = be.device.upload(table.tobytes() if table.size else b"\0\0\0\0")
    trange = (tbuf, 0, max(4, table.nbytes))
    for seg, idx, stride in device_parts:
        if idx.size == 0:
            continue
        be._run(("idx_table",), lambda: K.assemble("idx_table", ["T"], ["IDX"]),
                idx.size, [trange], [idx], [idx.words, seg, stride])
    src = be._detach(src, [dst])
    params = [nd] + list(it_shape) + segs[:nd] + segs[nd:]
    if not last_wins:
        key = ("copy", src.kind, dst.dtype.str)
        be._run(key, lambda: K.assemble("copy", ["DST"], ["SRC", "T"], LIBS, body=_copy_body(src.kind, dst.dtype, 0)),
                n, [dst], [src, trange], params)
        be.device.recycle(tbuf)
        return
    win = be.device.buffer(4 * dst.size)
    wrange = (win, 0, max(4, 4 * dst.size))
    key = ("copy_mark",)
    be._run(key, lambda: K.assemble("copy_mark", ["DSTX", "WIN:atomic<u32>"], ["SRCX", "T"], LIBS,
                                    body=_copy_body(src.kind, dst.dtype, 1)),
            n, [dst, wrange], [src, trange], params)
    key = ("copy_last", src.kind, dst.dtype.str)
    be._run(key, lambda: K.assemble("copy_last", ["DST", "WIN:atomic<u32>"], ["SRC", "T"], LIBS,
                                    body=_copy_body(src.kind, dst.dtype, 2)),
            n, [dst, wrange], [src, trange], params)
    be.device.recycle(tbuf)
    be.device.recycle(win)


LIBS = ("f64", "common", "math")


def _axis_table(key, n, stride):
    """(count, table) of one key (slice or index array) on an axis of n with element stride."""
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        r = np.arange(start, stop, step, dtype=np.int64)
        return r.size, r * stride
    if not isinstance(key, GPUArray):
        raise TypeError(f"webgpu: an index key must be a slice or a webgpu array, got {type(key).__name__}")
    return key.size, (key, stride)


def _dense(shape):
    return [np.arange(n, dtype=np.int64) * s for n, s in zip(shape, _fstrides(shape))]


def gather(be, x, keys):
    keys = list(keys) + [slice(None)] * (x.ndim - len(keys))
    st = _fstrides(x.shape)
    counts, src = [], []
    for d, key in enumerate(keys):
        c, tab = _axis_table(key, x.shape[d], st[d])
        counts.append(c)
        src.append(tab)
    out = be._new(tuple(counts), x.dtype, zero=False)  # the copy writes every element
    index_copy(be, out, x, counts, src, _dense(counts))
    return out


def _values_tables(values, counts):
    """Tables reading values (broadcast to counts, right-aligned as numpy) in the selection's order."""
    nd = len(counts)
    vshape = tuple(values.shape)
    if len(vshape) > nd:
        if any(s != 1 for s in vshape[:len(vshape) - nd]):
            raise ValueError(f"webgpu: values {vshape} do not broadcast to the selection {tuple(counts)}")
        vshape = vshape[len(vshape) - nd:]
    vshape = (1,) * (nd - len(vshape)) + vshape
    st = _fstrides(vshape)
    tables = []
    for d in range(nd):
        if vshape[d] == counts[d]:
            tables.append(np.arange(counts[d], dtype=np.int64) * st[d])
        elif vshape[d] == 1:
            tables.append(np.zeros(counts[d], np.int64))
        else:
            raise ValueError(f"webgpu: values {tuple(values.shape)} do not broadcast to the selection {tuple(counts)}")
    return tables


def _as_array(be, values, dtype):
    if isinstance(values, GPUArray):
        return values
    v = values.item() if isinstance(values, np.generic) else values
    return be.full((1,), v, dtype)


def scatter(be, x, keys, values):
    keys = list(keys) + [slice(None)] * (x.ndim - len(keys))
    st = _fstrides(x.shape)
    counts, dst = [], []
    for d, key in enumerate(keys):
        c, tab = _axis_table(key, x.shape[d], st[d])
        counts.append(c)
        dst.append(tab)
    values = _as_array(be, values, x.dtype)
    src = _values_tables(values, counts)
    last = any(isinstance(t, tuple) for t in dst)
    index_copy(be, x, values, counts, src, dst, last_wins=last)


def take_linear(be, x, idx):
    out = be._new(idx.shape, x.dtype, zero=False)  # the copy writes every element
    flat = be.reshape(x, (x.size,))
    index_copy(be, out, flat, (idx.size,), [(idx, 1)], [np.arange(idx.size)])
    return out


def put_linear(be, x, idx, values):
    values = _as_array(be, values, x.dtype)
    flat = be.reshape(x, (x.size,))
    vt = np.zeros(idx.size, np.int64) if values.size == 1 else np.arange(idx.size)
    if values.size not in (1, idx.size):
        raise ValueError(f"put_linear: {values.size} values for {idx.size} indices")
    index_copy(be, flat, be.reshape(values, (values.size,)), (idx.size,), [vt], [(idx, 1)], last_wins=True)


_CHUNK = 256


def nonzero_linear(be, x):
    """0-based column-major indices (int64) of the nonzero elements: counts per chunk, a scan,
    one 4-byte read of the total (the result's size), then the indices."""
    n = x.size
    if n == 0:
        return be._new((0,), np.int64)
    nb = -(-n // _CHUNK)
    nat = E.NATURAL[x.kind]
    words = _words(x.kind)

    def truth(binding):
        w = f"off({binding}u) + e" + (" * 2u" if words == 2 else "")
        return E.convert(E.load(x.kind, "X", w), nat, "bool")

    counts = be.device.buffer(4 * (nb + 1))
    crange = (counts, 0, 4 * (nb + 1))
    body = K.source("nz_count").replace("$CHUNK", str(_CHUNK)).replace("$TRUTH", truth(1))
    be._run(("nz_count", x.kind), lambda: K.assemble("nz_count", ["COUNTS"], ["X"], LIBS, body=body),
            nb, [crange], [x], [n])
    be._run(("nz_scan",), lambda: K.assemble("nz_scan", ["COUNTS"], []), 1, [crange], [], [nb])
    total = int(np.frombuffer(be.device.read(counts, 4 * nb, 4), np.uint32)[0])
    out = be._new((total,), np.int64)
    if total:
        body = K.source("nz_write").replace("$CHUNK", str(_CHUNK)).replace("$TRUTH", truth(1))
        be._run(("nz_write", x.kind), lambda: K.assemble("nz_write", ["OUT"], ["X", "COUNTS"], LIBS, body=body),
                nb, [out], [x, crange], [n])
    be.device.recycle(counts)
    return out
