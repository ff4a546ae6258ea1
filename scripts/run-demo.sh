#!/usr/bin/env bash
# The run command: installs what is missing, builds, gets Fashion-MNIST and trains a VAE on 2 ranks.
#   scripts/run-demo.sh [extra vae_mpi train options, e.g. --epochs 3]
# Output goes to runs/demo/ (metrics.jsonl, checkpoint.h5, sample and reconstruction PNGs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/install-deps.sh
scripts/build.sh build
VAE_MPI="$root/build/vae_mpi" scripts/get-fashion-mnist.sh datasets/fashion-mnist.h5
np=${VAE_NP:-2}
set -x
mpirun -np "$np" --oversubscribe build/vae_mpi train --data datasets/fashion-mnist.h5 \
  --out runs/demo --resume auto --batch-size $((128 / np)) --epochs 10 "$@"
