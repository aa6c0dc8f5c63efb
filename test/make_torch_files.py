#!/usr/bin/env python3
"""Files for test/torch_files.sh and the fuzz seeds: torch.save's .pth in both
formats and safetensors, from seeded torchvision models, with the
graft-weights export of the same weights to compare against; and hostile
files that graft must refuse without running anything.

    make_torch_files.py good DIR f32|f16|bf16|imagenet|errors|vgg16
    make_torch_files.py hostile DIR MARKER
    make_torch_files.py fuzzseed pickle|zip|safetensors FILE
"""
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from export_torchvision import export  # noqa: E402

NAMES = ["ant", "bee", "cat", "dog", "eel"]


def safetensors(path, state, metadata=None):
    """A safetensors file, written by hand (numpy and json only)."""
    codes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, at = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in state.items():
        t = t.detach().contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 \
            else t.numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rounded(model, dtype):
    """The model with its weights rounded through dtype, and that state in dtype."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())
    return {k: v.to(dtype) for k, v in model.state_dict().items()}


class OldPickler(pickle.Pickler):
    """Tensors as torch 0.3 pickled them: _rebuild_tensor(storage, offset, size, stride)."""

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor):
            return (torch._utils._rebuild_tensor,
                    (obj.storage(), obj.storage_offset(), tuple(obj.size()), obj.stride()))
        return NotImplemented


OLD_PICKLE = types.SimpleNamespace(Pickler=OldPickler, dump=pickle.dump, load=pickle.load,
                                   Unpickler=pickle.Unpickler, __name__="pickle")


def shared_storage(sd):
    """The same tensors as views at offsets into one storage."""
    flat = torch.cat([v.flatten() for v in sd.values()])
    out, at = {}, 0
    for k, v in sd.items():
        out[k] = flat[at:at + v.numel()].view(v.shape)
        at += v.numel()
    return out


def alexnet(seed, k):
    torch.manual_seed(seed)
    return torchvision.models.alexnet(weights=None, num_classes=k).eval()


def good(d, phase):
    """One phase's files at a time: whole AlexNets are 228 MB each."""
    j = lambda name: os.path.join(d, name)  # noqa: E731
    if phase == "f32":
        m = alexnet(3, 5)
        sd = m.state_dict()
        export(m, "alexnet", j("ref.h5"), class_names=NAMES)
        torch.save(sd, j("zip.pth"))
        torch.save(sd, j("legacy.pth"), _use_new_zipfile_serialization=False)
        torch.save({"state_dict": sd, "epoch": 3}, j("wrapped_zip.pth"))
        torch.save(shared_storage(sd), j("offsets_zip.pth"))
        torch.save(dict(m.named_parameters()), j("parameters_zip.pth"))  # _rebuild_parameter
        torch.save(sd, j("old_legacy.pth"), pickle_module=OLD_PICKLE,
                   _use_new_zipfile_serialization=False)
        extra = dict(sd)
        extra["extra.weight"] = torch.zeros(2)
        torch.save({"model": extra, "epoch": 3}, j("wrapped_extra_legacy.pth"),
                   _use_new_zipfile_serialization=False)
        safetensors(j("meta.safetensors"), sd,
                    {"format": "graft-weights", "arch": "alexnet", "num_classes": "5",
                     "class_names": json.dumps(NAMES), "mean": "[0.485, 0.456, 0.406]",
                     "std": "[0.229, 0.224, 0.225]", "resize": "256", "crop": "224"})
    elif phase in ("f16", "bf16"):
        dt = torch.float16 if phase == "f16" else torch.bfloat16
        m = alexnet(3, 5)
        low = rounded(m, dt)
        export(m, "alexnet", j("ref.h5"), class_names=NAMES)
        torch.save(low, j("zip.pth"))
        torch.save(low, j("legacy.pth"), _use_new_zipfile_serialization=False)
        safetensors(j("plain.safetensors"), low)
    elif phase == "imagenet":  # 1000 classes and no names: ImageNet's
        m = alexnet(4, 1000)
        torch.save(rounded(m, torch.float16), j("imagenet.pth"))
    elif phase == "errors":  # small files: the check fails before the rest matters
        f0 = torch.zeros(64, 3, 11, 11)
        c6 = torch.zeros(5, 4096)
        torch.save({"features.0.weight": f0, "classifier.6.weight": c6.t().contiguous().t()},
                   j("strided.pth"))
        torch.save({"features.0.weight": f0, "features.0.bias": torch.zeros(64),
                    "features.3.weight": torch.zeros(192, 64, 3, 3),
                    "classifier.6.weight": c6}, j("shape.pth"))
        torch.save({"features.0.weight": f0, "classifier.6.weight": c6}, j("missing.pth"))
        torch.save({"features.0.weight": f0.double(), "classifier.6.weight": c6},
                   j("double.pth"))
        torch.save({"features.0.weight": torch.zeros(64, 3, 7, 7), "classifier.6.weight": c6},
                   j("kernel.pth"))
    elif phase == "vgg16":
        torch.manual_seed(5)
        m = torchvision.models.vgg16(weights=None, num_classes=3).eval()
        low = rounded(m, torch.float16)
        export(m, "vgg16", j("ref.h5"))
        torch.save(low, j("legacy.pth"), _use_new_zipfile_serialization=False)
    else:
        sys.exit("make_torch_files: unknown phase %s" % phase)


class Payload:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def rezip(src, dst, method):
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", method) as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info.filename))


def hostile(d, marker):
    cmd = "touch %s" % marker
    torch.manual_seed(3)
    sd = {"features.0.weight": torch.randn(64, 3, 11, 11), "classifier.6.weight": torch.randn(5, 4096)}
    for name, fn, arg in (("system", os.system, cmd), ("eval", eval, "open(%r, 'w')" % marker)):
        evil = dict(sd)
        evil["features.0.bias"] = Payload(fn, arg)
        torch.save(evil, os.path.join(d, "%s_zip.pth" % name))
        torch.save(evil, os.path.join(d, "%s_legacy.pth" % name),
                   _use_new_zipfile_serialization=False)
    good_zip = os.path.join(d, "good.pth")
    torch.save(sd, good_zip)
    data = open(good_zip, "rb").read()
    open(os.path.join(d, "truncated.pth"), "wb").write(data[: len(data) // 2])
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0xFF  # inside a storage's bytes
    open(os.path.join(d, "crc.pth"), "wb").write(bytes(bad))
    rezip(good_zip, os.path.join(d, "deflated.pth"), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(os.path.join(d, "bomb.pth"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))
    legacy = io.BytesIO()
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    lb = legacy.getvalue()
    open(os.path.join(d, "legacy_truncated.pth"), "wb").write(lb[: len(lb) - 1000])

    st = os.path.join(d, "good.safetensors")
    safetensors(st, sd)
    raw = open(st, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    body = raw[8 + hlen:]

    def write(name, hdr, data=body, length=None):
        h = json.dumps(hdr).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(d, name), "wb") as f:
            f.write(struct.pack("<Q", len(h) if length is None else length) + h + data)

    write("hugeheader.safetensors", header, length=1 << 60)
    h = json.loads(json.dumps(header))
    b, e = h["classifier.6.weight"]["data_offsets"]
    h["classifier.6.weight"]["data_offsets"] = [len(body) + 64, len(body) + 64 + (e - b)]
    write("pastend.safetensors", h)
    h = json.loads(json.dumps(header))
    b, e = h["classifier.6.weight"]["data_offsets"]
    h["classifier.6.weight"]["data_offsets"] = [0, e - b]
    write("overlap.safetensors", h)
    write("short.safetensors", header, data=body[:-4])
    h = json.loads(json.dumps(header))
    h["classifier.6.weight"]["dtype"] = "I64"
    write("dtype.safetensors", h)


def fuzzseed(kind, path):
    torch.manual_seed(0)
    sd = {"features.0.weight": torch.randn(2, 3), "classifier.6.bias": torch.randn(2)}
    if kind == "zip":
        torch.save(sd, path)
    elif kind == "pickle":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:
        safetensors(path, {k: v.half() if "bias" in k else v for k, v in sd.items()},
                    {"arch": "alexnet", "class_names": '["a", "b"]'})


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "good":
        good(sys.argv[2], sys.argv[3])
    elif what == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    elif what == "fuzzseed":
        fuzzseed(sys.argv[2], sys.argv[3])
    else:
        sys.exit("make_torch_files: unknown command %s" % what)
