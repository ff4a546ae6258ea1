/* step_loop.c: train's own step (vae_train_step, src/train/step.c) back to back on a synthetic
 * shard, at any layout of ranks x worker threads, timed by phase; not a test. For scripts/bench.sh:
 * what the step spends its time on, without the data read, evaluation and checkpoints of a run.
 *   mpirun -np R [--bind-to none] build/vae_step_loop [--threads T] [--batch B] [--steps S] [--json]
 * Prints the mean per step (ms) over S steps after 20 warm-up steps and rank 0's median step: the
 * workers' compute (batch gather, noise, forward, backward: until the last worker is done), the
 * slowest worker's mean own compute (what a rank of one thread measures as its compute: the rest of
 * the first is the workers' imbalance step by step and the team's wake-ups), the on-node sum of their
 * gradients, the MPI_Allreduce between ranks, norm + Adam; each the slowest rank's. --json: one line
 * {"what":"loopRxT",...}. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "blas_kernels.h"
#include "cli.h"
#include "dist.h"
#include "error.h"
#include "trainer.h"

int main(int argc, char **argv) {
  vae_blas_select(argv); /* vae_mpi's kernels: before MPI_Init, as in main.c */
  static vae_trainer t;
  vae_dist_init(&argc, &argv, &t.d);
  int B = 128, steps = 300, threads = 1, json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
      B = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--steps") == 0)
      steps = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
      threads = atoi(argv[++i]);
  }
  vae_train_opts_default(&t.o);
  t.o.model.in_h = t.o.model.in_w = 28,
  t.o.model.in_c = 1; /* 784-400-20-400-784, bernoulli: train's default */
  t.o.batch_size = B;
  t.o.threads = threads;
  if (threads <= 1) openblas_set_num_threads(1);
  vae_trainer_alloc(&t);
  vae_init_params(&t.o.model, t.params, 1);
  /* A fake uint8 shard of 4096 images; worker k's rows of step s, pseudo-random. */
  vae_shard sh = {0};
  sh.count = 4096;
  sh.d = 784;
  sh.u8 = mallocCheck(sh.count * sh.d);
  for (size_t i = 0; i < sh.count * sh.d; i++) sh.u8[i] = (uint8_t)((i * 2654435761u) >> 24);
  uint32_t *rows = mallocCheck((size_t)B * t.workers * sizeof *rows);
  const uint32_t **wrows = mallocCheck((size_t)t.workers * sizeof *wrows);
  int *n = mallocCheck((size_t)t.workers * sizeof *n);
  double part[5] = {0}, t0 = 0, *each = mallocCheck((size_t)steps * sizeof *each);
  double *own = callocCheck((size_t)t.workers, sizeof *own); /* each worker's own compute, summed */
  const int warm = 20;
  for (int s = -warm; s < steps; s++) {
    if (s == 0) {
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = MPI_Wtime();
    }
    const double ts = MPI_Wtime();
    for (int k = 0; k < t.workers; k++) {
      for (int b = 0; b < B; b++)
        rows[k * B + b] = (uint32_t)((((size_t)(s + warm) * t.workers + k) * B + b) * 2654435761u % sh.count);
      wrows[k] = rows + (size_t)k * B;
      n[k] = B;
    }
    vae_step_result r = vae_train_step(&t, &sh, wrows, n);
    if (s < 0) continue;
    part[0] += r.compute_s, part[1] += r.node_sum_s, part[2] += r.allreduce_s, part[3] += r.update_s;
    for (int k = 0; k < t.workers; k++) own[k] += t.w[k].compute_s;
    each[s] = MPI_Wtime() - ts;
  }
  double step_ms = 1e3 * (MPI_Wtime() - t0) / steps;
  for (int k = 0; k < t.workers; k++) part[4] = own[k] > part[4] ? own[k] : part[4];
  qsort(each, (size_t)steps, sizeof *each, cmp_double); /* rank 0's steps: the median is robust to a
                                                           * step preempted by another job */
  const double median_ms = 1e3 * each[steps / 2];
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, part, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  const double sps = (double)B * vae_train_world_workers(&t) / (step_ms / 1e3);
  if (t.d.rank == 0 && json)
    printf(
        "{\"what\":\"loop%dx%d\",\"samples_per_s\":%.1f,\"step_ms\":%.4f,\"median_step_ms\":%.4f,\"compute_ms\":%.4f,"
        "\"worker_ms\":%.4f,\"node_sum_ms\":%.4f,\"allreduce_ms\":%.4f,\"update_ms\":%.4f,%s}\n",
        t.d.size, t.workers, sps, step_ms, median_ms, 1e3 * part[0] / steps, 1e3 * part[4] / steps,
        1e3 * part[1] / steps, 1e3 * part[2] / steps, 1e3 * part[3] / steps, vae_blas_json());
  else if (t.d.rank == 0)
    printf(
        "%d ranks x %d workers, batch %d per worker, %d steps: %.3f ms per step (%.0f samples/s; median %.3f): compute "
        "%.3f (the slowest worker's mean own %.3f), on-node sum %.3f, allreduce %.3f, norm + Adam %.3f (slowest rank's means), %s\n",
        t.d.size, t.workers, B, steps, step_ms, sps, median_ms, 1e3 * part[0] / steps, 1e3 * part[4] / steps,
        1e3 * part[1] / steps, 1e3 * part[2] / steps, 1e3 * part[3] / steps, vae_blas_describe());
  vae_trainer_free(&t);
  free(sh.u8), free(rows), free(wrows), free(n), free(each), free(own);
  vae_dist_finalize();
  return 0;
}
