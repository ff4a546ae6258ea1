"""vae_mpi across hosts with `mpirun --hostfile` (issue 15, section 2), on a 3-node namespace cluster
(scripts/cluster/cluster.sh): the nodes are reached through the launch agent, ranks talk TCP between
nodes and shared memory (vader) inside one.
  - 2 nodes x 1 rank and 3 nodes x 2 ranks train to completion, each rank on the node the hostfile
    mapping puts it (its own host name), and the checkpoint (every dataset, bit for bit) and the
    training fields of metrics.jsonl equal those of the same number of ranks on one host (plain mpirun
    in this namespace, shared memory only): the reduction order of Open MPI's allreduce depends on the
    number of ranks and the message size, not on the transport or the placement.
  - only rank 0 writes: every other rank runs with a private empty folder mounted over --out
    (shadow_out.sh), and those folders stay empty.
  - the --out lock holds across nodes: while job A (ranks on nodes 1 and 2) trains, job B started on
    node 3 with the same --out is refused at once, naming A's rank 0 pid; A then stops cleanly on SIGUSR1."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from vaetest import VAE_MPI, check, done, mpirun, training_fields, write_images  # noqa: E402
from clustertest import Cluster, checkpoint_state, has_step_record, log, same_state, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VAE = os.path.abspath(VAE_MPI)
tmp = tempfile.mkdtemp(prefix="vae_cluster_mpirun_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 1200, "test/images": 240}, seed=5)
ARGS = ["train", "--data", data, "--epochs", "2", "--batch-size", "20", "--hidden", "128", "--latent", "8",
        "--seed", "9", "--log-every", "4", "--threads", "1"]

c = Cluster(nodes=3, slots=2)


def records(out):
    return [training_fields(json.loads(line)) for line in open(os.path.join(out, "metrics.jsonl"))]


def hosts_of(shadows, np_):
    return [open(os.path.join(shadows, f"rank-{r}.host")).read().strip() for r in range(np_)]


# ---- hostfile runs against one host ----
for nodes, per_node in ((2, 1), (3, 2)):
    np_ = nodes * per_node
    name = f"{nodes}x{per_node}"
    out = os.path.join(tmp, f"cluster-{name}")
    shadows = os.path.join(tmp, f"shadows-{name}")
    os.makedirs(out)  # the shadow mounts need the folder to exist
    os.makedirs(shadows)
    t0 = time.time()
    p = c.mpirun(np_, [os.path.join(HERE, "shadow_out.sh"), out, shadows, VAE, *ARGS, "--out", out],
                 extra=["--npernode", str(per_node)])
    secs = time.time() - t0
    check(p.returncode == 0, f"{name}: mpirun --hostfile exited {p.returncode}: {p.stderr[-1500:]}")
    if p.returncode != 0:
        continue
    log(f"{name}: trained on the cluster in {secs:.1f} s: {p.stdout.strip().splitlines()[-1]}")
    want = [c.host(1 + r // per_node) for r in range(np_)]
    got = hosts_of(shadows, np_)
    check(got == want, f"{name}: ranks ran on {got}, expected {want}")
    written = {r: os.listdir(os.path.join(shadows, f"rank-{r}")) for r in range(1, np_)}
    check(all(not v for v in written.values()), f"{name}: ranks other than 0 wrote into --out: {written}")
    check(sorted(os.listdir(out)) == [".vae_mpi.lock", "checkpoint.h5", "metrics.jsonl",
                                       "reconstruction-epoch-1.png", "reconstruction-epoch-2.png",
                                       "samples-epoch-1.png", "samples-epoch-2.png"],
          f"{name}: rank 0's --out holds {sorted(os.listdir(out))}")

    ref = os.path.join(tmp, f"onehost-{np_}")
    p1 = mpirun(np_, [*ARGS, "--out", ref])
    check(p1.returncode == 0, f"{name}: the one-host np {np_} run exited {p1.returncode}: {p1.stderr[-800:]}")
    if p1.returncode != 0:
        continue
    diff = same_state(checkpoint_state(os.path.join(out, "checkpoint.h5")),
                      checkpoint_state(os.path.join(ref, "checkpoint.h5")))
    check(diff == "", f"{name}: checkpoint differs from np {np_} on one host: {diff}")
    check(records(out) == records(ref), f"{name}: metrics.jsonl differs from np {np_} on one host")
    log(f"{name}: checkpoint and metrics bitwise equal to np {np_} on one host ({len(records(ref))} records)")

# ---- the --out lock across nodes ----
out = os.path.join(tmp, "locked")
LONG = [*ARGS, "--out", out, "--epochs", "100000", "--no-images"]
a = c.popen(1, ["mpirun", *c.mpirun_args(), "-np", "2", "--npernode", "1", "-q", VAE, *LONG],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
check(wait_for(lambda: has_step_record(out), 90, "job A's first step record"), "job A never trained")
rank0 = [pid for host, pid, cmd in c.pids(1) if cmd.startswith(VAE) and out in cmd]
check(len(rank0) == 1, f"expected job A's rank 0 alone on {c.host(1)}, found {rank0}")
t0 = time.time()
b = c.run(3, ["mpirun", "-np", "1", "-q", VAE, *LONG, "--resume", "auto"], timeout=60)
secs = time.time() - t0
errs = [l for l in b.stderr.splitlines() if l.strip()]
want = f"vae_mpi: error: another vae_mpi job (pid {rank0[0] if rank0 else '?'}) is training in {out}"
check(b.returncode == 1 and len(errs) == 1 and errs[0].startswith(want),
      f"job B on {c.host(3)}: exit {b.returncode}, stderr {errs}, expected '{want}...'")
check(secs < 20, f"job B took {secs:.1f} s to be refused")
check(a.poll() is None, "job A had ended when B was refused: the test proves nothing")
log(f"lock: job B on {c.host(3)} refused in {secs:.1f} s: {errs[0] if errs else ''}")
a.send_signal(signal.SIGUSR1)  # a is mpirun itself (cluster.sh run execs it), which forwards the signal
a_out, a_err = a.communicate(timeout=120)
check(a.returncode == 75, f"job A did not stop cleanly after B: exit {a.returncode}: {a_err[-800:]}")
check(a_err.strip() == "", f"job A printed on stderr: {a_err[-500:]}")

c.down()
check(not c.cmd("list").stdout.count(c.name), "the cluster is still listed after down")
shutil.rmtree(tmp)
done("test_cluster_mpirun")
