# Checkpoints: C round trips, refusals, fault injection, --resume auto, --keep; h5py interoperability.
vae_unit_test(test_checkpoint)
vae_script_test(test_checkpoint_h5py test_checkpoint_h5py.py)
set_tests_properties(test_checkpoint_h5py PROPERTIES DEPENDS test_checkpoint)
