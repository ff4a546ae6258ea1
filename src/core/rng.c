/* rng.c: Philox4x32-10 and the uniform, normal and permutation streams built on it.
 * Must never keep state between calls: the key and counter say everything. */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void vae_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = (uint32_t)p1;
    c2 = n2;
    c3 = (uint32_t)p0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* Block `block` of the stream: the counter carries (block, rank, step), the purpose goes in the
 * top byte of the last word so different uses never share a counter. */
static void stream_block(uint64_t seed, uint32_t purpose, uint32_t rank, uint64_t step, uint64_t block,
                         uint32_t out[4]) {
  uint32_t ctr[4] = {
      (uint32_t)block, rank, (uint32_t)step,
      ((uint32_t)(step >> 32) & 0x00FFFFFFu) ^ (purpose << 24) ^ ((uint32_t)(block >> 32) << 12)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  vae_philox4x32(ctr, key, out);
}

static inline double u32_to_open01(uint32_t u) {
  /* (0, 1]: never 0, so log() is finite in Box-Muller. */
  return ((double)u + 1.0) * (1.0 / 4294967296.0);
}

void vae_rng_uniform(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t rank, uint64_t step,
                     uint64_t first) {
  uint32_t r[4];
  for (size_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    if (i == 0 || idx % 4 == 0) stream_block(seed, purpose, rank, step, idx / 4, r);
    /* 24 high bits: exactly representable floats in [0, 1). */
    out[i] = (float)(r[idx % 4] >> 8) * (1.0f / 16777216.0f);
  }
}

void vae_rng_normal(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t rank, uint64_t step,
                    uint64_t first) {
  uint32_t r[4];
  const double two_pi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < n; i += 2) {
    uint64_t idx = first + i; /* normals 2j, 2j+1 come from the uniform pair (2j, 2j+1) */
    if (i == 0 || idx % 4 == 0) stream_block(seed, purpose, rank, step, idx / 4, r);
    double u1 = u32_to_open01(r[idx % 4]);
    double u2 = u32_to_open01(r[idx % 4 + 1]);
    double rad = sqrt(-2.0 * log(u1));
    out[i] = (float)(rad * cos(two_pi * u2));
    if (i + 1 < n) out[i + 1] = (float)(rad * sin(two_pi * u2));
  }
}

void vae_rng_shuffle(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t purpose, uint32_t rank,
                     uint64_t step) {
  for (uint32_t i = 0; i < n; i++) perm[i] = i;
  uint32_t r[4];
  for (uint32_t i = n; i > 1; i--) {
    uint64_t k = n - i; /* one 64-bit draw per swap: words 2k%4, 2k%4+1 of block k/2 */
    stream_block(seed, purpose, rank, step, k / 2, r);
    uint64_t x = ((uint64_t)r[(k % 2) * 2] << 32) | r[(k % 2) * 2 + 1];
    /* Lemire's multiply-shift: j uniform in [0, i) (bias below 2^-32 for any i < 2^32). */
    uint32_t j = (uint32_t)(((unsigned __int128)x * i) >> 64);
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}

void vae_rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint32_t rank, uint64_t epoch) {
  vae_rng_shuffle(perm, n, seed, VAE_RNG_PERM, rank, epoch);
}
