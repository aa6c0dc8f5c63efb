"""Compare `classify --json -k K` output with ref_classify.py's expectations:
the same top-1 class on every image, every shown probability within 1e-3,
labels from the weights file, and the order of the input list kept.

    compare_classify.py EXPECTED.jsonl GOT.jsonl K [LABELS]

LABELS: the class names, comma-separated (default: ref_classify.py's).
"""
import json
import sys


def main():
    expected = [json.loads(l) for l in open(sys.argv[1])]
    got = [json.loads(l) for l in open(sys.argv[2])]
    k = int(sys.argv[3])
    names = ["class %d" % i for i in range(10)]
    names[3] = "\"quoted\" \\ name"
    if len(sys.argv) > 4:
        names = sys.argv[4].split(",")
    bad = 0
    if [e["path"] for e in expected] != [g["path"] for g in got]:
        print("FAIL: the paths differ or are out of order")
        return 1
    worst = 0.0
    for e, g in zip(expected, got):
        probs = e["probs"]
        top = sorted(range(len(probs)), key=lambda i: -probs[i])[:k]
        shown = [t["index"] for t in g["top"]]
        if len(shown) != k or shown[0] != top[0]:
            print("FAIL %s: top %s, PyTorch %s" % (g["path"], shown, top))
            bad += 1
        for t in g["top"]:
            d = abs(t["prob"] - probs[t["index"]])
            worst = max(worst, d)
            if d > 1e-3 or t["label"] != names[t["index"]]:
                print("FAIL %s: class %d prob %.6f vs %.6f, label %r" % (
                    g["path"], t["index"], t["prob"], probs[t["index"]], t["label"]))
                bad += 1
        if any(g["top"][i]["prob"] < g["top"][i + 1]["prob"] for i in range(k - 1)):
            print("FAIL %s: not sorted by probability" % g["path"])
            bad += 1
    print("%d images, same top-1 on %d, largest probability difference %.2e" % (
        len(got), len(got) - bad, worst))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
