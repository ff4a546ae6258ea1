# Evaluation and pictures: the IW bound against a closed-form log-likelihood, PNG grids read back
# with libpng, and eval / sample / reconstruct / train's images / plot-metrics end to end.
vae_unit_test(test_iw)
vae_unit_test(test_image_grid)
vae_script_test(test_eval test_eval.py)
