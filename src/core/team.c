/* team.c: a team of threads running one function together (team.h). A run publishes (fn, ctx) and
 * bumps a generation counter; helpers waiting for a new generation spin a little, then yield, then
 * sleep on a condition variable; the caller does member 0's share and waits for the others' done
 * count. Never calls MPI, never allocates after vae_team_create. */
#define _GNU_SOURCE
#include "team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a waiting helper stays awake: a step's phases follow each other within microseconds,
 * the pauses between steps (logging, the epoch loop) within tens of them. */
#define SPIN_ITERS 4000
#define AWAKE_NS 200000L

typedef struct {
  vae_team *team;
  int k;
} member;

struct vae_team {
  int size;
  pthread_t *threads;
  member *members;
  void (*fn)(void *ctx, int k);
  void *ctx;
  atomic_uint gen; /* bumped by every run (and by free, with quit set) */
  atomic_int done; /* helpers finished with the current run */
  atomic_int quit;
  pthread_mutex_t lock; /* sleepers and the condition variable */
  pthread_cond_t wake;
  int sleepers;
};

static long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Waits until the generation differs from `seen`; returns the new one. */
static unsigned wait_generation(vae_team *t, unsigned seen) {
  unsigned g;
  for (int i = 0; i < SPIN_ITERS; i++) {
    if ((g = atomic_load_explicit(&t->gen, memory_order_acquire)) != seen) return g;
    cpu_relax();
  }
  long until = now_ns() + AWAKE_NS;
  while (now_ns() < until) {
    if ((g = atomic_load_explicit(&t->gen, memory_order_acquire)) != seen) return g;
    sched_yield();
  }
  pthread_mutex_lock(&t->lock);
  t->sleepers++;
  while ((g = atomic_load_explicit(&t->gen, memory_order_acquire)) == seen)
    pthread_cond_wait(&t->wake, &t->lock);
  t->sleepers--;
  pthread_mutex_unlock(&t->lock);
  return g;
}

static void *helper_main(void *arg) {
  member *me = arg;
  vae_team *t = me->team;
  unsigned seen = 0;
  for (;;) {
    seen = wait_generation(t, seen);
    if (atomic_load_explicit(&t->quit, memory_order_acquire)) return NULL;
    t->fn(t->ctx, me->k);
    atomic_fetch_add_explicit(&t->done, 1, memory_order_release);
  }
}

/* Publishes a new generation under the lock, so that a helper about to sleep cannot miss it. */
static void bump(vae_team *t) {
  pthread_mutex_lock(&t->lock);
  atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
  if (t->sleepers > 0) pthread_cond_broadcast(&t->wake);
  pthread_mutex_unlock(&t->lock);
}

vae_team *vae_team_create(int size) {
  if (size < 1) VAE_FAIL("a team of %d threads", size);
  vae_team *t = callocCheck(1, sizeof *t);
  t->size = size;
  atomic_init(&t->gen, 0);
  atomic_init(&t->done, 0);
  atomic_init(&t->quit, 0);
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->wake, NULL);
  if (size == 1) return t;
  t->threads = callocCheck((size_t)size, sizeof *t->threads);
  t->members = callocCheck((size_t)size, sizeof *t->members);
  for (int k = 1; k < size; k++) {
    t->members[k] = (member){t, k};
    if (pthread_create(&t->threads[k], NULL, helper_main, &t->members[k]) != 0)
      VAE_FAIL("cannot start worker thread %d of %d (lower --threads)", k, size);
  }
  return t;
}

int vae_team_size(const vae_team *team) { return team->size; }

void vae_team_run(vae_team *t, void (*fn)(void *ctx, int k), void *ctx) {
  if (t->size == 1) {
    fn(ctx, 0);
    return;
  }
  t->fn = fn;
  t->ctx = ctx;
  atomic_store_explicit(&t->done, 0, memory_order_relaxed);
  bump(t);
  fn(ctx, 0);
  const int others = t->size - 1;
  for (int i = 0; atomic_load_explicit(&t->done, memory_order_acquire) < others; i++) {
    if (i < SPIN_ITERS)
      cpu_relax();
    else
      sched_yield(); /* a helper was descheduled (a loaded machine): give it the core */
  }
}

void vae_team_free(vae_team *t) {
  if (!t) return;
  if (t->size > 1) {
    atomic_store_explicit(&t->quit, 1, memory_order_release);
    bump(t);
    for (int k = 1; k < t->size; k++) pthread_join(t->threads[k], NULL);
  }
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->wake);
  free(t->threads);
  free(t->members);
  free(t);
}

void vae_team_slice(size_t n, int parts, int k, size_t align, size_t *lo, size_t *hi) {
  size_t units = (n + align - 1) / align; /* pieces of `align` items, the last one short */
  size_t a = units * (size_t)k / (size_t)parts, b = units * (size_t)(k + 1) / (size_t)parts;
  *lo = a * align < n ? a * align : n;
  *hi = b * align < n ? b * align : n;
}
