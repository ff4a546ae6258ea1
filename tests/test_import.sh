#!/usr/bin/env bash
# test_import.sh: `vae_mpi import-idx` end to end. Writes small IDX files with numpy, imports them,
# reads the HDF5 back with h5py and checks dtype, shape, chunking, filters, attributes and every byte;
# then appending, refusing, overwriting, corrupt and missing inputs, usage errors (exit 1), and (when Debian's
# dataset-fashion-mnist is installed) the real t10k files.
# Env (set by CTest): VAE_MPI (binary), VAE_PY (Debian's python3 with numpy + h5py).
set -u
: "${VAE_MPI:?set VAE_MPI to the vae_mpi binary}"
PY=${VAE_PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_import.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
checks=0
failed=0
ok() { # ok DESCRIPTION COMMAND...: runs the command, counts a check, reports a failure
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    failed=$((failed + 1))
    echo "FAIL: $what" >&2
  fi
}
# run: runs vae_mpi import-idx with the given args, keeping status, stdout and stderr.
run() {
  "$VAE_MPI" import-idx "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
  status=$?
}
one_error_line() { # stderr is exactly one line, starting with vae_mpi: error:, no HDF5 stack
  [ "$(wc -l <"$tmp/err.txt")" -eq 1 ] && grep -q '^vae_mpi: error: ' "$tmp/err.txt" &&
    ! grep -q 'HDF5-DIAG\|#000' "$tmp/err.txt"
}
err_has() { grep -qF -- "$1" "$tmp/err.txt"; }
sum() { md5sum "$1" | cut -d' ' -f1; }

# ---- inputs: seeded random bytes, written by numpy (IDX: 00 00 08 ndim, big-endian dims, data) ----
"$PY" - "$tmp" <<'EOF' || { echo "FAIL: writing the IDX inputs" >&2; exit 1; }
import gzip, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
def idx(a):
    return bytes([0, 0, 8, a.ndim]) + np.array(a.shape, dtype=">u4").tobytes() + a.tobytes()
def save(name, a, gz=False, cut=0, extra=b""):
    data = idx(a)
    data = (data[:-cut] if cut else data) + extra
    with (gzip.open if gz else open)(f"{d}/{name}", "wb") as f:
        f.write(data)
    np.save(f"{d}/{name}.npy", a)
save("a-img", rng.integers(0, 256, (7, 5, 4), dtype=np.uint8))
save("a-lab.gz", rng.integers(0, 10, 7, dtype=np.uint8), gz=True)
save("a2-img.gz", rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), gz=True)
save("b-img.gz", rng.integers(0, 256, (3, 2, 2, 3), dtype=np.uint8), gz=True)
save("b-lab", rng.integers(0, 10, 3, dtype=np.uint8))
save("cut-img.gz", rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), gz=True, cut=1)
save("trail-img", rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), extra=b"\0\0\0")
save("lab6", rng.integers(0, 10, 6, dtype=np.uint8))
with open(f"{d}/float-img", "wb") as f:  # type 0x0D float32
    f.write(bytes([0, 0, 0x0D, 3]) + np.array([1, 2, 2], ">u4").tobytes() + b"\0" * 16)
with open(f"{d}/a-lab.gz", "rb") as f:
    assert f.read(2) == b"\x1f\x8b"
EOF

# check.py OUT GROUP IMG LAB [CHUNK]: the group holds exactly the numpy arrays, in our layout.
cat >"$tmp/check.py" <<'EOF'
import sys
import h5py
import numpy as np
out, group, img, lab = sys.argv[1:5]
chunk = int(sys.argv[5]) if len(sys.argv) > 5 else None
want = np.load(img + ".npy")
if want.ndim == 3:
    want = want[..., None]
labels = np.load(lab + ".npy")
bad = []
with h5py.File(out, "r") as f:
    if f.attrs.get("created_by") != "vae_mpi import-idx":
        bad.append(f"root created_by = {f.attrs.get('created_by')!r}")
    x, y = f[group]["images"], f[group]["labels"]
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        bad.append(f"dtypes {x.dtype} {y.dtype}")
    if x.shape != want.shape or y.shape != labels.shape:
        bad.append(f"shapes {x.shape} {y.shape}, want {want.shape} {labels.shape}")
    if chunk is not None:
        c = (min(chunk, want.shape[0]),) + want.shape[1:]
        if x.chunks != c:
            bad.append(f"chunks {x.chunks}, want {c}")
        if x.compression != "gzip" or x.compression_opts != 4 or not x.shuffle:
            bad.append(f"filters {x.compression} {x.compression_opts} shuffle={x.shuffle}")
    if x.attrs.get("source") != img or x.attrs.get("format") != "idx":
        bad.append(f"images attrs {dict(x.attrs)}")
    if y.attrs.get("source") != lab or y.attrs.get("format") != "idx":
        bad.append(f"labels attrs {dict(y.attrs)}")
    if x.shape == want.shape and not np.array_equal(x[...], want):
        bad.append(f"{int((x[...] != want).sum())} image bytes differ")
    if y.shape == labels.shape and not np.array_equal(y[...], labels):
        bad.append("label bytes differ")
for b in bad:
    print(f"{out}:/{group}: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
check() { "$PY" "$tmp/check.py" "$@"; }

h5=$tmp/data.h5
A="--images $tmp/a-img --labels $tmp/a-lab.gz"

# ---- a new file: 3-d plain images + gzipped labels, chunk 4 ----
run $A --out "$h5" --group alpha --chunk 4
ok "import into a new file exits 0 (status $status: $(cat "$tmp/err.txt"))" [ "$status" -eq 0 ]
ok "nothing on stderr" [ ! -s "$tmp/err.txt" ]
ok "stdout says what was written" grep -qF "/alpha/images uint8 (7, 5, 4, 1)" "$tmp/out.txt"
ok "alpha: dtype, shape, chunks, gzip 4 + shuffle, attributes, every byte" \
  check "$h5" alpha "$tmp/a-img" "$tmp/a-lab.gz" 4
ok "no temporary file left" [ -z "$(ls -A "$tmp" | grep 'tmp-')" ]

# ---- append a 4-d group; the first group is unchanged ----
run --images "$tmp/b-img.gz" --labels "$tmp/b-lab" --out "$h5" --group beta
ok "append exits 0 ($(cat "$tmp/err.txt"))" [ "$status" -eq 0 ]
ok "beta: 4-d images (3, 2, 2, 3), default chunk" check "$h5" beta "$tmp/b-img.gz" "$tmp/b-lab" 1024
ok "alpha unchanged after the append" check "$h5" alpha "$tmp/a-img" "$tmp/a-lab.gz" 4
ok "no temporary file left after the append (the copy was renamed)" [ -z "$(ls -A "$tmp" | grep 'tmp-')" ]

# ---- an existing group is refused without --overwrite; the file is untouched ----
before=$(sum "$h5")
run --images "$tmp/a2-img.gz" --labels "$tmp/a-lab.gz" --out "$h5" --group alpha
ok "existing group: exit 1 (got $status)" [ "$status" -eq 1 ]
ok "existing group: one error line" one_error_line
ok "existing group: message names it and the fix" err_has "/alpha/images already exists; pass --overwrite"
ok "existing group: file unchanged" [ "$(sum "$h5")" = "$before" ]

# ---- --overwrite replaces it; the other group stays ----
run --images "$tmp/a2-img.gz" --labels "$tmp/a-lab.gz" --out "$h5" --group alpha --overwrite --chunk 2
ok "overwrite exits 0 ($(cat "$tmp/err.txt"))" [ "$status" -eq 0 ]
ok "alpha now holds the new images" check "$h5" alpha "$tmp/a2-img.gz" "$tmp/a-lab.gz" 2
ok "beta unchanged after the overwrite" check "$h5" beta "$tmp/b-img.gz" "$tmp/b-lab" 1024

# ---- bad inputs: exit 1, one line, no HDF5 stack, output byte-identical ----
before=$(sum "$h5")
bad_input() { # bad_input NEEDLE ARGS...: refused with NEEDLE in the message, file untouched
  local needle=$1
  shift
  run "$@" --out "$h5" --group gamma
  ok "$needle: exit 1 (got $status)" [ "$status" -eq 1 ]
  ok "$needle: one error line, no HDF5 stack ($(cat "$tmp/err.txt"))" one_error_line
  ok "$needle: message" err_has "$needle"
  ok "$needle: output unchanged" [ "$(sum "$h5")" = "$before" ]
}
bad_input "cut-img.gz: truncated IDX data" --images "$tmp/cut-img.gz" --labels "$tmp/a-lab.gz"
bad_input "3 trailing bytes" --images "$tmp/trail-img" --labels "$tmp/a-lab.gz"
bad_input "0x0d (float32) is not supported" --images "$tmp/float-img" --labels "$tmp/a-lab.gz"
bad_input "has 6 labels but" --images "$tmp/a-img" --labels "$tmp/lab6"
bad_input "labels must be 1-d" --images "$tmp/a-img" --labels "$tmp/a-img"
bad_input "images must be 3-d" --images "$tmp/b-lab" --labels "$tmp/b-lab"
bad_input "not an IDX file: bad magic" --images "$h5" --labels "$tmp/a-lab.gz"
bad_input "cannot open IDX file $tmp/nope.gz: No such file or directory" \
  --images "$tmp/nope.gz" --labels "$tmp/a-lab.gz"
ok "no group gamma was left behind" "$PY" -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r') as f: sys.exit('gamma' in f)" "$h5"

# A failed import into a new file leaves no file and no temporary.
run --images "$tmp/cut-img.gz" --labels "$tmp/a-lab.gz" --out "$tmp/new.h5" --group g
ok "failed new import: exit 1" [ "$status" -eq 1 ]
ok "failed new import: no output, no temporary" [ -z "$(ls -A "$tmp" | grep 'new.h5')" ]
# An existing non-HDF5 --out is refused, not clobbered.
echo "precious" >"$tmp/notes.h5"
run $A --out "$tmp/notes.h5" --group g
ok "non-HDF5 --out: exit 1 and a message" [ "$status" -eq 1 ]
ok "non-HDF5 --out: message" err_has "exists and is not an HDF5 file"
ok "non-HDF5 --out: untouched" [ "$(cat "$tmp/notes.h5")" = "precious" ]

# ---- usage errors: exit 1 (as every other command), one line, nothing written ----
usage_error() { # usage_error NEEDLE ARGS...
  local needle=$1
  shift
  run "$@"
  ok "usage '$*': exit 1 (got $status)" [ "$status" -eq 1 ]
  ok "usage '$*': one error line" one_error_line
  ok "usage '$*': message has '$needle'" err_has "$needle"
}
usage_error "unknown option '--bogus'" $A --out "$h5" --group g --bogus
usage_error "--group needs a value" $A --out "$h5" --group
usage_error "--chunk expects a whole number, got '12x'" $A --out "$h5" --group g --chunk 12x
usage_error "--chunk must be a whole number of images from 1 to 1000000, got 0" $A --out "$h5" --group g --chunk 0
usage_error "import-idx needs --out FILE.h5" $A --group g
usage_error "import-idx needs --images FILE" --labels "$tmp/a-lab.gz" --out "$h5" --group g
usage_error "--group 'a/b' must be one plain name" $A --out "$h5" --group a/b
usage_error "unexpected argument 'stray'" $A --out "$h5" --group g stray
ok "usage errors: no file g and no temporary" [ -z "$(ls -A "$tmp" | grep -e 'tmp-' -e '^g$')" ]
run --help
ok "--help exits 0" [ "$status" -eq 0 ]
ok "--help prints the usage" grep -q "^usage: vae_mpi import-idx --images FILE" "$tmp/out.txt"

# ---- the real Fashion-MNIST test split, when installed ----
fm=/usr/share/datasets/fashion-mnist
if [ -r "$fm/t10k-images-idx3-ubyte.gz" ]; then
  run --images "$fm/t10k-images-idx3-ubyte.gz" --labels "$fm/t10k-labels-idx1-ubyte.gz" \
    --out "$tmp/fm.h5" --group test
  ok "t10k import exits 0 ($(cat "$tmp/err.txt"))" [ "$status" -eq 0 ]
  ok "t10k: (10000, 28, 28, 1), 1000 labels per class, bytes equal to python's own gzip parse" \
    "$PY" - "$tmp/fm.h5" "$fm" <<'EOF'
import gzip, sys
import h5py
import numpy as np
out, fm = sys.argv[1:3]
with gzip.open(f"{fm}/t10k-images-idx3-ubyte.gz") as f:
    want = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 28, 28, 1)
with h5py.File(out, "r") as f:
    x, y = f["test/images"][...], f["test/labels"][...]
counts = np.bincount(y, minlength=10).tolist()
print(f"t10k: shape {x.shape}, label counts {counts}, mean pixel {x.mean():.4f}")
assert x.shape == (10000, 28, 28, 1), x.shape
assert counts == [1000] * 10, counts
assert np.array_equal(x, want)
assert abs(x.mean() - 73.15) < 0.1, x.mean()  # Fashion-MNIST test set mean pixel is ~73.15 of 255
EOF
  # scripts/get-fashion-mnist.sh: both splits into a fresh file, then a second run that skips.
  full=$tmp/fm-full.h5
  VAE_MPI=$VAE_MPI bash "${VAE_SOURCE_DIR:-$(dirname "$0")/..}/scripts/get-fashion-mnist.sh" "$full" \
    >"$tmp/get.txt" 2>&1
  get_status=$?
  ok "get-fashion-mnist exits 0 ($(tail -1 "$tmp/get.txt"))" [ "$get_status" -eq 0 ]
  ok "get-fashion-mnist: train (60000, 28, 28, 1) and test (10000, 28, 28, 1)" "$PY" -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r') as f:
    shapes = [f[k].shape for k in ('train/images', 'train/labels', 'test/images', 'test/labels')]
sys.exit(shapes != [(60000, 28, 28, 1), (60000,), (10000, 28, 28, 1), (10000,)])" "$full"
  ok "get-fashion-mnist: no temporary left" [ -z "$(ls -A "$tmp" | grep 'fm-full.h5.tmp')" ]
  before=$(sum "$full")
  VAE_MPI=$VAE_MPI bash "${VAE_SOURCE_DIR:-$(dirname "$0")/..}/scripts/get-fashion-mnist.sh" "$full" \
    >"$tmp/get.txt" 2>&1
  ok "get-fashion-mnist second run: skips ($(cat "$tmp/get.txt"))" grep -q "nothing to do" "$tmp/get.txt"
  ok "get-fashion-mnist second run: file unchanged" [ "$(sum "$full")" = "$before" ]
else
  echo "test_import: $fm not installed; skipping the real-data check"
fi

echo "test_import: $checks checks, $failed failed"
[ "$failed" -eq 0 ] && [ "$checks" -gt 0 ]
