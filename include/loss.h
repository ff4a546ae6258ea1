/* loss.h: the three decoders' per-image negative log-likelihoods (nats) with their gradients w.r.t.
 * the decoder output, the analytic KL to N(0, I) and its gradient, and the decoder mean.
 * Every per-image sum is accumulated in double; elementwise work is float and vectorizable. */
#ifndef VAE_LOSS_H
#define VAE_LOSS_H

#include <stddef.h>

/* Each loss writes recon[b] = -log p(x_b | out_b) summed over the D values of image b, and in the same
 * pass dout = d recon_b / d out (unscaled). x, out, dout are (B, k*D) / (B, D) row-major.
 *
 * bernoulli: out = logits a (B, D); recon = sum max(a,0) - a x + log1p(exp(-|a|)), the stable form of
 *   binary_cross_entropy_with_logits(reduction="sum"); d/da = sigmoid(a) - x. x in [0, 1]. */
void vae_bernoulli_loss(double *recon, float *dout, const float *logits, const float *x, int B, size_t D);
/* gaussian: out = mean m (B, D), fixed sigma; recon = sum (x-m)^2/(2 s^2) + 0.5 log(2 pi s^2);
 *   d/dm = (m - x)/s^2. */
void vae_gaussian_loss(double *recon, float *dout, const float *mean, const float *x, int B, size_t D,
                       float sigma);
/* gaussian-learned: out rows (B, 2D) hold [m (D) | r (D)]. The effective log-variance has a smooth
 * floor:  lv = logvar_min + softplus(r - logvar_min),  so lv > logvar_min always and lv ~ r once
 * r - logvar_min >> 1 (error log1p(exp(-(r - logvar_min))): 2.5e-3 at 6 nats above the floor).
 *   recon = sum (x-m)^2 / (2 exp(lv)) + 0.5 (log(2 pi) + lv)
 *   d/dm = (m - x) exp(-lv),  d/dr = 0.5 (1 - (x-m)^2 exp(-lv)) * sigmoid(r - logvar_min).
 * dout rows are (2D) like out. logvar_min must lie in [-80, 80] (vae_config_validate checks it) so that
 * exp(-lv) <= exp(80) is a finite float. */
void vae_gaussian_learned_loss(double *recon, float *dout, const float *out, const float *x, int B, size_t D,
                               float logvar_min);

/* kl[b] = -0.5 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)) for mulv (B, 2L) = [mu | logvar]. */
void vae_kl_forward(double *kl, const float *mulv, int B, int L);
/* dmulv (B, 2L) = coef * dKL/d[mu | logvar] = coef * [mu | 0.5 (exp(logvar) - 1)]   OVERWRITTEN. */
void vae_kl_backward(float *dmulv, const float *mulv, float coef, int B, int L);

/* sigmoid(logits), elementwise over n values (the Bernoulli decoder's mean image). */
void vae_sigmoid(float *out, const float *logits, size_t n);

/* The float kernels the loops above inline (exported for the accuracy tests):
 * vae_expf: exp(x), relative error <= ~2e-7 for x in [-87, 88] (Cephes' expf polynomial); 0 below -87
 *   (the true value is under 1.65e-38 there), exp(88) = 1.65e38 above 88; NaN stays NaN.
 * vae_log1pf_unit: log1p(e) for e in [0, 1], relative error <= ~2e-7 (2 atanh(e/(2+e)) series). */
float vae_expf(float x);
float vae_log1pf_unit(float e);

#endif
