# SLURM: train.sbatch on a one-node local cluster (scripts/slurm/local-cluster.sh) is preempted with SIGUSR1,
# checkpoints, requeues itself and resumes to completion. Needs root and scripts/install-deps.sh --slurm;
# skipped (77) only when the SLURM binaries are missing. Serial: it starts daemons and uses both cores.
vae_script_test(test_slurm test_slurm.sh)
set_tests_properties(test_slurm PROPERTIES RUN_SERIAL TRUE TIMEOUT 900 SKIP_RETURN_CODE 77 LABELS "script;slurm")
