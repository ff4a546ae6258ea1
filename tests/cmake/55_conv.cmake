# The convolutional VAE end to end: training with every decoder, eval / IW / sample / reconstruct, the
# checkpoint schema read by h5py and loaded into PyTorch (scripts/vae_mpi_torch.py), bitwise resume at
# np 1 and np 2, refusals.
vae_script_test(test_conv_train test_conv_train.py)
# Data parallelism: the ranks' half-batch gradients sum to one process's whole-batch gradient.
vae_mpi_test(test_conv_dist 2)
vae_mpi_test(test_conv_dist 3)
