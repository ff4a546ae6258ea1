# Multi-node (issue 15): vae_mpi on a cluster of network namespaces that each test brings up and removes
# itself (scripts/cluster/cluster.sh): hostfile runs against one host, the --out lock across nodes,
# train.sbatch across 2 SLURM nodes, and nodes that die, stop or lose their link (--comm-timeout's
# watchdog, the launchers' own detection, the resume on the survivors). Root only; serial (they time
# failures and fill both cores).
foreach(t test_cluster_mpirun test_cluster_slurm test_cluster_failures)
  vae_script_test(${t} cluster/${t}.py)
  set_tests_properties(${t} PROPERTIES RUN_SERIAL TRUE TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS "script;cluster")
endforeach()
