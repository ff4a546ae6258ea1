/* trainer.h: the training engine (src/train/): one data-parallel training step, the epoch loop,
 * resume, and the run's checkpoints. `vae_mpi train` (src/cmd/train.c) is its command-line driver;
 * a test drives vae_train_step directly, on a shard it built in memory, with no CLI and no files:
 *
 *   vae_trainer t = {0};                        (static or calloc: the struct is large)
 *   vae_dist_init(&argc, &argv, &t.d);
 *   vae_train_opts_default(&t.o);               then t.o.model (input shape included), batch size, ...
 *   vae_trainer_alloc(&t);                      params, grads (+ extras), m, v, views, workspace
 *   vae_init_params(&t.o.model, t.params, seed) (the same on every rank)
 *   vae_step_result r = vae_train_step(&t, &shard, rows, n);
 *   ... t.params, t.m, t.v, t.grads (the summed gradient), t.st.step, t.st.adam_step, r ...
 *   vae_trainer_free(&t);
 *
 * The step is collective (one allreduce); every rank calls it with its own rows, n may be 0. */
#ifndef VAE_TRAINER_H
#define VAE_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "data.h"
#include "dist.h"
#include "metrics.h"
#include "options.h"
#include "vae.h"

/* Fault injection (tests only): VAE_FAULT_NONFINITE=RANK:STEP[:COUNT] makes rank RANK's local loss,
 * and so its gradient, NaN for COUNT steps from global step STEP (0-based). count 0: off. */
typedef struct {
  long rank, step, count;
} vae_nonfinite_fault;

/* What one step did, the same on every rank. */
typedef struct {
  double recon, kl, count; /* the global batch's summed recon and KL (nats) and its images */
  double grad_norm;        /* L2 norm of the global batch's mean-loss gradient, before clipping */
  double allreduce_s;      /* this rank's time in the gradient allreduce (waiting included) */
  int skipped;             /* a non-finite loss or gradient: parameters and Adam left as they were */
  int bad_rank;            /* with skipped: the lowest rank whose local loss was non-finite, or -1 */
  int stop;                /* some rank has a SIGUSR1/SIGTERM pending */
  float lr, kl_weight;     /* what this step used */
} vae_step_result;

typedef struct {
  /* ---- set by the caller before vae_trainer_alloc ---- */
  vae_dist d;
  vae_train_opts o;          /* model (input shape filled in), batch size, Adam, schedules, clip, seed */
  vae_nonfinite_fault fault; /* zero: off */
  /* ---- vae_trainer_alloc: four buffers of one layout, their views, the batch workspace ---- */
  size_t n_params;
  float *params, *grads, *m, *v; /* grads has vae_train_step_extras(d.size) floats after n_params */
  vae_views pv, gv;
  vae_workspace *ws; /* batches of up to o.batch_size images */
  /* ---- the position: st.step (global steps taken), st.adam_step (updates applied), st.epoch,
   * st.epoch_step and the epoch's running sums; it is what a checkpoint records ---- */
  vae_ckpt_state st;
  /* ---- the run: cmd/train.c fills these for vae_train_start / vae_train_run ---- */
  vae_data_info train_info, test_info;
  int has_test;
  vae_shard train, test;
  int threads; /* BLAS threads per rank, for the start-up line */
  int resumed; /* vae_train_start continued from a checkpoint */
  vae_metrics metrics;
} vae_trainer;

/* ---- train/step.c ---- */

/* Floats the step's allreduce carries after the gradient: recon, KL, images, stop flag, and one
 * non-finite flag per rank. */
size_t vae_train_step_extras(int world_size);
/* Allocates t's buffers (zeroed), views and workspace for t->o.model and t->o.batch_size. */
void vae_trainer_alloc(vae_trainer *t);
/* Frees what vae_trainer_alloc allocated, and t's shards. */
void vae_trainer_free(vae_trainer *t);
/* One training step on rows[0..n) of this rank's shard s (n <= o.batch_size, may be 0): the batch, its
 * noise (keyed by seed, rank, step), forward, backward, one allreduce of the gradient with the
 * extras, then either a skip (a non-finite loss on any rank, or a non-finite summed gradient: nothing
 * changes but the step count) or gradient clipping (--clip-grad-norm) and Adam on the mean gradient.
 * Advances t->st.step, and t->st.adam_step when the update was applied. Collective. */
vae_step_result vae_train_step(vae_trainer *t, const vae_shard *s, const uint32_t *rows, int n);
/* The learning rate at a step: --lr, times --lr-scale's factor for world ranks, times the warm-up. */
float vae_train_lr(const vae_train_opts *o, int world, long step);
/* The KL weight at a step: --beta after the --kl-warmup-steps linear warm-up. */
float vae_train_kl_weight(const vae_train_opts *o, long step);
/* Reads VAE_FAULT_NONFINITE into f (off when unset or empty); -1 with a message when malformed. */
int vae_train_fault_from_env(vae_nonfinite_fault *f, char *err);

/* ---- train/resume.c ---- */

/* Collective: the parameters to start from, the same on every rank: rank 0 reads --resume's
 * checkpoint (refusing one that does not match the model or the data, or has no Adam state) or
 * initialises the model from the seed, then params, m, v and the position are broadcast. Sets and
 * returns t->resumed. A refusal ends the job on every rank (vae_dist_check). */
int vae_train_start(vae_trainer *t);
/* Collective: rank 0 writes OUT/checkpoint.h5 at the current position (its fsync and rename finish
 * in the background unless `durable`, a stop after which the job exits); every rank learns the
 * outcome, a failure ends the job. Returns the seconds the ranks waited. */
double vae_train_checkpoint(vae_trainer *t, int durable);

/* ---- train/epoch.c ---- */

/* Collective: the epochs from t->st to --epochs (or --max-steps): steps, the test ELBO, metrics,
 * pictures and checkpoints. Returns the job's exit status: 0 (done, or stopped at --max-steps),
 * VAE_EXIT_PREEMPTED after a signal's checkpoint, 1 after too many non-finite steps or diverged
 * ranks. The last checkpoint is on disk when it returns. */
int vae_train_run(vae_trainer *t);

#endif
