#!/usr/bin/env bash
# bench.sh: vae_mpi training throughput against PyTorch and the GEMM floor, on the same cores, in one run.
#   scripts/bench.sh [--repeats R] [--torch-steps S] [--build DIR] [--data FILE.h5] [--results FILE]
#                                                                    speed table (issue 7) over R rounds
#   scripts/bench.sh --quality [--build DIR]                         test ELBO: vae_mpi np 2 batch 64 after 2 and
#                                                                    10 epochs, PyTorch examples/vae after 10
#   scripts/bench.sh --conv [bench-conv.sh options]                  the convolutional VAE's section (issue 13):
#                                                                    scripts/bench-conv.sh, its header says what
# Every round runs each configuration once, in turn, so that the machine's load is shared alike. The
# table shows each measurement's median over the rounds with its min-max; every ratio is computed within
# each round (both sides minutes apart at most: this machine's speed moves 10-15% between runs) and
# shown as the median of the per-round ratios with their min-max, beside the ratio of the medians; a
# target's verdict ("met" / "not met", and in how many rounds) rests on the per-round median
# (scripts/bench_rounds.py). --results FILE keeps every round's JSON lines ({"round":r,"what":...}).
# What is measured:
#   vae_mpi np 1 (--threads 1), np 2 (one BLAS thread per rank) and 1 rank x 2 worker threads
#     (--threads 2, mpirun --bind-to none: issue 16's ranks x threads), 128 images per worker, one epoch
#     (--epochs 1): samples_per_s of the epoch record (training steps only, batch gather included,
#     evaluation and checkpoint excluded), allreduce_seconds / train_seconds, checkpoint_seconds /
#     seconds, and peak_rss_mib (largest VmHWM of any rank) against the shard (60000*784/np bytes) + 64 MiB;
#   PyTorch (scripts/torch_vae.py, examples/vae, batch 128): one process at 1 and at 2 threads, and
#     DistributedDataParallel over 2 processes (gloo, 1 thread each), --max-steps steps, samples/s of the
#     timed steps (zero_grad, forward, backward, Adam; the batch gather is outside its timer);
#   the GEMM floor (vae_gemm_floor: only the matrix products of one step, one OpenBLAS thread): one copy
#     alone, and two copies side by side summed = the 2-core floor;
#   the step loop at np 2 (vae_step_parts --json: train's step on synthetic rows, back to back, without
#     and with the gradient MPI_Allreduce): what np 2 would do if the sum were free, and what the sum
#     costs inside the loop against its cost alone (best of 50);
#   train's own step (vae_step_loop --json: vae_train_step back to back on synthetic rows) at np 1 x 1,
#     np 2 x 1 and 1 rank x 2 threads, timed by phase: compute, on-node sum, MPI_Allreduce, norm + Adam;
#   the ceiling against PyTorch DDP: the 2-core GEMM floor / DDP, what no implementation doing these
#     GEMMs with this OpenBLAS on these cores can exceed, and for each x-DDP target (3.0x DDP at its
#     faster kernels, 4.0x DDP as shipped) the fraction of the 2-core floor it needs in that round
#     (above 1: out of reach on the machine of the day).
# BLAS kernels (issue 16): vae_mpi, vae_gemm_floor and vae_step_parts pick OpenBLAS's kernels at
# start-up as vae_mpi does (blas_kernels.h: the best family when OpenBLAS falls back to a generic one);
# the floor is also measured as shipped (VAE_BLAS_CORETYPE=keep), and PyTorch runs both as shipped and
# with OPENBLAS_CORETYPE set to vae_mpi's core; vae_mpi is compared with PyTorch's faster run of each
# configuration. Every program's kernels are printed (their JSON, OpenBLAS's "Core:" line for PyTorch).
# OPENBLAS_CORETYPE and VAE_BLAS_CORETYPE from the caller's environment are ignored (and said so).
#   scripts/bench.sh --fallback Prescott   as if this OpenBLAS did not know the CPU and fell back to
#     Prescott (0.3.21 on recent Intel Xeons): "as shipped" runs get OPENBLAS_CORETYPE=Prescott, and
#     vae_mpi and the benchmarks see Prescott through the test hook VAE_TEST_OPENBLAS_CORENAME, so they
#     choose and re-execute exactly as on such a machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
data=$root/datasets/fashion-mnist.h5
repeats=3
quality=0
torch_steps=300
fallback=""
results=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --quality) quality=1; shift ;;
    --conv) shift; exec "$root/scripts/bench-conv.sh" "$@" ;;
    --torch-steps) torch_steps=$2; shift 2 ;;
    --fallback) fallback=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    -h|--help) sed -n "2,$(($(grep -n '^set -euo' "$0" | cut -d: -f1) - 1))p" "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
. "$root/scripts/bench-setup.sh"
bench_setup bench.sh vae_mpi vae_gemm_floor vae_step_parts vae_step_loop
for v in OPENBLAS_CORETYPE VAE_BLAS_CORETYPE; do
  [ -n "${!v+x}" ] && echo "bench.sh: ignoring $v=${!v}: the benchmark runs as shipped and with vae_mpi's choice" >&2
  unset "$v"
done
# The kernels: OpenBLAS's own pick (as shipped) and vae_mpi's (the best this OpenBLAS has for the CPU).
# as_shipped CMD...: CMD with OpenBLAS's own kernels (or the simulated fallback's).
as_shipped() {
  if [ -n "$fallback" ]; then OPENBLAS_CORETYPE=$fallback "$@"; else VAE_BLAS_CORETYPE=keep "$@"; fi
}
[ -n "$fallback" ] && export VAE_TEST_OPENBLAS_CORENAME=$fallback
core_of() { sed -n 's/.*"blas_core":"\([^"]*\)".*/\1/p'; }
shipped=$(as_shipped "$build/vae_gemm_floor" --seconds 0 | core_of)
best=$("$build/vae_gemm_floor" --seconds 0 | core_of)

# vae_mpi NP BATCH EPOCHS OUT [extra...]: a fresh run; its metrics.jsonl is OUT/metrics.jsonl. NP may be
# "1x2": one rank of 2 worker threads, not bound to one core (--bind-to none).
vae() {
  local np=$1 batch=$2 epochs=$3 out=$4 how threads
  shift 4
  bench_layout "$np"
  [ -n "$threads" ] && set -- "$@" --threads "$threads"
  rm -rf "$out"
  "${mpirun[@]}" "${how[@]}" "$build/vae_mpi" train --data "$data" --out "$out" --batch-size "$batch" \
    --epochs "$epochs" --no-images "$@" >"$out.log" 2>&1 || { echo "bench.sh: vae_mpi failed:" >&2; tail "$out.log" >&2; exit 1; }
}

if [ "$quality" = 1 ]; then
  echo "quality: vae_mpi np 2 batch 64, 10 epochs; PyTorch examples/vae, 10 epochs (this takes a few minutes)"
  vae 2 64 10 "$tmp/q"
  OMP_NUM_THREADS=1 "$py" scripts/torch_vae.py --data "$data" --epochs 10 --threads 1 >"$tmp/q-torch.jsonl"
  "$py" - "$tmp/q/metrics.jsonl" "$tmp/q-torch.jsonl" <<'EOF'
import json, sys
v = [json.loads(l) for l in open(sys.argv[1]) if '"type":"epoch"' in l]
t = [json.loads(l) for l in open(sys.argv[2])]
print(f"vae_mpi np 2 batch 64: test ELBO after 2 epochs {v[1]['test_elbo']:.2f}, after 10 epochs {v[9]['test_elbo']:.2f}")
print(f"PyTorch examples/vae batch 128: test ELBO after 2 epochs {t[1]['test_elbo']:.2f}, after 10 epochs {t[9]['test_elbo']:.2f}")
EOF
  exit 0
fi

# torch_run WHAT CORE THREADS [args...]: scripts/torch_vae.py with OPENBLAS_CORETYPE=CORE (empty: as
# shipped); its JSON line gets "what" and "blas_core", the core(s) OpenBLAS said it loaded.
torch_run() {
  local what=$1 core=$2 th=$3
  shift 3
  local envs=(OPENBLAS_VERBOSE=2 OMP_NUM_THREADS="$th")
  [ -n "$core" ] && envs+=(OPENBLAS_CORETYPE="$core")
  env "${envs[@]}" "$py" scripts/torch_vae.py --data "$data" --epochs 1 --threads "$th" --no-test \
    --max-steps "$torch_steps" "$@" >"$tmp/torch.out" 2>"$tmp/torch.err" ||
    { echo "bench.sh: PyTorch ($what) failed:" >&2; tail "$tmp/torch.err" >&2; exit 1; }
  local used
  used=$(sed -n 's/^Core: //p' "$tmp/torch.err" | sort -u | paste -sd/)
  sed "s/^{/{\"what\":\"$what\",\"blas_core\":\"${used:-?}\",/" "$tmp/torch.out" >>"$res"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$repeats"); do
  bench_round "$r"
  "$build/vae_gemm_floor" --seconds 3 | sed 's/^{/{"what":"floor1",/' >>"$res"
  as_shipped "$build/vae_gemm_floor" --seconds 3 | sed 's/^{/{"what":"floor1_shipped",/' >>"$res"
  "$build/vae_gemm_floor" --seconds 3 >"$tmp/f2a" & "$build/vae_gemm_floor" --seconds 3 >"$tmp/f2b"
  wait
  sed 's/^{/{"what":"floor2a",/' "$tmp/f2a" >>"$res"
  sed 's/^{/{"what":"floor2b",/' "$tmp/f2b" >>"$res"
  OPENBLAS_NUM_THREADS=1 "${mpirun[@]}" -np 2 "$build/vae_step_parts" --reps 50 --steps 400 --json >>"$res"
  vae 1 128 1 "$tmp/np1" --threads 1
  sed -n 's/^{"type":"epoch"/{"what":"np1"/p' "$tmp/np1/metrics.jsonl" >>"$res"
  vae 2 128 1 "$tmp/np2" --threads 1
  sed -n 's/^{"type":"epoch"/{"what":"np2"/p' "$tmp/np2/metrics.jsonl" >>"$res"
  vae 1x2 128 1 "$tmp/t2"
  sed -n 's/^{"type":"epoch"/{"what":"t2"/p' "$tmp/t2/metrics.jsonl" >>"$res"
  OPENBLAS_NUM_THREADS=1 "${mpirun[@]}" -np 1 "$build/vae_step_loop" --threads 1 --steps 300 --json >>"$res"
  OPENBLAS_NUM_THREADS=1 "${mpirun[@]}" -np 2 "$build/vae_step_loop" --threads 1 --steps 300 --json >>"$res"
  "${mpirun[@]}" --bind-to none -np 1 "$build/vae_step_loop" --threads 2 --steps 300 --json >>"$res"
  for how in shipped best; do
    core=$fallback
    [ "$how" = best ] && core=$best
    torch_run "torch1_$how" "$core" 1
    torch_run "torch2_$how" "$core" 2
    torch_run "ddp2_$how" "$core" 1 --ddp 2 --port $((20000 + RANDOM % 20000)) # not a fixed port: another job may hold it
  done
  bench_round_end "$r"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

"$py" - "$all" "$shipped" "$best" "$load0" "$load1" "$fallback" <<'EOF'
import sys
sys.path.insert(0, "scripts")
from bench_rounds import Rounds, ceiling, ratio_table, spread

R = Rounds(sys.argv[1])
shipped, best, load0, load1, fb = sys.argv[2:7]
R.derive("floor2", lambda g: {"samples_per_s": g("floor2a") + g("floor2b"), "blas_core": g("floor2a", "blas_core")})
# Which configuration a comparison uses is chosen once, on the medians, and then read in every round:
# the best one-node layout, and PyTorch's faster kernels per configuration.
node_w, node_name = ("np2", "np 2 x 1") if R.med("np2") >= R.med("t2") else ("t2", "1 rank x 2 threads")
fast = {k: f"{k}_{max(('shipped', 'best'), key=lambda h: R.med(f'{k}_{h}'))}" for k in ("torch1", "torch2", "ddp2")}
node = lambda g: g(node_w)
floor2 = lambda g: g("floor2")
ddp = lambda g: g(fast["ddp2"])
ddp_shipped = lambda g: g("ddp2_shipped")
best_torch_w = max((fast["torch1"], fast["torch2"]), key=R.med)
print(f"samples/s over {R.n} round{'s' if R.n > 1 else ''} (Fashion-MNIST, 784-400-20-400-784, 128 images per rank/process):"
      f" {'the median and the min-max over the rounds' if R.n > 1 else 'one value each'}")
print(f"OpenBLAS kernels: as shipped {shipped}{' (simulated: --fallback ' + fb + ')' if fb else ''}, vae_mpi's choice {best};"
      f" load average {load0} at the start, {load1} at the end; at each round's start {R.loads()}")
sps = lambda what: spread(R.each(lambda g: g(what)), "{:.0f}")
rows = [("GEMM floor, 1 core", "floor1"), ("GEMM floor, 2 cores (two copies summed)", "floor2"),
        ("GEMM floor, 1 core, as shipped", "floor1_shipped"), ("vae_mpi np 1 (1 BLAS thread)", "np1"),
        ("vae_mpi np 2", "np2"), ("vae_mpi 1 rank x 2 worker threads (--threads 2, --bind-to none)", "t2")]
for k, name in [("torch1", "PyTorch 1 process, 1 thread"), ("torch2", "PyTorch 1 process, 2 threads"),
                ("ddp2", "PyTorch DDP 2 processes x 1 thread (gloo)")]:
    for h in ("shipped", "best"):
        rows.append((f"{name}, {('as shipped' if not fb else 'OPENBLAS_CORETYPE=' + fb) if h == 'shipped' else 'OPENBLAS_CORETYPE=' + best}",
                     f"{k}_{h}"))
rows += [("np 2 step loop, gradient sum left out", "loop2_nosum"), ("np 2 step loop, with the gradient sum", "loop2_sum"),
         ("train step loop (vae_train_step), np 1 x 1", "loop1x1"), ("train step loop (vae_train_step), np 2 x 1", "loop2x1"),
         ("train step loop (vae_train_step), 1 rank x 2 threads", "loop1x2")]
w = max(len(name) for name, _ in rows)
print(f"  {'':{w}s} {'samples/s':>21s}  kernels")
for name, what in rows:
    print(f"  {name:{w}s} {sps(what):>21s}  {R.kernels(what)}")
shard = lambda np_: 60000 * 784 / np_ / 2**20
share = lambda w, part, whole: lambda g: g(w, part) / g(w, whole)
checks = [
    (f"best one-node ({node_name}) / 2-core floor", lambda g: node(g) / floor2(g), ">= 0.75"),
    ("best one-node / PyTorch DDP, faster kernels", lambda g: node(g) / ddp(g), ">= 3.0 (see the ceiling)"),
    ("best one-node / PyTorch DDP, as shipped", lambda g: node(g) / ddp_shipped(g), ">= 4.0"),
    ("1 rank x 2 threads / np 2", lambda g: g("t2") / g("np2"), "(which to launch)"),
    ("np2 / 2-core GEMM floor", lambda g: g("np2") / floor2(g), ">= 0.75"),
    ("np1 / 1-core GEMM floor", lambda g: g("np1") / g("floor1"), ">= 0.8"),
    ("np2 / PyTorch DDP 2 processes, faster kernels", lambda g: g("np2") / ddp(g), ">= 3.0"),
    ("np2 / PyTorch DDP 2 processes, as shipped", lambda g: g("np2") / ddp_shipped(g), ">= 4.0"),
    ("np2 / best single-process PyTorch", lambda g: g("np2") / g(best_torch_w), ">= 2.0"),
    ("np1 / PyTorch 1 thread", lambda g: g("np1") / g(fast["torch1"]), ">= 1.25"),
    ("1-core GEMM floor / as shipped", lambda g: g("floor1") / g("floor1_shipped"), "(the kernels' gain)"),
    ("np2 / np1", lambda g: g("np2") / g("np1"), ">= 1.8"),
    ("np1 peak RSS / (shard + 64 MiB)", lambda g: g("np1", "peak_rss_mib") / (shard(1) + 64), "<= 1.0"),
    ("np2 peak RSS per rank / (shard + 64 MiB)", lambda g: g("np2", "peak_rss_mib") / (shard(2) + 64), "<= 1.0"),
    ("np2 checkpoint write / epoch", share("np2", "checkpoint_seconds", "seconds"), "< 0.01"),
    ("np1 checkpoint write / epoch", share("np1", "checkpoint_seconds", "seconds"), "< 0.01"),
    ("np2 allreduce / step (share of train time)", share("np2", "allreduce_seconds", "train_seconds"), "(measured)"),
    ("np2 step loop without the sum / 2-core floor", lambda g: g("loop2_nosum") / floor2(g), "(ceiling of the first)"),
]
ratio_table(R, checks, "ratio (PyTorch: its faster kernels unless said)")
# No implementation that does this step's GEMMs with this OpenBLAS on these 2 cores can beat DDP by more
# than the 2-core floor does: the best one-node ratio to DDP is bounded by it (issue 16's 3x was set on
# a CPU where it was 4.6x).
ceiling(R, floor2, [(3.0, "DDP (faster kernels)", ddp), (4.0, "DDP as shipped", ddp_shipped)], (node_name, node))
med = R.med
floor1, f2 = med("floor1"), med("floor2")
rss1, rss2 = med("np1", "peak_rss_mib"), med("np2", "peak_rss_mib")
print(f"\n  medians: peak RSS per rank: np1 {rss1:.1f} MiB (shard {shard(1):.1f} MiB), np2 {rss2:.1f} MiB (shard {shard(2):.1f} MiB);"
      f" checkpoint write at np2 {med('np2', 'checkpoint_seconds') * 1e3:.0f} ms")
print(f"  np 2 step loop (ms per step): gradient MPI_Allreduce {med('loop2_sum', 'allreduce_ms'):.2f} in the loop"
      f" (waiting for the other rank included), {med('loop2_sum', 'allreduce_alone_ms'):.2f} alone;"
      f" norm + Adam {med('loop2_sum', 'adam_ms'):.2f}; forward + backward + batch {med('loop2_sum', 'compute_ms'):.2f}")
for w, name, allow in [("loop1x1", "np 1 x 1", f"80% of the 1-core floor allows {128 / (0.8 * floor1) * 1e3:.2f}"),
                       ("loop2x1", "np 2 x 1", f"75% of the 2-core floor allows {2 * 128 / (0.75 * f2) * 1e3:.2f}"),
                       ("loop1x2", "1 rank x 2 threads", f"75% of the 2-core floor allows {2 * 128 / (0.75 * f2) * 1e3:.2f}")]:
    ms = {k: med(w, k + "_ms") for k in ("step", "median_step", "compute", "worker", "node_sum", "allreduce", "update")}
    print(f"  train's step at {name} (ms per step, slowest rank): {ms['step']:.2f} (median {ms['median_step']:.2f})"
          f" = compute {ms['compute']:.2f} (the slowest worker's mean own {ms['worker']:.2f}) + on-node sum {ms['node_sum']:.2f}"
          f" + MPI_Allreduce {ms['allreduce']:.2f} + norm + Adam {ms['update']:.2f}; {allow}")
EOF
