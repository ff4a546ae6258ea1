"""The --out lock (issue 8): while job A trains in a folder, job B on the same --out (fresh, or with
--resume auto) is refused at once with one error line naming A's pid, and A is not disturbed: stopped
afterwards by SIGUSR1 it checkpoints and exits 75, metrics.jsonl holds exactly epochs 1..n as whole
JSON lines, and its checkpoint is at epoch n. (A lock left by a killed job: tests/test_orphans.sh.)"""
import json
import signal
import os
import shutil
import subprocess
import tempfile
import time

import h5py

from vaetest import VAE_MPI, check, done, mpirun, write_images

tmp = tempfile.mkdtemp(prefix="vae_lock_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 1024})
out = os.path.join(tmp, "out")
E = 100000  # far more than A will run: it is stopped by SIGUSR1 once B has been refused
args = ["train", "--data", data, "--out", out, "--hidden", "64", "--latent", "4", "--batch-size", "16",
        "--no-images", "--threads", "1"]
a = subprocess.Popen(["mpirun", "--allow-run-as-root", "-q", "-np", "2", VAE_MPI, *args, "--epochs", str(E)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
metrics = os.path.join(out, "metrics.jsonl")
t0 = time.time()
while time.time() - t0 < 60 and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
    time.sleep(0.1)
check(os.path.exists(metrics), "job A wrote no metrics within 60 s")
for name, extra in [("fresh", []), ("resume auto", ["--resume", "auto"])]:
    t1 = time.time()
    b = mpirun(2, args + ["--epochs", str(E)] + extra, timeout=60, quiet=True)
    secs = time.time() - t1
    errs = [l for l in b.stderr.splitlines() if l.strip()]
    check(b.returncode == 1, f"B ({name}): exit status {b.returncode}")
    check(len(errs) == 1 and errs[0].startswith("vae_mpi: error: another vae_mpi job (pid ")
          and out in errs[0], f"B ({name}): stderr {errs}")
    check(secs < 20, f"B ({name}) took {secs:.1f} s to be refused")
    check(a.poll() is None, f"A had already ended when B ({name}) was refused: the test proves nothing")
a.send_signal(signal.SIGUSR1)
a_out, a_err = a.communicate(timeout=120)
check(a.returncode == 75, f"A did not stop cleanly after B was refused: {a.returncode} {a_err[-800:]}")
check(a_err.strip() == "", f"A printed on stderr: {a_err[-500:]}")
lines = open(metrics).read().splitlines()
recs = []
for l in lines:
    try:
        recs.append(json.loads(l))
    except ValueError:
        check(False, f"a metrics line is not whole JSON: {l[:120]}")
n = len(recs)
check(n >= 1 and [r["epoch"] for r in recs if r.get("type") == "epoch"] == list(range(1, n + 1)),
      f"A's epochs: {[r.get('epoch') for r in recs]}")
with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
    check(int(f.attrs["epoch"]) == n, f"A's checkpoint is at epoch {f.attrs['epoch']}, metrics at {n}")
# With A gone, the folder is free again.
p = mpirun(2, args + ["--epochs", str(n + 1), "--resume", "auto"], quiet=True)
check(p.returncode == 0 and len([r for r in open(metrics)]) == n + 1, f"after A: {p.returncode} {p.stderr[-500:]}")
shutil.rmtree(tmp)
done("test_lock")
