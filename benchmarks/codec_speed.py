"""Speed of the weight/gradient codecs (sukiyaki.distributed.codec) on the host, numpy only.

For each codec: encode and decode throughput in MB/s of float32 input (1 MB = 1e6 bytes),
the encoded size against raw float32, the error (rms of decoded - x over rms of x) and the
time one encode + decode of VGG16's 138 M parameters would take at that speed. The
reference line, measured in the same run, is numpy's own ``astype`` float32 -> float16
(and back): the cheapest conversion numpy has, a floor for any codec written on it.

Method: a column-major float32 tensor of --n values (standard normal, default 10 M),
made once outside the timing. Each measurement is the median of --repeats repeats; a
repeat calls the function in a loop for at least 0.2 s (benchmarks/_measure.interleaved),
all the functions taking turns so that the machine's noise hits each alike. The 8-bit
encoders use the codec's threads (``SUKIYAKI_CODEC_THREADS``; 1 for one core), printed.

With ``--paths``: the two paths that encode every round of distributed training, on VGG16's
138 M parameters (its 32 tensors' shapes, standard normal values), at each ``--threads``
count of the codec (:mod:`sukiyaki.distributed.codec_threads`): the worker's gradient upload
(``Worker.encode_tensor`` of every tensor: the finiteness check, then
``ErrorFeedback.compress_pieces`` with a residual, in pieces of ``PART_BYTES``) and the
coordinator's weight broadcast (``encode_pieces`` of every tensor, cut as ``Broadcast`` cuts
them). The peer, in the same run: the codec before the fused, threaded coder
(``tests/distributed/codec_before.py``, one thread), whose bytes ours must equal (checked
here on the first round). Seconds per round: median of --repeats, the paths taking turns.

Example:
    python benchmarks/codec_speed.py                  # 10 M values, prints the table
    python benchmarks/codec_speed.py --quick          # smoke run (1 M values, 1 repeat)
    python benchmarks/codec_speed.py --n 2000000 --block 128 --json codec.json
    python benchmarks/codec_speed.py --paths --threads 1,2,8 --repeats 3
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _measure import interleaved, machine_line, median  # noqa: E402
from sukiyaki.distributed import codec as C  # noqa: E402
from sukiyaki.distributed import codec_threads  # noqa: E402
from sukiyaki.distributed import protocol as P  # noqa: E402
from sukiyaki.distributed.codec import CODECS, decode, encode  # noqa: E402

VGG16_PARAMS = 138_357_544
#: VGG16's convolutions (in, out channels; 3x3) and linear layers (in, out).
VGG16_CONV = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
              (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG16_FC = [(25088, 4096), (4096, 4096), (4096, 1000)]


def vgg16_shapes():
    """[(name, shape)] of VGG16's 32 parameter tensors, in forward order (138,357,544 values)."""
    out = []
    for k, (i, o) in enumerate(VGG16_CONV):
        out += [(f"conv{k + 1}/W", (o, i, 3, 3)), (f"conv{k + 1}/b", (o,))]
    for k, (i, o) in enumerate(VGG16_FC):
        out += [(f"fc{k + 6}/W", (o, i)), (f"fc{k + 6}/b", (o,))]
    return out


def measure(n, repeats, block):
    """Rows of the table: one per codec, then the reference; as a list of dicts."""
    x = np.asfortranarray(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    mb = 4 * n / 1e6
    blobs = {c: encode(x, c, block=block) for c in CODECS}
    fns = {}
    for c in CODECS:
        fns[f"{c} encode"] = lambda c=c: (encode(x, c, block=block), mb)[1]
        fns[f"{c} decode"] = lambda c=c: (decode(blobs[c], c, x.shape, block=block), mb)[1]
    half = x.astype(np.float16)
    fns["astype encode"] = lambda: (x.astype(np.float16), mb)[1]
    fns["astype decode"] = lambda: (half.astype(np.float32), mb)[1]
    rates = {k: median(v) for k, v in interleaved(fns, repeats).items()}
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    rows = []
    for c in [*CODECS, "astype"]:
        if c == "astype":
            size, y = 2 * n, half.astype(np.float32)
        else:
            size, y = len(blobs[c]), decode(blobs[c], c, x.shape, block=block)
        enc, dec = rates[f"{c} encode"], rates[f"{c} decode"]
        rows.append({
            "codec": c if c != "astype" else "numpy astype f32<->f16 (reference)",
            "bytes_ratio": size / (4 * n),
            "encode_MBps": enc, "decode_MBps": dec,
            "encode_vs_ref": enc / rates["astype encode"], "decode_vs_ref": dec / rates["astype decode"],
            "rel_rms_error": float(np.sqrt(np.mean((y.astype(np.float64) - x) ** 2))) / rms,
            "vgg16_s": 4 * VGG16_PARAMS / 1e6 * (1 / enc + 1 / dec),
        })
    return rows


def _before():
    """The codec before the fused, threaded coder (the peer), or None without the tests folder."""
    folder = Path(__file__).resolve().parents[1] / "tests" / "distributed"
    if not (folder / "codec_before.py").is_file():
        return None
    sys.path.insert(0, str(folder))
    import codec_before

    return codec_before


def measure_paths(codec, thread_counts, repeats):
    """Seconds per round of the worker's and the coordinator's encoding of VGG16 (see the module
    docstring): rows of dicts, ours at each thread count, then the peer's."""
    from sukiyaki.distributed.worker import Worker

    before = _before()
    shapes = vgg16_shapes()
    rng = np.random.default_rng(0)
    grads = {n: np.asfortranarray(rng.standard_normal(s, dtype=np.float32) * np.float32(1e-3)) for n, s in shapes}
    plan = P.plan_parts([(n, s, codec) for n, s in shapes])
    bounds = {n: [(lo, hi) for part in plan for (m, _, _, lo, hi) in part if m == n] for n, _ in shapes}
    worker = Worker("http://127.0.0.1:9", "token", reconnect=False)
    worker.settings = {"codec_up": codec}
    feedback = {"ours": C.ErrorFeedback(), "before": before.ErrorFeedback() if before else None}

    def upload(who):
        worker.feedback = feedback[who]  # Worker.encode_tensor: finiteness check + compress_pieces
        return [d for n, _ in shapes for *_, d, _ in worker.encode_tensor(n, grads)]

    def broadcast(who):
        mod = C if who == "ours" else before
        return [d for n, _ in shapes for d in mod.encode_pieces(grads[n], codec, bounds[n])]

    runs = {}
    for t in thread_counts:
        runs[("upload", t)] = (t, lambda: upload("ours"))
        runs[("broadcast", t)] = (t, lambda: broadcast("ours"))
    if before:
        runs[("upload", "before")] = (1, lambda: upload("before"))
        runs[("broadcast", "before")] = (1, lambda: broadcast("before"))
        codec_threads.set_threads(max(thread_counts))
        same = upload("ours") == upload("before") and broadcast("ours") == broadcast("before")  # residuals primed
        same &= np.array_equal(feedback["ours"].residuals["fc6/W"].view(np.uint32),
                               feedback["before"].residuals["fc6/W"].view(np.uint32))
    else:
        same = None
        upload("ours")  # the residuals, primed
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, (t, fn) in runs.items():
            codec_threads.set_threads(t)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k, ts in times.items():
        rows.append({"path": k[0], "threads": k[1], "seconds": statistics.median(ts), "times": ts,
                     "bytes_equal_before": same})
    return rows


def paths_main(a):
    counts = sorted({int(t) for t in a.threads.split(",")})
    rows = measure_paths(a.path_codec, counts, a.repeats)
    mb = 4 * VGG16_PARAMS / 1e6
    print(f"machine: {machine_line()}, numpy {np.__version__}")
    print(f"VGG16 ({VGG16_PARAMS:,} values), codec {a.path_codec}, pieces of {P.PART_BYTES} bytes, "
          f"median of {a.repeats}; default codec threads here: {_default_threads()}")
    peer = {r["path"]: r["seconds"] for r in rows if r["threads"] == "before"}
    head = f"{'path':<52}{'threads':>8}{'s/round':>9}{'MB/s':>8}{'before s':>10}{'before/ours':>13}"
    print(head)
    print("-" * len(head))
    names = {"upload": "worker: gradient upload (finite check + EF pieces)",
             "broadcast": "coordinator: weight broadcast (encode_pieces)"}
    for r in rows:
        if r["threads"] == "before":
            continue
        p = peer.get(r["path"])
        print(f"{names[r['path']]:<52}{r['threads']:>8}{r['seconds']:>9.3f}{mb / r['seconds']:>8,.0f}"
              + (f"{p:>10.3f}{p / r['seconds']:>12.2f}x" if p else f"{'-':>10}{'-':>13}"))
    if rows and rows[0]["bytes_equal_before"] is not None:
        print(f"bytes and residuals equal to the codec before: {'yes' if rows[0]['bytes_equal_before'] else 'NO'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine_line(), "codec": a.path_codec, "rows": rows}, indent=1))
    return 0 if rows[0]["bytes_equal_before"] is not False else 1


def _default_threads():
    saved = codec_threads._threads
    codec_threads._threads = None
    try:
        return codec_threads.threads()
    finally:
        codec_threads._threads = saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000, help="values in the tensor (default 10 M)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--block", type=int, default=256, help="values per scale of block8")
    p.add_argument("--quick", action="store_true", help="1 M values, 1 repeat")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--paths", action="store_true", help="the per-round encoding paths on VGG16 (see above)")
    p.add_argument("--threads", default=f"1,{_default_threads()}", help="codec thread counts of --paths")
    p.add_argument("--path-codec", default="dettmers8", choices=["dettmers8", "block8"])
    a = p.parse_args(argv)
    if a.paths:
        if a.repeats < 1:
            p.error("--repeats must be at least 1")
        return paths_main(a)
    if a.quick:
        a.n, a.repeats = 1_000_000, 1
    if a.n < 1 or a.repeats < 1 or a.block < 1:
        p.error("--n, --repeats and --block must be at least 1")
    rows = measure(a.n, a.repeats, a.block)
    print(f"machine: {machine_line()}, numpy {np.__version__}")
    print(f"tensor: {a.n:,} float32 values ({4 * a.n / 1e6:.0f} MB), block8 block {a.block}, "
          f"median of {a.repeats}, codec threads {codec_threads.threads()} (SUKIYAKI_CODEC_THREADS)")
    head = (f"{'codec':<36}{'bytes/raw':>10}{'encode MB/s':>13}{'x ref':>7}{'decode MB/s':>13}{'x ref':>7}"
            f"{'rms err':>10}{'VGG16 enc+dec s':>17}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['codec']:<36}{r['bytes_ratio']:>10.4f}{r['encode_MBps']:>13,.0f}{r['encode_vs_ref']:>7.2f}"
              f"{r['decode_MBps']:>13,.0f}{r['decode_vs_ref']:>7.2f}{r['rel_rms_error']:>10.2e}{r['vgg16_s']:>17.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine_line(), "n": a.n, "block": a.block, "rows": rows},
                                           indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
