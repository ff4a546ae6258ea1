/* test_team.c: the thread team of the training step (team.h). Its slices cover [0, n) in order with
 * aligned edges; every member runs every run exactly once; a run is a full barrier (what one member
 * wrote in a run is seen by every other member in the next, checked over thousands of back-to-back
 * runs, with and without pauses long enough for the helpers to go to sleep); size 1 runs in place.
 * Also the property the step's split norm relies on (adam.h): the sums of squares of VAE_SQ_BLOCK
 * pieces, added in order, are vae_sum_squares's bits. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "check.h"
#include "team.h"

static void check_slices(size_t n, int parts, size_t align) {
  size_t prev = 0;
  int ok = 1;
  for (int k = 0; k < parts; k++) {
    size_t lo, hi;
    vae_team_slice(n, parts, k, align, &lo, &hi);
    ok &= lo == prev && hi >= lo && (lo % align == 0 || lo == n) && (hi % align == 0 || hi == n);
    ok &= hi - lo <= ((n + align - 1) / align / (size_t)parts + 1) * align; /* balanced */
    prev = hi;
  }
  CHECK(ok && prev == n, "slices of n=%zu in %d parts aligned %zu", n, parts, align);
}

/* Each run: member k reads what every member wrote in the previous run, then writes its own slot. */
typedef struct {
  int size;
  long run;
  long *slot;        /* [2][size]: run r writes slot[r % 2][k] = r and reads slot[(r - 1) % 2][*] */
  long *seen_bad;    /* [size]: reads of a stale slot */
  long *count;       /* [size]: runs member k did */
  pthread_t *thread; /* [size]: which thread ran member k this run */
} relay;

static void relay_fn(void *ctx, int k) {
  relay *r = ctx;
  const long *prev = r->slot + ((r->run + 1) % 2) * r->size;
  for (int j = 0; j < r->size; j++)
    if (prev[j] != r->run - 1) r->seen_bad[k]++;
  r->count[k]++;
  r->thread[k] = pthread_self();
  /* Uneven work, so that members finish in varying order. */
  volatile double x = 0;
  for (int i = 0; i < (int)((r->run * 7 + k * 13) % 50) * 20; i++) x += i;
  r->slot[(r->run % 2) * r->size + k] = r->run;
}

static void check_team(int size, long runs, int pauses) {
  vae_team *team = vae_team_create(size);
  CHECK(vae_team_size(team) == size, "size %d", vae_team_size(team));
  relay r = {size,
             0,
             calloc(2 * (size_t)size, sizeof(long)),
             calloc((size_t)size, sizeof(long)),
             calloc((size_t)size, sizeof(long)),
             calloc((size_t)size, sizeof(pthread_t))};
  for (int j = 0; j < 2 * size; j++) r.slot[j] = -1;
  int all_distinct = 1;
  for (r.run = 0; r.run < runs; r.run++) {
    vae_team_run(team, relay_fn, &r);
    int stale = 0;
    for (int j = 0; j < size; j++) stale |= r.slot[(r.run % 2) * size + j] != r.run; /* seen by the caller */
    CHECK(!stale, "size %d run %ld: a member's write not visible to the caller", size, r.run);
    if (stale) break;
    int distinct = pthread_equal(r.thread[0], pthread_self());
    for (int a = 1; a < size; a++)
      for (int b = 0; b < a; b++) distinct &= !pthread_equal(r.thread[a], r.thread[b]);
    all_distinct &= distinct;
    if (pauses && r.run % 100 == 99) nanosleep(&(struct timespec){0, 2000000}, NULL); /* helpers sleep */
  }
  CHECK(all_distinct, "size %d: members not each on its own thread (member 0 on the caller's)", size);
  for (int k = 0; k < size; k++) {
    CHECK(r.count[k] == runs, "size %d member %d ran %ld of %ld runs", size, k, r.count[k], runs);
    CHECK(r.seen_bad[k] == 0, "size %d member %d saw %ld stale slots", size, k, r.seen_bad[k]);
  }
  vae_team_free(team);
  free(r.slot), free(r.seen_bad), free(r.count), free(r.thread);
}

static void check_block_sums(void) {
  const size_t n = 5 * VAE_SQ_BLOCK + 317;
  float *x = malloc(n * sizeof *x);
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((int32_t)s) * 1e-9f;
  }
  double whole = vae_sum_squares(x, n);
  for (int parts = 1; parts <= 7; parts++) {
    double sum = 0;
    for (int k = 0; k < parts; k++) {
      size_t lo, hi;
      vae_team_slice(n, parts, k, VAE_SQ_BLOCK, &lo, &hi);
      for (size_t b = lo; b < hi; b += VAE_SQ_BLOCK)
        sum += vae_sum_squares_block(x + b, hi - b < VAE_SQ_BLOCK ? hi - b : VAE_SQ_BLOCK);
    }
    CHECK(memcmp(&sum, &whole, sizeof sum) == 0, "%d pieces: %.17g vs %.17g", parts, sum, whole);
  }
  double naive = 0;
  for (size_t i = 0; i < n; i++) naive += (double)x[i] * x[i];
  CHECK_CLOSE(whole, naive, 1e-6, 0);
  free(x);
}

int main(void) {
  for (size_t n = 0; n < 40; n++)
    for (int parts = 1; parts <= 5; parts++) {
      check_slices(n, parts, 1);
      check_slices(n, parts, 8);
    }
  check_slices(2652000, 2, VAE_SQ_BLOCK);
  check_slices(2652000, 3, VAE_SQ_BLOCK);
  check_slices(100, 8, VAE_SQ_BLOCK); /* fewer blocks than members: some get nothing */
  check_team(1, 100, 0);
  check_team(2, 20000, 0);
  check_team(3, 2000, 1);
  check_team(4, 1000, 1);
  check_block_sums();
  return check_done("test_team");
}
