# Data: shard ranges (unit), HDF5 validation and the collective shard read (MPI, 1..4 ranks) on
# files written by tests/make_data_files.py into the build directory.
vae_unit_test(test_data_shards)

# The files, written once per build directory; every test_data_read run needs them.
set(VAE_DATA_FILES ${CMAKE_CURRENT_BINARY_DIR}/data_files)
vae_script_test(data_make_files make_data_files.py ${VAE_DATA_FILES})
set_tests_properties(data_make_files PROPERTIES FIXTURES_SETUP data_files)
foreach(np 1 2 3 4)
  vae_mpi_test(test_data_read ${np} ${VAE_DATA_FILES})
  set_tests_properties(test_data_read_np${np} PROPERTIES FIXTURES_REQUIRED data_files)
endforeach()
