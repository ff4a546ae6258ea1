/* test_rng.c: Philox known-answer vectors, stream independence, moments, permutations. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

int main(void) {
  /* Known-answer tests from the Random123 distribution (kat_vectors, philox4x32 10 rounds). */
  {
    uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, out[4];
    vae_philox4x32(ctr, key, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u,
          "philox(0) = %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    uint32_t ctr2[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    uint32_t key2[2] = {0xffffffffu, 0xffffffffu};
    vae_philox4x32(ctr2, key2, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu,
          "philox(ff) = %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    uint32_t ctr3[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    uint32_t key3[2] = {0xa4093822u, 0x299f31d0u};
    vae_philox4x32(ctr3, key3, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u,
          "philox(pi) = %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
  }
  enum { N = 100000 };
  float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  /* Same key, same numbers; a later window of the stream equals the tail of a longer draw. */
  vae_rng_normal(a, N, 42, VAE_RNG_EPS, 3, 17, 0);
  vae_rng_normal(b, N, 42, VAE_RNG_EPS, 3, 17, 0);
  CHECK(memcmp(a, b, N * sizeof *a) == 0, "same key gave different noise");
  vae_rng_normal(b, 1000, 42, VAE_RNG_EPS, 3, 17, 5000);
  CHECK(memcmp(a + 5000, b, 1000 * sizeof *a) == 0, "offset window differs from the stream");
  /* Moments of N(0, 1). */
  double s = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < N; i++) {
    s += a[i];
    s2 += (double)a[i] * a[i];
    s4 += (double)a[i] * a[i] * a[i] * a[i];
  }
  CHECK(fabs(s / N) < 0.015, "mean %g", s / N);
  CHECK(fabs(s2 / N - 1.0) < 0.02, "variance %g", s2 / N);
  CHECK(fabs(s4 / N - 3.0) < 0.1, "fourth moment %g", s4 / N);
  /* Other rank, other step, other seed, other purpose: uncorrelated streams. */
  const struct {
    uint64_t seed;
    uint32_t purpose, rank;
    uint64_t step;
  } other[4] = {{42, VAE_RNG_EPS, 4, 17},
                {42, VAE_RNG_EPS, 3, 18},
                {43, VAE_RNG_EPS, 3, 17},
                {42, VAE_RNG_EVAL, 3, 17}};
  for (int k = 0; k < 4; k++) {
    vae_rng_normal(b, N, other[k].seed, other[k].purpose, other[k].rank, other[k].step, 0);
    double c = 0;
    int same = 0;
    for (int i = 0; i < N; i++) {
      c += (double)a[i] * b[i];
      same += a[i] == b[i];
    }
    CHECK(fabs(c / N) < 0.015 && same < 5, "stream %d correlated with the base stream: %g, %d equal", k,
          c / N, same);
  }
  /* Uniforms in [0, 1) with mean 1/2. */
  vae_rng_uniform(a, N, 7, VAE_RNG_INIT, 0, 0, 0);
  double mu = 0, lo = 1, hi = 0;
  for (int i = 0; i < N; i++) {
    mu += a[i];
    lo = a[i] < lo ? a[i] : lo;
    hi = a[i] > hi ? a[i] : hi;
  }
  CHECK(lo >= 0.0 && hi < 1.0 && fabs(mu / N - 0.5) < 0.01, "uniform range [%g, %g] mean %g", lo, hi, mu / N);
  /* Permutations: a bijection, deterministic, different per epoch and rank, roughly uniform. */
  uint32_t *p = malloc(N * sizeof *p), *q = malloc(N * sizeof *q);
  char *seen = calloc(N, 1);
  vae_rng_permutation(p, N, 1, 0, 0);
  int ok = 1;
  for (int i = 0; i < N; i++) {
    if (p[i] >= N || seen[p[i]])
      ok = 0;
    else
      seen[p[i]] = 1;
  }
  CHECK(ok, "permutation is not a bijection");
  vae_rng_permutation(q, N, 1, 0, 0);
  CHECK(memcmp(p, q, N * sizeof *p) == 0, "permutation not deterministic");
  vae_rng_permutation(q, N, 1, 0, 1);
  int fixed = 0;
  for (int i = 0; i < N; i++) fixed += p[i] == q[i];
  CHECK(fixed < 20, "epochs 0 and 1 agree in %d places", fixed);
  vae_rng_permutation(q, N, 1, 1, 0);
  fixed = 0;
  for (int i = 0; i < N; i++) fixed += p[i] == q[i];
  CHECK(fixed < 20, "ranks 0 and 1 agree in %d places", fixed);
  /* Position of element 0 over many small permutations is uniform over 4 slots. */
  int count[4] = {0};
  for (uint64_t e = 0; e < 8000; e++) {
    uint32_t small[4];
    vae_rng_permutation(small, 4, 9, 0, e);
    for (int i = 0; i < 4; i++)
      if (small[i] == 0) count[i]++;
  }
  for (int i = 0; i < 4; i++) CHECK(abs(count[i] - 2000) < 200, "slot %d got %d of 8000", i, count[i]);
  free(a);
  free(b);
  free(p);
  free(q);
  free(seen);
  return check_done("test_rng");
}
