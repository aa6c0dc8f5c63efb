"""PyTorch reference for fine-tuning VGG16 from a Keras trunk (test/keras_finetune.sh).

    ref_keras_finetune.py --keras NOTOP.h5 --data HYMENOPTERA --out DIR
                          [--epochs 8] [--seed 0] [--lr 0.001] [--check-images 8]

The tutorial's recipe as finetune runs it with its defaults and augment none:
the Keras trunk converted as graft converts it (keras_layout.py), features
computed once per image (the trunk is frozen, so training from them is the
same computation), a new classifier initialised, shuffled and dropped out
with graft's own random streams (graft_rng.py), SGD with momentum 0.9, batch
4, StepLR(7, 0.1), cross-entropy. Writes DIR/ref.h5 (metrics per epoch:
epoch, train_loss, train_acc, val_loss, val_acc), DIR/images.txt and, for
each epoch E, DIR/expected-E.jsonl: the softmax of the classifier after
epoch E on a few validation images (classify -w best.h5 must give the best
epoch's). With --cache DIR the features,
then the results, are kept in DIR under a hash of what they depend on (the
trunk's and the images' bytes, this code, torch's version; the settings)
and reused by a later run with the same.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import graft_rng  # noqa: E402
import keras_layout  # noqa: E402

SCALE = 57.6  # models/keras.c: GRAFT_KERAS_SCALE


def is_image(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head[:3] == b"\xff\xd8\xff" or head == b"\x89PNG\r\n\x1a\n"


def split(root, name, classes):
    """(path, label) as graft's ImageFolder scan lists them: sorted, JPEG and PNG only."""
    out = []
    for label, c in enumerate(classes):
        d = os.path.join(root, name, c)
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(p) and is_image(p):
                out.append((p, label))
    return out


def features(model, samples, tf, batch=8):
    rows = []
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p, _ in samples[i:i + batch]])
            rows.append(torch.flatten(model.avgpool(model.features(x)), 1))
    return torch.cat(rows)


def digest(files, *extra):
    """A hash of files' bytes, each under a name of its own (not its path: the
    same data elsewhere gives the same features), and of some strings."""
    h = hashlib.sha256()
    for name, path in files:
        h.update(name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    for e in extra:
        h.update(str(e).encode() + b"\0")
    return h.hexdigest()[:32]


def cached_results(cache, key, out):
    """Copy an earlier run's results with the same key into out; False if none."""
    d = cache and os.path.join(cache, "keras-finetune-" + key)
    if not d or not os.path.isdir(d):
        return False
    for n in os.listdir(d):
        shutil.copyfile(os.path.join(d, n), os.path.join(out, n))
    return True


def keep_results(cache, key, out, names):
    if not cache:
        return
    d = os.path.join(cache, "keras-finetune-" + key)
    tmp = "%s.tmp.%d" % (d, os.getpid())
    os.makedirs(tmp)
    for n in names:
        shutil.copyfile(os.path.join(out, n), os.path.join(tmp, n))
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)


def load_features(cache, key):
    path = cache and os.path.join(cache, "keras-features-%s.npz" % key)
    if not path or not os.path.exists(path):
        return None
    with np.load(path) as z:
        return torch.from_numpy(z["train"]), torch.from_numpy(z["val"])


def keep_features(cache, key, xt, xv):
    if not cache:
        return
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "keras-features-%s.npz" % key)
    tmp = "%s.tmp.%d.npz" % (path, os.getpid())
    np.savez(tmp, train=xt.numpy(), val=xv.numpy())
    os.replace(tmp, path)


class Classifier:
    """VGG16's classifier as finetune trains it, every Linear new from graft's
    streams (the j-th from the end from stream(seed, TAG_INIT, j, 0)), with
    torch.optim.SGD's momentum step written out."""

    def __init__(self, seed, dims):
        self.weights, self.biases = [], []
        for i, (out_f, in_f) in enumerate(dims):
            w, b = graft_rng.linear_init(seed, len(dims) - 1 - i, out_f, in_f)
            self.weights.append(torch.from_numpy(w))
            self.biases.append(torch.from_numpy(b))
        self.momentum = [None] * (2 * len(dims))

    def forward(self, x, masks=None):
        """Logits, and what the backward needs: each Linear's input and output."""
        inputs, outputs = [], []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            inputs.append(x)
            y = torch.addmm(b, x, w.t())
            if i < len(self.weights) - 1:
                y = torch.relu(y)
                outputs.append(y)
                if masks is not None:  # graft's dropout, p = 0.5: kept values times 2
                    y = y * masks[i] * 2
            x = y
        return x, inputs, outputs

    def sgd(self, i, param, grad_into, lr):
        """torch.optim.SGD with momentum 0.9: buf = 0.9 buf + grad (the first
        step: buf = grad), param -= lr buf. The gradient goes straight into the
        buffer, so the first Linear's 100M weights are passed over 6 times a
        step rather than ~10: the same arithmetic, much faster here."""
        if self.momentum[i] is None:
            self.momentum[i] = grad_into(None)
        else:
            grad_into(self.momentum[i])
        param.add_(self.momentum[i], alpha=-lr)

    def step(self, x, y, masks, lr):
        """One training step on a batch; its logits and per-image losses."""
        logits, inputs, outputs = self.forward(x, masks)
        losses = F.cross_entropy(logits, y, reduction="none")
        g = (logits.softmax(1) - F.one_hot(y, logits.shape[1])) / x.shape[0]
        for i in reversed(range(len(self.weights))):
            gx = g @ self.weights[i] if i > 0 else None  # before this layer's step
            self.sgd(2 * i, self.weights[i],
                     lambda buf, g=g, i=i: (torch.mm(g.t(), inputs[i]) if buf is None else
                                            buf.addmm_(g.t(), inputs[i], beta=0.9)), lr)
            self.sgd(2 * i + 1, self.biases[i],
                     lambda buf, g=g: g.sum(0) if buf is None else buf.mul_(0.9).add_(g.sum(0)),
                     lr)
            if i > 0:
                g = gx * masks[i - 1] * 2 * (outputs[i - 1] > 0)
        return logits, losses


def train_classifier(xt, yt, xv, yv, seed, lr0, epochs, batch_size, probe):
    """finetune's loop from feature rows: graft's shuffle of each epoch, its
    dropout masks for each step, StepLR(7, 0.1). Returns the metrics per epoch
    (epoch, train_loss, train_acc, val_loss, val_acc) and the softmax of the
    rows `probe` after each epoch."""
    classes = int(max(int(yt.max()), int(yv.max())) + 1)
    model = Classifier(seed, [(4096, xt.shape[1]), (4096, 4096), (classes, 4096)])
    metrics, probes = [], []
    with torch.no_grad():
        for epoch in range(epochs):
            te = time.time()
            lr = lr0 * 0.1 ** (epoch // 7)
            order = graft_rng.shuffle(seed, epoch, len(xt))
            total, correct = 0.0, 0
            for s in range(0, (len(order) + batch_size - 1) // batch_size):
                idx = order[s * batch_size:(s + 1) * batch_size]
                n = len(idx)
                masks = [torch.from_numpy(graft_rng.dropout_keep(
                    seed, epoch, s, k * n * 4096, n * 4096, 0.5).reshape(n, 4096).astype(
                        np.float32)) for k in range(2)]
                out, losses = model.step(xt[idx], yt[idx], masks, lr)
                total += float(losses.sum())
                correct += int((out.argmax(1) == yt[idx]).sum())
            out = model.forward(xv)[0]
            vloss = float(F.cross_entropy(out, yv, reduction="sum")) / len(xv)
            vacc = int((out.argmax(1) == yv).sum()) / len(xv)
            metrics.append([epoch + 1, total / len(xt), correct / len(xt), vloss, vacc])
            print("epoch %d: train %.6f %.6f val %.6f %.6f (%.1f s)" % (
                tuple(metrics[-1]) + (time.time() - te,)))
            probes.append(model.forward(probe)[0].softmax(1))
    return metrics, probes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keras", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--check-images", type=int, default=8)
    ap.add_argument("--cache", metavar="DIR",
                    help="keep the features and the results there, keyed by a hash of "
                         "everything they depend on, and reuse them when that is unchanged")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()

    model = torchvision.models.vgg16(weights=None).eval()
    trunk = keras_layout.graft_trunk_from_keras(keras_layout.read_keras(args.keras), SCALE)
    with torch.no_grad():
        for name, value in trunk.items():
            model.state_dict()[name].copy_(torch.from_numpy(value))
    mean = (keras_layout.caffe_mean_rgb() / 255).tolist()
    std = [SCALE / 255] * 3
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.ToTensor(), transforms.Normalize(mean, std)])
    classes = sorted(d for d in os.listdir(os.path.join(args.data, "train"))
                     if os.path.isdir(os.path.join(args.data, "train", d)))
    train, val = split(args.data, "train", classes), split(args.data, "val", classes)
    # What the features depend on (the trunk, the images, the code computing
    # them, torch), and what the results depend on besides.
    code = [(n, os.path.join(HERE, n)) for n in ("ref_keras_finetune.py", "keras_layout.py")]
    images = [(os.path.relpath(p, args.data), p) for p, _ in train + val]
    # oneDNN's and OpenBLAS's kernels (so the features' last bits) follow
    # these: an AVX2-capped run must not reuse a native run's features
    # (measured: 2.2e-6 apart on VGG16's trunk, past the budget after 8 epochs).
    isa = [os.environ.get(v, "") for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                                           "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")]
    feature_key = digest([("trunk", args.keras)] + images + code, torch.__version__,
                         torchvision.__version__, SCALE, *isa)
    # The results name the images by their paths (images.txt, expected.jsonl).
    result_key = digest([("graft_rng.py", os.path.join(HERE, "graft_rng.py"))], feature_key,
                        os.path.abspath(args.data), args.epochs, args.seed, args.lr,
                        args.batch_size, args.check_images)
    if cached_results(args.cache, result_key, args.out):
        print("reference results from %s (the same inputs, code and settings)" % args.cache)
        return
    cached = load_features(args.cache, feature_key)
    if cached is not None:
        xt, xv = cached
        print("features from %s (the same trunk, images, code and torch)" % args.cache)
    else:
        xt, xv = features(model, train, tf), features(model, val, tf)
        keep_features(args.cache, feature_key, xt, xv)
    yt = torch.tensor([label for _, label in train])
    yv = torch.tensor([label for _, label in val])
    print("features of %d + %d images in %.1f s (RMS %.3g, largest %.3g)" % (
        len(train), len(val), time.time() - t0, float(xt.pow(2).mean().sqrt()), float(xt.max())))

    # classify -w best.h5 on a few validation images: each epoch's softmax.
    picks = val[:args.check_images // 2] + val[-(args.check_images - args.check_images // 2):]
    probe = torch.stack([xv[val.index(s)] for s in picks])
    metrics, probes = train_classifier(xt, yt, xv, yv, args.seed, args.lr, args.epochs,
                                       args.batch_size, probe)
    with h5py.File(os.path.join(args.out, "ref.h5"), "w") as f:
        f.create_dataset("metrics", data=np.array(metrics, dtype=np.float64))
    names = ["ref.h5", "images.txt"]
    with open(os.path.join(args.out, "images.txt"), "w") as f:
        f.write("".join(p + "\n" for p, _ in picks))
    for epoch, probs in enumerate(probes, 1):
        names.append("expected-%d.jsonl" % epoch)
        with open(os.path.join(args.out, names[-1]), "w") as f:
            for (p, _), pr in zip(picks, probs.tolist()):
                f.write(json.dumps({"path": p, "probs": pr}) + "\n")
    keep_results(args.cache, result_key, args.out, names)
    print("reference done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
