#!/usr/bin/env bash
# Installs, from Debian's archive, exactly what vae_mpi's build, tests and data need.
# Skips packages that are already installed; run as root (or with sudo) on Debian 12.
#   scripts/install-deps.sh            build + data + test dependencies
#   scripts/install-deps.sh --slurm    also the one-node SLURM cluster used by the SLURM test
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config     # compiler and build
  clang-format git                     # the layout check of the test command
  openmpi-bin libopenmpi-dev           # MPI
  libhdf5-openmpi-dev hdf5-tools       # parallel HDF5 (the Open MPI build) and h5dump
  libopenblas-dev                      # cblas_sgemm
  libpng-dev zlib1g-dev                # PNG grids, gzip'd IDX files, PNG import
  libjpeg62-turbo-dev                  # JPEG import (libjpeg-turbo)
  dataset-fashion-mnist                # the real data
  python3 python3-numpy python3-h5py   # test files written by h5py
  python3-pil                          # Pillow: the independent image decoder of the import tests
  python3-torch                        # the PyTorch reference (tests and benchmark)
  python3-matplotlib                   # scripts/plot-metrics.py
  procps iproute2 hostname             # pgrep, ss, hostname: used by the tests and the SLURM scripts
)
for arg in "$@"; do
  case "$arg" in
    --slurm) pkgs+=(slurm-wlm munge) ;;
    --fuzz) pkgs+=(clang libclang-rt-dev) ;;
    *) echo "install-deps.sh: unknown option $arg (use --slurm, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# scripts/get-emoji.sh fetches its images with npm: Debian's nodejs + npm unless an npm is on PATH
# already (NodeSource's nodejs ships its own npm and conflicts with Debian's npm package).
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
