/* train_images.h: the model's pictures as PNG grids: decoder means of samples z ~ N(0, I), and
 * images beside their reconstructions. Used by `vae_mpi sample`, `vae_mpi reconstruct` and by train,
 * which writes DIR/samples-epoch-E.png and DIR/reconstruction-epoch-E.png after every epoch.
 * Single process: nothing here calls MPI. */
#ifndef VAE_TRAIN_IMAGES_H
#define VAE_TRAIN_IMAGES_H

#include <stdint.h>

#include "data.h"
#include "vae.h"

#define VAE_TRAIN_SAMPLES 64 /* samples per epoch grid (8 x 8), as in PyTorch's examples/vae */
#define VAE_TRAIN_RECONS 8   /* images with their reconstructions per epoch grid */

/* n decoder means at z drawn from the stream (seed, VAE_RNG_SAMPLE, 0, 0): z of sample i is always
 * the same for a given seed, whatever n. A grid ceil(sqrt(n)) tiles wide. 0, or -1 with err. */
int vae_write_samples(const char *path, const vae_config *c, const vae_views *p, uint64_t seed, int n,
                      char *err);

/* The n images x (n, D) above their reconstructions (decoder mean at z = mu): rows of `cols`
 * originals, each followed by the row of their reconstructions (cols = vae_recon_cols(n)). */
int vae_write_reconstructions(const char *path, const vae_config *c, const vae_views *p, const float *x,
                              int n, char *err);
/* Tiles per row of a reconstruction grid: n up to 8 in one row; more: about square overall. */
int vae_recon_cols(int n);

/* Train's per-epoch pair in dir (rank 0 only): samples-epoch-E.png (VAE_TRAIN_SAMPLES, the same z
 * every epoch) and reconstruction-epoch-E.png (the first VAE_TRAIN_RECONS rows of s, or fewer if s
 * holds fewer; none when s is NULL or empty). A failure is printed as one "vae_mpi: warning:" line
 * (pictures never stop a training run) and returned as -1. */
int vae_train_images(const char *dir, long epoch, const vae_config *c, const vae_views *p, uint64_t seed,
                     const vae_shard *s);

#endif
