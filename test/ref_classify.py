"""PyTorch reference for the classify end-to-end test.

    ref_classify.py --arch alexnet --data SHARED_HYMENOPTERA --out DIR [--count 24]

Writes DIR/model.h5 (seeded weights, 10 classes with names, the last layer
scaled so that the classes are well apart), DIR/images.txt (the image paths,
from val/ants and val/bees) and DIR/expected.jsonl: per image PyTorch's
softmax over Resize(256) + CenterCrop(224) + Normalize of
Image.open(f).convert('RGB'), as {"path": ..., "probs": [...]}.
"""
import argparse
import json
import os
import sys

import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import export_torchvision  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(5)
    model = getattr(torchvision.models, args.arch)(num_classes=10).eval()
    with torch.no_grad():
        model.classifier[6].weight.mul_(50.0)  # spread the random classes apart
    names = ["class %d" % i for i in range(10)]
    names[3] = "\"quoted\" \\ name"  # JSON escaping
    export_torchvision.export(model, args.arch, os.path.join(args.out, "model.h5"),
                              class_names=names)
    paths = []
    for cls in ("ants", "bees"):
        d = os.path.join(args.data, "val", cls)
        paths += [os.path.join(d, n) for n in sorted(os.listdir(d))
                  if n.lower().endswith(".jpg")][:args.count // 2]
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with open(os.path.join(args.out, "images.txt"), "w") as f:
        f.write("".join(p + "\n" for p in paths))
    with torch.no_grad(), open(os.path.join(args.out, "expected.jsonl"), "w") as f:
        for p in paths:
            x = tf(Image.open(p).convert("RGB")).unsqueeze(0)
            probs = model(x).softmax(1)[0].tolist()
            f.write(json.dumps({"path": p, "probs": probs}) + "\n")


if __name__ == "__main__":
    main()
