"""Bad input end to end (issue 8): every case of tests/robust/make_corpus.py, bad flags and broken
checkpoints, run as `mpirun -q -np 2|3 vae_mpi train` against a copy of a good run's --out. Each must
end with exactly one `vae_mpi: error:` line naming the problem, exit status 1 (never a signal, a
sanitizer report or an HDF5 error stack) within the timeout, and leave every file in --out
byte-identical. A filter plugin on HDF5_PLUGIN_PATH must never be loaded (h5py loading it is the
control). Complements test_train_errors.py (the basic flag and data errors) and test_data_read.c.
  test_robust.py PLUGIN_DIR"""
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py

from vaetest import check, dir_state, done, mpirun, sanitizer_subset, write_images

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "robust"))
import make_corpus  # noqa: E402

plugin_dir = sys.argv[1]
check(os.path.exists(os.path.join(plugin_dir, "libvae_test_plugin.so")), f"no plugin in {plugin_dir}")
tmp = tempfile.mkdtemp(prefix="vae_robust_")
good = os.path.join(tmp, "good.h5")
write_images(good, {"train/images": 12}, shape=(8, 8))
model = ["--hidden", "16", "--latent", "2", "--batch-size", "4", "--no-images"]
out = os.path.join(tmp, "out")
p = mpirun(2, ["train", "--data", good, "--out", out, "--epochs", "1", *model], quiet=True)
check(p.returncode == 0, f"setup run failed: {p.stderr[-1500:]}")
ckpt = os.path.join(out, "checkpoint.h5")
before = dir_state(out)
check("checkpoint.h5" in before and "metrics.jsonl" in before, f"setup run wrote {sorted(before)}")
data, cks = make_corpus.make(os.path.join(tmp, "corpus"), ckpt)
marker = os.path.join(tmp, "plugin_loaded")

# (name, ranks, data file, extra args, words the one error line must hold)
D = "train/images"
cases = [
    ("empty file", 2, data["empty"], [], ["empty.h5", "is empty"]),
    ("truncated file", 2, data["truncated"], [], ["truncated.h5", "truncated"]),
    ("truncated tail", 3, data["truncated_tail"], [], ["truncated"]),
    ("rank 5", 2, data["rank5"], [], ["5 dimension(s)"]),
    ("scalar", 2, data["scalar"], [], ["0 dimension(s)"]),
    ("zero rows", 2, data["zero_rows"], [], ["0 rows"]),
    ("fewer rows than ranks", 3, data["two_rows"], [], ["2 images", "3 ranks", "at most 2 ranks"]),
    ("compound", 2, data["compound"], [], ["compound"]),
    ("variable-length strings", 2, data["vlen_strings"], [], ["string"]),
    ("inf", 2, data["inf"], [], ["row 9", "+Inf"]),
    ("nan chunked", 3, data["nan_chunked"], [], ["row 5", "NaN"]),
    ("negative for bernoulli", 2, data["negative"], [], ["row 11", "-0.5", "[0, 1]"]),
    ("int32", 2, data["int32"], [], ["32-bit signed", "uint8", "float32"]),
    ("uint16", 2, data["uint16"], [], ["16-bit unsigned", "uint8", "float32"]),
    ("int8", 2, data["int8"], [], ["8-bit signed", "uint8"]),
    ("float16", 2, data["float16"], [], ["16-bit floats", "float32"]),
    ("dims overflow", 2, data["dims_overflow"], [], ["overflows"]),
    ("image too big", 2, data["image_too_big"], [], ["values per image"]),
    ("huge, nothing written", 2, data["huge_unwritten"], [], ["no data written"]),
    ("huge rows", 2, data["huge_rows"], [], ["rows", "more ranks"]),
    ("huge memory", 2, data["huge_memory"], [], ["GiB", "ranks"]),
    ("huge memory np3", 3, data["huge_memory"], [], ["GiB", "ranks"]),
    ("external link", 2, data["external_link"], [], ["external link", "target.h5"]),
    ("external link on a group", 3, data["external_link_group"], [], ["'/train'", "external link"]),
    ("external storage", 2, data["external_storage"], [], ["external file", "raw.bin"]),
    ("virtual dataset", 2, data["virtual"], [], ["virtual dataset"]),
    ("plugin filter", 2, data["plugin_filter"], [], [f"filter {make_corpus.PLUGIN_FILTER_ID}", "plugins are not loaded"]),
    # flags (test_train_errors.py has unknown, --epochs without value, --lr fast, --batch-size 0, --lr -1)
    ("missing value at the end", 2, good, ["--seed"], ["--seed"]),
    ("--out without value", 2, good, ["--out"], ["--out"]),
    ("float for an integer", 2, good, ["--epochs", "1e3"], ["--epochs", "1e3"]),
    ("trailing junk", 2, good, ["--batch-size", "12abc"], ["--batch-size", "12abc"]),
    ("negative seed", 2, good, ["--seed", "-1"], ["--seed"]),
    ("integer overflow", 2, good, ["--epochs", "99999999999999999999"], ["--epochs"]),
    ("nan rate", 2, good, ["--lr", "nan"], ["--lr", "finite"]),
    ("inf rate", 3, good, ["--lr", "inf"], ["--lr", "finite"]),
    ("zero epochs", 2, good, ["--epochs", "0"], ["--epochs"]),
    ("zero lr", 2, good, ["--lr", "0"], ["--lr"]),
    ("negative batch", 2, good, ["--batch-size", "-5"], ["--batch-size"]),
    ("zero latent", 2, good, ["--latent", "0"], ["--latent"]),
    ("zero hidden", 2, good, ["--hidden", "0"], ["--hidden"]),
    ("empty hidden", 2, good, ["--hidden", ""], ["--hidden"]),
    ("negative beta", 2, good, ["--beta", "-1"], ["--beta"]),
    ("beta1 of 1", 2, good, ["--beta1", "1"], ["--beta1"]),
    ("zero sigma", 2, good, ["--sigma", "0"], ["--sigma"]),
    ("zero max-skips", 2, good, ["--max-skips", "0"], ["--max-skips"]),
    ("negative keep", 2, good, ["--keep", "-1"], ["--keep"]),
    ("negative clip", 2, good, ["--clip-grad-norm", "-1"], ["--clip-grad-norm"]),
    ("empty --out", 2, good, ["--out", ""], ["--out"]),
    ("empty --dataset", 2, good, ["--dataset", ""], ["--dataset"]),
    ("empty --decoder", 2, good, ["--decoder", ""], ["--decoder"]),
    ("missing test dataset", 2, good, ["--test-dataset", "test/nope"], ["test/nope"]),
    ("bad fault injection", 2, good, [], ["VAE_FAULT_NONFINITE"]),
    # checkpoints (--resume PATH)
    ("checkpoint missing", 2, good, ["--resume", os.path.join(tmp, "none.h5")], ["none.h5", "no such file"]),
    ("checkpoint not hdf5", 2, good, ["--resume", cks["not_hdf5"]], ["not an HDF5 file"]),
    ("checkpoint empty", 2, good, ["--resume", cks["empty"]], ["empty"]),
    ("checkpoint truncated", 2, good, ["--resume", cks["truncated"]], ["truncated"]),
    ("checkpoint truncated tail", 3, good, ["--resume", cks["truncated_tail"]], ["truncated"]),
    ("checkpoint nan weight", 2, good, ["--resume", cks["nan_weight"]], ["hidden0/weight", "non-finite"]),
    ("checkpoint inf moment", 3, good, ["--resume", cks["inf_moment"]], ["optimizer/v", "non-finite"]),
    ("checkpoint missing tensor", 2, good, ["--resume", cks["missing_tensor"]], ["decoder/out/bias"]),
    ("checkpoint missing attribute", 2, good, ["--resume", cks["missing_attr"]], ["/step", "missing"]),
    ("checkpoint missing model attribute", 2, good, ["--resume", cks["missing_model_attr"]], ["latent", "missing"]),
    ("checkpoint wrong tensor shape", 2, good, ["--resume", cks["wrong_shape"]], ["mu/bias", "shape (3)"]),
    ("checkpoint model only", 2, good, ["--resume", cks["model_only"]], ["optimizer state"]),
    ("checkpoint other architecture", 2, good, ["--resume", ckpt, "--hidden", "32"], ["hidden 16", "32"]),
    ("checkpoint other input shape", 2, data["shape_6x6"], ["--resume", ckpt], ["8x8x1", "6x6x1"]),
    ("checkpoint other decoder", 3, good, ["--resume", ckpt, "--decoder", "gaussian-learned"], ["decoder"]),
    ("checkpoint external link", 2, good, ["--resume", cks["ext_link"]], ["external link"]),
    ("checkpoint soft link", 2, good, ["--resume", cks["soft_link"]], ["soft link"]),
    ("checkpoint external storage", 2, good, ["--resume", cks["ext_storage"]], ["outside the dataset"]),
    ("checkpoint virtual dataset", 2, good, ["--resume", cks["virtual"]], ["outside the dataset"]),
]
# Release-only (vaetest.SANITIZED): each repeats, with other values, a C path a kept case (here or in
# test_train_errors.py) runs under the sanitizers.
RELEASE_ONLY = [
    # vae_cli_parse's "needs a value": test_train_errors' "missing value"
    "missing value at the end", "--out without value",
    # parse_double's non-finite branch: "nan rate"
    "inf rate",
    # vae_train_opts_validate's range checks: "empty --out" here, "zero batch" in test_train_errors
    "zero epochs", "zero lr", "negative batch", "beta1 of 1", "negative beta", "negative keep", "negative clip",
    "zero max-skips", "empty --dataset",
    # vae_config_validate_flags: "zero latent"; set_flag's decoder names: test_train_errors' "bad decoder"
    "zero hidden", "zero sigma", "empty --decoder",
    # the memory check at 3 ranks: "huge memory" (2 ranks); the dtype refusal: int32, uint16, float16
    "huge memory np3", "int8",
    # the checkpoint's layout check ("outside the dataset"): "checkpoint external storage"
    "checkpoint virtual dataset",
]
CRASH_WORDS = ["AddressSanitizer", "runtime error:", "LeakSanitizer", "Segmentation fault", "core dumped",
               "HDF5-DIAG", "#000", "MPI_ABORT", "Signal:", "signal "]


def run_case(i, case):
    name, np_, dfile, extra, words = case
    folder = os.path.join(tmp, f"case{i}")
    shutil.copytree(out, folder)
    args = ["train", "--data", dfile, "--out", folder, "--resume", "auto", "--epochs", "2", *model]
    args += extra  # later flags win: a case may set --out, --resume, --hidden ...
    env = {"HDF5_PLUGIN_PATH": plugin_dir, "VAE_PLUGIN_MARKER": marker}
    if name == "bad fault injection":
        env["VAE_FAULT_NONFINITE"] = "1:x"
    t0 = time.time()
    try:
        p = mpirun(np_, args, timeout=60, quiet=True, env=env)
    except subprocess.TimeoutExpired:
        return name, None, 60.0, folder, words
    return name, p, time.time() - t0, folder, words


# Two at a time: each case has its own copy of --out, so they never meet at the lock.
cases = sanitizer_subset(cases, RELEASE_ONLY, "test_robust")
with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    results = list(pool.map(lambda ic: run_case(*ic), enumerate(cases)))
for name, p, secs, folder, words in results:
    if p is None:
        check(False, f"{name}: no exit within 60 s (a hang)")
        continue
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    errs = [l for l in lines if l.startswith("vae_mpi: error:")]
    check(p.returncode == 1, f"{name}: exit status {p.returncode}, expected 1 (>= 128 or < 0 is a crash)")
    check(len(errs) == 1 and len(lines) == 1, f"{name}: expected one error line on stderr, got {lines[:6]}")
    for w in CRASH_WORDS:
        check(w not in p.stderr, f"{name}: '{w}' on stderr: {p.stderr[-800:]}")
    for w in words:
        check(any(w in l for l in errs), f"{name}: error does not mention '{w}': {errs}")
    check(secs < 30, f"{name}: took {secs:.1f} s")
    check(dir_state(folder) == before, f"{name}: files in --out changed: "
          f"{sorted(set(dir_state(folder).items()) ^ set(before.items()), key=str)[:3]}")
check(not os.path.exists(marker), "vae_mpi loaded a filter plugin from HDF5_PLUGIN_PATH")

# The control: with plugin loading on (h5py's default), HDF5 does load the plugin from the same
# path when asked for the same filter, so the marker check above can fail.
ctl = subprocess.run([sys.executable, "-c", "import h5py, sys; h5py.h5z.filter_avail(int(sys.argv[1]))",
                      str(make_corpus.PLUGIN_FILTER_ID)], env=dict(os.environ, HDF5_PLUGIN_PATH=plugin_dir,
                      VAE_PLUGIN_MARKER=marker), capture_output=True, text=True)
check(os.path.exists(marker), f"control: h5py did not load the plugin ({ctl.stderr[-300:]})")

# The good run's folder itself is untouched, and its checkpoint still loads and finishes the run.
check(dir_state(out) == before, "the original --out changed")
p = mpirun(2, ["train", "--data", good, "--out", out, "--resume", "auto", "--epochs", "2", *model], quiet=True)
check(p.returncode == 0, f"resume after the bad cases failed: {p.stderr[-800:]}")
with h5py.File(ckpt, "r") as f:
    check(int(f.attrs["epoch"]) == 2, f"resumed run ended at epoch {f.attrs['epoch']}")
print(f"test_robust: {len(cases)} cases")
shutil.rmtree(tmp)
done("test_robust")
