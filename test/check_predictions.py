"""Checks a finetune run's predictions.png against classify's verdicts.

    check_predictions.py PNG VAL_DIR CLASSIFY_JSON

CLASSIFY_JSON: `classify -w best.h5 --json` on every image of VAL_DIR, one
object a line. predictions.png shows 8 images taken a class at a time in
turn, each class's in byte order (apps/finetune/predict.c), in a grid of 4
columns: each tile's frame must be green where classify's top label is the
image's folder, red where not, and the picture must decode to the size
io/report.h gives and show images, not a blank canvas. Exit 1 saying what
differs.
"""
import json
import os
import sys

from PIL import Image

COLS, PAD, CELL_W, CELL_H, HEAD, TILE = 4, 12, 248, 282, 44, 224


def main():
    png, val, got = sys.argv[1:4]
    top = {}
    with open(got) as f:
        for line in f:
            o = json.loads(line)
            top[os.path.basename(o["path"])] = o["top"][0]["label"]
    classes = sorted(os.listdir(val))
    files = {c: sorted(os.listdir(os.path.join(val, c)), key=os.fsencode) for c in classes}
    order = []
    for i in range(max(len(v) for v in files.values())):
        order += [(c, files[c][i]) for c in classes if i < len(files[c])]
    order = order[:8]
    im = Image.open(png)
    im.load()
    rows = (len(order) + COLS - 1) // COLS
    want = (max(560, min(len(order), COLS) * CELL_W + 2 * PAD), HEAD + rows * CELL_H)
    if im.format != "PNG" or im.size != want:
        sys.exit(f"{png}: {im.format} {im.size}, expected PNG {want}")
    rgb = im.convert("RGB")
    bad = []
    for i, (c, name) in enumerate(order):
        x = 2 * PAD + (i % COLS) * CELL_W
        y = HEAD + (i // COLS) * CELL_H
        r, g, b = rgb.getpixel((x - 2, y + TILE // 2))
        framed_right = g > r + 60
        framed_wrong = r > g + 60
        right = top[name] == c
        if not (framed_right if right else framed_wrong):
            bad.append(f"tile {i} ({c}/{name}, classify says {top[name]}): frame {(r, g, b)}")
        colours = len(set(rgb.crop((x, y, x + TILE, y + TILE)).getdata()))
        if colours < 500:
            bad.append(f"tile {i} ({c}/{name}): {colours} colours, not an image")
    if bad:
        sys.exit("\n".join(bad))
    print(f"{len(order)} tiles, frames agree with classify")


main()
