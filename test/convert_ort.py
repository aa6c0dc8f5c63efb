"""ONNX Runtime's side of the convert tests (test/convert_onnx.sh); needs only
onnxruntime and numpy (the onnx package too, when installed, for its checker).

    convert_ort.py run MODEL.onnx INPUT.npy OUT.npy --classes K --crop C
        checks the graph's interface (input "input" [batch,3,C,C], output
        "logits" [batch,K]), its metadata, and that a batch of one gives the
        rows of the whole batch; writes the logits of INPUT to OUT
    convert_ort.py compare WHAT A.npy B.npy TOL
        the largest absolute difference, and a failure past TOL

Exits 1 on a failure, printing what differs.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check_model(path):
    try:
        import onnx
    except ImportError:
        print("(the onnx package is not installed: onnx.checker not run)")
        return
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    print("onnx %s checker: ok; IR %d, opset %s, producer %s %s; %d nodes: %s"
          % (onnx.__version__, m.ir_version, [o.version for o in m.opset_import],
             m.producer_name, m.producer_version, len(ops), " ".join(ops)))


def check_interface(s, classes, crop):
    ins, outs = s.get_inputs(), s.get_outputs()
    if [i.name for i in ins] != ["input"] or ins[0].shape != ["batch", 3, crop, crop]:
        fail("inputs %s, expected input [batch, 3, %d, %d]"
             % ([(i.name, i.shape) for i in ins], crop, crop))
    if [o.name for o in outs] != ["logits"] or outs[0].shape != ["batch", classes]:
        fail("outputs %s, expected logits [batch, %d]" % ([(o.name, o.shape) for o in outs], classes))
    meta = s.get_modelmeta()
    props = meta.custom_metadata_map
    for k in ("arch", "num_classes", "mean", "std", "resize", "crop"):
        if k not in props:
            fail("metadata_props lacks %s: %s" % (k, props))
    if int(props["num_classes"]) != classes or int(props["crop"]) != crop:
        fail("metadata num_classes %s crop %s" % (props["num_classes"], props["crop"]))
    mean, std = json.loads(props["mean"]), json.loads(props["std"])
    if len(mean) != 3 or len(std) != 3:
        fail("mean %s, std %s" % (props["mean"], props["std"]))
    names = json.loads(props["class_names"]) if "class_names" in props else None
    if names is not None and len(names) != classes:
        fail("%d class names for %d classes" % (len(names), classes))
    if meta.producer_name != "graft":
        fail("producer %r" % meta.producer_name)
    print("interface: input [batch,3,%d,%d], logits [batch,%d]; producer %s (%s); metadata %s"
          % (crop, crop, classes, meta.producer_name, meta.description, sorted(props)))
    if names:
        print("class names: %s" % names[:4])


def cmd_run(argv):
    path, inp, out = argv[0], argv[1], argv[2]
    classes = int(argv[argv.index("--classes") + 1])
    crop = int(argv[argv.index("--crop") + 1])
    print("onnxruntime %s" % ort.__version__)
    check_model(path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    check_interface(s, classes, crop)
    x = np.load(inp)
    y = s.run(["logits"], {"input": x})[0]
    one = s.run(["logits"], {"input": x[-1:]})[0]
    d = float(np.abs(one[0] - y[-1]).max())
    if d > 1e-5:
        fail("batch of one against the last row of the batch: %.3g" % d)
    print("dynamic batch: %d rows and 1 row agree (%.3g)" % (len(x), d))
    np.save(out, y)


def cmd_compare(what, a, b, tol):
    x, y = np.load(a), np.load(b)
    if x.shape != y.shape:
        fail("%s: shapes %s and %s" % (what, x.shape, y.shape))
    d = float(np.abs(x - y).max())
    scale = float(np.abs(y).max())
    msg = "%s: max abs diff %.3g (logits up to %.3g, relative %.3g)" % (what, d, scale,
                                                                       d / max(scale, 1e-30))
    if not d <= float(tol):
        fail(msg + ", over %s" % tol)
    print("ok: " + msg)


def main():
    if sys.argv[1] == "run":
        cmd_run(sys.argv[2:])
    elif sys.argv[1] == "compare":
        cmd_compare(*sys.argv[2:6])
    else:
        fail("unknown command %s" % sys.argv[1])


if __name__ == "__main__":
    main()
