/* test_data_shards.c: vae_shard_range splits N rows over P ranks into disjoint, ordered, covering
 * ranges whose counts differ by at most 1, also for N near 2^40 where r*N would need care. */
#include <stdint.h>

#include "check.h"
#include "data.h"

/* Checks one (n, P), one CHECK per property. */
static void check_split(size_t n, int P) {
  size_t expect_off = 0, min_c = SIZE_MAX, max_c = 0;
  int ordered = 1;
  for (int r = 0; r < P; r++) {
    size_t off, cnt;
    vae_shard_range(n, r, P, &off, &cnt);
    ordered &= off == expect_off; /* disjoint and gap-free: each starts where the last ended */
    expect_off = off + cnt;
    if (cnt < min_c) min_c = cnt;
    if (cnt > max_c) max_c = cnt;
    /* The formula itself, in 128-bit arithmetic as an independent reference. */
    unsigned __int128 ref = (unsigned __int128)r * n / (unsigned)P;
    ordered &= (unsigned __int128)off == ref;
  }
  CHECK(ordered, "n=%zu P=%d: ranges not r*n/P, or not contiguous", n, P);
  CHECK(expect_off == n, "n=%zu P=%d: ranges cover %zu rows", n, P, expect_off);
  CHECK(max_c - min_c <= 1, "n=%zu P=%d: counts from %zu to %zu", n, P, min_c, max_c);
}

int main(void) {
  const size_t big[] = {60000, 10007, ((size_t)1 << 40) + 3, SIZE_MAX / 3, SIZE_MAX};
  for (int P = 1; P <= 7; P++) {
    for (size_t n = 1; n <= 50; n++) check_split(n, P);
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) check_split(big[i], P);
  }
  /* Known values: 10 rows over 3 ranks are 3, 3, 4; 2^40+3 over 4 ranks gives rank 1
   * [2^38, 2^39 + 1). */
  size_t off, cnt;
  vae_shard_range(10, 2, 3, &off, &cnt);
  CHECK(off == 6 && cnt == 4, "10 over 3, rank 2: off %zu count %zu", off, cnt);
  vae_shard_range(((size_t)1 << 40) + 3, 1, 4, &off, &cnt);
  CHECK(off == ((size_t)1 << 38) && cnt == ((size_t)1 << 38) + 1, "2^40+3 over 4: off %zu count %zu", off,
        cnt);
  /* More ranks than rows: some ranks hold nothing, and still sit at a valid offset. */
  vae_shard_range(2, 0, 5, &off, &cnt);
  CHECK(off == 0 && cnt == 0, "2 over 5, rank 0: off %zu count %zu", off, cnt);
  return check_done("test_data_shards");
}
