# Training: exact gradient averaging across ranks, and real runs of `vae_mpi train` under mpirun.
vae_mpi_test(test_grad_avg 2)
vae_mpi_test(test_grad_avg 3)
vae_script_test(test_train test_train.py)
vae_script_test(test_train_errors test_train_errors.py)
vae_script_test(test_resume test_resume.py)
# Ranks x worker threads (--threads): bitwise the same as as many ranks of one thread (two workers).
vae_script_test(test_threads test_threads.py)
