#!/usr/bin/python3
"""make_image_seeds.py: (re)writes fuzz/corpus/image/, the seeds of fuzz_image.c: small PNGs of every
colour type (tests/imagegen.py's encoder, interlaced ones too), Pillow's PNGs and JPEGs (grey, colour,
progressive, CMYK), and the damaged files of tests/robust/make_image_corpus.py. Deterministic. Run
by hand; the outputs are committed."""
import io
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests"))
sys.path.insert(0, os.path.join(here, "..", "tests", "robust"))
import imagegen as g  # noqa: E402
import make_image_corpus as bad  # noqa: E402

rng = np.random.default_rng(11)
d = os.path.join(here, "corpus", "image")
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d)
pal = rng.integers(0, 256, (16, 3))
with tempfile.TemporaryDirectory() as t:
    cases = [("grey1", g.GREY, 1, {}), ("grey16", g.GREY, 16, {}), ("grey8_trns", g.GREY, 8, {"trns": 3}),
             ("ga8", g.GREY_ALPHA, 8, {}), ("rgb16_trns", g.RGB, 16, {"trns": [1, 2, 3]}), ("rgba8", g.RGBA, 8, {}),
             ("pal4_trns", g.PALETTE, 4, {"palette": pal, "trns": list(range(0, 256, 32))}),
             ("rgba16_adam7", g.RGBA, 16, {"interlace": True}), ("pal2_adam7", g.PALETTE, 2, {"palette": pal[:4], "interlace": True})]
    for name, colour, depth, kw in cases:
        p = os.path.join(t, name)
        g.write_png(p, rng.integers(0, 1 << depth, (5, 3, g.CHANNELS[colour])), colour, depth, **kw)
        shutil.copy(p, os.path.join(d, name + ".png"))
for name, mode, kw in [("grey", "L", {}), ("rgb", "RGB", {}), ("progressive", "RGB", {"progressive": True}),
                       ("cmyk", "CMYK", {})]:
    b = io.BytesIO()
    ch = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    Image.fromarray(rng.integers(0, 256, (9, 6, ch), dtype=np.uint8).squeeze(), mode).save(b, "JPEG", **kw)
    open(os.path.join(d, name + ".jpg"), "wb").write(b.getvalue())
for name, data in [("corrupt.png", bad.corrupt_png()), ("truncated.png", bad.truncated_png()),
                   ("huge.png", bad.huge_png()), ("corrupt.jpg", bad.corrupt_jpeg()),
                   ("bad_header.jpg", bad.bad_header_jpeg()), ("truncated.jpg", bad.good_jpeg()[:300]),
                   ("gif", bad.gif()), ("ds_store", bad.DS_STORE[:64]), ("empty", b"")]:
    open(os.path.join(d, name), "wb").write(data)
print(f"make_image_seeds: {len(os.listdir(d))} seeds in {d}")
