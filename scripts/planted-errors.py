#!/usr/bin/python3
"""The reference tests against planted errors (issue 12 section 4): each plant is a small wrong edit
of the source (Adam's bias correction off, the gradient divided by the wrong count, the KL's sign...),
made in a scratch copy of the tree (`git archive HEAD`, never the working tree), built, and run through
the reference tests; the table says which tests failed on it. A plant no test catches, a plant that no
longer applies to the source, or a control (the unplanted copy) that fails makes the script exit 1.

    scripts/planted-errors.py                 # every plant, a Markdown table on stdout (~10 minutes)
    scripts/planted-errors.py --only kl-sign  # some plants (names as in --list)
    scripts/planted-errors.py --list

Not part of ctest (it builds the tree once per plant); docs/TESTING.md holds the table it printed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tests that pin the numbers (ctest names; their fixtures are pulled in by ctest itself).
TESTS = ["test_grad", "test_torch_ref", "test_grad_avg_np2", "test_grad_avg_np3", "test_trajectory",
         "test_torch_adam", "test_torch_train", "test_nonfinite"]

# name, what is wrong, [(file, exact text, planted text)]: each text must occur exactly once.
PLANTS = [
    ("adam-no-bias-correction", "Adam without its bias corrections (bc1 = bc2 = 1)",
     [("src/nn/adam.c", "const double bc1 = 1.0 - pow(a->beta1, (double)t);", "const double bc1 = 1.0;"),
      ("src/nn/adam.c", "const double bc2 = 1.0 - pow(a->beta2, (double)t);", "const double bc2 = 1.0;")]),
    ("adam-eps-inside-sqrt", "Adam's eps under the square root: sqrt(v_hat + eps) for sqrt(v_hat) + eps",
     [("src/nn/adam.c", "(sqrtf(vi) * inv_sqrt_bc2 + eps)", "sqrtf(vi * inv_sqrt_bc2 * inv_sqrt_bc2 + eps)")]),
    ("adam-float-betas", "Adam's 1 - beta2 from the float beta2 (the rounding 6a6928e fixed: v 1.3e-5 off)",
     [("src/nn/adam.c", "omb2 = (float)(1.0 - a->beta2)", "omb2 = 1.0f - (float)a->beta2")]),
    ("grad-mean-local-count", "the summed gradient divided by this rank's image count, not the global one",
     [("src/train/step.c", "c.gscale = (float)(1.0 / r.count);", "c.gscale = (float)(1.0 / n[0]);")]),
    ("grad-norm-of-sum", "the norm (and so the clip) taken of the summed gradient, not of the mean",
     [("src/train/step.c", "r.grad_norm = sqrt(sq) / r.count;", "r.grad_norm = sqrt(sq);")]),
    ("no-skip-nonfinite", "a step with a non-finite loss or gradient applied instead of skipped",
     [("src/train/step.c", "if (r.bad_rank >= 0 || !isfinite(sq)", "if (0 && (r.bad_rank >= 0 || !isfinite(sq)"),
      ("src/train/step.c", "|| !isfinite(r.kl)) {", "|| !isfinite(r.kl))) {")]),
    ("lr-warmup-off-by-one", "the LR warm-up factor step / W instead of (step + 1) / W",
     [("src/train/step.c", "? (double)(step + 1) / o->lr_warmup_steps", "? (double)step / o->lr_warmup_steps")]),
    ("kl-sign", "the KL term's sign flipped, forward and backward alike",
     [("src/nn/loss.c", "kl[b] = 0.5 * s;", "kl[b] = -0.5 * s;"),
      ("src/nn/loss.c", "dmu[j] = coef * mu[j];", "dmu[j] = -coef * mu[j];"),
      ("src/nn/loss.c", "dlv[j] = coef * 0.5f * expm1f(lv[j]);", "dlv[j] = -coef * 0.5f * expm1f(lv[j]);")]),
    ("reparam-std-is-var", "z = mu + exp(logvar) eps (the variance for the standard deviation), both passes",
     [("src/nn/layers.c", "zr[j] = mu[j] + expf(0.5f * lv[j]) * e[j];", "zr[j] = mu[j] + expf(lv[j]) * e[j];"),
      ("src/nn/layers.c", "d[j] * e[j] * 0.5f * expf(0.5f * lv[j]);", "d[j] * e[j] * expf(lv[j]);")]),
    ("eps-same-every-step", "the noise eps keyed without the step: the same eps on every step",
     [("src/train/step.c", "(uint32_t)g,\n                   (uint64_t)step, 0);",
       "(uint32_t)g,\n                   (uint64_t)0, 0);")]),
    ("gaussian-no-log-2pi", "the Gaussian decoder's constant 0.5 log(2 pi) dropped (gradients unchanged)",
     [("src/nn/loss.c", "double per_value = 0.5 * (LOG_2PI + log(s2));", "double per_value = 0.5 * log(s2);")]),
    ("bernoulli-loss-half", "the Bernoulli loss's log1p term halved in the forward pass only",
     [("src/nn/loss.c", "- av * xv[j] + vae_log1pf_unit(e);", "- av * xv[j] + 0.5f * vae_log1pf_unit(e);")]),
]


def run(cmd, cwd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode


def apply(tree, edits, undo=False):
    for path, old, new in (reversed(edits) if undo else edits):
        if undo:
            old, new = new, old
        p = os.path.join(tree, path)
        with open(p) as f:
            text = f.read()
        if text.count(old) != 1:
            raise SystemExit(f"planted-errors: {path}: {old!r} occurs {text.count(old)} times, not once: "
                             "the plant no longer fits the source; update PLANTS")
        with open(p, "w") as f:
            f.write(text.replace(old, new))


def run_tests(build, log):
    """Each test's result (True passed) and time, from ctest's own summary lines."""
    regex = "^(" + "|".join(TESTS) + ")$"
    with open(log, "a") as f:
        out = subprocess.run(["nice", "ctest", "--timeout", "300", "-R", regex], cwd=build, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
        f.write(out)
    got = {}
    for m in re.finditer(r"Test +#\d+: (\S+) \.+ *(\*\*\*)?(\S+).*? ([\d.]+) sec", out):
        got[m.group(1)] = (m.group(3) == "Passed", float(m.group(4)))
    missing = [t for t in TESTS if t not in got]
    if missing:
        raise SystemExit(f"planted-errors: ctest did not run {missing} (see {log})")
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="PLANT")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="leave the scratch copy (its path is printed)")
    a = ap.parse_args()
    if a.list:
        for name, what, _ in PLANTS:
            print(f"{name:26} {what}")
        return 0
    plants = [p for p in PLANTS if not a.only or p[0] in a.only]
    unknown = set(a.only or []) - {p[0] for p in PLANTS}
    if unknown:
        raise SystemExit(f"planted-errors: no plant named {sorted(unknown)} (see --list)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    os.environ.update(env)
    scratch = tempfile.mkdtemp(prefix="vae-planted-")
    ok = False
    tree, build, log = os.path.join(scratch, "src"), os.path.join(scratch, "build"), os.path.join(scratch, "log")
    try:
        os.mkdir(tree)
        arch = subprocess.run(["git", "-C", ROOT, "archive", "HEAD"], stdout=subprocess.PIPE, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=arch, check=True)
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True,
                             stdout=subprocess.PIPE, check=True).stdout.strip()
        print(f"planted-errors: commit {rev}, scratch copy {scratch}", file=sys.stderr, flush=True)
        if run([os.path.join(tree, "scripts/build.sh"), build], tree, log) != 0:
            raise SystemExit(f"planted-errors: the unplanted copy does not build (see {log})")
        control = run_tests(build, log)
        if not all(ok for ok, _ in control.values()):
            raise SystemExit(f"planted-errors: the unplanted copy fails {[t for t in TESTS if not control[t][0]]}")
        print(f"control (nothing planted, commit {rev}): all {len(TESTS)} pass; per test: "
              + ", ".join(f"{t} {control[t][1]:.1f} s" for t in TESTS) + "\n")
        print("| plant | what is wrong | " + " | ".join(TESTS) + " |")
        print("|---|---|" + "---|" * len(TESTS))
        uncaught = []
        for name, what, edits in plants:
            apply(tree, edits)
            try:
                if run([os.path.join(tree, "scripts/build.sh"), build], tree, log) != 0:
                    raise SystemExit(f"planted-errors: {name} does not build (see {log})")
                got = run_tests(build, log)
            finally:
                apply(tree, edits, undo=True)
            caught = [t for t in TESTS if not got[t][0]]
            if not caught:
                uncaught.append(name)
            print(f"| {name} | {what} | " + " | ".join("**fails**" if t in caught else "passes" for t in TESTS)
                  + " |", flush=True)
        if uncaught:
            print(f"\nplanted-errors: no test caught {uncaught}", file=sys.stderr)
            return 1
        ok = True
        return 0
    finally:
        if a.keep or not ok:  # a failure's log stays for reading
            print(f"planted-errors: scratch copy kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
