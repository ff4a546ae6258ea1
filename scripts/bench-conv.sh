#!/usr/bin/env bash
# bench-conv.sh: the convolutional VAE (issue 13), --conv 32,64 --hidden 256 --latent 20 on Fashion-MNIST
# (k4 s2 p1: 28 -> 14 -> 7 and back, 1,691,369 parameters), against PyTorch's same module
# (scripts/torch_vae.py --conv, which builds scripts/vae_mpi_torch.py's VAE) and the conv GEMM floor.
#   scripts/bench-conv.sh [--repeats R] [--steps N] [--build DIR] [--data FILE.h5] [--results FILE]
#                                                    speed, in one run
#   scripts/bench-conv.sh --quality [--epochs E]     test ELBO after E epochs (default 10): vae_mpi np 2 x
#                                                    64 against PyTorch one process, batch 128 (heavy:
#                                                    tens of minutes on 2 cores; run it on a quiet machine)
# Speed: samples/s of training steps over R rounds, each round running every configuration once in
# turn so that the machine's load is shared alike; each measurement's median with its min-max over the
# rounds; every ratio computed within each round and shown as the median of the per-round ratios with
# their min-max, beside the ratio of the medians, a target's verdict resting on the per-round median
# (scripts/bench_rounds.py); the ceiling (2-core floor / DDP) and the fraction of the 2-core floor that
# 2.0x DDP needs, per round. --results FILE keeps every round's JSON lines ({"round":r,"what":...}).
#   vae_mpi np 1 (--threads 1), np 2 and 1 rank x 2 worker threads (--threads 2, mpirun --bind-to none:
#     issue 16's ranks x threads, the gradient summed in shared memory, no MPI sum), 128 images per
#     worker, one epoch of the first 256 x --steps training images (a temporary copy: np 2 and 1 x 2
#     take --steps steps, np 1 twice as many), its epoch record's samples_per_s (training steps only,
#     the batch gather included), and peak RSS;
#   PyTorch one process at 1 and 2 threads and DDP 2 x 1 (gloo), 128 per process, --steps steps, with
#     OPENBLAS_CORETYPE set to vae_mpi's kernels (Debian's OpenBLAS, as vae_mpi uses it);
#   the conv GEMM floor (vae_gemm_floor --conv ...: only the matrix products of one step, in the chunks
#     the kernels use, one thread): one copy alone, two side by side summed = the 2-core floor, and the
#     real forward + backward of the kernels on one thread (--step: kernels_step_ms).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
data=$root/datasets/fashion-mnist.h5
repeats=3
steps=50
quality=0
epochs=10
results=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --quality) quality=1; shift ;;
    --epochs) epochs=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    -h|--help) sed -n "2,$(($(grep -n '^set -euo' "$0" | cut -d: -f1) - 1))p" "$0"; exit 0 ;;
    *) echo "bench-conv.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
model=(--conv 32,64 --hidden 256 --latent 20)
. "$root/scripts/bench-setup.sh"
bench_setup bench-conv.sh vae_mpi vae_gemm_floor
unset OPENBLAS_CORETYPE VAE_BLAS_CORETYPE
core=$("$build/vae_gemm_floor" --seconds 0 | sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p')

# vae NP BATCH OUT [extra...]: a fresh vae_mpi run of the conv model; OUT/metrics.jsonl. NP may be
# "1x2": one rank of 2 worker threads, not bound to one core (--bind-to none).
vae() {
  local np=$1 batch=$2 out=$3 how threads
  shift 3
  bench_layout "$np"
  set -- "$@" --threads "${threads:-1}"
  rm -rf "$out"
  "${mpirun[@]}" "${how[@]}" "$build/vae_mpi" train --data "$data" --out "$out" --batch-size "$batch" \
    --no-images "${model[@]}" "$@" >"$out.log" 2>&1 || { echo "bench-conv.sh: vae_mpi failed:" >&2; tail "$out.log" >&2; exit 1; }
}
# torch THREADS OUT [extra...]: scripts/torch_vae.py's conv model, JSON lines in OUT.
torch() {
  local th=$1 out=$2
  shift 2
  env OMP_NUM_THREADS="$th" OPENBLAS_CORETYPE="$core" "$py" scripts/torch_vae.py --data "$data" \
    --threads "$th" "${model[@]}" "$@" >"$out" 2>"$out.err" || { echo "bench-conv.sh: PyTorch failed:" >&2; tail "$out.err" >&2; exit 1; }
}

if [ "$quality" = 1 ]; then
  echo "quality: Fashion-MNIST ${model[*]}, Bernoulli, $epochs epochs: vae_mpi np 2 x 64, PyTorch 1 process x 128 (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  vae 2 64 "$tmp/q" --epochs "$epochs"
  torch 1 "$tmp/q-torch.jsonl" --epochs "$epochs" --batch-size 128
  "$py" - "$tmp/q/metrics.jsonl" "$tmp/q-torch.jsonl" <<'EOF'
import json, sys
v = [json.loads(l) for l in open(sys.argv[1]) if '"type":"epoch"' in l]
t = [json.loads(l) for l in open(sys.argv[2])]
for name, rows in (("vae_mpi np 2 x 64", v), ("PyTorch 1 process x 128", t)):
    print(f"{name:24s} test ELBO per epoch: " + " ".join(f"{r['test_elbo']:.2f}" for r in rows)
          + f" | samples/s {rows[-1]['samples_per_s']:.0f}")
print(f"after {len(v)} epochs: vae_mpi {v[-1]['test_elbo']:.2f}, PyTorch {t[-1]['test_elbo']:.2f},"
      f" difference {v[-1]['test_elbo'] - t[-1]['test_elbo']:+.2f} nats (target: within 1)")
EOF
  echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

# the first 256 x steps training images, so that one epoch is --steps steps at np 2
full=$data
data=$tmp/subset.h5
"$py" - "$full" "$data" $((256 * steps)) <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "w") as g:
    g["train/images"] = f["train/images"][: int(sys.argv[3])]
EOF
load0=$(cut -d' ' -f1-3 /proc/loadavg)
floor=("$build/vae_gemm_floor" "${model[@]}" --image 28x28x1 --batch 128)
for r in $(seq 1 "$repeats"); do
  bench_round "$r"
  "${floor[@]}" --seconds 3 --step | sed 's/^{/{"what":"floor1",/' >>"$res"
  "${floor[@]}" --seconds 3 >"$tmp/f2a" & "${floor[@]}" --seconds 3 >"$tmp/f2b"
  wait
  sed 's/^{/{"what":"floor2a",/' "$tmp/f2a" >>"$res"
  sed 's/^{/{"what":"floor2b",/' "$tmp/f2b" >>"$res"
  for np in 1 2 1x2; do
    vae "$np" 128 "$tmp/np$np" --epochs 1
    sed -n "s/^{\"type\":\"epoch\"/{\"what\":\"np$np\"/p" "$tmp/np$np/metrics.jsonl" >>"$res"
  done
  for cfg in "torch1 1" "torch2 2" "ddp2 1 --ddp 2"; do
    set -- $cfg
    what=$1 th=$2
    shift 2
    torch "$th" "$tmp/t.out" --epochs 1 --no-test --batch-size 128 --max-steps "$steps" "$@"
    sed "s/^{/{\"what\":\"$what\",/" "$tmp/t.out" >>"$res"
  done
  bench_round_end "$r"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

"$py" - "$all" "$core" "$load0" "$load1" "$steps" <<'EOF'
import statistics, sys
sys.path.insert(0, "scripts")
from bench_rounds import Rounds, ceiling, ratio_table, spread

R = Rounds(sys.argv[1])
core, load0, load1, steps = sys.argv[2:6]
R.derive("floor2", lambda g: {"samples_per_s": g("floor2a") + g("floor2b")})
# The best 2-core layout and PyTorch's best single process are chosen once, on the medians, then read
# in every round.
node_w, node_name = ("np2", "np 2") if R.med("np2") >= R.med("np1x2") else ("np1x2", "1 rank x 2 threads")
best_torch_w = max(("torch1", "torch2"), key=R.med)
node, floor2, ddp = (lambda g: g(node_w)), (lambda g: g("floor2")), (lambda g: g("ddp2"))
print(f"samples/s over {R.n} round{'s' if R.n > 1 else ''} of {steps} steps (Fashion-MNIST, --conv 32,64 --hidden 256 --latent 20,"
      f" 128 images per rank/process): {'the median and the min-max over the rounds' if R.n > 1 else 'one value each'};"
      f" OpenBLAS kernels {core} for all; load average {load0} at the start, {load1} at the end; at each round's start {R.loads()}")
for name, what in [("conv GEMM floor, 1 core", "floor1"), ("conv GEMM floor, 2 cores (two copies summed)", "floor2"),
                   ("vae_mpi np 1 (1 BLAS thread)", "np1"), ("vae_mpi np 2", "np2"),
                   ("vae_mpi 1 rank x 2 worker threads (--threads 2)", "np1x2"),
                   ("PyTorch 1 process, 1 thread", "torch1"), ("PyTorch 1 process, 2 threads", "torch2"),
                   ("PyTorch DDP 2 processes x 1 thread (gloo)", "ddp2")]:
    print(f"  {name:52s} {spread(R.each(lambda g: g(what)), '{:.0f}'):>19s}")
checks = [
    ("np2 / PyTorch DDP 2 x 1", lambda g: g("np2") / ddp(g), ">= 2.0"),
    ("np2 / best single-process PyTorch", lambda g: g("np2") / g(best_torch_w), ">= 2.5"),
    ("np2 / 2-core conv GEMM floor", lambda g: g("np2") / floor2(g), ">= 0.6"),
    ("1 rank x 2 threads / PyTorch DDP 2 x 1", lambda g: g("np1x2") / ddp(g), ""),
    ("1 rank x 2 threads / np 2", lambda g: g("np1x2") / g("np2"), "(which to launch)"),
    (f"best 2-core layout ({node_name}) / PyTorch DDP 2 x 1", lambda g: node(g) / ddp(g), ">= 2.0"),
    (f"best 2-core layout ({node_name}) / 2-core conv GEMM floor", lambda g: node(g) / floor2(g), ""),
    ("np1 / 1-core conv GEMM floor", lambda g: g("np1") / g("floor1"), ""),
    ("np1 / PyTorch 1 thread", lambda g: g("np1") / g("torch1"), ""),
    ("np2 / np1", lambda g: g("np2") / g("np1"), ""),
]
ratio_table(R, checks, "ratio (issue 13's targets)")
ceiling(R, floor2, [(2.0, "DDP", ddp)], (node_name, node))
f1 = [r for (_, w), r in R.by.items() if w == "floor1"]
gemm_ms = statistics.median(r["step_ms"] for r in f1)
step_ms = statistics.median(r["kernels_step_ms"] for r in f1) if "kernels_step_ms" in f1[0] else float("nan")
ar = R.each(lambda g: g("np2", "allreduce_seconds") / g("np2", "train_seconds"))
print(f"\n  medians: one thread, 128 images: GEMMs alone {gemm_ms:.1f} ms, the kernels' forward + backward {step_ms:.1f} ms"
      f" (the rest: im2col, col2im, elementwise); np2 allreduce share of train time {statistics.median(ar):.3f};"
      f" peak RSS per rank np1 {R.med('np1', 'peak_rss_mib'):.0f} MiB, np2 {R.med('np2', 'peak_rss_mib'):.0f} MiB,"
      f" 1 x 2 {R.med('np1x2', 'peak_rss_mib'):.0f} MiB")
EOF
