"""Speed of the weight/gradient codecs (sukiyaki.distributed.codec) on the host, numpy only.

For each codec: encode and decode throughput in MB/s of float32 input (1 MB = 1e6 bytes),
the encoded size against raw float32, the error (rms of decoded - x over rms of x) and the
time one encode + decode of VGG16's 138 M parameters would take at that speed. The
reference line, measured in the same run, is numpy's own ``astype`` float32 -> float16
(and back): the cheapest conversion numpy has, a floor for any codec written on it.

Method: a column-major float32 tensor of --n values (standard normal, default 10 M),
made once outside the timing. Each measurement is the median of --repeats repeats; a
repeat calls the function in a loop for at least 0.2 s (benchmarks/_measure.interleaved),
all the functions taking turns so that the machine's noise hits each alike.

Example:
    python benchmarks/codec_speed.py                  # 10 M values, prints the table
    python benchmarks/codec_speed.py --quick          # smoke run (1 M values, 1 repeat)
    python benchmarks/codec_speed.py --n 2000000 --block 128 --json codec.json
"""

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: import the package beside it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _measure import interleaved, machine_line, median  # noqa: E402
from sukiyaki.distributed.codec import CODECS, decode, encode  # noqa: E402

VGG16_PARAMS = 138_357_544


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000, help="values in the tensor (default 10 M)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--block", type=int, default=256, help="values per scale of block8")
    p.add_argument("--quick", action="store_true", help="1 M values, 1 repeat")
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.repeats = 1_000_000, 1
    if a.n < 1 or a.repeats < 1 or a.block < 1:
        p.error("--n, --repeats and --block must be at least 1")
    rows = measure(a.n, a.repeats, a.block)
    print(f"machine: {machine_line()}, numpy {np.__version__}")
    print(f"tensor: {a.n:,} float32 values ({4 * a.n / 1e6:.0f} MB), block8 block {a.block}, "
          f"median of {a.repeats}")
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
