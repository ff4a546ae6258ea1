# Model math: layers and loss kernels, gradients against finite differences, PyTorch reference.
vae_unit_test(test_layers)
vae_unit_test(test_grad)
# PyTorch reference: torch_ref.py writes torch_ref.bin (fixture), test_torch_ref compares against it.
vae_script_test(torch_ref_gen torch_ref.py ${CMAKE_CURRENT_BINARY_DIR}/torch_ref.bin)
set_tests_properties(torch_ref_gen PROPERTIES FIXTURES_SETUP torch_ref)
vae_unit_test(test_torch_ref ${CMAKE_CURRENT_BINARY_DIR}/torch_ref.bin)
set_tests_properties(test_torch_ref PROPERTIES FIXTURES_REQUIRED torch_ref)
# Convolutions: the im2col/GEMM kernels and the direct references against a double-precision
# PyTorch-layout convolution and central differences.
vae_unit_test(test_conv)
# The convolutional VAE's every gradient against central differences of a double PyTorch-layout model.
vae_unit_test(test_conv_grad)
# The convolutional VAE against PyTorch: torch_conv_ref.py (the module of scripts/vae_mpi_torch.py)
# writes torch_conv_ref.bin, test_torch_conv compares every output and gradient tensor by tensor.
vae_script_test(torch_conv_ref_gen torch_conv_ref.py ${CMAKE_CURRENT_BINARY_DIR}/torch_conv_ref.bin)
set_tests_properties(torch_conv_ref_gen PROPERTIES FIXTURES_SETUP torch_conv_ref)
vae_unit_test(test_torch_conv ${CMAKE_CURRENT_BINARY_DIR}/torch_conv_ref.bin)
set_tests_properties(test_torch_conv PROPERTIES FIXTURES_REQUIRED torch_conv_ref)
