"""Ranks x worker threads (`train --threads T`, src/train/step.c) end to end, against the same job run
as ranks of one thread each, which is the reference: R ranks x T threads must train what R*T ranks x 1
thread train (the same shards, shuffles, noise, learning rate, global batch, uneven last steps).
- Two workers in all (np 2 x 1 vs np 1 x 2), every decoder and the convolutional model: checkpoints (parameters, Adam's m and v,
  the position) and the epoch records' losses are bitwise the same: every float sum has two terms
  (a + b == b + a), the rest is elementwise, and each worker runs the same single-threaded BLAS.
- Three workers (np 3 x 1 vs np 1 x 3): the same within float tolerance (the on-node sum adds
  ((g0 + g1) + g2), MPI_Allreduce in its own order), the same steps and position.
- Resume at the same layout is bitwise the uninterrupted run; a checkpoint of np 2 x 1 resumed at
  np 1 x 2 too (same workers), and says so; a checkpoint without the threads_per_rank attribute
  (older vae_mpi, other tools) reads as 1 thread per rank.
- The non-finite fault on worker 1 at np 1 x 2 is skipped exactly like rank 1's at np 2 x 1, and the
  warning names the worker, its rank and thread.
- Two threads on a rank bound to one core: a warning with the launch fix.
- Bad --threads values and fewer images than workers: one error line, exit 1, before any collective
  (at np 2 too: no hang), nothing written."""
import os
import shutil
import tempfile

import h5py
import numpy as np

from vaetest import SANITIZED, check, dir_state, done, epochs, mpirun, write_images

tmp = tempfile.mkdtemp(prefix="vae_threads_")
data = os.path.join(tmp, "d.h5")
# 203 images: uneven shards at 2 and 3 workers, and a short last step (batch 16).
write_images(data, {"train/images": 203, "test/images": 40}, shape=(8, 8))
BASE = ["train", "--data", data, "--hidden", "16", "--latent", "3", "--batch-size", "16", "--epochs", "2",
        "--no-images", "--seed", "11", "--lr", "3e-3"]
UNBOUND = {"OMPI_MCA_hwloc_base_binding_policy": "none"}  # the threads of one rank on every core


def train(np_, threads, out, extra=(), env=None):
    e = dict(UNBOUND)
    e.update(env or {})
    return mpirun(np_, BASE + ["--out", out, "--threads", str(threads)] + list(extra), env=e, quiet=True)


def contents(path):
    """{name: array} of every dataset, and the root attributes, of a checkpoint."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        attrs = {k: f.attrs[k] for k in f.attrs}
    return out, attrs


def losses(out):
    keys = ("step", "train_recon", "train_kl", "test_recon", "test_kl", "lr", "skipped_steps")
    return [{k: r.get(k) for k in keys} for r in epochs(out)]


def same_bits(a_dir, b_dir, name, layouts=True):
    (a, aa), (b, ba) = contents(os.path.join(a_dir, "checkpoint.h5")), contents(os.path.join(b_dir, "checkpoint.h5"))
    check(sorted(a) == sorted(b) and len(a) > 5, f"{name}: datasets {sorted(a)} vs {sorted(b)}")
    diff = [k for k in a if k in b and a[k].tobytes() != b[k].tobytes()]
    check(not diff, f"{name}: datasets differ: {diff}")
    for k in ("step", "adam_step", "epoch", "epoch_step", "seed"):
        check(aa.get(k) == ba.get(k), f"{name}: attribute {k}: {aa.get(k)} vs {ba.get(k)}")
    check(losses(a_dir) == losses(b_dir), f"{name}: epoch records\n{losses(a_dir)}\n{losses(b_dir)}")
    return aa, ba


def ok(p, name):
    check(p.returncode == 0, f"{name}: exit {p.returncode}: {p.stderr[-800:]}")
    return p.returncode == 0


# Under the sanitizers (vaetest.SANITIZED) the threaded runs only: their np R x 1 references are plain
# ranks of one thread, the C path of every other MPI test, and the comparisons are the Release pass's.
# 1. Two workers, every decoder: bitwise.
for dec in ["bernoulli", "gaussian", "gaussian-learned", "conv"]:
    a, b = os.path.join(tmp, f"np2_{dec}"), os.path.join(tmp, f"t2_{dec}")
    extra = ["--clip-grad-norm", "5"] + (["--conv", "4,8"] if dec == "conv" else ["--decoder", dec])
    if SANITIZED:
        ok(train(1, 2, b, extra), f"np 1 x 2 {dec}")
    elif ok(train(2, 1, a, extra), f"np 2 x 1 {dec}") and ok(train(1, 2, b, extra), f"np 1 x 2 {dec}"):
        aa, ba = same_bits(a, b, f"np 2 x 1 vs np 1 x 2, {dec}")
        check((aa.get("world_size"), aa.get("threads_per_rank")) == (2, 1), f"{dec}: layout of np 2 {aa}")
        check((ba.get("world_size"), ba.get("threads_per_rank")) == (1, 2), f"{dec}: layout of np 1 x 2 {ba}")
        check(losses(b)[0]["step"] == 7, f"{dec}: steps per epoch {losses(b)}")  # 102 rows / 16

# 2. Three workers: float tolerance; and the same as np 3 x 1 in steps, position, learning rate.
a, b = os.path.join(tmp, "np3"), os.path.join(tmp, "t3")
if SANITIZED:
    ok(train(1, 3, b), "np 1 x 3")
elif ok(train(3, 1, a), "np 3 x 1") and ok(train(1, 3, b), "np 1 x 3"):
    (x, xa), (y, ya) = contents(os.path.join(a, "checkpoint.h5")), contents(os.path.join(b, "checkpoint.h5"))
    worst = max(float(np.max(np.abs(x[k] - y[k]) / (np.abs(x[k]) + 1e-3))) for k in x if x[k].dtype.kind == "f")
    check(worst < 1e-3, f"np 3 x 1 vs np 1 x 3: largest relative parameter difference {worst}")
    check(xa["step"] == ya["step"] == 2 * 5, f"np 3 vs 1 x 3: steps {xa['step']}, {ya['step']}")  # 68 rows / 16
    la, lb = losses(a), losses(b)
    check(all(abs(p["train_recon"] - q["train_recon"]) <= 1e-4 * abs(p["train_recon"]) for p, q in zip(la, lb))
          and [p["lr"] for p in la] == [q["lr"] for q in lb], f"np 3 vs 1 x 3: {la} vs {lb}")

# 3. Resume: at the same layout bitwise; np 2 x 1's checkpoint at np 1 x 2 bitwise too; and without
# the threads_per_rank attribute.
full = os.path.join(tmp, "t2_bernoulli")
for name, first, then in [("same layout", (1, 2), (1, 2)), ("np 2 x 1 -> np 1 x 2", (2, 1), (1, 2)),
                          ("no threads_per_rank", (2, 1), (2, 1))]:
    out = os.path.join(tmp, "resume_" + name.replace(" ", "_").replace(">", ""))
    extra = ["--decoder", "bernoulli", "--clip-grad-norm", "5"]
    if not ok(train(*first, out, extra + ["--max-steps", "10"]), f"resume {name}: first part"):
        continue
    if name == "no threads_per_rank":
        with h5py.File(os.path.join(out, "checkpoint.h5"), "r+") as f:
            del f.attrs["threads_per_rank"]
    p = train(*then, out, extra + ["--resume", "auto"])
    if ok(p, f"resume {name}"):
        note = [l for l in p.stdout.splitlines() if l.startswith("resume:")]
        want = "the same 2 workers" if first != then else ""
        check(len(note) == 1 and "step 10" in note[0] and (want in note[0]) and
              ("trained at" in note[0]) == (first != then), f"resume {name}: {note}")
        same_bits(full, out, f"resume {name} vs uninterrupted")

# 4. The non-finite fault: worker 1 = rank 1 at np 2 x 1, thread 1 of rank 0 at np 1 x 2.
pa = None if SANITIZED else train(2, 1, os.path.join(tmp, "f2"), env={"VAE_FAULT_NONFINITE": "1:4"})
pb = train(1, 2, os.path.join(tmp, "ft2"), env={"VAE_FAULT_NONFINITE": "1:4"})
if (SANITIZED or ok(pa, "fault np 2")) and ok(pb, "fault np 1 x 2"):
    wb = [l for l in pb.stderr.splitlines() if l.startswith("vae_mpi: warning:") and "skipped" in l]
    check(wb == ["vae_mpi: warning: step 4 skipped: non-finite loss on worker 1 (rank 0, thread 1)"], f"fault: {wb}")
    if not SANITIZED:
        same_bits(os.path.join(tmp, "f2"), os.path.join(tmp, "ft2"), "fault np 2 x 1 vs np 1 x 2")
    check(losses(os.path.join(tmp, "ft2"))[0]["skipped_steps"] == 1, "fault: skipped_steps")

# 5. A rank bound to one core (mpirun's default binding at np <= 2) with 2 threads: one warning naming
# the launch fix; the run still completes.
p = mpirun(1, BASE + ["--out", os.path.join(tmp, "bound"), "--threads", "2", "--epochs", "1"], quiet=True,
           mca={"hwloc_base_binding_policy": "core"})
w = [l for l in p.stderr.splitlines() if l.strip()]
check(p.returncode == 0 and len(w) == 1 and w[0].startswith("vae_mpi: warning: 2 worker threads per rank, but a rank may run on only 1 core")
      and "--bind-to none" in w[0], f"bound to one core: exit {p.returncode}, stderr {w}")

# 6. Errors before any collective, at np 1 and np 2: one line, exit 1, nothing written.
small = os.path.join(tmp, "small.h5")
write_images(small, {"train/images": 5}, shape=(8, 8))
# (np 1 --threads -1 is Release-only: the range check of np 2 --threads 2000)
for np_, args, want in [(1, ["--threads", "-1"], "--threads must be from 0")] * (not SANITIZED) + [
        (2, ["--threads", "2000"], "--threads must be from 0"),
        (2, ["--threads", "3", "--data", small, "--test-dataset", ""], "fewer than the 6 workers (2 ranks x 3 threads); use at most 5 workers")]:
    out = os.path.join(tmp, f"err_{np_}_{args[1]}")
    os.makedirs(out)
    before = dir_state(out)
    p = mpirun(np_, BASE + ["--out", out] + args, timeout=60, quiet=True)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    name = f"np {np_} {' '.join(args)}"
    check(p.returncode == 1, f"{name}: exit {p.returncode}")
    check(len(lines) == 1 and lines[0].startswith("vae_mpi: error:") and want in lines[0], f"{name}: stderr {lines}")
    check(dir_state(out) == before, f"{name}: the output folder changed")

shutil.rmtree(tmp)
done("test_threads")
