# Data: shard ranges (unit), HDF5 validation and the collective shard read (MPI, 1..4 ranks) on
# files written by tests/make_data_files.py into the build directory.
vae_unit_test(test_data_shards)
