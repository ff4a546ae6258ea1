/* trainer.h: the training engine (src/train/): one data-parallel training step, the epoch loop,
 * resume, and the run's checkpoints. `vae_mpi train` (src/cmd/train.c) is its command-line driver;
 * a test drives vae_train_step directly, on a shard it built in memory, with no CLI and no files:
 *
 *   vae_trainer t = {0};                        (static or calloc: the struct is large)
 *   vae_dist_init(&argc, &argv, &t.d);
 *   vae_train_opts_default(&t.o);               then t.o.model (input shape included), batch size, ...
 *   vae_trainer_alloc(&t);                      params, grads (+ extras), m, v, views, workspace
 *   vae_init_params(&t.o.model, t.params, seed) (the same on every rank)
 *   vae_step_result r = vae_train_step(&t, &shard, rows, n);     rows[k], n[k]: worker k's images
 *   ... t.params, t.m, t.v, t.grads (the summed gradient), t.st.step, t.st.adam_step, r ...
 *   vae_trainer_free(&t);
 *
 * Workers: a rank runs t.o.threads worker threads (at least 1; 0 means one worker whose OpenBLAS may
 * use several threads). A worker is what a rank is with one thread: it trains on its own batch of up
 * to --batch-size images, its own part of the rank's shard, its own shuffle and noise, keyed by its
 * global index rank * workers + k among ranks * workers. Their gradients are summed on the node by all
 * threads in a fixed order, then one MPI_Allreduce sums the ranks'. So R ranks x T threads computes
 * what R * T ranks x 1 thread would, but for the order of the float sums (bitwise the same with two
 * workers in all: a + b is b + a), and nothing depends on timing.
 *
 * The step is collective (one allreduce); every rank calls it with its own rows, any n[k] may be 0. */
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

/* Fault injection (tests only): VAE_FAULT_NONFINITE=WORKER:STEP[:COUNT] makes worker WORKER's local
 * loss (its global index: the rank with one thread per rank), and so its gradient, NaN for COUNT steps
 * from global step STEP (0-based). count 0: off. */
typedef struct {
  long rank, step, count;
} vae_nonfinite_fault;

/* What one step did, the same on every rank. */
typedef struct {
  double recon, kl, count; /* the global batch's summed recon and KL (nats) and its images */
  double grad_norm;        /* L2 norm of the global batch's mean-loss gradient, before clipping */
  double compute_s;        /* this rank's time in its workers' batch, noise, forward and backward */
  double node_sum_s;       /* ... in the workers' on-node gradient sum (0 with one worker) */
  double allreduce_s;      /* ... in the gradient allreduce between ranks (waiting included) */
  double update_s;         /* ... in the norm, the non-finite check and Adam */
  int skipped;             /* a non-finite loss or gradient: parameters and Adam left as they were */
  int bad_rank;        /* with skipped: the lowest worker whose loss was non-finite (its global index rank x
                 * workers + thread: the rank with one thread per rank), or -1 */
  int stop;            /* some rank has a SIGUSR1/SIGTERM pending */
  float lr, kl_weight; /* what this step used */
} vae_step_result;

/* One worker thread of a rank: its gradient buffer and activations, and this step's share. */
typedef struct {
  float *grads; /* n_params floats (worker 0's is the trainer's grads, which carry the extras) */
  vae_views gv;
  vae_workspace *ws;
  const uint32_t *rows; /* this step: rows of the rank's shard */
  int n;
  double recon, kl; /* this step: its images' summed loss terms */
  double compute_s; /* this step: its own time in them (batch, noise, forward, backward) */
} vae_worker;

typedef struct vae_team vae_team;

typedef struct {
  /* ---- set by the caller before vae_trainer_alloc ---- */
  vae_dist d;
  vae_train_opts o;          /* model (input shape filled in), batch size, Adam, schedules, clip, seed */
  vae_nonfinite_fault fault; /* zero: off */
  /* ---- vae_trainer_alloc: four buffers of one layout, their views, the workers ---- */
  size_t n_params;
  float *params, *grads, *m, *v; /* grads has vae_train_step_extras(world workers) floats after n_params */
  vae_views pv, gv;
  vae_workspace *ws; /* worker 0's: batches of up to o.batch_size images */
  int workers;       /* per rank: o.threads, at least 1 */
  vae_worker *w;     /* [workers] */
  vae_team *team;    /* the rank's threads, one per worker */
  double *sq_blocks; /* the gradient's sum of squares per block of VAE_SQ_BLOCK floats */
  /* ---- the position: st.step (global steps taken), st.adam_step (updates applied), st.epoch,
   * st.epoch_step and the epoch's running sums; it is what a checkpoint records ---- */
  vae_ckpt_state st;
  /* ---- the run: cmd/train.c fills these for vae_train_start / vae_train_run ---- */
  vae_data_info train_info, test_info;
  int has_test;
  vae_shard train, test;
  int blas_threads; /* OpenBLAS threads per worker, for the start-up line */
  int resumed;      /* vae_train_start continued from a checkpoint */
  vae_metrics metrics;
} vae_trainer;

/* ---- train/step.c ---- */

/* Floats the step's allreduce carries after the gradient: recon, KL, images, stop flag, and one
 * non-finite flag per worker. */
size_t vae_train_step_extras(int world_workers);
/* Workers in the whole job: ranks x workers per rank. */
int vae_train_world_workers(const vae_trainer *t);
/* Allocates t's buffers (zeroed), views, workers (max(1, o.threads), their threads started) and their
 * workspaces for t->o.model and t->o.batch_size. */
void vae_trainer_alloc(vae_trainer *t);
/* Frees what vae_trainer_alloc allocated, and t's shards. */
void vae_trainer_free(vae_trainer *t);
/* One training step: worker k of this rank on rows[k][0..n[k]) of the rank's shard s (n[k] <=
 * o.batch_size, may be 0): its batch, its noise (keyed by seed, its global index, step), forward,
 * backward; the workers' gradients summed on the node, one allreduce of that sum with the extras
 * between the ranks, then either a skip (a non-finite loss on any worker, or a non-finite summed
 * gradient: nothing changes but the step count) or gradient clipping (--clip-grad-norm) and Adam on
 * the mean gradient, split over the threads. Advances t->st.step, and t->st.adam_step when the
 * update was applied. Collective. */
vae_step_result vae_train_step(vae_trainer *t, const vae_shard *s, const uint32_t *const *rows, const int *n);
/* The learning rate at a step: --lr, times --lr-scale's factor for `world` workers, times the warm-up. */
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
