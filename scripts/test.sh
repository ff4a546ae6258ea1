#!/usr/bin/env bash
# The test command: installs what is missing, builds (Release and ASan+UBSan), runs every test.
#   scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

scripts/install-deps.sh --slurm

echo "== Source layout (.clang-format)"
scripts/check-format.sh

# As many tests at a time as cores: the tests wait more than they compute (mpirun's teardown after an
# error, signals, fsync, timeouts). On 2 cores the ASan pass took 628 s at -j 2, 836 s serially.
jobs=$(nproc)

echo "== Release build and all tests"
scripts/build.sh build
(cd build && ctest --output-on-failure --timeout 600 -j "$jobs")

echo "== ASan + UBSan build: every test but the SLURM and cluster ones (unit, MPI, and the scripts driving the binary)"
scripts/build.sh build-asan -DVAE_SANITIZE=ON
# Full unwinding: Open MPI and OpenBLAS lack frame pointers, and suppressions match on whole stacks.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --output-on-failure --timeout 900 -E slurm -LE cluster -j "$jobs")

echo "== ASan + UBSan build: the hostfile cluster test, without LeakSanitizer"
# LeakSanitizer's exit-time tracer crashed ("Tracer caught signal 11") in 2-ranks-a-node processes
# launched into a node's network namespace (CI, 2026-12-01); address and UB checks stay on.
# test_cluster_failures (SLURM nodes that die or lose their link: launcher and network behaviour) runs
# in the Release pass only: its C part, the watchdog, is test_watchdog's, which runs above (CI time).
(cd build-asan && ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" \
  ctest --output-on-failure --timeout 900 -E 'slurm|test_cluster_failures' -L cluster)
