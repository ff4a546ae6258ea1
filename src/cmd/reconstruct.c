/* reconstruct.c: `vae_mpi reconstruct`, the first N images of a dataset above their reconstructions
 * (decoder mean at z = mu) as one PNG. One process (MPI runs as a singleton for the HDF5 read);
 * writes only --out. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "train_images.h"
#include "vae.h"

#define MAX_COUNT 10000

typedef struct {
  char checkpoint[VAE_PATH_LEN], data[VAE_PATH_LEN], dataset[VAE_PATH_LEN], out[VAE_PATH_LEN];
  int count;
} recon_opts;

static int parse_opts(recon_opts *o, int argc, char **argv, char *err) {
  memset(o, 0, sizeof *o);
  snprintf(o->dataset, sizeof o->dataset, "test/images");
  o->count = VAE_TRAIN_RECONS;
  const vae_flag flags[] = {
      {"--checkpoint", VAE_FLAG_STRING, o->checkpoint, "FILE", "checkpoint to reconstruct with (required)",
       NULL},
      {"--data", VAE_FLAG_STRING, o->data, "FILE.h5", "HDF5 file with the images (required)", NULL},
      {"--dataset", VAE_FLAG_STRING, o->dataset, "PATH", "dataset inside --data", NULL},
      {"--count", VAE_FLAG_INT, &o->count, "N",
       "the first N images; each row of originals has its reconstructions in the row below", NULL},
      {"--out", VAE_FLAG_STRING, o->out, "FILE.png", "PNG to write (required)", NULL},
  };
  int rc = vae_cli_parse("vae_mpi reconstruct --checkpoint FILE --data FILE.h5 --out FILE.png [--count N]",
                         flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
  if (rc != 0) return rc;
  if (o->checkpoint[0] == '\0')
    return vae_err(err, "reconstruct needs --checkpoint FILE (a checkpoint.h5 written by vae_mpi train)");
  if (o->data[0] == '\0') return vae_err(err, "reconstruct needs --data FILE.h5 with the images");
  if (o->out[0] == '\0') return vae_err(err, "reconstruct needs --out FILE.png");
  if (o->count < 1 || o->count > MAX_COUNT)
    return vae_err(err, "--count must be from 1 to %d, got %d", MAX_COUNT, o->count);
  return 0;
}

/* The checkpoint and the first o->count images, checked against each other. */
static int load_inputs(const recon_opts *o, size_t mem_limit, vae_config *cfg, float **params, vae_shard *s,
                       char *err) {
  vae_data_info info;
  if (vae_data_probe(o->data, o->dataset, "--dataset", &info, err) < 0) return -1;
  if ((size_t)o->count > info.n)
    return vae_err(err, "--count %d but %s:%s holds only %zu images", o->count, o->data, o->dataset, info.n);
  vae_data_info first = info; /* what is read: the first o->count rows */
  first.n = (size_t)o->count;
  if (vae_data_check_shard_fits(&first, 0, 1, mem_limit, err) < 0) return -1;
  if (vae_checkpoint_read_model(o->checkpoint, &info, cfg, params, NULL, err) < 0) return -1;
  /* One rank reads the first o->count images (MPI_COMM_SELF), then checks the values it will show. */
  if (vae_data_read_first(&info, MPI_COMM_SELF, (size_t)o->count, s, err) < 0) return -1;
  return vae_shard_validate(s, cfg->decoder == VAE_DEC_BERNOULLI, err);
}

int vae_cmd_reconstruct(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  vae_cli_quiet(d.rank != 0);
  char err[VAE_ERR_LEN] = "";
  size_t mem_limit = vae_data_mem_limit(MPI_COMM_WORLD);
  recon_opts o;
  int rc = parse_opts(&o, argc, argv, err);
  if (rc == 1) {
    vae_dist_finalize();
    return 0;
  }
  if (rc == 0 && d.size != 1) rc = vae_err(err, "reconstruct runs as one process; run it without mpirun");
  vae_dist_check(&d, rc < 0, err);
  vae_config cfg;
  float *params = NULL;
  vae_shard s;
  memset(&s, 0, sizeof s);
  rc = load_inputs(&o, mem_limit, &cfg, &params, &s, err);
  if (rc == 0) {
    vae_views pv;
    vae_views_init(&cfg, params, &pv);
    openblas_set_num_threads(1); /* as each training rank: the same bytes as train's grids */
    float *x = mallocCheck((size_t)o.count * s.d * sizeof *x);
    uint32_t *rows = mallocCheck((size_t)o.count * sizeof *rows);
    for (int i = 0; i < o.count; i++) rows[i] = (uint32_t)i;
    vae_shard_batch(&s, rows, o.count, x);
    rc = vae_write_reconstructions(o.out, &cfg, &pv, x, o.count, err);
    free(rows);
    free(x);
  }
  free(params);
  vae_shard_free(&s);
  vae_dist_check(&d, rc < 0, err);
  vae_dist_finalize();
  return 0;
}
