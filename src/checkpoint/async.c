/* checkpoint/async.c: the epoch's checkpoint without waiting for the disk. The file is written and
 * closed on the caller's thread (HDF5 is not thread-safe here, and every refusal must come at once);
 * the fsync that makes it durable, the rename that publishes it, the folder's fsync
 * (vae_durable_publish, core/durable_file.c) and the --keep rotation (plain POSIX calls, no HDF5, no
 * MPI) run on one background thread while training goes on. On a quiet disk that fsync is most of a checkpoint's time (14 of 24 ms for Fashion-MNIST's
 * model here); on a loaded parallel file system it can be seconds.
 * Must never: have two writes in flight (the temporary name is per process), let the thread take a
 * signal meant for the trainer, or exit() with a write in flight (an atexit handler settles it). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "internal.h"

static struct {
  pthread_t thread;
  int active;       /* a thread was started and not yet joined */
  vae_durable file; /* the written temporary file, to publish */
  char path[VAE_PATH_LEN], out[VAE_PATH_LEN];
  long step;
  int keep;
  int rc;
  char err[VAE_ERR_LEN];
} job;

static int publish(void) {
  job.rc = vae_durable_publish(&job.file, job.err);
  if (job.rc == 0) job.rc = vae_checkpoint_rotate(job.out, job.step, job.keep, job.err);
  return job.rc;
}

static void *publish_thread(void *arg) {
  (void)arg;
  publish();
  return NULL;
}

int vae_checkpoint_settle(char *err) {
  if (!job.active) return 0;
  if (pthread_join(job.thread, NULL) != 0) VAE_FAIL("pthread_join of the checkpoint thread failed");
  job.active = 0;
  if (job.rc < 0) snprintf(err, VAE_ERR_LEN, "%s", job.err);
  return job.rc;
}

static void settle_at_exit(void) {
  char err[VAE_ERR_LEN];
  if (vae_checkpoint_settle(err) < 0) fprintf(stderr, "vae_mpi: error: %s\n", err);
}

int vae_checkpoint_write_deferred(const char *dir, long step, int keep, const vae_config *cfg,
                                  const float *params, const float *m, const float *v,
                                  const vae_ckpt_state *st, char *err) {
  static int registered;
  if (vae_checkpoint_settle(err) < 0) return -1;
  if (!registered) registered = atexit(settle_at_exit) == 0;
  if (snprintf(job.out, sizeof job.out, "%s", dir) >= (int)sizeof job.out ||
      snprintf(job.path, sizeof job.path, "%s/checkpoint.h5", dir) >= (int)sizeof job.path)
    return vae_err(err, "checkpoint folder path %s is too long", dir);
  if (vae_ck_write_temp(job.path, cfg, params, m, v, st, &job.file, err) < 0) return -1;
  job.step = step;
  job.keep = keep;
  job.rc = 0;
  job.err[0] = '\0';
  /* The thread starts with every signal blocked: SIGUSR1/SIGTERM must reach the trainer's thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  job.active = pthread_create(&job.thread, NULL, publish_thread, NULL) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (job.active) return 0;
  if (publish() < 0) { /* no thread: the same steps, here */
    snprintf(err, VAE_ERR_LEN, "%s", job.err);
    return -1;
  }
  return 0;
}
