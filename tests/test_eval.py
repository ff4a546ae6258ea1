"""`vae_mpi eval`, `sample`, `reconstruct`, train's per-epoch PNGs and scripts/plot-metrics.py, end to
end on a tiny model: every test image counted once at np 1 and np 2 (203 images), the same ELBO at
both and equal to train's last test_elbo, IW(K=50) >= ELBO, --json is one object, PNG sizes, and one
error line for each user error."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from vaetest import SANITIZED, check, done, epochs, expect_error, mpirun, run1, write_images

SRC = os.environ.get("VAE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
PY = os.environ.get("VAE_PY", "/usr/bin/python3")
tmp = tempfile.mkdtemp(prefix="vae_eval_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 640, "test/images": 203}, seed=1)


def png_header(path):
    """(width, height, bit depth, color type) from the IHDR chunk, or None."""
    try:
        with open(path, "rb") as f:
            b = f.read(33)
    except OSError:
        return None
    if len(b) < 33 or b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
        return None
    w, h, depth, color = struct.unpack(">IIBB", b[16:26])
    return w, h, depth, color


def grid(n, cols, t=28):
    rows = -(-n // cols)
    return cols * (t + 1) + 1, rows * (t + 1) + 1


# ---- train writes the pictures; --no-images writes none ----
run = os.path.join(tmp, "run")
p = mpirun(2, ["train", "--data", data, "--out", run, "--epochs", "2", "--batch-size", "32", "--seed", "3"], quiet=True)
check(p.returncode == 0, f"train: {p.stderr[-2000:]}")
for e in (1, 2):
    s = png_header(os.path.join(run, f"samples-epoch-{e}.png"))
    r = png_header(os.path.join(run, f"reconstruction-epoch-{e}.png"))
    check(s == grid(64, 8) + (8, 0), f"samples-epoch-{e}.png: {s}, expected 233x233 gray")
    check(r == grid(16, 8) + (8, 0), f"reconstruction-epoch-{e}.png: {r}, expected 233x59 gray")
# Release-only (vaetest.SANITIZED), as are the np 1 eval without --iw-samples and the --seed 4 eval below:
# every other script test trains with --no-images under the sanitizers; eval at np 1 runs there with
# --iw-samples, and another seed is the same C path with other numbers.
if not SANITIZED:
    noimg = os.path.join(tmp, "noimg")
    p = mpirun(2, ["train", "--data", data, "--out", noimg, "--epochs", "1", "--batch-size", "32", "--no-images"],
               quiet=True)
    check(p.returncode == 0, f"train --no-images: {p.stderr[-1000:]}")
    check(not [f for f in os.listdir(noimg) if f.endswith(".png")], f"--no-images wrote {os.listdir(noimg)}")
ck = os.path.join(run, "checkpoint.h5")
last = epochs(run)[-1]


# ---- eval at np 1 and np 2 on 203 images ----
def evaluate(np_, *extra):
    p = mpirun(np_, ["eval", "--checkpoint", ck, "--data", data, "--json", *extra], quiet=True)
    check(p.returncode == 0, f"eval np{np_} {extra}: {p.stderr[-1500:]}")
    lines = p.stdout.splitlines()
    check(len(lines) == 1, f"eval np{np_} --json printed {len(lines)} lines: {p.stdout[:500]}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        check(False, f"eval np{np_}: not one JSON object: {p.stdout[:500]}")
        return {}


e2 = evaluate(2)
e1 = None if SANITIZED else evaluate(1)
for name, e in (("np1", e1), ("np2", e2))[1 if SANITIZED else 0:]:
    check(e.get("images") == 203, f"{name}: images {e.get('images')}")
    check(abs(e["elbo"] + e["recon"] + e["kl"]) < 1e-9 * abs(e["elbo"]), f"{name}: elbo != -(recon + kl): {e}")
    check(abs(e["bits_per_dim"] - (-e["elbo"] / (784 * math.log(2)))) < 1e-12, f"{name}: bits_per_dim {e}")
    check("iw_log_likelihood" not in e and "iw_samples" not in e, f"{name}: IW keys without --iw-samples")
    check(e["seed"] == 3, f"{name}: seed {e.get('seed')} is not the checkpoint's 3")
if e1 is not None:
    check(abs(e1["elbo"] - e2["elbo"]) <= 1e-9 * abs(e1["elbo"]), f"ELBO np1 {e1['elbo']!r} != np2 {e2['elbo']!r}")
# train printed test_elbo with 10 significant digits.
check(abs(e2["elbo"] - last["test_elbo"]) <= 2e-9 * abs(last["test_elbo"]),
      f"eval ELBO {e2['elbo']!r} != train's last test_elbo {last['test_elbo']!r}")
# Another seed is other noise: the ELBO moves.
if not SANITIZED:
    e3 = evaluate(2, "--seed", "4")
    check(e3["elbo"] != e2["elbo"] and abs(e3["elbo"] - e2["elbo"]) < 0.05 * abs(e2["elbo"]),
          f"--seed 4 ELBO {e3['elbo']} vs {e2['elbo']}")

i2, i1 = evaluate(2, "--iw-samples", "50"), evaluate(1, "--iw-samples", "50", "--batch-size", "37")
for name, e in (("np2", i2), ("np1", i1)):
    check(e.get("iw_samples") == 50 and e.get("images") == 203, f"IW {name}: {e}")
    check(e["iw_log_likelihood"] >= e["elbo"], f"IW {name}: {e['iw_log_likelihood']} < ELBO {e['elbo']}")
    check(abs(e["bits_per_dim"] - (-e["iw_log_likelihood"] / (784 * math.log(2)))) < 1e-12, f"IW {name} bpd: {e}")
    check(abs(e["elbo"] - e2["elbo"]) <= 1e-9 * abs(e2["elbo"]), f"IW {name}: ELBO changed with --iw-samples")
check(abs(i1["iw_log_likelihood"] - i2["iw_log_likelihood"]) <= 1e-9 * abs(i2["iw_log_likelihood"]),
      f"IW np1/batch 37 {i1['iw_log_likelihood']!r} != np2 {i2['iw_log_likelihood']!r}")
print(f"eval: ELBO {e2['elbo']:.4f} (train's test_elbo {last['test_elbo']}), IW(50) {i2['iw_log_likelihood']:.4f}")

p = mpirun(2, ["eval", "--checkpoint", ck, "--data", data, "--iw-samples", "3"], quiet=True)
check(p.returncode == 0 and "ELBO" in p.stdout and "IW bound K=3" in p.stdout and "bits/dim" in p.stdout,
      f"human output: {p.stdout} {p.stderr[-500:]}")

# ---- sample and reconstruct ----
s10 = os.path.join(tmp, "s10.png")
p = run1(["sample", "--checkpoint", ck, "--count", "10", "--out", s10])
check(p.returncode == 0 and p.stderr == "", f"sample: {p.stderr}")
check(png_header(s10) == grid(10, 4) + (8, 0), f"sample 10: {png_header(s10)}")
s64 = os.path.join(tmp, "s64.png")
p = run1(["sample", "--checkpoint", ck, "--out", s64])
with open(s64, "rb") as a, open(os.path.join(run, "samples-epoch-2.png"), "rb") as b:
    check(a.read() == b.read(), "sample with the checkpoint's seed differs from train's samples-epoch-2.png")
r13 = os.path.join(tmp, "r13.png")
p = run1(["reconstruct", "--checkpoint", ck, "--data", data, "--count", "13", "--out", r13])
check(p.returncode == 0, f"reconstruct: {p.stderr}")
check(png_header(r13) == grid(32, 8) + (8, 0), f"reconstruct 13: {png_header(r13)} (2 blocks of 2 rows x 8)")
r8 = os.path.join(tmp, "r8.png")
p = run1(["reconstruct", "--checkpoint", ck, "--data", data, "--out", r8])
with open(r8, "rb") as a, open(os.path.join(run, "reconstruction-epoch-2.png"), "rb") as b:
    check(p.returncode == 0 and a.read() == b.read(), "reconstruct (8 test images) differs from train's reconstruction-epoch-2.png")
# Only the first --count images are read and checked: rows after them may hold anything (here NaN).
poison = os.path.join(tmp, "poison.h5")
with h5py.File(poison, "w") as f:
    x = np.full((5000, 28, 28, 1), np.nan, dtype=np.float32)
    x[:13] = np.random.default_rng(3).random((13, 28, 28, 1), dtype=np.float32)
    f.create_dataset("test/images", data=x, chunks=(100, 28, 28, 1), compression="gzip")
rp = os.path.join(tmp, "rp.png")
p = run1(["reconstruct", "--checkpoint", ck, "--data", poison, "--count", "13", "--out", rp])
check(p.returncode == 0 and png_header(rp) == grid(32, 8) + (8, 0), f"reconstruct of 13 clean rows before NaN rows: {p.stderr}")
expect_error(run1(["reconstruct", "--checkpoint", ck, "--data", poison, "--count", "14", "--out", rp]), ["row 13"],
             "reconstruct: the 14th image is NaN")
# The top-left tile is the first test image, exactly (uint8 / 255 -> PNG bytes round-trip).
import matplotlib.image as mpimg  # noqa: E402
img = mpimg.imread(r13)
with h5py.File(data, "r") as f:
    first = f["test/images"][0]
check(np.array_equal(np.round(img[1:29, 1:29] * 255).astype(np.uint8), first), "reconstruct: tile 0 is not test image 0")

# ---- plot-metrics ----
p = subprocess.run([PY, os.path.join(SRC, "scripts", "plot-metrics.py"), run], capture_output=True, text=True)
check(p.returncode == 0 and png_header(os.path.join(run, "curves.png")) is not None, f"plot-metrics: {p.stderr}")
empty = os.path.join(tmp, "empty")
os.makedirs(empty)
p = subprocess.run([PY, os.path.join(SRC, "scripts", "plot-metrics.py"), empty], capture_output=True, text=True)
check(p.returncode == 1 and p.stderr.startswith("plot-metrics: error:") and "metrics.jsonl" in p.stderr,
      f"plot-metrics on an empty folder: {p.returncode} {p.stderr}")
open(os.path.join(empty, "metrics.jsonl"), "w").close()
p = subprocess.run([PY, os.path.join(SRC, "scripts", "plot-metrics.py"), empty], capture_output=True, text=True)
check(p.returncode == 1 and "no epoch records" in p.stderr, f"plot-metrics on an empty file: {p.stderr}")

# ---- user errors: one line each ----
small = os.path.join(tmp, "small.h5")
write_images(small, {"test/images": 20}, shape=(10, 10), seed=2)
missing = os.path.join(tmp, "nope.h5")
expect_error(mpirun(2, ["eval", "--checkpoint", missing, "--data", data], quiet=True), ["nope.h5"], "eval: missing checkpoint")
expect_error(mpirun(2, ["eval", "--checkpoint", ck, "--data", small], quiet=True), ["28x28x1", "10x10x1"],
             "eval: shape mismatch")
expect_error(mpirun(2, ["eval", "--checkpoint", ck, "--data", data, "--iw-samples", "0"], quiet=True), ["--iw-samples"],
             "eval: --iw-samples 0")
expect_error(mpirun(2, ["eval", "--checkpoint", ck], quiet=True), ["--data"], "eval: no --data")
expect_error(run1(["sample", "--checkpoint", missing, "--out", s10]), ["nope.h5"], "sample: missing checkpoint")
expect_error(run1(["sample", "--checkpoint", ck, "--out", os.path.join(tmp, "no/dir/s.png")]), ["no/dir/s.png"],
             "sample: unwritable --out")
expect_error(run1(["reconstruct", "--checkpoint", ck, "--data", data, "--count", "500", "--out", r13]), ["--count 500", "203"],
             "reconstruct: --count beyond the data")
expect_error(run1(["reconstruct", "--checkpoint", ck, "--data", small, "--out", r13]), ["10x10x1"],
             "reconstruct: shape mismatch")
shutil.rmtree(tmp)
done("test_eval")
