"""Helpers for the tests that run vae_mpi on a namespace cluster (scripts/cluster/cluster.sh): bring one
up for this test alone (a name unique to this run; torn down at exit, and by the cluster's reaper if this
process is killed), run commands on its nodes, launch mpirun across them, break nodes and links."""
import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import h5py

SOURCE = os.environ.get("VAE_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLUSTER_SH = os.path.join(SOURCE, "scripts", "cluster", "cluster.sh")
TRAIN_SBATCH = os.path.join(SOURCE, "scripts", "slurm", "train.sbatch")
ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def log(*a):
    print(*a, flush=True)


class Cluster:
    def __init__(self, nodes, slots=2, slurm=False, lifetime=1200, prefix="t"):
        if os.geteuid() != 0:
            print("FAIL: the namespace cluster needs root", file=sys.stderr)
            sys.exit(1)
        self.name = prefix + secrets.token_hex(3)
        self.nodes = nodes
        self._down = False
        atexit.register(self.down)
        # SIGTERM (ctest's timeout) runs the atexit teardown too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        cmd = [CLUSTER_SH, "up", self.name, "--nodes", str(nodes), "--slots", str(slots),
               "--owner", str(os.getpid()), "--lifetime", str(lifetime)] + (["--slurm"] if slurm else [])
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            print(f"FAIL: {' '.join(cmd)}: {p.stderr}", file=sys.stderr)
            sys.exit(1)
        self.dir = os.path.join(os.environ.get("VAE_CLUSTER_ROOT", "/tmp/vae-cluster"), self.name)
        self.hostfile = os.path.join(self.dir, "hostfile")
        log(f"cluster {self.name}: {nodes} nodes up in {time.time() - t0:.1f} s"
            + (" (with SLURM)" if slurm else ""))

    def host(self, i):
        return f"{self.name}-node{i}"

    def env(self, extra=None):
        e = dict(os.environ)
        e.update(ROOT_ENV)
        e.update(extra or {})
        return e

    def cmd(self, *args, **kw):
        """cluster.sh SUBCOMMAND NAME ARGS..., checked."""
        p = subprocess.run([CLUSTER_SH, args[0], self.name, *map(str, args[1:])], capture_output=True,
                           text=True, timeout=kw.get("timeout", 60))
        if p.returncode != 0 and not kw.get("may_fail"):
            raise RuntimeError(f"cluster.sh {' '.join(map(str, args))}: {p.stderr}")
        return p

    def mpirun_args(self):
        return self.cmd("mpirun-args").stdout.split()

    def run(self, node, argv, timeout=300, env=None, cwd=None):
        """argv on node `node` (1..N), waited for."""
        return subprocess.run([CLUSTER_SH, "run", self.name, str(node), *argv], capture_output=True,
                              text=True, timeout=timeout, env=self.env(env), cwd=cwd)

    def popen(self, node, argv, env=None, **kw):
        return subprocess.Popen([CLUSTER_SH, "run", self.name, str(node), *argv], text=True,
                                env=self.env(env), **kw)

    def mpirun(self, np_, argv, extra=(), env=None, timeout=300):
        """mpirun on node 1 across the cluster (hostfile, agent, MCA settings of cluster.sh), waited for."""
        cmd = ["mpirun", *self.mpirun_args(), "-np", str(np_), *extra, *argv]
        return self.run(1, cmd, timeout=timeout, env=env)

    def pids(self, node=None):
        """[(host, pid, command line)] of the processes on the nodes (or on one node)."""
        p = self.cmd("pids", *([node] if node else []))
        out = []
        for line in p.stdout.splitlines():
            host, pid, cmdline = (line.split(" ", 2) + [""])[:3]
            out.append((host, int(pid), cmdline))
        return out

    def down(self):
        if self._down:
            return
        self._down = True
        p = subprocess.run([CLUSTER_SH, "down", self.name], capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            print(f"cluster {self.name}: down failed: {p.stderr}", file=sys.stderr)


def need_slurm():
    """Exits 77 (ctest's skip) when SLURM is not installed: the one thing these tests may skip for."""
    if not shutil.which("sbatch") or not os.path.exists("/usr/sbin/slurmd"):
        print("SKIP: SLURM is not installed; scripts/install-deps.sh --slurm")
        sys.exit(77)


def wait_for(cond, seconds, what):
    """Polls cond() every 0.1 s for up to `seconds`; returns its last value (falsy on timeout)."""
    deadline = time.time() + seconds
    while True:
        v = cond()
        if v or time.time() > deadline:
            if not v:
                log(f"timed out after {seconds} s waiting for {what}")
            return v
        time.sleep(0.1)


def has_step_record(out):
    try:
        return any('"type":"step"' in line for line in open(os.path.join(out, "metrics.jsonl")))
    except OSError:
        return False


def checkpoint_state(path):
    """Every dataset of a checkpoint as bytes and the position attributes: what must be bitwise equal."""
    with h5py.File(path, "r") as f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[...].tobytes())
                     if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: int(f.attrs[k]) for k in ("step", "epoch", "epoch_step")}
    return arrays, attrs


def same_state(a, b):
    """'' when two checkpoint states are bitwise equal, else what differs."""
    (aa, at), (ba, bt) = a, b
    if at != bt:
        return f"positions differ: {at} vs {bt}"
    if sorted(aa) != sorted(ba):
        return f"datasets differ: {sorted(set(aa) ^ set(ba))}"
    diff = [k for k in aa if aa[k] != ba[k]]
    return f"{len(diff)} datasets differ, e.g. {diff[:4]}" if diff else ""
