#!/usr/bin/env bash
# Builds a real colour dataset from npm's emoji-datasource-twitter package (Twemoji, graphics under
# CC-BY 4.0, by Twitter, Inc. and other contributors): every 64x64 RGBA PNG of the package, skin-tone
# variants included, arranged into one class folder per emoji category of the package's own
# emoji.json, then imported with `vae_mpi import-images` (alpha over white, RGB, 10% of each class
# in /test):
#   scripts/get-emoji.sh [OUT.h5]        (default: datasets/emoji.h5 in the repo)
# /train: 3,403 images, /test: 378 images, each (N, 64, 64, 3) uint8, 9 classes. The 5 images of the
# category "Component" (skin-tone swatches and hair parts, not emoji) are left out.
# Needs npm (scripts/install-deps.sh), python3, and the vae_mpi binary from $VAE_MPI or
# build/vae_mpi; works in a temporary folder, writes OUT through a temporary name, does nothing when
# OUT already holds both groups with the right counts. EMOJI_KEEP=DIR keeps the class folders there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/datasets/emoji.h5}
pkg=emoji-datasource-twitter@16.0.0 # pinned: the counts below are this version's
n_train=3403
n_test=378
say() { echo "get-emoji: $*"; }
die() { echo "get-emoji: error: $*" >&2; exit 1; }

count() { h5ls "$1/$2" 2>/dev/null | sed -n 's/.*Dataset {\([0-9]*\)[,}].*/\1/p'; }
complete() {
  [ -f "$1" ] && [ "$(count "$1" train/images)" = "$n_train" ] && [ "$(count "$1" test/images)" = "$n_test" ]
}

command -v h5ls >/dev/null || die "h5ls not found; install hdf5-tools (scripts/install-deps.sh)"
if complete "$out"; then
  say "$out already holds train ($n_train) and test ($n_test); nothing to do"
  exit 0
fi
[ ! -e "$out" ] || die "$out exists but does not hold train ($n_train) and test ($n_test); remove it and rerun"
command -v npm >/dev/null || die "npm not found; install it (scripts/install-deps.sh installs nodejs and npm)"
bin=${VAE_MPI:-$root/build/vae_mpi}
[ -x "$bin" ] || die "vae_mpi binary not found at $bin; build it (scripts/build.sh) or set VAE_MPI"

work=$(mktemp -d "${TMPDIR:-/tmp}/get-emoji.XXXXXX")
tmp="$out.tmp-$$"
trap 'rm -rf "$work" "$tmp"' EXIT
start=$(date +%s.%N)
say "fetching $pkg from the npm registry"
(cd "$work" && npm pack --silent "$pkg" >/dev/null) || die "npm pack $pkg failed (is the npm registry reachable?)"
tar -xzf "$work"/emoji-datasource-twitter-*.tgz -C "$work" package/emoji.json package/LICENSE package/img/twitter/64

# One folder per category; each image once (an emoji's own image and its skin-tone variants).
/usr/bin/python3 - "$work" <<'EOF'
import json, os, shutil, sys
work = sys.argv[1]
src = os.path.join(work, "package", "img", "twitter", "64")
dst = os.path.join(work, "classes")
n = 0
for e in json.load(open(os.path.join(work, "package", "emoji.json"))):
    if e["category"] == "Component":
        continue
    images = [e] + list((e.get("skin_variations") or {}).values())
    for v in images:
        if not v.get("has_img_twitter"):
            continue
        d = os.path.join(dst, e["category"])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(src, v["image"]), os.path.join(d, v["image"]))
        n += 1
print(f"get-emoji: {n} images in {len(os.listdir(dst))} category folders")
EOF

mkdir -p "$(dirname "$out")"
"$bin" import-images --dir "$work/classes" --out "$tmp" --test-fraction 0.1 --seed 1 --background white
complete "$tmp" || die "the imported file $tmp does not hold train ($n_train) and test ($n_test)"
mv -f "$tmp" "$out"
if [ -n "${EMOJI_KEEP:-}" ]; then
  rm -rf "$EMOJI_KEEP" && mv "$work/classes" "$EMOJI_KEEP" && say "class folders kept in $EMOJI_KEEP"
fi
end=$(date +%s.%N)
say "wrote $out ($(du -h "$out" | cut -f1), train $n_train + test $n_test images, 64x64 RGB) in $(
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
