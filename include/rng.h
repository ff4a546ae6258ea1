/* rng.h: counter-based random numbers (Philox4x32-10, Salmon et al. SC'11).
 * Every number is a pure function of (seed, purpose, rank, step, index): nothing to save in a
 * checkpoint, and a resumed run draws exactly what the uninterrupted run would have drawn. */
#ifndef VAE_RNG_H
#define VAE_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Purposes keep the streams of different uses apart. */
enum {
  VAE_RNG_INIT = 1,   /* parameter initialisation (step = tensor index) */
  VAE_RNG_EPS = 2,    /* reparameterization noise (step = global step) */
  VAE_RNG_PERM = 3,   /* shard shuffles (step = epoch) */
  VAE_RNG_SAMPLE = 4, /* z for sample grids */
  VAE_RNG_EVAL = 5,   /* noise for evaluation (step = batch or sample index) */
  VAE_RNG_SPLIT = 6   /* import-images' train/test split (step = class) */
};

/* Philox4x32-10 on one counter block: out[4] from ctr[4] and key[2]. */
void vae_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* n uniforms in [0, 1) of the stream (seed, purpose, rank, step), starting at index `first`. */
void vae_rng_uniform(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t rank, uint64_t step,
                     uint64_t first);
/* n standard normals (Box-Muller) of the stream, starting at index `first` (must be even). */
void vae_rng_normal(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t rank, uint64_t step,
                    uint64_t first);
/* A uniformly random permutation of 0..n-1 (Fisher-Yates) of the stream (seed, purpose, rank, step). */
void vae_rng_shuffle(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t purpose, uint32_t rank,
                     uint64_t step);
/* The shard shuffle: vae_rng_shuffle for (seed, VAE_RNG_PERM, rank, epoch). */
void vae_rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t rank, uint64_t epoch);

#endif
