/* test_grad_avg.c (under mpirun, np 2 and 3): the trainer's own step (vae_train_step, train/step.c)
 * against one process computing the whole global batch alone.
 *  - The reduction: each rank steps on its share of a 10-image batch; the summed gradient the step
 *    leaves in t.grads, and the recon, KL and image count packed into the same allreduce, equal the
 *    whole batch's, computed here with that batch's noise (each rank's, keyed by its rank); the
 *    gradient norm equals a double-precision norm of the mean gradient; the update is Adam's
 *    (vae_adam_update) on the mean gradient; every rank ends with the same bits.
 *  - The clip: with --clip-grad-norm below the norm, the gradient Adam used (m / (1 - beta1) after the
 *    first step) has the norm max_norm and the direction of the mean gradient; above it, it is
 *    untouched.
 *  - The skip: a non-finite loss on the last rank (the trainer's fault injection) is skipped by every
 *    rank alike, naming that rank: parameters, m, v and Adam's step count unchanged, the step count
 *    advanced; a gradient whose sum of squares overflows with finite losses is skipped naming no rank.
 *  - vae_sum_squares against a double loop, at the block edges, and NaN/Inf propagation. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "check.h"
#include "cli.h"
#include "error.h"
#include "rng.h"
#include "trainer.h"

enum { N = 10, D = 20, L = 3 }; /* the global batch, the values per image, the latent */

static double pixel(size_t row, size_t j) { return 0.5 + 0.45 * sin(0.9 * (double)row + 0.37 * (double)j); }

/* A trainer for this rank's share [lo, hi) of the N images (its shard holds exactly those rows). */
static vae_trainer *make_trainer(const vae_dist *d, double clip, long fault_step) {
  vae_trainer *t = callocCheck(1, sizeof *t);
  t->d = *d;
  vae_train_opts_default(&t->o);
  t->o.model = (vae_config){.in_h = 4,
                            .in_w = 5,
                            .in_c = 1,
                            .n_hidden = 1,
                            .hidden = {16},
                            .latent = L,
                            .decoder = VAE_DEC_BERNOULLI,
                            .sigma = 1.0f,
                            .logvar_min = VAE_DEFAULT_LOGVAR_MIN};
  t->o.batch_size = N;
  t->o.kl_warmup_steps = 4; /* a KL weight of 1/4 at step 0: the backward's kl_weight is wired */
  t->o.clip_grad_norm = clip;
  t->o.seed = 9;
  if (fault_step >= 0) t->fault = (vae_nonfinite_fault){.rank = d->size - 1, .step = fault_step, .count = 1};
  vae_trainer_alloc(t);
  size_t lo, cnt;
  vae_shard_range(N, d->rank, d->size, &lo, &cnt);
  vae_shard *s = &t->train;
  s->offset = lo, s->count = cnt, s->d = D;
  s->f32 = mallocCheck((cnt ? cnt : 1) * D * sizeof(float));
  for (size_t r = 0; r < cnt; r++)
    for (size_t j = 0; j < D; j++) s->f32[r * D + j] = (float)pixel(lo + r, j);
  vae_init_params(&t->o.model, t->params, 5);
  return t;
}

static vae_step_result step_all_rows(vae_trainer *t) {
  uint32_t rows[N];
  for (size_t i = 0; i < t->train.count; i++) rows[i] = (uint32_t)i;
  return vae_train_step(t, &t->train, (const uint32_t *const[]){rows}, (int[]){(int)t->train.count});
}

/* The whole batch alone, at step 0: summed gradient g (P), summed recon and KL. The noise of the
 * rows of rank k is what rank k draws: vae_rng_normal keyed by (seed, k, step). */
static void whole_batch(const vae_trainer *t, const float *params0, float *g, double *recon, double *kl) {
  const vae_config *c = &t->o.model;
  float *x = mallocCheck((size_t)N * D * sizeof *x), *eps = mallocCheck((size_t)N * L * sizeof *eps);
  for (size_t r = 0; r < N; r++)
    for (size_t j = 0; j < D; j++) x[r * D + j] = (float)pixel(r, j);
  for (int k = 0; k < t->d.size; k++) {
    size_t lo, cnt;
    vae_shard_range(N, k, t->d.size, &lo, &cnt);
    vae_rng_normal(eps + lo * L, cnt * L, t->o.seed, VAE_RNG_EPS, (uint32_t)k, 0, 0);
  }
  vae_views pv, gv;
  vae_views_init(c, (float *)params0, &pv);
  vae_views_init(c, g, &gv);
  memset(g, 0, t->n_params * sizeof *g);
  vae_workspace *ws = vae_workspace_create(c, N);
  vae_forward(c, &pv, ws, x, eps, N);
  vae_backward(c, &pv, &gv, ws, x, eps, N, vae_train_kl_weight(&t->o, 0), 1.0f);
  *recon = *kl = 0;
  for (int b = 0; b < N; b++) *recon += ws->recon[b], *kl += ws->kl[b];
  vae_workspace_free(ws);
  free(x);
  free(eps);
}

static double rel_norm(const float *a, const float *b, size_t n, double scale_b) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    double bi = scale_b * b[i];
    d += (a[i] - bi) * (a[i] - bi);
    r += bi * bi;
  }
  return sqrt(d / r);
}

static double norm_of(const float *a, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
  return sqrt(s);
}

static void check_reduction(const vae_dist *d) {
  vae_trainer *t = make_trainer(d, 0, -1);
  const size_t P = t->n_params;
  float *p0 = mallocCheck(P * sizeof *p0), *g = mallocCheck(P * sizeof *g);
  memcpy(p0, t->params, P * sizeof *p0);
  double recon, kl;
  whole_batch(t, p0, g, &recon, &kl);
  vae_step_result r = step_all_rows(t);
  CHECK(!r.skipped && r.bad_rank == -1 && r.count == N, "skipped %d, bad rank %d, images %g", r.skipped,
        r.bad_rank, r.count);
  CHECK_CLOSE(r.recon, recon, 1e-6, 0);
  CHECK_CLOSE(r.kl, kl, 1e-5, 0);
  CHECK_CLOSE(r.kl_weight, 0.25, 0, 0);
  double e = rel_norm(t->grads, g, P, 1.0);
  CHECK(e < 1e-5, "summed gradient: relative error %g against the whole batch", e);
  CHECK_CLOSE(r.grad_norm, norm_of(g, P) / N, 1e-5, 0);
  /* The update is Adam on the mean of the summed gradient the step holds. */
  float *m = callocCheck(P, sizeof *m), *v = callocCheck(P, sizeof *v);
  vae_adam a = {r.lr, t->o.beta1, t->o.beta2, (float)t->o.adam_eps};
  vae_adam_update(&a, 1, p0, t->grads, m, v, P, 1.0f / N);
  CHECK(memcmp(p0, t->params, P * sizeof *p0) == 0 && memcmp(m, t->m, P * sizeof *m) == 0,
        "the update is not Adam's on the mean gradient");
  CHECK(t->st.step == 1 && t->st.adam_step == 1, "step %ld, adam_step %ld", t->st.step, t->st.adam_step);
  CHECK(vae_dist_same_bytes(t->params, P * sizeof *t->params), "rank %d's parameters differ", d->rank);
  CHECK(vae_dist_same_bytes(t->grads, (P + vae_train_step_extras(d->size)) * sizeof *t->grads),
        "rank %d's reduced gradient and extras differ", d->rank);
  free(m), free(v), free(p0), free(g);
  vae_trainer_free(t);
  free(t);
}

/* With max_norm = norm * ratio: Adam's first m is (1 - beta1) times the gradient it used. */
static void check_clip(const vae_dist *d, double ratio) {
  vae_trainer *probe = make_trainer(d, 0, -1);
  double norm = step_all_rows(probe).grad_norm;
  vae_trainer_free(probe);
  free(probe);
  vae_trainer *t = make_trainer(d, norm * ratio, -1);
  vae_step_result r = step_all_rows(t);
  const size_t P = t->n_params;
  const double used = norm_of(t->m, P) / (1.0 - t->o.beta1), expect = ratio < 1 ? norm * ratio : norm;
  CHECK_CLOSE(r.grad_norm, norm, 0, 0); /* the norm reported is the one before clipping */
  CHECK_CLOSE(used, expect, 2e-6, 0);
  double e = rel_norm(t->m, t->grads, P, (1.0 - t->o.beta1) / N * expect / norm);
  CHECK(e < 2e-6, "clip ratio %g: the gradient used is not the mean gradient scaled (relative %g)", ratio, e);
  vae_trainer_free(t);
  free(t);
}

/* Every value of the named tensor set to v. */
static void set_tensor(vae_trainer *t, const char *name, float v) {
  vae_tensor tens[VAE_MAX_TENSORS];
  int nt = vae_tensors(&t->o.model, tens), found = 0;
  for (int i = 0; i < nt; i++)
    if (strcmp(tens[i].name, name) == 0) {
      for (size_t j = 0; j < vae_tensor_len(&tens[i]); j++) t->params[tens[i].offset + j] = v;
      found = 1;
    }
  if (!found) VAE_FAIL("no tensor %s", name);
}

static void check_skip(const vae_dist *d) {
  vae_trainer *t = make_trainer(d, 0, 1);
  const size_t P = t->n_params;
  step_all_rows(t);
  float *before = mallocCheck(3 * P * sizeof *before);
  memcpy(before, t->params, P * sizeof *before);
  memcpy(before + P, t->m, P * sizeof *before);
  memcpy(before + 2 * P, t->v, P * sizeof *before);
  vae_step_result r = step_all_rows(t); /* step 1: the last rank's loss is NaN */
  CHECK(r.skipped && r.bad_rank == d->size - 1, "fault: skipped %d, bad rank %d", r.skipped, r.bad_rank);
  CHECK(memcmp(before, t->params, P * sizeof *before) == 0 &&
            memcmp(before + P, t->m, P * sizeof *before) == 0 &&
            memcmp(before + 2 * P, t->v, P * sizeof *before) == 0,
        "a skipped step changed the parameters or Adam's moments");
  CHECK(t->st.step == 2 && t->st.adam_step == 1, "after the skip: step %ld, adam_step %ld", t->st.step,
        t->st.adam_step);
  r = step_all_rows(t); /* step 2 applies, with Adam's t = 2 */
  CHECK(!r.skipped && t->st.adam_step == 2, "after the skip: skipped %d, adam_step %ld", r.skipped,
        t->st.adam_step);
  /* Finite losses, an infinite gradient: black images, the decoder's hidden units at 2e38 (its bias)
   * feeding an output layer of zero weights and bias 10. Every logit is 10 (a loss of 10 nats a
   * pixel) and d loss / d logit is sigmoid(10) for every image, so d loss / d output weight, 2e38
   * summed over the images, overflows float. The sum shows it, no rank is named, nothing changes. */
  set_tensor(t, "decoder/hidden0/bias", 2e38f);
  set_tensor(t, "decoder/out/weight", 0.0f);
  set_tensor(t, "decoder/out/bias", 10.0f);
  memset(t->train.f32, 0, t->train.count * D * sizeof(float));
  memcpy(before, t->params, P * sizeof *before);
  r = step_all_rows(t);
  CHECK(r.skipped && r.bad_rank == -1 && isfinite(r.recon) && isfinite(r.kl),
        "overflow: skipped %d, bad rank %d, recon %g", r.skipped, r.bad_rank, r.recon);
  CHECK(memcmp(before, t->params, P * sizeof *before) == 0, "the overflowing step changed the parameters");
  free(before);
  vae_trainer_free(t);
  free(t);
}

static void check_sum_squares(void) {
  const size_t sizes[] = {0, 1, 7, 1023, 1024, 1025, 2048 + 13, 100000};
  float *x = mallocCheck(100000 * sizeof *x);
  for (size_t i = 0; i < 100000; i++) x[i] = (float)(sin(0.1 * (double)i) * (1 + (double)(i % 97)));
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    double ref = 0;
    for (size_t i = 0; i < sizes[k]; i++) ref += (double)x[i] * x[i];
    CHECK_CLOSE(vae_sum_squares(x, sizes[k]), ref, 1e-6, 0);
  }
  x[1500] = NAN;
  CHECK(isnan(vae_sum_squares(x, 2000)), "NaN does not propagate");
  x[1500] = INFINITY;
  CHECK(isinf(vae_sum_squares(x, 2000)), "Inf does not propagate");
  x[1500] = 3e38f; /* finite, its square is not a float: the sum must not be finite either */
  CHECK(!isfinite(vae_sum_squares(x, 2000)) || vae_sum_squares(x, 2000) > 1e76, "overflow lost");
  free(x);
}

int main(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  check_reduction(&d);
  check_clip(&d, 0.25);
  check_clip(&d, 4.0);
  check_skip(&d);
  check_sum_squares();
  int rc = check_done("test_grad_avg"), all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return all;
}
