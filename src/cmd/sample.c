/* sample.c: `vae_mpi sample`, a PNG grid of decoder means at z ~ N(0, I) from a checkpoint.
 * One process, no MPI (the checkpoint is read with HDF5's sec2 driver); writes only --out. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "train_images.h"
#include "vae.h"

#define MAX_COUNT 10000

int vae_cmd_sample(int argc, char **argv) {
  char ckpt[VAE_PATH_LEN] = "", out[VAE_PATH_LEN] = "", err[VAE_ERR_LEN] = "";
  int count = VAE_TRAIN_SAMPLES, seed_given = 0;
  uint64_t seed = 0;
  const vae_flag flags[] = {
      {"--checkpoint", VAE_FLAG_STRING, ckpt, "FILE", "checkpoint whose decoder draws the samples (required)",
       NULL},
      {"--count", VAE_FLAG_INT, &count, "N", "samples, in a grid ceil(sqrt(N)) wide", NULL},
      {"--out", VAE_FLAG_STRING, out, "FILE.png", "PNG to write (required)", NULL},
      {"--seed", VAE_FLAG_U64, &seed, "S",
       "seed of z (default: the checkpoint's; train's samples-epoch-E.png used it)", &seed_given},
  };
  vae_h5_quiet();
  /* One BLAS thread, as each training rank: the same z gives the same bytes as train's grids. */
  openblas_set_num_threads(1);
  int rc = vae_cli_parse("vae_mpi sample --checkpoint FILE --out FILE.png [--count N] [--seed S]", flags,
                         (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
  if (rc == 1) return 0;
  if (rc == 0 && ckpt[0] == '\0')
    rc = vae_err(err, "sample needs --checkpoint FILE (a checkpoint.h5 written by vae_mpi train)");
  if (rc == 0 && out[0] == '\0') rc = vae_err(err, "sample needs --out FILE.png");
  if (rc == 0 && (count < 1 || count > MAX_COUNT))
    rc = vae_err(err, "--count must be from 1 to %d, got %d", MAX_COUNT, count);
  if (rc < 0) vae_exit_error(err);

  vae_config cfg;
  vae_ckpt_state st;
  float *params = NULL;
  if (vae_checkpoint_read_model(ckpt, NULL, &cfg, &params, &st, err) < 0) vae_exit_error(err);
  vae_views pv;
  vae_views_init(&cfg, params, &pv);
  rc = vae_write_samples(out, &cfg, &pv, seed_given ? seed : st.seed, count, err);
  free(params);
  if (rc < 0) vae_exit_error(err);
  return 0;
}
