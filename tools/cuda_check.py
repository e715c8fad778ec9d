"""Quick checks of the cuda backend against numpy on the lent GPU (run through tools/gpu_run.sh).

Prints, for each kernel, the largest relative difference from the numpy backend (float32
results; Philox and crops must be bit-equal), then a 30-step LeNet run on both backends
(losses side by side). Exit status 1 when a check fails.
"""

import sys
import time

import numpy as np

from sukiyaki.backends import get_backend
from sukiyaki.nn.shapes import ConvSpec, CropSpec, PoolSpec

failed = []


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check(name, err, tol):
    ok = err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {err:.2e} (tol {tol:.0e})")
    if not ok:
        failed.append(name)


def main():
    cu, npb = get_backend("cuda"), get_backend("numpy")
    rng = np.random.default_rng(0)
    up = lambda a: cu.from_numpy(np.asfortranarray(a))  # noqa: E731
    down = cu.to_numpy
    for label, spec in {
        "lenet conv2": ConvSpec.make((12, 12, 20), 50, (5, 5)),
        "pad 1 stride 2": ConvSpec.make((9, 11, 6), 8, (3, 3), (2, 2), (1, 1)),
        "grouped": ConvSpec.make((8, 8, 4), 6, (3, 3), (1, 1), (1, 1), 2),
        "rectangular": ConvSpec.make((10, 7, 3), 5, (3, 2), (1, 2), (1, 0)),
    }.items():
        n = 5
        x = rng.standard_normal(tuple(spec.in_shape) + (n,)).astype(np.float32)
        w = rng.standard_normal(spec.weight_shape).astype(np.float32)
        b = rng.standard_normal(spec.out_shape[2]).astype(np.float32)
        y0, c0 = npb.nn.conv2d_forward(np.asfortranarray(x), np.asfortranarray(w), b, spec, True)
        y1, _ = cu.nn.conv2d_forward(up(x), up(w), up(b), spec, True)
        check(f"conv fprop {label}", rel(down(y1), y0), 1e-5)
        dy = rng.standard_normal(y0.shape).astype(np.float32)
        dx0, dw0, db0 = npb.nn.conv2d_backward(np.asfortranarray(x), np.asfortranarray(w), np.asfortranarray(dy), spec,
                                               True, True, c0)
        dx1, dw1, db1 = cu.nn.conv2d_backward(up(x), up(w), up(dy), spec, True, True, None)
        check(f"conv dgrad {label}", rel(down(dx1), dx0), 1e-5)
        check(f"conv wgrad {label}", rel(down(dw1), dw0), 1e-5)
        check(f"conv bias grad {label}", rel(down(db1).reshape(-1), db0.reshape(-1)), 1e-5)
    for label, spec in {
        "max 2x2": PoolSpec.make((24, 24, 20), "max", (2, 2), (2, 2)),
        "max 3x3 s2 ceil pad": PoolSpec.make((9, 7, 3), "max", (3, 3), (2, 2), (1, 1), True),
        "avg 3x3 s2 ceil pad": PoolSpec.make((9, 7, 3), "average", (3, 3), (2, 2), (1, 1), True),
        "avg global": PoolSpec.make((7, 7, 4), "average", (7, 7), (1, 1)),
    }.items():
        n = 4
        x = rng.permutation(np.prod(spec.in_shape) * n).astype(np.float32).reshape(tuple(spec.in_shape) + (n,))
        y0, c0 = npb.nn.pool2d_forward(np.asfortranarray(x), spec, True)
        y1, c1 = cu.nn.pool2d_forward(up(x), spec, True)
        check(f"pool forward {label}", rel(down(y1), y0), 1e-6)
        dy = rng.standard_normal(y0.shape).astype(np.float32)
        check(f"pool backward {label}",
              rel(down(cu.nn.pool2d_backward(up(dy), spec, c1)), npb.nn.pool2d_backward(np.asfortranarray(dy), spec, c0)),
              1e-6)
    ids = np.array([5, 9, 2, 2 ** 31 + 7], dtype=np.uint32).view(np.int32)
    u0 = npb.philox_uniform((3, 12345), 17, ids, 11)
    u1 = down(cu.philox_uniform((3, 12345), 17, cu.from_numpy(ids), 11))
    check("philox uniforms bit-equal", float(np.any(u0 != u1)), 0)
    crop = CropSpec((6, 7, 2), (4, 5, 2))
    x = rng.standard_normal((6, 7, 2, 3)).astype(np.float32)
    top, left, flip = np.array([0, 2, 1], np.int32), np.array([2, 0, 1], np.int32), np.array([True, False, True])
    c0 = npb.nn.crop_flip(np.asfortranarray(x), crop, top, left, flip)
    c1 = down(cu.nn.crop_flip(up(x), crop, cu.from_numpy(top), cu.from_numpy(left), cu.from_numpy(flip)))
    check("crop and flip bit-equal", float(np.any(c0 != c1)), 0)
    for rule, args in (("sgd_update_", (0.1, 0.01)), ("momentum_update_", (0.1, 0.9, 0.01)),
                       ("adam_update_", (0.01, 0.9, 0.999, 1e-8, 0.01))):
        w, g = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
        n_slots = {"sgd_update_": 0, "momentum_update_": 1, "adam_update_": 2}[rule]
        slots = [np.abs(rng.standard_normal(1000)).astype(np.float32) for _ in range(n_slots)]
        w0, s0 = w.copy(), [s.copy() for s in slots]
        getattr(npb.nn, rule)(w0, g, *s0, *args)
        w1, s1 = up(w), [up(s) for s in slots]
        getattr(cu.nn, rule)(w1, up(g), *s1, *args)
        check(f"{rule} bit-equal", float(np.any(down(w1) != w0)), 0)

    from sukiyaki.nn import Net
    from sukiyaki.nn.train import Trainer, make_optimizer

    curves = {}
    for dev in ("numpy", "cuda"):
        net = Net("lenet", device=dev, seed=0)
        tr = Trainer(net, make_optimizer("momentum_sgd"), batch_size=64, iterations=30, val_cycle=None,
                     progress=False, log=None, seed=0)
        t0 = time.perf_counter()
        tr.train()
        curves[dev] = np.array([sum(v.values()) for _, v in tr.losses])
        print(f"LeNet 30 steps on {dev}: {time.perf_counter() - t0:.2f} s, loss {curves[dev][0]:.4f} -> {curves[dev][-1]:.4f}")
    diff = np.abs(curves["cuda"] - curves["numpy"])
    print("loss differences per step:", " ".join(f"{d:.1e}" for d in diff[:10]), "...", f"{diff[-1]:.1e}")
    check("LeNet first 5 losses, cuda vs numpy", float(diff[:5].max()), 5e-4)
    check("LeNet 30-step loss curve, cuda vs numpy (chaotic growth allowed)", float(diff.max()), 3e-2)
    conv = get_backend("cuda").nn._conv
    print(f"cuDNN graphs built without the deterministic full-precision filter: {len(conv.fallbacks)}")
    for line in conv.fallbacks[:5]:
        print("   ", line[:300])
    print("FAILED: " + ", ".join(failed) if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
