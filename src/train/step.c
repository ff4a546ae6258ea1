/* train/step.c: one data-parallel training step (each worker thread's batch, noise, forward and
 * backward; the workers' gradients summed on the node; the one allreduce of that sum with its extras
 * between the ranks; the non-finite policy, clipping, Adam split over the threads), the learning-rate
 * and KL schedules, and the trainer's buffers. Every rank ends a step with the same parameters and
 * Adam state: each takes the same decision from the same reduced numbers, and every sum runs in a
 * fixed order (never in the order threads happen to finish).
 * Must never: make a collective call other than the step's one allreduce (the ranks stay in lockstep
 * through it), call MPI from a worker thread, read or write a file (but the VAE_TRACE test hook's), or
 * update anything but the step count on a skipped step. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "adam.h"
#include "clones.h"
#include "error.h"
#include "rng.h"
#include "signals.h"
#include "team.h"
#include "trace.h"
#include "trainer.h"
#include "watchdog.h"

/* The extras reduced in the same allreduce as the gradient, right after it: */
enum {
  X_RECON,
  X_KL,
  X_COUNT,
  X_STOP,
  X_WORKERS /* then one non-finite flag per worker */
};

size_t vae_train_step_extras(int world_workers) { return X_WORKERS + (size_t)world_workers; }

int vae_train_world_workers(const vae_trainer *t) { return t->d.size * t->workers; }

void vae_trainer_alloc(vae_trainer *t) {
  const vae_config *c = &t->o.model;
  t->workers = t->o.threads > 0 ? t->o.threads : 1;
  t->n_params = vae_num_params(c);
  t->params = callocCheck(t->n_params, sizeof(float));
  t->grads = callocCheck(t->n_params + vae_train_step_extras(vae_train_world_workers(t)), sizeof(float));
  t->m = callocCheck(t->n_params, sizeof(float));
  t->v = callocCheck(t->n_params, sizeof(float));
  vae_views_init(c, t->params, &t->pv);
  t->w = callocCheck((size_t)t->workers, sizeof *t->w);
  for (int k = 0; k < t->workers; k++) {
    vae_worker *w = &t->w[k];
    w->grads = k == 0 ? t->grads : callocCheck(t->n_params, sizeof(float));
    vae_views_init(c, w->grads, &w->gv);
    w->ws = vae_workspace_create(c, t->o.batch_size);
  }
  t->gv = t->w[0].gv;
  t->ws = t->w[0].ws;
  t->sq_blocks = mallocCheck((t->n_params / VAE_SQ_BLOCK + 1) * sizeof *t->sq_blocks);
  /* Several workers call OpenBLAS at once: each runs it on its own thread alone (a multi-threaded
   * OpenBLAS under several callers would oversubscribe the cores). */
  if (t->workers > 1) openblas_set_num_threads(1);
  t->team = vae_team_create(t->workers);
  const char *trace = getenv("VAE_TRACE");
  if (trace && *trace && t->workers > 1)
    VAE_FAIL("VAE_TRACE traces one worker per rank: run with --threads 1");
}

void vae_trainer_free(vae_trainer *t) {
  vae_team_free(t->team);
  for (int k = 0; t->w && k < t->workers; k++) {
    vae_workspace_free(t->w[k].ws);
    if (k > 0) free(t->w[k].grads);
  }
  free(t->w);
  free(t->sq_blocks);
  vae_shard_free(&t->train);
  vae_shard_free(&t->test);
  free(t->params);
  free(t->grads);
  free(t->m);
  free(t->v);
  t->team = NULL;
  t->w = NULL;
  t->ws = NULL;
  t->sq_blocks = NULL;
  t->params = t->grads = t->m = t->v = NULL;
}

float vae_train_lr(const vae_train_opts *o, int world, long step) {
  double scale = o->lr_scale == VAE_LR_SCALE_LINEAR ? world
                 : o->lr_scale == VAE_LR_SCALE_SQRT ? sqrt(world)
                                                    : 1.0;
  double warm =
      o->lr_warmup_steps > 0 && step < o->lr_warmup_steps ? (double)(step + 1) / o->lr_warmup_steps : 1.0;
  return (float)(o->lr * scale * warm);
}

float vae_train_kl_weight(const vae_train_opts *o, long step) {
  if (o->kl_warmup_steps > 0 && step < o->kl_warmup_steps)
    return (float)(o->beta * (double)(step + 1) / o->kl_warmup_steps);
  return (float)o->beta;
}

int vae_train_fault_from_env(vae_nonfinite_fault *f, char *err) {
  memset(f, 0, sizeof *f);
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
  f->rank = v[0];
  f->step = v[1];
  f->count = v[2];
  return 0;
}

/* ======================================================================================
 * The step's phases: each runs on every worker thread at once (vae_team_run), k = the worker
 * ====================================================================================== */

enum { NORM_PASS, NORM_IN_SUM, NORM_IN_BACKWARD };

typedef struct {
  vae_trainer *t;
  const vae_shard *s;
  float kl_weight;
  int norm; /* where the summed gradient's block squares are taken (one rank: nothing is summed after
             * the node's sum, one worker: after its backward pass) */
  vae_adam adam;
  long adam_t;
  float gscale;
} step_ctx;

/* Worker k's share of the parameters: whole blocks of the sum of squares (also whole vectors). */
static void my_slice(const vae_trainer *t, int k, size_t *lo, size_t *hi) {
  vae_team_slice(t->n_params, t->workers, k, VAE_SQ_BLOCK, lo, hi);
}

/* Worker k's images: the summed loss terms and their gradient in its buffer (zeroed here). */
static void phase_gradient(void *ctx, int k) {
  step_ctx *c = ctx;
  vae_trainer *t = c->t;
  vae_worker *w = &t->w[k];
  const vae_config *cfg = &t->o.model;
  const long step = t->st.step;
  const int g = t->d.rank * t->workers + k; /* the worker's global index */
  const double t0 = vae_dist_time();
  memset(w->grads, 0, t->n_params * sizeof *w->grads);
  w->recon = w->kl = 0;
  if (w->n > 0) {
    vae_workspace *ws = w->ws;
    ws->sq_blocks = c->norm == NORM_IN_BACKWARD ? t->sq_blocks : NULL;
    vae_shard_batch(c->s, w->rows, w->n, ws->x);
    vae_rng_normal(ws->eps, (size_t)w->n * (size_t)cfg->latent, t->o.seed, VAE_RNG_EPS, (uint32_t)g,
                   (uint64_t)step, 0);
    vae_forward(cfg, &t->pv, ws, ws->x, ws->eps, w->n);
    vae_backward(cfg, &t->pv, &w->gv, ws, ws->x, ws->eps, w->n, c->kl_weight, 1.0f);
    for (int b = 0; b < w->n; b++) {
      w->recon += ws->recon[b];
      w->kl += ws->kl[b];
    }
  }
  const vae_nonfinite_fault *f = &t->fault;
  if (f->count > 0 && g == f->rank && step >= f->step && step - f->step < f->count) {
    w->recon = NAN;
    w->grads[0] = NAN;
    if (c->norm == NORM_IN_BACKWARD)
      t->sq_blocks[0] =
          vae_sum_squares_block(w->grads, t->n_params < VAE_SQ_BLOCK ? t->n_params : VAE_SQ_BLOCK);
  }
  w->compute_s = vae_dist_time() - t0;
}

VAE_CLONES static void add_floats(float *restrict dst, const float *restrict src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* The workers' gradients summed into worker 0's, slice by slice, always in worker order
 * (((g0 + g1) + g2) ...): the same bits whatever the timing. */
static void phase_sum(void *ctx, int k) {
  step_ctx *c = ctx;
  vae_trainer *t = c->t;
  size_t lo, hi;
  my_slice(t, k, &lo, &hi);
  for (size_t b = lo; b < hi; b += VAE_SQ_BLOCK) {
    size_t len = hi - b < VAE_SQ_BLOCK ? hi - b : VAE_SQ_BLOCK;
    for (int j = 1; j < t->workers; j++) add_floats(t->grads + b, t->w[j].grads + b, len);
    if (c->norm == NORM_IN_SUM) t->sq_blocks[b / VAE_SQ_BLOCK] = vae_sum_squares_block(t->grads + b, len);
  }
}

/* The summed gradient's sum of squares, block by block (added in order afterwards: vae_sum_squares). */
static void phase_norm(void *ctx, int k) {
  step_ctx *c = ctx;
  vae_trainer *t = c->t;
  size_t lo, hi;
  my_slice(t, k, &lo, &hi);
  for (size_t b = lo; b < hi; b += VAE_SQ_BLOCK)
    t->sq_blocks[b / VAE_SQ_BLOCK] =
        vae_sum_squares_block(t->grads + b, hi - b < VAE_SQ_BLOCK ? hi - b : VAE_SQ_BLOCK);
}

static void phase_adam(void *ctx, int k) {
  step_ctx *c = ctx;
  vae_trainer *t = c->t;
  size_t lo, hi;
  my_slice(t, k, &lo, &hi);
  vae_adam_update(&c->adam, c->adam_t, t->params + lo, t->grads + lo, t->m + lo, t->v + lo, hi - lo,
                  c->gscale);
}

/* ======================================================================================
 * The step
 * ====================================================================================== */

/* The one collective of a step: the node's summed gradient and the extras (the workers' loss sums
 * as floats in worker order, images, the stop flag, each worker's non-finite flag) summed over the
 * ranks, in place, under the --comm-timeout watchdog (armed only around this sum: what it times is
 * the transfer and the wait for the slowest rank's forward and backward, never a checkpoint write or
 * an evaluation). */
static void reduce_gradient(vae_trainer *t, vae_step_result *r) {
  const int W = vae_train_world_workers(t);
  float *x = t->grads + t->n_params;
  memset(x, 0, vae_train_step_extras(W) * sizeof *x);
  for (int k = 0; k < t->workers; k++) {
    const vae_worker *w = &t->w[k];
    x[X_RECON] += (float)w->recon;
    x[X_KL] += (float)w->kl;
    x[X_COUNT] += (float)w->n;
    x[X_WORKERS + t->d.rank * t->workers + k] = isfinite(w->recon) && isfinite(w->kl) ? 0.0f : 1.0f;
  }
  x[X_STOP] = vae_signal_pending() ? 1.0f : 0.0f;
  vae_watchdog_arm("the gradient sum of step", t->st.step + 1); /* numbered as metrics.jsonl's steps */
  vae_dist_sum_floats(t->grads, t->n_params + vae_train_step_extras(W));
  r->allreduce_s = vae_watchdog_disarm();
  r->recon = x[X_RECON];
  r->kl = x[X_KL];
  r->count = x[X_COUNT];
  r->stop = x[X_STOP] > 0;
  r->bad_rank = -1;
  for (int g = 0; g < W && r->bad_rank < 0; g++)
    if (x[X_WORKERS + g] != 0.0f) r->bad_rank = g;
}

static void warn_skip(const vae_trainer *t, long step, int bad) {
  if (t->d.rank != 0) return;
  if (bad >= 0 && t->workers == 1)
    fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite loss on rank %d\n", step, bad);
  else if (bad >= 0)
    fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite loss on worker %d (rank %d, thread %d)\n",
            step, bad, bad / t->workers, bad % t->workers);
  else /* every worker's loss was finite: the sum shows it, no worker can be named */
    fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite gradient after the allreduce\n", step);
}

vae_step_result vae_train_step(vae_trainer *t, const vae_shard *s, const uint32_t *const *rows,
                               const int *n) {
  for (int k = 0; k < t->workers; k++) {
    if (n[k] < 0 || n[k] > t->o.batch_size)
      VAE_FAIL("worker %d's step of %d images, the workspace holds %d", k, n[k], t->o.batch_size);
    t->w[k].rows = rows[k];
    t->w[k].n = n[k];
  }
  vae_step_result r = {0};
  const long step = t->st.step;
  r.kl_weight = vae_train_kl_weight(&t->o, step);
  r.lr = vae_train_lr(&t->o, vae_train_world_workers(t), step);
  step_ctx c = {.t = t, .s = s, .kl_weight = r.kl_weight, .norm = NORM_PASS};
  if (t->d.size == 1) c.norm = t->workers > 1 ? NORM_IN_SUM : n[0] > 0 ? NORM_IN_BACKWARD : NORM_PASS;
  double t0 = vae_dist_time();
  vae_team_run(t->team, phase_gradient, &c);
  double t1 = vae_dist_time();
  /* The VAE_TRACE test hook (nothing unless set; one worker per rank, vae_trainer_alloc): */
  vae_train_trace(t, s, t->w[0].rows, t->w[0].n);
  if (t->workers > 1) vae_team_run(t->team, phase_sum, &c);
  r.compute_s = t1 - t0;
  r.node_sum_s = vae_dist_time() - t1;
  reduce_gradient(t, &r);
  t1 = vae_dist_time();
  if (c.norm == NORM_PASS) vae_team_run(t->team, phase_norm, &c);
  /* The gradient of the global batch's mean loss: the workers' summed gradient / its images. The block
   * squares added in order: vae_sum_squares of the summed gradient, whatever the threads. */
  double sq = 0.0;
  for (size_t b = 0; b * VAE_SQ_BLOCK < t->n_params; b++) sq += t->sq_blocks[b];
  r.grad_norm = sqrt(sq) / r.count;
  if (r.bad_rank >= 0 || !isfinite(sq) || !isfinite(r.recon) || !isfinite(r.kl)) {
    r.skipped = 1;
    warn_skip(t, step, r.bad_rank);
  } else {
    c.gscale = (float)(1.0 / r.count);
    if (t->o.clip_grad_norm > 0 && r.grad_norm > t->o.clip_grad_norm)
      c.gscale *= (float)(t->o.clip_grad_norm / (r.grad_norm + 1e-6));
    c.adam = (vae_adam){r.lr, t->o.beta1, t->o.beta2, (float)t->o.adam_eps};
    /* Adam's t counts applied updates: a skipped step leaves Adam as it was (PyTorch's GradScaler
     * skips optimizer.step() the same way). */
    c.adam_t = ++t->st.adam_step;
    vae_team_run(t->team, phase_adam, &c);
  }
  r.update_s = vae_dist_time() - t1;
  t->st.step++;
  return r;
}
