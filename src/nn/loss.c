/* loss.c: the decoders' negative log-likelihoods and their gradients w.r.t. the decoder output, the
 * analytic KL and its gradient, the decoder mean. Never touches weights or activations other than the
 * decoder output and the (mu, logvar) head: vae.c does the wiring.
 * Speed: the Bernoulli loss runs exp and log1p over B*D values per step, which libm's scalar calls made
 * 17-21% of a step. Here they are short float polynomials (no table, no branch, no libm call), so that
 * GCC vectorizes each elementwise loop at -O3 without -ffast-math. Per-image sums are double. */
#include "loss.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"
#include "error.h"

/* ---- float kernels ---- */

/* exp(x) after Cephes expf (S. L. Moshier): x = n ln2 + r, |r| <= ln2/2, with ln2 split in two so
 * that n*C1 is exact; exp(r) by a degree-6 minimax polynomial; 2^n assembled in the exponent bits.
 * n is read from the bits of x*log2e + 1.5*2^23 (round to nearest) rather than a float->int cast, so a
 * NaN input stays defined behaviour and propagates. */
float vae_expf(float x) {
  float x0 = x;
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float magic = 12582912.0f; /* 1.5 * 2^23 */
  float t = x * 1.44269504088896341f + magic;
  float n = t - magic;
  uint32_t tb, mb;
  memcpy(&tb, &t, sizeof tb);
  memcpy(&mb, &magic, sizeof mb);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  uint32_t pb = (tb - mb + 127u) << 23; /* n + 127 in [1, 254]: a normal power of two */
  float p;
  memcpy(&p, &pb, sizeof p);
  return x0 < -87.0f ? 0.0f : y * p; /* exp(x0) < 1.65e-38 there: flush to 0, not to exp(-87) */
}

/* log1p(e) = 2 atanh(u), u = e / (2 + e) in [0, 1/3]: the odd series 2u (1 + u^2/3 + u^4/5 + ...)
 * truncated after u^12/13 leaves a relative error below (1/9)^7 / 15 = 1e-8; the division rounds
 * once, so the result is within about 2 ulp. Exact form for tiny e (no 1 + e cancellation). */
float vae_log1pf_unit(float e) {
  float u = e / (2.0f + e);
  float u2 = u * u;
  float s = 1.0f / 13.0f;
  s = s * u2 + 1.0f / 11.0f;
  s = s * u2 + 1.0f / 9.0f;
  s = s * u2 + 1.0f / 7.0f;
  s = s * u2 + 1.0f / 5.0f;
  s = s * u2 + 1.0f / 3.0f;
  s = s * u2 + 1.0f;
  return 2.0f * u * s;
}

/* Vectorization note: GCC if-converts a float select only under -fno-trapping-math (set for vae_core
 * in CMakeLists.txt, value-safe); the selects below pick between available values or constants and the
 * arithmetic follows, which is the form it vectorizes (check with -fopt-info-vec).
 * Elementwise loops fill a block of per-value terms on the stack; the block is then summed in double
 * with independent lanes (a plain double reduction would not vectorize without -ffast-math). */
#define LOSS_BLOCK 512
#define LOG_2PI 1.83787706640934533908 /* log(2 pi) */

static double sum_block(const float *t, size_t n) {
  double acc[4] = {0, 0, 0, 0};
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    acc[0] += t[j];
    acc[1] += t[j + 1];
    acc[2] += t[j + 2];
    acc[3] += t[j + 3];
  }
  for (; j < n; j++) acc[0] += t[j];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* ---- decoders ---- */

VAE_CLONES void vae_bernoulli_loss(double *recon, float *dout, const float *logits, const float *x, int B,
                                   size_t D) {
  float t[LOSS_BLOCK];
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (size_t j0 = 0; j0 < D; j0 += LOSS_BLOCK) {
      size_t n = D - j0 < LOSS_BLOCK ? D - j0 : LOSS_BLOCK;
      const float *a = logits + (size_t)b * D + j0, *xv = x + (size_t)b * D + j0;
      float *g = dout + (size_t)b * D + j0;
      for (size_t j = 0; j < n; j++) {
        float av = a[j];
        float e = vae_expf(-fabsf(av)); /* in (0, 1]: shared by softplus and sigmoid */
        float inv = 1.0f / (1.0f + e);
        g[j] = (av >= 0.0f ? 1.0f : e) * inv - xv[j]; /* sigmoid(a) - x */
        t[j] = (av > 0.0f ? av : 0.0f) - av * xv[j] + vae_log1pf_unit(e);
      }
      s += sum_block(t, n);
    }
    recon[b] = s;
  }
}

VAE_CLONES void vae_gaussian_loss(double *recon, float *dout, const float *mean, const float *x, int B,
                                  size_t D, float sigma) {
  double s2 = (double)sigma * sigma;
  float inv_s2 = (float)(1.0 / s2), half_inv_s2 = (float)(0.5 / s2);
  double per_value = 0.5 * (LOG_2PI + log(s2));
  float t[LOSS_BLOCK];
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (size_t j0 = 0; j0 < D; j0 += LOSS_BLOCK) {
      size_t n = D - j0 < LOSS_BLOCK ? D - j0 : LOSS_BLOCK;
      const float *m = mean + (size_t)b * D + j0, *xv = x + (size_t)b * D + j0;
      float *g = dout + (size_t)b * D + j0;
      for (size_t j = 0; j < n; j++) {
        float d = m[j] - xv[j];
        g[j] = d * inv_s2;
        t[j] = d * d * half_inv_s2;
      }
      s += sum_block(t, n);
    }
    recon[b] = s + (double)D * per_value;
  }
}

/* gaussian-learned, with t = r - lmin and e = exp(-|t|) (shared by softplus and sigmoid):
 *   lv      = lmin + softplus(t) = (t >= 0 ? r : lmin) + log1p(e)      (r itself, not lmin + t: exact)
 *   exp(-lv) = exp(-lmin) sigmoid(-t) = (t >= 0 ? exp(-r) : exp(-lmin)) / (1 + e)
 * The second form never underflows an intermediate (exp(-lmin) exp(-t) would, for t > 87) and never
 * rounds r - lmin inside an exp. exp(-lmin) must be a finite float: vae_config_validate keeps
 * logvar_min within [-80, 80]. */
VAE_CLONES void vae_gaussian_learned_loss(double *recon, float *dout, const float *out, const float *x, int B,
                                          size_t D, float logvar_min) {
  double emin_d = exp(-(double)logvar_min);
  if (!(emin_d < 1e36)) VAE_FAIL("logvar_min %g: exp(-logvar_min) is not a float", (double)logvar_min);
  const float lmin = logvar_min, emin = (float)emin_d;
  double per_value = 0.5 * LOG_2PI;
  float t[LOSS_BLOCK];
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (size_t j0 = 0; j0 < D; j0 += LOSS_BLOCK) {
      size_t n = D - j0 < LOSS_BLOCK ? D - j0 : LOSS_BLOCK;
      const float *m = out + (size_t)b * 2 * D + j0, *r = m + D, *xv = x + (size_t)b * D + j0;
      float *gm = dout + (size_t)b * 2 * D + j0, *gr = gm + D;
      for (size_t j = 0; j < n; j++) {
        float tt = r[j] - lmin;
        float e = vae_expf(-fabsf(tt));
        float inv = 1.0f / (1.0f + e);
        float er = vae_expf(-r[j]);
        float sig_t = (tt >= 0.0f ? 1.0f : e) * inv; /* sigmoid(t) = d lv / d r */
        float lv = (tt >= 0.0f ? r[j] : lmin) + vae_log1pf_unit(e);
        float iv = (tt >= 0.0f ? er : emin) * inv; /* exp(-lv) */
        float d = m[j] - xv[j];
        float q = d * d * iv;
        gm[j] = d * iv;
        gr[j] = 0.5f * (1.0f - q) * sig_t;
        t[j] = 0.5f * (q + lv);
      }
      s += sum_block(t, n);
    }
    recon[b] = s + (double)D * per_value;
  }
}

/* ---- KL ---- */

void vae_kl_forward(double *kl, const float *mulv, int B, int L) {
  for (int b = 0; b < B; b++) {
    const float *mu = mulv + (size_t)b * 2 * (size_t)L, *lv = mu + L;
    double s = 0;
    /* -0.5 (1 + lv - mu^2 - exp(lv)) = 0.5 (mu^2 + expm1(lv) - lv): no cancellation near lv = 0 */
    for (int j = 0; j < L; j++) s += (double)mu[j] * mu[j] + expm1((double)lv[j]) - lv[j];
    kl[b] = 0.5 * s;
  }
}

void vae_kl_backward(float *dmulv, const float *mulv, float coef, int B, int L) {
  for (int b = 0; b < B; b++) {
    const float *mu = mulv + (size_t)b * 2 * (size_t)L, *lv = mu + L;
    float *dmu = dmulv + (size_t)b * 2 * (size_t)L, *dlv = dmu + L;
    for (int j = 0; j < L; j++) {
      dmu[j] = coef * mu[j];
      dlv[j] = coef * 0.5f * expm1f(lv[j]);
    }
  }
}

void vae_sigmoid(float *out, const float *logits, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float a = logits[i];
    float e = vae_expf(-fabsf(a));
    out[i] = (a >= 0.0f ? 1.0f : e) / (1.0f + e);
  }
}
