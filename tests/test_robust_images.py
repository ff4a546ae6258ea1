"""Bad image folders end to end: every case of tests/robust/make_image_corpus.py run through
`vae_mpi import-images`, once into a new --out and once into an existing HDF5 file. Each must end
within the timeout with exactly one `vae_mpi: error:` line holding the case's words (the file's
name above all), exit status 1 (never a signal, a sanitizer report or an HDF5 error stack), no new
file and no temporary left, and the existing file byte-identical. A file only root can read: as
root, chmod 000 does not stop reads, so that case runs the binary as the unprivileged user nobody
(setpriv), and is skipped with a message where that is impossible. Then --skip-bad over every kind
of bad file at once: exit 0, one warning line with the count and the first five names in order,
and exactly the good images written. Last, a SIGKILL while a copy of an existing file is being
written leaves that file byte-identical. Env: VAE_MPI."""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "robust"))
import make_image_corpus as corpus  # noqa: E402
from vaetest import VAE_MPI, check, done  # noqa: E402

CRASH = ["AddressSanitizer", "runtime error:", "LeakSanitizer", "Segmentation fault", "HDF5-DIAG", "#000"]
tmp = tempfile.mkdtemp(prefix="vae_robust_images_")
atexit.register(shutil.rmtree, tmp, True)  # also when a check raises
os.chmod(tmp, 0o755)  # the unprivileged case below must reach its folder
cases = corpus.make(os.path.join(tmp, "corpus"))
existing = os.path.join(tmp, "existing.h5")
with h5py.File(existing, "w") as f:
    f["train/images"] = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
before = open(existing, "rb").read()


def run(args, prefix=(), timeout=60):
    try:
        return subprocess.run(list(prefix) + [VAE_MPI, "import-images"] + args, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def refused(name, folder, extra, words, prefix=(), out_dir=tmp):
    for target in ("new", "existing"):
        out = os.path.join(out_dir, "new.h5") if target == "new" else existing
        add = target == "existing" and "--group" not in extra and "--test-fraction" not in extra
        p = run(["--dir", folder, "--out", out] + (["--group", "added"] if add else []) + extra, prefix)
        if p is None:
            check(False, f"{name} ({target}): no answer within 60 s")
            continue
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 1, f"{name} ({target}): exit {p.returncode}, want 1: {p.stderr[-500:]}")
        check(len(lines) == 1 and lines[0].startswith("vae_mpi: error: "), f"{name} ({target}): stderr {lines}")
        for w in words:
            check(w in p.stderr, f"{name} ({target}): '{w}' not in: {p.stderr.strip()}")
        check(not any(c in p.stderr for c in CRASH), f"{name} ({target}): crash words in {p.stderr[-300:]}")
        check(not os.path.exists(os.path.join(out_dir, "new.h5")), f"{name}: a new file was written")
        check(open(existing, "rb").read() == before, f"{name} ({target}): the existing file changed")
        left = [q for q in os.listdir(out_dir) if ".tmp-" in q]
        check(not left, f"{name} ({target}): temporary files left: {left}")


for name, (folder, extra, words) in cases.items():
    refused(name, folder, extra, words)

# ---- a file the user cannot read: as nobody, since root reads through chmod 000 ----
setpriv = shutil.which("setpriv")
if os.geteuid() == 0 and setpriv:
    d = corpus.folder(os.path.join(tmp, "corpus"), "unreadable", {"a/secret.png": corpus.good_png()})
    os.chmod(os.path.join(d, "a", "secret.png"), 0o000)
    outd = os.path.join(tmp, "nobody_out")
    os.makedirs(outd)
    os.chmod(outd, 0o777)
    shutil.copy(existing, os.path.join(outd, "existing.h5"))
    for q in (existing, os.path.join(outd, "existing.h5")):
        os.chmod(q, 0o666)
    saved, existing = existing, os.path.join(outd, "existing.h5")
    probe = run(["--help"], [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
    if probe is not None and probe.returncode == 0:
        refused("unreadable file (as nobody)", d, [], ["a/secret.png", "Permission denied"],
                [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], outd)
        print("test_robust_images: unreadable file checked as the user nobody (setpriv)")
    else:
        print("test_robust_images: the user nobody cannot run the binary here; unreadable-file case skipped")
    existing = saved
else:
    print("test_robust_images: not root or no setpriv: the unreadable-file case runs as is")
    d = corpus.folder(os.path.join(tmp, "corpus"), "unreadable", {"a/secret.png": corpus.good_png()})
    os.chmod(os.path.join(d, "a", "secret.png"), 0o000)
    refused("unreadable file", d, [], ["a/secret.png", "Permission denied"])

# ---- --skip-bad: every bad kind at once ----
d, bad = corpus.skip_bad_folder(os.path.join(tmp, "corpus"))
out = os.path.join(tmp, "skip.h5")
p = run(["--dir", d, "--out", out, "--skip-bad"])
check(p is not None and p.returncode == 0, f"--skip-bad: exit {p and p.returncode}: {p and p.stderr}")
warn = p.stderr.strip().splitlines() if p else []
check(len(warn) == 1 and warn[0].startswith(f"vae_mpi: warning: --skip-bad left out {len(bad)} file(s): "),
      f"--skip-bad warning: {warn}")
if warn:
    named = [q for q in bad if q in warn[0]]
    check(named == bad[:5], f"--skip-bad names the first five in order: {named} want {bad[:5]}")
    check(warn[0].endswith(f"; and {len(bad) - 5} more"), f"--skip-bad says how many more: {warn[0][-40:]}")
with h5py.File(out, "r") as f:
    x, y = f["train/images"][...], f["train/labels"][...]
    check(list(f["train/labels"].attrs["class_counts"]) == [2, 2], "class_counts count only the good files")
good_only = os.path.join(tmp, "goodonly")
for c in ("a", "b"):
    os.makedirs(os.path.join(good_only, c))
    for i in range(2):
        shutil.copy(os.path.join(d, c, f"good{i}.png"), os.path.join(good_only, c))
p = run(["--dir", good_only, "--out", os.path.join(tmp, "goodonly.h5")])
with h5py.File(os.path.join(tmp, "goodonly.h5"), "r") as f:
    check(np.array_equal(f["train/images"][...], x) and np.array_equal(f["train/labels"][...], y),
          "--skip-bad wrote exactly the good images, in order")

# ---- SIGKILL while the images are decoded and written into a copy of an existing file ----
big = os.path.join(tmp, "big", "k")
os.makedirs(big)
y, x = np.mgrid[0:1500, 0:1500]
Image.fromarray(((x * 7 + y * 3) % 256).astype(np.uint8), "L").save(os.path.join(big, "000.png"))
for i in range(1, 120):
    shutil.copy(os.path.join(big, "000.png"), os.path.join(big, f"{i:03d}.png"))
proc = subprocess.Popen([VAE_MPI, "import-images", "--dir", os.path.dirname(big), "--out", existing, "--group", "big",
                         "--size", "32x32", "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline, seen = time.time() + 30, None
while time.time() < deadline and proc.poll() is None and not seen:
    seen = [q for q in os.listdir(tmp) if q.startswith(".existing.h5.tmp-")]
    time.sleep(0.005)
proc.send_signal(signal.SIGKILL)
proc.wait()
check(bool(seen) and proc.returncode == -signal.SIGKILL, f"killed while writing its temporary ({seen}, {proc.returncode})")
check(open(existing, "rb").read() == before, "SIGKILL during the write: the existing file is byte-identical")
with h5py.File(existing, "r") as f:
    check("big" not in f and f["train/images"].shape == (2, 8, 8, 3), "SIGKILL: the existing file reads as before")

done("test_robust_images")
