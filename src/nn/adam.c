/* adam.c: the optimizer over the four flat buffers. One fused loop; never allocates. */
#include "adam.h"

#include <math.h>

#include "clones.h"

VAE_CLONES void vae_adam_update(const vae_adam *a, long t, float *restrict params,
                                const float *restrict grads, float *restrict m, float *restrict v, size_t n,
                                float grad_scale) {
  const double bc1 = 1.0 - pow(a->beta1, (double)t);
  const double bc2 = 1.0 - pow(a->beta2, (double)t);
  const float step_size = (float)(a->lr / bc1);
  const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
  /* As PyTorch's kernels take them: each constant rounded to float once, from the double betas. */
  const float b1 = (float)a->beta1, b2 = (float)a->beta2, omb1 = (float)(1.0 - a->beta1),
              omb2 = (float)(1.0 - a->beta2), eps = a->eps;
  for (size_t i = 0; i < n; i++) {
    float g = grads[i] * grad_scale;
    float mi = b1 * m[i] + omb1 * g;
    float vi = b2 * v[i] + omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}

VAE_CLONES double vae_sum_squares_block(const float *x, size_t n) {
  /* Eight float partial sums (the compiler vectorizes the independent lanes; no float sum holds more
   * than 128 terms), folded into a double in lane order, then the tail. NaN and Inf propagate. */
  float acc[8] = {0};
  size_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[k + j] * x[k + j];
  double s = 0.0;
  for (int j = 0; j < 8; j++) s += (double)acc[j];
  for (; k < n; k++) s += (double)x[k] * (double)x[k];
  return s;
}

void vae_sum_squares_tail(const float *x, size_t n, size_t from, double *blocks, size_t *end) {
  const size_t first = (from + VAE_SQ_BLOCK - 1) / VAE_SQ_BLOCK;
  for (size_t b = first; b < *end; b++) {
    const size_t lo = b * VAE_SQ_BLOCK;
    blocks[b] = vae_sum_squares_block(x + lo, n - lo < VAE_SQ_BLOCK ? n - lo : VAE_SQ_BLOCK);
  }
  if (first < *end) *end = first;
}

double vae_sum_squares(const float *x, size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; i += VAE_SQ_BLOCK)
    total += vae_sum_squares_block(x + i, n - i < VAE_SQ_BLOCK ? n - i : VAE_SQ_BLOCK);
  return total;
}
