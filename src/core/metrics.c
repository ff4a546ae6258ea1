/* metrics.c: metrics.jsonl and the console lines, on rank 0. Never does a collective call and never
 * computes a metric: the trainer hands it reduced numbers. Never rewrites metrics.jsonl in place (a
 * resume's truncation goes through core/durable_file.c). */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_kernels.h"
#include "durable_file.h"
#include "error.h"

/* Keeps the lines of path whose "step" is <= max_step (and only whole lines): the records a resumed
 * run will write again go. Rewritten durably (core/durable_file.c). A missing file: nothing to do. */
static int drop_later_records(const char *path, long max_step, char *err) {
  FILE *in = fopen(path, "r");
  if (!in) return 0; /* nothing yet */
  vae_durable d;
  FILE *out = vae_durable_fopen(&d, path, "metrics file", err);
  if (!out) {
    fclose(in);
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, in)) > 0) {
    const char *s = strstr(line, "\"step\":");
    long step = s ? strtol(s + 7, NULL, 10) : 0;
    if (step <= max_step && line[len - 1] == '\n') fputs(line, out);
  }
  free(line);
  int bad = ferror(in);
  fclose(in);
  if (bad) {
    fclose(out);
    return vae_durable_fail(&d, EIO, NULL, err);
  }
  return vae_durable_fclose_publish(&d, out, err);
}

/* Open MPI gives every rank a pseudo-terminal, whatever mpirun's own stdout is; so under mpirun the
 * question is asked of mpirun's stdout (our parent's), through /proc. */
static int stdout_is_terminal(void) {
  if (!isatty(STDOUT_FILENO)) return 0;
  if (!getenv("OMPI_COMM_WORLD_SIZE")) return 1;
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

int vae_metrics_open(vae_metrics *m, const char *dir, long resume_step, char *err) {
  memset(m, 0, sizeof *m);
  char path[4200];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  if (drop_later_records(path, resume_step, err) < 0) return -1;
  int existed = access(path, F_OK) == 0;
  m->jsonl = fopen(path, "a");
  if (!m->jsonl) return vae_err(err, "cannot open %s for appending: %s", path, strerror(errno));
  /* A new file's name reaches the disk at once (its records are flushed line by line; a line cut
   * by a crash is dropped by the next resume's rewrite). */
  int e = existed ? 0 : vae_fsync_path(dir, 1);
  if (e) {
    vae_metrics_close(m);
    return vae_err(err, "cannot fsync folder %s after creating %s: %s; %s", dir, path, strerror(e),
                   vae_write_hint(e));
  }
  m->tty = stdout_is_terminal();
  return 0;
}

void vae_metrics_close(vae_metrics *m) {
  if (m->jsonl) fclose(m->jsonl);
  m->jsonl = NULL;
}

void vae_metrics_write_json(vae_metrics *m, const char *json) {
  if (!m->jsonl) return;
  fprintf(m->jsonl, "%s\n", json);
  fflush(m->jsonl);
}

static void clear_progress(vae_metrics *m) {
  if (m->progress_shown) {
    printf("\r\033[K");
    m->progress_shown = 0;
  }
}

void vae_metrics_epoch(vae_metrics *m, const vae_epoch_record *r) {
  char test[160] = "";
  char json[2048]; /* the BLAS members (blas_kernels.h) are up to ~1 KiB */
  if (r->has_test)
    snprintf(test, sizeof test, "\"test_recon\":%.10g,\"test_kl\":%.10g,\"test_elbo\":%.10g,", r->test_recon,
             r->test_kl, -(r->test_recon + r->test_kl));
  else
    snprintf(test, sizeof test, "\"test_recon\":null,\"test_kl\":null,\"test_elbo\":null,");
  snprintf(
      json, sizeof json,
      "{\"type\":\"epoch\",\"epoch\":%ld,\"step\":%ld,\"train_recon\":%.10g,\"train_kl\":%.10g,"
      "\"train_elbo\":%.10g,%s\"samples_per_s\":%.1f,\"seconds\":%.3f,\"elapsed\":%.3f,\"lr\":%.6g,"
      "\"skipped_steps\":%ld,\"train_seconds\":%.4f,\"allreduce_seconds\":%.4f,\"allreduce_max_seconds\":%.4f,"
      "\"checkpoint_seconds\":%.4f,\"peak_rss_mib\":%.1f,%s}",
      r->epoch, r->step, r->train_recon, r->train_kl, -(r->train_recon + r->train_kl), test, r->samples_per_s,
      r->seconds, r->elapsed, r->lr, r->skipped, r->train_seconds, r->allreduce_seconds,
      r->allreduce_max_seconds, r->checkpoint_seconds, r->peak_rss_mib, vae_blas_json());
  m->blas_logged = 1;
  vae_metrics_write_json(m, json);
  clear_progress(m);
  printf("epoch %3ld  step %7ld  train recon %8.3f kl %7.3f elbo %9.3f", r->epoch, r->step, r->train_recon,
         r->train_kl, -(r->train_recon + r->train_kl));
  if (r->has_test)
    printf(" | test recon %8.3f kl %7.3f elbo %9.3f", r->test_recon, r->test_kl,
           -(r->test_recon + r->test_kl));
  printf(" | %8.0f samples/s  %7.1fs\n", r->samples_per_s, r->elapsed);
  fflush(stdout);
}

void vae_metrics_step(vae_metrics *m, long epoch, long step, double recon, double kl, double lr,
                      double kl_weight, double grad_norm) {
  char json[1536];
  /* The first record of a run (or of a resumed attempt) names the BLAS kernels, as every epoch's. */
  snprintf(json, sizeof json,
           "{\"type\":\"step\",\"epoch\":%ld,\"step\":%ld,\"recon\":%.10g,\"kl\":%.10g,\"elbo\":%.10g,"
           "\"lr\":%.6g,\"kl_weight\":%.6g,\"grad_norm\":%.6g%s%s}",
           epoch, step, recon, kl, -(recon + kl), lr, kl_weight, grad_norm, m->blas_logged ? "" : ",",
           m->blas_logged ? "" : vae_blas_json());
  m->blas_logged = 1;
  vae_metrics_write_json(m, json);
}

void vae_metrics_progress(vae_metrics *m, long epoch, long done, long total, double seconds, double recon,
                          double kl) {
  if (!m->tty || done <= 0) return;
  /* At most four redraws a second, and always the last step; a new epoch restarts the clock. */
  if (seconds < m->last_progress) m->last_progress = -1.0;
  if (done < total && seconds - m->last_progress < 0.25) return;
  m->last_progress = seconds;
  double eta = seconds / (double)done * (double)(total - done);
  printf("\r\033[Kepoch %ld  step %ld/%ld  recon %.3f  kl %.3f  elbo %.3f  ETA %.0fs", epoch, done, total,
         recon, kl, -(recon + kl), eta);
  fflush(stdout);
  m->progress_shown = 1;
}
