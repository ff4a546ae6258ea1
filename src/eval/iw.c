/* iw.c: the importance-weighted bound (iw.h) per image, K samples decoded in batches.
 * Never reduces across ranks and never draws noise other than vae_eval_noise's. */
#include "iw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "evaluate.h"
#include "layers.h"

void vae_iw_images(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int n,
                   uint64_t row0, uint64_t seed, long K, double *bound) {
  if (n < 0 || n > ws->max_batch)
    VAE_FAIL("vae_iw_images: %d images for a workspace of %d", n, ws->max_batch);
  if (K < 1 || K > VAE_IW_MAX_SAMPLES)
    VAE_FAIL("vae_iw_images: K = %ld outside [1, %ld]", K, VAE_IW_MAX_SAMPLES);
  if (n == 0) return;
  const int M = ws->max_batch, L = c->latent;
  const size_t D = vae_input_dim(c);
  /* Each (image, sample) pair is a decoder row: its image and [mu | logvar] replicated. */
  float *xr = mallocCheck((size_t)M * D * sizeof *xr);
  float *mr = mallocCheck((size_t)M * 2 * (size_t)L * sizeof *mr);
  double *mx = mallocCheck((size_t)n * sizeof *mx), *sm = mallocCheck((size_t)n * sizeof *sm);
  vae_encode(c, p, ws, x, n);
  for (int b = 0; b < n; b++) {
    mx[b] = -INFINITY;
    sm[b] = 0.0;
  }
  const size_t total = (size_t)n * (size_t)K;
  for (size_t lo = 0; lo < total; lo += (size_t)M) {
    int m = (int)(total - lo < (size_t)M ? total - lo : (size_t)M);
    for (int r = 0; r < m; r++) {
      size_t pair = lo + (size_t)r, b = pair / (size_t)K;
      uint32_t k = (uint32_t)(pair % (size_t)K);
      memcpy(xr + (size_t)r * D, x + b * D, D * sizeof *xr);
      memcpy(mr + (size_t)r * 2 * L, ws->mulv + b * 2 * L, 2 * (size_t)L * sizeof *mr);
      vae_eval_noise(ws->eps + (size_t)r * L, L, seed, k, row0 + b);
    }
    vae_reparam_forward(ws->z, mr, ws->eps, m, L);
    vae_decode(c, p, ws, ws->z, m);
    vae_decoder_nll(c, ws, xr, m);
    for (int r = 0; r < m; r++) {
      /* log w = -recon + log N(z; 0, I) - log N(z; mu, sigma^2); the 2 pi terms cancel and
       * (z - mu) / sigma = eps. */
      const float *z = ws->z + (size_t)r * L, *e = ws->eps + (size_t)r * L, *lv = mr + (size_t)r * 2 * L + L;
      double zz = 0, ee = 0, slv = 0;
      for (int j = 0; j < L; j++) {
        zz += (double)z[j] * z[j];
        ee += (double)e[j] * e[j];
        slv += lv[j];
      }
      double lw = -ws->recon[r] - 0.5 * zz + 0.5 * ee + 0.5 * slv;
      size_t b = (lo + (size_t)r) / (size_t)K;
      /* Online log-sum-exp: sm[b] = sum_k exp(lw_k - mx[b]). */
      if (lw > mx[b]) {
        sm[b] = sm[b] * exp(mx[b] - lw) + 1.0;
        mx[b] = lw;
      } else {
        sm[b] += exp(lw - mx[b]);
      }
    }
  }
  for (int b = 0; b < n; b++) bound[b] = mx[b] + log(sm[b]) - log((double)K);
  free(sm);
  free(mx);
  free(mr);
  free(xr);
}

void vae_iw_shard(const vae_config *c, const vae_views *p, vae_workspace *ws, const vae_shard *s,
                  uint64_t seed, long K, double sums[2]) {
  const int B = ws->max_batch;
  uint32_t *rows = mallocCheck((size_t)B * sizeof *rows);
  double *bound = mallocCheck((size_t)B * sizeof *bound);
  for (size_t lo = 0; lo < s->count; lo += (size_t)B) {
    int n = (int)(s->count - lo < (size_t)B ? s->count - lo : (size_t)B);
    for (int b = 0; b < n; b++) rows[b] = (uint32_t)(lo + (size_t)b);
    vae_shard_batch(s, rows, n, ws->x);
    vae_iw_images(c, p, ws, ws->x, n, s->offset + lo, seed, K, bound);
    for (int b = 0; b < n; b++) sums[0] += bound[b];
    sums[1] += n;
  }
  free(bound);
  free(rows);
}
