/* refio.h: reading the reference files the PyTorch scripts write (tests/torch_ref.py,
 * tests/torch_conv_ref.py) for the C tests that compare with them. A short file is a test failure. */
#ifndef VAE_TEST_REFIO_H
#define VAE_TEST_REFIO_H

#include <stdio.h>

#include "error.h"

static void read_exact(void *p, size_t size, size_t n, FILE *f, const char *what) {
  if (fread(p, size, n, f) != n) VAE_FAIL("reference file ends inside %s", what);
}

static float *read_floats(size_t n, FILE *f, const char *what) {
  float *p = mallocCheck((n ? n : 1) * sizeof *p);
  read_exact(p, sizeof *p, n, f, what);
  return p;
}

#endif
