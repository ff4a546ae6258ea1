/* test_grad_avg.c (under mpirun, np 2): the trainer's gradient reduction is exact. Each rank computes
 * the summed gradient of its half of a batch; their allreduce, divided by the batch size, must equal
 * the whole batch's mean gradient computed by one rank alone. Also checks that vae_dist_sum_floats
 * leaves every rank with the same bits. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dist.h"
#include "rng.h"
#include "vae.h"

int main(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  vae_config c = {.in_h = 4,
                  .in_w = 5,
                  .in_c = 1,
                  .n_hidden = 1,
                  .hidden = {16},
                  .latent = 3,
                  .decoder = VAE_DEC_BERNOULLI,
                  .sigma = 1.0f,
                  .logvar_min = VAE_DEFAULT_LOGVAR_MIN};
  const int B = 10, D = 20, L = 3;
  size_t n = vae_num_params(&c);
  float *p = malloc(n * sizeof *p), *g_full = calloc(n, sizeof *p), *g_part = calloc(n, sizeof *p);
  vae_init_params(&c, p, 5);
  float *x = malloc((size_t)B * D * sizeof *x), *eps = malloc((size_t)B * L * sizeof *eps);
  vae_rng_uniform(x, (size_t)B * D, 9, VAE_RNG_SAMPLE, 0, 0, 0);
  vae_rng_normal(eps, (size_t)B * L, 9, VAE_RNG_EPS, 0, 0, 0);
  vae_views pv, gv_full, gv_part;
  vae_views_init(&c, p, &pv);
  vae_views_init(&c, g_full, &gv_full);
  vae_views_init(&c, g_part, &gv_part);
  vae_workspace *ws = vae_workspace_create(&c, B);
  /* Whole batch, mean over B. */
  vae_forward(&c, &pv, ws, x, eps, B);
  vae_backward(&c, &pv, &gv_full, ws, x, eps, B, 1.0f, 1.0f / B);
  /* This rank's share of the batch, summed, then reduced and divided by B as the trainer does. */
  int lo = d.rank * B / d.size, hi = (d.rank + 1) * B / d.size;
  if (hi > lo) {
    vae_forward(&c, &pv, ws, x + (size_t)lo * D, eps + (size_t)lo * L, hi - lo);
    vae_backward(&c, &pv, &gv_part, ws, x + (size_t)lo * D, eps + (size_t)lo * L, hi - lo, 1.0f, 1.0f);
  }
  vae_dist_sum_floats(g_part, n);
  double num = 0, den = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    double diff = (double)g_part[i] / B - (double)g_full[i];
    num += diff * diff;
    den += (double)g_full[i] * g_full[i];
    double rel = fabs(diff) / (fabs((double)g_full[i]) + 1e-6);
    worst = rel > worst ? rel : worst;
  }
  CHECK(den > 0, "zero reference gradient");
  CHECK(sqrt(num / den) < 1e-5, "averaged gradient differs: relative norm error %g (worst element %g)",
        sqrt(num / den), worst);
  /* Every rank holds the same reduced bits. */
  float *r0 = malloc(n * sizeof *r0);
  memcpy(r0, g_part, n * sizeof *r0);
  vae_dist_bcast_floats(r0, n);
  CHECK(memcmp(r0, g_part, n * sizeof *r0) == 0, "rank %d's reduced gradient differs from rank 0's", d.rank);
  vae_workspace_free(ws);
  free(p);
  free(g_full);
  free(g_part);
  free(x);
  free(eps);
  free(r0);
  int rc = check_done("test_grad_avg"), all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return all;
}
