/* adam.h: Adam over flat buffers, as torch.optim.Adam (no weight decay, no amsgrad). */
#ifndef VAE_ADAM_H
#define VAE_ADAM_H

#include <stddef.h>

/* The betas stay double, as torch.optim.Adam's Python floats: 1 - beta and the bias corrections are
 * computed from them, not from their float roundings (1 - (float)0.999 is 1.3e-5 off 0.001). */
typedef struct {
  float lr;
  double beta1, beta2;
  float eps;
} vae_adam;

/* One step t (1-based, after t-1 earlier steps) over n parameters. The gradient used is
 * grad_scale * g (the mean over the global batch and any clipping, folded into one multiply):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
void vae_adam_update(const vae_adam *a, long t, float *params, const float *grads, float *m, float *v,
                     size_t n, float grad_scale);

/* Sum of squares of x in double (for the global gradient norm and non-finite detection): the sums of
 * its blocks of VAE_SQ_BLOCK floats (vae_sum_squares_block, the last block short), added in order.
 * So a buffer cut at block boundaries into pieces summed by several threads gives the same bits,
 * whatever the pieces, when the block sums are added in order afterwards. */
#define VAE_SQ_BLOCK 1024
double vae_sum_squares(const float *x, size_t n);
/* One block's share: x[0..n), n <= VAE_SQ_BLOCK. */
double vae_sum_squares_block(const float *x, size_t n);
/* blocks[b] = vae_sum_squares_block of x's block b (x has n floats) for the blocks that lie wholly at
 * or after float `from` and before block *end; then *end = the first of them. Called with a falling
 * `from` (a buffer whose tail is final first: the backward pass's layers), it sums each block once. */
void vae_sum_squares_tail(const float *x, size_t n, size_t from, double *blocks, size_t *end);

#endif
