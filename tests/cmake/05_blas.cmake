# BLAS kernels (blas_kernels.h): the choice as a pure function, then real runs of vae_mpi where
# OpenBLAS's fallback is simulated, forced by the user, kept, and under mpirun (test_blas_reexec.py).
vae_unit_test(test_blas_kernels)
vae_script_test(test_blas_reexec test_blas_reexec.py)
# The runaway-rank test again, with every rank re-executed before MPI_Init (the simulated fallback):
# mpirun's environment and the parent-death signal still end the ranks when mpirun dies.
vae_script_test(test_orphans_reexec test_orphans.sh)
set_tests_properties(test_orphans_reexec PROPERTIES ENVIRONMENT "${VAE_TEST_ENV};VAE_TEST_OPENBLAS_CORENAME=Prescott")
