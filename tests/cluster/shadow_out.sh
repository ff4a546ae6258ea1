#!/usr/bin/env bash
# shadow_out.sh OUT SHADOWS CMD...: run under mpirun as the program of every rank, to prove that only rank 0
# writes into OUT. Rank 0 runs CMD as it is; every other rank N runs it with SHADOWS/rank-N, a private empty
# folder, mounted over OUT (its own mount namespace), so anything rank N writes into OUT lands in
# SHADOWS/rank-N instead, where the test looks for it. Each rank also records its host name in
# SHADOWS/rank-N.host. The process stays the one mpirun's daemon started (exec all the way down).
set -euo pipefail
out=$1 shadows=$2
shift 2
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:?no rank in the environment}}}
hostname >"$shadows/rank-$rank.host"
[ "$rank" = 0 ] && exec "$@"
mkdir -p "$shadows/rank-$rank"
exec unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
  sh "$shadows/rank-$rank" "$out" "$@"
