"""Bad image inputs for the classify error tests, written into DIR:

    make_bad_inputs.py DIR

empty.jpg, truncated.jpg (half of a real JPEG), gif.jpg (a GIF), bmp.png (a
BMP), text.png (text), huge.png (a PNG header claiming 200000x200000),
huge.jpg (a JPEG header claiming 65000x65000), good.jpg (a valid image).
"""
import io
import os
import struct
import sys
import zlib

from PIL import Image


def png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk +
            struct.pack(">I", zlib.crc32(chunk) & 0xffffffff))


def jpeg_claiming(w, h):
    """A real small JPEG whose SOF0 frame header claims w x h."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, h, w)
    return bytes(data)


def main():
    d = sys.argv[1]
    img = Image.new("RGB", (320, 240))
    img.putdata([((x * 7) % 256, (y * 3) % 256, (x + y) % 256)
                 for y in range(240) for x in range(320)])
    good = io.BytesIO()
    img.save(good, "JPEG", quality=90)
    files = {
        "good.jpg": good.getvalue(),
        "empty.jpg": b"",
        "truncated.jpg": good.getvalue()[:len(good.getvalue()) // 2],
        "text.png": b"this is not an image\n",
        "huge.png": png_header(200000, 200000),
        "huge.jpg": jpeg_claiming(65000, 65000),
    }
    for name, fmt in (("gif.jpg", "GIF"), ("bmp.png", "BMP")):
        b = io.BytesIO()
        img.save(b, fmt)
        files[name] = b.getvalue()
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
