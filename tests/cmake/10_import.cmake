# Import: the IDX parser (unit) and `vae_mpi import-idx` end to end, read back with h5py (script).
vae_unit_test(test_idx)
vae_script_test(test_import test_import.sh)
