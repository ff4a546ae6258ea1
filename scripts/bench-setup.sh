# bench-setup.sh: what bench.sh and bench-conv.sh both need before they measure, sourced by them after
# their options:   bench_setup NAME PROGRAM...
# checks that the build has the PROGRAMs (names under $build) and that $data exists (saying how to make
# them), sets $py (Debian's python3, with torch and h5py) and the mpirun array (--oversubscribe, and
# --allow-run-as-root as root), makes $tmp (removed at exit) and changes to $root.
#   bench_layout NP   NP is a rank count or RxT (R ranks of T worker threads): sets the array how (mpirun's
# -np, with --bind-to none for threads, so that a rank's workers are not bound to one core) and threads
# (T, empty for a plain rank count).
#   bench_round R ... bench_round_end R   one round: the first prints "round R/$repeats (load: ...)" on
# stderr and points $res at the round's JSON lines (a {"what":"load","load1":...} line first); the second
# appends them to $all ($tmp/results.jsonl), each tagged {"round":R,...}, which scripts/bench_rounds.py
# reads, and copies $all to $results when that is set (--results FILE).
bench_setup() {
  local name=$1 p
  shift
  py=/usr/bin/python3
  for p in "$@"; do
    [ -x "$build/$p" ] || { echo "$name: $build/$p missing: run scripts/build.sh ${build#$root/}" >&2; exit 1; }
  done
  [ -f "$data" ] || { echo "$name: $data missing: run VAE_MPI=$build/vae_mpi scripts/get-fashion-mnist.sh" >&2; exit 1; }
  mpirun=(mpirun --oversubscribe)
  [ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
  tmp=$(mktemp -d "/tmp/vae_${name%.sh}.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cd "$root"
}

bench_layout() {
  case "$1" in
    *x*) how=(--bind-to none -np "${1%x*}") threads=${1#*x} ;;
    *) how=(-np "$1") threads="" ;;
  esac
}

bench_round() {
  echo "round $1/$repeats (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  res=$tmp/round.jsonl
  echo "{\"what\":\"load\",\"load1\":$(cut -d' ' -f1 /proc/loadavg)}" >"$res"
}

bench_round_end() {
  all=$tmp/results.jsonl
  sed "s/^{/{\"round\":$1,/" "$res" >>"$all"
  if [ -n "${results:-}" ]; then cp "$all" "$results"; fi
}
