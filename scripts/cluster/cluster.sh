#!/usr/bin/env bash
# A cluster of N "nodes" on this machine, for trying and testing vae_mpi across hosts: each node is a Linux
# network namespace with its own address (198.18.0.0/15, the benchmarking range), its own host name and
# /etc/hosts, on a bridge that lives in a namespace of its own; the root namespace gets no address, link or
# route. mpirun reaches the nodes through a launch agent (scripts/cluster/agent.sh) as it would over ssh;
# optionally one slurmd per node and a slurmctld with a private munged (scripts/cluster/slurm.sh).
#
#   cluster.sh up NAME [--nodes N] [--slots K] [--rate RATE] [--slurm] [--owner PID] [--lifetime SECONDS]
#   cluster.sh down NAME                 stop every process of the nodes, remove namespaces and state
#   cluster.sh status NAME               nodes, links, rates, processes (exit 0 when up, 3 when not)
#   cluster.sh run NAME NODE CMD...      run CMD on a node (index 1..N or host name)
#   cluster.sh mpirun NAME ARGS...       mpirun on node 1 with the hostfile, the agent and the MCA settings
#   cluster.sh link NAME NODE up|down    take a node's link down (a partition) or back up
#   cluster.sh rate NAME NODE RATE|off   limit a node's link to RATE (tc tbf, both directions: 100mbit, 1gbit)
#   cluster.sh kill NAME NODE [SIGNAL]   signal every process of a node (default KILL: the node dies)
#   cluster.sh pids NAME [NODE]          the processes running on the nodes
#   cluster.sh env NAME                  export lines: VAE_CLUSTER_DIR, the hostfile, SLURM_CONF
#   cluster.sh list                      the clusters on this machine
#
# NAME: 1-12 lower-case letters and digits, starting with a letter; namespaces are vae-NAME-sw and
# vae-NAME-nodeI, host names NAME-nodeI at 198.18.0.(10+I), state in $VAE_CLUSTER_ROOT/NAME (default
# /tmp/vae-cluster). Every cluster is separate (its own bridge), so several can run at once.
# `up` is idempotent (a cluster already up with the same settings is kept, anything else left by an earlier
# run is removed first), and every wait is bounded. With --owner PID (the test's shell) and/or --lifetime,
# a detached reaper tears the cluster down when PID exits or the lifetime ends: nothing is left behind even
# when its user is killed. Needs root, iproute2 (ip, tc) and util-linux (nsenter, unshare). docs/CLUSTER.md.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${VAE_CLUSTER_ROOT:-/tmp/vae-cluster}
SUBNET=198.18.0.0/24
HOST_BASE=10 # node I is 198.18.0.(HOST_BASE + I)
MAX_NODES=200

say() { echo "cluster: $*" >&2; }
die() {
  echo "cluster: error: $*" >&2
  exit 1
}

# ---- names and state ----

check_name() {
  [[ ${1:-} =~ ^[a-z][a-z0-9]{0,11}$ ]] ||
    die "cluster name '${1:-}' must be 1-12 lower-case letters and digits, starting with a letter"
}
set_cluster() {
  check_name "$1"
  NAME=$1
  DIR=$ROOT/$NAME
  SW=vae-$NAME-sw
}
node_ns() { echo "vae-$NAME-node$1"; }
node_host() { echo "$NAME-node$1"; }
node_addr() { echo "198.18.0.$((HOST_BASE + $1))"; }
is_up() { [ -f "$DIR/config" ] && ip netns list 2>/dev/null | grep -qx "$SW\( (id: [0-9]*)\)\?"; }
need_up() { is_up || die "cluster $NAME is not up (cluster.sh up $NAME ...)"; }
nodes() { head -n 1 "$DIR/config" | tr " " "\n" | sed -n "s/^NODES=//p"; }

# resolve NODE: an index 1..N or a host name; prints the index.
resolve() {
  local n
  n=$(nodes)
  if [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$n" ]; then
    echo "$1"
    return
  fi
  local i
  for i in $(seq 1 "$n"); do
    [ "$1" = "$(node_host "$i")" ] && { echo "$i"; return; }
  done
  die "cluster $NAME has no node '$1' (nodes 1..$n, or $(node_host 1) ...)"
}

# The lock that serialises up/down/rate of one cluster (a second `up` waits for the first).
lock() {
  mkdir -p "$ROOT"
  exec 9>"$ROOT/.$NAME.lock"
  flock -w 120 9 || die "another cluster.sh holds $ROOT/.$NAME.lock for over 120 s"
}

# ---- processes of a node ----

# The pids in node I's network namespace (every process running "on" that node).
ns_pids() { ip netns pids "$1" 2>/dev/null || true; }

# Signals every process of the namespaces given, TERM first, then KILL after up to $2 seconds.
stop_ns_processes() {
  local grace=$1 ns pids deadline
  shift
  for ns in "$@"; do
    pids=$(ns_pids "$ns")
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
  done
  deadline=$((SECONDS + grace))
  while [ $SECONDS -lt $deadline ]; do
    pids=""
    for ns in "$@"; do pids+=" $(ns_pids "$ns")"; done
    [ -z "${pids// /}" ] && return 0
    sleep 0.2
  done
  for ns in "$@"; do
    pids=$(ns_pids "$ns")
    # shellcheck disable=SC2086
    [ -n "$pids" ] && say "SIGKILL to what ignored SIGTERM in $ns: $pids" && kill -KILL $pids 2>/dev/null || true
  done
  sleep 0.3
}

# ---- running on a node ----

# Runs "$@" on node I: in its network namespace, with its host name and /etc/hosts, in a private mount and
# UTS namespace (nsenter, not `ip netns exec`: that remounts /sys, and slurmd then finds no cgroup fs).
# With EXEC_ON_NODE=1 the calling shell becomes that command (the agent leaves no shell behind).
on_node() {
  local i=$1
  shift
  ${EXEC_ON_NODE:+exec} env VAE_CLUSTER_DIR=$DIR VAE_CLUSTER_NAME=$NAME VAE_CLUSTER_NODE=$(node_host "$i") \
    nsenter --net="/var/run/netns/$(node_ns "$i")" unshare --uts --mount --propagation private \
    sh -c 'mount --bind "$1" /etc/hosts && hostname "$2" && shift 2 && exec "$@"' \
    sh "$DIR/hosts" "$(node_host "$i")" "$@" 9>&- # the lock's descriptor stays here (daemons would hold it)
}

node_env() {
  export VAE_CLUSTER_DIR=$DIR VAE_CLUSTER_HOSTFILE=$DIR/hostfile
  [ -f "$DIR/slurm/slurm.conf" ] && export SLURM_CONF=$DIR/slurm/slurm.conf
  return 0
}

# The mpirun options of a run across the nodes, one word a line (docs/CLUSTER.md explains each).
# --bind-to none: every node sees all of this machine's cores, so binding by core would put rank k of
# every node on the same core.
mpirun_args() {
  printf '%s\n' --hostfile "$DIR/hostfile" --mca plm_rsh_agent "$HERE/agent.sh" --bind-to none \
    --mca pml ob1 --mca btl vader,tcp,self \
    --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET" \
    --mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 5
}

# ---- the network ----

# tc tbf on one device in one namespace ("off" removes it). The burst holds at least one 10 ms slice.
set_rate() {
  local ns=$1 dev=$2 rate=$3
  tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
  [ "$rate" = off ] && return 0
  tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst 256kb latency 50ms ||
    die "tc tbf rate $rate on $dev in $ns failed (rates look like 100mbit, 1gbit, 10gbit)"
}

net_up() {
  local n=$1 rate=$2 i ns
  ip netns add "$SW"
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  ip -n "$SW" link set lo up
  for i in $(seq 1 "$n"); do
    ns=$(node_ns "$i")
    ip netns add "$ns"
    # The veth is created with one end in each namespace: no interface ever appears in the root namespace.
    ip -n "$SW" link add "p$i" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "p$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [ "$rate" != off ]; then
      set_rate "$ns" eth0 "$rate"
      set_rate "$SW" "p$i" "$rate"
    fi
  done
}

write_files() {
  local n=$1 slots=$2 i
  {
    echo "127.0.0.1 localhost"
    for i in $(seq 1 "$n"); do echo "$(node_addr "$i") $(node_host "$i")"; done
  } >"$DIR/hosts"
  for i in $(seq 1 "$n"); do echo "$(node_host "$i") slots=$slots"; done >"$DIR/hostfile"
}

# Waits up to 10 s until node $1 reaches node $2: a TCP connect to a closed port is refused (exit 1) by a
# reachable node and times out (exit 124) on an unreachable one.
wait_reaches() {
  local rc deadline=$((SECONDS + 10))
  while :; do
    rc=0
    on_node "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$(node_addr "$2")/9" 2>/dev/null || rc=$?
    [ $rc -ne 124 ] && return 0
    [ $SECONDS -lt $deadline ] || die "$(node_host "$1") cannot reach $(node_host "$2") at $(node_addr "$2")"
  done
}
wait_reachable() {
  local i
  for i in $(seq 2 "$1"); do wait_reaches 1 "$i"; done
}

# ---- up / down ----

# The reaper: tears the cluster down when the owner process ends or the lifetime is over.
reap() {
  local owner=$1 owner_start=$2 deadline=$3
  echo $$ >"$DIR/reaper.pid"
  while :; do
    if [ "$owner" != 0 ]; then
      [ "$(proc_start "$owner")" = "$owner_start" ] || break
    fi
    [ "$deadline" != 0 ] && [ "$(date +%s)" -ge "$deadline" ] && break
    sleep 1
  done
  say "reaper: $NAME's owner $owner has ended or its lifetime is over; tearing it down"
  lock
  cmd_down
}
# The start time of a process (field 22 of /proc/PID/stat), so a recycled pid is not taken for the owner.
proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || echo gone; }

cmd_up() {
  local n=2 slots=2 rate=off slurm=0 owner=0 lifetime=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) n=${2:?--nodes needs a number}; shift 2 ;;
      --slots) slots=${2:?--slots needs a number}; shift 2 ;;
      --rate) rate=${2:?--rate needs a rate like 1gbit}; shift 2 ;;
      --slurm) slurm=1; shift ;;
      --owner) owner=${2:?--owner needs a pid}; shift 2 ;;
      --lifetime) lifetime=${2:?--lifetime needs seconds}; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_NODES ] || die "--nodes must be from 1 to $MAX_NODES"
  [[ $slots =~ ^[0-9]+$ ]] && [ "$slots" -ge 1 ] || die "--slots must be a positive number"
  [[ $owner =~ ^[0-9]+$ ]] || die "--owner must be a pid"
  [[ $lifetime =~ ^[0-9]+$ ]] || die "--lifetime must be whole seconds"
  [ "$owner" = 0 ] || [ -d "/proc/$owner" ] || die "--owner $owner is not a running process"
  [ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, tc, mounts)"
  for b in ip tc nsenter unshare flock; do command -v $b >/dev/null || die "$b is missing (apt-get install iproute2 util-linux)"; done
  [ $slurm -eq 0 ] || slurm_need_binaries
  lock
  local want="NODES=$n SLOTS=$slots RATE=$rate SLURM=$slurm"
  if is_up && [ "$(head -n 1 "$DIR/config")" = "$want" ] && { [ $slurm -eq 0 ] || slurm_ok; }; then
    say "$NAME is already up ($want)"
  else
    if [ -d "$DIR" ] || ip netns list | grep -q "^vae-$NAME-"; then
      say "removing what an earlier $NAME left"
      cmd_down
    fi
    mkdir -p "$DIR"
    echo "$want" >"$DIR/config"
    # Half a cluster is never left: any failure (or signal) from here on removes what was made.
    trap 'say "up failed; removing $NAME"; cmd_down' EXIT
    trap 'exit 1' INT TERM HUP
    write_files "$n" "$slots"
    net_up "$n" "$rate"
    wait_reachable "$n"
    [ $slurm -eq 0 ] || slurm_up "$n"
    trap - EXIT INT TERM HUP
    say "$NAME is up: $n nodes $(node_host 1)..$(node_host "$n") at $(node_addr 1)..$(node_addr "$n"), rate $rate$([ $slurm -eq 1 ] && echo ", SLURM")"
  fi
  if [ "$owner" != 0 ] || [ "$lifetime" != 0 ]; then
    local old deadline=0
    old=$(cat "$DIR/reaper.pid" 2>/dev/null || true)
    [ -n "$old" ] && kill "$old" 2>/dev/null || true
    [ "$lifetime" = 0 ] || deadline=$(($(date +%s) + lifetime))
    setsid bash "$HERE/cluster.sh" _reap "$NAME" "$owner" "$(proc_start "$owner")" "$deadline" \
      </dev/null >>"$DIR/reaper.log" 2>&1 9>&- &
  fi
  echo "$NAME"
}

cmd_down() {
  local i nss=() ns pid
  if [ -f "$DIR/reaper.pid" ]; then
    pid=$(cat "$DIR/reaper.pid")
    [ "$pid" != $$ ] && kill "$pid" 2>/dev/null || true
  fi
  # Every process of the cluster (munged and the SLURM daemons included) runs on one of its nodes.
  # Every namespace of this cluster, also those of an earlier run whose state folder is gone.
  while read -r ns _; do
    case "$ns" in "vae-$NAME-sw" | "vae-$NAME-node"[0-9]*) nss+=("$ns") ;; esac
  done < <(ip netns list 2>/dev/null)
  [ ${#nss[@]} -eq 0 ] || stop_ns_processes 5 "${nss[@]}"
  for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || say "could not delete namespace $ns"; done
  rm -rf "$DIR"
  say "$NAME is down"
}

# ---- the other commands ----

cmd_status() {
  is_up || { say "$NAME is not up"; exit 3; }
  local n i ns link q procs
  n=$(nodes)
  echo "cluster $NAME: $(head -n 1 "$DIR/config"), state $DIR"
  for i in $(seq 1 "$n"); do
    ns=$(node_ns "$i")
    link=$(ip -n "$SW" -o link show "p$i" 2>/dev/null | grep -q '[<,]UP[,>]' && echo up || echo DOWN)
    q=$(tc -n "$ns" qdisc show dev eth0 2>/dev/null | sed -n 's/.*tbf.* rate \([^ ]*\).*/\1/p')
    procs=$(for p in $(ns_pids "$ns"); do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c | awk '{printf "%s%s x%s", s, $2, $1; s=", "}')
    printf '  %-2s %-16s %-14s link %-4s rate %-8s %s\n' "$i" "$(node_host "$i")" "$(node_addr "$i")" "$link" "${q:-none}" "${procs:-no processes}"
  done
  [ -f "$DIR/slurm/slurm.conf" ] && slurm_status
  return 0
}

cmd_link() {
  local i
  i=$(resolve "$1")
  case "${2:-}" in up | down) ;; *) die "link NODE up|down" ;; esac
  ip -n "$SW" link set "p$i" "$2"
  # Back up: returns once the node and node 1 reach each other again (a partition's stale neighbour
  # entries can delay that by a moment here).
  if [ "$2" = up ] && [ "$i" != 1 ]; then
    wait_reaches "$i" 1
    wait_reaches 1 "$i"
  fi
  say "link of $(node_host "$i") is $2"
}

cmd_rate() {
  local i
  i=$(resolve "$1")
  [ -n "${2:-}" ] || die "rate NODE RATE|off"
  set_rate "$(node_ns "$i")" eth0 "$2"
  set_rate "$SW" "p$i" "$2"
  say "rate of $(node_host "$i") is $2"
}

cmd_kill() {
  local i sig=${2:-KILL} pids
  i=$(resolve "$1")
  pids=$(ns_pids "$(node_ns "$i")")
  [ -n "$pids" ] || { say "no process runs on $(node_host "$i")"; return 0; }
  # shellcheck disable=SC2086
  kill -"$sig" $pids 2>/dev/null || true
  say "SIG$sig to every process of $(node_host "$i"): $(echo $pids)"
}

cmd_pids() {
  local i n p
  n=$(nodes)
  for i in $(seq 1 "$n"); do
    [ -n "${1:-}" ] && [ "$i" != "$(resolve "$1")" ] && continue
    for p in $(ns_pids "$(node_ns "$i")"); do
      printf '%s %s %s\n' "$(node_host "$i")" "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
  done
}

# shellcheck source=scripts/cluster/slurm.sh
. "$HERE/slurm.sh"

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up) set_cluster "${1:-}"; shift; cmd_up "$@" ;;
  down) set_cluster "${1:-}"; lock; cmd_down ;;
  _reap) set_cluster "$1"; reap "$2" "$3" "$4" ;;
  status) set_cluster "${1:-}"; cmd_status ;;
  run)
    set_cluster "${1:-}"; need_up
    [ $# -ge 3 ] || die "run NAME NODE CMD..."
    i=$(resolve "$2"); shift 2; node_env; EXEC_ON_NODE=1 on_node "$i" "$@" ;;
  mpirun)
    set_cluster "${1:-}"; need_up; shift; node_env
    mapfile -t margs < <(mpirun_args)
    EXEC_ON_NODE=1 on_node 1 mpirun "${margs[@]}" "$@" ;;
  mpirun-args) set_cluster "${1:-}"; need_up; mpirun_args | tr '\n' ' '; echo ;;
  link) set_cluster "${1:-}"; need_up; cmd_link "${2:-}" "${3:-}" ;;
  rate) set_cluster "${1:-}"; need_up; lock; cmd_rate "${2:-}" "${3:-}" ;;
  kill) set_cluster "${1:-}"; need_up; cmd_kill "${2:-}" "${3:-}" ;;
  pids) set_cluster "${1:-}"; need_up; cmd_pids "${2:-}" ;;
  env)
    set_cluster "${1:-}"; need_up
    echo "export VAE_CLUSTER_DIR=$DIR VAE_CLUSTER_HOSTFILE=$DIR/hostfile"
    [ -f "$DIR/slurm/slurm.conf" ] && echo "export SLURM_CONF=$DIR/slurm/slurm.conf"
    true ;;
  list) for d in "$ROOT"/*/config; do [ -f "$d" ] && echo "$(basename "$(dirname "$d")") $(head -n 1 "$d")"; done; true ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
