/* metrics.h: rank 0's reporting: DIR/metrics.jsonl (one JSON object per epoch, and per-step records
 * every --log-every steps), the per-epoch console line, and a live progress line on a terminal.
 * Every epoch record, and the first step record of each run, carry the BLAS kernels in use
 * ("blas", "blas_core", "blas_core_by": vae_blas_json). */
#ifndef VAE_METRICS_H
#define VAE_METRICS_H

#include <stdio.h>

typedef struct {
  long epoch, step;
  double train_recon, train_kl; /* nats per image, mean over the epoch's training images */
  int has_test;
  double test_recon, test_kl;   /* nats per image over the whole test set */
  double samples_per_s;         /* training images per second, all ranks, evaluation excluded */
  double seconds;               /* wall time of this epoch, evaluation included */
  double elapsed;               /* wall time since this process started training */
  double lr;                    /* learning rate at the epoch's last step */
  long skipped;                 /* steps skipped for non-finite values in this epoch */
  double train_seconds;         /* time in training steps (slowest rank): samples_per_s's denominator */
  double allreduce_seconds;     /* of train_seconds, time in the gradient reduction (slowest rank) */
  double allreduce_max_seconds; /* the longest single gradient sum of the epoch, any rank: what
                                 * --comm-timeout is compared with */
  double checkpoint_seconds;    /* the epoch-end checkpoint write, every rank agreeing on success */
  double peak_rss_mib;          /* largest VmHWM of any rank so far, MiB (0 when unknown) */
} vae_epoch_record;

typedef struct {
  FILE *jsonl;
  int tty; /* stdout is a terminal: draw a progress line */
  int progress_shown;
  double last_progress; /* seconds into the epoch of the last redraw */
  int blas_logged;      /* a record naming the BLAS kernels was written (blas_kernels.h) */
} vae_metrics;

/* Opens DIR/metrics.jsonl for appending. When resuming from `resume_step` (> 0), records of a previous
 * attempt with a step beyond it are dropped first (the file is rewritten atomically), so that the file
 * reads as if the run had never stopped. */
int vae_metrics_open(vae_metrics *m, const char *dir, long resume_step, char *err);
void vae_metrics_close(vae_metrics *m);
/* Writes any JSON object (already formatted, no newline) as one line. */
void vae_metrics_write_json(vae_metrics *m, const char *json);
void vae_metrics_epoch(vae_metrics *m, const vae_epoch_record *r);
void vae_metrics_step(vae_metrics *m, long epoch, long step, double recon, double kl, double lr,
                      double kl_weight, double grad_norm);
/* Terminal only: "epoch 3  step 120/469  recon ...  ETA 12s" rewritten in place. */
void vae_metrics_progress(vae_metrics *m, long epoch, long done, long total, double seconds, double recon,
                          double kl);

#endif
