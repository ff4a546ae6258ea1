"""The non-finite step policy end to end, through VAE_FAULT_NONFINITE=RANK:STEP[:COUNT] (src/train/step.c):
one poisoned step on one rank is skipped by every rank alike (one warning naming the rank and step),
training completes with finite parameters and skipped == 1 in the metrics; COUNT >= --max-skips
stops the run with one error line and exit status 1, leaving the last checkpoint intact and
loadable; no checkpoint with a non-finite value is ever written."""
import glob
import os
import shutil
import tempfile

import h5py
import numpy as np

from vaetest import check, done, epochs, mpirun, write_images

tmp = tempfile.mkdtemp(prefix="vae_nonfinite_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 64, "test/images": 16}, shape=(8, 8))
# np 2, batch 4: 8 steps per epoch; 3 epochs = steps 0..23.
base = ["train", "--data", data, "--hidden", "16", "--latent", "2", "--batch-size", "4", "--epochs", "3",
        "--no-images", "--max-skips", "3", "--keep", "100", "--checkpoint-every", "2"]


def all_finite(path):
    with h5py.File(path, "r") as f:
        bad = []
        f.visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and not np.all(np.isfinite(o[...])) else None)
    return not bad


def warnings(p):
    return [l for l in p.stderr.splitlines() if l.startswith("vae_mpi: warning:")]


def checkpoints(d):
    return sorted(glob.glob(os.path.join(d, "*.h5")))


# 1. One poisoned step (rank 1 at np 2, rank 2 at np 3): skipped, the run completes.
for np_, rank, step in [(2, 1, 5), (3, 2, 9)]:
    out = os.path.join(tmp, f"one_np{np_}")
    p = mpirun(np_, base + ["--out", out], quiet=True, env={"VAE_FAULT_NONFINITE": f"{rank}:{step}"})
    name = f"one skip np {np_}"
    check(p.returncode == 0, f"{name}: exit {p.returncode}: {p.stderr[-800:]}")
    w = warnings(p)
    check(w == [f"vae_mpi: warning: step {step} skipped: non-finite loss on rank {rank}"], f"{name}: warnings {w}")
    check("error" not in p.stderr, f"{name}: an error on stderr: {p.stderr[-500:]}")
    recs = epochs(out)
    check(len(recs) == 3, f"{name}: {len(recs)} epoch records")
    skipped = [r.get("skipped_steps") for r in recs]
    spe = 64 // (4 * np_) + (64 % (4 * np_) > 0)
    check(skipped == [1 if e == step // spe else 0 for e in range(3)], f"{name}: skipped per epoch {skipped}")
    check(all(np.isfinite(r["train_recon"]) and np.isfinite(r["test_recon"]) for r in recs), f"{name}: {recs}")
    cks = checkpoints(out)
    check(len(cks) >= 3 and all(all_finite(c) for c in cks), f"{name}: checkpoints {cks} not all finite")
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        check(int(f.attrs["step"]) == 3 * spe and int(f.attrs["epoch"]) == 3, f"{name}: step {f.attrs['step']}")
        check(int(f.attrs["adam_step"]) == 3 * spe - 1, f"{name}: adam_step {f.attrs['adam_step']}, one step skipped")
        w0 = f["model/encoder/hidden0/weight"][...]
        check(w0.shape == (16, 64) and np.all(np.isfinite(w0)) and np.abs(w0).max() > 0, f"{name}: weights")

# 1b. A skipped step leaves Adam as it was, its step count t included (as PyTorch's GradScaler skips
# optimizer.step()): np 1, a checkpoint after every step, step 5 poisoned. Checkpoint 6 equals
# checkpoint 5 with adam_step 5 in both; the update from 6 to 7 is Adam's with t = 6, recomputed here
# from the stored p, m, v in float32 as adam.c does it (t = 7 gives a step 3% smaller).
out = os.path.join(tmp, "adam_t")
args = ["train", "--data", data, "--hidden", "16", "--latent", "2", "--batch-size", "4", "--epochs", "1",
        "--no-images", "--keep", "100", "--checkpoint-every", "1", "--out", out]
p = mpirun(1, args, quiet=True, env={"VAE_FAULT_NONFINITE": "0:5"})
check(p.returncode == 0 and len(warnings(p)) == 1, f"adam t: exit {p.returncode}: {p.stderr[-500:]}")


def state(step):
    with h5py.File(os.path.join(out, f"checkpoint-{step}.h5"), "r") as f:
        t = {g: {} for g in ("model", "optimizer/m", "optimizer/v")}
        for g in t:
            f[g].visititems(lambda n, o: t[g].__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        return int(f.attrs["adam_step"]), t


a5, s5 = state(5)
a6, s6 = state(6)
a7, s7 = state(7)
check((a5, a6, a7) == (5, 5, 6), f"adam t: adam_step after steps 5, 6, 7: {(a5, a6, a7)}")
same = all(np.array_equal(s5[g][n], s6[g][n]) for g in s5 for n in s5[g])
check(same, "adam t: the skipped step changed a parameter or a moment")


def predicted(t, name):
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    step_size = np.float32(lr / (1 - b1 ** t))
    inv_sqrt_bc2 = np.float32(1 / np.sqrt(1 - b2 ** t))
    m, v = s7["optimizer/m"][name], s7["optimizer/v"][name]
    return s6["model"][name] - step_size * m / (np.sqrt(v) * inv_sqrt_bc2 + np.float32(eps))


name = "encoder/hidden0/weight"
delta = s7["model"][name] - s6["model"][name]
err = {t: np.abs(predicted(t, name) - s7["model"][name]).max() / np.abs(delta).max() for t in (6, 7)}
check(err[6] < 1e-3 and err[7] > 0.01, f"adam t: update 6 -> 7 against Adam at t = 6 and 7: relative errors {err}")

# 2. COUNT below --max-skips: two consecutive skips, the run goes on.
out = os.path.join(tmp, "two")
p = mpirun(2, base + ["--out", out], quiet=True, env={"VAE_FAULT_NONFINITE": "0:10:2"})
check(p.returncode == 0, f"two skips: exit {p.returncode}: {p.stderr[-800:]}")
check(len(warnings(p)) == 2 and sum(r["skipped_steps"] for r in epochs(out)) == 2, f"two skips: {warnings(p)}")

# 3. COUNT >= --max-skips: stops in epoch 2 (steps 9, 10, 11) with one error line and exit 1, before
# the checkpoint of step 12 (--checkpoint-every 4); the epoch-1 checkpoint (step 8) stays whole.
out = os.path.join(tmp, "stop")
p = mpirun(2, base + ["--out", out, "--checkpoint-every", "4"], quiet=True, env={"VAE_FAULT_NONFINITE": "1:9:3"})
check(p.returncode == 1, f"stop: exit status {p.returncode}, expected 1")
w = warnings(p)
check(w == [f"vae_mpi: warning: step {s} skipped: non-finite loss on rank 1" for s in (9, 10, 11)], f"stop: {w}")
errs = [l for l in p.stderr.splitlines() if l.startswith("vae_mpi: error:")]
check(len(errs) == 1 and "3 consecutive steps" in errs[0] and "step 11" in errs[0] and "--lr" in errs[0],
      f"stop: error lines {errs}")
check(len(p.stderr.splitlines()) == 4, f"stop: other stderr lines: {p.stderr[-600:]}")
with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
    check(int(f.attrs["step"]) == 8 and int(f.attrs["epoch"]) == 1, f"stop: checkpoint at step {f.attrs['step']}")
cks = checkpoints(out)
check([os.path.basename(c) for c in cks] == ["checkpoint-4.h5", "checkpoint-8.h5", "checkpoint.h5"],
      f"stop: checkpoints {cks}")
check(all(all_finite(c) for c in cks), "stop: a checkpoint holds a non-finite value")
check(not glob.glob(os.path.join(out, ".*tmp*")), f"stop: temporary files left: {os.listdir(out)}")
check(len(epochs(out)) == 1, f"stop: {len(epochs(out))} epoch records, expected 1")
# ... and it loads: resuming without the fault completes the run.
p = mpirun(2, base + ["--out", out, "--resume", "auto"], quiet=True)
check(p.returncode == 0 and "resume: " in p.stdout and "step 8" in p.stdout, f"resume after stop: {p.returncode} {p.stdout[-300:]} {p.stderr[-500:]}")
check(len(epochs(out)) == 3 and epochs(out)[-1]["step"] == 24, f"resume after stop: {epochs(out)}")
shutil.rmtree(tmp)
done("test_nonfinite")
