/* elbo.c: ELBO sums over a shard, every image exactly once. Never reduces across ranks. */
#include "evaluate.h"

#include <stdlib.h>

#include "error.h"
#include "rng.h"

void vae_eval_noise(float *eps, int L, uint64_t seed, uint32_t k, uint64_t row) {
  vae_rng_normal(eps, (size_t)L, seed, VAE_RNG_EVAL, k, row, 0);
}

void vae_eval_shard(const vae_config *c, const vae_views *p, vae_workspace *ws, const vae_shard *s,
                    uint64_t seed, double sums[3]) {
  const int B = ws->max_batch, L = c->latent;
  uint32_t *rows = mallocCheck((size_t)B * sizeof *rows);
  for (size_t lo = 0; lo < s->count; lo += (size_t)B) {
    int n = (int)(s->count - lo < (size_t)B ? s->count - lo : (size_t)B);
    for (int b = 0; b < n; b++) {
      rows[b] = (uint32_t)(lo + (size_t)b);
      vae_eval_noise(ws->eps + (size_t)b * L, L, seed, 0, s->offset + lo + (size_t)b);
    }
    vae_shard_batch(s, rows, n, ws->x);
    vae_forward(c, p, ws, ws->x, ws->eps, n);
    for (int b = 0; b < n; b++) {
      sums[0] += ws->recon[b];
      sums[1] += ws->kl[b];
    }
    sums[2] += n;
  }
  free(rows);
}
