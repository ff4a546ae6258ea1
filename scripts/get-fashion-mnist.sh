#!/usr/bin/env bash
# Builds the Fashion-MNIST HDF5 file vae_mpi trains on, from Debian's dataset-fashion-mnist package:
#   scripts/get-fashion-mnist.sh [OUT.h5]        (default: datasets/fashion-mnist.h5 in the repo)
# /train: 60,000 images, /test: 10,000 images, each (N, 28, 28, 1) uint8 with labels (N,).
# Installs the package with apt-get if /usr/share/datasets/fashion-mnist is missing (root or sudo),
# uses the vae_mpi binary from $VAE_MPI or build/vae_mpi, writes a temporary file and renames it into
# place, and does nothing when OUT already holds both groups with the right counts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/datasets/fashion-mnist.h5}
src=/usr/share/datasets/fashion-mnist
say() { echo "get-fashion-mnist: $*"; }
die() { echo "get-fashion-mnist: error: $*" >&2; exit 1; }

# N of dataset PATH in FILE according to h5ls ("images  Dataset {60000, 28, 28, 1}"), or empty.
count() { h5ls "$1/$2" 2>/dev/null | sed -n 's/.*Dataset {\([0-9]*\)[,}].*/\1/p'; }
complete() {
  [ -f "$1" ] || return 1
  [ "$(count "$1" train/images)" = 60000 ] && [ "$(count "$1" train/labels)" = 60000 ] &&
    [ "$(count "$1" test/images)" = 10000 ] && [ "$(count "$1" test/labels)" = 10000 ]
}

command -v h5ls >/dev/null || die "h5ls not found; install hdf5-tools (scripts/install-deps.sh)"
if complete "$out"; then
  say "$out already holds train (60000) and test (10000); nothing to do"
  exit 0
fi
[ ! -e "$out" ] || die "$out exists but does not hold train (60000) and test (10000); remove it and rerun"

if [ ! -d "$src" ]; then
  say "installing dataset-fashion-mnist (Debian package) into $src"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null
  [ -d "$src" ] || die "dataset-fashion-mnist installed but $src is missing"
fi

bin=${VAE_MPI:-$root/build/vae_mpi}
[ -x "$bin" ] || die "vae_mpi binary not found at $bin; build it (scripts/build.sh) or set VAE_MPI"

mkdir -p "$(dirname "$out")"
tmp="$out.tmp-$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s.%N)
for split in train:train test:t10k; do
  group=${split%%:*}
  prefix=${split#*:}
  "$bin" import-idx --images "$src/$prefix-images-idx3-ubyte.gz" \
    --labels "$src/$prefix-labels-idx1-ubyte.gz" --out "$tmp" --group "$group"
done
complete "$tmp" || die "the imported file $tmp does not hold the expected counts"
mv -f "$tmp" "$out"
trap - EXIT
end=$(date +%s.%N)
say "wrote $out ($(du -h "$out" | cut -f1), train 60000 + test 10000 images) in $(
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
