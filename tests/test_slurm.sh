#!/usr/bin/env bash
# End to end on a real (one-node, local) SLURM cluster: scripts/slurm/train.sbatch is submitted with 2 tasks,
# SIGUSR1 is sent to its batch shell as SLURM does before a time limit, and the test checks that
#   - the ranks checkpoint at a step boundary (checkpoint.h5's step attribute is the step they stopped at),
#   - the job requeues itself (Restarts=1, PENDING with a begin time in the future, as SLURM delays requeues),
#   - once released, the same job resumes from that step and completes every epoch, with metrics.jsonl
#     holding each step and each epoch exactly once, and ends COMPLETED with exit code 0.
# Needs root and Debian's slurm-wlm + munge (scripts/install-deps.sh --slurm); exits 77 (skip) only when the
# SLURM binaries are missing. Every wait is bounded. Run: VAE_MPI=build/vae_mpi bash tests/test_slurm.sh
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

root=${VAE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cluster=$root/scripts/slurm/local-cluster.sh
job_script=$root/scripts/slurm/train.sbatch
py=${VAE_PY:-/usr/bin/python3}
EPOCHS=${VAE_SLURM_TEST_EPOCHS:-10}

for b in sbatch squeue scontrol scancel sinfo slurmctld slurmd munged; do
  if ! command -v "$b" >/dev/null 2>&1; then
    echo "SKIP: $b not found; install SLURM with scripts/install-deps.sh --slurm"
    exit 77
  fi
done

fail() {
  echo "FAIL: $*" >&2
  if [ -n "${job:-}" ]; then
    echo "---- scontrol show job $job" >&2
    scontrol show job "$job" >&2 2>&1 || true
    echo "---- $outfile" >&2
    cat "$outfile" >&2 2>/dev/null || true
  fi
  echo "---- slurmctld/slurmd logs (tail)" >&2
  tail -n 15 "${VAE_SLURM_DIR:-/var/spool/vae-slurm}/log/slurmctld.log" \
    "${VAE_SLURM_DIR:-/var/spool/vae-slurm}/log/slurmd.log" >&2 2>/dev/null || true
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "the local SLURM cluster needs root (SlurmUser=root)"
[ -n "${VAE_MPI:-}" ] && [ -x "$VAE_MPI" ] || fail "set VAE_MPI to the vae_mpi binary (ctest sets it)"
VAE_MPI=$(cd "$(dirname "$VAE_MPI")" && pwd)/$(basename "$VAE_MPI")
export VAE_MPI

work=$(mktemp -d /tmp/vae-test-slurm.XXXXXX)
job=""
outfile=""
started_cluster=0
cleanup() {
  local rc=$?
  [ -n "$job" ] && scancel "$job" 2>/dev/null || true
  [ $started_cluster -eq 1 ] && "$cluster" stop >/dev/null 2>&1 || true
  [ $rc -eq 0 ] && rm -rf "$work"
  [ $rc -eq 0 ] || echo "test_slurm: files kept in $work" >&2
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every half second; fails with WHAT after SECONDS.
wait_for() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}

# job_field NAME: the value of NAME=... in `scontrol show job $job` (empty when the job is gone).
job_field() { scontrol show job "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
job_state_is() { [ "$(job_field JobState)" = "$1" ]; }
has_step_record() { grep -q '"type":"step"' "$1/metrics.jsonl" 2>/dev/null; }
output_has() { grep -a -q -- "$1" "$outfile" 2>/dev/null; }
# No step daemon of $job on this cluster's node (in this network namespace: the namespace clusters of
# scripts/cluster number their jobs from 1 too).
no_stepd_of_job() {
  local p
  for p in $(pgrep -f "^slurmstepd: \[$job\." || true); do
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ] && return 1
  done
  return 0
}
job_finished() {
  case "$(job_field JobState)" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | "") return 0 ;; esac
  return 1
}

# ---- the cluster ----
if ! "$cluster" status >/dev/null 2>&1; then
  started_cluster=1
  "$cluster" start || fail "the local SLURM cluster did not start"
fi
eval "$("$cluster" env)"

# ---- data: random images, 4000 for training and 1000 for the test ELBO ----
"$py" - "$work/data.h5" <<'EOF' || fail "could not write the test data with h5py"
import sys, h5py, numpy as np
rng = np.random.default_rng(7)
with h5py.File(sys.argv[1], "w") as f:
    f["train/images"] = rng.integers(0, 256, size=(4000, 28, 28), dtype=np.uint8)
    f["test/images"] = rng.integers(0, 256, size=(1000, 28, 28), dtype=np.uint8)
EOF

# scenario NAME LAUNCHER SIGNAL EPOCHS: one submission of train.sbatch, preempted with SIGNAL sent to its batch
# shell, requeued, released, resumed to completion. Sets job/outfile for fail().
scenario() {
  local name=$1 launcher=$2 sig=$3 epochs=$4
  local out=$work/$name/out
  mkdir -p "$work/$name"
  cd "$work/$name" # SLURM_SUBMIT_DIR: the job's output file vae_mpi-JOB.out lands here
  echo "== test_slurm: $name: VAE_LAUNCHER=$launcher, preempted with SIG$sig"
  job=$(VAE_LAUNCHER=$launcher sbatch --parsable --ntasks 2 "$job_script" --data "$work/data.h5" --out "$out" \
    --epochs "$epochs" --batch-size 25 --hidden 1024 --latent 16 --checkpoint-every 40 --log-every 1 \
    --no-images --threads 1) || fail "sbatch failed"
  job=${job%%;*}
  outfile=$work/$name/vae_mpi-$job.out
  echo "test_slurm: submitted job $job ($epochs epochs, 2 tasks); output $outfile"

  wait_for 60 "job $job to be RUNNING" job_state_is RUNNING
  wait_for 120 "a step record in $out/metrics.jsonl" has_step_record "$out"
  job_state_is RUNNING || fail "job $job finished before it could be signalled; raise VAE_SLURM_TEST_EPOCHS"

  # ---- preempt: the signal to the batch shell only, as --signal=B:USR1@120 does before a time limit ----
  scancel --signal="$sig" --batch "$job" || fail "scancel --signal=$sig --batch $job failed"
  echo "test_slurm: sent SIG$sig to the batch shell of job $job"
  wait_for 120 "the preemption line in $outfile" output_has "requeued job $job"
  wait_for 60 "job $job to be PENDING after its requeue" job_state_is PENDING

  local stop_line stop_step ck_step restarts begin begin_s state exit_code resume_line resume_step
  stop_line=$(grep -a -m1 'stopped by a signal at step' "$outfile") || fail "no 'stopped by a signal' line from the trainer"
  stop_step=$(echo "$stop_line" | sed -n 's/.*stopped by a signal at step \([0-9]*\).*/\1/p')
  [ -n "$stop_step" ] && [ "$stop_step" -gt 0 ] || fail "cannot read the stop step from: $stop_line"
  ck_step=$("$py" -c 'import sys, h5py; print(int(h5py.File(sys.argv[1], "r").attrs["step"]))' "$out/checkpoint.h5") ||
    fail "cannot read the step attribute of $out/checkpoint.h5"
  [ "$ck_step" -eq "$stop_step" ] || fail "checkpoint.h5 has step $ck_step, the ranks stopped at step $stop_step"
  echo "test_slurm: checkpoint.h5 written at step $ck_step"

  restarts=$(job_field Restarts)
  [ "$restarts" = 1 ] || fail "job $job has Restarts=$restarts after its requeue, expected 1"
  begin=$(job_field StartTime)
  begin_s=$(date -d "$begin" +%s 2>/dev/null) || fail "cannot read the requeued job's StartTime '$begin'"
  [ "$begin_s" -gt "$(date +%s)" ] || fail "the requeued job's begin time $begin is not in the future"
  echo "test_slurm: job $job requeued (Restarts=1, PENDING until $begin); releasing it now"

  # ---- resume ----
  # SLURM holds the requeued job (its begin time) while the node cleans up after the first run. Released
  # before the first run's step daemons are gone, the new step can find the old one's PMIx socket in the
  # spool folder ("Cannot bind() UNIX socket .../stepd.slurm.pmix.J.0: Address already in use"); released
  # within the second of the requeue's kill, slurmd takes the new credential for one it revoked ("Job J
  # already killed, do not launch batch job": revocations are kept to the second).
  wait_for 60 "the step daemons of job $job's first run to end" no_stepd_of_job
  sleep 2
  scontrol update JobId="$job" StartTime=now || fail "scontrol update JobId=$job StartTime=now failed"
  wait_for 90 "the requeued job $job to start" output_has "(restart 1)"
  wait_for 600 "job $job to finish" job_finished
  state=$(job_field JobState)
  exit_code=$(job_field ExitCode)
  [ "$state" = COMPLETED ] || fail "job $job ended $state (ExitCode=$exit_code), expected COMPLETED"
  [ "$exit_code" = 0:0 ] || fail "job $job ended with ExitCode=$exit_code, expected 0:0"
  [ "$(job_field Restarts)" = 1 ] || fail "job $job has Restarts=$(job_field Restarts), expected 1"

  resume_line=$(grep -a -m1 '^resume: .* at epoch [0-9]*, step [0-9]*' "$outfile") ||
    fail "the requeued job printed no 'resume: ... at epoch E, step S' line"
  resume_step=$(echo "$resume_line" | sed -n 's/.* at epoch [0-9]*, step \([0-9]*\).*/\1/p')
  [ "$resume_step" -eq "$stop_step" ] || fail "resumed at step $resume_step, the checkpoint was at step $stop_step ($resume_line)"
  output_has "training complete" || fail "no 'training complete' line in $outfile"

  # metrics.jsonl: the last epoch record is the requested epoch; every step and epoch appears exactly once
  # (the resumed run drops records past its checkpoint and continues): a requeue neither loses nor repeats work.
  "$py" - "$out/metrics.jsonl" "$epochs" "$stop_step" <<'EOF' || fail "metrics.jsonl does not show one complete training"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
epochs, stop = int(sys.argv[2]), int(sys.argv[3])
ep = [r for r in recs if r.get("type") == "epoch"]
st = [r["step"] for r in recs if r.get("type") == "step"]
assert ep, "no epoch records"
assert ep[-1]["epoch"] == epochs, f"last epoch record is epoch {ep[-1]['epoch']}, expected {epochs}"
assert [r["epoch"] for r in ep] == list(range(1, epochs + 1)), f"epoch records {[r['epoch'] for r in ep]}"
assert st == list(range(1, len(st) + 1)), "step records are not 1..N once each (a gap or a repeat at the resume)"
assert st[-1] == ep[-1]["step"], f"last step record {st[-1]} != last epoch's step {ep[-1]['step']}"
assert stop < st[-1], f"stopped at step {stop}, but the training has only {st[-1]} steps"
print(f"test_slurm: metrics.jsonl: epochs 1..{epochs} once each, steps 1..{st[-1]} once each (stopped at {stop})")
EOF

  echo "---- $outfile (without progress lines and Open MPI's notes)"
  tr '\r' '\n' <"$outfile" | sed 's/\x1b\[K//g' | grep -a -E '^(vae_mpi|resume|epoch +[0-9]+ +step|slurmstepd|srun)' || true
  echo "PASS: $name: job $job checkpointed on SIG$sig at step $stop_step, requeued itself, resumed at step $resume_step and completed $epochs epochs"
  job=""
}

export VAE_OVERSUBSCRIBE=1
# What SLURM does before a time limit (--signal=B:USR1@120); the ranks launched by mpirun.
scenario mpirun-usr1 mpirun USR1 "$EPOCHS"
# What `scancel --signal=TERM --batch` (or a scheduler signalling the batch shell) does; ranks from srun --mpi=pmix.
scenario srun-term srun TERM 4
echo "PASS: test_slurm"
