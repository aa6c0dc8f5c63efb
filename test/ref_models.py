"""PyTorch reference for the whole-model test.

Exports a seeded torchvision model to the graft-weights contract and writes
fixed input tensors with the logits torchvision computes for them:

    ref_models.py --arch alexnet --seed 1 --out DIR

DIR/model.h5   the weights (models/export_torchvision.py)
DIR/ref.h5     datasets input_<h>x<w> [N,3,h,w] and logits_<h>x<w> [N,K]
"""
import argparse
import os
import sys

import h5py
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import export_torchvision  # noqa: E402

SIZES = [(224, 224), (256, 300)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=["alexnet", "vgg16"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)(num_classes=args.num_classes).eval()
    export_torchvision.export(model, args.arch, os.path.join(args.out, "model.h5"))

    gen = torch.Generator().manual_seed(args.seed + 1000)
    with h5py.File(os.path.join(args.out, "ref.h5"), "w") as f:
        for h, w in SIZES:
            x = torch.randn(args.batch, 3, h, w, generator=gen)
            with torch.no_grad():
                y = model(x)
            f.create_dataset("input_%dx%d" % (h, w), data=x.numpy())
            f.create_dataset("logits_%dx%d" % (h, w), data=y.numpy())


if __name__ == "__main__":
    main()
