# SLURM on a namespace cluster (sourced by scripts/cluster/cluster.sh for `up --slurm`): a private munged,
# slurmctld on node 1 and one slurmd per node, each started on its node (its network namespace and host
# name), so every daemon of the cluster is one of its nodes' processes and `down` ends them with the rest.
# Configuration, state, spool, logs, pid files and munge key all live under $DIR/slurm and $DIR/munge: the
# one-node test cluster of scripts/slurm/local-cluster.sh (and a real SLURM) is never read or touched.
# Client commands (sbatch, squeue, scontrol) must run on a node: `cluster.sh run NAME 1 sbatch ...`
# (it sets SLURM_CONF).

slurm_need_binaries() {
  local b
  for b in munged mungekey slurmctld slurmd sinfo scontrol sbatch srun; do
    command -v "$b" >/dev/null 2>&1 || die "$b is missing; run scripts/install-deps.sh --slurm"
  done
}

slurm_conf() { echo "$DIR/slurm/slurm.conf"; }
slurm_on() { SLURM_CONF=$(slurm_conf) on_node 1 "$@"; }

munge_up() {
  local m=$DIR/munge i
  # The socket's folder must be searchable by all (munged checks), the key readable by root only.
  install -d -m 0711 "$m"
  mungekey --create --keyfile="$m/munge.key" --force
  chmod 0400 "$m/munge.key"
  on_node 1 munged --force --socket="$m/munge.socket" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" ||
    die "munged did not start; see $m/munged.log"
  for i in $(seq 1 40); do
    munge -S "$m/munge.socket" -n 2>/dev/null | unmunge -S "$m/munge.socket" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "munged does not answer on $m/munge.socket; see $m/munged.log"
}

write_slurm_conf() {
  local n=$1 d=$DIR/slurm hw i
  # What slurmd registers with (each slurmd sees the whole machine); more CPUs than the machine has
  # would drain the node.
  hw=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ UpTime=.*//')
  echo "$hw" | grep -q 'CPUs=' || die "slurmd -C did not report the hardware: $hw"
  install -d -m 0755 "$d" "$d/ctld" "$d/log"
  for i in $(seq 1 "$n"); do install -d -m 0755 "$d/spool-$(node_host "$i")" "$d/tmp-$(node_host "$i")"; done
  {
    cat <<EOF
# Written by scripts/cluster/slurm.sh for the namespace cluster $NAME.
ClusterName=vae$NAME
SlurmctldHost=$(node_host 1)($(node_addr 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$d/ctld
# Per node (%n): srun --mpi=pmix steps keep files under TmpFS, which would collide in one shared /tmp.
SlurmdSpoolDir=$d/spool-%n
TmpFS=$d/tmp-%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd-%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd-%n.log
Include $(cd "$HERE/../slurm" && pwd)/sandbox.conf
KillWait=10
# A node that stops answering is DOWN after 30 s and its jobs' steps are cancelled.
SlurmdTimeout=30
EOF
    for i in $(seq 1 "$n"); do
      echo "NodeName=$(node_host "$i") NodeAddr=$(node_addr "$i") NodeHostname=$(node_host "$i") $hw State=UNKNOWN"
    done
    echo "PartitionName=cluster Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } >"$d/slurm.conf"
}

# 0 when slurmctld answers and every node is usable.
slurm_ok() {
  [ -f "$(slurm_conf)" ] || return 1
  slurm_on scontrol ping >/dev/null 2>&1 || return 1
  local bad
  bad=$(slurm_on sinfo -h -N -o '%T' 2>/dev/null | grep -cvE '^(idle|mixed|allocated|completing)$' || true)
  [ "$bad" = 0 ]
}

slurm_up() {
  local n=$1 i deadline
  munge_up
  write_slurm_conf "$n"
  slurm_on slurmctld -c -f "$(slurm_conf)" || die "slurmctld did not start; see $DIR/slurm/log/slurmctld.log"
  deadline=$((SECONDS + 20))
  until slurm_on scontrol ping >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "slurmctld does not answer; see $DIR/slurm/log/slurmctld.log"
    sleep 0.25
  done
  for i in $(seq 1 "$n"); do
    SLURM_CONF=$(slurm_conf) on_node "$i" slurmd -c -f "$(slurm_conf)" -N "$(node_host "$i")" ||
      die "slurmd on $(node_host "$i") did not start; see $DIR/slurm/log/slurmd-$(node_host "$i").log"
  done
  deadline=$((SECONDS + ${VAE_CLUSTER_SLURM_TIMEOUT:-60}))
  until slurm_ok; do
    if [ $SECONDS -ge $deadline ]; then
      slurm_on sinfo -N 2>&1 | sed 's/^/  /' >&2 || true
      tail -n 5 "$DIR"/slurm/log/*.log 2>/dev/null | sed 's/^/  /' >&2 || true
      die "the SLURM nodes are not idle after ${VAE_CLUSTER_SLURM_TIMEOUT:-60} s"
    fi
    sleep 0.5
  done
}

slurm_status() {
  echo "SLURM (SLURM_CONF=$(slurm_conf)):"
  slurm_on sinfo -N -o '  %N %T %c CPUs' 2>&1 | sed 's/^/  /' || true
  slurm_on squeue -o '  %i %j %T %D %R' 2>&1 | sed 's/^/  /' || true
}
