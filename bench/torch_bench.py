#!/usr/bin/env python3
"""PyTorch side of graft's benchmarks: the same workloads as `build/bin/bench`,
with the same sizes, threads, precision and random weights, printing the same
JSON (one object per line with --json).

    torch_bench.py infer --arch vgg16 --batch 8 [--device cpu|cuda] [--threads 2]
    torch_bench.py classify --arch alexnet --images DIR [--count 64] [--batch 8]
    torch_bench.py finetune-step --arch alexnet --batch 4 [--trainable classifier|head]
    torch_bench.py finetune-epoch --arch alexnet --data DIR [--augment tutorial|none]

Each workload validates before it times: the timed run's output is compared
with a reference run of the same inputs. Times are per iteration (or per
epoch); the summary gives the median, the spread (min, max) and images/s.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
FLOPS = {"alexnet": 1.4297e9, "vgg16": 30.9447e9}  # forward, one 224x224 image


def eval_transform():
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                               transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def train_transform():
    return transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def setup(args):
    torch.manual_seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(args.threads if args.threads > 0 else os.cpu_count())
    else:
        torch.backends.cudnn.benchmark = True  # PyTorch's best honest default for fixed shapes
        if args.precision == "fp32-strict":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(args.device)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def summarize(args, times, images, extra):
    med = statistics.median(times)
    out = {"engine": "pytorch", "version": torch.__version__, "workload": args.workload,
           "arch": args.arch, "batch": args.batch, "device": args.device,
           "precision": args.precision,
           "threads": torch.get_num_threads() if args.device == "cpu" else 0,
           "iterations": len(times), "median_s": med, "min_s": min(times), "max_s": max(times),
           "images": images, "images_per_s": images / med}
    out.update(extra)
    return out


def rel_err(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def bench_infer(args, dev):
    model = getattr(torchvision.models, args.arch)(num_classes=args.num_classes).eval().to(dev)
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(dev)
    with torch.no_grad():
        ref = model(x)
        for _ in range(args.warmup):
            model(x)
        sync(dev)
        times = []
        for _ in range(args.iterations):
            t = time.perf_counter()
            y = model(x)
            sync(dev)
            times.append(time.perf_counter() - t)
    err = rel_err(y, ref)
    extra = {"gflops": FLOPS[args.arch] * args.batch / statistics.median(times) / 1e9,
             "validated": err <= 1e-5, "max_rel_error": err}
    return summarize(args, times, args.batch, extra)


def image_paths(folder, count):
    paths = []
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                paths.append(os.path.join(root, f))
    return paths[:count]


def bench_classify(args, dev):
    from PIL import Image
    model = getattr(torchvision.models, args.arch)(num_classes=args.num_classes).eval().to(dev)
    tf = eval_transform()
    paths = image_paths(args.images, args.count)

    def run():
        tops = []
        with torch.no_grad():
            for i in range(0, len(paths), args.batch):
                batch = torch.stack([tf(Image.open(p).convert("RGB"))
                                     for p in paths[i:i + args.batch]]).to(dev)
                tops += model(batch).softmax(1).argmax(1).tolist()
        sync(dev)
        return tops

    ref = run()
    for _ in range(args.warmup - 1):
        run()
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        tops = run()
        times.append(time.perf_counter() - t)
    return summarize(args, times, len(paths), {"validated": tops == ref})


def frozen_model(args, dev):
    model = getattr(torchvision.models, args.arch)(num_classes=2).to(dev)
    for p in model.features.parameters():
        p.requires_grad = False
    if args.trainable == "head":
        for p in model.classifier[:-1].parameters():
            p.requires_grad = False
    return model


def bench_finetune_step(args, dev):
    model = frozen_model(args, dev).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.001,
                          momentum=0.9)
    crit = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 224, 224, generator=g).to(dev)
    y = torch.randint(0, 2, (args.batch,), generator=g).to(dev)

    def step():
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        losses.append(step())
        sync(dev)
        times.append(time.perf_counter() - t)
    ok = all(l == l and abs(l) < 1e6 for l in losses)  # finite and sane
    return summarize(args, times, args.batch, {"validated": ok, "trainable": args.trainable})


def bench_finetune_epoch(args, dev):
    """One epoch of the tutorial's loop over DATA/train plus validation on DATA/val."""
    model = frozen_model(args, dev)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.001,
                          momentum=0.9)
    crit = torch.nn.CrossEntropyLoss()
    tf_train = train_transform() if args.augment == "tutorial" else eval_transform()
    loaders = {
        "train": torch.utils.data.DataLoader(datasets.ImageFolder(os.path.join(args.data, "train"),
                                                                  tf_train),
                                             batch_size=args.batch, shuffle=True),
        "val": torch.utils.data.DataLoader(datasets.ImageFolder(os.path.join(args.data, "val"),
                                                                eval_transform()),
                                           batch_size=args.batch, shuffle=False)}
    times, images, accs = [], 0, []
    for _ in range(args.iterations):
        t = time.perf_counter()
        images = 0
        for phase in ("train", "val"):
            model.train(phase == "train")
            correct = 0
            for x, y in loaders[phase]:
                x, y = x.to(dev), y.to(dev)
                with torch.set_grad_enabled(phase == "train"):
                    out = model(x)
                    loss = crit(out, y)
                    if phase == "train":
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                correct += int((out.argmax(1) == y).sum())
                images += x.size(0)
            if phase == "val":
                accs.append(correct / len(loaders["val"].dataset))
        sync(dev)
        times.append(time.perf_counter() - t)
    return summarize(args, times, images, {"validated": all(0 <= a <= 1 for a in accs),
                                           "augment": args.augment, "val_acc": accs[-1]})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=["infer", "classify", "finetune-step", "finetune-epoch"])
    ap.add_argument("--arch", default="alexnet", choices=["alexnet", "vgg16"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp32-strict"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--images", help="folder of images (classify)")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--trainable", default="classifier", choices=["classifier", "head"])
    ap.add_argument("--data", help="ImageFolder root with train/ and val/ (finetune-epoch)")
    ap.add_argument("--augment", default="tutorial", choices=["tutorial", "none"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = setup(args)
    fn = {"infer": bench_infer, "classify": bench_classify, "finetune-step": bench_finetune_step,
          "finetune-epoch": bench_finetune_epoch}[args.workload]
    res = fn(args, dev)
    if args.json:
        print(json.dumps(res))
    else:
        print("%s %s batch %d %s: median %.4f s (%.4f-%.4f), %.2f img/s%s" % (
            res["workload"], res["arch"], res["batch"], res["device"], res["median_s"],
            res["min_s"], res["max_s"], res["images_per_s"],
            "" if res["validated"] else "  NOT VALIDATED"))
    return 0 if res["validated"] else 1


if __name__ == "__main__":
    sys.exit(main())
