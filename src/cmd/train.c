/* cmd/train.c: `vae_mpi train`, the driver: options, the data files, the output folder and its lock,
 * the shard reads, then the training engine (src/train/: vae_train_start, vae_train_run).
 * Every user error is found before the first collective that depends on it and agreed on with
 * vae_dist_check, so a bad input is one error line and a clean exit on every rank, never a hang. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "metrics.h"
#include "outdir.h"
#include "signals.h"
#include "trainer.h"
#include "watchdog.h"

#define DEFAULT_DATA "datasets/fashion-mnist.h5"

/* Parses and validates the options and probes the data files; every rank does it alone. */
static int setup_options(vae_trainer *t, int argc, char **argv, size_t mem_limit, char *err) {
  vae_train_opts *o = &t->o;
  vae_train_opts_default(o);
  int rc = vae_train_opts_parse(o, argc, argv, err);
  if (rc != 0) return rc;
  if (vae_train_opts_validate(o, err) < 0) return -1;
  if (o->data[0] == '\0') {
    if (access(DEFAULT_DATA, R_OK) != 0)
      return vae_err(
          err,
          "no --data given and %s does not exist: run scripts/get-fashion-mnist.sh, or pass --data FILE.h5",
          DEFAULT_DATA);
    snprintf(o->data, sizeof o->data, "%s", DEFAULT_DATA);
  }
  if (vae_data_probe(o->data, o->dataset, "--dataset", &t->train_info, err) < 0) return -1;
  t->has_test = 0;
  if (o->test_dataset[0] != '\0' && (o->test_dataset_given || vae_data_exists(o->data, o->test_dataset))) {
    if (vae_data_probe(o->data, o->test_dataset, "--test-dataset", &t->test_info, err) < 0) return -1;
    if (t->test_info.d != t->train_info.d)
      return vae_err(
          err,
          "test dataset %s has %zu values per image but training dataset %s has %zu; pass a matching --test-dataset or --test-dataset ''",
          o->test_dataset, t->test_info.d, o->dataset, t->train_info.d);
    t->has_test = 1;
  }
  o->model.in_h = (int)t->train_info.h;
  o->model.in_w = (int)t->train_info.w;
  o->model.in_c = (int)t->train_info.c;
  if (vae_config_validate(&o->model, err) < 0) return -1;
  const int threads = o->threads > 0 ? o->threads : 1;
  const size_t workers = (size_t)t->d.size * (size_t)threads;
  if (t->train_info.n < workers && threads == 1)
    return vae_err(err, "%s:%s has %zu images, fewer than the %d ranks; use at most %zu ranks", o->data,
                   o->dataset, t->train_info.n, t->d.size, t->train_info.n);
  if (t->train_info.n < workers)
    return vae_err(
        err,
        "%s:%s has %zu images, fewer than the %zu workers (%d ranks x %d threads); use at most %zu workers in all",
        o->data, o->dataset, t->train_info.n, workers, t->d.size, threads, t->train_info.n);
  if (vae_data_check_shard_fits(&t->train_info, t->d.rank, t->d.size, mem_limit, err) < 0) return -1;
  return 0;
}

/* ---- the output folder (rank 0, through vae_dist_on_root) ---- */

typedef struct {
  const vae_train_opts *o;
  int lock_fd; /* held until the process exits */
} outdir;

/* Takes the lock of --out; a fresh start never overwrites an earlier run's checkpoint. */
static int take_outdir(void *ctx, char *err) {
  outdir *od = ctx;
  const vae_train_opts *o = od->o;
  if ((od->lock_fd = vae_outdir_lock(o->out, err)) < 0) return -1;
  if (o->resume[0] != '\0') return 0;
  char ck[VAE_PATH_LEN + 32];
  snprintf(ck, sizeof ck, "%s/checkpoint.h5", o->out);
  if (access(ck, F_OK) == 0)
    return vae_err(
        err,
        "%s already holds a checkpoint: pass --resume auto to continue that run, or another --out for a new one",
        o->out);
  return 0;
}

static int open_metrics(void *ctx, char *err) {
  vae_trainer *t = ctx;
  return vae_metrics_open(&t->metrics, t->o.out, t->resumed ? t->st.step : 0, err);
}

/* Collective: the training shard and the test shard, then their values checked (finite; in [0, 1]
 * for the Bernoulli decoder). */
static void read_shards(vae_trainer *t) {
  char err[VAE_ERR_LEN] = "";
  const int unit = t->o.model.decoder == VAE_DEC_BERNOULLI;
  int rc = vae_data_read_shard(&t->train_info, MPI_COMM_WORLD, &t->train, err);
  if (rc == 0) rc = vae_shard_validate(&t->train, unit, err);
  vae_dist_check(&t->d, rc < 0, err);
  if (!t->has_test) return;
  rc = vae_data_read_shard(&t->test_info, MPI_COMM_WORLD, &t->test, err);
  if (rc == 0) rc = vae_shard_validate(&t->test, unit, err);
  vae_dist_check(&t->d, rc < 0, err);
}

/* Collective: worker threads squeezed onto fewer cores than there are workers (mpirun binds each
 * rank to one core by default at np <= 2) take turns on them; say so once, with the launch fix. */
static void warn_binding(const vae_trainer *t) {
  const long cores = -vae_dist_max_long(MPI_COMM_WORLD, -(long)vae_dist_rank_cores()); /* the fewest */
  if (t->workers <= cores || t->d.rank != 0) return;
  fprintf(
      stderr,
      "vae_mpi: warning: %d worker threads per rank, but a rank may run on only %ld core(s) (the launcher's binding): the threads share them. Launch with mpirun --bind-to none, --map-by ppr:1:node:pe=%d, or srun --cpus-per-task=%d\n",
      t->workers, cores, t->workers, t->workers);
}

int vae_cmd_train(int argc, char **argv) {
  vae_trainer *t = callocCheck(1, sizeof *t);
  vae_dist_init(&argc, &argv, &t->d);
  vae_cli_quiet(t->d.rank != 0);
  char err[VAE_ERR_LEN] = "";
  size_t mem_limit = vae_data_mem_limit(MPI_COMM_WORLD); /* collective: before any early return */
  int rc = setup_options(t, argc, argv, mem_limit, err);
  if (rc == 0) rc = vae_train_fault_from_env(&t->fault, err);
  if (rc == 1) { /* --help */
    vae_dist_finalize();
    free(t);
    return 0;
  }
  vae_dist_check(&t->d, rc < 0, err);
  const vae_train_opts *o = &t->o;

  /* The output folder and its lock (rank 0), before anything is read or written there. */
  outdir od = {o, -1};
  vae_dist_on_root(&t->d, take_outdir, &od);

  vae_trainer_alloc(t);
  vae_train_start(t); /* a checkpoint's state, or the seed's initialisation, on every rank */
  read_shards(t);
  /* One worker (the default): its OpenBLAS on the rank's cores. Several: one BLAS thread each
   * (vae_trainer_alloc). */
  t->blas_threads = t->workers > 1 ? 1 : vae_dist_blas_threads(o->threads);
  openblas_set_num_threads(t->blas_threads);
  warn_binding(t);
  vae_signals_install();
  vae_dist_check(&t->d, vae_watchdog_start(o->comm_timeout, t->d.rank, err) < 0, err);
  vae_dist_on_root(&t->d, open_metrics, t);

  int status = vae_train_run(t);
  vae_watchdog_stop();
  if (t->d.rank == 0 && status == 0 && t->st.epoch >= o->epochs)
    printf("vae_mpi train: done, %ld epochs, %ld steps; checkpoint %s/checkpoint.h5\n", t->st.epoch,
           t->st.step, o->out);

  if (t->d.rank == 0) vae_metrics_close(&t->metrics);
  vae_trainer_free(t);
  if (od.lock_fd >= 0) close(od.lock_fd);
  int rank = t->d.rank;
  free(t);
  vae_dist_finalize();
  /* Rank 0 carries the job's status (see vae_dist_check for why the others exit 0). */
  return rank == 0 ? status : 0;
}
