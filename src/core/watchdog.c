/* watchdog.c: the communication watchdog (see watchdog.h). The main thread publishes "armed at time T
 * for operation (what, number)" with atomic stores; the watchdog thread wakes every timeout/8 (at most
 * 1 s), and when it has watched one arming for longer than the timeout it prints the message and ends
 * the process (time the whole process spent stopped does not count, see watch()). Never
 * calls MPI, never takes a lock the main thread could hold (the message is written with write(2)). */
#define _GNU_SOURCE /* pthread_condattr_setclock */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

static struct {
  double timeout;
  int rank;
  char host[256];
  /* Published by the main thread: armed_ns 0 = nothing watched; generation changes with every arming,
   * so the thread never pairs one arming's time with another's label. */
  _Atomic int64_t armed_ns;
  _Atomic uint64_t generation;
  _Atomic(const char *) what;
  _Atomic long number;
  double longest; /* main thread only */
  int running;
  int stop; /* guarded by mu */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} w = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fire(const char *what, long number) {
  char msg[1024];
  int n = snprintf(msg, sizeof msg,
                   "vae_mpi: error: rank %d on %s: %s %ld did not complete in %g s; a node or the network "
                   "is down; resume with --resume auto\n",
                   w.rank, w.host, what ? what : "a collective", number, w.timeout);
  if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
  ssize_t rc = write(STDERR_FILENO, msg, (size_t)n);
  (void)rc;
  _exit(VAE_EXIT_COMM_TIMEOUT);
}

/* Sleeps one period (or until stop is signalled); the caller holds mu. */
static void wait_period(int64_t period_ns) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  int64_t ns = (int64_t)until.tv_nsec + period_ns;
  until.tv_sec += (time_t)(ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  pthread_cond_timedwait(&w.cv, &w.mu, &until);
}

/* The thread counts the time an arming has been watched by its own wake-ups, each worth the time since
 * the last one but at most two periods: a process stopped as a whole (SIGSTOP, SLURM's scontrol suspend,
 * gang scheduling) sees a jump of the clock when it continues, and that is no operation's fault. */
static void *watch(void *arg) {
  (void)arg;
  const int64_t period = (int64_t)((w.timeout / 8 < 1.0 ? w.timeout / 8 : 1.0) * 1e9);
  const int64_t limit = (int64_t)(w.timeout * 1e9);
  int64_t last = now_ns(), watched = 0;
  uint64_t seen = 0;
  int have = 0; /* watched counts the arming of generation `seen` */
  pthread_mutex_lock(&w.mu);
  while (!w.stop) {
    wait_period(period);
    if (w.stop) break;
    int64_t t = now_ns(), d = t - last;
    last = t;
    if (d > 2 * period) d = period; /* the process was stopped or starved: count one period */
    uint64_t gen = atomic_load(&w.generation);
    int64_t armed = atomic_load(&w.armed_ns);
    const char *what = atomic_load(&w.what);
    long number = atomic_load(&w.number);
    if (armed == 0) {
      have = 0;
      continue;
    }
    if (!have || gen != seen) { /* a new arming: what of this interval came after it */
      watched = t - armed < d ? t - armed : d;
      if (watched < 0) watched = 0; /* armed after t was read */
      seen = gen;
      have = 1;
    } else {
      watched += d;
    }
    /* Still the same arming, and watched for longer than the timeout: the operation is stuck. */
    if (watched > limit && atomic_load(&w.generation) == gen && atomic_load(&w.armed_ns) == armed)
      fire(what, number);
  }
  pthread_mutex_unlock(&w.mu);
  return NULL;
}

int vae_watchdog_start(double timeout_s, int rank, char *err) {
  w.timeout = timeout_s;
  w.rank = rank;
  w.longest = 0;
  atomic_store(&w.armed_ns, 0);
  if (gethostname(w.host, sizeof w.host) != 0) snprintf(w.host, sizeof w.host, "?");
  w.host[sizeof w.host - 1] = '\0';
  if (timeout_s <= 0 || w.running) return 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cv, &ca);
  pthread_condattr_destroy(&ca);
  w.stop = 0;
  int rc = pthread_create(&w.thread, NULL, watch, NULL);
  if (rc != 0) {
    pthread_cond_destroy(&w.cv);
    return vae_err(
        err, "cannot start the --comm-timeout watchdog thread: %s; pass --comm-timeout 0 to run without it",
        strerror(rc));
  }
  w.running = 1;
  return 0;
}

void vae_watchdog_arm(const char *what, long number) {
  atomic_store(&w.armed_ns, 0); /* the label changes while nothing is armed */
  atomic_store(&w.what, what);
  atomic_store(&w.number, number);
  atomic_fetch_add(&w.generation, 1);
  atomic_store(&w.armed_ns, now_ns());
}

double vae_watchdog_disarm(void) {
  int64_t armed = atomic_exchange(&w.armed_ns, 0);
  if (armed == 0) return 0;
  double s = (double)(now_ns() - armed) / 1e9;
  if (s > w.longest) w.longest = s;
  return s;
}

double vae_watchdog_longest(void) { return w.longest; }

void vae_watchdog_stop(void) {
  if (!w.running) return;
  pthread_mutex_lock(&w.mu);
  w.stop = 1;
  pthread_cond_signal(&w.cv);
  pthread_mutex_unlock(&w.mu);
  pthread_join(w.thread, NULL);
  pthread_cond_destroy(&w.cv);
  w.running = 0;
}
