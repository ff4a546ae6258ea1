# Numbers pinned to references (issue 12 section 4): a stored trajectory of small real runs
# (tests/trajectory_expected.json); the trainer's step against torch.optim.Adam (torch_adam_dump drives
# vae_train_step and records it, test_torch_adam replays it in PyTorch); 50 steps of vae_mpi train
# under mpirun against the same 50 steps in PyTorch (test_torch_train, through the VAE_TRACE hook).
vae_script_test(test_trajectory test_trajectory.py)
set(VAE_ADAM_DUMPS)
foreach(np 1 2)
  set(dump ${CMAKE_CURRENT_BINARY_DIR}/torch_adam_np${np}.bin)
  vae_mpi_test(torch_adam_dump ${np} ${dump})
  set_tests_properties(torch_adam_dump_np${np} PROPERTIES FIXTURES_SETUP torch_adam)
  list(APPEND VAE_ADAM_DUMPS ${dump})
endforeach()
vae_script_test(test_torch_adam test_torch_adam.py ${VAE_ADAM_DUMPS})
set_tests_properties(test_torch_adam PROPERTIES FIXTURES_REQUIRED torch_adam)
vae_script_test(test_torch_train test_torch_train.py)
