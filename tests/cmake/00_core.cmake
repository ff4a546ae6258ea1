# Core: random numbers, model layout, MPI layer, durable file writes.
vae_unit_test(test_rng)
vae_unit_test(test_model_layout)
vae_mpi_test(test_dist 2)
vae_mpi_test(test_dist 3)
vae_unit_test(test_durable_file)
vae_unit_test(test_watchdog)
# The training step's thread team (team.h): slices, runs as barriers, the split sum of squares.
vae_unit_test(test_team)
