/* test_conv_dist.c (under mpirun, np 2 and 3): data parallelism of the convolutional VAE. Each rank's
 * summed gradient of its share of a batch, summed over the ranks and divided by the batch, equals the
 * whole batch's mean gradient that one process computes (in a workspace of another size); every rank
 * ends with the same bits. Colour, non-square images, all three decoders. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dist.h"
#include "rng.h"
#include "vae.h"

static void check_decoder(const vae_dist *d, vae_decoder dec) {
  vae_config c = {.in_h = 14,
                  .in_w = 10,
                  .in_c = 3,
                  .n_conv = 2,
                  .conv = {6, 8},
                  .kernel = 4,
                  .stride = 2,
                  .padding = 1,
                  .n_hidden = 1,
                  .hidden = {12},
                  .latent = 3,
                  .decoder = dec,
                  .sigma = 0.5f,
                  .logvar_min = -2.0f};
  const int B = 11, L = c.latent;
  const size_t n = vae_num_params(&c), D = vae_input_dim(&c);
  float *p = malloc(n * sizeof *p), *g_full = calloc(n, sizeof *p), *g_part = calloc(n, sizeof *p);
  vae_init_params(&c, p, 5);
  float *x = malloc((size_t)B * D * sizeof *x), *eps = malloc((size_t)B * L * sizeof *eps);
  vae_rng_uniform(x, (size_t)B * D, 9, VAE_RNG_SAMPLE, 0, 0, 0);
  vae_rng_normal(eps, (size_t)B * L, 9, VAE_RNG_EPS, 0, 0, 0);
  vae_views pv, gv_full, gv_part;
  vae_views_init(&c, p, &pv);
  vae_views_init(&c, g_full, &gv_full);
  vae_views_init(&c, g_part, &gv_part);
  /* the whole batch, mean over B, in a workspace for 4x the batch */
  vae_workspace *big = vae_workspace_create(&c, 4 * B), *ws = vae_workspace_create(&c, B);
  vae_forward(&c, &pv, big, x, eps, B);
  vae_backward(&c, &pv, &gv_full, big, x, eps, B, 1.0f, 1.0f / B);
  /* this rank's share, summed, reduced, divided by B, as the trainer does */
  int lo = d->rank * B / d->size, hi = (d->rank + 1) * B / d->size;
  vae_forward(&c, &pv, ws, x + (size_t)lo * D, eps + (size_t)lo * L, hi - lo);
  vae_backward(&c, &pv, &gv_part, ws, x + (size_t)lo * D, eps + (size_t)lo * L, hi - lo, 1.0f, 1.0f);
  for (int b = lo; b < hi; b++) /* forward values per image do not depend on the batch around them */
    CHECK(fabs(ws->recon[b - lo] - big->recon[b]) <= 1e-5 * fabs(big->recon[b]),
          "%s: image %d recon %g vs %g", vae_decoder_name(dec), b, ws->recon[b - lo], big->recon[b]);
  vae_dist_sum_floats(g_part, n);
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double diff = (double)g_part[i] / B - (double)g_full[i];
    num += diff * diff;
    den += (double)g_full[i] * g_full[i];
  }
  CHECK(den > 0, "zero reference gradient");
  CHECK(sqrt(num / den) < 1e-5, "%s np %d: averaged gradient differs, relative norm error %g",
        vae_decoder_name(dec), d->size, sqrt(num / den));
  float *r0 = malloc(n * sizeof *r0);
  memcpy(r0, g_part, n * sizeof *r0);
  vae_dist_bcast_floats(r0, n);
  CHECK(memcmp(r0, g_part, n * sizeof *r0) == 0, "rank %d's reduced gradient differs from rank 0's", d->rank);
  vae_workspace_free(ws);
  vae_workspace_free(big);
  free(p), free(g_full), free(g_part), free(x), free(eps), free(r0);
}

int main(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  check_decoder(&d, VAE_DEC_BERNOULLI);
  check_decoder(&d, VAE_DEC_GAUSSIAN);
  check_decoder(&d, VAE_DEC_GAUSSIAN_LEARNED);
  int rc = check_done("test_conv_dist"), all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return all;
}
