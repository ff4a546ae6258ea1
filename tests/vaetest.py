"""Helpers shared by the Python tests that drive the vae_mpi binary under mpirun."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np

VAE_MPI = os.environ.get("VAE_MPI", "build/vae_mpi")
# The ASan+UBSan build's tests (tests/CMakeLists.txt sets VAE_TEST_SANITIZED=1 there): each C code path
# once. Cases that repeat a path the sanitizers already see with other numbers only (another flag through
# the same range check, another rank count, a determinism rerun) run in the Release pass only; each
# test names them in RELEASE_ONLY-style lists with where the path still runs under the sanitizers.
SANITIZED = os.environ.get("VAE_TEST_SANITIZED") == "1"
FAILED = []
CHECKS = [0]


def check(cond, msg):
    CHECKS[0] += 1
    if not cond:
        FAILED.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)


def sanitizer_subset(cases, release_only, name):
    """cases (tuples whose first item is the case's name) without the release_only names when
    SANITIZED; every release_only name must be a case (a renamed case cannot drop out unseen)."""
    names = {c[0] for c in cases}
    unknown = sorted(set(release_only) - names)
    check(not unknown, f"{name}: release-only cases that are not cases: {unknown}")
    if not SANITIZED:
        return list(cases)
    kept = [c for c in cases if c[0] not in release_only]
    print(f"{name}: {len(kept)} of {len(cases)} cases under the sanitizers ({len(cases) - len(kept)} Release-only)")
    return kept


def done(name):
    if CHECKS[0] == 0:
        print(f"{name}: no checks ran", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: {CHECKS[0] - len(FAILED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


def mpirun(np_, args, timeout=300, mca=None, env=None, quiet=False):
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(np_)] + (["-q"] if quiet else [])
    for k, v in (mca or {}).items():
        cmd += ["--mca", k, v]
    cmd += [VAE_MPI] + list(args)
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    return p


def run1(args, timeout=120):
    return subprocess.run([VAE_MPI] + list(args), capture_output=True, text=True, timeout=timeout)


def epochs(out_dir):
    recs = []
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "epoch":
                recs.append(r)
    return recs


def write_images(path, groups, dtype=np.uint8, shape=(28, 28), seed=0, **kw):
    """groups: {"dataset path": N}. Images are 8 random binary prototypes with 3% of the pixels
    flipped: structure a VAE learns within a few epochs."""
    rng = np.random.default_rng(seed)
    base = (rng.random((8,) + shape) < 0.3).astype(np.float64)
    with h5py.File(path, "w") as f:
        for g, n in groups.items():
            idx = rng.integers(0, 8, n)
            flip = rng.random((n,) + shape) < 0.03
            a = np.abs(base[idx] - flip)
            if dtype == np.uint8:
                a = (a * 255).astype(np.uint8)
            else:
                a = a.astype(dtype)
            f.create_dataset(g, data=a, **kw)


def dir_state(d):
    """{relative path: bytes} of every file below d, to prove a failed run changed nothing."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def expect_error(p, words, name):
    """One 'vae_mpi: error:' line on stderr naming `words`, non-zero exit, no HDF5 stack."""
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    errs = [l for l in lines if l.startswith("vae_mpi: error:")]
    check(p.returncode != 0, f"{name}: exit status 0")
    check(len(errs) == 1 and len(lines) == 1, f"{name}: expected exactly one error line, got: {lines[:6]}")
    check("HDF5-DIAG" not in p.stderr and "#000" not in p.stderr, f"{name}: HDF5 error stack printed")
    for w in words:
        check(any(w in l for l in errs), f"{name}: error does not mention '{w}': {errs}")


# Fields of a metrics record that measure the machine (time, memory, BLAS kernels), not the training.
MACHINE_FIELDS = ("samples_per_s", "seconds", "elapsed", "train_seconds", "allreduce_seconds",
                  "allreduce_max_seconds", "checkpoint_seconds", "peak_rss_mib", "blas", "blas_core", "blas_core_by")


def training_fields(r):
    """A metrics record without its MACHINE_FIELDS: what must be identical across identical runs."""
    return {k: v for k, v in r.items() if k not in MACHINE_FIELDS}
