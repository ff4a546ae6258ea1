/* iw.h: the importance-weighted bound of Burda, Grosse and Salakhutdinov (2015), "Importance Weighted
 * Autoencoders", eq. 8: for each image x,
 *   IW_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k = mu(x) + sigma(x) * eps_k,
 *   log p(x, z) = -recon(x | z) + log N(z; 0, I),   log q(z | x) = log N(z; mu, sigma^2),
 * a lower bound on log p(x) (nats) in expectation, increasing in K, IW_1 = a one-sample ELBO, and
 * IW_K -> log p(x) as K grows. eps_k of the image in global row r is vae_eval_noise(seed, k, r), so the
 * result does not depend on the number of ranks nor on the batch size, and sample k = 0 is the noise
 * of the ELBO in evaluate.h. The sum over k is a log-sum-exp in double precision. */
#ifndef VAE_IW_H
#define VAE_IW_H

#include <stdint.h>

#include "data.h"
#include "vae.h"

#define VAE_IW_MAX_SAMPLES 100000000L /* K at most 1e8 (the sample index is a 32-bit stream key) */

/* bound[b] = IW_K of image b of x (n, D), n <= ws->max_batch, whose global rows are row0 + b.
 * The K samples of the n images are decoded in batches of ws->max_batch (image, sample) pairs.
 * Uses ws->mulv, eps, z, h_dec, out, recon, dout; x may be ws->x. */
void vae_iw_images(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int n,
                   uint64_t row0, uint64_t seed, long K, double *bound);

/* Adds to sums[0] the sum of IW_K over the shard's images and to sums[1] their number (local; the
 * caller reduces). */
void vae_iw_shard(const vae_config *c, const vae_views *p, vae_workspace *ws, const vae_shard *s,
                  uint64_t seed, long K, double sums[2]);

#endif
