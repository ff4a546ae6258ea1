#!/usr/bin/python3
"""make_image_corpus.py OUTDIR: the bad image folders test_robust_images.py feeds to
`vae_mpi import-images`. make(outdir) returns {case: (folder, extra args, words the one error line
must hold)}; each folder holds two good 8x8 RGB PNGs per class next to the one bad thing, so that
each error is about that thing alone. Deterministic; writes only below OUTDIR (the FIFO and the
symbolic links too). Also skip_bad_folder(outdir): every kind of bad file at once, for --skip-bad."""
import io
import os
import sys

import numpy as np
from PIL import Image

rng = np.random.default_rng(9)
DS_STORE = b"\0\0\0\1Bud1" + bytes(range(256)) * 8  # how every macOS .DS_Store begins


def good_png(h=8, w=8):
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(b, "PNG", compress_level=0)
    return b.getvalue()


def good_jpeg(mode="RGB", h=16, w=16):
    b = io.BytesIO()
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(b, "JPEG", quality=90)
    return b.getvalue()


def corrupt_png():
    """One byte of the image data changed: found only when decoding, past the header the probe reads."""
    b = bytearray(good_png())
    i = b.index(b"IDAT") + 20
    b[i] ^= 0xFF
    return bytes(b)


def truncated_png():
    b = good_png()
    return b[: b.index(b"IDAT") + 60]


def huge_png():
    """A header declaring 100000 x 100000 pixels (a decompression bomb): refused before any allocation."""
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def corrupt_jpeg():
    """Garbage in the entropy-coded scan: libjpeg only warns and would return grey blocks."""
    b = bytearray(good_jpeg())
    sos = b.index(b"\xff\xda")
    for k in range(sos + 20, len(b) - 10, 7):
        b[k] = 0xFF if b[k + 1] != 0 else 0x00
    return bytes(b)


def bad_header_jpeg():
    b = bytearray(good_jpeg())
    sof = b.index(b"\xff\xc0")
    b[sof + 5 : sof + 9] = b"\0\0\0\0"  # height and width 0
    return bytes(b)


def cmyk_jpeg():
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK").save(b, "JPEG")
    return b.getvalue()


def gif():
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(b, "GIF")
    return b.getvalue()


def folder(root, name, files, classes=("a", "b")):
    """root/name/<class>/good{0,1}.png for each class, then files {relative path: bytes or a callable}."""
    d = os.path.join(root, name)
    for c in classes:
        os.makedirs(os.path.join(d, c), exist_ok=True)
        for i in range(2):
            with open(os.path.join(d, c, f"good{i}.png"), "wb") as f:
                f.write(good_png())
    for rel, data in files.items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if callable(data):
            data(p)
        else:
            with open(p, "wb") as f:
                f.write(data)
    return d


def fifo(p):
    os.mkfifo(p)


def dangling(p):
    os.symlink(os.path.join(os.path.dirname(p), "gone.png"), p)


def make(out):
    os.makedirs(out, exist_ok=True)
    c = {}
    c["corrupt png"] = (folder(out, "corrupt_png", {"a/x.png": corrupt_png()}), [], ["a/x.png", "corrupt PNG", "IDAT"])
    c["truncated png"] = (folder(out, "truncated_png", {"b/x.png": truncated_png()}), [], ["b/x.png", "truncated"])
    c["huge png header"] = (folder(out, "huge_png", {"a/bomb.png": huge_png()}), [], ["bomb.png", "100000x100000", "million"])
    c["corrupt jpeg"] = (folder(out, "corrupt_jpeg", {"a/x.jpg": corrupt_jpeg()}, classes=("a",)), ["--size", "8x8"],
                         ["a/x.jpg", "corrupt JPEG"])
    c["jpeg bad header"] = (folder(out, "bad_header_jpeg", {"a/x.jpg": bad_header_jpeg()}), [], ["a/x.jpg", "corrupt JPEG"])
    c["truncated jpeg"] = (folder(out, "truncated_jpeg", {"a/x.jpg": good_jpeg()[:300]}), ["--size", "8x8"],
                           ["a/x.jpg", "Premature end"])
    c["cmyk jpeg"] = (folder(out, "cmyk", {"a/print.jpg": cmyk_jpeg()}), [], ["print.jpg", "CMYK", "convert it to RGB"])
    c["readme"] = (folder(out, "readme", {"a/README": b"These are my images.\n"}), [], ["a/README", "text file", "--skip-bad"])
    c[".DS_Store"] = (folder(out, "ds_store", {"b/.DS_Store": DS_STORE}), [], ["b/.DS_Store", ".DS_Store file"])
    c["gif named .png"] = (folder(out, "gif", {"a/anim.png": gif()}), [], ["anim.png", "a GIF image"])
    c["zero-byte file"] = (folder(out, "zero", {"a/empty.png": b""}), [], ["empty.png", "an empty file"])
    c["fifo"] = (folder(out, "fifo", {"a/pipe.png": fifo}), [], ["pipe.png", "not a regular file"])
    c["dangling symlink"] = (folder(out, "dangling", {"a/link.png": dangling}), [], ["link.png", "does not exist"])
    c["mixed sizes"] = (folder(out, "mixed_sizes", {"b/wide.png": good_png(8, 12)}), [],
                        ["b/wide.png", "12x8", "--size HxW"])
    folder(out, "empty_class", {}, classes=("a",))
    os.makedirs(os.path.join(out, "empty_class", "b_empty"))
    c["class folder without files"] = (os.path.join(out, "empty_class"), [], ["b_empty", "has no files"])
    c["class of bad files, --skip-bad"] = (folder(out, "bad_class", {"c/notes.txt": b"hello\n"}), ["--skip-bad"],
                                           ["class 'c'", "none is a readable image"])
    c["file beside the class folders"] = (folder(out, "stray", {"README.md": b"# data\n"}), [],
                                          ["README.md", "beside the class folders"])
    os.makedirs(os.path.join(out, "empty"))
    c["empty folder"] = (os.path.join(out, "empty"), [], ["empty", "is empty"])
    c["missing folder"] = (os.path.join(out, "nope"), [], ["nope", "No such file"])
    c["folder is a file"] = (os.path.join(out, "readme", "a", "README"), [], ["README", "is not a folder"])
    good = folder(out, "good", {})
    for name, args, words in [
        ("--size 0x5", ["--size", "0x5"], ["--size", "0x5"]),
        ("--size abc", ["--size", "abc"], ["--size", "abc"]),
        ("--size 8x", ["--size", "8x"], ["--size", "8x"]),
        ("--channels 2", ["--channels", "2"], ["--channels", "'2'"]),
        ("--background grey", ["--background", "grey"], ["--background", "grey"]),
        ("--test-fraction 1", ["--test-fraction", "1"], ["--test-fraction", "below 1"]),
        ("--test-fraction -0.1", ["--test-fraction", "-0.1"], ["--test-fraction"]),
        ("--test-fraction nan", ["--test-fraction", "nan"], ["--test-fraction", "finite"]),
        ("--test-fraction with --group", ["--test-fraction", "0.2", "--group", "x"], ["--group x", "train and test"]),
        ("--threads -1", ["--threads", "-1"], ["--threads"]),
        ("--chunk 0", ["--chunk", "0"], ["--chunk"]),
        ("--group a/b", ["--group", "a/b"], ["--group", "a/b"]),
        ("unknown option", ["--resize", "8"], ["unknown option '--resize'"]),
        ("missing value", ["--size"], ["--size needs a value"]),
    ]:
        c[name] = (good, args, words)
    return c


def skip_bad_folder(out):
    """Good images (two per class) among one of each kind of bad file; returns (folder, bad paths in
    the order --skip-bad names them: the stray file first, then the rest in file order)."""
    bad = {"a/README": b"text\n", "a/x_corrupt.png": corrupt_png(), "a/y_truncated.jpg": good_jpeg()[:300],
           "b/.DS_Store": DS_STORE, "b/link.png": dangling, "b/pipe.png": fifo, "b/wide.png": good_png(8, 12),
           "NOTES.txt": b"notes\n"}
    d = folder(out, "skip_bad", bad)
    order = ["NOTES.txt"] + sorted(k for k in bad if k != "NOTES.txt")
    return d, [os.path.join(d, k) for k in order]


if __name__ == "__main__":
    cases = make(sys.argv[1])
    print(f"make_image_corpus: {len(cases)} cases in {sys.argv[1]}")
