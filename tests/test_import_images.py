"""`vae_mpi import-images` read back pixel by pixel against independent decoders and formulas.

PNGs of every colour type and bit depth (1/2/4/8/16-bit grey, grey + tRNS, grey + alpha 8/16, RGB 8/16
with and without tRNS, palettes of 1/2/4/8 bits with and without tRNS, RGBA 8/16, Adam7-interlaced
ones), written by tests/imagegen.py (not libpng) at an odd size, plus Pillow-written PNGs and JPEGs
(grey, 4:2:0 and 4:4:4 colour, progressive). Each PNG's expected pixels come from what the generator
wrote, checked against Pillow's decode of the same file (exactly; within one level for 16-bit colour,
which Pillow truncates); each JPEG's from Pillow's decode, within one grey level. Then alpha over
white and black, grey output (ITU-R 601 luma), grey-only folders, every 16-bit value, the
ImageFolder order and labels, attributes, chunking, the per-class train/test split, an unlabelled
folder, and adding to an existing file. Env: VAE_MPI."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagegen as g  # noqa: E402
from vaetest import VAE_MPI, check, done  # noqa: E402

tmp = tempfile.mkdtemp(prefix="vae_import_images_")
atexit.register(shutil.rmtree, tmp, True)  # also when a check raises
rng = np.random.default_rng(14)
H, W = 5, 7  # odd, and not square
truth = {}  # path -> (h, w, 4) RGBA the decoder must produce
pillow_exact = {}  # path -> False where Pillow is known to truncate (16-bit colour)
jpegs = {}  # path -> Pillow's decode, (h, w, 3) or (h, w)


def rand(depth, *shape):
    return rng.integers(0, 1 << depth, shape)


def png(cls, name, samples, colour, depth, palette=None, trns=None, interlace=False, root="mixed"):
    d = os.path.join(tmp, root, cls)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    g.write_png(p, samples, colour, depth, palette, trns, interlace)
    truth[p] = g.truth_rgba(samples, colour, depth, palette, trns)
    pillow_exact[p] = not (depth == 16 and colour != g.GREY)
    return p


def pillow_png(cls, name, arr, mode, root="mixed", **kw):
    d = os.path.join(tmp, root, cls)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    Image.fromarray(arr.astype(np.uint8), mode).save(p, **kw)
    truth[p] = np.array(Image.open(p).convert("RGBA")).astype(np.int64)
    pillow_exact[p] = True
    return p


def jpeg(cls, name, arr, mode, root="mixed", **kw):
    d = os.path.join(tmp, root, cls)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    Image.fromarray(arr.astype(np.uint8), mode).save(p, "JPEG", **kw)
    jpegs[p] = np.array(Image.open(p)).astype(np.int64)
    return p


def smooth(h, w, c=1):
    """A smooth random image (JPEG's content: noise would test only the quantiser)."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([127 + 100 * np.sin(x / (1.5 + k) + rng.random() * 6) * np.cos(y / 2.5 + rng.random() * 6)
                  for k in range(c)], -1)
    return np.clip(a, 0, 255).squeeze()


# ---- the mixed folder: four classes, every PNG type, Pillow PNGs and JPEGs ----
pal = rng.integers(0, 256, (256, 3))
for depth in (1, 2, 4, 8, 16):
    png("a_grey", f"grey{depth:02d}.png", rand(depth, H, W, 1), g.GREY, depth)
    png("a_grey", f"grey{depth:02d}_adam7.png", rand(depth, H, W, 1), g.GREY, depth, interlace=True)
s = rand(8, H, W, 1)
png("a_grey", "grey08_trns.png", s, g.GREY, 8, trns=int(s[1, 2, 0]))
s = rand(2, H, W, 1)
png("a_grey", "grey02_trns.png", s, g.GREY, 2, trns=int(s[0, 0, 0]))
for depth in (8, 16):
    png("b_alpha", f"ga{depth:02d}.png", rand(depth, H, W, 2), g.GREY_ALPHA, depth)
    png("b_alpha", f"rgba{depth:02d}.png", rand(depth, H, W, 4), g.RGBA, depth)
    png("b_alpha", f"rgba{depth:02d}_adam7.png", rand(depth, H, W, 4), g.RGBA, depth, interlace=True)
    png("c_rgb", f"rgb{depth:02d}.png", rand(depth, H, W, 3), g.RGB, depth)
    s = rand(depth, H, W, 3)
    png("c_rgb", f"rgb{depth:02d}_trns.png", s, g.RGB, depth, trns=[int(v) for v in s[3, 4]])
png("c_rgb", "rgb16_adam7.png", rand(16, H, W, 3), g.RGB, 16, interlace=True)
for depth in (1, 2, 4, 8):
    n = 1 << depth
    png("d_palette", f"pal{depth}.png", rand(depth, H, W, 1), g.PALETTE, depth, palette=pal[:n])
    png("d_palette", f"pal{depth}_trns.png", rand(depth, H, W, 1), g.PALETTE, depth, palette=pal[:n],
        trns=rng.integers(0, 256, max(1, n // 2)))
png("d_palette", "pal4_adam7_trns.png", rand(4, H, W, 1), g.PALETTE, 4, palette=pal[:16], trns=rng.integers(0, 256, 16),
    interlace=True)
pillow_png("e_pillow", "pil_rgba.png", rand(8, H, W, 4), "RGBA")
pillow_png("e_pillow", "pil_l.png", rand(8, H, W), "L")
pillow_png("e_pillow", "pil_p.png", rand(8, H, W, 3), "RGB", optimize=True)  # Pillow's own filters
jpeg("f_jpeg", "grey.jpg", smooth(H, W), "L", quality=90)
jpeg("f_jpeg", "rgb420.jpg", smooth(H, W, 3), "RGB", quality=90, subsampling=2)
jpeg("f_jpeg", "rgb444.jpg", smooth(H, W, 3), "RGB", quality=95, subsampling=0)
jpeg("f_jpeg", "rgb_progressive.jpg", smooth(H, W, 3), "RGB", quality=85, progressive=True)

mixed = os.path.join(tmp, "mixed")
classes = sorted(os.listdir(mixed))
order = [os.path.join(mixed, c, f) for c in classes for f in sorted(os.listdir(os.path.join(mixed, c)))]
labels = [classes.index(os.path.basename(os.path.dirname(p))) for p in order]

# The generator's PNGs decoded by Pillow: the truth is what an independent decoder sees too.
for p in order:
    if p not in truth or not p.endswith(".png"):
        continue
    im = Image.open(p)
    im.load()
    if im.mode in ("I;16", "I;16B", "I"):
        v = np.array(im).astype(np.int64)
        seen = np.floor(v / 257 + 0.5)
        check(np.array_equal(seen, truth[p][..., 0]), f"{p}: Pillow's 16-bit grey disagrees with the generator")
        continue
    seen = np.array(im.convert("RGBA")).astype(np.int64)
    if pillow_exact[p]:
        diff = np.abs(seen - truth[p]).max()
        check(diff == 0, f"{p} ({im.mode}): Pillow's decode differs from the generator by {diff}")
    else:  # 16-bit colour: Pillow keeps the high byte (v >> 8) and cannot apply a 16-bit RGB tRNS
        diff = np.abs(seen[..., :3] - truth[p][..., :3]).max()
        check(diff <= 1, f"{p} ({im.mode}): Pillow's 16-bit colour differs from the generator by {diff}")


def run(args, want=0):
    p = subprocess.run([VAE_MPI, "import-images"] + args, capture_output=True, text=True, timeout=300)
    check(p.returncode == want, f"import-images {' '.join(args)}: exit {p.returncode}, want {want}: {p.stderr[-800:]}")
    return p


def expected(path, bg, c):
    if path in jpegs:
        x = jpegs[path]
        x = np.dstack([x] * 3) if x.ndim == 2 else x
    else:
        x = g.composite(truth[path], bg)
    return x if c == 3 else g.luma(x)[..., None] if path not in jpegs or jpegs[path].ndim == 3 else jpegs[path][..., None]


def compare(h5, group, paths, bg, c, what):
    with h5py.File(h5, "r") as f:
        x = f[group]["images"][...]
    check(x.shape == (len(paths), H, W, c) and x.dtype == np.uint8, f"{what}: shape {x.shape} {x.dtype}")
    if x.shape != (len(paths), H, W, c):
        return
    worst_png = worst_jpeg = 0
    for i, p in enumerate(paths):
        d = int(np.abs(x[i].astype(np.int64) - expected(p, bg, c)).max())
        if p in jpegs:
            worst_jpeg = max(worst_jpeg, d)
        else:
            worst_png = max(worst_png, d)
            check(d == 0, f"{what}: {os.path.relpath(p, tmp)} differs by up to {d} levels")
    check(worst_jpeg <= 1, f"{what}: a JPEG differs from Pillow's decode by {worst_jpeg} levels")
    print(f"{what}: {len(paths)} images, PNG worst {worst_png}, JPEG worst {worst_jpeg} levels")


# ---- A: colour (auto: some images have colour), alpha over white ----
out = os.path.join(tmp, "mixed.h5")
p = run(["--dir", mixed, "--out", out, "--group", "all"])
check("files/s" in p.stdout, f"files/s printed: {p.stdout}")
compare(out, "all", order, 255, 3, "RGB over white")
with h5py.File(out, "r") as f:
    x, y = f["all/images"], f["all/labels"]
    check(np.array_equal(y[...], labels), f"labels {y[...].tolist()} want {labels}")
    check(list(y.attrs["classes"]) == classes, f"classes {list(y.attrs['classes'])}")
    check(list(y.attrs["class_counts"]) == [labels.count(k) for k in range(len(classes))], "class_counts")
    check(x.attrs["source"] == mixed and x.attrs["format"] == "image-folder", f"attrs {dict(x.attrs)}")
    check(x.attrs["channels"] == "RGB" and x.attrs["background"] == "white", "channels/background attrs")
    check("as found" in x.attrs["size_policy"], f"size_policy {x.attrs['size_policy']}")
    check(x.compression == "gzip" and x.compression_opts == 4 and x.shuffle and x.chunks == (len(order), H, W, 3),
          f"storage {x.compression} {x.compression_opts} {x.shuffle} {x.chunks}")
    check(f.attrs["created_by"] == "vae_mpi import-images", "created_by")

# ---- B: grey output, alpha over black, one thread, small chunks ----
out_b = os.path.join(tmp, "grey.h5")
run(["--dir", mixed, "--out", out_b, "--channels", "1", "--background", "black", "--threads", "1", "--chunk", "7"])
compare(out_b, "train", order, 0, 1, "grey (luma) over black")
with h5py.File(out_b, "r") as f:
    check(f["train/images"].chunks == (7, H, W, 1), f"chunks {f['train/images'].chunks}")
    with h5py.File(out, "r") as f2:  # threads change nothing: same bytes as the 2-thread luma of run A
        check(np.array_equal(f["train/labels"][...], f2["all/labels"][...]), "labels equal across runs")

# ---- C: a grey-only folder comes out with C = 1 by default ----
grey_only = os.path.join(tmp, "greyonly")
shutil.copytree(os.path.join(mixed, "a_grey"), os.path.join(grey_only, "g"))
shutil.copy(os.path.join(mixed, "f_jpeg", "grey.jpg"), os.path.join(grey_only, "g", "zz.jpg"))
jpegs[os.path.join(grey_only, "g", "zz.jpg")] = jpegs[os.path.join(mixed, "f_jpeg", "grey.jpg")]
gorder = [os.path.join(grey_only, "g", f) for f in sorted(os.listdir(os.path.join(grey_only, "g")))]
for q in gorder:
    if q.endswith(".png"):
        truth[q] = truth[os.path.join(mixed, "a_grey", os.path.basename(q))]
out_c = os.path.join(tmp, "greyonly.h5")
run(["--dir", grey_only, "--out", out_c])
compare(out_c, "train", gorder, 255, 1, "grey-only folder, auto channels")

# ---- D: every 16-bit value, 256 x 256 grey: the scaling round(v / 257) exhaustively ----
every = os.path.join(tmp, "every16")
os.makedirs(os.path.join(every, "x"))
v16 = np.arange(65536).reshape(256, 256, 1)
g.write_png(os.path.join(every, "x", "all.png"), v16, g.GREY, 16)
run(["--dir", every, "--out", os.path.join(tmp, "every16.h5")])
with h5py.File(os.path.join(tmp, "every16.h5"), "r") as f:
    got = f["train/images"][0, :, :, 0].astype(np.int64)
check(np.array_equal(got, np.floor(v16[..., 0] / 257 + 0.5)), f"16-bit scaling: {int((got != np.floor(v16[..., 0] / 257 + 0.5)).sum())} of 65536 values differ")

# ---- E: the split: round(F n) per class, disjoint, complete, deterministic by --seed ----
def split(seed, name):
    o = os.path.join(tmp, name)
    run(["--dir", mixed, "--out", o, "--test-fraction", "0.3", "--seed", str(seed)])
    with h5py.File(o, "r") as f:
        return {k: (f[k]["images"][...], f[k]["labels"][...], list(f[k]["labels"].attrs["class_counts"])) for k in ("train", "test")}


s1, s1b, s2 = split(1, "s1.h5"), split(1, "s1b.h5"), split(2, "s2.h5")
with h5py.File(out, "r") as f:
    all_x = f["all/images"][...]
n_per = [labels.count(k) for k in range(len(classes))]
want_test = [int(np.floor(0.3 * n + 0.5)) for n in n_per]
check(s1["test"][2] == want_test and s1["train"][2] == [a - b for a, b in zip(n_per, want_test)],
      f"split counts test {s1['test'][2]} want {want_test}")
check(np.bincount(s1["test"][1], minlength=len(classes)).tolist() == want_test, "test labels match the counts")
rows = [r.tobytes() for r in all_x]
got_rows = sorted(r.tobytes() for r in np.concatenate([s1["train"][0], s1["test"][0]]))
check(got_rows == sorted(rows), "train + test hold every image exactly once")
train_pos = [rows.index(r.tobytes()) for r in s1["train"][0]]
check(train_pos == sorted(train_pos), "train keeps the file order")
check(all(np.array_equal(s1[k][0], s1b[k][0]) for k in s1), "same --seed, same split")
check(not np.array_equal(s1["test"][0], s2["test"][0]), "another --seed, another split")

# ---- F: an unlabelled folder (files, no class folders), and adding a group to an existing file ----
flat = os.path.join(tmp, "flat")
shutil.copytree(os.path.join(mixed, "c_rgb"), flat)
run(["--dir", flat, "--out", out, "--group", "flat"])
with h5py.File(out, "r") as f:
    check(list(f["flat/labels"].attrs["classes"]) == ["flat"] and not f["flat/labels"][...].any(),
          "unlabelled folder: one class named after the folder, labels 0")
    check(np.array_equal(f["all/images"][...], all_x), "the existing group is unchanged")
    fl = f["flat/images"][...]
forder = [os.path.join(mixed, "c_rgb", q) for q in sorted(os.listdir(flat))]
check(all(np.array_equal(fl[i], g.composite(truth[q], 255)) for i, q in enumerate(forder)), "flat folder pixels")
check(not [q for q in os.listdir(tmp) if ".tmp-" in q], "no temporary file left")
run(["--dir", flat, "--out", out, "--group", "flat"], want=1)
run(["--dir", flat, "--out", out, "--group", "flat", "--overwrite", "--channels", "1"])
with h5py.File(out, "r") as f:
    check(f["flat/images"].shape[-1] == 1, "--overwrite replaced the group")

done("test_import_images")
