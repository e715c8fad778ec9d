"""Generate the shipped network definitions in ``sukiyaki/nets/`` (all but lenet.json).

Each definition is written in the original Sukiyaki2 format (a JSON list of
``{name, type, params, inputs, outputs, phase}``) with the original's layer names:

- ``vgg16.json``: VGG-16 as the original's ``vgg16.json`` (conv1_1 ... fc8, dropout 0.5
  after fc6 and fc7), 138,357,544 parameters.
- ``resnet50.json``, ``resnet101.json``, ``resnet152.json``: the original's definitions
  layer for layer (Caffe names conv1, bn_conv1, res2a_branch2a, bn2a_branch2a, ...; the
  shortcut as ``branch`` + ``plus`` layers; the stride of a down-sampling block on its first
  1x1 convolution, as Kaiming He's Caffe models; max pooling 3x3 stride 2 pad 0 in the
  ceil mode (``cover_all``, our default for max) so 112 -> 56; average pooling 7x7 at
  the end), 25,557,032 / 44,549,160 / 60,192,808 parameters with 1000 classes.
- ``resnet18.json``: ResNet-18 (basic blocks of two 3x3 convolutions) named in the same
  scheme (res2a_branch2a, res2a_branch2b, res3a_branch1, ...). It follows torchvision's
  ResNet-18 exactly, so that torchvision weights give the same outputs: max pooling 3x3
  stride 2 **pad 1 with cover_all false** (floor mode; 112 -> 56, the same windows as
  torch's ``MaxPool2d(3, 2, 1)``; our default cover_all, like torch's ceil_mode, would
  give 57 with pad 1), and
  global average pooling (``global_pool``), so any input size works. 11,689,512 parameters.
- ``cifar10.json``: the classic Caffe ``cifar10_quick`` net (conv 5x5x32, max pool 3/2,
  relu, conv 5x5x32, relu, average pool 3/2, conv 5x5x64, relu, average pool 3/2, ip 64,
  ip 10; pooling in the ceil mode as Caffe, so 32 -> 16 -> 8 -> 4), 145,578 parameters.
  Inputs are scaled to [0, 1) instead of Caffe's mean subtraction.

Every convolution of the ResNets has ``bias: false`` and is followed by
``batch_normalization``. The original's ``blob_data`` layers (files of the authors'
machines) are replaced by our data layers: ImageNet nets read ``image_folder_data``
(root ``data/imagenet/train`` and ``data/imagenet/val``, resized to 256x256), then the
original's ``data_augmentation`` layers (random 224x224 crop and flip in train, centre crop
in test); the CIFAR-10 net reads ``cifar10_data`` from ``data/cifar-10-batches-bin`` with a
random flip in train. All end with ``softmax_cross_entropy`` ('loss') and ``accuracy``
(test phase).

Usage:
    python tools/make_nets.py            # (re)write the files
    python tools/make_nets.py --check    # exit 1 if a committed file differs

Running it twice gives byte-identical files; ``tests/nn/test_nets_shipped.py`` checks that
the committed files equal this script's output.
"""

import argparse
import json
import sys
from pathlib import Path

NETS_DIR = Path(__file__).resolve().parents[1] / "sukiyaki" / "nets"

#: Blocks per stage (stages 2..5) and block kind of each ResNet depth.
RESNETS = {
    18: ("basic", [2, 2, 2, 2]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


def layer(name, type_, params, inputs, outputs, phase=None):
    """One layer entry; ``phase`` omitted means both phases."""
    d = {"name": name, "type": type_, "params": params, "inputs": list(inputs), "outputs": list(outputs)}
    if phase is not None:
        d["phase"] = [phase]
    return d


def conv(name, bottom, cin, cout, ksize, stride=1, pad=0, bias=True):
    return layer(name, "convolution_2d",
                 {"in_size": cin, "out_size": cout, "ksize": ksize, "stride": stride, "pad": pad, "bias": bias},
                 [bottom], [name])


def bn(name, bottom, size):
    return layer(name, "batch_normalization", {"in_size": size, "target_dim": 3}, [bottom], [name])


def relu(name, bottom):
    return layer(name, "relu", {}, [bottom], [name])


def imagenet_data():
    """Our data layers for ImageNet-style nets, then the original's augmentation layers."""
    out = []
    for phase, split in (("train", "train"), ("test", "val")):
        out.append(layer(f"d_{phase}", "image_folder_data",
                         {"root": f"data/imagenet/{split}", "size": [256, 256]},
                         ["batch"], ["rawdata", "label"], phase))
    for phase in ("train", "test"):
        rnd = phase == "train"
        out.append(layer(f"aug_{phase}", "data_augmentation",
                         {"out_shape": [224, 224], "scale": 1.0, "random_crop": rnd, "random_flip": rnd,
                          "input_klass": "uint8"},
                         ["rawdata"], ["data"], phase))
    return out


def head(scores):
    """Loss (both phases) and accuracy (test phase) on the score blob."""
    return [layer("loss", "softmax_cross_entropy", {}, [scores, "label"], ["loss"]),
            layer("accuracy", "accuracy", {}, [scores, "label"], ["accuracy"], "test")]


def block_letters(stage, count, depth):
    """Block suffixes as the original: a, b, c, ... or, for long stages of the deep nets,
    a, b1, b2, ... (Caffe's ResNet-101/152 naming)."""
    if depth >= 101 and stage in (3, 4):
        return ["a"] + [f"b{i}" for i in range(1, count)]
    return [chr(ord("a") + i) for i in range(count)]


def resnet(depth):
    """ResNet-18/50/101/152 layer list (see the module docstring)."""
    kind, counts = RESNETS[depth]
    L = imagenet_data()
    L += [conv("conv1", "data", 3, 64, 7, 2, 3, bias=False), bn("bn_conv1", "conv1", 64),
          relu("conv1_relu", "bn_conv1")]
    if depth == 18:
        pool = {"type": "max", "ksize": 3, "stride": 2, "pad": 1, "cover_all": False}
    else:
        pool = {"stride": 2, "pad": 0, "type": "max", "ksize": 3}
    L.append(layer("pool1", "pooling_2d", pool, ["conv1_relu"], ["pool1"]))
    bottom, cin = "pool1", 64
    expansion = 4 if kind == "bottleneck" else 1
    for stage, count in zip(range(2, 6), counts):
        width = 64 * 2 ** (stage - 2)
        cout = width * expansion
        for i, letter in enumerate(block_letters(stage, count, depth)):
            tag = f"{stage}{letter}"
            stride = 2 if i == 0 and stage > 2 else 1
            project = i == 0 and (stride != 1 or cin != cout)
            br = f"branch{tag}"
            L.append(layer(br, "branch", {"n_output": 2}, [bottom], [f"{br}_branch1", f"{br}_branch2"]))
            if project:
                L += [conv(f"res{tag}_branch1", f"{br}_branch1", cin, cout, 1, stride, 0, bias=False),
                      bn(f"bn{tag}_branch1", f"res{tag}_branch1", cout)]
                shortcut = f"bn{tag}_branch1"
            else:
                shortcut = f"{br}_branch1"
            if kind == "bottleneck":
                convs = [("2a", cin, width, 1, stride, 0), ("2b", width, width, 3, 1, 1), ("2c", width, cout, 1, 1, 0)]
            else:
                convs = [("2a", cin, width, 3, stride, 1), ("2b", width, width, 3, 1, 1)]
            x = f"{br}_branch2"
            for j, (sub, ci, co, k, s, p) in enumerate(convs):
                c, b = f"res{tag}_branch{sub}", f"bn{tag}_branch{sub}"
                L += [conv(c, x, ci, co, k, s, p, bias=False), bn(b, c, co)]
                x = b
                if j < len(convs) - 1:
                    L.append(relu(f"{c}_relu", b))
                    x = f"{c}_relu"
            L += [layer(f"res{tag}", "plus", {"n_input": 2}, [shortcut, x], [f"res{tag}"]),
                  relu(f"res{tag}_relu", f"res{tag}")]
            bottom, cin = f"res{tag}_relu", cout
    if depth == 18:
        L.append(layer("pool5", "pooling_2d", {"type": "average", "global_pool": True}, [bottom], ["pool5"]))
    else:
        L.append(layer("pool5", "pooling_2d", {"stride": 1, "pad": 0, "type": "average", "ksize": 7}, [bottom], ["pool5"]))
    L.append(layer("fc1000", "linear", {"out_size": 1000, "in_shape": [1, 1, cin]}, ["pool5"], ["fc1000"]))
    return L + head("fc1000")


def vgg16():
    """VGG-16 as the original's vgg16.json (fc7/fc8 take ``in_shape`` instead of its ``in_size``)."""
    L = imagenet_data()
    bottom, cin = "data", 3
    for stage, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            name = f"conv{stage}_{i}"
            L += [layer(name, "convolution_2d",
                        {"stride": 1, "bias": True, "pad": 1, "ksize": 3, "out_size": width, "in_size": cin},
                        [bottom], [name]),
                  relu(f"{name}_relu", name)]
            bottom, cin = f"{name}_relu", width
        L.append(layer(f"pool{stage}", "pooling_2d", {"stride": 2, "pad": 0, "type": "max", "ksize": 2},
                       [bottom], [f"pool{stage}"]))
        bottom = f"pool{stage}"
    for name, size, in_shape in (("fc6", 4096, [7, 7, 512]), ("fc7", 4096, [4096])):
        L += [layer(name, "linear", {"out_size": size, "in_shape": in_shape}, [bottom], [name]),
              relu(f"{name}_relu", name),
              layer(f"{name}_dropout", "dropout", {"dropout_ratio": 0.5}, [f"{name}_relu"], [f"{name}_dropout"])]
        bottom = f"{name}_dropout"
    L.append(layer("fc8", "linear", {"out_size": 1000, "in_shape": [4096]}, [bottom], ["fc8"]))
    return L + head("fc8")


def cifar10_quick():
    """Caffe's cifar10_quick on CIFAR-10 (see the module docstring)."""
    L = []
    for phase in ("train", "test"):
        L.append(layer(f"d_{phase}", "cifar10_data", {"path": "data/cifar-10-batches-bin", "split": phase},
                       ["batch"], ["rawdata", "label"], phase))
    for phase in ("train", "test"):
        L.append(layer(f"aug_{phase}", "data_augmentation",
                       {"out_shape": [32, 32], "scale": 0.00390625, "random_crop": False,
                        "random_flip": phase == "train", "input_klass": "uint8"},
                       ["rawdata"], ["data"], phase))
    L += [conv("conv1", "data", 3, 32, 5, 1, 2),
          layer("pool1", "pooling_2d", {"type": "max", "ksize": 3, "stride": 2, "pad": 0}, ["conv1"], ["pool1"]),
          relu("relu1", "pool1"),
          conv("conv2", "relu1", 32, 32, 5, 1, 2),
          relu("relu2", "conv2"),
          layer("pool2", "pooling_2d", {"type": "average", "ksize": 3, "stride": 2, "pad": 0, "cover_all": True},
                ["relu2"], ["pool2"]),
          conv("conv3", "pool2", 32, 64, 5, 1, 2),
          relu("relu3", "conv3"),
          layer("pool3", "pooling_2d", {"type": "average", "ksize": 3, "stride": 2, "pad": 0, "cover_all": True},
                ["relu3"], ["pool3"]),
          layer("ip1", "linear", {"out_size": 64, "in_shape": [4, 4, 64]}, ["pool3"], ["ip1"]),
          layer("ip2", "linear", {"out_size": 10, "in_shape": [64]}, ["ip1"], ["ip2"])]
    return L + head("ip2")


def all_nets():
    """{file name: layer list} of every generated definition."""
    nets = {"cifar10.json": cifar10_quick(), "vgg16.json": vgg16()}
    for depth in RESNETS:
        nets[f"resnet{depth}.json"] = resnet(depth)
    return nets


def render(layers):
    """The file text of a definition (2-space indented JSON and a final newline, as lenet.json)."""
    return json.dumps(layers, indent=2) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare with the committed files")
    ap.add_argument("--out", type=Path, default=NETS_DIR, help="output folder (default sukiyaki/nets)")
    args = ap.parse_args(argv)
    stale = []
    for fname, layers in all_nets().items():
        path = args.out / fname
        text = render(layers)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(fname)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(layers)} layers)")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python tools/make_nets.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
