"""User errors of `vae_mpi train` under mpirun: one `vae_mpi: error:` line, a non-zero exit of every
rank within the timeout (no hang), no HDF5 error stack, and nothing already in --out changed."""
import os
import shutil
import tempfile

import h5py
import numpy as np

from vaetest import check, dir_state, done, expect_error, mpirun, sanitizer_subset, write_images

tmp = tempfile.mkdtemp(prefix="vae_err_")
good = os.path.join(tmp, "good.h5")
write_images(good, {"train/images": 100, "test/images": 20})
out = os.path.join(tmp, "out")
p = mpirun(2, ["train", "--data", good, "--out", out, "--epochs", "1", "--batch-size", "16", "--no-images"])
check(p.returncode == 0, f"setup run failed: {p.stderr[-1500:]}")
before = dir_state(out)

bad = {}
def make(name, fn):
    path = os.path.join(tmp, name + ".h5")
    fn(path)
    bad[name] = path
with open(os.path.join(tmp, "text.h5"), "w") as f:
    f.write("not hdf5\n")
bad["text"] = os.path.join(tmp, "text.h5")
make("strings", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.array([b"a", b"b"] * 10)))
make("int16", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.zeros((10, 4, 4), np.int16)))
make("rank1", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.zeros(10, np.uint8)))
make("nan", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.full((10, 4, 4), np.nan, np.float32)))
make("range", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.full((10, 4, 4), 2.0, np.float32)))
make("one_row", lambda p: h5py.File(p, "w").create_dataset("train/images", data=np.zeros((1, 4, 4), np.uint8)))

fresh = os.path.join(tmp, "fresh")
cases = [
    # (name, ranks, args, words in the message, run writes into `out`?)
    ("unknown flag", 2, ["--data", good, "--out", fresh, "--bogus"], ["--bogus"]),
    ("missing value", 2, ["--data", good, "--out", fresh, "--epochs"], ["--epochs"]),
    ("not a number", 2, ["--data", good, "--out", fresh, "--lr", "fast"], ["--lr", "fast"]),
    ("zero batch", 2, ["--data", good, "--out", fresh, "--batch-size", "0"], ["--batch-size"]),
    ("negative lr", 2, ["--data", good, "--out", fresh, "--lr", "-1"], ["--lr"]),
    ("negative comm timeout", 2, ["--data", good, "--out", fresh, "--comm-timeout", "-5"], ["--comm-timeout"]),
    ("bad decoder", 2, ["--data", good, "--out", fresh, "--decoder", "poisson"], ["--decoder", "poisson"]),
    ("bad hidden", 2, ["--data", good, "--out", fresh, "--hidden", "400,x"], ["--hidden"]),
    ("missing file", 2, ["--data", os.path.join(tmp, "nope.h5"), "--out", fresh], ["nope.h5"]),
    ("not hdf5", 2, ["--data", bad["text"], "--out", fresh], ["text.h5"]),
    ("missing dataset", 2, ["--data", good, "--out", fresh, "--dataset", "train/pixels"], ["train/pixels"]),
    ("missing test dataset", 2, ["--data", good, "--out", fresh, "--test-dataset", "test/pixels"],
     ["test/pixels", "--test-dataset"]),
    ("strings", 2, ["--data", bad["strings"], "--out", fresh], ["train/images"]),
    ("int16", 2, ["--data", bad["int16"], "--out", fresh], ["uint8"]),
    ("rank 1", 2, ["--data", bad["rank1"], "--out", fresh], ["train/images"]),
    ("nan", 2, ["--data", bad["nan"], "--out", fresh], ["train/images"]),
    ("outside [0,1] for bernoulli", 2, ["--data", bad["range"], "--out", fresh], ["[0, 1]"]),
    ("fewer rows than ranks", 2, ["--data", bad["one_row"], "--out", fresh], ["ranks"]),
    ("existing run without --resume", 2, ["--data", good, "--out", out], ["--resume"]),
    ("mismatched resume", 2, ["--data", good, "--out", out, "--resume", "auto", "--latent", "7"], ["latent"]),
    ("mismatched decoder", 2, ["--data", good, "--out", out, "--resume", "auto", "--decoder", "gaussian"], ["decoder"]),
]
# Release-only (vaetest.SANITIZED): each repeats a C path that a kept case here or a test_robust.py case
# runs under the sanitizers with other values.
RELEASE_ONLY = [
    "negative lr", "negative comm timeout",  # vae_train_opts_validate: "zero batch"
    "missing test dataset",  # the test set's probe: test_robust's "missing test dataset"
    "int16",  # the dtype refusal: test_robust's int32, uint16, float16
    "rank 1",  # the rank check: test_robust's "rank 5", "scalar"
    "nan",  # the value scan: test_robust's "inf", "nan chunked"
    "outside [0,1] for bernoulli",  # the [0, 1] check: test_robust's "negative for bernoulli"
    "fewer rows than ranks",  # test_robust's "fewer rows than ranks" (3 ranks)
    "mismatched resume", "mismatched decoder",  # match.c: test_robust's "checkpoint other architecture", "... decoder"
]
cases = sanitizer_subset(cases, RELEASE_ONLY, "test_train_errors")
for name, np_, args, words in cases:
    try:
        p = mpirun(np_, ["train", "--no-images", *args], timeout=60, quiet=True)
    except Exception as e:  # a timeout is a hang
        check(False, f"{name}: {e}")
        continue
    expect_error(p, words, name)
    check(dir_state(out) == before, f"{name}: files in --out changed")
check(not os.path.exists(os.path.join(fresh, "checkpoint.h5")), "a failed run wrote a checkpoint")
# The gaussian decoder accepts values outside [0, 1].
p = mpirun(2, ["train", "--data", bad["range"], "--out", os.path.join(tmp, "g"), "--decoder", "gaussian",
               "--epochs", "1", "--no-images"])
check(p.returncode == 0, f"gaussian on [0, 2] data refused: {p.stderr[-500:]}")
# --help: usage with defaults, once, exit 0.
p = mpirun(2, ["train", "--help"], quiet=True)
check(p.returncode == 0 and p.stdout.count("usage: vae_mpi train") == 1 and "(default: 128)" in p.stdout,
      f"--help: {p.returncode} {p.stdout[:300]}")
shutil.rmtree(tmp)
done("test_train_errors")
