/* train_images.c: sample and reconstruction grids of a model, and train's per-epoch pair of PNGs.
 * Never calls MPI and never stops training: a failed picture is a warning. */
#include "train_images.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_grid.h"
#include "rng.h"

#define CHUNK 256 /* images per decoder batch */

/* Writes images (n, D) as a grid whose slot i shows images[slot_of[i]] (or nothing for -1). */
static int write_grid(const char *path, const vae_config *c, const float *images, const int *slot_img,
                      int slots, int cols, char *err) {
  size_t D = vae_input_dim(c);
  int h, w;
  vae_grid_tile_shape(c->in_h, c->in_w, c->in_c, &h, &w);
  const float **tiles = mallocCheck((size_t)slots * sizeof *tiles);
  for (int i = 0; i < slots; i++) tiles[i] = slot_img[i] < 0 ? NULL : images + (size_t)slot_img[i] * D;
  int rc = vae_grid_write_png(path, tiles, slots, cols, h, w, c->in_c, err);
  free(tiles);
  return rc;
}

int vae_write_samples(const char *path, const vae_config *c, const vae_views *p, uint64_t seed, int n,
                      char *err) {
  if (n < 1) return vae_err(err, "cannot write %s: no samples asked for", path);
  const size_t D = vae_input_dim(c), L = (size_t)c->latent;
  int chunk = n < CHUNK ? n : CHUNK;
  vae_workspace *ws = vae_workspace_create(c, chunk);
  float *z = mallocCheck((size_t)n * L * sizeof *z), *mean = mallocCheck((size_t)n * D * sizeof *mean);
  int *slot = mallocCheck((size_t)n * sizeof *slot);
  vae_rng_normal(z, (size_t)n * L, seed, VAE_RNG_SAMPLE, 0, 0, 0);
  for (int lo = 0; lo < n; lo += chunk) {
    int b = n - lo < chunk ? n - lo : chunk;
    vae_decode(c, p, ws, z + (size_t)lo * L, b);
    vae_output_mean(c, ws, b, mean + (size_t)lo * D);
  }
  for (int i = 0; i < n; i++) slot[i] = i;
  int rc = write_grid(path, c, mean, slot, n, vae_grid_cols(n), err);
  free(slot);
  free(mean);
  free(z);
  vae_workspace_free(ws);
  return rc;
}

int vae_recon_cols(int n) {
  if (n <= 8) return n;
  int cols = (int)ceil(sqrt(2.0 * n));
  return cols < 8 ? 8 : cols;
}

int vae_write_reconstructions(const char *path, const vae_config *c, const vae_views *p, const float *x,
                              int n, char *err) {
  if (n < 1) return vae_err(err, "cannot write %s: no images to reconstruct", path);
  const size_t D = vae_input_dim(c);
  const int L = c->latent;
  int chunk = n < CHUNK ? n : CHUNK;
  vae_workspace *ws = vae_workspace_create(c, chunk);
  /* images: the n originals, then the n reconstructions. */
  float *images = mallocCheck(2 * (size_t)n * D * sizeof *images);
  memcpy(images, x, (size_t)n * D * sizeof *images);
  for (int lo = 0; lo < n; lo += chunk) {
    int b = n - lo < chunk ? n - lo : chunk;
    vae_encode(c, p, ws, x + (size_t)lo * D, b);
    for (int r = 0; r < b; r++)
      memcpy(ws->z + (size_t)r * L, ws->mulv + (size_t)r * 2 * L, (size_t)L * sizeof(float));
    vae_decode(c, p, ws, ws->z, b);
    vae_output_mean(c, ws, b, images + ((size_t)n + (size_t)lo) * D);
  }
  /* Blocks of two rows: `cols` originals, then their reconstructions. */
  int cols = vae_recon_cols(n), blocks = (n + cols - 1) / cols, slots = 2 * blocks * cols;
  int *slot = mallocCheck((size_t)slots * sizeof *slot);
  for (int i = 0; i < slots; i++) {
    int blk = i / (2 * cols), row = (i / cols) % 2, img = blk * cols + i % cols;
    slot[i] = img >= n ? -1 : row == 0 ? img : n + img;
  }
  int rc = write_grid(path, c, images, slot, slots, cols, err);
  free(slot);
  free(images);
  vae_workspace_free(ws);
  return rc;
}

int vae_train_images(const char *dir, long epoch, const vae_config *c, const vae_views *p, uint64_t seed,
                     const vae_shard *s) {
  char path[VAE_PATH_LEN + 64], err[VAE_ERR_LEN] = "";
  snprintf(path, sizeof path, "%s/samples-epoch-%ld.png", dir, epoch);
  int rc = vae_write_samples(path, c, p, seed, VAE_TRAIN_SAMPLES, err);
  if (rc == 0 && s && s->count > 0) {
    int n = s->count < VAE_TRAIN_RECONS ? (int)s->count : VAE_TRAIN_RECONS;
    uint32_t rows[VAE_TRAIN_RECONS];
    for (int i = 0; i < n; i++) rows[i] = (uint32_t)i;
    float *x = mallocCheck((size_t)n * s->d * sizeof *x);
    vae_shard_batch(s, rows, n, x);
    snprintf(path, sizeof path, "%s/reconstruction-epoch-%ld.png", dir, epoch);
    rc = vae_write_reconstructions(path, c, p, x, n, err);
    free(x);
  }
  if (rc != 0) {
    fprintf(stderr, "vae_mpi: warning: epoch %ld pictures not written: %s\n", epoch, err);
    fflush(stderr);
  }
  return rc;
}
