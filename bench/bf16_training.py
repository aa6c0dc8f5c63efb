#!/usr/bin/python3
"""What graft's bf16 does to a training step, estimated on the CPU: the
whole-net check of test_cuda_ops (whole_net) emulated in PyTorch over several
seeds, each quantity it compares printed beside the tolerance that test
holds a GPU's bf16 to.

    bench/bf16_training.py [--seeds 8] [--threads 2]

Exit status 0 when every error is below its tolerance (BF16_TOL and
BF16_TRAIN_TOL read from test/test_cuda_ops.c), 1 otherwise.

The setup is the test's: an AlexNet with 5 classes, every parameter uniform
in +-1/sqrt(fan-in), 3 images uniform in [-2, 2], labels 0, 3, 4; the whole
forward compared; then the classifier trained 3 steps (dropout 0.5, SGD lr
0.01, momentum 0.9, weight decay 1e-4) on the same fp32 features in fp32 and
in bf16, and the losses, the classifier and its momentum compared. bf16 is
graft's, emulated as in bench/bf16_accuracy.py: each GEMM's operands rounded
(forward, dx and dw), the forward's outputs rounded after bias and ReLU,
the bias's gradient (column sums), softmax, the loss's gradient and SGD in
fp32. The test's own draws differ (graft's generator); what transfers is
how large each error is.
"""
import argparse
import os
import re
import sys

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bf16_accuracy import bf, graft_bf16, linear_bf16  # noqa: E402

B, K, LR, MU, WD, P = 3, 5, 0.01, 0.9, 1e-4, 0.5
TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "test_cuda_ops.c")


def tolerances():
    """whole_net's tolerances in bf16, its two constants read from the test."""
    found = dict(re.findall(r"^#define (BF16_TOL|BF16_TRAIN_TOL) (\S+)", open(TEST).read(), re.M))
    if len(found) != 2:
        sys.exit("bf16_training: %s: BF16_TOL or BF16_TRAIN_TOL not found" % TEST)
    tol, train = float(found["BF16_TOL"]), float(found["BF16_TRAIN_TOL"])
    return {"logits": 4 * tol, "loss": tol, "classifier": 1e-3, "momentum": train}


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def model_of(seed):
    torch.manual_seed(seed)
    m = torchvision.models.alexnet(num_classes=K).eval()
    with torch.no_grad():
        for layer in list(m.features) + list(m.classifier):
            if hasattr(layer, "weight"):
                bound = 1 / layer.weight[0].numel() ** 0.5
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)
    return m


def step(params, buf, feats, labels, masks, emulate):
    """One training step of the classifier, params [(w, b)] x 3 and their momentum
    buf (None before the first step): the new params, the new buf, the losses."""
    x, inputs, outs = feats, [], []
    for j, (w, b) in enumerate(params):
        if j < 2:
            x = x * masks[j] / (1 - P)
        inputs.append(x)
        if emulate:
            x = linear_bf16(x, w, b, j < 2)
        else:
            x = x @ w.t() + b
            x = F.relu(x) if j < 2 else x
        outs.append(x)
    p = x.softmax(1)
    loss = -p[range(B), labels].log()
    dy = (p - F.one_hot(labels, K).float()) / B
    grads = [None] * 3

    def mm(a, c):  # a GEMM: in bf16, cuBLAS rounds both operands
        return bf(a) @ bf(c) if emulate else a @ c

    for j in (2, 1, 0):
        grads[j] = (mm(dy.t(), inputs[j]), dy.sum(0))
        if j > 0:
            dx = mm(dy, params[j][0])
            if j == 1:
                dx = dx * masks[1] / (1 - P)
            dy = dx * (outs[j - 1] > 0).float()  # ReLU's backward on its (rounded) output
    new_params, new_buf = [], []
    for j, ((w, b), (gw, gb)) in enumerate(zip(params, grads)):
        g = (gw + WD * w, gb + WD * b)
        m = g if buf is None else (MU * buf[j][0] + g[0], MU * buf[j][1] + g[1])
        new_buf.append(m)
        new_params.append((w - LR * m[0], b - LR * m[1]))
    return new_params, new_buf, loss


def flat_layers(pairs):
    return [torch.cat([w.flatten(), b.flatten()]) for w, b in pairs]


def flat(pairs):
    return torch.cat(flat_layers(pairs))


def one_seed(seed):
    m = model_of(seed)
    x = torch.rand(B, 3, 224, 224, generator=torch.Generator().manual_seed(seed)) * 4 - 2
    labels = torch.tensor([0, 3, 4])
    out = {}
    with torch.no_grad():
        out["logits"] = rel(graft_bf16(m, x), m(x))
        feats = torch.flatten(m.avgpool(m.features(x)), 1)
        lin = [(l.weight.clone(), l.bias.clone()) for l in m.classifier
               if isinstance(l, torch.nn.Linear)]
        state = {False: (lin, None), True: (lin, None)}
        g = torch.Generator().manual_seed(seed + 1000)
        worst_loss = 0.0
        for _ in range(3):
            masks = [(torch.rand(B, n, generator=g) >= P).float() for n in (9216, 4096)]
            losses = {}
            for emulate in (False, True):
                params, buf, losses[emulate] = step(*state[emulate], feats, labels, masks, emulate)
                state[emulate] = (params, buf)
            worst_loss = max(worst_loss, rel(losses[True], losses[False]))
        out["loss"] = worst_loss
        out["classifier"] = rel(flat(state[True][0]), flat(state[False][0]))
        out["momentum"] = rel(flat(state[True][1]), flat(state[False][1]))
        out["momentum by layer"] = [rel(a, b) for a, b in zip(flat_layers(state[True][1]),
                                                              flat_layers(state[False][1]))]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tols = tolerances()
    worst = {k: 0.0 for k in tols}
    for seed in range(args.seeds):
        r = one_seed(seed)
        print("seed %d: logits %.3g, loss %.3g, classifier %.3g, momentum %.3g (by layer %s)" % (
            seed, r["logits"], r["loss"], r["classifier"], r["momentum"],
            ", ".join("%.3g" % v for v in r["momentum by layer"])))
        for k in tols:
            worst[k] = max(worst[k], r[k])
    print("worst over %d seeds, relative L2 error of bf16 against fp32 (the test's tolerance):"
          % args.seeds)
    for k, tol in tols.items():
        print("  %-10s %.3g (%.3g: %.1fx)" % (k, worst[k], tol, tol / worst[k]))
    return 0 if all(worst[k] < tols[k] for k in tols) else 1


if __name__ == "__main__":
    sys.exit(main())
