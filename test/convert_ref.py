"""PyTorch's side of the convert tests (test/convert_*.sh).

    convert_ref.py model --arch A --classes K [--crop C] [--seed S] [--names] -o FILE.h5
        a seeded torchvision model in the graft-weights contract (the last
        layer scaled by 50: logits near 1, not 0.01); --names gives class
        names that need escaping in JSON and non-ASCII ones
    convert_ref.py logits FILE.h5 INPUT.npy OUT.npy
        torchvision's forward of the file's weights on INPUT (eval mode)
    convert_ref.py input INFER.h5 INPUT.npy GRAFT.npy
        bench infer --save-output's input and logits as .npy files, for a
        Python without h5py (ONNX Runtime's)
    convert_ref.py random-input --crop C --batch N -o INPUT.npy
    convert_ref.py same-h5 A.h5 B.h5
        the same attributes and datasets, bit for bit
    convert_ref.py safetensors FILE.h5 FILE.safetensors
        the safetensors file parsed by hand (json + numpy; and by the
        safetensors package when it is installed) against the graft-weights
        file: every tensor of torchvision's state_dict, bit for bit, in name
        order with contiguous offsets, the header padded to 8 bytes, and the
        metadata the contract names

Each check prints what it compared and exits 1 on a difference.
"""
import json
import os
import struct
import sys

import h5py
import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import export_torchvision  # noqa: E402

NAMES = ['"quoted" \\ name', "caf\u00e9", "\u8702\u871c", "tab-free, comma"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def load(path):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        state = {k: f[k][()] for k in f.keys()}
    return attrs, state


def torch_model(path):
    attrs, state = load(path)
    arch = attrs["arch"].decode() if isinstance(attrs["arch"], bytes) else str(attrs["arch"])
    model = getattr(torchvision.models, arch)(num_classes=int(attrs["num_classes"])).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return model, attrs


def cmd_model(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--names", action="store_true")
    ap.add_argument("-o", required=True)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    model = getattr(torchvision.models, a.arch)(num_classes=a.classes).eval()
    with torch.no_grad():  # logits of a size that makes 1e-5 a tight tolerance
        model.classifier[6].weight.mul_(50.0)
    names = None
    if a.names:
        names = [NAMES[i] if i < len(NAMES) else "class %d" % i for i in range(a.classes)]
    export_torchvision.export(model, a.arch, a.o, class_names=names,
                              resize=max(256, a.crop), crop=a.crop)


def cmd_logits(path, inp, out):
    model, _ = torch_model(path)
    torch.set_num_threads(2)
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(inp))).numpy()
    np.save(out, y)


def cmd_input(infer, inp, graft):
    with h5py.File(infer, "r") as f:
        np.save(inp, f["input"][()])
        np.save(graft, f["logits"][()])


def cmd_random_input(argv):
    crop = int(argv[argv.index("--crop") + 1])
    batch = int(argv[argv.index("--batch") + 1])
    out = argv[argv.index("-o") + 1]
    x = np.random.RandomState(crop * 31 + batch).standard_normal((batch, 3, crop, crop))
    np.save(out, x.astype(np.float32))


def cmd_same_h5(a, b):
    (aa, sa), (ab, sb) = load(a), load(b)
    if set(aa) != set(ab):
        fail("attributes differ: %s against %s" % (sorted(aa), sorted(ab)))
    for k in aa:  # mean and std: the float32 graft keeps, whatever the file's type
        x, y = np.asarray(aa[k]), np.asarray(ab[k])
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            x, y = x.astype(np.float32), y.astype(np.float32)
        if not np.array_equal(x, y):
            fail("attribute %s: %r against %r" % (k, aa[k], ab[k]))
    if set(sa) != set(sb):
        fail("datasets differ: %s against %s" % (sorted(sa), sorted(sb)))
    for k in sa:
        if sa[k].dtype != sb[k].dtype or sa[k].tobytes() != sb[k].tobytes():
            fail("dataset %s differs" % k)
    print("same: %d attributes, %d datasets bit for bit" % (len(aa), len(sa)))


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def expected_metadata(attrs):
    meta = {"format": "pt", "arch": text(attrs["arch"]),
            "num_classes": str(int(attrs["num_classes"])),
            "resize": str(int(attrs["resize"])), "crop": str(int(attrs["crop"]))}
    if "class_names" in attrs:
        meta["class_names"] = [text(n) for n in attrs["class_names"]]
    return meta


def check_metadata(meta, attrs):
    want = expected_metadata(attrs)
    for k, v in want.items():
        if k not in meta:
            fail("__metadata__ lacks %s" % k)
        got = json.loads(meta[k]) if k == "class_names" else meta[k]
        if got != v:
            fail("__metadata__ %s: %r, expected %r" % (k, got, v))
    if "class_names" not in want and "class_names" in meta:
        fail("__metadata__ has class_names for a model without names")
    for k in ("mean", "std"):
        got = np.array(json.loads(meta[k]), dtype=np.float32)
        if not np.array_equal(got, np.asarray(attrs[k], dtype=np.float32)):
            fail("__metadata__ %s: %s, expected %s" % (k, meta[k], attrs[k]))
    if not all(isinstance(v, str) for v in meta.values()):
        fail("__metadata__ values must all be strings")


def cmd_safetensors(h5, st):
    attrs, state = load(h5)
    model, _ = torch_model(h5)
    ref = {k: v.numpy() for k, v in model.state_dict().items()}
    with open(st, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8:
        fail("header length %d is not a multiple of 8" % n)
    raw = blob[8:8 + n].decode("utf-8")
    body = raw.rstrip(" ")
    if not body.endswith("}") or len(raw) - len(body) >= 8:
        fail("the header is not JSON padded with fewer than 8 spaces")
    header = json.loads(body)
    meta = header.pop("__metadata__")
    check_metadata(meta, attrs)
    if list(header) != sorted(ref):
        fail("tensors %s, expected torchvision's %s in name order" % (list(header), sorted(ref)))
    data, at = blob[8 + n:], 0
    for name in sorted(ref):
        e = header[name]
        if e["dtype"] != "F32" or e["shape"] != list(ref[name].shape):
            fail("%s: %s %s, expected F32 %s" % (name, e["dtype"], e["shape"], list(ref[name].shape)))
        b, end = e["data_offsets"]
        if b != at:
            fail("%s starts at %d, expected %d (contiguous)" % (name, b, at))
        got = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
        if got.tobytes() != ref[name].astype("<f4").tobytes():
            fail("%s differs from torch's state_dict" % name)
        at = end
    if at != len(data):
        fail("%d bytes of data, the tensors end at %d" % (len(data), at))
    print("safetensors: %d tensors bit for bit as torch's state_dict, metadata %s"
          % (len(ref), sorted(meta)))
    try:
        from safetensors.torch import load_file
    except ImportError:
        print("(the safetensors package is not installed: parsed by hand only)")
        return
    loaded = load_file(st)
    model.load_state_dict(loaded, strict=True)
    print("safetensors.torch.load_file + load_state_dict(strict=True): ok")


def main():
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == "model":
        cmd_model(argv)
    elif cmd == "logits":
        cmd_logits(*argv)
    elif cmd == "input":
        cmd_input(*argv)
    elif cmd == "random-input":
        cmd_random_input(argv)
    elif cmd == "same-h5":
        cmd_same_h5(*argv)
    elif cmd == "safetensors":
        cmd_safetensors(*argv)
    else:
        fail("unknown command %s" % cmd)


if __name__ == "__main__":
    main()
