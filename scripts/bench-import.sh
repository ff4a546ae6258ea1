#!/usr/bin/env bash
# Benchmark of `vae_mpi import-images`: a generated folder of N 64x64 RGBA PNGs in 10 class folders
# (coloured discs and stripes on transparent backgrounds, written by Pillow with its default
# compression, about 1-2 KB each) imported with every core and with one thread, in one run:
#   scripts/bench-import.sh [N]        (default 100000; needs ~0.3 GB under $TMPDIR or /tmp)
# Prints import-images' own lines (files/s), the CPU seconds each run used (files per CPU second
# depends little on what else runs), the ratio of the two runs, the machine load before and after
# (`uptime`: wall-clock figures taken while other work runs are noisy), and removes all it made.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-100000}
bin=${VAE_MPI:-$root/build/vae_mpi}
[ -x "$bin" ] || { echo "bench-import: build vae_mpi first (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-import.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bench-import: writing $n PNGs (64x64 RGBA) into $work/images"
/usr/bin/python3 - "$work/images" "$n" <<'EOF'
import os, sys
from multiprocessing import Pool
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
y, x = np.mgrid[0:64, 0:64]

def write(lo_hi):
    lo, hi = lo_hi
    rng = np.random.default_rng(lo)
    for i in range(lo, hi):
        cx, cy, r = rng.uniform(12, 52, 2).tolist() + [rng.uniform(8, 24)]
        img = np.zeros((64, 64, 4), np.uint8)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[disc, :3] = rng.integers(0, 256, 3)
        img[disc, 3] = 255
        stripe = ((x + y + i) // 6) % 4 == 0
        img[stripe & ~disc] = list(rng.integers(0, 256, 3)) + [128]
        d = os.path.join(root, f"class{i % 10}")
        Image.fromarray(img, "RGBA").save(os.path.join(d, f"{i:07d}.png"))

for c in range(10):
    os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
step = 2000
with Pool(os.cpu_count()) as p:
    p.map(write, [(lo, min(lo + step, n)) for lo in range(0, n, step)])
EOF
echo "bench-import: folder $(du -sh "$work/images" | cut -f1); load before: $(uptime | sed 's/.*load average: //')"
sync
# Once untimed to warm the page cache (both timed runs then read from memory), then all cores, then one.
"$bin" import-images --dir "$work/images" --out "$work/warm.h5" >/dev/null
rm -f "$work/warm.h5"
# cpu CMD...: runs CMD, prints its last stdout line and the CPU seconds (user + sys) it used.
cpu() {
  local t0 t1 line me=$BASHPID
  t0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$me/stat)
  line=$("$@" | tail -1)
  t1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$me/stat)
  awk -v l="$line" -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v n="$n" \
    'BEGIN { c = (b - a) / hz; printf "%s; CPU %.1f s (%.0f files per CPU second)\n", l, c, n / c }'
}
all=$(cpu "$bin" import-images --dir "$work/images" --out "$work/all.h5")
echo "bench-import: all cores: $all"
one=$(cpu "$bin" import-images --dir "$work/images" --out "$work/one.h5" --threads 1)
echo "bench-import: 1 thread:  $one"
/usr/bin/python3 -c '
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
sys.exit(not all(np.array_equal(a[k][...], b[k][...]) for k in ("train/images", "train/labels")))' \
  "$work/all.h5" "$work/one.h5" || echo "bench-import: warning: the two imports differ" >&2
rate() { sed -n 's/.*s: \([0-9]*\) files\/s.*/\1/p' <<<"$1"; }
awk -v a="$(rate "$all")" -v b="$(rate "$one")" 'BEGIN { printf "bench-import: speed-up all cores / 1 thread: %.2fx\n", a / b }'
echo "bench-import: output $(du -h "$work/all.h5" | cut -f1); load after: $(uptime | sed 's/.*load average: //')"
