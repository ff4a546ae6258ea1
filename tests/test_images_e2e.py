"""A small colour folder end to end: import-images, train 2 epochs at np 2, the per-epoch colour
grids, `sample` and `reconstruct`. The pictures are checked as a person would and then some: RGB
PNGs of the documented grid size, in colour (channels differ), the originals in every
reconstruction grid equal to the imported pixels byte for byte (channel order and rows kept from the
PNG files through HDF5, training's reader and the grid writer), and `sample` with the run's seed
equal to the last epoch's samples grid. The model is the MLP; the convolutional model runs the same
test when train has --conv. Env: VAE_MPI."""
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
from vaetest import VAE_MPI, check, done, mpirun, run1  # noqa: E402

tmp = tempfile.mkdtemp(prefix="vae_images_e2e_")
atexit.register(shutil.rmtree, tmp, True)  # also when a check raises
rng = np.random.default_rng(3)
S = 16
y, x = np.mgrid[0:S, 0:S]
# Two classes of coloured discs on transparent backgrounds, one of them palette PNGs.
for cls, n in (("discs", 40), ("rings", 24)):
    os.makedirs(os.path.join(tmp, "folder", cls))
    for i in range(n):
        cx, cy, r = rng.uniform(5, 11, 2).tolist() + [rng.uniform(3, 6)]
        d2 = (x - cx) ** 2 + (y - cy) ** 2
        mask = d2 < r * r if cls == "discs" else (d2 < r * r) & (d2 > (r - 2) ** 2)
        img = np.zeros((S, S, 4), np.uint8)
        img[mask, :3] = rng.integers(0, 256, 3)
        img[mask, 3] = 255
        im = Image.fromarray(img, "RGBA")
        (im.convert("P") if i % 3 == 0 else im).save(os.path.join(tmp, "folder", cls, f"{i:02d}.png"))
data = os.path.join(tmp, "colour.h5")
p = run1(["import-images", "--dir", os.path.join(tmp, "folder"), "--out", data, "--test-fraction", "0.25"])
check(p.returncode == 0, f"import: {p.stderr}")
with h5py.File(data, "r") as f:
    train_x, test_x = f["train/images"][...], f["test/images"][...]
check(train_x.shape == (48, S, S, 3) and test_x.shape == (16, S, S, 3), f"shapes {train_x.shape} {test_x.shape}")

has_conv = "--conv" in run1(["train", "--help"]).stdout
models = [("mlp", ["--hidden", "64", "--latent", "4"])] + ([("conv", ["--conv", "8,16", "--hidden", "32", "--latent", "4"])] if has_conv else [])
if not has_conv:
    print("test_images_e2e: train has no --conv yet; the MLP only")
grid = lambda n, cols, rows: (cols * (S + 1) + 1, rows * (S + 1) + 1)  # (width, height)


def tiles(png, row, n):
    """Tiles of one grid row, (n, S, S, 3)."""
    a = np.array(Image.open(png))
    y0 = row * (S + 1) + 1
    return np.stack([a[y0 : y0 + S, c * (S + 1) + 1 : c * (S + 1) + 1 + S] for c in range(n)])


for name, model in models:
    for decoder in ("bernoulli", "gaussian-learned"):
        out = os.path.join(tmp, f"run-{name}-{decoder}")
        p = mpirun(2, ["train", "--data", data, "--out", out, "--epochs", "2", "--batch-size", "8", "--decoder", decoder,
                       *model], quiet=True)
        check(p.returncode == 0, f"{name} {decoder}: train exit {p.returncode}: {p.stderr[-800:]}")
        what = f"{name} {decoder}"
        for e in (1, 2):
            for kind, size in (("samples", grid(64, 8, 8)), ("reconstruction", grid(16, 8, 2))):
                png = os.path.join(out, f"{kind}-epoch-{e}.png")
                if not os.path.exists(png):
                    check(False, f"{what}: {png} missing")
                    continue
                im = Image.open(png)
                check(im.mode == "RGB" and im.size == size, f"{what}: {kind} epoch {e}: {im.mode} {im.size}, want RGB {size}")
        rec = os.path.join(out, "reconstruction-epoch-2.png")
        if os.path.exists(rec):
            check(np.array_equal(tiles(rec, 0, 8), test_x[:8]), f"{what}: the grid's originals are the first 8 test images")
            r = np.array(Image.open(rec)).astype(int)
            check((r.max(-1) - r.min(-1)).max() > 40, f"{what}: the reconstruction grid is in colour")
        smp = os.path.join(tmp, f"{name}-{decoder}-samples.png")
        ck = os.path.join(out, "checkpoint.h5")
        p = run1(["sample", "--checkpoint", ck, "--out", smp])
        check(p.returncode == 0 and open(smp, "rb").read() == open(os.path.join(out, "samples-epoch-2.png"), "rb").read()
              if p.returncode == 0 else False, f"{what}: sample with the run's seed = samples-epoch-2.png ({p.stderr})")
        rc = os.path.join(tmp, f"{name}-{decoder}-recon.png")
        p = run1(["reconstruct", "--checkpoint", ck, "--data", data, "--count", "5", "--out", rc])
        check(p.returncode == 0, f"{what}: reconstruct: {p.stderr}")
        if p.returncode == 0:
            im = Image.open(rc)
            check(im.mode == "RGB" and im.size == grid(10, 5, 2), f"{what}: reconstruct PNG {im.mode} {im.size}")
            check(np.array_equal(tiles(rc, 0, 5), test_x[:5]), f"{what}: reconstruct's originals are the first 5 test images")

done("test_images_e2e")
