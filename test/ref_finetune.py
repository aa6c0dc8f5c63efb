"""PyTorch reference for the finetune step-for-step test.

    ref_finetune.py --data SHARED_HYMENOPTERA --out DIR --arch alexnet
                    --trainable classifier|head [--epochs 3 --step-size 2] [--bf16]

Builds DIR/data (a small ImageFolder of symlinks into the shared set: 8 + 8
train, 4 + 4 val), exports seeded weights with 2 classes to DIR/model.h5, runs
the tutorial's loop in PyTorch with augment none, shuffle off, dropout 0 and
the file's own last layer, and writes DIR/ref.h5: per-epoch metrics
(epoch, train_loss, train_acc, val_loss, val_acc), the final classifier
parameters under their state_dict names and the initial ones under initial/.
--bf16: the model's forward under torch.autocast(dtype=torch.bfloat16) (on
the CPU), the loss in fp32, as a PyTorch user runs bf16 (graft's
--precision bf16 is compared with it, bench/device-check.sh).
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
from torchvision import datasets, transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import export_torchvision  # noqa: E402
from small_set import make_folder, seeded_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--trainable", default="classifier", choices=["classifier", "head"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--step-size", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(2)
    data = os.path.join(args.out, "data")
    make_folder(args.data, data, {"train": 8, "val": 4})
    model = seeded_model(args.arch, 2, args.seed)
    export_torchvision.export(model, args.arch, os.path.join(args.out, "model.h5"),
                              class_names=["ants", "bees"])

    initial = {n: t.clone() for n, t in model.state_dict().items() if n.startswith("classifier.")}
    for p in model.features.parameters():
        p.requires_grad = False
    if args.trainable == "head":
        for p in model.classifier[:-1].parameters():
            p.requires_grad = False
    for m in model.classifier:
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    loaders = {s: torch.utils.data.DataLoader(datasets.ImageFolder(os.path.join(data, s), tf),
                                              batch_size=args.batch_size, shuffle=False)
               for s in ("train", "val")}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=args.step_size, gamma=0.1)
    crit = torch.nn.CrossEntropyLoss()
    metrics = []
    for epoch in range(args.epochs):
        row = [epoch + 1]
        for phase in ("train", "val"):
            model.train(phase == "train")
            total, correct, n = 0.0, 0, 0
            for x, y in loaders[phase]:
                with torch.set_grad_enabled(phase == "train"):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                        out = model(x)
                    out = out.float()
                    loss = crit(out, y)
                    if phase == "train":
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                total += loss.item() * x.size(0)
                correct += int((out.argmax(1) == y).sum())
                n += x.size(0)
            row += [total / n, correct / n]
        sched.step()
        metrics.append(row)
        print("epoch %d: train %.6f %.4f val %.6f %.4f" % tuple(row))
    with h5py.File(os.path.join(args.out, "ref.h5"), "w") as f:
        f.create_dataset("metrics", data=np.array(metrics, dtype=np.float64))
        for name, t in model.state_dict().items():
            if name.startswith("classifier."):
                f.create_dataset(name, data=t.numpy())
                f.create_dataset("initial/" + name, data=initial[name].numpy())


if __name__ == "__main__":
    main()
