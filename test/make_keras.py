"""Fixtures for test_keras: Keras-layout VGG16 files from a seeded torchvision
VGG16, what graft must make of them, broken variants, and Keras's logits.

    make_keras.py DIR [--data HYMENOPTERA --count 4]
    make_keras.py DIR --only-bad     the broken files and notop_keras3_vlen.h5 only

DIR gets, from torchvision's VGG16 seeded with 7 (keras_layout.py writes them):
  top_tf2_fixed.h5         with its top; tf.keras 2 names (.../kernel:0), fixed strings
  notop_keras3_vlen.h5     Keras 3 names (.../kernel), variable-length strings
  notop_keras1_fixed.h5    Keras 1 names (NAME_W_1:0 in the layer group), fixed strings,
                           weightless layers without weight_names
  notop_tf2_vlen_model.h5  a whole model saved by Keras 2 (under model_weights/),
                           weightless layers with an empty string array
  expected.h5              what graft's model must hold, per torchvision name: the
                           seeded values, biases of convolutions / 57.6, fc1 * 57.6
and one file per way of not fitting (bad_*.h5; test_keras.c says what each
must report). With --data, also logits.h5: the with-top file's logits on
`count` shared images computed as Keras computes them (keras_logits below),
with the image paths.
"""
import argparse
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import keras_layout as kl  # noqa: E402

SCALE = 57.6  # models/keras.c: GRAFT_KERAS_SCALE


def expected(state, path):
    """graft's parameters for the seeded model: the conversion undone."""
    with h5py.File(path, "w") as f:
        for name, t in state.items():
            v = t.numpy()
            if name.startswith("features.") and name.endswith(".bias"):
                v = (v.astype(np.float64) / SCALE).astype(np.float32)
            elif name == "classifier.0.weight":
                v = (v.astype(np.float64) * SCALE).astype(np.float32)
            f.create_dataset(name, data=v)


def zeros_layers(spec):
    """[(name, [kernel, bias])] of zeros for [(name, kernel shape)] (None: pooling)."""
    out, block = [], 1
    for entry in spec:
        if entry is None:
            out.append(("block%d_pool" % block, []))
            block += 1
        else:
            name, shape = entry
            out.append((name, [np.zeros(shape, np.float32), np.zeros(shape[-1], np.float32)]))
    return out


def write_unstored(path, layers, stored):
    """A Keras-layout file whose first `stored` layers with weights hold data
    and the others only their metadata (never-written datasets): a reader
    that stops at the first layer that does not fit reads nothing further."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array(["input_1"] + [n for n, _ in layers],
                                          dtype=h5py.string_dtype())
        f.create_group("input_1").attrs["weight_names"] = np.array([], np.float64)
        seen = 0
        for name, arrays in layers:
            g = f.create_group(name)
            wn = ["%s/%s" % (name, s) for s in ("kernel", "bias", "gamma", "beta")[:len(arrays)]]
            g.attrs["weight_names"] = np.array(wn, dtype=h5py.string_dtype())
            for n, a in zip(wn, arrays):
                if seen < stored:
                    g.create_dataset(n, data=a)
                else:
                    g.create_dataset(n, shape=a.shape, dtype=a.dtype)
            seen += bool(arrays)


def vgg19_spec():
    spec, cin = [], 3
    for block, (count, width) in enumerate(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)), 1):
        for i in range(count):
            spec.append(("block%d_conv%d" % (block, i + 1), (3, 3, cin, width)))
            cin = width
        spec.append(None)
    return spec


def bad_files(out, notop):
    """One broken variant per file; notop is the seeded trunk's layers."""
    convs = [l for l in notop if l[1]]
    # Another model: VGG19 (its 8th convolution is block3_conv4, 256 -> 256).
    write_unstored(os.path.join(out, "bad_vgg19.h5"),
                   zeros_layers(vgg19_spec()), stored=7)
    # Another model: a ResNet-like first layer, then a batch normalisation.
    write_unstored(os.path.join(out, "bad_resnet.h5"),
                   [("conv1_conv", [np.zeros((7, 7, 3, 64), np.float32), np.zeros(64, np.float32)]),
                    ("conv1_bn", [np.zeros(64, np.float32)] * 4)], stored=0)
    # A wrong shape: block2_conv1's bias has 127 values.
    layers = [(n, list(a)) for n, a in notop[:6]]
    layers[3][1][1] = np.zeros(127, np.float32)
    write_unstored(os.path.join(out, "bad_shape.h5"), layers, stored=3)
    # A weight listed in weight_names but not in the file.
    kl.write_keras(os.path.join(out, "bad_missing.h5"), notop[:2], naming="tf2")
    with h5py.File(os.path.join(out, "bad_missing.h5"), "r+") as f:
        del f["block1_conv2/block1_conv2/kernel:0"]
    # Integer data.
    kl.write_keras(os.path.join(out, "bad_int.h5"),
                   [("block1_conv1", [convs[0][1][0].astype(np.int32), convs[0][1][1]])])
    # A NaN deep in the trunk: found when the data is read, after every check.
    layers = [(n, [a.copy() for a in arrs]) for n, arrs in notop]
    layers[8][1][0][1, 2, 3, 4] = np.nan  # block3_conv3's kernel
    kl.write_keras(os.path.join(out, "bad_nan.h5"), layers, naming="tf2", fixed=True)
    # Keras 1's channels-first kernels (out, in, h, w).
    kl.write_keras(os.path.join(out, "bad_channels_first.h5"),
                   [("block1_conv1", [np.ascontiguousarray(convs[0][1][0].transpose(3, 2, 0, 1)),
                                      convs[0][1][1]])], naming="keras1")
    # Too few layers: two convolutions only.
    kl.write_keras(os.path.join(out, "bad_few.h5"), notop[:2])
    # A convolution without its bias.
    kl.write_keras(os.path.join(out, "bad_nobias.h5"), [("block1_conv1", [convs[0][1][0]])])
    # The trunk and a classifier of the user's own (Dense 25088 -> 256).
    write_unstored(os.path.join(out, "bad_head.h5"),
                   notop + [("flatten", []),
                            ("dense", [np.zeros((25088, 256), np.float32),
                                       np.zeros(256, np.float32)])], stored=13)
    # layer_names lists a layer that has no group.
    kl.write_keras(os.path.join(out, "bad_group.h5"), notop[:2])
    with h5py.File(os.path.join(out, "bad_group.h5"), "r+") as f:
        del f["block1_conv2"]
    # layer_names is not strings.
    with h5py.File(os.path.join(out, "bad_names.h5"), "w") as f:
        f.attrs["layer_names"] = np.arange(3)


def keras_logits(path, images):
    """What Keras computes for a VGG16 with its top, written out in PyTorch:
    BGR pixels in 0..255 minus the caffe mean, HWIO kernels applied as
    convolutions, block5_pool flattened in NHWC order into fc1, logits before
    predictions' softmax. Images: Resize(256) + CenterCrop(224) (graft's
    default eval transform)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms

    layers = kl.read_keras(path)
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.ToTensor()])
    mean_bgr = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in images]) * 255
    x = x.flip(1) - mean_bgr  # RGB -> BGR, caffe mean
    conv = 0
    with torch.no_grad():
        for entry in kl.VGG16_CONVS:
            if entry is None:
                x = F.max_pool2d(x, 2)
                continue
            kernel, bias = (torch.from_numpy(a) for a in layers[conv][1])
            x = F.relu(F.conv2d(x, kernel.permute(3, 2, 0, 1), bias, padding=1))
            conv += 1
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # Flatten of NHWC
        for j in range(3):
            kernel, bias = (torch.from_numpy(a) for a in layers[13 + j][1])
            x = x @ kernel + bias
            if j < 2:
                x = F.relu(x)
    return x.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--only-bad", action="store_true")
    args = ap.parse_args()
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.manual_seed(7)
    state = torchvision.models.vgg16(weights=None).state_dict()
    top = kl.keras_layers_from_torchvision(state, top=True)
    notop = top[:18]
    o = args.out
    kl.write_keras(os.path.join(o, "notop_keras3_vlen.h5"), notop, naming="keras3")
    bad_files(o, notop)
    if args.only_bad:
        return
    kl.write_keras(os.path.join(o, "top_tf2_fixed.h5"), top, naming="tf2", fixed=True,
                   input_name="input_1")
    kl.write_keras(os.path.join(o, "notop_keras1_fixed.h5"), notop, naming="keras1", fixed=True,
                   input_name="input_2", weightless="none")
    kl.write_keras(os.path.join(o, "notop_tf2_vlen_model.h5"), notop, naming="tf2",
                   whole_model=True, weightless="string", input_name="image")
    expected(state, os.path.join(o, "expected.h5"))
    if args.data:
        images = []
        for cls in ("ants", "bees"):
            d = os.path.join(args.data, "val", cls)
            images += [os.path.join(d, n) for n in sorted(os.listdir(d))
                       if n.lower().endswith(".jpg")][:args.count // 2]
        logits = keras_logits(os.path.join(o, "top_tf2_fixed.h5"), images)
        with h5py.File(os.path.join(o, "logits.h5"), "w") as f:
            f.create_dataset("logits", data=logits.astype(np.float32))
            f.attrs["images"] = np.array(images, dtype=h5py.string_dtype())


if __name__ == "__main__":
    main()
