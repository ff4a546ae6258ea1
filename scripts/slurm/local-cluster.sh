#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian's slurm-wlm and munge), for tests/test_slurm.sh and for
# trying scripts/slurm/train.sbatch without a real cluster. Everything listens on 127.0.0.1 only.
#   scripts/slurm/local-cluster.sh start    write slurm.conf, start munged, slurmctld, slurmd; wait for "idle"
#   scripts/slurm/local-cluster.sh stop     cancel this cluster's jobs, stop the daemons it started
#   scripts/slurm/local-cluster.sh status   daemons and sinfo; exit 0 when the node is usable, 3 otherwise
#   scripts/slurm/local-cluster.sh env      print "export SLURM_CONF=..." (eval it to use sbatch, squeue...)
# Needs root (SlurmUser=root) and `scripts/install-deps.sh --slurm`.
# Settings (environment): VAE_SLURM_DIR (default /var/spool/vae-slurm: config, state, logs, pid files),
# VAE_SLURM_CTLD_PORT (6817), VAE_SLURM_SLURMD_PORT (6818), VAE_SLURM_START_TIMEOUT (60 seconds).
# Both start and stop are idempotent; start clears the state of an earlier run (slurmctld -c), so jobs of
# a crashed or killed earlier cluster are forgotten rather than recovered.
# It never touches a cgroup: this sandbox has none, so processes are tracked through /proc
# (proctrack/linuxproc) and tasks are not bound (task/none).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
D=${VAE_SLURM_DIR:-/var/spool/vae-slurm}
CTLD_PORT=${VAE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${VAE_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${VAE_SLURM_START_TIMEOUT:-60}
CONF=$D/slurm.conf
NODE=$(hostname -s)
PARTITION=local
export SLURM_CONF=$CONF

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: error: $*" >&2; exit 1; }

need_binaries() {
  local b missing=()
  for b in munged munge unmunge slurmctld slurmd sinfo scontrol squeue scancel; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}; run scripts/install-deps.sh --slurm"
  [ "$(id -u)" -eq 0 ] || die "run as root (this cluster uses SlurmUser=root and writes under $D)"
}
PATH=$PATH:/usr/sbin:/sbin

# ---- pid files: a daemon is ours when its pid file names a live process with the expected name ----

# Prints the pid recorded in file $1 when that process is alive and its command name is $2.
live_pid() {
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  echo "$pid"
}

# Stops the daemon of pid file $1 (name $2): TERM, up to 15 s, then KILL. Removes the pid file.
stop_daemon() {
  local f=$1 name=$2 pid i
  if pid=$(live_pid "$f" "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
      [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || break
      sleep 0.5
    done
    if [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      say "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

# Fails with the name of the process holding TCP port $1, if any (a leftover of another cluster).
port_free() {
  local port=$1 who
  command -v ss >/dev/null 2>&1 || return 0 # iproute2 missing: slurmctld/slurmd report a busy port themselves
  who=$(ss -H -ltnp "sport = :$port" 2>/dev/null || true)
  [ -z "$who" ] || die "TCP port $port is already in use: $who
  (another slurmctld/slurmd? stop it, or set VAE_SLURM_CTLD_PORT / VAE_SLURM_SLURMD_PORT)"
}

# ---- munge ----

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_works; then
    say "munged is already running"
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    install -d -m 0700 /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile=/etc/munge/munge.key --force
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  local user=root
  if id munge >/dev/null 2>&1; then user=munge; fi
  # munged insists on private key and directories owned by the user it runs as.
  install -d -o "$user" -g "$user" -m 0755 /run/munge
  install -d -o "$user" -g "$user" -m 0700 /var/lib/munge /var/log/munge
  chown "$user:$user" /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  # A socket or pid file left by a killed munged makes a new one refuse to start; --force takes them over.
  if [ "$user" = root ]; then
    munged --force
  else
    runuser -u munge -- munged --force
  fi
  local i
  for i in $(seq 1 20); do
    munge_works && break
    sleep 0.25
  done
  munge_works || die "munged did not come up; see /var/log/munge/munged.log"
  echo started >"$D/munged.ours"
  say "started munged (pid $(cat /run/munge/munged.pid 2>/dev/null || echo '?'))"
}

stop_munge() {
  # Only a munged this script started: a system munged (for a real SLURM install) stays.
  if [ -f "$D/munged.ours" ]; then
    stop_daemon /run/munge/munged.pid munged
    rm -f "$D/munged.ours"
  fi
}

# ---- slurm.conf ----

write_conf() {
  # slurmd -C reports what slurmd will register with; configuring the same values keeps the node
  # from being drained for "Low RealMemory" or a CPU mismatch.
  local hw
  hw=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ UpTime=.*//')
  echo "$hw" | grep -q 'CPUs=' || die "slurmd -C did not report the hardware: $hw"
  install -d -m 0755 "$D" "$D/ctld" "$D/slurmd" "$D/log"
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm/local-cluster.sh: a one-node cluster on 127.0.0.1 for vae_mpi's tests.
ClusterName=vaelocal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/slurmd
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
Include $HERE/sandbox.conf
KillWait=30
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  # sbatch & co. read /etc/slurm/slurm.conf unless SLURM_CONF is set: point it here, but never
  # replace a configuration that is not ours.
  install -d /etc/slurm
  if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
    :
  elif [ ! -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    ln -s "$CONF" /etc/slurm/slurm.conf
  else
    say "note: /etc/slurm/slurm.conf is not ours; use: export SLURM_CONF=$CONF"
  fi
}

# ---- node state ----

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }

wait_idle() {
  local deadline=$((SECONDS + TIMEOUT)) st="" resumed=0
  while [ $SECONDS -lt $deadline ]; do
    st=$(node_state || true)
    case "$st" in
      idle | mixed | allocated) say "node $NODE is $st (partition $PARTITION, SLURM_CONF=$CONF)"; return 0 ;;
      down* | drain* | fail*)
        # A node left down or drained by an earlier run is put back in service once.
        if [ $resumed -eq 0 ]; then
          scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi
        ;;
    esac
    sleep 1
  done
  echo "local-cluster: error: node $NODE is '${st:-unknown}' after ${TIMEOUT}s, not idle" >&2
  scontrol show node "$NODE" 2>&1 | sed 's/^/  /' >&2 || true
  tail -n 20 "$D/log/slurmctld.log" "$D/log/slurmd.log" 2>/dev/null | sed 's/^/  /' >&2 || true
  exit 1
}

# ---- commands ----

cmd_start() {
  need_binaries
  install -d -m 0755 "$D"
  if live_pid "$D/slurmctld.pid" slurmctld >/dev/null && live_pid "$D/slurmd.pid" slurmd >/dev/null &&
    munge_works && scontrol ping >/dev/null 2>&1; then
    say "already running"
    wait_idle
    return 0
  fi
  # A half-started or crashed earlier cluster: stop what is left, then start clean.
  stop_daemon "$D/slurmd.pid" slurmd
  stop_daemon "$D/slurmctld.pid" slurmctld
  port_free "$CTLD_PORT"
  port_free "$SLURMD_PORT"
  start_munge
  write_conf
  rm -rf "${D:?}/ctld"/* "${D:?}/slurmd"/*
  # -c: clear the saved state (jobs of an earlier run); -i would ignore damaged state, -c avoids it.
  slurmctld -c -f "$CONF" || die "slurmctld failed to start; see $D/log/slurmctld.log"
  local i
  for i in $(seq 1 40); do
    scontrol ping >/dev/null 2>&1 && break
    sleep 0.25
  done
  scontrol ping >/dev/null 2>&1 || { tail -n 20 "$D/log/slurmctld.log" >&2 || true; die "slurmctld does not answer"; }
  slurmd -c -f "$CONF" -N "$NODE" || die "slurmd failed to start; see $D/log/slurmd.log"
  for i in $(seq 1 40); do
    live_pid "$D/slurmd.pid" slurmd >/dev/null && break
    sleep 0.25
  done
  live_pid "$D/slurmd.pid" slurmd >/dev/null || { tail -n 20 "$D/log/slurmd.log" >&2 || true; die "slurmd did not stay up"; }
  say "started slurmctld (pid $(cat "$D/slurmctld.pid")) and slurmd (pid $(cat "$D/slurmd.pid"))"
  wait_idle
}

cmd_stop() {
  PATH=$PATH:/usr/sbin
  if live_pid "$D/slurmctld.pid" slurmctld >/dev/null && scontrol ping >/dev/null 2>&1; then
    # Cancel this cluster's jobs first: a slurmstepd outlives slurmd and would keep its job running.
    local jobs i
    jobs=$(squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 60); do
        [ -z "$(squeue -h -o '%i' 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemon "$D/slurmd.pid" slurmd
  stop_daemon "$D/slurmctld.pid" slurmctld
  stop_munge
  say "stopped"
}

cmd_status() {
  local ok=0 pid
  for d in slurmctld slurmd; do
    if pid=$(live_pid "$D/$d.pid" "$d"); then say "$d running (pid $pid)"; else say "$d not running"; ok=3; fi
  done
  if munge_works; then say "munge works"; else say "munge does not work"; ok=3; fi
  if [ $ok -eq 0 ]; then
    sinfo -N -l 2>&1 || ok=3
    case "$(node_state || true)" in idle | mixed | allocated) ;; *) ok=3 ;; esac
  fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
