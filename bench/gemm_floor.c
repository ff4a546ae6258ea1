/* gemm_floor.c: the GEMM floor of one vae_mpi training step. Times exactly the matrix products of
 * forward and backward for an MLP VAE (default 784-400-20-400-784, batch 128) with one OpenBLAS
 * thread, and prints the samples/s those products alone allow: the physical limit the trainer is
 * measured against (scripts/bench.sh runs one copy per core side by side).
 *   gemm_floor [--batch B] [--dims 784,400,20] [--seconds S]
 * Prints one JSON line: {"batch":..,"gflop_per_step":..,"step_ms":..,"samples_per_s":..,"blas":..}.
 * Its OpenBLAS kernels are chosen exactly as vae_mpi's (vae_blas_select, blas_kernels.h). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_kernels.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int m, n, k;
  int trans_a, trans_b;
} gemm;

int main(int argc, char **argv) {
  vae_blas_select(argv); /* may re-execute this program with the right OPENBLAS_CORETYPE */
  int B = 128, D = 784, H = 400, L = 20;
  double seconds = 3.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--batch") == 0)
      B = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--dims") == 0)
      sscanf(argv[i + 1], "%d,%d,%d", &D, &H, &L);
    else if (strcmp(argv[i], "--seconds") == 0)
      seconds = atof(argv[i + 1]);
  }
  openblas_set_num_threads(1);
  /* Row-major C (m, n) = op(A) (m, k) x op(B) (k, n), as the trainer calls them. */
  const gemm g[] = {
      /* forward: Y = X W^T */
      {B, H, D, 0, 1},     /* encoder hidden */
      {B, 2 * L, H, 0, 1}, /* mu and logvar heads, fused */
      {B, H, L, 0, 1},     /* decoder hidden */
      {B, D, H, 0, 1},     /* output head */
      /* backward: dW = dY^T X, dX = dY W */
      {D, H, B, 1, 0},
      {B, H, D, 0, 0}, /* output head */
      {H, L, B, 1, 0},
      {B, L, H, 0, 0}, /* decoder hidden */
      {2 * L, H, B, 1, 0},
      {B, H, 2 * L, 0, 0}, /* heads */
      {H, D, B, 1, 0},     /* encoder hidden: no dX of the input */
  };
  const int ng = (int)(sizeof g / sizeof g[0]);
  size_t big = (size_t)(D > H ? D : H) * (size_t)(B > H ? B : H) * 2;
  float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float)), *c = malloc(big * sizeof(float));
  for (size_t i = 0; i < big; i++) {
    a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    c[i] = 0;
  }
  double flop = 0;
  for (int i = 0; i < ng; i++) flop += 2.0 * g[i].m * g[i].n * g[i].k;
  long steps = 0;
  double t0 = now(), t;
  do {
    for (int i = 0; i < ng; i++) {
      int lda = g[i].trans_a ? g[i].m : g[i].k, ldb = g[i].trans_b ? g[i].k : g[i].n;
      cblas_sgemm(CblasRowMajor, g[i].trans_a ? CblasTrans : CblasNoTrans,
                  g[i].trans_b ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f, a, lda, b, ldb,
                  0.0f, c, g[i].n);
    }
    steps++;
    t = now() - t0;
  } while (t < seconds);
  printf(
      "{\"batch\":%d,\"dims\":[%d,%d,%d],\"gflop_per_step\":%.4f,\"step_ms\":%.4f,\"samples_per_s\":%.1f,\"gflops\":%.2f,%s}\n",
      B, D, H, L, flop * 1e-9, 1e3 * t / steps, (double)steps * B / t, flop * steps / t * 1e-9,
      vae_blas_json());
  free(a);
  free(b);
  free(c);
  return 0;
}
