/* refio.h: reading the reference files the PyTorch scripts write (tests/torch_ref.py,
 * tests/torch_conv_ref.py) for the C tests that compare with them. A short file is a test failure. */
#ifndef VAE_TEST_REFIO_H
#define VAE_TEST_REFIO_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "error.h"

static void read_exact(void *p, size_t size, size_t n, FILE *f, const char *what) {
  if (fread(p, size, n, f) != n) VAE_FAIL("reference file ends inside %s", what);
}

static float *read_floats(size_t n, FILE *f, const char *what) {
  float *p = mallocCheck((n ? n : 1) * sizeof *p);
  read_exact(p, sizeof *p, n, f, what);
  return p;
}

/* ||a - b|| / ||b|| over n values (infinite when b is all zeros, so that a test of it fails) */
static double refio_rel_norm(const float *a, const float *b, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    r += (double)b[i] * b[i];
  }
  return r > 0 ? sqrt(d) / sqrt(r) : INFINITY;
}

/* Our per-image recon and kl against the reference's (relative 1e-4 each); the worst relative errors
 * go to *worst_r, *worst_k. */
static void refio_check_losses(const double *recon, const double *kl, const float *ref_recon,
                               const float *ref_kl, int B, double *worst_r, double *worst_k) {
  *worst_r = *worst_k = 0;
  for (int b = 0; b < B; b++) {
    CHECK_CLOSE(recon[b], ref_recon[b], 1e-4, 0);
    CHECK_CLOSE(kl[b], ref_kl[b], 1e-4, 0);
    *worst_r = fmax(*worst_r, fabs(recon[b] - ref_recon[b]) / fabs(ref_recon[b]));
    *worst_k = fmax(*worst_k, fabs(kl[b] - ref_kl[b]) / fabs(ref_kl[b]));
  }
}

/* The main of a test that reads reference file argv[1]: its 8-byte magic, the case count (must be
 * `ncases`), then each case through run_case, then nothing more. */
static int refio_main(int argc, char **argv, const char *test, const char *script, const char *magic,
                      int ncases, void (*run_case)(FILE *f, int k)) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s REF.bin (written by %s)\n", test, script);
    return 2;
  }
  FILE *f = fopenCheck(argv[1], "rb");
  char got[8];
  int32_t n;
  read_exact(got, 1, 8, f, "the magic");
  CHECK(memcmp(got, magic, 8) == 0, "bad magic (not a file from %s)", script);
  read_exact(&n, sizeof n, 1, f, "the case count");
  CHECK(n == ncases, "expected %d cases, the file has %d", ncases, n);
  for (int k = 0; k < n && k < ncases; k++) run_case(f, k);
  char extra;
  CHECK(fread(&extra, 1, 1, f) == 0, "trailing bytes after the last case");
  fclose(f);
  return check_done(test);
}

#endif
