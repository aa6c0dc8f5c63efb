"""PIL + torchvision references for test_preprocess.c (run at test time).

  eval DATA_DIR
      For every JPEG/PNG under DATA_DIR/{train,val} (sorted, dotfiles and
      undecodable files skipped), stream to stdout: u32 name length, the name
      (relative to DATA_DIR), u32 C, H, W, then the float32 CHW tensor of
      Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet)])
      on Image.open(f).convert('RGB'). A zero name length ends the stream.
      (Streamed through a pipe: stored, the ~400 tensors would be ~240 MB.)
  synth OUT_DIR [EXTRA_IMAGE...]
      Write decoder-coverage images (JPEG and PNG flavours) into OUT_DIR, and
      for each of them and each EXTRA_IMAGE (made by the C test with libjpeg)
      NAME.rgb: u32 w, u32 h, then the RGB bytes graft must produce; and
      manifest.txt: one "NAME RULE" line per image (RULE: "pil", what
      convert('RGB') gives; "hibyte", 16-bit gray, where PIL clips to 255 and
      graft takes the high byte).
  resize OUT_DIR IMAGE...
      PIL resizes (boxes, up and down, odd sizes) and torchvision eval
      transforms with other sizes for each IMAGE, listed in OUT_DIR/cases.txt:
        resize IMG X0 Y0 X1 Y1 W H FILE   (FILE: W*H*3 RGB bytes)
        crop IMG I J H W SIZE FILE        (F.resized_crop to SIZE x SIZE, RGB bytes)
        eval IMG RESIZE CROP FILE        (FILE: float32 3*CROP*CROP)
  bench DIR ROUNDS
      Time Image.open + convert('RGB'), alone and followed by the eval
      transform, over DIR/*/* (median of ROUNDS rounds).
"""
import os
import struct
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

# pal8_trns: convert('RGB') of a P image with a tRNS table is what we test
warnings.filterwarnings("ignore", message="Palette images with Transparency")

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def eval_transform(resize=256, crop=224):
    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop),
                               transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def list_images(data_dir):
    out = []
    for split in ("train", "val"):
        for root, dirs, files in os.walk(os.path.join(data_dir, split)):
            dirs.sort()
            for f in sorted(files):
                if f.startswith("."):
                    continue
                path = os.path.join(root, f)
                try:
                    with Image.open(path) as im:
                        fmt = im.format
                except Exception:
                    continue
                if fmt in ("JPEG", "PNG"):
                    out.append(path)
    return out


def cmd_eval(data_dir):
    t = eval_transform()
    w = sys.stdout.buffer
    for path in list_images(data_dir):
        x = t(Image.open(path).convert("RGB")).contiguous()
        assert x.dtype == torch.float32
        name = os.path.relpath(path, data_dir).encode()
        w.write(struct.pack("<I", len(name)) + name + struct.pack("<III", *x.shape))
        w.write(x.numpy().tobytes())
    w.write(struct.pack("<I", 0))
    w.flush()


# ---- a small PNG writer: every colour type, bit depth, filter and Adam7 ----

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def _pack_row(samples, bit_depth):
    """samples: 1-D ints for one row (all channels interleaved)."""
    if bit_depth == 16:
        return np.asarray(samples, dtype=">u2").tobytes()
    if bit_depth == 8:
        return np.asarray(samples, dtype=np.uint8).tobytes()
    per = 8 // bit_depth
    out = bytearray((len(samples) + per - 1) // per)
    for i, v in enumerate(samples):
        out[i // per] |= int(v) << (8 - bit_depth * (i % per + 1))
    return bytes(out)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_rows(rows, bpp):
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, raw in enumerate(rows):
        ft = y % 5
        f = bytearray(len(raw))
        for i in range(len(raw)):
            a = raw[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ft]
            f[i] = (raw[i] - pred) & 255
        out.append(ft)
        out += f
        prev = raw
    return bytes(out)


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path, arr, color_type, bit_depth, interlace=False, plte=None, trns=None):
    """arr: (h, w, channels) integer samples."""
    h, w, ch = arr.shape
    bpp = max(1, ch * bit_depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    data = b""
    for xs, ys, dx, dy in passes:
        sub = arr[ys::dy, xs::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = [_pack_row(sub[y].reshape(-1), bit_depth) for y in range(sub.shape[0])]
        data += _filter_rows(rows, bpp)
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                       1 if interlace else 0))
    if plte is not None:
        png += _chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    png += _chunk(b"tEXt", b"Comment\x00graft test image")
    png += _chunk(b"IDAT", zlib.compress(data, 9))
    png += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def pattern(h, w, ch, maxval, seed):
    """Gradients plus noise: smooth areas and edges, every sample value used."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7 + y * 3 + 41 * c) for c in range(ch)], axis=-1)
    noise = rng.integers(0, maxval + 1, size=(h, w, ch))
    mix = np.where(rng.random((h, w, ch)) < 0.3, noise, base % (maxval + 1))
    return mix.astype(np.int64)


def write_rgb(path, rgb):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack("<II", rgb.shape[1], rgb.shape[0]))
        f.write(rgb.tobytes())


def synth_pngs(out):
    made = []  # (name, rule)
    W, H = 37, 23
    for bd in (1, 2, 4, 8, 16):
        for il in (False, True):
            name = f"png_gray{bd}{'_il' if il else ''}.png"
            write_png(os.path.join(out, name), pattern(H, W, 1, (1 << bd) - 1, bd), 0, bd, il)
            made.append((name, "hibyte" if bd == 16 else "pil"))
    write_png(os.path.join(out, "png_gray8_trns.png"), pattern(H, W, 1, 255, 3), 0, 8,
              trns=struct.pack(">H", 17))
    made.append(("png_gray8_trns.png", "pil"))
    for bd in (8, 16):
        for il in (False, True):
            sfx = f"{bd}{'_il' if il else ''}.png"
            write_png(os.path.join(out, "png_ga" + sfx), pattern(H, W, 2, (1 << bd) - 1, 5), 4,
                      bd, il)
            write_png(os.path.join(out, "png_rgb" + sfx), pattern(H, W, 3, (1 << bd) - 1, 6), 2,
                      bd, il)
            write_png(os.path.join(out, "png_rgba" + sfx), pattern(H, W, 4, (1 << bd) - 1, 7), 6,
                      bd, il)
            made += [("png_ga" + sfx, "pil"), ("png_rgb" + sfx, "pil"), ("png_rgba" + sfx, "pil")]
    write_png(os.path.join(out, "png_rgb8_trns.png"), pattern(H, W, 3, 255, 8), 2, 8,
              trns=struct.pack(">HHH", 1, 2, 3))
    made.append(("png_rgb8_trns.png", "pil"))
    rng = np.random.default_rng(9)
    for bd in (1, 2, 4, 8):
        for il in (False, True):
            n = 1 << bd
            plte = rng.integers(0, 256, size=(n, 3))
            name = f"png_pal{bd}{'_il' if il else ''}.png"
            write_png(os.path.join(out, name), pattern(H, W, 1, n - 1, 10 + bd), 3, bd, il,
                      plte=plte)
            made.append((name, "pil"))
    plte = rng.integers(0, 256, size=(200, 3))
    write_png(os.path.join(out, "png_pal8_trns.png"), pattern(H, W, 1, 199, 20), 3, 8,
              plte=plte, trns=bytes(range(0, 250, 5)))
    made.append(("png_pal8_trns.png", "pil"))
    # indices past a short PLTE: PIL looks them up in its default gray ramp
    write_png(os.path.join(out, "png_pal8_short.png"), pattern(H, W, 1, 255, 21), 3, 8,
              plte=rng.integers(0, 256, size=(16, 3)))
    made.append(("png_pal8_short.png", "pil"))
    # tiny interlaced images: Adam7 passes with no pixels
    for w, h in ((1, 1), (2, 3), (5, 1)):
        name = f"png_rgb8_il_{w}x{h}.png"
        write_png(os.path.join(out, name), pattern(h, w, 3, 255, 30 + w), 2, 8, True)
        made.append((name, "pil"))
    # what PIL itself writes
    rgb = pattern(H, W, 3, 255, 40).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(out, "pil_rgb.png"))
    Image.fromarray(pattern(H, W, 4, 255, 41).astype(np.uint8), "RGBA").save(
        os.path.join(out, "pil_rgba.png"))
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=50).save(
        os.path.join(out, "pil_p.png"), transparency=3)
    Image.fromarray(rgb).convert("1").save(os.path.join(out, "pil_1.png"))
    Image.fromarray(rgb).convert("LA").save(os.path.join(out, "pil_la.png"))
    made += [(n, "pil") for n in ("pil_rgb.png", "pil_rgba.png", "pil_p.png", "pil_1.png",
                                   "pil_la.png")]
    return made


def synth_jpegs(out):
    made = []
    big = pattern(67, 93, 3, 255, 50).astype(np.uint8)
    # smooth it a little so the JPEGs are not all noise
    big = ((big.astype(np.int32) + np.roll(big, 1, 0) + np.roll(big, 1, 1)) // 3).astype(np.uint8)
    im = Image.fromarray(big)
    variants = {
        "jpeg_420.jpg": dict(quality=75),
        "jpeg_444.jpg": dict(quality=95, subsampling=0),
        "jpeg_422.jpg": dict(quality=90, subsampling=1),
        "jpeg_prog.jpg": dict(quality=85, progressive=True),
        "jpeg_prog444.jpg": dict(quality=85, progressive=True, subsampling=0),
        "jpeg_opt.jpg": dict(quality=60, optimize=True),
    }
    for name, kw in variants.items():
        im.save(os.path.join(out, name), **kw)
        made.append((name, "pil"))
    im.convert("L").save(os.path.join(out, "jpeg_gray.jpg"), quality=90)
    im.convert("L").save(os.path.join(out, "jpeg_gray_prog.jpg"), quality=90, progressive=True)
    im.convert("CMYK").save(os.path.join(out, "jpeg_cmyk.jpg"), quality=90)
    Image.fromarray(pattern(61, 79, 4, 255, 51).astype(np.uint8), "CMYK").save(
        os.path.join(out, "jpeg_cmyk_noise.jpg"), quality=95)
    im.crop((0, 0, 1, 1)).save(os.path.join(out, "jpeg_1x1.jpg"))
    im.crop((0, 0, 17, 9)).save(os.path.join(out, "jpeg_17x9.jpg"))
    made += [(n, "pil") for n in ("jpeg_gray.jpg", "jpeg_gray_prog.jpg", "jpeg_cmyk.jpg",
                                   "jpeg_cmyk_noise.jpg", "jpeg_1x1.jpg", "jpeg_17x9.jpg")]
    return made


def cmd_synth(out, extras):
    os.makedirs(out, exist_ok=True)
    made = synth_pngs(out) + synth_jpegs(out)
    made += [(os.path.basename(p), "pil") for p in extras]
    with open(os.path.join(out, "manifest.txt"), "w") as m:
        for name, rule in made:
            im = Image.open(os.path.join(out, name))
            if rule == "hibyte":
                # PIL opens 16-bit gray as mode I and convert('RGB') clips to
                # 255; graft takes the high byte instead
                assert im.mode in ("I", "I;16B", "I;16"), im.mode
                a = np.asarray(im).astype(np.int64) >> 8
                rgb = np.repeat(a[:, :, None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"))
            write_rgb(os.path.join(out, name + ".rgb"), rgb)
            m.write(f"{name} {rule}\n")


def cmd_resize(out, images):
    os.makedirs(out, exist_ok=True)
    lines = []
    for idx, path in enumerate(images):
        im = Image.open(path).convert("RGB")
        W, H = im.size
        cases = [
            ((0, 0, W, H), (256, 256)),
            ((0, 0, W, H), (W * 2 + 3, H + 1)),      # up
            ((0, 0, W, H), (37, 1001)),              # down one way, up the other
            ((0, 0, W, H), (1, 1)),
            ((0, 0, W, H), (W, H // 3)),             # only vertical
            ((0, 0, W, H), (W // 3 + 1, H)),         # only horizontal
            ((0, 0, W, H), (W, H)),                  # nothing to do
            ((1, 0, W, H), (W, H)),                  # same size, shifted box
            ((10, 20, W // 2 + 7, H // 2 + 3), (224, 224)),
            ((W // 3, H // 4, W // 3 + 5, H // 4 + 3), (301, 199)),
            ((W - 1, H - 1, W, H), (3, 5)),
            ((0, 0, 1, H), (7, 9)),
        ]
        for k, (box, size) in enumerate(cases):
            r = im.resize(size, Image.Resampling.BILINEAR, box=box)
            f = f"r{idx}_{k}.rgb"
            with open(os.path.join(out, f), "wb") as fh:
                fh.write(np.asarray(r).tobytes())
            lines.append(f"resize {idx} {box[0]} {box[1]} {box[2]} {box[3]} {size[0]} {size[1]} {f}")
        # RandomResizedCrop's crop-then-resize (F.resized_crop) at fixed params
        for k, (i, j, h, w) in enumerate([(0, 0, H, W), (H // 5, W // 7, H // 2, W // 3),
                                          (H - 9, W - 13, 9, 13), (1, 2, H - 1, W - 2)]):
            r = transforms.functional.resized_crop(im, i, j, h, w, [224, 224])
            f = f"c{idx}_{k}.rgb"
            with open(os.path.join(out, f), "wb") as fh:
                fh.write(np.asarray(r).tobytes())
            lines.append(f"crop {idx} {i} {j} {h} {w} 224 {f}")
        for k, (resize, crop) in enumerate([(300, 299), (128, 224), (100, 101), (224, 224),
                                            (17, 17), (256, 255), (W + H, 64)]):
            x = eval_transform(resize, crop)(im).contiguous()
            f = f"e{idx}_{k}.f32"
            with open(os.path.join(out, f), "wb") as fh:
                fh.write(x.numpy().tobytes())
            lines.append(f"eval {idx} {resize} {crop} {f}")
    with open(os.path.join(out, "cases.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def cmd_bench(data_dir, rounds):
    files = sorted(os.path.join(data_dir, c, f) for c in os.listdir(data_dir)
                   if os.path.isdir(os.path.join(data_dir, c))
                   for f in os.listdir(os.path.join(data_dir, c)) if not f.startswith("."))
    files = [f for f in files if Image.open(f).format in ("JPEG", "PNG")]
    t = eval_transform()

    def run(full):
        t0 = time.perf_counter()
        for f in files:
            im = Image.open(f).convert("RGB")
            if full:
                t(im)
        return (time.perf_counter() - t0) * 1000 / len(files)

    for f in files[:5]:  # warm-up
        t(Image.open(f).convert("RGB"))
    for full, label in ((False, "decode"), (True, "decode+eval")):
        times = sorted(run(full) for _ in range(rounds))
        print(f"PIL+torchvision {label:12s} {times[len(times) // 2]:8.3f} ms/image "
              f"(median of {rounds}, {len(files)} images, torch threads {torch.get_num_threads()})")


def main():
    cmd = sys.argv[1]
    if cmd == "eval":
        cmd_eval(sys.argv[2])
    elif cmd == "synth":
        cmd_synth(sys.argv[2], sys.argv[3:])
    elif cmd == "resize":
        cmd_resize(sys.argv[2], sys.argv[3:])
    elif cmd == "bench":
        cmd_bench(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
