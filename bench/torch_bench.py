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

With --weights FILE (a graft-weights file) infer and classify run those
weights; with --reference FILE (graft's `bench --save-output`) they run
graft's input tensor or images and check their logits against graft's first
(relative L2 error <= GRAFT_TOL), failing without timing when they differ.
Runs under any PyTorch from 1.13 (Debian's, the tests' reference) to 2.x (the
peers' environment of bench/peers/setup.sh).
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
# Logits against graft's: the relative L2 error allowed (the tests' bound for
# graft against PyTorch; fp32 engines agree to ~1e-6 on these nets).
GRAFT_TOL = 1e-4


def load_weights(path, arch):
    """A torchvision model holding a graft-weights file's parameters."""
    import h5py
    with h5py.File(path, "r") as f:
        got = f.attrs["arch"]
        got = got.decode() if isinstance(got, bytes) else str(got)
        if got != arch:
            raise SystemExit("%s holds %s, not --arch %s" % (path, got, arch))
        model = getattr(torchvision.models, arch)(num_classes=int(f.attrs["num_classes"]))
        model.load_state_dict({n: torch.from_numpy(f[n][()]) for n in model.state_dict()})
    return model


def make_model(args, num_classes):
    if args.weights:
        return load_weights(args.weights, args.arch)
    return getattr(torchvision.models, args.arch)(num_classes=num_classes)


def compiled(args, model):
    """--compile: the eval model through torch.compile (PyTorch 2), inductor
    with freezing (weights folded in as constants, what its docs advise for
    CPU inference); compiled on the first call, the reference run, untimed."""
    if not args.compile:
        return model
    if not hasattr(torch, "compile"):
        raise Invalid("torch %s has no torch.compile" % torch.__version__, {})
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    return torch.compile(model, backend="inductor")


def read_reference(path):
    """graft's reference run (bench --save-output): logits [n, k], and the
    input tensor (infer) or the image paths (classify)."""
    import h5py
    with h5py.File(path, "r") as f:
        ref = {"logits": f["logits"][()]}
        if "input" in f:
            ref["input"] = f["input"][()]
        if "paths" in f.attrs:
            ref["paths"] = [p.decode() if isinstance(p, bytes) else str(p)
                            for p in f.attrs["paths"]]
    return ref


def graft_check(logits, ref, tol=GRAFT_TOL):
    """Logits (numpy, [n, k]) against graft's: the relative L2 error, the
    share of equal top-1 classes, and an error message when over tol."""
    import numpy as np
    g = np.asarray(ref["logits"], dtype=np.float64)
    y = np.asarray(logits, dtype=np.float64)
    if y.shape != g.shape:
        return {"graft_rel_error": None}, "logits of shape %s, graft's %s" % (y.shape, g.shape)
    err = float(np.linalg.norm(y - g) / max(float(np.linalg.norm(g)), 1e-30))
    out = {"graft_rel_error": err, "graft_top1_agree": float((y.argmax(1) == g.argmax(1)).mean())}
    out["tolerance"] = tol
    if not err <= tol:
        return out, "logits differ from graft's: relative error %.3g > %g" % (err, tol)
    return out, None


def cpu_isa():
    """The kernels' ISA PyTorch dispatches to (2.x), e.g. AVX2; None on 1.13."""
    fn = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return fn() if fn else None


class Invalid(Exception):
    """The engine's output failed validation: nothing was timed."""


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
        torch.set_num_interop_threads(1)  # as every engine of bench/compare: intra-op only
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
    out = {"engine": "pytorch", "version": torch.__version__, "compiled": bool(args.compile), "workload": args.workload,
           "arch": args.arch, "batch": args.batch, "device": args.device,
           "precision": args.precision,
           "threads": torch.get_num_threads() if args.device == "cpu" else 0,
           "iterations": len(times), "median_s": med, "min_s": min(times), "max_s": max(times),
           "images": images, "images_per_s": images / med}
    if args.device == "cpu":
        out["isa"] = cpu_isa()
    out.update(extra)
    return out


def rel_err(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def bench_infer(args, dev):
    model = compiled(args, make_model(args, args.num_classes).eval().to(dev))
    check = {}
    if args.reference:
        graft = read_reference(args.reference)
        if graft["input"].shape[0] != args.batch:
            raise Invalid("graft's input has batch %d, not %d" % (graft["input"].shape[0],
                                                                   args.batch), {})
        x = torch.from_numpy(graft["input"]).to(dev)
    else:
        x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(dev)
    with torch.no_grad():
        ref = model(x)
        if args.reference:
            check, problem = graft_check(ref.cpu().numpy(), graft)
            if problem:
                raise Invalid(problem, check)
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
    extra.update(check)
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
    model = compiled(args, make_model(args, args.num_classes).eval().to(dev))
    tf = eval_transform()
    graft = read_reference(args.reference) if args.reference else None
    paths = graft["paths"] if graft else image_paths(args.images, args.count)
    logits = []

    def run(keep=None):
        tops = []
        with torch.no_grad():
            for i in range(0, len(paths), args.batch):
                batch = torch.stack([tf(Image.open(p).convert("RGB"))
                                     for p in paths[i:i + args.batch]]).to(dev)
                out = model(batch)
                if keep is not None:
                    keep.append(out.cpu())
                tops += out.softmax(1).argmax(1).tolist()
        sync(dev)
        return tops

    ref = run(logits)
    check = {}
    if graft:
        check, problem = graft_check(torch.cat(logits).numpy(), graft)
        if problem:
            raise Invalid(problem, check)
    for _ in range(args.warmup - 1):
        run()
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        tops = run()
        times.append(time.perf_counter() - t)
    check["validated"] = tops == ref
    return summarize(args, times, len(paths), check)


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
    ap.add_argument("--weights", help="graft-weights file for infer and classify (default: random)")
    ap.add_argument("--reference", help="graft's bench --save-output file to validate against")
    ap.add_argument("--compile", action="store_true",
                    help="infer and classify through torch.compile (inductor, freezing)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = setup(args)
    fn = {"infer": bench_infer, "classify": bench_classify, "finetune-step": bench_finetune_step,
          "finetune-epoch": bench_finetune_epoch}[args.workload]
    try:
        res = fn(args, dev)
    except Invalid as e:
        problem, check = e.args
        if args.json:
            print(json.dumps(dict(check, engine="pytorch", version=torch.__version__,
                                  workload=args.workload, validated=False, error=problem)))
        print("torch_bench: %s" % problem, file=sys.stderr)
        return 1
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
