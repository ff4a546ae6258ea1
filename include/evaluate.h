/* evaluate.h: the ELBO of every image of a shard, with noise keyed by the image's global row so that
 * the result does not depend on the number of ranks. Used by train (test ELBO) and eval. */
#ifndef VAE_EVALUATE_H
#define VAE_EVALUATE_H

#include <stdint.h>

#include "data.h"
#include "vae.h"

/* Adds to sums[0] the recon, sums[1] the KL and sums[2] the number of images of the shard (local;
 * the caller reduces). Batches of up to ws->max_batch images. */
void vae_eval_shard(const vae_config *c, const vae_views *p, vae_workspace *ws, const vae_shard *s,
                    uint64_t seed, double sums[3]);

/* Noise for one image: L normals of the stream (seed, VAE_RNG_EVAL, sample k, global row). */
void vae_eval_noise(float *eps, int L, uint64_t seed, uint32_t k, uint64_t row);

#endif
