#!/usr/bin/env python3
"""What --precision fp16-weights costs in accuracy: classify the same images
with a model at fp32 and at fp16-weights and compare every class's
probability.

    bench/fp16_accuracy.py WEIGHTS.h5 IMAGES... [--bin build/bin] [--threads 2]

Prints, over the images: the largest difference of any class's probability
between the two runs, the mean of each image's largest difference, top-1
agreement, and, when the images sit in ImageFolder class folders (their
parent folder's sorted position is the label), each run's accuracy.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def classify(args, precision):
    k = args.classes
    p = subprocess.run([os.path.join(args.bin, "classify"), "--json", "-d", "cpu", "-t",
                        str(args.threads), "-k", str(k), "--precision", precision, "-w", args.weights]
                       + args.images, capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        if "top" in r:  # an image classify could not read has "error" instead
            out[r["path"]] = {t["index"]: t["prob"] for t in r["top"]}
    if p.returncode != 0 and not out:
        sys.exit("fp16_accuracy: classify --precision %s failed: %s" % (precision, p.stderr.strip()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("images", nargs="+", help="image files or folders")
    ap.add_argument("--classes", type=int, default=2, help="the model's classes (all are compared)")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(HERE), "build", "bin"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    a, b = classify(args, "fp32"), classify(args, "fp16-weights")
    if set(a) != set(b) or not a:
        sys.exit("fp16_accuracy: the two runs classified different images")
    worst, mean, agree, right = 0.0, 0.0, 0, [0, 0]
    labelled = 0
    for path in sorted(a):
        d = max(abs(a[path].get(c, 0.0) - b[path].get(c, 0.0)) for c in set(a[path]) | set(b[path]))
        worst, mean = max(worst, d), mean + d
        ta, tb = max(a[path], key=a[path].get), max(b[path], key=b[path].get)
        agree += ta == tb
        folder = os.path.dirname(path)
        classes = sorted(e for e in os.listdir(os.path.dirname(folder))
                         if os.path.isdir(os.path.join(os.path.dirname(folder), e)))
        if len(classes) == args.classes:
            label = classes.index(os.path.basename(folder))
            labelled += 1
            right[0] += ta == label
            right[1] += tb == label
    n = len(a)
    print("images: %d; largest probability difference %.3g (mean of each image's largest %.3g); "
          "top-1 agreement %d of %d" % (n, worst, mean / n, agree, n))
    if labelled == n:
        print("accuracy: fp32 %.4f, fp16-weights %.4f" % (right[0] / n, right[1] / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
