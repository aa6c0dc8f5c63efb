"""Keras's HDF5 weights layout for the tests, written and read the way Keras
does it, independently of graft's reader (models/keras.c).

Writing: a VGG16 as Keras keeps it, from a torchvision model: kernels HWIO
(Dense kernels (in, out)), the first convolution reading BGR, fc1 reading
block5_pool flattened in NHWC order. In each generation's naming:
  keras3  root layer_names; group NAME, dataset NAME/NAME/kernel (Keras 3)
  tf2     group NAME, dataset NAME/NAME/kernel:0 (tf.keras 2)
  keras1  datasets NAME/NAME_W_1:0, NAME/NAME_b_1:0 directly in the group
with fixed- or variable-length strings, and optionally everything under a
group model_weights (a whole model saved by Keras 2).

Reading: layer_names, then each layer's weight_names, as Keras's legacy
loader does; layers whose weight_names is absent, empty or not strings have
no weights.
"""
import h5py
import numpy as np

# VGG16's layers as Keras names them; None marks a max pooling.
VGG16_CONVS = [("block1_conv1", 64), ("block1_conv2", 64), None,
               ("block2_conv1", 128), ("block2_conv2", 128), None,
               ("block3_conv1", 256), ("block3_conv2", 256), ("block3_conv3", 256), None,
               ("block4_conv1", 512), ("block4_conv2", 512), ("block4_conv3", 512), None,
               ("block5_conv1", 512), ("block5_conv2", 512), ("block5_conv3", 512), None]
TV_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision features.N
TV_DENSE_INDEX = [0, 3, 6]  # classifier.N
DENSE_NAMES = ["fc1", "fc2", "predictions"]


def keras_layers_from_torchvision(state, top):
    """[(name, [kernel, bias]) or (name, [])] of a Keras VGG16 holding the
    torchvision state_dict's values, in Keras's model order."""
    layers, conv, block = [], 0, 1
    for entry in VGG16_CONVS:
        if entry is None:
            layers.append(("block%d_pool" % block, []))
            block += 1
            continue
        i = TV_CONV_INDEX[conv]
        w = state["features.%d.weight" % i].numpy()  # [O, I, H, W]
        if conv == 0:
            w = w[:, ::-1]  # torchvision reads RGB, Keras's first convolution BGR
        kernel = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # HWIO
        layers.append((entry[0], [kernel, state["features.%d.bias" % i].numpy().copy()]))
        conv += 1
    if top:
        layers.append(("flatten", []))
        for j, name in enumerate(DENSE_NAMES):
            w = state["classifier.%d.weight" % TV_DENSE_INDEX[j]].numpy()  # [out, in]
            if j == 0:
                # torchvision flattens [512, 7, 7] as c*49 + h*7 + w; Keras [7, 7, 512]
                # as (h*7 + w)*512 + c.
                w = w.reshape(w.shape[0], 512, 7, 7).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
            layers.append((name, [np.ascontiguousarray(w.T),
                                  state["classifier.%d.bias" % TV_DENSE_INDEX[j]].numpy().copy()]))
    return layers


def _strings(values, fixed):
    if fixed:
        return np.array([v.encode("utf8") for v in values], dtype="S%d" % max(
            1, max((len(v.encode("utf8")) for v in values), default=1)))
    return np.array(values, dtype=h5py.string_dtype("utf-8"))


def write_keras(path, layers, naming="keras3", fixed=False, input_name="input_layer",
                whole_model=False, weightless="float"):
    """Write [(name, [arrays])] in Keras's layout. weightless: how a layer
    without weights says so: "float" (an empty float64 array, as Keras 2 and
    3 write it), "string" (an empty string array) or "none" (no attribute)."""
    suffixes = {"keras3": ["kernel", "bias"], "tf2": ["kernel:0", "bias:0"]}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        names = [input_name] + [n for n, _ in layers]
        root.attrs["layer_names"] = _strings(names, fixed)
        root.attrs["backend"] = _strings(["tensorflow"], fixed)[0]
        root.attrs["keras_version"] = _strings(["1.2.2" if naming == "keras1" else "2.9.0"],
                                               fixed)[0]
        for name, arrays in [(input_name, [])] + list(layers):
            g = root.create_group(name)
            if not arrays:
                if weightless == "float":
                    g.attrs["weight_names"] = np.array([], dtype=np.float64)
                elif weightless == "string":
                    g.attrs["weight_names"] = _strings([], fixed) if fixed else np.array(
                        [], dtype=h5py.string_dtype("utf-8"))
                continue
            if naming == "keras1":
                wn = ["%s_%s_1:0" % (name, s) for s in ("W", "b")[:len(arrays)]]
            else:
                wn = ["%s/%s" % (name, s) for s in suffixes[naming][:len(arrays)]]
            g.attrs["weight_names"] = _strings(wn, fixed)
            for n, a in zip(wn, arrays):
                g.create_dataset(n, data=a)


def read_keras(path):
    """[(name, [arrays])] of the layers with weights, as Keras's loader reads them."""
    def strings(attrs, key):
        if key not in attrs:
            return []
        v = attrs[key]
        if not isinstance(v, np.ndarray):
            v = np.array([v])
        if v.dtype.kind not in ("S", "O", "U"):
            return []
        return [x.decode("utf8") if isinstance(x, bytes) else str(x) for x in v]

    out = []
    with h5py.File(path, "r") as f:
        root = f if "layer_names" in f.attrs else f["model_weights"]
        for name in strings(root.attrs, "layer_names"):
            g = root[name]
            wn = strings(g.attrs, "weight_names")
            if wn:
                out.append((name, [np.asarray(g[w]) for w in wn]))
    return out


def caffe_mean_rgb():
    return np.array([123.68, 116.779, 103.939])


def graft_trunk_from_keras(layers, scale):
    """graft's conversion of a Keras VGG16 trunk, written out (models/keras.c's
    comment): OIHW kernels, the first one reading RGB, biases / scale. Returns
    {torchvision name: float32 array}."""
    state = {}
    for conv, (name, (kernel, bias)) in enumerate(layers[:13]):
        w = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if conv == 0:
            w = w[:, ::-1]
        i = TV_CONV_INDEX[conv]
        state["features.%d.weight" % i] = np.ascontiguousarray(w, dtype=np.float32)
        state["features.%d.bias" % i] = (bias.astype(np.float64) / scale).astype(np.float32)
    return state
