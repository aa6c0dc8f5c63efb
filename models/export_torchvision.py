#!/usr/bin/env python3
"""Export a torchvision AlexNet or VGG16 to the graft-weights contract.

    export_torchvision.py --arch alexnet|vgg16 [--pretrained] [--seed N]
                          [--num-classes K] [--class-names a,b,..] -o FILE.h5

With --pretrained, torchvision's ImageNet weights (IMAGENET1K_V1) are used;
torchvision downloads them once into its cache, so this needs network access
or a filled cache. If K is not 1000 the last layer (classifier.6) is replaced
by a freshly initialised one (seeded). Without --pretrained the whole model
is initialised by torchvision's constructor after torch.manual_seed(seed).

The contract (one model per file):
  root attributes  format = "graft-weights", version = 1, arch, num_classes,
                   class_names (optional, one string per class), mean, std
                   (3 floats each), resize, crop (ints);
  one float32 dataset per parameter at the root, named and shaped exactly as
  the model's state_dict() keys, contiguous and uncompressed. Strings are
  variable-length UTF-8; the file uses the HDF5 1.8 format (checksums).

Also usable as a module: export(model, arch, path, class_names=None, ...).

It needs numpy, torch, torchvision and h5py (Debian: python3-torch,
python3-torchvision, python3-h5py). Run by a python3 without them (a venv, a
pyenv Python), it runs itself again with $GRAFT_PYTHON or /usr/bin/python3
when one of those has them, and otherwise says what to install.
"""
import argparse
import os
import subprocess
import sys

NEEDS = "import numpy, torch, torchvision, h5py"


def _python_with_torch():
    """This script's modules, or run it again by an interpreter that has them."""
    try:
        exec(NEEDS)
        return
    except ImportError as e:
        missing = str(e)
    here = os.path.realpath(sys.executable or "")
    tried = []
    if not os.environ.get("GRAFT_EXPORT_REEXEC"):
        for py in (os.environ.get("GRAFT_PYTHON"), "/usr/bin/python3"):
            if not py or not os.path.exists(py) or os.path.realpath(py) == here:
                continue
            tried.append(py)
            if subprocess.run([py, "-c", NEEDS], capture_output=True).returncode == 0:
                os.environ["GRAFT_EXPORT_REEXEC"] = "1"
                os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("export_torchvision: %s lacks what this needs (%s)%s; install numpy, torch, "
             "torchvision and h5py for it (Debian: apt install python3-torch "
             "python3-torchvision python3-h5py) or set GRAFT_PYTHON to a python3 that has "
             "them" % (sys.executable, missing,
                       ", and so do " + " and ".join(tried) if tried else ""))


if __name__ == "__main__":
    _python_with_torch()

import numpy as np  # noqa: E402

FORMAT = "graft-weights"
VERSION = 1
ARCHS = ("alexnet", "vgg16")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export(model, arch, path, class_names=None, mean=None, std=None, resize=256, crop=224):
    """Write model (a torchvision AlexNet/VGG16, or anything with the same
    state_dict) to path in the graft-weights contract, atomically."""
    import h5py

    if arch not in ARCHS:
        raise ValueError("arch must be one of %s, not %r" % (", ".join(ARCHS), arch))
    state = model.state_dict()
    if "classifier.6.weight" not in state:
        raise ValueError("the model has no classifier.6.weight: not a torchvision %s" % arch)
    num_classes = int(state["classifier.6.weight"].shape[0])
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != num_classes:
            raise ValueError("%d class names for %d classes" % (len(class_names), num_classes))
    mean = tuple(float(v) for v in (IMAGENET_MEAN if mean is None else mean))
    std = tuple(float(v) for v in (IMAGENET_STD if std is None else std))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std need 3 values each")

    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        # The HDF5 1.8 format, like graft's own writer: checksummed metadata,
        # so a damaged file is refused by HDF5 rather than misread.
        with h5py.File(tmp, "w", libver=("v108", "v108")) as f:
            f.attrs["format"] = FORMAT  # h5py: variable-length UTF-8
            f.attrs["version"] = np.int64(VERSION)
            f.attrs["arch"] = arch
            f.attrs["num_classes"] = np.int64(num_classes)
            if class_names is not None:
                f.attrs.create("class_names", class_names, dtype=h5py.string_dtype("utf-8"))
            f.attrs["mean"] = np.array(mean, dtype=np.float64)
            f.attrs["std"] = np.array(std, dtype=np.float64)
            f.attrs["resize"] = np.int64(resize)
            f.attrs["crop"] = np.int64(crop)
            for name, tensor in state.items():
                data = np.ascontiguousarray(tensor.detach().cpu().float().numpy())
                if not np.isfinite(data).all():
                    raise ValueError("%s has non-finite values" % name)
                f.create_dataset(name, data=data)  # contiguous, no filters
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(arch, pretrained=False, seed=0, num_classes=1000):
    """The torchvision model and, for pretrained ImageNet weights, their
    category names (None otherwise)."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    ctor = getattr(torchvision.models, arch)
    if not pretrained:
        return ctor(weights=None, num_classes=num_classes), None
    enum = {"alexnet": torchvision.models.AlexNet_Weights,
            "vgg16": torchvision.models.VGG16_Weights}[arch]
    weights = enum.IMAGENET1K_V1
    try:
        model = ctor(weights=weights)
    except Exception as e:  # no network, no cache, a proxy...
        raise RuntimeError("cannot get torchvision's ImageNet weights for %s (%s): %s\n"
                           "torchvision downloads them into its cache (TORCH_HOME); "
                           "without them, leave out --pretrained for seeded random weights"
                           % (arch, weights.url, e))
    categories = list(weights.meta.get("categories") or []) or None
    if num_classes != 1000:
        print("export_torchvision: %d classes: classifier.6 re-initialised (seed %d); "
              "the other layers keep the ImageNet weights" % (num_classes, seed),
              file=sys.stderr)
        torch.manual_seed(seed)
        model.classifier[6] = torch.nn.Linear(model.classifier[6].in_features, num_classes)
        categories = None
    return model, categories


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, choices=ARCHS)
    ap.add_argument("--pretrained", action="store_true",
                    help="torchvision's ImageNet weights (downloaded by torchvision)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--class-names", help="comma-separated, one per class")
    ap.add_argument("-o", "--output", required=True, metavar="FILE.h5")
    args = ap.parse_args(argv)

    if not 1 <= args.num_classes <= 100000:
        ap.error("--num-classes must be between 1 and 100000")
    names = None
    if args.class_names is not None:
        names = args.class_names.split(",")
        if len(names) != args.num_classes:
            ap.error("--class-names has %d names for %d classes (--num-classes)"
                     % (len(names), args.num_classes))
    try:
        model, categories = build(args.arch, args.pretrained, args.seed, args.num_classes)
        export(model.eval(), args.arch, args.output,
               class_names=names if names is not None else categories)
    except (RuntimeError, ValueError, OSError) as e:
        print("export_torchvision: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
