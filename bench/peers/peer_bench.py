#!/usr/bin/env python3
"""ONNX Runtime's and OpenVINO's side of bench/compare, run by the peers'
Python (bench/peers/setup.sh): the same workloads, sizes, threads, timing
and JSON as build/bin/bench and bench/torch_bench.py, on the same weights.

    peer_bench.py export --arch A --weights W.h5 -o MODEL.onnx
    peer_bench.py export-ncnn --arch A --weights W.h5 -o MODEL   (MODEL.param, MODEL.bin)
    peer_bench.py infer --engine E --onnx MODEL.onnx --reference OUT.h5 --batch B [--threads N]
    peer_bench.py classify --engine E --onnx MODEL.onnx --reference OUT.h5 --batch B

E is onnxruntime (CPU execution provider), openvino (CPU plugin, latency
hint), openvino-tput (its throughput hint), ncnn (fp32) or ncnn-default (its
default options); for ncnn --onnx names MODEL (its .param and .bin). `export`
writes the torchvision model holding a graft-weights file's parameters as
ONNX (opset 17, batch dimension free); ONNX Runtime and OpenVINO both read
that file. `export-ncnn` converts the same model with pnnx (traced with
TorchScript at batch 1) into ncnn's param/bin pair. OUT.h5 is graft's `bench --save-output`: infer runs graft's input
tensor, classify graft's image paths (decoded with PIL and preprocessed as
torchvision does, batch by batch, as a user's pipeline would), and both check
their logits against graft's (torch_bench.GRAFT_TOL) before timing anything.

Threads: ONNX Runtime intra-op N, inter-op 1, sequential execution;
OpenVINO INFERENCE_NUM_THREADS N, one stream, the latency hint, f32 inference
precision (like with like: on CPUs with bf16 or AMX it would pick bf16).
Both run a static batch when every batch is full (ONNX Runtime by overriding
the free dimension, OpenVINO by reshaping the model).
openvino-tput: the THROUGHPUT hint, INFERENCE_NUM_THREADS N, f32, streams as
OpenVINO picks them, the model reshaped to one image and a batch's images
run as single-image requests of an AsyncInferQueue holding
OPTIMAL_NUMBER_OF_INFER_REQUESTS (how its docs say to feed that hint).
ncnn: num_threads N, no Vulkan; its Mat holds one image, so a batch is its
images one extractor each, in turn. ncnn (fp32): use_fp16_storage,
use_fp16_packed, use_fp16_arithmetic and use_bf16_storage off, the rest
(packing layout, Winograd, sgemm convolution) at their defaults, checked at
GRAFT_TOL like every engine; ncnn-default: a plain ncnn.Net()'s options (fp16
storage and arithmetic wherever this CPU has kernels for them), checked at
NCNN_DEFAULT_TOL. Both load the fp32 weights pnnx converted (fp16=False).
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch_bench  # noqa: E402  (bench/torch_bench.py: weights, transforms, checks)


# ncnn's default options store InnerProduct (and other) weights as fp16
# (use_fp16_storage): its logits then differ from fp32's by ~5e-4 (measured:
# AlexNet 4.8e-4). That column is validated as reduced precision, at the
# bound graft's own fp16-weights mode is held to; bench/compare counts it
# against graft's fp32 only where its logits meet the fp32 bound anyway.
# ncnn with fp16 storage off is held to the fp32 bound like every engine.
NCNN_DEFAULT_TOL = 1e-2


def export(args):
    """The torchvision model with the file's weights, as ONNX; written to a
    temporary name and renamed, so a failed export leaves nothing."""
    model = torch_bench.load_weights(args.weights, args.arch).eval()
    tmp = args.output + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), tmp, dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(tmp, args.output)
    return 0


def export_ncnn(args):
    """The torchvision model with the file's weights, through pnnx: MODEL.param
    and MODEL.bin (pnnx's other outputs are left in a scratch folder)."""
    import shutil
    import tempfile
    import pnnx
    model = torch_bench.load_weights(args.weights, args.arch).eval()
    work = tempfile.mkdtemp(prefix="pnnx-")
    try:
        pt = os.path.join(work, "model.pt")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # fp16=False: pnnx otherwise stores the weights in MODEL.bin as
            # fp16, so that even ncnn's fp32 options run on rounded weights
            # (logits off by ~8e-4), and a user's fp32 model is what we compare.
            pnnx.export(model, pt, (torch.zeros(1, 3, 224, 224),), fp16=False)
        for ext in ("param", "bin"):
            made = os.path.join(work, "model.ncnn." + ext)
            if not os.path.exists(made):
                raise SystemExit("pnnx wrote no %s (%s)" % (made, ", ".join(os.listdir(work))))
            shutil.move(made, args.output + "." + ext)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, onnx, batch, threads, static):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if static:
            so.add_free_dimension_override_by_name("batch", batch)
        self.sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.provider = self.sess.get_providers()[0]

    def run(self, x):
        return self.sess.run(None, {"input": x})[0]


class OpenVino:
    name = "openvino"

    def __init__(self, onnx, batch, threads, static):
        import openvino as ov
        core = ov.Core()
        model = core.read_model(onnx)
        if static:
            model.reshape([batch, 3, 224, 224])
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"})
        self.request = self.compiled.create_infer_request()
        self.out = self.compiled.output(0)
        self.version = ov.get_version()
        self.provider = "CPU (%s)" % core.get_property("CPU", "FULL_DEVICE_NAME")

    def run(self, x):
        # The result lives in the request's buffer: copy it out, as a caller
        # keeping the logits must.
        return self.request.infer({0: x})[self.out].copy()


class OpenVinoThroughput:
    name = "openvino"

    def __init__(self, onnx, batch, threads, static):
        import openvino as ov
        core = ov.Core()
        model = core.read_model(onnx)
        model.reshape([1, 3, 224, 224])
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": "f32"})
        self.nreq = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.queue = ov.AsyncInferQueue(self.compiled, self.nreq)
        self.out = self.compiled.output(0)
        self.queue.set_callback(self._done)
        self.version = ov.get_version()
        self.provider = "CPU (%s), THROUGHPUT hint, %d requests, %s streams" % (
            core.get_property("CPU", "FULL_DEVICE_NAME"), self.nreq,
            self.compiled.get_property("NUM_STREAMS"))

    def _done(self, request, i):
        self.results[i] = request.get_output_tensor(0).data.copy()

    def run(self, x):
        self.results = [None] * x.shape[0]
        for i in range(x.shape[0]):
            self.queue.start_async({0: x[i:i + 1]}, i)
        self.queue.wait_all()
        return np.concatenate(self.results)


class Ncnn:
    name = "ncnn"
    fp32 = True

    def __init__(self, model, batch, threads, static):
        import ncnn
        self.ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads
        opt.use_vulkan_compute = False
        if self.fp32:
            opt.use_fp16_storage = False
            opt.use_fp16_packed = False
            opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False
        for what, ret in (("param", self.net.load_param(model + ".param")),
                          ("bin", self.net.load_model(model + ".bin"))):
            if ret != 0:
                raise torch_bench.Invalid("ncnn could not load %s.%s" % (model, what), {})
        self.input = self.net.input_names()[0]
        self.output = self.net.output_names()[0]
        self.version = ncnn.__version__
        self.provider = "CPU, fp16 storage %s, fp16 packed %s, fp16 arithmetic %s, packing %s" % (
            opt.use_fp16_storage, opt.use_fp16_packed, opt.use_fp16_arithmetic,
            opt.use_packing_layout)

    def run(self, x):
        ys = []
        for i in range(x.shape[0]):
            ex = self.net.create_extractor()
            ex.input(self.input, self.ncnn.Mat(np.ascontiguousarray(x[i])))
            ret, y = ex.extract(self.output)
            if ret != 0:
                raise RuntimeError("ncnn extract failed (%d)" % ret)
            ys.append(np.array(y).reshape(1, -1))
        return np.concatenate(ys)


class NcnnDefault(Ncnn):
    fp32 = False


ENGINES = {"onnxruntime": OnnxRuntime, "openvino": OpenVino, "openvino-tput": OpenVinoThroughput,
           "ncnn": Ncnn, "ncnn-default": NcnnDefault}


def tolerance(engine):
    return NCNN_DEFAULT_TOL if engine == "ncnn-default" else torch_bench.GRAFT_TOL


def softmax(y):
    e = np.exp(y - y.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def result(args, eng, times, images, extra):
    med = statistics.median(times)
    out = {"engine": args.engine, "version": eng.version, "provider": eng.provider,
           "workload": args.workload, "arch": args.arch, "batch": args.batch, "device": "cpu",
           "precision": "fp32", "threads": args.threads, "iterations": len(times),
           "median_s": med, "min_s": min(times), "max_s": max(times), "images": images,
           "images_per_s": images / med}
    out.update(extra)
    return out


def timed(fn, warmup, iterations):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def bench_infer(args, graft):
    x = np.ascontiguousarray(graft["input"], dtype=np.float32)
    if x.shape[0] != args.batch:
        raise torch_bench.Invalid("graft's input has batch %d, not %d" % (x.shape[0], args.batch), {})
    eng = ENGINES[args.engine](args.onnx, args.batch, args.threads, True)
    ref = eng.run(x)
    check, problem = torch_bench.graft_check(ref, graft, tolerance(args.engine))
    if problem:
        raise torch_bench.Invalid(problem, check)
    times, y = timed(lambda: eng.run(x), args.warmup, args.iterations)
    err = float(np.linalg.norm(y - ref) / max(float(np.linalg.norm(ref)), 1e-30))
    check.update({"gflops": torch_bench.FLOPS[args.arch] * args.batch / statistics.median(times) / 1e9,
                  "validated": err <= 1e-5, "max_rel_error": err})
    return result(args, eng, times, args.batch, check)


def bench_classify(args, graft):
    from PIL import Image
    torch.set_num_threads(args.threads)  # torchvision's transforms run on torch
    tf = torch_bench.eval_transform()
    paths = graft["paths"]
    b = args.batch
    eng = ENGINES[args.engine](args.onnx, b, args.threads, len(paths) % b == 0)

    def run(keep=None):
        tops = []
        for i in range(0, len(paths), b):
            batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i:i + b]])
            y = eng.run(batch.numpy())
            if keep is not None:
                keep.append(y)
            tops += softmax(y).argmax(1).tolist()
        return tops

    logits = []
    ref = run(logits)
    check, problem = torch_bench.graft_check(np.concatenate(logits), graft, tolerance(args.engine))
    if problem:
        raise torch_bench.Invalid(problem, check)
    times, tops = timed(run, max(args.warmup - 1, 0), args.iterations)
    check["validated"] = tops == ref
    return result(args, eng, times, len(paths), check)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=["export", "export-ncnn", "infer", "classify"])
    ap.add_argument("--engine", choices=sorted(ENGINES))
    ap.add_argument("--arch", default="alexnet", choices=["alexnet", "vgg16"])
    ap.add_argument("--weights", help="graft-weights file (export)")
    ap.add_argument("-o", "--output", help="ONNX file to write (export)")
    ap.add_argument("--onnx", help="the exported model")
    ap.add_argument("--reference", help="graft's bench --save-output file")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    # Accepted so bench/compare can pass every engine the same options.
    for ignored in ("--device", "--precision", "--images", "--count", "--num-classes"):
        ap.add_argument(ignored, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workload in ("export", "export-ncnn"):
        if not args.weights or not args.output:
            ap.error("%s needs --weights and -o" % args.workload)
        return (export if args.workload == "export" else export_ncnn)(args)
    if not args.engine or not args.onnx or not args.reference:
        ap.error("%s needs --engine, --onnx and --reference" % args.workload)
    if args.threads <= 0:
        args.threads = os.cpu_count()
    torch.set_num_threads(args.threads)
    graft = torch_bench.read_reference(args.reference)
    fn = bench_infer if args.workload == "infer" else bench_classify
    try:
        res = fn(args, graft)
    except torch_bench.Invalid as e:
        problem, check = e.args
        if args.json:
            print(json.dumps(dict(check, engine=args.engine, workload=args.workload,
                                  validated=False, error=problem)))
        print("peer_bench: %s: %s" % (args.engine, problem), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res))
    else:
        print("%s %s %s batch %d: median %.4f s (%.4f-%.4f), %.2f img/s%s" % (
            res["engine"], res["workload"], res["arch"], res["batch"], res["median_s"],
            res["min_s"], res["max_s"], res["images_per_s"],
            "" if res["validated"] else "  NOT VALIDATED"))
    return 0 if res["validated"] else 1


if __name__ == "__main__":
    sys.exit(main())
