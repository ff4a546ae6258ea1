# Import: the IDX parser (unit) and `vae_mpi import-idx` end to end, read back with h5py (script);
# `vae_mpi import-images` read back against Pillow and the PNG generator (tests/imagegen.py), its
# crop and resize against a direct computation, and its bad-folder corpus (tests/robust/).
vae_unit_test(test_idx)
vae_script_test(test_import test_import.sh)
vae_script_test(test_import_images test_import_images.py)
vae_script_test(test_image_resize test_image_resize.py)
vae_script_test(test_robust_images test_robust_images.py)
vae_script_test(test_images_e2e test_images_e2e.py)
