/* step_parts.c: by-hand timing of the non-GEMM parts of one training step, not a test. Under mpirun,
 * the best of R repetitions (robust to a loaded machine) of: the gradient memset, the batch gather,
 * forward+backward, the gradient norm, Adam over all parameters and over this rank's 1/P slice, the
 * gradient MPI_Allreduce, and a reduce-scatter + parameter allgather (the sharded-Adam alternative).
 *   mpirun -np 2 build/vae_step_parts [--batch B] [--reps R]
 * Prints one line per part from rank 0, in milliseconds. Then whole steps as train runs them, back to
 * back without barriers (caches and the ranks' drift as in training), mean of S steps, once without and
 * once with the gradient MPI_Allreduce: what the sum costs in context, against its cost alone.
 *   mpirun -np 2 build/vae_step_parts [--batch B] [--reps R] [--steps S] [--json]
 * --json: only the two whole-step runs, one JSON line each (for scripts/bench.sh). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "blas_kernels.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "rng.h"
#include "vae.h"

#define PARTS 9
static const char *names[PARTS] = {"memset grads",
                                   "batch gather (uint8 -> float)",
                                   "forward + backward",
                                   "sum of squares (all)",
                                   "Adam (all params)",
                                   "Adam (1/P slice)",
                                   "MPI_Allreduce (all grads)",
                                   "reduce-scatter grads",
                                   "allgather params"};

int main(int argc, char **argv) {
  vae_blas_select(argv); /* vae_mpi's kernels: before MPI_Init, as in main.c */
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  int B = 128, reps = 200, steps = 400, json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
      B = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--steps") == 0)
      steps = atoi(argv[++i]);
  }
  vae_config c = vae_config_default(28, 28, 1);
  size_t n = vae_num_params(&c), D = vae_input_dim(&c);
  float *p = mallocCheck(n * sizeof *p), *g = callocCheck(n, sizeof *g);
  float *m = callocCheck(n, sizeof *m), *v = callocCheck(n, sizeof *v);
  vae_init_params(&c, p, 1);
  vae_views pv, gv;
  vae_views_init(&c, p, &pv);
  vae_views_init(&c, g, &gv);
  vae_workspace *ws = vae_workspace_create(&c, B);
  /* A fake uint8 shard of 4096 images and a batch of random rows. */
  vae_shard sh = {0};
  sh.count = 4096;
  sh.d = D;
  sh.u8 = mallocCheck(sh.count * D);
  for (size_t i = 0; i < sh.count * D; i++) sh.u8[i] = (uint8_t)((i * 2654435761u) >> 24);
  uint32_t *rows = mallocCheck((size_t)B * sizeof *rows);
  for (int b = 0; b < B; b++) rows[b] = (uint32_t)((b * 2654435761u) % sh.count);
  vae_rng_normal(ws->eps, (size_t)B * c.latent, 1, VAE_RNG_EPS, 0, 0, 0);
  int *counts = mallocCheck((size_t)d.size * sizeof *counts),
      *displs = mallocCheck((size_t)d.size * sizeof *displs);
  for (int r = 0; r < d.size; r++) {
    displs[r] = (int)((size_t)r * n / (size_t)d.size);
    counts[r] = (int)((size_t)(r + 1) * n / (size_t)d.size) - displs[r];
  }
  size_t lo = (size_t)displs[d.rank], cnt = (size_t)counts[d.rank];
  vae_adam a = {1e-3f, 0.9, 0.999, 1e-8f};
  double best[PARTS];
  for (int k = 0; k < PARTS; k++) best[k] = 1e9;
  volatile double sink = 0;
  for (int r = 0; r < reps; r++) {
    double t[PARTS + 1];
    MPI_Barrier(MPI_COMM_WORLD);
    t[0] = MPI_Wtime();
    memset(g, 0, n * sizeof *g);
    t[1] = MPI_Wtime();
    vae_shard_batch(&sh, rows, B, ws->x);
    t[2] = MPI_Wtime();
    vae_forward(&c, &pv, ws, ws->x, ws->eps, B);
    vae_backward(&c, &pv, &gv, ws, ws->x, ws->eps, B, 1.0f, 1.0f);
    t[3] = MPI_Wtime();
    sink += vae_sum_squares(g, n);
    t[4] = MPI_Wtime();
    vae_adam_update(&a, r + 1, p, g, m, v, n, 1e-6f);
    t[5] = MPI_Wtime();
    vae_adam_update(&a, r + 1, p + lo, g + lo, m + lo, v + lo, cnt, 1e-6f);
    MPI_Barrier(MPI_COMM_WORLD);
    t[6] = MPI_Wtime();
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    t[7] = MPI_Wtime();
    mpiCheck(MPI_Reduce_scatter(MPI_IN_PLACE, g, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    t[8] = MPI_Wtime();
    mpiCheck(
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p, counts, displs, MPI_FLOAT, MPI_COMM_WORLD));
    t[9] = MPI_Wtime();
    for (int k = 0; k < PARTS; k++) best[k] = t[k + 1] - t[k] < best[k] ? t[k + 1] - t[k] : best[k];
    vae_init_params(&c, p, 1); /* keep the parameters sane over the repetitions */
  }
  if (d.rank == 0 && !json) {
    printf("step parts at np %d, batch %d, %zu parameters, best of %d (ms), %s:\n", d.size, B, n, reps,
           vae_blas_describe());
    for (int k = 0; k < PARTS; k++) printf("  %-32s %8.3f\n", names[k], 1e3 * best[k]);
  }
  /* Whole steps in context: compute (memset, gather, noise, forward, backward), sum, norm + Adam. */
  for (int comm = 0; comm <= 1; comm++) {
    double part[3] = {0};
    vae_init_params(&c, p, 1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int s = 0; s < steps; s++) {
      double ta = MPI_Wtime();
      for (int b = 0; b < B; b++) rows[b] = (uint32_t)(((size_t)s * B + b) * 2654435761u % sh.count);
      memset(g, 0, n * sizeof *g);
      vae_shard_batch(&sh, rows, B, ws->x);
      vae_rng_normal(ws->eps, (size_t)B * c.latent, 1, VAE_RNG_EPS, (uint32_t)d.rank, (uint64_t)s, 0);
      vae_forward(&c, &pv, ws, ws->x, ws->eps, B);
      vae_backward(&c, &pv, &gv, ws, ws->x, ws->eps, B, 1.0f, 1.0f);
      double tb = MPI_Wtime();
      if (comm) mpiCheck(MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
      double tc = MPI_Wtime();
      sink += vae_sum_squares(g, n);
      vae_adam_update(&a, s + 1, p, g, m, v, n, 1.0f / (float)(B * d.size));
      part[0] += tb - ta, part[1] += tc - tb, part[2] += MPI_Wtime() - tc;
    }
    double el = MPI_Wtime() - t0, step_ms = 1e3 * el / steps;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, part, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    if (d.rank == 0 && json)
      printf(
          "{\"what\":\"loop%d_%s\",\"samples_per_s\":%.1f,\"step_ms\":%.4f,\"compute_ms\":%.4f,"
          "\"allreduce_ms\":%.4f,\"adam_ms\":%.4f,\"allreduce_alone_ms\":%.4f,%s}\n",
          d.size, comm ? "sum" : "nosum", (double)B * d.size / (step_ms / 1e3), step_ms,
          1e3 * part[0] / steps, 1e3 * part[1] / steps, 1e3 * part[2] / steps, 1e3 * best[6],
          vae_blas_json());
    else if (d.rank == 0)
      printf(
          "%d consecutive steps %s the gradient MPI_Allreduce, mean (ms; parts: slowest rank):\n"
          "  step %.3f (%.0f samples/s): compute %.3f, allreduce %.3f, norm + Adam %.3f\n",
          steps, comm ? "with" : "without", step_ms, (double)B * d.size / (step_ms / 1e3),
          1e3 * part[0] / steps, 1e3 * part[1] / steps, 1e3 * part[2] / steps);
  }
  vae_workspace_free(ws);
  free(g);
  free(p), free(m), free(v), free(sh.u8), free(rows), free(counts), free(displs);
  vae_dist_finalize();
  return 0;
}
