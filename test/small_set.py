"""A small ImageFolder of symlinks into the shared set, and seeded weights.

    small_set.py --data SHARED_HYMENOPTERA --out DIR [--arch alexnet]
                 [--train 8] [--val 4] [--num-classes 2] [--seed 3]

DIR/data/{train,val}/{ants,bees}/ link to the first images (sorted) of each
class; DIR/model.h5 is a seeded torchvision model in the graft-weights
contract. Nothing of the shared set is copied.
"""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import export_torchvision  # noqa: E402


def make_folder(src, dst, per_class):
    for split, count in per_class.items():
        for cls in ("ants", "bees"):
            os.makedirs(os.path.join(dst, split, cls), exist_ok=True)
            names = sorted(n for n in os.listdir(os.path.join(src, split, cls))
                           if n.lower().endswith(".jpg"))[:count]
            for n in names:
                link = os.path.join(dst, split, cls, n)
                if not os.path.lexists(link):
                    os.symlink(os.path.abspath(os.path.join(src, split, cls, n)), link)


def seeded_model(arch, num_classes, seed):
    torch.manual_seed(seed)
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--train", type=int, default=8)
    ap.add_argument("--val", type=int, default=4)
    ap.add_argument("--num-classes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    make_folder(args.data, os.path.join(args.out, "data"), {"train": args.train, "val": args.val})
    model = seeded_model(args.arch, args.num_classes, args.seed)
    export_torchvision.export(model, args.arch, os.path.join(args.out, "model.h5"),
                              class_names=["ants", "bees"] if args.num_classes == 2 else None)


if __name__ == "__main__":
    main()
