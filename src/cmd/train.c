/* train.c: `vae_mpi train`, the driver that wires cli, data, model, checkpoint, dist and metrics.
 * Every user error is found before the first collective that depends on it and agreed on with
 * vae_dist_check, so a bad input is one error line and a clean exit on every rank, never a hang. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adam.h"
#include "blas_kernels.h"
#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "evaluate.h"
#include "metrics.h"
#include "outdir.h"
#include "rng.h"
#include "signals.h"
#include "train_images.h"
#include "vae.h"

#define DEFAULT_DATA "datasets/fashion-mnist.h5"
#define VAE_STOPPED (-1) /* run_epoch: --max-steps reached, checkpoint written; the process exits 0 */

static double now(void) { return vae_dist_time(); }

/* ---- setup: options, data, model ---- */

typedef struct {
  vae_dist d;
  vae_train_opts o;
  vae_data_info train_info, test_info;
  int has_test;
  vae_shard train, test;
  size_t n_params;
  float *params, *grads, *m, *v; /* grads has room for the step's extras after n_params */
  vae_views pv, gv;
  vae_workspace *ws;
  vae_ckpt_state st; /* position and the epoch's running sums */
  int lock_fd;
  int threads;
  vae_metrics metrics;
  long fault_rank, fault_step, fault_count; /* VAE_FAULT_NONFINITE; fault_count 0 = off */
} trainer;

/* Fault injection (tests only): VAE_FAULT_NONFINITE=RANK:STEP[:COUNT] makes rank RANK's local loss,
 * and so its gradient, NaN for COUNT (default 1) steps from global step STEP (0-based), to exercise
 * the non-finite step policy end to end. Parsed once at startup; a malformed value is a user error
 * (a typo must not pass silently). Unset or empty: off. */
static int parse_fault_env(trainer *t, char *err) {
  t->fault_count = 0;
  const char *s = getenv("VAE_FAULT_NONFINITE");
  if (!s || !*s) return 0;
  long v[3] = {0, 0, 1};
  const char *p = s;
  char *end = NULL;
  int n = 0, ok = 1;
  while (ok && n < 3) {
    errno = 0;
    v[n] = strtol(p, &end, 10);
    ok = end != p && errno == 0 && v[n] >= 0;
    n++;
    if (!ok || *end == '\0') break;
    ok = *end == ':';
    p = end + 1;
  }
  if (!ok || n < 2 || *end != '\0' || v[2] < 1)
    return vae_err(
        err, "VAE_FAULT_NONFINITE='%s' is not RANK:STEP[:COUNT] with RANK, STEP >= 0 and COUNT >= 1", s);
  t->fault_rank = v[0];
  t->fault_step = v[1];
  t->fault_count = v[2];
  return 0;
}

/* Parses and validates the options and probes the data files; every rank does it alone. */
static int setup_options(trainer *t, int argc, char **argv, size_t mem_limit, char *err) {
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
  if (t->train_info.n < (size_t)t->d.size)
    return vae_err(err, "%s:%s has %zu images, fewer than the %d ranks; use at most %zu ranks", o->data,
                   o->dataset, t->train_info.n, t->d.size, t->train_info.n);
  if (vae_data_check_shard_fits(&t->train_info, t->d.rank, t->d.size, mem_limit, err) < 0) return -1;
  return 0;
}

/* ---- resume ---- */

/* Rank 0 finds and reads the checkpoint to resume from; the result is broadcast afterwards. */
static int load_resume(trainer *t, int *resumed, char *err) {
  *resumed = 0;
  const vae_train_opts *o = &t->o;
  if (t->d.rank != 0 || o->resume[0] == '\0') return 0;
  char path[VAE_PATH_LEN + 64];
  vae_config ck;
  float *p = NULL, *m = NULL, *v = NULL;
  vae_ckpt_state st;
  if (strcmp(o->resume, "auto") == 0) {
    if (vae_checkpoint_load_latest(o->out, path, sizeof path, &ck, &p, &m, &v, &st, NULL, 0, err) < 0)
      return -1;
    if (path[0] == '\0') {
      printf("resume: no checkpoint in %s, starting fresh\n", o->out);
      return 0;
    }
  } else {
    snprintf(path, sizeof path, "%s", o->resume);
    if (vae_checkpoint_read(path, &ck, &p, &m, &v, &st, err) < 0) return -1;
  }
  int bad = vae_checkpoint_match(&ck, &o->model, err) < 0;
  if (!bad && st.has_data &&
      ((size_t)st.data_n != t->train_info.n || strcmp(st.data_dataset, o->dataset) != 0))
    bad =
        vae_err(
            err,
            "checkpoint %s was trained on %s (%lld images of %s), this run reads %zu images of %s; resume with the same data or start a fresh --out",
            path, st.data_file, st.data_n, st.data_dataset, t->train_info.n, o->dataset) < 0;
  if (!bad && (!m || !v))
    bad = vae_err(err, "checkpoint %s has no optimizer state (model only); it cannot resume training", path) <
          0;
  if (!bad) {
    memcpy(t->params, p, t->n_params * sizeof *p);
    memcpy(t->m, m, t->n_params * sizeof *m);
    memcpy(t->v, v, t->n_params * sizeof *v);
    t->st = st;
    *resumed = 1;
    printf("resume: %s at epoch %ld, step %ld%s\n", path, st.epoch, st.step,
           st.world_size != t->d.size ? " (trained at another number of ranks: the trajectory will differ)"
                                      : "");
  }
  free(p);
  free(m);
  free(v);
  return bad ? -1 : 0;
}

/* ---- checkpoint ---- */

static void fill_state_identity(trainer *t) {
  vae_ckpt_state *st = &t->st;
  st->seed = t->o.seed;
  st->world_size = t->d.size;
  st->opts = t->o;
  st->has_opts = 1;
  st->has_data = 1;
  snprintf(st->data_file, sizeof st->data_file, "%s", t->o.data);
  snprintf(st->data_dataset, sizeof st->data_dataset, "%s", t->o.dataset);
  st->data_n = (long long)t->train_info.n;
  st->data_rank = t->train_info.ndims;
  for (int i = 0; i < 4; i++)
    st->data_shape[i] = i < t->train_info.ndims ? (long long)t->train_info.dims[i] : 0;
  const vae_data_kind k = t->train_info.kind;
  snprintf(st->data_dtype, sizeof st->data_dtype, "%s",
           k == VAE_DATA_UINT8     ? "uint8"
           : k == VAE_DATA_FLOAT32 ? "float32"
                                   : "float64");
}

/* Rank 0 writes OUT/checkpoint.h5 (and rotates --keep copies); every rank learns the outcome (a
 * failed write stops the job on every rank). The file is written here, its fsync and rename finish
 * in the background (vae_checkpoint_write_deferred), settled by the next checkpoint or the end of
 * run(); `durable` (a stop: the job exits next) waits for them here. Returns the seconds the ranks
 * waited. */
static double save_checkpoint(trainer *t, int durable) {
  double t0 = now();
  char err[VAE_ERR_LEN] = "";
  int failed = 0;
  if (t->d.rank == 0) {
    fill_state_identity(t);
    failed = vae_checkpoint_write_deferred(t->o.out, t->st.step, t->o.keep, &t->o.model, t->params, t->m,
                                           t->v, &t->st, err) < 0;
    if (!failed && durable) failed = vae_checkpoint_settle(err) < 0;
  }
  vae_dist_check(&t->d, failed, err);
  return now() - t0;
}

/* Peak resident set of this process (VmHWM), MiB; 0 where /proc is missing. */
static double peak_rss_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) {
      kib = strtod(line + 6, NULL);
      break;
    }
  fclose(f);
  return kib / 1024.0;
}

/* ---- one step ---- */

/* Extras reduced in the same allreduce as the gradient: */
enum { X_RECON, X_KL, X_COUNT, X_STOP, X_RANKS };

static float lr_at(const vae_train_opts *o, int world, long step) {
  double scale = o->lr_scale == VAE_LR_SCALE_LINEAR ? world
                 : o->lr_scale == VAE_LR_SCALE_SQRT ? sqrt(world)
                                                    : 1.0;
  double warm =
      o->lr_warmup_steps > 0 && step < o->lr_warmup_steps ? (double)(step + 1) / o->lr_warmup_steps : 1.0;
  return (float)(o->lr * scale * warm);
}

static float kl_weight_at(const vae_train_opts *o, long step) {
  if (o->kl_warmup_steps > 0 && step < o->kl_warmup_steps)
    return (float)(o->beta * (double)(step + 1) / o->kl_warmup_steps);
  return (float)o->beta;
}

typedef struct {
  double recon, kl, count, grad_norm;
  double allreduce_s; /* time in the gradient reduction (waiting for the slowest rank included) */
  int skipped, stop;
  float lr, kl_weight;
} step_result;

static step_result train_step(trainer *t, const uint32_t *rows, int n) {
  const vae_config *c = &t->o.model;
  const int L = c->latent, P = t->d.size;
  float *x = t->grads + t->n_params; /* extras live right after the gradient */
  step_result r = {0};
  long step = t->st.step;
  memset(t->grads, 0, (t->n_params + X_RANKS + (size_t)P) * sizeof *t->grads);
  r.kl_weight = kl_weight_at(&t->o, step);
  double recon = 0, kl = 0;
  if (n > 0) {
    vae_shard_batch(&t->train, rows, n, t->ws->x);
    vae_rng_normal(t->ws->eps, (size_t)n * L, t->o.seed, VAE_RNG_EPS, (uint32_t)t->d.rank, (uint64_t)step, 0);
    vae_forward(c, &t->pv, t->ws, t->ws->x, t->ws->eps, n);
    vae_backward(c, &t->pv, &t->gv, t->ws, t->ws->x, t->ws->eps, n, r.kl_weight, 1.0f);
    for (int b = 0; b < n; b++) {
      recon += t->ws->recon[b];
      kl += t->ws->kl[b];
    }
  }
  if (t->fault_count > 0 && t->d.rank == t->fault_rank && step >= t->fault_step &&
      step - t->fault_step < t->fault_count) {
    recon = NAN;
    t->grads[0] = NAN;
  }
  x[X_RECON] = (float)recon;
  x[X_KL] = (float)kl;
  x[X_COUNT] = (float)n;
  x[X_STOP] = vae_signal_pending() ? 1.0f : 0.0f;
  x[X_RANKS + t->d.rank] = isfinite(recon) && isfinite(kl) ? 0.0f : 1.0f;
  double t_red = now();
  vae_dist_sum_floats(t->grads, t->n_params + X_RANKS + (size_t)P);
  r.allreduce_s = now() - t_red;
  r.recon = x[X_RECON];
  r.kl = x[X_KL];
  r.count = x[X_COUNT];
  r.stop = x[X_STOP] > 0;
  /* The gradient of the global batch's mean loss: sum over ranks (allreduce) / images. */
  double sq = vae_sum_squares(t->grads, t->n_params);
  r.grad_norm = sqrt(sq) / r.count;
  int bad_rank = -1;
  for (int k = 0; k < P; k++)
    if (x[X_RANKS + k] != 0.0f && bad_rank < 0) bad_rank = k;
  r.lr = lr_at(&t->o, P, step);
  if (bad_rank >= 0 || !isfinite(sq) || !isfinite(r.recon) || !isfinite(r.kl)) {
    r.skipped = 1;
    if (t->d.rank == 0 && bad_rank >= 0)
      fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite loss on rank %d\n", step, bad_rank);
    else if (t->d.rank == 0) /* every rank's loss was finite: the sum shows it, no rank can be named */
      fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite gradient after the allreduce\n", step);
  } else {
    float gscale = (float)(1.0 / r.count);
    if (t->o.clip_grad_norm > 0 && r.grad_norm > t->o.clip_grad_norm)
      gscale *= (float)(t->o.clip_grad_norm / (r.grad_norm + 1e-6));
    vae_adam a = {r.lr, (float)t->o.beta1, (float)t->o.beta2, (float)t->o.adam_eps};
    /* Adam's t counts applied updates: a skipped step leaves Adam as it was (PyTorch's GradScaler
     * skips optimizer.step() the same way). */
    vae_adam_update(&a, ++t->st.adam_step, t->params, t->grads, t->m, t->v, t->n_params, gscale);
  }
  t->st.step++;
  return r;
}

/* ---- the run ---- */

static long steps_per_epoch(const trainer *t) {
  long mine = (long)((t->train.count + (size_t)t->o.batch_size - 1) / (size_t)t->o.batch_size);
  return vae_dist_max_long(MPI_COMM_WORLD, mine); /* the most any rank needs: every image once an epoch */
}

/* One epoch from the saved position: steps, then the test ELBO, metrics and the epoch checkpoint.
 * Returns 0, VAE_EXIT_PREEMPTED after a signal's checkpoint, or 1 after too many skipped steps. */
static int run_epoch(trainer *t, uint32_t *perm, long spe, int *consecutive_skips, double t_start) {
  vae_train_opts *o = &t->o;
  const int B = o->batch_size;
  double t_epoch = now(), t_train = 0, t_red = 0, images = 0;
  vae_rng_permutation(perm, (uint32_t)t->train.count, o->seed, (uint32_t)t->d.rank, (uint64_t)t->st.epoch);
  for (long s = t->st.epoch_step; s < spe; s++) {
    size_t lo = (size_t)s * (size_t)B;
    int n =
        lo >= t->train.count ? 0 : (int)(t->train.count - lo < (size_t)B ? t->train.count - lo : (size_t)B);
    double t0 = now();
    step_result r = train_step(t, perm + (n > 0 ? lo : 0), n);
    t_train += now() - t0;
    t_red += r.allreduce_s;
    images += n;
    t->st.epoch_step = s + 1;
    t->st.epoch_steps_total = spe;
    if (r.skipped) {
      t->st.epoch_skipped++;
      if (++*consecutive_skips >= o->max_skips) {
        if (t->d.rank == 0)
          fprintf(
              stderr,
              "vae_mpi: error: %d consecutive steps had a non-finite loss or gradient (last: step %ld); lower --lr, set --clip-grad-norm, or check the data\n",
              *consecutive_skips, t->st.step - 1);
        return 1;
      }
    } else {
      *consecutive_skips = 0;
      t->st.epoch_recon_sum += r.recon;
      t->st.epoch_kl_sum += r.kl;
      t->st.epoch_count += r.count;
    }
    if (t->d.rank == 0) {
      if (o->log_every > 0 && t->st.step % o->log_every == 0 && !r.skipped)
        vae_metrics_step(&t->metrics, t->st.epoch + 1, t->st.step, r.recon / r.count, r.kl / r.count, r.lr,
                         r.kl_weight, r.grad_norm);
      if (t->st.epoch_count > 0)
        vae_metrics_progress(&t->metrics, t->st.epoch + 1, s + 1, spe, now() - t_epoch,
                             t->st.epoch_recon_sum / t->st.epoch_count,
                             t->st.epoch_kl_sum / t->st.epoch_count);
    }
    if (r.stop) {
      save_checkpoint(t, 1);
      if (t->d.rank == 0)
        printf(
            "\nvae_mpi: stopped by a signal at step %ld; checkpoint written to %s/checkpoint.h5 (exit status %d; continue with --resume auto)\n",
            t->st.step, o->out, VAE_EXIT_PREEMPTED);
      return VAE_EXIT_PREEMPTED;
    }
    if (o->max_steps > 0 && t->st.step >= o->max_steps && s + 1 < spe) {
      save_checkpoint(t, 1);
      if (t->d.rank == 0)
        printf(
            "\nvae_mpi: stopped at --max-steps %ld (epoch %ld, step %ld of %ld); continue with --resume auto\n",
            o->max_steps, t->st.epoch + 1, s + 1, spe);
      return VAE_STOPPED;
    }
    if (o->checkpoint_every > 0 && t->st.step % o->checkpoint_every == 0 && s + 1 < spe)
      save_checkpoint(t, 0);
  }
  vae_epoch_record rec = {0};
  rec.epoch = t->st.epoch + 1;
  rec.step = t->st.step;
  rec.train_recon = t->st.epoch_recon_sum / t->st.epoch_count;
  rec.train_kl = t->st.epoch_kl_sum / t->st.epoch_count;
  rec.lr = lr_at(o, t->d.size, t->st.step - 1);
  rec.skipped = t->st.epoch_skipped;
  /* Training throughput: all images processed over the slowest rank's time in steps (the
   * allreduce in every step keeps the ranks in lockstep). */
  double tmax[3] = {t_train, t_red, peak_rss_mib()};
  vae_dist_max_doubles(tmax, 3);
  vae_dist_sum_doubles(&images, 1);
  rec.samples_per_s = tmax[0] > 0 ? images / tmax[0] : 0;
  rec.train_seconds = tmax[0];
  rec.allreduce_seconds = tmax[1];
  rec.peak_rss_mib = tmax[2];
  if (t->has_test) {
    double ev[3] = {0, 0, 0};
    vae_eval_shard(&o->model, &t->pv, t->ws, &t->test, o->seed, ev);
    vae_dist_sum_doubles(ev, 3);
    rec.has_test = 1;
    rec.test_recon = ev[0] / ev[2];
    rec.test_kl = ev[1] / ev[2];
  }
  /* Data parallelism keeps every rank's parameters bit-identical; check it once an epoch. */
  if (!vae_dist_same_bytes(t->params, t->n_params * sizeof *t->params)) {
    if (t->d.rank == 0)
      fprintf(
          stderr,
          "vae_mpi: error: parameters differ between ranks after epoch %ld (an MPI or hardware fault); the last checkpoint is intact, rerun with --resume auto\n",
          t->st.epoch + 1);
    return 1;
  }
  if (!o->no_images && t->d.rank == 0)
    vae_train_images(o->out, rec.epoch, &o->model, &t->pv, o->seed, t->has_test ? &t->test : &t->train);
  /* The epoch is complete: the checkpoint records the start of the next one. */
  t->st.epoch++;
  t->st.epoch_step = 0;
  t->st.epoch_recon_sum = t->st.epoch_kl_sum = t->st.epoch_count = 0;
  t->st.epoch_skipped = 0;
  rec.checkpoint_seconds = save_checkpoint(t, 0);
  rec.seconds = now() - t_epoch;
  rec.elapsed = now() - t_start;
  if (t->d.rank == 0) vae_metrics_epoch(&t->metrics, &rec);
  return 0;
}

static int run(trainer *t) {
  vae_train_opts *o = &t->o;
  long spe = steps_per_epoch(t);
  uint32_t *perm = mallocCheck((t->train.count ? t->train.count : 1) * sizeof *perm);
  /* A checkpoint from another number of ranks: the same place in the epoch, proportionally. */
  if (t->st.world_size > 0 && t->st.world_size != t->d.size && t->st.epoch_step > 0 &&
      t->st.epoch_steps_total > 0)
    t->st.epoch_step = t->st.epoch_step * spe / t->st.epoch_steps_total;
  if (t->d.rank == 0) {
    char desc[256];
    vae_describe(&o->model, desc, sizeof desc);
    printf(
        "vae_mpi train: %d ranks x %d images = global batch %d, %ld steps/epoch, model %s (%s decoder), %zu parameters, %d BLAS thread(s) per rank, %s\n",
        t->d.size, o->batch_size, o->batch_size * t->d.size, spe, desc, vae_decoder_name(o->model.decoder),
        t->n_params, t->threads, vae_blas_describe());
    fflush(stdout);
  }
  int consecutive_skips = 0, status = 0;
  double t_start = now();
  if (o->max_steps > 0 && t->st.step >= o->max_steps) {
    if (t->d.rank == 0)
      printf("vae_mpi: already at step %ld >= --max-steps %ld; nothing to do\n", t->st.step, o->max_steps);
    status = VAE_STOPPED;
  }
  while (status == 0 && t->st.epoch < o->epochs) {
    status = run_epoch(t, perm, spe, &consecutive_skips, t_start);
    if (status == 0 && o->max_steps > 0 && t->st.step >= o->max_steps && t->st.epoch < o->epochs) {
      if (t->d.rank == 0)
        printf("vae_mpi: stopped at --max-steps %ld (end of epoch %ld); continue with --resume auto\n",
               o->max_steps, t->st.epoch);
      status = VAE_STOPPED;
    }
  }
  free(perm);
  /* The last checkpoint is on disk (renamed, folder synced) before the job reports or exits. */
  char err[VAE_ERR_LEN] = "";
  vae_dist_check(&t->d, t->d.rank == 0 && vae_checkpoint_settle(err) < 0, err);
  return status == VAE_STOPPED ? 0 : status;
}

int vae_cmd_train(int argc, char **argv) {
  trainer *t = callocCheck(1, sizeof *t);
  vae_dist_init(&argc, &argv, &t->d);
  vae_cli_quiet(t->d.rank != 0);
  char err[VAE_ERR_LEN] = "";
  size_t mem_limit = vae_data_mem_limit(MPI_COMM_WORLD); /* collective: before any early return */
  int rc = setup_options(t, argc, argv, mem_limit, err);
  if (rc == 0) rc = parse_fault_env(t, err);
  if (rc == 1) { /* --help */
    vae_dist_finalize();
    free(t);
    return 0;
  }
  vae_dist_check(&t->d, rc < 0, err);
  vae_train_opts *o = &t->o;

  /* The output folder and its lock (rank 0), before anything is read or written there. */
  t->lock_fd = -1;
  rc = 0;
  if (t->d.rank == 0) rc = (t->lock_fd = vae_outdir_lock(o->out, err)) < 0;
  if (t->d.rank == 0 && !rc && o->resume[0] == '\0') {
    /* A fresh start never overwrites an earlier run's checkpoint. */
    char ck[VAE_PATH_LEN + 32];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", o->out);
    if (access(ck, F_OK) == 0)
      rc =
          vae_err(
              err,
              "%s already holds a checkpoint: pass --resume auto to continue that run, or another --out for a new one",
              o->out) < 0;
  }
  vae_dist_check(&t->d, rc, err);

  /* Buffers: params, grads (+ extras for the allreduce), Adam moments. */
  t->n_params = vae_num_params(&o->model);
  t->params = callocCheck(t->n_params, sizeof(float));
  t->grads = callocCheck(t->n_params + X_RANKS + (size_t)t->d.size, sizeof(float));
  t->m = callocCheck(t->n_params, sizeof(float));
  t->v = callocCheck(t->n_params, sizeof(float));
  vae_views_init(&o->model, t->params, &t->pv);
  vae_views_init(&o->model, t->grads, &t->gv);

  int resumed = 0;
  rc = load_resume(t, &resumed, err);
  vae_dist_check(&t->d, rc < 0, err);
  resumed = vae_dist_any(resumed);
  if (!resumed && t->d.rank == 0) vae_init_params(&o->model, t->params, o->seed);
  /* Rank 0's parameters, moments and position to every rank. */
  vae_dist_bcast_floats(t->params, t->n_params);
  if (resumed) {
    vae_dist_bcast_floats(t->m, t->n_params);
    vae_dist_bcast_floats(t->v, t->n_params);
    vae_dist_bcast_bytes(&t->st, sizeof t->st);
  }

  /* Data: collective shard reads, then the values checked (finite; in [0, 1] for Bernoulli). */
  rc = vae_data_read_shard(&t->train_info, MPI_COMM_WORLD, &t->train, err);
  if (rc == 0) rc = vae_shard_validate(&t->train, o->model.decoder == VAE_DEC_BERNOULLI, err);
  vae_dist_check(&t->d, rc < 0, err);
  if (t->has_test) {
    rc = vae_data_read_shard(&t->test_info, MPI_COMM_WORLD, &t->test, err);
    if (rc == 0) rc = vae_shard_validate(&t->test, o->model.decoder == VAE_DEC_BERNOULLI, err);
    vae_dist_check(&t->d, rc < 0, err);
  }

  t->threads = vae_dist_blas_threads(o->threads);
  openblas_set_num_threads(t->threads);
  t->ws = vae_workspace_create(&o->model, o->batch_size);
  vae_signals_install();

  rc = 0;
  if (t->d.rank == 0) rc = vae_metrics_open(&t->metrics, o->out, resumed ? t->st.step : 0, err);
  vae_dist_check(&t->d, rc < 0, err);

  int status = t->st.epoch >= o->epochs ? 0 : run(t);
  if (t->d.rank == 0 && status == 0 && t->st.epoch >= o->epochs)
    printf("vae_mpi train: done, %ld epochs, %ld steps; checkpoint %s/checkpoint.h5\n", t->st.epoch,
           t->st.step, o->out);

  if (t->d.rank == 0) vae_metrics_close(&t->metrics);
  vae_workspace_free(t->ws);
  vae_shard_free(&t->train);
  if (t->has_test) vae_shard_free(&t->test);
  free(t->params);
  free(t->grads);
  free(t->m);
  free(t->v);
  if (t->lock_fd >= 0) close(t->lock_fd);
  int rank = t->d.rank;
  free(t);
  vae_dist_finalize();
  /* Rank 0 carries the job's status (see vae_dist_check for why the others exit 0). */
  return rank == 0 ? status : 0;
}
