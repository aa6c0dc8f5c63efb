#!/usr/bin/env python3
"""PyTorch's GPU rows beside `bench infer --resident` (bench/device-check.sh):
the model alone on a batch already on the GPU, timed exactly as graft's is.

    torch_gpu_bench.py [--arch alexnet,vgg16] [--batch 1,64,256]
                       [--precision fp32|fp32-strict|bf16] [--layout nchw,nhwc]
                       [--iterations 20] [--warmup 3]

For each arch and batch: torchvision's model with 1000 classes, eval mode, on
cuda; torch.backends.cudnn.benchmark = True (autotuned convolutions for the
fixed shape, PyTorch's fastest honest setting); fp32 as graft's fp32 (TF32
convolutions, fp32 matmuls: torch.backends.cudnn.allow_tf32 = True,
torch.backends.cuda.matmul.allow_tf32 = False), fp32-strict with both off,
bf16 as a PyTorch user runs it on Ampere and Hopper: torch.autocast("cuda",
dtype=torch.bfloat16) around the fp32 model (convolutions and Linear layers in
bf16 with fp32 accumulation, softmax in fp32; its weight cache off, which CUDA
graph capture needs). --layout: the model and the
batch in PyTorch's default memory format (nchw) and/or channels-last (nhwc,
model.to(memory_format=torch.channels_last), what NVIDIA recommends for tensor
cores); one set of rows per layout.
The timed call is forward + softmax on the resident batch, then
torch.cuda.synchronize(), under the host's clock, as graft's graft_net_forward
(trunk, classifier, softmax, then wait). Two rows each: eager, and the same
call captured once as a CUDA graph and replayed (graft captures its trunk the
same way). The upload (host batch into the resident one) and the download of
the probabilities are timed apart. Each row is validated before it is
printed: its output against the first eager output, relative L2 error <= 1e-5.
One JSON object per row and line, printed as it is measured.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torchvision

FLOPS = {"alexnet": 1.4297e9, "vgg16": 30.9447e9}  # forward, one 224x224 image


def timed(fn, iterations):
    out = []
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def rel_err(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def row(args, arch, batch, layout, graph, times, up, down, err):
    med = statistics.median(times)
    return {"engine": "pytorch", "version": torch.__version__, "workload": "infer",
            "arch": arch, "batch": batch, "device": "cuda",
            "backend": "%s, cuDNN %s" % (torch.cuda.get_device_name(0),
                                          torch.backends.cudnn.version()),
            "precision": args.precision, "iterations": len(times), "median_s": med,
            "min_s": min(times), "max_s": max(times), "images": batch,
            "images_per_s": batch / med, "gflops": FLOPS[arch] * batch / med / 1e9,
            "validated": err <= 1e-5, "max_rel_error": err, "resident": True,
            "upload_s": statistics.median(up), "download_s": statistics.median(down),
            "cuda_graph": graph, "cudnn_benchmark": True, "layout": layout,
            "autocast": args.precision == "bf16"}


def bench(args, arch, batch, layout):
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    model = getattr(torchvision.models, arch)(num_classes=1000).eval().cuda()
    model = model.to(memory_format=fmt)
    host = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    x = torch.empty_like(host, device="cuda").contiguous(memory_format=fmt)
    up = timed(lambda: x.copy_(host), args.iterations)
    rows = []
    bf16 = args.precision == "bf16"
    with torch.no_grad():
        def forward():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
                logits = model(x)
            return logits.float().softmax(1)
        ref = forward().clone()  # autotunes (cudnn.benchmark) once for this shape
        for _ in range(args.warmup):
            forward()
        out = {}
        times = timed(lambda: out.__setitem__("y", forward()), args.iterations)
        down = timed(lambda: out["y"].cpu(), args.iterations)
        rows.append(row(args, arch, batch, layout, False, times, up, down,
                        rel_err(out["y"], ref)))

        # the same call as a CUDA graph: warmed up on a side stream, captured, replayed
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_y = forward()
        for _ in range(args.warmup):
            g.replay()
        times = timed(g.replay, args.iterations)
        down = timed(lambda: static_y.cpu(), args.iterations)
        rows.append(row(args, arch, batch, layout, True, times, up, down,
                        rel_err(static_y, ref)))
    del model, x
    torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="alexnet,vgg16")
    ap.add_argument("--batch", default="1,64,256")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp32-strict", "bf16"])
    ap.add_argument("--layout", default="nchw,nhwc")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device for PyTorch %s (built for CUDA %s)" % (torch.__version__,
                                                                    torch.version.cuda),
              file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.precision != "fp32-strict"
    torch.backends.cuda.matmul.allow_tf32 = False
    ok = True
    layouts = args.layout.split(",")
    bad = [l for l in layouts if l not in ("nchw", "nhwc")]
    if bad:
        ap.error("--layout takes nchw and/or nhwc, not %s" % ",".join(bad))
    for arch in args.arch.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            for layout in layouts:
                for r in bench(args, arch, batch, layout):
                    print(json.dumps(r), flush=True)
                    ok = ok and r["validated"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
