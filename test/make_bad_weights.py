"""Fixtures for test_weights: good and bad graft-weights files.

    make_bad_weights.py reference DIR     export alexnet seed 0, K=10 with the
                                          export CLI to DIR/base.h5, and write
                                          DIR/base_ref.txt: values torchvision
                                          itself gives (name index value)
    make_bad_weights.py small DIR         the small fixtures (one bad thing each)
    make_bad_weights.py mutate FILE CASE  break FILE in place (nan, inf, missing,
                                          extra, fixed, bigcrop)
    make_bad_weights.py restore FILE CASE undo it
    make_bad_weights.py half SRC DST      the first half of SRC's bytes
    make_bad_weights.py fuzzseed FILE     a small file in h5py's layout for test_h5_fuzz
    make_bad_weights.py fuzzseed-keras FILE  a small file in Keras's weights layout (likewise)
    make_bad_weights.py fuzzseed-config FILE  a finetune config written by h5py (likewise)

Only the `reference` command imports torch; the others need h5py and numpy.
"""
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))

NAMES10 = ["class_%d" % i for i in range(10)]
NAMES10[3] = "caf\u00e9 cr\u00e8me"  # UTF-8 survives the round trip


def reference(out):
    import torch
    import torchvision
    import export_torchvision

    torch.set_num_threads(2)
    base = os.path.join(out, "base.h5")
    rc = export_torchvision.main(["--arch", "alexnet", "--seed", "0", "--num-classes", "10",
                                  "--class-names", ",".join(NAMES10), "-o", base])
    if rc != 0:
        sys.exit(rc)
    torch.manual_seed(0)
    model = torchvision.models.alexnet(num_classes=10)
    with open(os.path.join(out, "base_ref.txt"), "w") as f:
        for name, t in model.state_dict().items():
            flat = t.detach().numpy().reshape(-1)
            for i in sorted({0, 1, flat.size // 2, flat.size - 1}):
                f.write("%s %d %.9g\n" % (name, i, flat[i]))


# ---- small fixtures: attributes of an alexnet/K, and only the datasets a case needs ----

def attrs(f, **over):
    a = {"format": "graft-weights", "version": 1, "arch": "alexnet", "num_classes": 10}
    a.update(over)
    for k, v in a.items():
        if v is not None:
            f.attrs[k] = v


def fixed_string(f, name, value, pad):
    """A fixed-length string attribute with the given padding (h5py low level)."""
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(max(len(value), 1))
    tid.set_strpad(pad)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    aid = h5py.h5a.create(f.id, name.encode(), tid, space)
    aid.write(np.array(value, dtype="S%d" % max(len(value), 1)), mtype=tid)


def small(out):
    def new(name, **over):
        f = h5py.File(os.path.join(out, name), "w")
        attrs(f, **over)
        return f

    w0 = np.ones((64, 3, 11, 11), np.float32)
    with new("no_format.h5", format=None):
        pass
    with new("bad_format.h5", format="keras"):
        pass
    with new("bad_version.h5", version=2):
        pass
    with new("bad_arch.h5", arch="resnet"):
        pass
    with new("nc_string.h5", num_classes="10"):
        pass
    with new("nc_zero.h5", num_classes=0):
        pass
    with new("names_count.h5") as f:
        f.attrs.create("class_names", ["a", "b", "c"], dtype=h5py.string_dtype())
    with new("names_ctrl.h5") as f:
        f.attrs.create("class_names", NAMES10[:9] + ["two\nlines"], dtype=h5py.string_dtype())
    with new("bad_crop.h5", crop=40):
        pass
    with new("bad_std.h5", std=np.array([0.2, 0.0, 0.2])):
        pass
    with new("mean_count.h5", mean=np.array([0.5, 0.5])):
        pass
    with new("none.h5"):
        pass
    with new("wrong_shape.h5") as f:
        f["features.0.weight"] = np.ones((64, 3, 11), np.float32)
    with new("nc_mismatch.h5", num_classes=5) as f:
        f["classifier.6.weight"] = np.ones((7, 4096), np.float32)
    with new("int_dataset.h5") as f:
        f["features.0.weight"] = np.ones((64, 3, 11, 11), np.int32)
    with new("f64_dataset.h5") as f:
        f["features.0.weight"] = np.ones((64, 3, 11, 11), np.float64)
    with new("gzip.h5") as f:
        f.create_dataset("features.0.weight", data=w0, chunks=(8, 3, 11, 11), compression="gzip")
    with new("chunked.h5") as f:
        f.create_dataset("features.0.weight", data=w0, chunks=(8, 3, 11, 11))
    raw = os.path.join(out, "external.bin")
    w0.tofile(raw)
    with new("external.h5") as f:
        f.create_dataset("features.0.weight", shape=w0.shape, dtype=np.float32,
                         external=[(raw, 0, w0.nbytes)])
    with new("compact.h5") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((64,))
        d = h5py.h5d.create(f.id, b"features.0.bias", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ones(64, np.float32))
    with new("softlink.h5") as f:
        f["elsewhere"] = w0
        f["features.0.weight"] = h5py.SoftLink("/elsewhere")
    with new("group.h5") as f:
        f.create_group("features.0.weight")
    with new("unallocated.h5") as f:
        f.create_dataset("features.0.weight", shape=w0.shape, dtype=np.float32)

    # Data cut off, but the superblock's end-of-file address patched to match:
    # HDF5 opens the file, and the dataset's extent check has to catch it.
    path = os.path.join(out, "past_eof.h5")
    with new("past_eof.h5") as f:
        d = f.create_dataset("features.0.weight", data=w0)
        end = d.id.get_offset() + d.id.get_storage_size()
    size = os.path.getsize(path)
    assert end == size, "dataset is not at the end of the file (%d, %d)" % (end, size)
    cut = size - w0.nbytes // 2
    with open(path, "r+b") as fh:
        head = fh.read(48)
        assert head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] == 0 and head[13] == 8
        fh.truncate(cut)
        fh.seek(40)  # superblock v0: base, free-space, end-of-file addresses at 24/32/40
        fh.write(cut.to_bytes(8, "little"))
    # The same kind of file simply cut in half: HDF5 itself notices at open.
    with new("cut.h5") as f:
        f["features.0.weight"] = w0
    with open(os.path.join(out, "cut.h5"), "r+b") as fh:
        fh.truncate(os.path.getsize(os.path.join(out, "cut.h5")) // 2)
    with open(os.path.join(out, "text.h5"), "w") as fh:
        fh.write("this is not HDF5\n" * 20)
    open(os.path.join(out, "empty.h5"), "w").close()

    # ---- for the io/h5 readers ----
    with h5py.File(os.path.join(out, "attrs.h5"), "w") as f:
        f.attrs["s_vlen"] = "hello"
        f.attrs["s_fixed"] = np.bytes_(b"hello")
        fixed_string(f, "s_nullterm", b"hello\0\0\0", h5py.h5t.STR_NULLTERM)
        fixed_string(f, "s_spacepad", b"hello   ", h5py.h5t.STR_SPACEPAD)
        f.attrs.create("s_vlen1", ["hello"], dtype=h5py.string_dtype())
        f.attrs["s_fixed1"] = np.array([b"hello"])
        f.attrs.create("s_ascii", b"hello", dtype=h5py.string_dtype("ascii"))
        f.attrs["s_empty"] = ""
        f.attrs.create("names_vlen", ["cat", "dog", "\u00e9mu"], dtype=h5py.string_dtype())
        f.attrs["names_fixed"] = np.array([b"cat", b"dog", b"emu"])
        f.attrs["i_scalar"] = np.int64(-7)
        f.attrs["i_1"] = np.array([7], np.int32)
        f.attrs["u8"] = np.uint8(200)
        f.attrs["u64_big"] = np.uint64(2 ** 63 + 5)
        f.attrs["i_array"] = np.array([1, 2], np.int64)
        f.attrs["d_scalar"] = 0.5
        f.attrs["f32_scalar"] = np.float32(0.25)
        f.attrs["f16_scalar"] = np.float16(1)
        f.attrs["f3_f64"] = np.array([0.1, 0.2, 0.3])
        f.attrs["f3_f32"] = np.array([0.1, 0.2, 0.3], np.float32)
        f.attrs["f3_int"] = np.array([1, 2, 3], np.int16)
        f.attrs["rank2"] = np.zeros((2, 2))
    with h5py.File(os.path.join(out, "data.h5"), "w") as f:
        v = np.arange(6, dtype=np.float32).reshape(2, 3)
        f["f32"] = v
        f["f32be"] = v.astype(">f4")
        f["f64"] = v.astype(np.float64)
        f["i32"] = v.astype(np.int32)
        f["i64"] = np.array([1, -2, 3, 2 ** 40], np.int64)
        f["u8"] = np.array([0, 1, 2, 254, 255], np.uint8)
        nan = np.zeros(10, np.float32)
        nan[4] = np.nan
        f["nan"] = nan
        inf = np.zeros(10, np.float32)
        inf[9] = -np.inf
        f["inf"] = inf
        f["scalar"] = np.float32(1.5)
        f.create_dataset("unallocated", shape=(2, 3), dtype=np.float32)
        # Objects below the root, as Keras files have them (io/h5_path.c).
        g = f.create_group("group")
        g.attrs.create("names", ["cat", "dog"], dtype=h5py.string_dtype())
        g.attrs["empty"] = np.array([], np.float64)
        g.create_group("sub")["f32"] = v
        g["soft"] = h5py.SoftLink("/f32")
        f["link"] = h5py.SoftLink("/group")
    # A user block shifts every address: the data still ends the file exactly.
    with h5py.File(os.path.join(out, "userblock.h5"), "w", userblock_size=512) as f:
        f.attrs["s"] = "hello"
        f["f32"] = np.arange(6, dtype=np.float32).reshape(2, 3)


def fuzzseed(path):
    """Attributes of every kind the loader reads and a few small datasets, in
    h5py's default (oldest) format: no metadata checksums to stop mutations."""
    with h5py.File(path, "w") as f:
        attrs(f, num_classes=3)
        f.attrs.create("class_names", ["cat", "dog", "emu"], dtype=h5py.string_dtype())
        f.attrs["mean"] = np.array([0.5, 0.5, 0.5])
        f.attrs["std"] = np.array([0.25, 0.25, 0.25], np.float32)
        f.attrs["resize"] = 256
        f.attrs["crop"] = np.int32(224)
        f.attrs["names_fixed"] = np.array([b"cat", b"dog", b"emu"])
        f["features.0.bias"] = np.arange(64, dtype=np.float32)
        f["classifier.6.bias"] = np.ones(3, np.float32)
        f["classifier.4.bias"] = np.ones(4096, np.float32)


def fuzzseed_keras(path):
    """VGG16's first convolution and a pooling layer in Keras's layout (one
    layer with weights: the reader stops at the count, after every check)."""
    with h5py.File(path, "w") as f:
        f.attrs.create("layer_names", ["input_1", "block1_conv1", "block1_pool"],
                       dtype=h5py.string_dtype())
        f.create_group("input_1").attrs["weight_names"] = np.array([], np.float64)
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = np.array([b"block1_conv1/kernel:0", b"block1_conv1/bias:0"])
        g["block1_conv1/kernel:0"] = np.arange(3 * 3 * 3 * 64, dtype=np.float32).reshape(3, 3, 3, 64)
        g["block1_conv1/bias:0"] = np.ones(64, np.float32)
        f.create_group("block1_pool").attrs.create("weight_names", [], dtype=h5py.string_dtype())
def fuzzseed_config(path):
    """A finetune config as a user could write it with h5py: strings of both
    kinds, integers and floats of several widths."""
    with h5py.File(path, "w") as f:
        f.attrs.create("arch", "alexnet", dtype=h5py.string_dtype())
        f.attrs.create("weights", "model.h5", dtype=h5py.string_dtype())
        f.attrs["data"] = np.bytes_(b"data")
        f.attrs["epochs"] = np.int32(3)
        f.attrs["batch_size"] = np.int64(4)
        f.attrs["lr"] = np.float32(0.001)
        f.attrs["momentum"] = 0.9
        f.attrs.create("augment", "none", dtype=h5py.string_dtype())
        f.attrs.create("cache_features", "on", dtype=h5py.string_dtype())
        f.attrs["seed"] = np.uint16(7)
        f.attrs["save_every"] = 0


# ---- in-place mutations of the exported base file ----

def mutate(path, case, undo):
    saved = path + "." + case + ".npy"
    with h5py.File(path, "r+") as f:
        if case in ("nan", "inf"):
            name, index, bad = (("classifier.4.bias", (7,), np.nan) if case == "nan"
                                else ("features.8.weight", (1, 2, 0, 1), -np.inf))
            d = f[name]
            if undo:
                d[index] = np.load(saved)
                os.unlink(saved)
            else:
                np.save(saved, d[index])
                d[index] = bad
        elif case == "missing":
            a, b = "features.3.bias", "features.3.bias_renamed"
            f.move(b, a) if undo else f.move(a, b)
        elif case == "extra":
            if undo:
                del f["extra_dataset"]
            else:
                f["extra_dataset"] = np.zeros(4, np.float32)
        elif case == "fixed":
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
            for k in ("format", "arch", "class_names"):
                del f.attrs[k]
            if undo:
                f.attrs["format"] = "graft-weights"
                f.attrs["arch"] = "alexnet"
                f.attrs.create("class_names", names, dtype=h5py.string_dtype())
            else:
                f.attrs["format"] = np.bytes_(b"graft-weights")
                fixed_string(f, "arch", b"alexnet ", h5py.h5t.STR_SPACEPAD)
                f.attrs["class_names"] = np.array([n.encode() for n in names])  # fixed, UTF-8 bytes
        elif case == "bigcrop":
            # Valid, but AlexNet's activations take about 0.74 GB an image.
            side = 256 if undo else 4096
            f.attrs["resize"] = side
            f.attrs["crop"] = side
        else:
            sys.exit("unknown case " + case)


def main():
    cmd = sys.argv[1]
    if cmd == "reference":
        reference(sys.argv[2])
    elif cmd == "small":
        small(sys.argv[2])
    elif cmd in ("mutate", "restore"):
        mutate(sys.argv[2], sys.argv[3], cmd == "restore")
    elif cmd == "fuzzseed":
        fuzzseed(sys.argv[2])
    elif cmd == "fuzzseed-keras":
        fuzzseed_keras(sys.argv[2])
    elif cmd == "fuzzseed-config":
        fuzzseed_config(sys.argv[2])
    elif cmd == "half":
        with open(sys.argv[2], "rb") as src, open(sys.argv[3], "wb") as dst:
            dst.write(src.read(os.path.getsize(sys.argv[2]) // 2))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
