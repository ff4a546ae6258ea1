/* test_layers.c: the layer and loss kernels against straightforward references: linear forward and
 * backward (cblas) vs the naive triple loops on odd sizes, ReLU, the reparameterization, the float
 * exp/log1p kernels over their whole range, and the three decoders' losses, gradients and the KL vs
 * double-precision formulas, including extreme logits and values at the log-variance floor. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "layers.h"
#include "loss.h"
#include "rng.h"
#include "vae.h"

static float *randu(size_t n, float lo, float hi, uint64_t step) {
  float *p = malloc(n * sizeof *p);
  vae_rng_uniform(p, n, 99, VAE_RNG_EVAL, 0, step, 0);
  for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * p[i];
  return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

static void test_linear(void) {
  const int B = 7, IN = 13, OUT = 5;
  float *x = randu((size_t)B * IN, -1, 1, 1), *w = randu((size_t)OUT * IN, -1, 1, 2);
  float *b = randu(OUT, -1, 1, 3), *dy = randu((size_t)B * OUT, -1, 1, 4);
  float y[7 * 5], yr[7 * 5];
  vae_linear_forward(y, x, w, b, B, IN, OUT);
  vae_linear_forward_ref(yr, x, w, b, B, IN, OUT);
  CHECK(max_abs_diff(y, yr, (size_t)B * OUT) < 1e-5, "linear forward differs by %g",
        max_abs_diff(y, yr, (size_t)B * OUT));
  /* the reference itself: one entry by hand */
  double s = b[3];
  for (int i = 0; i < IN; i++) s += (double)x[2 * IN + i] * w[3 * IN + i];
  CHECK_CLOSE(yr[2 * OUT + 3], s, 1e-6, 1e-6);
  int neg = 0, pos = 0;
  vae_linear_relu_forward(y, x, w, b, B, IN, OUT);
  for (int i = 0; i < B * OUT; i++) {
    float want = yr[i] > 0 ? yr[i] : 0;
    CHECK_CLOSE(y[i], want, 1e-5, 1e-5);
    neg += yr[i] < 0;
    pos += yr[i] > 0;
  }
  CHECK(neg > 3 && pos > 3, "relu test needs both signs: %d neg, %d pos", neg, pos);
  /* backward accumulates into nonzero dw/db, with alpha */
  float dx[7 * 13], dxr[7 * 13], dw[5 * 13], dwr[5 * 13], db[5], dbr[5];
  for (int i = 0; i < OUT * IN; i++) dw[i] = dwr[i] = 0.25f * (float)i;
  for (int i = 0; i < OUT; i++) db[i] = dbr[i] = -1.0f + (float)i;
  vae_linear_backward(dx, dw, db, dy, x, w, 0.75f, B, IN, OUT);
  vae_linear_backward_ref(dxr, dwr, dbr, dy, x, w, 0.75f, B, IN, OUT);
  CHECK(max_abs_diff(dx, dxr, (size_t)B * IN) < 1e-5, "dx differs by %g",
        max_abs_diff(dx, dxr, (size_t)B * IN));
  CHECK(max_abs_diff(dw, dwr, (size_t)OUT * IN) < 1e-5, "dw differs by %g",
        max_abs_diff(dw, dwr, (size_t)OUT * IN));
  CHECK(max_abs_diff(db, dbr, OUT) < 1e-5, "db differs by %g", max_abs_diff(db, dbr, OUT));
  /* reference by hand: dw[1][4] = 0.25*(1*13+4) + 0.75 * sum_r dy[r][1] x[r][4] */
  s = 0;
  for (int r = 0; r < B; r++) s += (double)dy[r * OUT + 1] * x[r * IN + 4];
  CHECK_CLOSE(dwr[1 * IN + 4], 0.25 * 17 + 0.75 * s, 1e-6, 1e-6);
  /* NULL dinp: weights still accumulate (a second time) */
  vae_linear_backward(NULL, dw, db, dy, x, w, 0.75f, B, IN, OUT);
  vae_linear_backward_ref(NULL, dwr, dbr, dy, x, w, 0.75f, B, IN, OUT);
  CHECK(max_abs_diff(dw, dwr, (size_t)OUT * IN) < 2e-5, "dw (2nd) differs by %g",
        max_abs_diff(dw, dwr, (size_t)OUT * IN));
  /* relu backward masks where the activation is not positive */
  float h[6] = {1.0f, 0.0f, -2.0f, 3.0f, -0.0f, 1e-30f}, dh[6] = {5, 6, 7, 8, 9, 10};
  vae_relu_backward(dh, h, 6);
  CHECK(dh[0] == 5 && dh[1] == 0 && dh[2] == 0 && dh[3] == 8 && dh[4] == 0 && dh[5] == 10,
        "relu backward %g %g %g %g %g %g", dh[0], dh[1], dh[2], dh[3], dh[4], dh[5]);
  /* bias + ReLU forward passes NaN on (as torch.relu), so that a NaN pre-activation reaches the
   * non-finite check instead of becoming a silent 0 */
  float ya[5] = {NAN, -1.0f, 2.0f, 0.0f, INFINITY}, ba[5] = {0, 0, 0, -0.5f, 0};
  vae_bias_act(ya, ba, 1, 5, 1);
  CHECK(isnan(ya[0]) && ya[1] == 0 && ya[2] == 2 && ya[3] == 0 && isinf(ya[4]),
        "bias + relu forward %g %g %g %g %g", ya[0], ya[1], ya[2], ya[3], ya[4]);
  free(x), free(w), free(b), free(dy);
}

static void test_reparam(void) {
  const int B = 3, L = 4;
  float *mulv = randu((size_t)B * 2 * L, -2, 2, 5), *eps = randu((size_t)B * L, -2, 2, 6);
  float *dz = randu((size_t)B * L, -1, 1, 7);
  float z[12], dmulv[24];
  for (int i = 0; i < 24; i++) dmulv[i] = 1.0f;
  vae_reparam_forward(z, mulv, eps, B, L);
  vae_reparam_backward(dmulv, dz, mulv, eps, B, L);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < L; j++) {
      double mu = mulv[b * 2 * L + j], lv = mulv[b * 2 * L + L + j], e = eps[b * L + j], d = dz[b * L + j];
      CHECK_CLOSE(z[b * L + j], mu + exp(0.5 * lv) * e, 1e-6, 1e-6);
      CHECK_CLOSE(dmulv[b * 2 * L + j], 1.0 + d, 1e-6, 1e-6);
      CHECK_CLOSE(dmulv[b * 2 * L + L + j], 1.0 + d * e * 0.5 * exp(0.5 * lv), 1e-6, 1e-6);
    }
  free(mulv), free(eps), free(dz);
}

static void test_float_kernels(void) {
  double worst = 0, worst_x = 0;
  for (double x = -87.0; x <= 88.0; x += 0.001953125 * 1.37) {
    double rel = fabs(vae_expf((float)x) - exp((double)(float)x)) / exp((double)(float)x);
    if (rel > worst) worst = rel, worst_x = x;
  }
  CHECK(worst < 2.5e-7, "vae_expf relative error %g at %g", worst, worst_x);
  CHECK(vae_expf(0.0f) == 1.0f, "exp(0) = %.9g", vae_expf(0.0f));
  CHECK(isnan(vae_expf(NAN)), "exp(NaN) must stay NaN");
  CHECK(vae_expf(-1000.0f) == 0.0f && vae_expf(-87.5f) == 0.0f, "exp(-1000) flushes to %g",
        vae_expf(-1000.0f));
  CHECK(isfinite(vae_expf(1000.0f)) && vae_expf(1000.0f) > 1e38f, "exp(1000) clamps to %g",
        vae_expf(1000.0f));
  worst = 0;
  for (int k = 0; k <= 200000; k++) {
    float e = k < 100000
                  ? (float)ldexp(1.0, -126 + (int)(k * 126 / 100000)) * (1.0f + 0.37f * (float)(k % 7) / 7)
                  : (float)(k - 100000) / 100000.0f;
    double want = log1p((double)e);
    if (want == 0) continue;
    double rel = fabs(vae_log1pf_unit(e) - want) / want;
    worst = fmax(worst, rel);
  }
  CHECK(worst < 2.5e-7, "vae_log1pf_unit relative error %g", worst);
  CHECK(vae_log1pf_unit(0.0f) == 0.0f, "log1p(0)");
}

/* ---- decoders vs double formulas ---- */

static double softplus_d(double a) { return fmax(a, 0) + log1p(exp(-fabs(a))); }
static double sigmoid_d(double a) { return a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a)); }

#define TB 3
#define TD 1037 /* two full 512-blocks and a remainder */

static void test_bernoulli(void) {
  float *a = randu((size_t)TB * TD, -12, 12, 8), *x = randu((size_t)TB * TD, 0, 1, 9);
  /* extremes and exact binary pixels */
  float ext[] = {80.0f, -80.0f, 0.0f, 1e-3f, -1e-3f, 30.0f, -30.0f, 87.5f, -87.5f, 100.0f, -100.0f};
  for (int k = 0; k < 11; k++) {
    a[k] = ext[k], x[k] = (float)(k % 2);
    a[TD + k] = ext[k], x[TD + k] = (float)((k + 1) % 2);
    a[2 * TD + k] = ext[k], x[2 * TD + k] = 0.3f;
  }
  double recon[TB];
  float *g = malloc((size_t)TB * TD * sizeof *g), mean[TB * TD];
  vae_bernoulli_loss(recon, g, a, x, TB, TD);
  vae_sigmoid(mean, a, (size_t)TB * TD);
  double gerr = 0, merr = 0;
  for (int b = 0; b < TB; b++) {
    double s = 0;
    for (int j = 0; j < TD; j++) {
      double av = a[b * TD + j], xv = x[b * TD + j];
      s += softplus_d(av) - av * xv;
      gerr = fmax(gerr, fabs(g[b * TD + j] - (sigmoid_d(av) - xv)));
      merr = fmax(merr, fabs(mean[b * TD + j] - sigmoid_d(av)) / (sigmoid_d(av) + 1e-30)); /* 0 below -87 */
    }
    CHECK_CLOSE(recon[b], s, 1e-6, 1e-6);
  }
  CHECK(gerr < 3e-7, "bernoulli gradient max error %g", gerr);
  CHECK(merr < 3e-7, "sigmoid max relative error %g", merr);
  /* single extreme pixels: wrong side of a confident logit costs its magnitude */
  float a1[2] = {80.0f, -80.0f}, x1[2] = {0.0f, 0.0f}, g1[2];
  double r1[2];
  vae_bernoulli_loss(r1, g1, a1, x1, 2, 1);
  CHECK_CLOSE(r1[0], 80.0, 1e-7, 0);
  CHECK_CLOSE(r1[1], 1.8048513878454153e-35, 1e-5, 0);
  CHECK(g1[0] == 1.0f && g1[1] > 1.7e-35f && g1[1] < 1.9e-35f, "extreme gradients %g %g", g1[0], g1[1]);
  free(a), free(x), free(g);
}

static void test_gaussian(void) {
  float *m = randu((size_t)TB * TD, -0.5f, 1.5f, 10), *x = randu((size_t)TB * TD, 0, 1, 11);
  float *g = malloc((size_t)TB * TD * sizeof *g);
  double recon[TB];
  const float sigma = 0.7f;
  vae_gaussian_loss(recon, g, m, x, TB, TD, sigma);
  double s2 = (double)sigma * sigma, gerr = 0;
  for (int b = 0; b < TB; b++) {
    double s = 0;
    for (int j = 0; j < TD; j++) {
      double d = (double)x[b * TD + j] - m[b * TD + j];
      s += d * d / (2 * s2) + 0.5 * log(2 * 3.14159265358979323846 * s2);
      gerr = fmax(gerr, fabs(g[b * TD + j] - (-d / s2)));
    }
    CHECK_CLOSE(recon[b], s, 1e-6, 1e-6);
  }
  CHECK(gerr < 1e-6, "gaussian gradient max error %g", gerr);
  free(m), free(x), free(g);
}

static void check_learned(float lmin, uint64_t seed) {
  float *o = randu((size_t)TB * 2 * TD, -3, 3, seed), *x = randu((size_t)TB * TD, 0, 1, seed + 1);
  /* raw log-variances around, at and far below/above the floor */
  float rs[] = {lmin,         lmin - 1e-3f,  lmin + 1e-3f, lmin - 30.0f, lmin - 200.0f,
                lmin + 40.0f, lmin + 100.0f, lmin + 6.0f,  lmin - 6.0f};
  for (int b = 0; b < TB; b++)
    for (int k = 0; k < 9; k++) o[(size_t)b * 2 * TD + TD + k] = rs[k];
  float *g = malloc((size_t)TB * 2 * TD * sizeof *g);
  double recon[TB];
  vae_gaussian_learned_loss(recon, g, o, x, TB, TD, lmin);
  double gm_err = 0, gr_err = 0;
  for (int b = 0; b < TB; b++) {
    double s = 0;
    for (int j = 0; j < TD; j++) {
      double m = o[(size_t)b * 2 * TD + j], r = o[(size_t)b * 2 * TD + TD + j], xv = x[b * TD + j];
      double lv = lmin + softplus_d(r - lmin), iv = exp(-lv), d = m - xv;
      CHECK(lv >= lmin, "lv %g below the floor %g", lv, (double)lmin);
      s += d * d * iv / 2 + 0.5 * (log(2 * 3.14159265358979323846) + lv);
      double want_gm = d * iv, want_gr = 0.5 * (1 - d * d * iv) * sigmoid_d(r - lmin);
      /* d/dr has the cancellation 1 - q: measure its error on the scale of its terms */
      double scale_r = 0.5 * (1 + d * d * iv) * sigmoid_d(r - lmin);
      gm_err = fmax(gm_err, fabs(g[(size_t)b * 2 * TD + j] - want_gm) / (fabs(want_gm) + 1e-30));
      gr_err = fmax(gr_err, fabs(g[(size_t)b * 2 * TD + TD + j] - want_gr) / (scale_r + 1e-30));
    }
    CHECK_CLOSE(recon[b], s, 2e-6, 1e-5);
  }
  CHECK(gm_err < 2e-6, "learned d/dm relative error %g (floor %g)", gm_err, (double)lmin);
  CHECK(gr_err < 2e-6, "learned d/dr relative error %g (floor %g)", gr_err, (double)lmin);
  /* far below the floor the variance sticks to exp(floor) and the gradient w.r.t. r vanishes */
  CHECK(g[TD + 4] == 0.0f, "d/dr 200 below the floor is %g", g[TD + 4]);
  free(o), free(x), free(g);
}

static void test_kl(void) {
  const int B = 4, L = 5;
  float *mulv = randu((size_t)B * 2 * L, -3, 3, 14);
  mulv[L] = 0.0f, mulv[L + 1] = 1e-6f, mulv[L + 2] = -1e-6f; /* logvar near 0: expm1 territory */
  double kl[4];
  float d[40];
  vae_kl_forward(kl, mulv, B, L);
  vae_kl_backward(d, mulv, 0.5f, B, L);
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (int j = 0; j < L; j++) {
      double mu = mulv[b * 2 * L + j], lv = mulv[b * 2 * L + L + j];
      s += 1 + lv - mu * mu - exp(lv);
      CHECK_CLOSE(d[b * 2 * L + j], 0.5 * mu, 1e-6, 1e-7);
      CHECK_CLOSE(d[b * 2 * L + L + j], 0.5 * 0.5 * (exp(lv) - 1), 1e-6, 1e-9);
    }
    CHECK_CLOSE(kl[b], -0.5 * s, 1e-9, 1e-9);
  }
  float zero[2] = {0, 0};
  vae_kl_forward(kl, zero, 1, 1);
  CHECK(kl[0] == 0.0, "KL of N(0,1) against itself is %g", kl[0]);
  free(mulv);
}

int main(void) {
  test_linear();
  test_reparam();
  test_float_kernels();
  test_bernoulli();
  test_gaussian();
  check_learned(VAE_DEFAULT_LOGVAR_MIN, 12);
  check_learned(0.5f, 20);
  check_learned(-80.0f, 30); /* the lowest floor vae_config_validate allows: exp(80) variances */
  test_kl();
  return check_done("test_layers");
}
