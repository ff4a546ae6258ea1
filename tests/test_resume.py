"""Checkpoint and resume of `vae_mpi train`: stopping after N steps (mid-epoch and at an epoch
boundary) and resuming gives bitwise the same weights, Adam state and metrics as the uninterrupted run,
at np 1 and np 2; resuming at another np continues and keeps learning; SIGUSR1 through mpirun and SIGTERM
to the ranks checkpoint and exit 75; a kill during a checkpoint write leaves a loadable checkpoint."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import h5py
import numpy as np

from vaetest import SANITIZED, VAE_MPI, check, done, epochs, mpirun, training_fields, write_images

tmp = tempfile.mkdtemp(prefix="vae_resume_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 500, "test/images": 90}, seed=4)
BASE = ["train", "--data", data, "--batch-size", "32", "--seed", "11", "--no-images", "--log-every", "3"]


def train(np_, out, *extra, **kw):
    return mpirun(np_, BASE + ["--out", out, *extra], **kw)


def state(out):
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[...].tobytes())
                     if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: f.attrs[k] for k in ("step", "epoch", "epoch_step")}
    return arrays, attrs


def records(out):
    keep = []
    for line in open(os.path.join(out, "metrics.jsonl")):
        keep.append(training_fields(json.loads(line)))
    return keep


for np_ in (1, 2):
    steps_per_epoch = -(-(-(-500 // np_)) // 32)
    ref = os.path.join(tmp, f"ref{np_}")
    p = train(np_, ref, "--epochs", "3")
    check(p.returncode == 0, f"np{np_} reference run: {p.stderr[-800:]}")
    ref_state, ref_attrs = state(ref)
    check(int(ref_attrs["step"]) == 3 * steps_per_epoch, f"np{np_}: reference step {ref_attrs['step']}")
    stops = [("mid-epoch", steps_per_epoch + steps_per_epoch // 2), ("epoch boundary", steps_per_epoch)]
    if SANITIZED and np_ == 1:  # the resume at an epoch boundary runs at np 2 below; mid-epoch at both
        stops = stops[:1]
    for where, stop in stops:
        out = os.path.join(tmp, f"np{np_}-{where.replace(' ', '-')}")
        p = train(np_, out, "--epochs", "3", "--max-steps", str(stop))
        check(p.returncode == 0 and "--max-steps" in p.stdout, f"np{np_} {where}: stop run: {p.returncode} {p.stderr[-500:]}")
        _, attrs = state(out)
        check(int(attrs["step"]) == stop, f"np{np_} {where}: stopped checkpoint at step {attrs['step']}, expected {stop}")
        check(int(attrs["epoch_step"]) == stop % steps_per_epoch, f"np{np_} {where}: epoch_step {attrs['epoch_step']}")
        p = train(np_, out, "--epochs", "3", "--resume", "auto")
        check(p.returncode == 0 and f"step {stop}" in p.stdout, f"np{np_} {where}: resume: {p.stdout[:400]} {p.stderr[-500:]}")
        st, attrs = state(out)
        check(attrs == ref_attrs, f"np{np_} {where}: final position {attrs} != {ref_attrs}")
        diff = [k for k in ref_state if st.get(k) != ref_state[k]]
        check(not diff and set(st) == set(ref_state), f"np{np_} {where}: tensors differ from the uninterrupted run: {diff[:5]}")
        check(records(out) == records(ref), f"np{np_} {where}: metrics.jsonl differs from the uninterrupted run")

# Resume at another number of ranks: continues from the same step and keeps learning.
out = os.path.join(tmp, "np2-to-np1")
p = train(2, out, "--epochs", "4", "--max-steps", "12")
check(p.returncode == 0, f"np2 stop: {p.stderr[-500:]}")
p = train(1, out, "--epochs", "4", "--resume", "auto")
check(p.returncode == 0 and "another number of ranks" in p.stdout, f"np1 resume: {p.stdout[:500]} {p.stderr[-500:]}")
recs = epochs(out)
check(len(recs) == 4 and recs[-1]["test_elbo"] > recs[0]["test_elbo"], f"np2->np1: {[r['test_elbo'] for r in recs]}")

# --resume PATH: exactly that file; a missing one is an error.
p = train(1, os.path.join(tmp, "frompath"), "--epochs", "4", "--resume", os.path.join(ref, "checkpoint.h5"))
check(p.returncode == 0 and "resume:" in p.stdout, f"--resume PATH: {p.stderr[-500:]}")
check(epochs(os.path.join(tmp, "frompath"))[-1]["epoch"] == 4, "--resume PATH did not run epoch 4")
p = train(1, os.path.join(tmp, "frompath2"), "--resume", os.path.join(tmp, "nope.h5"), quiet=True)
check(p.returncode != 0 and "nope.h5" in p.stderr, f"--resume missing file: {p.returncode} {p.stderr}")
# --resume auto with nothing to resume: a fresh start, said plainly.
p = train(1, os.path.join(tmp, "auto-fresh"), "--epochs", "1", "--resume", "auto")
check(p.returncode == 0 and "starting fresh" in p.stdout, f"auto fresh: {p.stdout[:300]}")


def start_long(out, np_=2, extra=()):
    cmd = ["mpirun", "--allow-run-as-root", "-np", str(np_), VAE_MPI] + BASE + ["--out", out, "--epochs", "400", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(os.path.join(out, "metrics.jsonl")) and
                                          os.path.getsize(os.path.join(out, "metrics.jsonl")) > 0):
        time.sleep(0.1)
    return proc


def rank_pids(out):
    # The ranks' command lines start with the binary; mpirun's starts with mpirun.
    p = subprocess.run(["pgrep", "-f", f"^{VAE_MPI} train .*--out {out}"], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


# SIGUSR1 to mpirun (forwarded to every rank), and SIGTERM to the ranks themselves; the third while a
# checkpoint of every step is being published in the background (--checkpoint-every 1): the stop's
# checkpoint settles it first, and nothing half-done is left.
for how, extra in (("SIGUSR1 to mpirun", ()), ("SIGTERM to the ranks", ()),
                   ("SIGUSR1 to mpirun, --checkpoint-every 1", ("--checkpoint-every", "1", "--keep", "3"))):
    out = os.path.join(tmp, "sig-" + how.split()[0] + ("-every" if extra else ""))
    proc = start_long(out, extra=extra)
    t0 = time.time()
    if how.startswith("SIGUSR1"):
        proc.send_signal(signal.SIGUSR1)
    else:
        for pid in rank_pids(out):
            os.kill(pid, signal.SIGTERM)
    try:
        so, se = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        so, se = proc.communicate()
        check(False, f"{how}: no exit within 30 s")
    check(proc.returncode == 75, f"{how}: exit {proc.returncode}, expected 75: {se[-500:]}")
    check("stopped by a signal" in so, f"{how}: no stop line in {so[-300:]}")
    check(time.time() - t0 < 10, f"{how}: took {time.time() - t0:.1f} s")
    _, attrs = state(out)
    check(int(attrs["step"]) > 0, f"{how}: checkpoint step {attrs['step']}")
    check(not [f for f in os.listdir(out) if ".tmp" in f], f"{how}: temporary files left: {os.listdir(out)}")
    if extra:
        kept = sorted(f for f in os.listdir(out) if f.startswith("checkpoint-"))
        check(len(kept) == 3 and f"checkpoint-{int(attrs['step'])}.h5" in kept, f"{how}: kept {kept}")
    p = train(2, out, "--epochs", str(int(attrs["epoch"]) + 1), "--resume", "auto")
    check(p.returncode == 0 and f"step {int(attrs['step'])}" in p.stdout, f"{how}: resume: {p.stdout[:300]} {p.stderr[-300:]}")

# A kill in the middle of a checkpoint write (fault injection) never leaves an unloadable checkpoint.
# Every point starts from its own copy of one 1-epoch run (the lock is fcntl's: nothing in the copy).
first = os.path.join(tmp, "fault-first")
p = train(2, first, "--epochs", "1")
check(p.returncode == 0, f"fault points: first run: {p.stderr[-300:]}")
for point in ("after-create", "mid-tensors", "before-fsync", "before-rename", "after-rename"):
    out = os.path.join(tmp, "fault-" + point)
    shutil.copytree(first, out)
    p = train(2, out, "--epochs", "2", "--resume", "auto", env={"VAE_FAULT_CHECKPOINT": point}, quiet=True)
    check(p.returncode != 0, f"{point}: the faulted run exited 0")
    _, attrs = state(out)  # raises if unloadable
    expect = 2 if point == "after-rename" else 1
    check(int(attrs["epoch"]) == expect, f"{point}: checkpoint.h5 at epoch {attrs['epoch']}, expected {expect}")
    p = train(2, out, "--epochs", "3", "--resume", "auto")
    check(p.returncode == 0, f"{point}: resume after the kill: {p.stderr[-500:]}")
    check(epochs(out)[-1]["epoch"] == 3, f"{point}: did not complete")

shutil.rmtree(tmp)
done("test_resume")
