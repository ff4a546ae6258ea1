#!/usr/bin/env bash
# The launch agent of a namespace cluster (scripts/cluster/cluster.sh): what ssh is to a real cluster.
#   mpirun --mca plm_rsh_agent scripts/cluster/agent.sh --hostfile $VAE_CLUSTER_DIR/hostfile ...
# Open MPI calls it exactly as it calls ssh, `agent.sh [ssh options] HOST WORD...`, to start its daemon
# (orted) on HOST; the agent runs the words through `sh -c` on that node (its network namespace, host name
# and /etc/hosts), as sshd would run them through the remote shell. The cluster is the one named by
# $VAE_CLUSTER_DIR, which `cluster.sh run` and `cluster.sh mpirun` set (the daemons inherit it, so Open
# MPI's tree spawn, an orted starting further orteds, works too).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ssh's options: those that take a value, then the flags (Open MPI passes -x; users may add more).
while [ $# -gt 0 ]; do
  case "$1" in
    -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "agent.sh: error: no host given (usage: agent.sh [ssh options] HOST COMMAND...)" >&2; exit 255; }
host=$1
shift
[ -n "${VAE_CLUSTER_DIR:-}" ] && [ -f "$VAE_CLUSTER_DIR/config" ] || {
  echo "agent.sh: error: VAE_CLUSTER_DIR does not name a cluster that is up; run mpirun through 'cluster.sh run NAME 1 ...'" >&2
  exit 255
}
# ssh's exit status 255 means "could not connect": Open MPI then says the daemon could not be started.
VAE_CLUSTER_ROOT=$(dirname "$VAE_CLUSTER_DIR") exec bash "$here/cluster.sh" run "$(basename "$VAE_CLUSTER_DIR")" "$host" sh -c "$*"
