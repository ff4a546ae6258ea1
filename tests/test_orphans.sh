#!/usr/bin/env bash
# Runaway ranks (issue 8): SIGKILL mpirun alone in the middle of a real training run; within a few
# seconds no rank of that job may be alive (PR_SET_PDEATHSIG in dist.c), the --out lock it held must
# not block the next job, and `--resume auto` must then finish the run from its last checkpoint.
# Ranks are found by the job's unique --out path in their command line.
set -uo pipefail
VAE_MPI=${VAE_MPI:-build/vae_mpi}
PY=${VAE_PY:-/usr/bin/python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d /tmp/vae_orphans_XXXXXX)
out="$tmp/orphan_out_$$_$RANDOM"
pass=0 fail=0
check() { # check CONDITION-STATUS MESSAGE
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi
}
mpirun_pid=""
cleanup() { [ -n "$mpirun_pid" ] && kill -KILL "$mpirun_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$PY" - "$tmp/d.h5" <<'PYEOF'
import sys
sys.path.insert(0, __import__("os").environ.get("VAE_SOURCE_DIR", ".") + "/tests")
from vaetest import write_images
write_images(sys.argv[1], {"train/images": 1024})
PYEOF
check $? "writing the data"

args=(train --data "$tmp/d.h5" --out "$out" --hidden 64 --latent 4 --batch-size 16 --no-images --threads 1)
# Thousands of epochs: far more than the ~30 s this job may live.
mpirun -q -np 2 "$VAE_MPI" "${args[@]}" --epochs 5000 >"$tmp/run1.log" 2>&1 &
mpirun_pid=$!
for _ in $(seq 1 600); do  # up to 60 s for the first epoch under load
  [ -s "$out/metrics.jsonl" ] && break
  sleep 0.1
done
check $([ -s "$out/metrics.jsonl" ]; echo $?) "no metrics after 60 s: $(tail -3 "$tmp/run1.log")"
ranks=$(pgrep -f -- "$out" | grep -vx "$mpirun_pid" | wc -l)
check $([ "$ranks" -eq 2 ]; echo $?) "expected 2 ranks running before the kill, found $ranks"

kill -KILL "$mpirun_pid"
wait "$mpirun_pid" 2>/dev/null
left=1
for _ in $(seq 1 50); do  # 5 s
  if ! pgrep -f -- "$out" >/dev/null; then left=0; break; fi
  sleep 0.1
done
check $left "ranks still alive 5 s after mpirun was killed: $(pgrep -af -- "$out")"

# The killed job's lock is gone with it: resume two more epochs from its last checkpoint.
epoch=$("$PY" -c "import h5py,sys; print(int(h5py.File(sys.argv[1],'r').attrs['epoch']))" "$out/checkpoint.h5")
check $? "the last checkpoint does not load"
target=$((epoch + 2))
mpirun -q -np 2 "$VAE_MPI" "${args[@]}" --epochs "$target" --resume auto >"$tmp/run2.log" 2>&1
check $? "resume after the kill failed: $(tail -3 "$tmp/run2.log")"
grep -q "resume: .* at epoch $epoch" "$tmp/run2.log"
check $? "the resumed run did not start from epoch $epoch: $(head -3 "$tmp/run2.log")"
"$PY" - "$out" "$target" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
ep = [r["epoch"] for r in recs if r.get("type") == "epoch"]
sys.exit(0 if ep == list(range(1, int(sys.argv[2]) + 1)) else 1)
PYEOF
check $? "metrics.jsonl epochs are not exactly 1..$target after the resume"
echo "test_orphans: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
