/* test_iw.c: the importance-weighted bound (iw.c) and the ELBO (src/eval/elbo.c) against a model whose
 * log-likelihood is known in closed form. With no hidden layer and the gaussian decoder (fixed sigma)
 * the VAE is linear-Gaussian: z ~ N(0, I), x = W z + b + sigma n, so p(x) = N(b, W W^T + sigma^2 I)
 * and the posterior is N(S W^T (x - b) / sigma^2, S) with S = (I + W^T W / sigma^2)^-1.
 *  - exact q (W with orthogonal columns: S is diagonal, the encoder can represent it): every importance
 *    weight equals p(x), so IW_K = log p(x) for every K and every image; E[ELBO] = log p(x).
 *  - a wide diagonal q of a correlated posterior: ELBO < log p(x) by a known gap, IW_1 ~ ELBO, IW_K
 *    increases with K and reaches log p(x) at K = 5000.
 * Uses the library's functions exactly as `vae_mpi eval` does (vae_eval_shard, vae_iw_shard). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "evaluate.h"
#include "iw.h"
#include "rng.h"
#include "vae.h"

#define D 5
#define L 2
#define N 64
#define SIGMA 0.5
#define SEED 7
#define TWO_PI 6.283185307179586476925

/* Cholesky of the symmetric positive definite a (n x n) into lower l; returns log det a. */
static double cholesky(const double *a, double *l, int n) {
  double logdet = 0;
  memset(l, 0, sizeof(double) * (size_t)n * (size_t)n);
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++) {
      double s = a[i * n + j];
      for (int k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i == j) {
        l[i * n + i] = sqrt(s);
        logdet += 2 * log(l[i * n + i]);
      } else {
        l[i * n + j] = s / l[j * n + j];
      }
    }
  return logdet;
}

/* Solves l l^T y = r in place (r: n). */
static void chol_solve(const double *l, double *r, int n) {
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < i; k++) r[i] -= l[i * n + k] * r[k];
    r[i] /= l[i * n + i];
  }
  for (int i = n - 1; i >= 0; i--) {
    for (int k = i + 1; k < n; k++) r[i] -= l[k * n + i] * r[k];
    r[i] /= l[i * n + i];
  }
}

typedef struct {
  double w[D][L], b[D];
  double logp[N]; /* exact log p(x_i) */
  double elbo[N]; /* exact ELBO of the encoder's q */
  float x[N * D];
} problem;

/* Sets the decoder to (w, b) and the encoder to q(z|x) = N(A (x - b), diag(exp(lv))) where A is the
 * exact posterior mean map and, with wide == 0, lv = -log diag(S^-1) (exact when S is diagonal), or
 * with wide == 1, exp(lv) = 1.05 lambda_max(S) on every axis: wider than the posterior in every
 * direction, so the importance weights are bounded and IW_K converges fast. Draws the
 * data from the model and computes log p(x) and the ELBO in closed form. */
static void setup(problem *pr, const vae_config *c, const vae_views *p, int wide) {
  const double s2 = SIGMA * SIGMA;
  /* no hidden layer: layer 0 is the encoder's mu|logvar head, layer 1 the decoder's output */
  float *enc_w = p->buf + p->net.layer[0].w, *enc_b = p->buf + p->net.layer[0].b;
  float *dec_w = p->buf + p->net.layer[1].w, *dec_b = p->buf + p->net.layer[1].b;
  for (int i = 0; i < D; i++) {
    dec_b[i] = (float)pr->b[i];
    for (int j = 0; j < L; j++) dec_w[i * L + j] = (float)pr->w[i][j];
  }
  /* P = S^-1 = I + W^T W / s2 (L x L), A = S W^T / s2. */
  double P[L * L], Pl[L * L], A[L][D], lv[L];
  for (int j = 0; j < L; j++)
    for (int k = 0; k < L; k++) {
      double s = j == k ? 1.0 : 0.0;
      for (int i = 0; i < D; i++) s += pr->w[i][j] * pr->w[i][k] / s2;
      P[j * L + k] = s;
    }
  cholesky(P, Pl, L);
  for (int i = 0; i < D; i++) {
    double col[L];
    for (int j = 0; j < L; j++) col[j] = pr->w[i][j] / s2;
    chol_solve(Pl, col, L);
    for (int j = 0; j < L; j++) A[j][i] = col[j];
  }
  /* L = 2: the largest eigenvalue of S is 1 / the smallest of P. */
  const double trP = P[0] + P[3], detP = P[0] * P[3] - P[1] * P[2];
  const double smax = 2.0 / (trP - sqrt(trP * trP - 4 * detP));
  for (int j = 0; j < L; j++) lv[j] = wide ? log(1.05 * smax) : -log(P[j * L + j]);
  /* enc_head rows [0, L) mu, [L, 2L) logvar. */
  for (int j = 0; j < L; j++) {
    double ab = 0;
    for (int i = 0; i < D; i++) {
      enc_w[j * D + i] = (float)A[j][i];
      enc_w[(L + j) * D + i] = 0.0f;
      ab += A[j][i] * pr->b[i];
    }
    enc_b[j] = (float)(-ab);
    enc_b[L + j] = (float)lv[j];
  }
  /* The data, from the model itself. */
  float zn[N * L], nn[N * D];
  vae_rng_normal(zn, N * L, 99, 77, 0, 0, 0);
  vae_rng_normal(nn, N * D, 99, 78, 0, 0, 0);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < D; i++) {
      double v = pr->b[i] + SIGMA * nn[n * D + i];
      for (int j = 0; j < L; j++) v += pr->w[i][j] * zn[n * L + j];
      pr->x[n * D + i] = (float)v;
    }
  /* log p(x) with C = W W^T + s2 I. */
  double C[D * D], Cl[D * D];
  for (int i = 0; i < D; i++)
    for (int k = 0; k < D; k++) {
      double s = i == k ? s2 : 0.0;
      for (int j = 0; j < L; j++) s += pr->w[i][j] * pr->w[k][j];
      C[i * D + k] = s;
    }
  double logdet = cholesky(C, Cl, D);
  for (int n = 0; n < N; n++) {
    double r[D], y[D], q = 0;
    for (int i = 0; i < D; i++) r[i] = y[i] = pr->x[n * D + i] - pr->b[i];
    chol_solve(Cl, y, D);
    for (int i = 0; i < D; i++) q += r[i] * y[i];
    pr->logp[n] = -0.5 * (D * log(TWO_PI) + logdet + q);
    /* ELBO = E_q log p(x|z) - KL(q || N(0, I)), q = N(m, diag(v)):
     * E_q log p(x|z) = -D/2 log(2 pi s2) - (|x - b - W m|^2 + sum_j v_j |W_:j|^2) / (2 s2). */
    double m[L], res = 0, tr = 0, kl = 0;
    for (int j = 0; j < L; j++) {
      m[j] = 0;
      for (int i = 0; i < D; i++) m[j] += A[j][i] * r[i];
      kl += -0.5 * (1 + lv[j] - m[j] * m[j] - exp(lv[j]));
    }
    for (int i = 0; i < D; i++) {
      double e = r[i];
      for (int j = 0; j < L; j++) {
        e -= pr->w[i][j] * m[j];
        tr += exp(lv[j]) * pr->w[i][j] * pr->w[i][j];
      }
      res += e * e;
    }
    pr->elbo[n] = -0.5 * D * log(TWO_PI * s2) - (res + tr) / (2 * s2) - kl;
  }
}

/* A one-image shard of row n: elbo.c and iw.c key the noise by s->offset + row. */
static vae_shard one_image(problem *pr, int n) {
  vae_shard s;
  memset(&s, 0, sizeof s);
  s.offset = (size_t)n;
  s.count = 1;
  s.d = D;
  s.f32 = pr->x + (size_t)n * D;
  return s;
}

static void mean_se(const double *v, int n, double *mean, double *se) {
  double s = 0, ss = 0;
  for (int i = 0; i < n; i++) s += v[i];
  *mean = s / n;
  for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
  *se = sqrt(ss / (n - 1) / n);
}

/* Per image: MC ELBO (src/eval/elbo.c) and IW_K (iw.c) through the shard functions eval uses. */
static void per_image(problem *pr, const vae_config *c, const vae_views *p, vae_workspace *ws, long K,
                      double *elbo, double *iw) {
  for (int n = 0; n < N; n++) {
    vae_shard s = one_image(pr, n);
    double e[3] = {0, 0, 0}, w[2] = {0, 0};
    vae_eval_shard(c, p, ws, &s, SEED, e);
    if (elbo) elbo[n] = -(e[0] + e[1]);
    vae_iw_shard(c, p, ws, &s, SEED, K, w);
    iw[n] = w[0];
    CHECK(e[2] == 1 && w[1] == 1, "image counts %g %g", e[2], w[1]);
  }
}

int main(void) {
  vae_config c;
  memset(&c, 0, sizeof c);
  c.in_h = 1, c.in_w = D, c.in_c = 1;
  c.n_hidden = 0;
  c.latent = L;
  c.decoder = VAE_DEC_GAUSSIAN;
  c.sigma = (float)SIGMA;
  c.logvar_min = VAE_DEFAULT_LOGVAR_MIN;
  char err[1024];
  CHECK(vae_config_validate(&c, err) == 0, "config: %s", err);
  float *params = calloc(vae_num_params(&c), sizeof(float));
  vae_views p;
  vae_views_init(&c, params, &p);
  vae_workspace *ws = vae_workspace_create(&c, 64);
  static problem pr;
  double elbo[N], iw[N], diff[N], m, se;

  /* ---- exact q: orthogonal columns ---- */
  const double w_exact[D][L] = {{0.8, 0.6}, {0.8, -0.6}, {0.0, 0.6}, {0.0, 0.0}, {0.0, 0.0}};
  const double b[D] = {0.1, -0.2, 0.3, 0.0, 0.5};
  memcpy(pr.w, w_exact, sizeof pr.w);
  memcpy(pr.b, b, sizeof pr.b);
  setup(&pr, &c, &p, 0);
  for (int n = 0; n < N; n++) CHECK_CLOSE(pr.elbo[n], pr.logp[n], 1e-9, 1e-9); /* q is exact */
  const long Ks[] = {1, 7, 100};
  for (int t = 0; t < 3; t++) {
    per_image(&pr, &c, &p, ws, Ks[t], t == 0 ? elbo : NULL, iw);
    double worst = 0;
    for (int n = 0; n < N; n++) worst = fmax(worst, fabs(iw[n] - pr.logp[n]));
    CHECK(worst < 2e-4, "exact q, K=%ld: max |IW - log p(x)| = %g", Ks[t], worst);
  }
  for (int n = 0; n < N; n++) diff[n] = elbo[n] - pr.logp[n];
  mean_se(diff, N, &m, &se);
  CHECK(se > 0 && fabs(m) < 4 * se + 1e-4, "exact q: MC ELBO - log p(x) = %g +- %g", m, se);
  printf("exact q: IW_K = log p(x) per image for K = 1, 7, 100; MC ELBO - log p = %.4f +- %.4f\n", m, se);

  /* ---- a wide diagonal q of a correlated posterior ---- */
  const double w_mf[D][L] = {{1.0, 0.9}, {0.7, 1.1}, {0.2, 0.8}, {-0.5, 0.3}, {0.4, 0.0}};
  memcpy(pr.w, w_mf, sizeof pr.w);
  setup(&pr, &c, &p, 1);
  double gap = 0, lp = 0, el = 0;
  for (int n = 0; n < N; n++) {
    gap += (pr.logp[n] - pr.elbo[n]) / N;
    lp += pr.logp[n] / N;
    el += pr.elbo[n] / N;
    CHECK(pr.elbo[n] < pr.logp[n], "image %d: exact ELBO %g >= log p %g", n, pr.elbo[n], pr.logp[n]);
  }
  CHECK(gap > 0.2, "the wide-q gap %g is too small to test anything", gap);
  per_image(&pr, &c, &p, ws, 1, elbo, iw);
  for (int n = 0; n < N; n++) diff[n] = elbo[n] - pr.elbo[n];
  mean_se(diff, N, &m, &se);
  CHECK(fabs(m) < 4 * se + 1e-4, "wide q: MC ELBO - exact ELBO = %g +- %g", m, se);
  for (int n = 0; n < N; n++) diff[n] = iw[n] - pr.elbo[n];
  mean_se(diff, N, &m, &se);
  CHECK(fabs(m) < 4 * se + 1e-4, "wide q: IW_1 - exact ELBO = %g +- %g", m, se);
  printf("wide q: mean log p(x) %.5f, exact ELBO %.5f (gap %.4f)\n", lp, el, gap);
  const long Ks2[] = {1, 10, 100, 1000, 5000};
  double prev = -INFINITY;
  for (int t = 0; t < 5; t++) {
    per_image(&pr, &c, &p, ws, Ks2[t], NULL, iw);
    double mean = 0, worst_over = -INFINITY;
    for (int n = 0; n < N; n++) {
      mean += iw[n] / N;
      worst_over = fmax(worst_over, iw[n] - pr.logp[n]);
    }
    printf("  K = %5ld: mean IW %.5f, log p(x) - IW = %.5f\n", Ks2[t], mean, lp - mean);
    /* Increasing in K on average; per image the estimate scatters by about sqrt(Var(w) / K) (here
     * Var(w) / E[w]^2 is about 10: 0.1 nats at K = 1000), on the mean of 64 images 8 times less. */
    CHECK(mean >= prev - 0.01, "IW not increasing: K=%ld mean %g after %g", Ks2[t], mean, prev);
    CHECK(mean <= lp + 0.01, "K=%ld: mean IW %g above mean log p(x) %g", Ks2[t], mean, lp);
    if (Ks2[t] >= 1000)
      CHECK(worst_over < 0.25, "K=%ld: an image's IW exceeds log p(x) by %g", Ks2[t], worst_over);
    if (t > 0) CHECK(mean > el, "K=%ld: mean IW %g not above the exact ELBO %g", Ks2[t], mean, el);
    if (Ks2[t] == 5000)
      CHECK(fabs(lp - mean) < 0.02, "K=5000: IW %g still %g below log p(x)", mean, lp - mean);
    prev = mean;
  }

  /* ---- independence from the batch: images together or one by one, small workspace ---- */
  vae_workspace *small = vae_workspace_create(&c, 3);
  vae_shard all;
  memset(&all, 0, sizeof all);
  all.count = N;
  all.d = D;
  all.f32 = pr.x;
  double sum_one = 0, sums[2] = {0, 0};
  per_image(&pr, &c, &p, ws, 37, NULL, iw);
  for (int n = 0; n < N; n++) sum_one += iw[n];
  vae_iw_shard(&c, &p, small, &all, SEED, 37, sums);
  CHECK(sums[1] == N, "images %g", sums[1]);
  CHECK_CLOSE(sums[0], sum_one, 1e-9, 0);
  /* Another seed draws other noise. */
  double other[2] = {0, 0};
  vae_iw_shard(&c, &p, small, &all, SEED + 1, 37, other);
  CHECK(other[0] != sums[0], "the seed changed nothing");

  vae_workspace_free(small);
  vae_workspace_free(ws);
  free(params);
  return check_done("test_iw");
}
