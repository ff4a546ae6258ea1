/* train/step.c: one data-parallel training step (batch, noise, forward, backward, the one allreduce of
 * the gradient with its extras, the non-finite policy, clipping, Adam), the learning-rate and KL
 * schedules, and the trainer's buffers. Every rank ends a step with the same parameters and Adam
 * state: each takes the same decision from the same reduced numbers.
 * Must never: make a collective call other than the step's one allreduce (the ranks stay in lockstep
 * through it), read or write a file (but the VAE_TRACE test hook's), or update anything but the step
 * count on a skipped step. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "error.h"
#include "rng.h"
#include "signals.h"
#include "trace.h"
#include "trainer.h"
#include "watchdog.h"

/* The extras reduced in the same allreduce as the gradient, right after it: */
enum { X_RECON, X_KL, X_COUNT, X_STOP, X_RANKS /* then one non-finite flag per rank */ };

size_t vae_train_step_extras(int world_size) { return X_RANKS + (size_t)world_size; }

void vae_trainer_alloc(vae_trainer *t) {
  const vae_config *c = &t->o.model;
  t->n_params = vae_num_params(c);
  t->params = callocCheck(t->n_params, sizeof(float));
  t->grads = callocCheck(t->n_params + vae_train_step_extras(t->d.size), sizeof(float));
  t->m = callocCheck(t->n_params, sizeof(float));
  t->v = callocCheck(t->n_params, sizeof(float));
  vae_views_init(c, t->params, &t->pv);
  vae_views_init(c, t->grads, &t->gv);
  t->ws = vae_workspace_create(c, t->o.batch_size);
}

void vae_trainer_free(vae_trainer *t) {
  vae_workspace_free(t->ws);
  vae_shard_free(&t->train);
  vae_shard_free(&t->test);
  free(t->params);
  free(t->grads);
  free(t->m);
  free(t->v);
  t->ws = NULL;
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

/* This rank's part: the summed loss terms of its n images, and their gradient accumulated into
 * t->grads (zeroed here, extras included). */
static void local_gradient(vae_trainer *t, const vae_shard *s, const uint32_t *rows, int n, float kl_weight,
                           double *recon, double *kl) {
  const vae_config *c = &t->o.model;
  const long step = t->st.step;
  memset(t->grads, 0, (t->n_params + vae_train_step_extras(t->d.size)) * sizeof *t->grads);
  *recon = *kl = 0;
  if (n > 0) {
    vae_shard_batch(s, rows, n, t->ws->x);
    vae_rng_normal(t->ws->eps, (size_t)n * (size_t)c->latent, t->o.seed, VAE_RNG_EPS, (uint32_t)t->d.rank,
                   (uint64_t)step, 0);
    vae_forward(c, &t->pv, t->ws, t->ws->x, t->ws->eps, n);
    vae_backward(c, &t->pv, &t->gv, t->ws, t->ws->x, t->ws->eps, n, kl_weight, 1.0f);
    for (int b = 0; b < n; b++) {
      *recon += t->ws->recon[b];
      *kl += t->ws->kl[b];
    }
  }
  vae_train_trace(t, s, rows, n); /* the VAE_TRACE test hook: nothing unless set */
  const vae_nonfinite_fault *f = &t->fault;
  if (f->count > 0 && t->d.rank == f->rank && step >= f->step && step - f->step < f->count) {
    *recon = NAN;
    t->grads[0] = NAN;
  }
}

/* The one collective of a step: the gradient and the extras summed over the ranks, in place, under
 * the --comm-timeout watchdog (armed only around this sum: what it times is the transfer and the
 * wait for the slowest rank's forward and backward, never a checkpoint write or an evaluation). */
static void reduce_gradient(vae_trainer *t, double recon, double kl, int n, vae_step_result *r) {
  float *x = t->grads + t->n_params;
  x[X_RECON] = (float)recon;
  x[X_KL] = (float)kl;
  x[X_COUNT] = (float)n;
  x[X_STOP] = vae_signal_pending() ? 1.0f : 0.0f;
  x[X_RANKS + t->d.rank] = isfinite(recon) && isfinite(kl) ? 0.0f : 1.0f;
  vae_watchdog_arm("the gradient sum of step", t->st.step + 1); /* numbered as metrics.jsonl's steps */
  vae_dist_sum_floats(t->grads, t->n_params + vae_train_step_extras(t->d.size));
  r->allreduce_s = vae_watchdog_disarm();
  r->recon = x[X_RECON];
  r->kl = x[X_KL];
  r->count = x[X_COUNT];
  r->stop = x[X_STOP] > 0;
  r->bad_rank = -1;
  for (int k = 0; k < t->d.size && r->bad_rank < 0; k++)
    if (x[X_RANKS + k] != 0.0f) r->bad_rank = k;
}

vae_step_result vae_train_step(vae_trainer *t, const vae_shard *s, const uint32_t *rows, int n) {
  if (n < 0 || n > t->o.batch_size) VAE_FAIL("step of %d images, the workspace holds %d", n, t->o.batch_size);
  vae_step_result r = {0};
  const long step = t->st.step;
  r.kl_weight = vae_train_kl_weight(&t->o, step);
  r.lr = vae_train_lr(&t->o, t->d.size, step);
  double recon, kl;
  local_gradient(t, s, rows, n, r.kl_weight, &recon, &kl);
  reduce_gradient(t, recon, kl, n, &r);
  /* The gradient of the global batch's mean loss: sum over ranks (allreduce) / images. */
  double sq = vae_sum_squares(t->grads, t->n_params);
  r.grad_norm = sqrt(sq) / r.count;
  if (r.bad_rank >= 0 || !isfinite(sq) || !isfinite(r.recon) || !isfinite(r.kl)) {
    r.skipped = 1;
    if (t->d.rank == 0 && r.bad_rank >= 0)
      fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite loss on rank %d\n", step, r.bad_rank);
    else if (t->d.rank == 0) /* every rank's loss was finite: the sum shows it, no rank can be named */
      fprintf(stderr, "vae_mpi: warning: step %ld skipped: non-finite gradient after the allreduce\n", step);
  } else {
    float gscale = (float)(1.0 / r.count);
    if (t->o.clip_grad_norm > 0 && r.grad_norm > t->o.clip_grad_norm)
      gscale *= (float)(t->o.clip_grad_norm / (r.grad_norm + 1e-6));
    vae_adam a = {r.lr, t->o.beta1, t->o.beta2, (float)t->o.adam_eps};
    /* Adam's t counts applied updates: a skipped step leaves Adam as it was (PyTorch's GradScaler
     * skips optimizer.step() the same way). */
    vae_adam_update(&a, ++t->st.adam_step, t->params, t->grads, t->m, t->v, t->n_params, gscale);
  }
  t->st.step++;
  return r;
}
