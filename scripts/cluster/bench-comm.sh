#!/usr/bin/env bash
# What the gradient sum costs between nodes, measured on a 2-node namespace cluster (scripts/cluster), and
# the cost model at scale fed with it (scripts/cluster/cost-model.py). A benchmark, not a test:
#   sudo scripts/cluster/bench-comm.sh [--rounds R] [--rates "off 10gbit 1gbit"] [--build DIR]
# For each link rate (tc tbf on both nodes, both directions; "off" = unshaped), with 2 nodes x 1 rank:
#   - build/vae_allreduce: half round trip of 8 bytes (latency) and of 4 MiB (bandwidth), and MPI_Allreduce of
#     the MLP's gradient (652,824 floats, 2.61 MB) and the conv model's (1,691,369 floats, 6.77 MB);
#   - vae_mpi train on Fashion-MNIST (datasets/fashion-mnist.h5, else 60,000 random images), default model,
#     128 images per rank, one epoch: samples/s and the share of the step in the gradient sum;
# and the same on one host (2 ranks, shared memory), then the compute time of one step at np 1 on one host
# and of the conv model's (--conv 32,64 --hidden 256 --latent 20), which with the lowest latency measured between the
# nodes goes into the cost model. Every figure is the median over R rounds (the
# allreduce's also its minimum: what the link allows). The floor of an allreduce of n bytes between 2
# ranks is n bytes each way on the link: n * 8 / rate. All nodes share this machine's cores: run it on a
# quiet machine (the load average is printed at the start and the end).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=2 rates="off 10gbit 1gbit" build=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "bench-comm.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
for b in "$build/vae_mpi" "$build/vae_allreduce"; do
  [ -x "$b" ] || { echo "bench-comm.sh: $b missing; run scripts/build.sh" >&2; exit 1; }
done
cluster=$here/cluster.sh
name=bc$(printf '%04x' $((RANDOM % 65536)))
work=$(mktemp -d /tmp/vae-bench-comm.XXXXXX)
res=$work/results.jsonl
cleanup() { "$cluster" down "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
echo "bench-comm: load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

data=$root/datasets/fashion-mnist.h5
if [ ! -f "$data" ]; then
  data=$work/random.h5
  /usr/bin/python3 -c "import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'w') as f: f['train/images'] = np.random.default_rng(0).integers(0, 256, (60000, 28, 28), np.uint8)" "$data"
fi
# The conv model's step (issue 13's benchmark model), timed at np 1 (a vae_mpi without --conv: estimated).
conv="" small=$work/small.h5
if "$build/vae_mpi" train --help 2>/dev/null | grep -q -- '--conv '; then
  conv="--conv 32,64 --hidden 256 --latent 20"
  /usr/bin/python3 -c "import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'w') as f: f['train/images'] = np.random.default_rng(1).integers(0, 256, (6400, 28, 28), np.uint8)" "$small"
fi
"$cluster" up "$name" --nodes 2 --slots 1 --owner $$ --lifetime 3600 >/dev/null
mapfile -t margs < <("$cluster" mpirun-args "$name" | tr ' ' '\n' | sed '/^$/d')
train=(train --data "$data" --test-dataset '' --epochs 1 --batch-size 128 --no-images --threads 1)

# measure WHERE RATE: one round of the allreduce bench and of a training epoch, appended to $res.
measure() {
  local where=$1 rate=$2 out launch
  out=$work/out-$where-$rate-$RANDOM
  if [ "$where" = cluster ]; then
    launch=("$cluster" run "$name" 1 mpirun "${margs[@]}" -np 2 --npernode 1)
  else
    launch=(mpirun -np 2)
  fi
  "${launch[@]}" "$build/vae_allreduce" --reps 40 --floats 652824,1691369 |
    sed "s/^{/{\"where\":\"$where\",\"rate\":\"$rate\",/" >>"$res"
  "${launch[@]}" "$build/vae_mpi" "${train[@]}" --out "$out" >/dev/null
  sed -n '/"type":"epoch"/s/^{/{"what":"train","where":"'"$where"'","rate":"'"$rate"'",/p' "$out/metrics.jsonl" >>"$res"
}

for r in $(seq 1 "$rounds"); do
  for rate in $rates; do
    "$cluster" rate "$name" 1 "$rate" 2>/dev/null
    "$cluster" rate "$name" 2 "$rate" 2>/dev/null
    measure cluster "$rate"
  done
  measure onehost shm
  out=$work/np1-$r
  mpirun -np 1 "$build/vae_mpi" "${train[@]}" --out "$out" >/dev/null
  sed -n '/"type":"epoch"/s/^{/{"what":"train","where":"np1","rate":"-",/p' "$out/metrics.jsonl" >>"$res"
  if [ -n "$conv" ]; then
    out=$work/conv1-$r
    mpirun -np 1 "$build/vae_mpi" train --data "$small" --test-dataset '' --epochs 1 --batch-size 128 --no-images \
      --threads 1 $conv --out "$out" >/dev/null
    sed -n '/"type":"epoch"/s/^{/{"what":"train","where":"conv1","rate":"-",/p' "$out/metrics.jsonl" >>"$res"
  fi
  echo "bench-comm: round $r of $rounds done (load $(cut -d' ' -f1 /proc/loadavg))"
done

/usr/bin/python3 - "$res" "$here/cost-model.py" <<'EOF'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
def pick(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
def rate_bps(rate):
    return None if rate in ("off", "shm") else float(rate[:-4]) * (1e9 if rate.endswith("gbit") else 1e6)
print()
print(f"{'link':>8} | {'latency us':>10} {'MB/s':>6} | {'MLP sum ms: min':>15} {'median':>6} {'floor':>6} | "
      f"{'conv sum ms: min':>16} {'median':>6} {'floor':>6} | {'samples/s':>9} {'sum share':>9}")
order = [("cluster", r) for r in dict.fromkeys(x["rate"] for x in pick(where="cluster"))] + [("onehost", "shm")]
# The latency for the model: the lowest half round trip of 8 bytes between the nodes, any rate, any round.
alpha_us = min(x["min_ms"] for x in pick(where="cluster", what="pingpong", bytes=8)) * 1e3
for where, rate in order:
    lat = pick(where=where, rate=rate, what="pingpong", bytes=8)
    big = [x for x in pick(where=where, rate=rate, what="pingpong") if x["bytes"] > 8]
    a = med(x["min_ms"] for x in lat) * 1e3
    mbs = med(x["bytes"] / (x["min_ms"] * 1e-3) / 1e6 for x in big)
    cells = []
    for b in (2611296, 6765476):
        ar = [x for x in pick(where=where, rate=rate, what="allreduce") if x["bytes"] == b]
        bps = rate_bps(rate)
        floor = f"{b * 8 / bps * 1e3:6.1f}" if bps else "     -"
        cells.append(f"{min(x['min_ms'] for x in ar):15.1f} {med(x['median_ms'] for x in ar):6.1f} {floor}")
    tr = pick(where=where, rate=rate, what="train")
    sps = med(x["samples_per_s"] for x in tr)
    share = med(x["allreduce_seconds"] / x["train_seconds"] for x in tr)
    label = "one host" if where == "onehost" else ("unshaped" if rate == "off" else rate)
    print(f"{label:>8} | {a:10.1f} {mbs:6.0f} | {cells[0]} | {cells[1]} | {sps:9.0f} {share:9.0%}")
np1 = pick(where="np1", what="train")
step_ms = med(128 / x["samples_per_s"] * 1e3 for x in np1)
print(f"\none step's compute at np 1 on one host (128 images, the default MLP): {step_ms:.2f} ms "
      f"({med(x['samples_per_s'] for x in np1):.0f} samples/s)")
conv1 = pick(where="conv1", what="train")
if conv1:
    conv_ms = med(128 / x["samples_per_s"] * 1e3 for x in conv1)
    print(f"the conv model's step (--conv 32,64 --hidden 256 --latent 20) at np 1: {conv_ms:.1f} ms\n")
else:  # ~10x the MLP's FLOPs (issue 13: ~30 MFLOP per image, the MLP ~3)
    conv_ms = 10 * step_ms
    print(f"conv step's compute: {conv_ms:.1f} ms, estimated: 10x the MLP's (their FLOP ratio; this vae_mpi "
          f"has no --conv)\n")
print(f"cost model (scripts/cluster/cost-model.py) with the latency measured here, {alpha_us:.0f} us:")
subprocess.run([sys.executable, sys.argv[2], "--alpha-us", f"{alpha_us:.1f}", "--mlp-step-ms", f"{step_ms:.2f}",
                "--conv-step-ms", f"{conv_ms:.1f}"], check=True)
print("\nthe same with a latency of 2 us (MPI over InfiniBand; TCP over Ethernet is 10-50 us):")
subprocess.run([sys.executable, sys.argv[2], "--alpha-us", "2", "--mlp-step-ms", f"{step_ms:.2f}",
                "--conv-step-ms", f"{conv_ms:.1f}"], check=True)
EOF
echo "bench-comm: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
