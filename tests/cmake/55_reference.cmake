# Numbers pinned to references (issue 12 section 4): a stored trajectory of small real runs
# (tests/trajectory_expected.json).
vae_script_test(test_trajectory test_trajectory.py)
