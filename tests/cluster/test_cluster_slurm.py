"""train.sbatch across nodes (issue 15, section 2): `sbatch -N 2 --ntasks-per-node 1
scripts/slurm/train.sbatch` on a 2-node SLURM cluster of namespaces (scripts/cluster/cluster.sh --slurm:
slurmctld, one slurmd per node, a private munged; the one-node test cluster is never touched), once with
mpirun reading the allocation (its daemons started through srun) and once with srun --mpi=pmix starting
the ranks. In each: the job runs one rank on each node, is preempted by SIGUSR1 to its batch shell (what
--signal=B:USR1@120 does before a time limit), checkpoints at a step boundary, requeues itself, is released,
resumes from that step and completes, and its checkpoint (every dataset, bit for bit) and the training
fields of metrics.jsonl equal those of an unpreempted run of 2 ranks on one host."""
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from vaetest import VAE_MPI, check, done, mpirun, training_fields, write_images  # noqa: E402
from clustertest import (  # noqa: E402
    TRAIN_SBATCH as JOB, Cluster, checkpoint_state, has_step_record, log, same_state, need_slurm, wait_for)

need_slurm()

VAE = os.path.abspath(VAE_MPI)
tmp = tempfile.mkdtemp(prefix="vae_cluster_slurm_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 2000, "test/images": 400}, seed=6)
ARGS = ["--data", data, "--epochs", "3", "--batch-size", "20", "--hidden", "256", "--latent", "8",
        "--seed", "4", "--log-every", "1", "--no-images", "--threads", "1"]

ref = os.path.join(tmp, "onehost")
p = mpirun(2, ["train", *ARGS, "--out", ref])
check(p.returncode == 0, f"the unpreempted np 2 run on one host: {p.stderr[-800:]}")
ref_state = checkpoint_state(os.path.join(ref, "checkpoint.h5"))


def records(out):
    return [training_fields(json.loads(line)) for line in open(os.path.join(out, "metrics.jsonl"))]


c = Cluster(nodes=2, slots=2, slurm=True)
# What a site puts into openmpi-mca-params.conf: the nodes' network, TCP between nodes.
MCA = {"OMPI_MCA_btl_tcp_if_include": "198.18.0.0/24", "OMPI_MCA_oob_tcp_if_include": "198.18.0.0/24",
       "OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "vader,tcp,self", "VAE_MPI": VAE}


def job_field(job, key):
    p = c.run(1, ["scontrol", "show", "job", job], timeout=30)
    m = re.search(rf"\b{key}=(\S*)", p.stdout)
    return m.group(1) if m else ""


def scenario(launcher):
    work = os.path.join(tmp, launcher)
    out = os.path.join(work, "out")
    os.makedirs(work)
    p = c.run(1, ["sbatch", "--parsable", "-N", "2", "--ntasks-per-node", "1", JOB, *ARGS, "--out", out],
              env={**MCA, "VAE_LAUNCHER": launcher}, cwd=work, timeout=30)
    check(p.returncode == 0, f"{launcher}: sbatch failed: {p.stderr}")
    if p.returncode != 0:
        return
    job = p.stdout.strip().split(";")[0]
    outfile = os.path.join(work, f"vae_mpi-{job}.out")

    def text():
        try:
            return open(outfile, errors="replace").read()
        except OSError:
            return ""

    def fail(msg):
        logs = c.run(1, ["sh", "-c", f"scontrol show job {job}; tail -n 25 {c.dir}/slurm/log/*.log"]).stdout
        check(False, f"{launcher}: {msg}\n---- {outfile}\n{text()[-3000:]}\n---- SLURM\n{logs}")

    if not wait_for(lambda: job_field(job, "JobState") == "RUNNING", 60, f"job {job} to run"):
        return fail("the job never ran")
    if not wait_for(lambda: has_step_record(out), 90, "a step record"):
        return fail("no step record")
    hosts = sorted({h for h, _, cmd in c.pids() if cmd.startswith(VAE)})
    check(hosts == [c.host(1), c.host(2)], f"{launcher}: ranks run on {hosts}, expected one on each node")
    p = c.run(1, ["scancel", "--signal=USR1", "--batch", job], timeout=30)
    check(p.returncode == 0, f"{launcher}: scancel --signal=USR1 --batch: {p.stderr}")
    if not wait_for(lambda: f"requeued job {job}" in text(), 120, "the requeue line"):
        return fail("the job did not requeue itself")
    wait_for(lambda: job_field(job, "JobState") == "PENDING", 60, "PENDING after the requeue")
    m = re.search(r"stopped by a signal at step (\d+)", text())
    stop = int(m.group(1)) if m else -1
    ck = checkpoint_state(os.path.join(out, "checkpoint.h5"))[1]["step"]
    check(stop > 0 and ck == stop, f"{launcher}: stopped at step {stop}, checkpoint at step {ck}")
    check(stop < ref_state[1]["step"], f"{launcher}: the job ended before the signal (step {stop})")
    check(job_field(job, "Restarts") == "1", f"{launcher}: Restarts={job_field(job, 'Restarts')} after the requeue")
    # SLURM holds a requeued job (BeginTime, about 2 minutes here) while the nodes clean up after its first
    # run. Released before no step daemon of its first run is left, the new step can find the old one's
    # PMIx socket in the spool folder ("Cannot bind() UNIX socket .../stepd.slurm.pmix.J.0: Address already
    # in use"); released within the second of the requeue's kill, slurmd takes the new credential for the
    # one it revoked ("Job J already killed, do not launch batch job": revocations are kept to the second).
    wait_for(lambda: not [pid for _, pid, cmd in c.pids() if cmd.startswith(f"slurmstepd: [{job}.")], 60,
             f"the step daemons of job {job}'s first run to end")
    time.sleep(2)
    c.run(1, ["scontrol", "update", f"JobId={job}", "StartTime=now"], timeout=30)
    done_ = wait_for(lambda: job_field(job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL"),
                     300, f"job {job} to finish")
    state, code = job_field(job, "JobState"), job_field(job, "ExitCode")
    if not done_ or state != "COMPLETED" or code != "0:0":
        return fail(f"job ended {state} {code}, expected COMPLETED 0:0")
    check(f"resume: {out}/checkpoint.h5 at epoch" in text() and f"step {stop}\n" in text(),
          f"{launcher}: the requeued run did not resume from step {stop}")
    diff = same_state(checkpoint_state(os.path.join(out, "checkpoint.h5")), ref_state)
    check(diff == "", f"{launcher}: the preempted job's checkpoint differs from the unpreempted run: {diff}")
    check(records(out) == records(ref), f"{launcher}: metrics.jsonl differs from the unpreempted run")
    nodelist = re.search(r"\(restart 0\) on (\S+):", text())
    log(f"{launcher}: job {job} on {nodelist.group(1) if nodelist else '?'} preempted at step {stop}, "
        f"requeued, resumed, completed: bitwise equal to np 2 on one host")


scenario("mpirun")
scenario("srun")
c.down()
shutil.rmtree(tmp)
done("test_cluster_slurm")
