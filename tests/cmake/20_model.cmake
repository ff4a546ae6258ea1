# Model math: layers and loss kernels, gradients against finite differences, PyTorch reference.
vae_unit_test(test_layers)
vae_unit_test(test_grad)
