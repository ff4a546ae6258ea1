/* test_watchdog: the communication watchdog (src/core/watchdog.c) in child processes. An operation left
 * armed past the timeout ends the process within a poll period with status VAE_EXIT_COMM_TIMEOUT and
 * exactly the one documented line on stderr; operations disarmed in time never fire however many there
 * are and however long the process spends between them (the checkpoint writes and evaluations that are
 * never armed); --comm-timeout 0 never fires but still measures; disarm returns the armed time and
 * longest() the longest one; stop() returns at once; a process stopped as a whole (SIGSTOP) for longer
 * than the timeout does not fire once continued. The multi-node behaviour (a real partition) is
 * tests/cluster/test_cluster_failures.py. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "watchdog.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

typedef struct {
  int status;     /* waitpid status */
  double seconds; /* from fork to exit */
  char err[2048]; /* the child's stderr */
} outcome;

/* Runs body(arg) in a child with its stderr captured; the child exits 0 when body returns. With
 * stopped_for > 0 the child stops itself once (SIGSTOP) and is continued after stopped_for seconds. */
static outcome in_child(void (*body)(double), double arg, double stopped_for) {
  outcome o = {0};
  int fd[2];
  if (pipe(fd) != 0) abort();
  double t0 = now();
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], STDERR_FILENO);
    body(arg);
    _exit(0);
  }
  close(fd[1]);
  int st;
  if (stopped_for > 0 && waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st)) {
    sleep_s(stopped_for);
    kill(pid, SIGCONT);
  }
  size_t got = 0;
  ssize_t n;
  while ((n = read(fd[0], o.err + got, sizeof o.err - 1 - got)) > 0) got += (size_t)n;
  o.err[got] = '\0';
  close(fd[0]);
  waitpid(pid, &o.status, 0);
  o.seconds = now() - t0;
  return o;
}

/* Arms and never disarms: must be ended by the watchdog. */
static void stuck(double timeout) {
  char err[VAE_ERR_LEN];
  if (vae_watchdog_start(timeout, 3, err) != 0) _exit(2);
  vae_watchdog_arm("the gradient sum of step", 1234);
  sleep_s(timeout * 20);
  _exit(0); /* not reached when the watchdog works */
}

/* Many short armed operations with long unarmed gaps (a checkpoint write, an evaluation). */
static void healthy(double timeout) {
  char err[VAE_ERR_LEN];
  if (vae_watchdog_start(timeout, 0, err) != 0) _exit(2);
  for (int i = 0; i < 2000; i++) {
    vae_watchdog_arm("the gradient sum of step", i);
    vae_watchdog_disarm();
  }
  sleep_s(timeout * 4); /* disarmed: never watched */
  for (int i = 0; i < 5; i++) {
    vae_watchdog_arm("the gradient sum of step", i);
    sleep_s(timeout / 4); /* well inside the timeout */
    double s = vae_watchdog_disarm();
    if (s < timeout / 4 || s > timeout) _exit(3);
  }
  if (vae_watchdog_longest() < timeout / 4 || vae_watchdog_longest() > timeout) _exit(4);
  double t0 = now();
  vae_watchdog_stop();
  if (now() - t0 > 0.1) _exit(5); /* stop wakes the thread, it does not wait out a period */
  vae_watchdog_stop();            /* idempotent */
}

/* --comm-timeout 0: nothing fires, the time is still measured. */
static void off(double armed) {
  char err[VAE_ERR_LEN];
  if (vae_watchdog_start(0, 0, err) != 0) _exit(2);
  vae_watchdog_arm("the gradient sum of step", 1);
  sleep_s(armed);
  double s = vae_watchdog_disarm();
  if (s < armed || vae_watchdog_longest() != s) _exit(3);
  vae_watchdog_stop();
}

/* Armed, then the whole process stops (SIGSTOP: scontrol suspend, gang scheduling) for longer than the
 * timeout; once continued, the operation completes within it: the stop must not count. */
static void suspended(double timeout) {
  char err[VAE_ERR_LEN];
  if (vae_watchdog_start(timeout, 0, err) != 0) _exit(2);
  vae_watchdog_arm("the gradient sum of step", 7);
  raise(SIGSTOP); /* the parent continues us after 3 timeouts */
  sleep_s(timeout / 4);
  vae_watchdog_disarm();
  vae_watchdog_stop();
}

int main(void) {
  const double T = 0.4;
  outcome o = in_child(stuck, T, 0);
  char host[256];
  gethostname(host, sizeof host);
  char want[512];
  snprintf(want, sizeof want,
           "vae_mpi: error: rank 3 on %s: the gradient sum of step 1234 did not complete in 0.4 s; a node or "
           "the network is down; resume with --resume auto\n",
           host);
  CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == VAE_EXIT_COMM_TIMEOUT, "stuck: status %#x", o.status);
  CHECK(strcmp(o.err, want) == 0, "stuck: stderr '%s', expected '%s'", o.err, want);
  /* Fires after the timeout, within one poll period (T/8) plus scheduling slack (generous: on a loaded
   * machine a wake-up later than two periods is credited with one, see watchdog.c; never firing shows
   * as the child's 20 T sleep ending with status 0). */
  CHECK(o.seconds >= T && o.seconds < T + 2.0, "stuck: ended after %.3f s with --comm-timeout %g", o.seconds,
        T);

  o = in_child(healthy, T, 0);
  CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "healthy: status %#x (exit %d), stderr '%s'",
        o.status, WIFEXITED(o.status) ? WEXITSTATUS(o.status) : -1, o.err);
  CHECK(o.err[0] == '\0', "healthy: stderr '%s'", o.err);

  o = in_child(off, 3 * T, 0);
  CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "off: status %#x, stderr '%s'", o.status, o.err);
  CHECK(o.err[0] == '\0', "off: stderr '%s'", o.err);
  o = in_child(suspended, T, 3 * T);
  CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "suspended: status %#x, stderr '%s'", o.status,
        o.err);
  CHECK(o.err[0] == '\0', "suspended: stderr '%s'", o.err);
  return check_done("test_watchdog");
}
