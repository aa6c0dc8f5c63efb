#!/usr/bin/python3
"""What --precision bf16 costs in accuracy, estimated on the CPU: the model
run in fp32, with graft's bf16 rounding emulated, and under PyTorch's bf16
autocast, on the same images.

    bench/bf16_accuracy.py MODEL.safetensors IMAGES... [--batch 8] [--threads 2]

MODEL is what `convert` writes (torchvision's names, the preprocessing in its
metadata): `build/bin/convert best.h5 model.safetensors`. IMAGES are files or
folders (searched for .jpg, .jpeg and .png).

graft's bf16 (the CUDA backend; the CPU has none) rounds at these points, to
nearest even, and computes everything else in fp32. The emulation rounds at
the same points and computes in fp32 on the CPU (a product of two bf16
values is exact in fp32; only the order of the sums differs from the GPU's):
  - the input, as the trunk's first layout change stores it;
  - each convolution's weights and bias; the convolution, bias and ReLU in
    fp32 (cuDNN's fused graph), the output rounded (the trunk's activations
    are bf16); max pooling exact; adaptive average pooling in fp32, rounded;
  - each Linear's input and weights (cuBLAS's CUBLAS_COMPUTE_32F_FAST_16BF
    rounds its fp32 operands), the product in fp32, plus the bias rounded,
    the ReLU, the output rounded (autocast's Linear output is bf16);
  - softmax in fp32.
PyTorch's autocast (torch.autocast("cpu", dtype=torch.bfloat16)) is the
peer's bf16 on the GPU (bench/torch_gpu_bench.py), here run on the CPU.

Prints, for each bf16 run against fp32 over the images: the relative L2
error of the logits, the largest difference of any class's probability (and
the mean of each image's largest), top-1 agreement and, when the images sit
in ImageFolder class folders (their parent folder's sorted position is the
label, as finetune reads them), each run's accuracy.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

EXTS = (".jpg", ".jpeg", ".png")


def read_safetensors(path):
    """(state_dict, metadata) of an F32 .safetensors file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    meta = header.pop("__metadata__", {})
    state = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit("bf16_accuracy: %s: tensor %s is %s, not F32" % (path, name, t["dtype"]))
        a, b = t["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy()
                                       .reshape(t["shape"]))
    return state, meta


def load_model(path):
    state, meta = read_safetensors(path)
    arch, k = meta.get("arch"), int(meta.get("num_classes", 0))
    if arch not in ("alexnet", "vgg16") or k < 2:
        sys.exit("bf16_accuracy: %s: metadata names arch %r, %d classes" % (path, arch, k))
    model = getattr(torchvision.models, arch)(num_classes=k)
    model.load_state_dict(state)
    tf = transforms.Compose([transforms.Resize(int(meta["resize"])),
                             transforms.CenterCrop(int(meta["crop"])), transforms.ToTensor(),
                             transforms.Normalize(json.loads(meta["mean"]),
                                                  json.loads(meta["std"]))])
    return model.eval(), tf, k


def bf(t):
    return t.to(torch.bfloat16).float()


def graft_bf16(model, x):
    """Logits with graft's bf16 rounding points (the module docstring)."""
    x = bf(x)
    layers = list(model.features)
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, torch.nn.Conv2d):
            x = F.conv2d(x, bf(m.weight), None, m.stride, m.padding) + bf(m.bias)[None, :, None, None]
            if i + 1 < len(layers) and isinstance(layers[i + 1], torch.nn.ReLU):
                x, i = F.relu(x), i + 1
            x = bf(x)
        elif isinstance(m, torch.nn.MaxPool2d):
            x = m(x)
        else:
            sys.exit("bf16_accuracy: unexpected layer %s" % m)
        i += 1
    x = bf(model.avgpool(x)).flatten(1)
    layers = [m for m in model.classifier if not isinstance(m, torch.nn.Dropout)]
    for i, m in enumerate(layers):
        if isinstance(m, torch.nn.Linear):
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], torch.nn.ReLU)
            x = linear_bf16(x, m.weight, m.bias, relu)
    return x


def linear_bf16(x, w, b, relu):
    """A Linear layer as graft's bf16 runs it: the operands rounded, the
    product in fp32, plus the bias rounded, the ReLU, the output rounded."""
    y = bf(x) @ bf(w).t() + bf(b)
    return bf(F.relu(y) if relu else y)


def autocast_bf16(model, x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model(x).float()


def images_of(args):
    out = []
    for p in args.images:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                out += [os.path.join(root, n) for n in names if n.lower().endswith(EXTS)]
        else:
            out.append(p)
    return sorted(out)


def label_of(path, k):
    folder = os.path.dirname(path)
    parent = os.path.dirname(folder)
    classes = sorted(e for e in os.listdir(parent) if os.path.isdir(os.path.join(parent, e)))
    return classes.index(os.path.basename(folder)) if len(classes) == k else None


def report(name, logits, ref, labels):
    p, q = logits.softmax(1), ref.softmax(1)
    d = (p - q).abs().max(1).values
    rel = ((logits - ref).norm() / ref.norm()).item()
    agree = (logits.argmax(1) == ref.argmax(1)).sum().item()
    n = len(ref)
    line = ("%-14s logits rel L2 %.3g; largest probability difference %.3g (mean of each "
            "image's largest %.3g); top-1 agreement %d of %d" % (name, rel, d.max().item(),
                                                                 d.mean().item(), agree, n))
    if None not in labels:
        acc = (logits.argmax(1) == torch.tensor(labels)).float().mean().item()
        line += "; accuracy %.4f" % acc
    print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("images", nargs="+", help="image files or folders")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tf, k = load_model(args.model)
    paths = images_of(args)
    if not paths:
        sys.exit("bf16_accuracy: no images")
    runs = {"fp32": [], "graft bf16": [], "autocast bf16": []}
    with torch.no_grad():
        for at in range(0, len(paths), args.batch):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[at:at + args.batch]])
            runs["fp32"].append(model(x))
            runs["graft bf16"].append(graft_bf16(model, x))
            runs["autocast bf16"].append(autocast_bf16(model, x))
    runs = {name: torch.cat(v) for name, v in runs.items()}
    labels = [label_of(p, k) for p in paths]
    print("%s: %d images, %s, torch %s" % (args.model, len(paths), model.__class__.__name__,
                                          torch.__version__))
    ref = runs["fp32"]
    if None not in labels:
        acc = (ref.argmax(1) == torch.tensor(labels)).float().mean().item()
        print("%-14s accuracy %.4f" % ("fp32", acc))
    report("graft bf16", runs["graft bf16"], ref, labels)
    report("autocast bf16", runs["autocast bf16"], ref, labels)
    report("graft vs autocast", runs["graft bf16"], runs["autocast bf16"], [None])
    return 0


if __name__ == "__main__":
    sys.exit(main())
