"""Compare a graft finetune run with the PyTorch reference of ref_finetune.py.

    compare_finetune.py REF.h5 RUN_DIR --trainable classifier|head [--tol 1e-4]
                        [--metrics-only] [--min-best-val-acc A] [--first N]

Per-epoch losses and accuracies (metrics.csv) and the final trained
parameters (last.h5) must agree to a relative 1e-4. So that agreeing cannot
come from barely training, the update itself (final - initial) must also
agree, to a relative 1e-3 (it is the difference of two close float32
tensors; without any training it would be off by 1), and the reference must
have moved each tensor by at least 1e-5 of its norm. With --metrics-only the
parameters are not compared (a reference that keeps none); with
--min-best-val-acc the best validation accuracy of both must reach A; with
--first N the run has N epochs, compared with the reference's first N.
"""
import argparse
import csv
import os
import sys

import h5py
import numpy as np


def rel(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb else np.linalg.norm(a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("run")
    ap.add_argument("--trainable", default="classifier")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--metrics-only", action="store_true")
    ap.add_argument("--min-best-val-acc", type=float)
    ap.add_argument("--first", type=int)
    args = ap.parse_args()
    bad = 0
    with h5py.File(args.ref, "r") as ref:
        want = ref["metrics"][()]
        if args.first:
            want = want[:args.first]
        names = [] if args.metrics_only else [n for n in ref.keys()
                                              if n.startswith("classifier.")]
        params = {n: ref[n][()] for n in names}
        initial = {n: ref["initial/" + n][()] for n in names}
    with open(os.path.join(args.run, "metrics.csv")) as f:
        got = [[float(r[k]) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")]
               for r in csv.DictReader(f)]
    if len(got) != len(want):
        print("FAIL: %d epochs in metrics.csv, %d in the reference" % (len(got), len(want)))
        return 1
    for g, w in zip(got, want):
        for col, (a, b) in enumerate(zip(g[1:], w[1:])):
            err = abs(a - b)
            ok = err <= args.tol * abs(b) + 1e-6  # metrics.csv has 6 decimals
            print("epoch %d %-10s graft %.6f torch %.6f  |diff| %.2e %s" % (
                g[0], ("train_loss", "train_acc", "val_loss", "val_acc")[col], a, b, err,
                "ok" if ok else "FAIL"))
            bad += not ok
    if args.min_best_val_acc is not None:
        for who, rows in (("graft", got), ("torch", want)):
            best = max(r[4] for r in rows)
            ok = best >= args.min_best_val_acc
            print("%s: best validation accuracy %.6f (at least %.2f) %s" % (
                who, best, args.min_best_val_acc, "ok" if ok else "FAIL"))
            bad += not ok
    if args.metrics_only:
        return 1 if bad else 0
    # The trainable part as last.h5 stores it: the flat suffix of the classifier's
    # parameters in state_dict order.
    order = sorted(names, key=lambda n: (int(n.split(".")[1]), n.endswith("bias")))
    if args.trainable == "head":
        order = order[-2:]
    flat = np.concatenate([params[n].ravel() for n in order])
    with h5py.File(os.path.join(args.run, "last.h5"), "r") as last:
        trained = last["params"][()]
    if trained.shape != flat.shape:
        print("FAIL: last.h5 holds %d trainable values, the reference %d" % (trained.size,
                                                                             flat.size))
        return 1
    offset = 0
    for n in order:
        k = params[n].size
        got = trained[offset:offset + k].reshape(params[n].shape)
        e = rel(got, params[n])
        moved = rel(params[n], initial[n])
        de = rel(got - initial[n], params[n] - initial[n])
        ok = e <= args.tol and de <= 1e-3 and moved >= 1e-5
        print("%-22s relative error %.2e, update moved it %.2e, update error %.2e %s" % (
            n, e, moved, de, "ok" if ok else "FAIL"))
        bad += not ok
        offset += k
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
