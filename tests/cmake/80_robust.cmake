# Robustness (issue 8): bad input end to end under mpirun, runaway ranks, the --out lock,
# non-finite steps, and the fuzz harnesses replayed over their seeds and past findings.
set(VAE_FUZZ_DIR ${CMAKE_SOURCE_DIR}/fuzz)
foreach(h idx data checkpoint image)
  add_executable(replay_${h} ${VAE_FUZZ_DIR}/fuzz_${h}.c ${VAE_FUZZ_DIR}/replay_main.c)
  target_compile_options(replay_${h} PRIVATE ${VAE_WARNINGS})
  target_link_libraries(replay_${h} PRIVATE vae_core)
  set(inputs ${VAE_FUZZ_DIR}/corpus/${h})
  if(EXISTS ${VAE_FUZZ_DIR}/regressions/${h})
    list(APPEND inputs ${VAE_FUZZ_DIR}/regressions/${h})
  endif()
  add_test(NAME fuzz_replay_${h} COMMAND replay_${h} ${inputs})
  set_tests_properties(fuzz_replay_${h} PROPERTIES ENVIRONMENT "${VAE_TEST_ENV}" TIMEOUT 120
    LABELS unit WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()
# A stand-in filter plugin whose loading leaves a marker file (test_robust.py: never loaded).
add_library(vae_test_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/robust/marker_plugin.c)
# Never sanitized: test_robust's control loads it into h5py's (uninstrumented) python, where an ASan
# runtime in a plugin aborts the process ("ASan runtime does not come first").
set_target_properties(vae_test_plugin PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/plugins
  COMPILE_OPTIONS "" LINK_OPTIONS "")
vae_script_test(test_robust test_robust.py ${CMAKE_CURRENT_BINARY_DIR}/plugins)
set_tests_properties(test_robust PROPERTIES DEPENDS vae_test_plugin)
vae_script_test(test_nonfinite test_nonfinite.py)
vae_script_test(test_orphans test_orphans.sh)
vae_script_test(test_lock test_lock.py)
