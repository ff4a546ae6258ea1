/* eval.c: `vae_mpi eval`, the test-set bounds of a checkpoint: ELBO (recon, KL) and, with
 * --iw-samples K > 1, the importance-weighted bound, over every image exactly once, data-parallel.
 * Every user error is agreed on before the first collective that depends on it; nothing but the
 * results goes to stdout (one JSON object with --json). Never writes a file. */
#define _GNU_SOURCE /* sysconf */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_kernels.h"
#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "evaluate.h"
#include "iw.h"
#include "vae.h"

typedef struct {
  char checkpoint[VAE_PATH_LEN];
  char data[VAE_PATH_LEN];
  char dataset[VAE_PATH_LEN];
  long iw_samples;
  uint64_t seed;
  int seed_given;
  int batch_size;
  int threads;
  int json;
} eval_opts;

static int parse_opts(eval_opts *o, int argc, char **argv, char *err) {
  memset(o, 0, sizeof *o);
  snprintf(o->dataset, sizeof o->dataset, "test/images");
  o->iw_samples = 1;
  o->batch_size = 256;
  const vae_flag flags[] = {
      {"--checkpoint", VAE_FLAG_STRING, o->checkpoint, "FILE", "checkpoint to evaluate (required)", NULL},
      {"--data", VAE_FLAG_STRING, o->data, "FILE.h5", "HDF5 file with the images (required)", NULL},
      {"--dataset", VAE_FLAG_STRING, o->dataset, "PATH", "dataset inside --data", NULL},
      {"--iw-samples", VAE_FLAG_LONG, &o->iw_samples, "K",
       "importance samples per image; K > 1 adds the IWAE bound", NULL},
      {"--seed", VAE_FLAG_U64, &o->seed, "S",
       "noise seed (default: the checkpoint's training seed, as train's test ELBO)", &o->seed_given},
      {"--batch-size", VAE_FLAG_INT, &o->batch_size, "B",
       "images, and (image, sample) pairs, per forward pass", NULL},
      {"--threads", VAE_FLAG_INT, &o->threads, "T", "BLAS threads per rank (0 = cores per rank on the node)",
       NULL},
      {"--json", VAE_FLAG_BOOL, &o->json, NULL, "print exactly one JSON object on stdout instead of text",
       NULL},
  };
  int rc = vae_cli_parse("mpirun -np N vae_mpi eval --checkpoint FILE --data FILE.h5 [options]", flags,
                         (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
  if (rc != 0) return rc;
  if (o->checkpoint[0] == '\0')
    return vae_err(err, "eval needs --checkpoint FILE (a checkpoint.h5 written by vae_mpi train)");
  if (o->data[0] == '\0') return vae_err(err, "eval needs --data FILE.h5 with the images to evaluate");
  if (o->iw_samples < 1 || o->iw_samples > VAE_IW_MAX_SAMPLES)
    return vae_err(err, "--iw-samples must be from 1 to %ld, got %ld", VAE_IW_MAX_SAMPLES, o->iw_samples);
  if (o->batch_size < 1 || o->batch_size > (1 << 20))
    return vae_err(err, "--batch-size must be from 1 to 1048576, got %d", o->batch_size);
  if (o->threads < 0) return vae_err(err, "--threads must be 0 (automatic) or more, got %d", o->threads);
  return 0;
}

typedef struct {
  const eval_opts *o;
  const vae_data_info *info;
  float *params;
  vae_config cfg;
  struct {
    long epoch, step;
    uint64_t seed;
  } pos;
} model_load;

/* Rank 0 (vae_dist_on_root): the checkpoint, checked against the data's image shape. */
static int load_model(void *ctx, char *err) {
  model_load *ml = ctx;
  const eval_opts *o = ml->o;
  vae_ckpt_state st;
  if (vae_checkpoint_read_model(o->checkpoint, ml->info, &ml->cfg, &ml->params, &st, err) < 0) return -1;
  ml->pos.epoch = st.epoch;
  ml->pos.step = st.step;
  ml->pos.seed = st.seed;
  return 0;
}

/* Collective: the model on every rank: rank 0 reads and checks it, then its configuration, position,
 * seed and parameters are broadcast. ml->params is fresh on every rank. */
static void share_model(const vae_dist *d, model_load *ml) {
  vae_dist_on_root(d, load_model, ml);
  vae_dist_bcast_bytes(&ml->cfg, sizeof ml->cfg);
  vae_dist_bcast_bytes(&ml->pos, sizeof ml->pos);
  size_t n_params = vae_num_params(&ml->cfg);
  if (d->rank != 0) ml->params = mallocCheck(n_params * sizeof *ml->params);
  vae_dist_bcast_floats(ml->params, n_params);
}

/* What eval found, summed over the ranks: recon, KL, images (evaluate.h), then the IW bound and its
 * images (iw.h). */
typedef struct {
  double sums[5];
  double seconds;
  int threads;
  uint64_t seed;
} eval_result;

/* Rank 0: the bounds per image and per dimension, as text or one JSON object. */
static void print_result(const vae_dist *d, const eval_opts *o, const model_load *ml, const eval_result *r) {
  const double *sums = r->sums;
  const double N = sums[2], D = (double)vae_input_dim(&ml->cfg), bpd = 1.0 / (D * log(2.0));
  const double recon = sums[0] / N, kl = sums[1] / N, elbo = -(recon + kl);
  const int iw = o->iw_samples > 1;
  const double iwll = iw ? sums[3] / sums[4] : elbo, best = iw ? iwll : elbo;
  const unsigned long long seed = (unsigned long long)r->seed;
  if (o->json) {
    printf("{\"images\":%.0f,\"elbo\":%.17g,\"recon\":%.17g,\"kl\":%.17g,\"elbo_bits_per_dim\":%.17g,", N,
           elbo, recon, kl, -elbo * bpd);
    if (iw) printf("\"iw_samples\":%ld,\"iw_log_likelihood\":%.17g,", o->iw_samples, iwll);
    printf(
        "\"bits_per_dim\":%.17g,\"dims\":%.0f,\"seed\":%llu,\"ranks\":%d,\"checkpoint_epoch\":%ld,"
        "\"checkpoint_step\":%ld,\"seconds\":%.3f,%s}\n",
        -best * bpd, D, seed, d->size, ml->pos.epoch, ml->pos.step, r->seconds, vae_blas_json());
  } else {
    printf("vae_mpi eval: %s (epoch %ld, step %ld) on %.0f images of %s:%s, %d rank(s), seed %llu\n",
           o->checkpoint, ml->pos.epoch, ml->pos.step, N, o->data, o->dataset, d->size, seed);
    printf("  ELBO            %12.4f nats/image (recon %.4f, KL %.4f)  %.5f bits/dim\n", elbo, recon, kl,
           -elbo * bpd);
    if (iw)
      printf("  IW bound K=%-5ld %12.4f nats/image (log-likelihood estimate)  %.5f bits/dim\n", o->iw_samples,
             iwll, -iwll * bpd);
    printf("  %.2f s (%d BLAS thread(s) per rank, %s)\n", r->seconds, r->threads, vae_blas_describe());
  }
  fflush(stdout);
}

int vae_cmd_eval(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  vae_cli_quiet(d.rank != 0);
  char err[VAE_ERR_LEN] = "";
  size_t mem_limit = vae_data_mem_limit(MPI_COMM_WORLD); /* collective: before any early return */
  eval_opts o;
  vae_data_info info;
  int rc = parse_opts(&o, argc, argv, err);
  if (rc == 1) { /* --help */
    vae_dist_finalize();
    return 0;
  }
  if (rc == 0) rc = vae_data_probe(o.data, o.dataset, "--dataset", &info, err);
  if (rc == 0) rc = vae_data_check_shard_fits(&info, d.rank, d.size, mem_limit, err);
  vae_dist_check(&d, rc < 0, err);

  model_load ml;
  memset(&ml, 0, sizeof ml);
  ml.o = &o;
  ml.info = &info;
  share_model(&d, &ml);
  const vae_config *cfg = &ml.cfg;
  vae_views pv;
  vae_views_init(cfg, ml.params, &pv);

  /* This rank's images: every image exactly once over the ranks (vae_shard_range). */
  vae_shard shard;
  memset(&shard, 0, sizeof shard);
  rc = vae_data_read_shard(&info, MPI_COMM_WORLD, &shard, err);
  if (rc == 0) rc = vae_shard_validate(&shard, cfg->decoder == VAE_DEC_BERNOULLI, err);
  vae_dist_check(&d, rc < 0, err);

  eval_result r = {{0, 0, 0, 0, 0}, 0, vae_dist_blas_threads(o.threads), o.seed_given ? o.seed : ml.pos.seed};
  openblas_set_num_threads(r.threads);
  vae_workspace *ws = vae_workspace_create(cfg, o.batch_size);
  double t0 = vae_dist_time();
  vae_eval_shard(cfg, &pv, ws, &shard, r.seed, r.sums);
  if (o.iw_samples > 1) vae_iw_shard(cfg, &pv, ws, &shard, r.seed, o.iw_samples, r.sums + 3);
  vae_dist_sum_doubles(r.sums, 5);
  r.seconds = vae_dist_time() - t0;
  if (d.rank == 0) print_result(&d, &o, &ml, &r);
  vae_workspace_free(ws);
  vae_shard_free(&shard);
  free(ml.params);
  vae_dist_finalize();
  return 0;
}
