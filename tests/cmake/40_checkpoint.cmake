# Checkpoints: C round trips, refusals, fault injection, --resume auto, --keep; h5py interoperability.
vae_unit_test(test_checkpoint)
if(VAE_SANITIZE)
  # HDF5's own leak on a failed flush (see the file); everything else still counts.
  set_property(TEST test_checkpoint APPEND PROPERTY ENVIRONMENT
    "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lsan-hdf5.supp"
    "ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
vae_script_test(test_checkpoint_h5py test_checkpoint_h5py.py)
set_tests_properties(test_checkpoint_h5py PROPERTIES DEPENDS test_checkpoint)
