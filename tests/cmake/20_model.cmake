# Model math: layers and loss kernels, gradients against finite differences, PyTorch reference.
vae_unit_test(test_layers)
vae_unit_test(test_grad)
# PyTorch reference: torch_ref.py writes torch_ref.bin (fixture), test_torch_ref compares against it.
vae_script_test(torch_ref_gen torch_ref.py ${CMAKE_CURRENT_BINARY_DIR}/torch_ref.bin)
set_tests_properties(torch_ref_gen PROPERTIES FIXTURES_SETUP torch_ref)
vae_unit_test(test_torch_ref ${CMAKE_CURRENT_BINARY_DIR}/torch_ref.bin)
set_tests_properties(test_torch_ref PROPERTIES FIXTURES_REQUIRED torch_ref)
