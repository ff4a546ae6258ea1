/* train/epoch.c: the run, epoch by epoch from the saved position: the shuffle, the steps
 * (train/step.c) with what follows each (the non-finite policy's count, per-step metrics, stops on
 * a signal or --max-steps, --checkpoint-every), and the epoch's end (throughput, the test ELBO, the
 * ranks' agreement on the parameters, pictures, the checkpoint, the metrics record).
 * Must never: let ranks take different decisions (every one comes from reduced numbers), or exit
 * with a checkpoint still in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_kernels.h"
#include "error.h"
#include "evaluate.h"
#include "rng.h"
#include "signals.h"
#include "team.h"
#include "train_images.h"
#include "trainer.h"

#define VAE_STOPPED (-1) /* --max-steps reached, checkpoint written; the job exits 0 */

/* What the epoch loop carries between steps. */
typedef struct {
  uint32_t *perm; /* this epoch's order of the shard's rows: worker k's part at [part_off[k], + part_n[k]) */
  size_t *part_off, *part_n; /* each worker's rows of the rank's shard */
  const uint32_t **rows;     /* this step's rows of each worker */
  int *n;                    /* this step's images of each worker */
  long spe;                  /* steps per epoch, the same on every rank */
  int consecutive_skips;
  double t_start;                         /* when this process started training */
  double t_epoch, t_train, t_red, images; /* this epoch: its start, time in steps and in the
                                           * allreduce, images this rank processed */
  double t_red_max;                       /* this epoch's longest allreduce (--comm-timeout's measure) */
} epoch_loop;

/* Worker k's part of the rank's shard s of a dataset of n images: the rows that ranks x workers ranks
 * of one thread each would hold (the rank's shard is the union of its workers' parts:
 * floor(r T n / R T) = floor(r n / R)). */
static void worker_part(const vae_trainer *t, const vae_shard *s, size_t n, int k, size_t *off,
                        size_t *count) {
  size_t g_off;
  vae_shard_range(n, t->d.rank * t->workers + k, vae_train_world_workers(t), &g_off, count);
  if (g_off < s->offset || g_off + *count > s->offset + s->count)
    VAE_FAIL("worker %d's rows [%zu, %zu) outside the rank's shard", k, g_off, g_off + *count);
  *off = g_off - s->offset;
}

/* The test ELBO's sums, each worker on its part of the test shard (its own thread and workspace),
 * added in worker order: what ranks x workers ranks of one thread would sum. */
typedef struct {
  vae_trainer *t;
  double (*sums)[3]; /* [workers] */
} eval_ctx;

static void eval_part(void *ctx, int k) {
  eval_ctx *c = ctx;
  vae_trainer *t = c->t;
  size_t off, count;
  worker_part(t, &t->test, t->test_info.n, k, &off, &count);
  vae_shard part = t->test;
  part.offset += off;
  part.count = count;
  if (part.u8) part.u8 += off * part.d;
  if (part.f32) part.f32 += off * part.d;
  c->sums[k][0] = c->sums[k][1] = c->sums[k][2] = 0;
  vae_eval_shard(&t->o.model, &t->pv, t->w[k].ws, &part, t->o.seed, c->sums[k]);
}

static void test_sums(vae_trainer *t, double ev[3]) {
  eval_ctx c = {t, mallocCheck((size_t)t->workers * sizeof *c.sums)};
  vae_team_run(t->team, eval_part, &c);
  for (int i = 0; i < 3; i++) {
    ev[i] = c.sums[0][i];
    for (int k = 1; k < t->workers; k++) ev[i] += c.sums[k][i];
  }
  free(c.sums);
  vae_dist_sum_doubles(ev, 3);
}

static long steps_per_epoch(const vae_trainer *t, const epoch_loop *e) {
  long mine = 0;
  for (int k = 0; k < t->workers; k++) {
    long need = (long)((e->part_n[k] + (size_t)t->o.batch_size - 1) / (size_t)t->o.batch_size);
    mine = need > mine ? need : mine;
  }
  return vae_dist_max_long(MPI_COMM_WORLD, mine); /* the most any worker needs: every image once an epoch */
}

/* Peak resident set of this process (VmHWM), MiB; 0 where /proc is missing. */
static double peak_rss_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) {
      kib = strtod(line + 6, NULL);
      break;
    }
  fclose(f);
  return kib / 1024.0;
}

/* --max-steps, decided here alone, at a step boundary: VAE_STOPPED (with the message) once the run
 * has taken step --max-steps, else 0. Mid-epoch (ran: steps were taken in this process) the position
 * is checkpointed first; at an epoch end the epoch's checkpoint is already written. */
static int stop_at_max_steps(vae_trainer *t, long spe, int ran) {
  const vae_train_opts *o = &t->o;
  if (o->max_steps <= 0 || t->st.step < o->max_steps) return 0;
  int mid_epoch = ran && t->st.epoch_step > 0;
  if (mid_epoch) vae_train_checkpoint(t, 1);
  if (t->d.rank != 0) return VAE_STOPPED;
  if (!ran)
    printf("vae_mpi: already at step %ld >= --max-steps %ld; nothing to do\n", t->st.step, o->max_steps);
  else if (mid_epoch)
    printf(
        "\nvae_mpi: stopped at --max-steps %ld (epoch %ld, step %ld of %ld); continue with --resume auto\n",
        o->max_steps, t->st.epoch + 1, t->st.epoch_step, spe);
  else
    printf("vae_mpi: stopped at --max-steps %ld (end of epoch %ld); continue with --resume auto\n",
           o->max_steps, t->st.epoch);
  return VAE_STOPPED;
}

/* Rank 0's per-step output: a --log-every record and the terminal's progress line. */
static void report_step(vae_trainer *t, const epoch_loop *e, const vae_step_result *r) {
  const vae_train_opts *o = &t->o;
  if (o->log_every > 0 && t->st.step % o->log_every == 0 && !r->skipped)
    vae_metrics_step(&t->metrics, t->st.epoch + 1, t->st.step, r->recon / r->count, r->kl / r->count, r->lr,
                     r->kl_weight, r->grad_norm);
  if (t->st.epoch_count > 0)
    vae_metrics_progress(&t->metrics, t->st.epoch + 1, t->st.epoch_step, e->spe, vae_dist_time() - e->t_epoch,
                         t->st.epoch_recon_sum / t->st.epoch_count, t->st.epoch_kl_sum / t->st.epoch_count);
}

/* After step s of the epoch: the position and the epoch's sums, then whether the run goes on (0) or
 * stops with a status (1 after --max-skips non-finite steps in a row, VAE_EXIT_PREEMPTED after a
 * signal's checkpoint, VAE_STOPPED at --max-steps). */
static int after_step(vae_trainer *t, epoch_loop *e, const vae_step_result *r, long s) {
  const vae_train_opts *o = &t->o;
  t->st.epoch_step = s + 1;
  t->st.epoch_steps_total = e->spe;
  if (r->skipped) {
    t->st.epoch_skipped++;
    if (++e->consecutive_skips >= o->max_skips) {
      if (t->d.rank == 0)
        fprintf(
            stderr,
            "vae_mpi: error: %d consecutive steps had a non-finite loss or gradient (last: step %ld); lower --lr, set --clip-grad-norm, or check the data\n",
            e->consecutive_skips, t->st.step - 1);
      return 1;
    }
  } else {
    e->consecutive_skips = 0;
    t->st.epoch_recon_sum += r->recon;
    t->st.epoch_kl_sum += r->kl;
    t->st.epoch_count += r->count;
  }
  if (t->d.rank == 0) report_step(t, e, r);
  if (r->stop) {
    vae_train_checkpoint(t, 1);
    if (t->d.rank == 0)
      printf(
          "\nvae_mpi: stopped by a signal at step %ld; checkpoint written to %s/checkpoint.h5 (exit status %d; continue with --resume auto)\n",
          t->st.step, o->out, VAE_EXIT_PREEMPTED);
    return VAE_EXIT_PREEMPTED;
  }
  const int last = s + 1 == e->spe; /* the epoch's end checkpoints anyway */
  if (!last && stop_at_max_steps(t, e->spe, 1)) return VAE_STOPPED;
  if (!last && o->checkpoint_every > 0 && t->st.step % o->checkpoint_every == 0) vae_train_checkpoint(t, 0);
  return 0;
}

/* The epoch's steps from the saved position; 0 when the epoch's steps are all done. */
static int run_steps(vae_trainer *t, epoch_loop *e) {
  const int B = t->o.batch_size;
  /* Each worker's order of its part, keyed by its global index (the rank's, with one worker). */
  for (int k = 0; k < t->workers; k++) {
    uint32_t *p = e->perm + e->part_off[k];
    vae_rng_permutation(p, (uint32_t)e->part_n[k], t->o.seed, (uint32_t)(t->d.rank * t->workers + k),
                        (uint64_t)t->st.epoch);
    for (size_t i = 0; i < e->part_n[k]; i++) p[i] += (uint32_t)e->part_off[k];
  }
  for (long s = t->st.epoch_step; s < e->spe; s++) {
    /* Workers whose part is done take part with no images (their zero gradient still sums). */
    size_t lo = (size_t)s * (size_t)B;
    int images = 0;
    for (int k = 0; k < t->workers; k++) {
      size_t have = e->part_n[k];
      e->n[k] = lo >= have ? 0 : (int)(have - lo < (size_t)B ? have - lo : (size_t)B);
      e->rows[k] = e->perm + e->part_off[k] + (e->n[k] > 0 ? lo : 0);
      images += e->n[k];
    }
    double t0 = vae_dist_time();
    vae_step_result r = vae_train_step(t, &t->train, e->rows, e->n);
    e->t_train += vae_dist_time() - t0;
    e->t_red += r.allreduce_s;
    if (r.allreduce_s > e->t_red_max) e->t_red_max = r.allreduce_s;
    e->images += images;
    int status = after_step(t, e, &r, s);
    if (status) return status;
  }
  return 0;
}

/* The epoch's training figures: means over its images, and throughput as all images processed
 * over the slowest rank's time in steps (the allreduce in every step keeps the ranks in lockstep). */
static void training_figures(vae_trainer *t, epoch_loop *e, vae_epoch_record *rec) {
  rec->epoch = t->st.epoch + 1;
  rec->step = t->st.step;
  rec->train_recon = t->st.epoch_recon_sum / t->st.epoch_count;
  rec->train_kl = t->st.epoch_kl_sum / t->st.epoch_count;
  rec->lr = vae_train_lr(&t->o, vae_train_world_workers(t), t->st.step - 1);
  rec->skipped = t->st.epoch_skipped;
  double tmax[4] = {e->t_train, e->t_red, peak_rss_mib(), e->t_red_max};
  vae_dist_max_doubles(tmax, 4);
  vae_dist_sum_doubles(&e->images, 1);
  rec->samples_per_s = tmax[0] > 0 ? e->images / tmax[0] : 0;
  rec->train_seconds = tmax[0];
  rec->allreduce_seconds = tmax[1];
  rec->peak_rss_mib = tmax[2];
  rec->allreduce_max_seconds = tmax[3];
}

/* The epoch's end: figures, the test ELBO (every test image once over the ranks), the check that
 * the ranks still hold the same parameters, pictures, the checkpoint of the next epoch's start, and
 * the metrics record. 0, or 1 when the ranks' parameters differ. */
static int finish_epoch(vae_trainer *t, epoch_loop *e) {
  const vae_train_opts *o = &t->o;
  vae_epoch_record rec = {0};
  training_figures(t, e, &rec);
  if (t->has_test) {
    double ev[3];
    test_sums(t, ev);
    rec.has_test = 1;
    rec.test_recon = ev[0] / ev[2];
    rec.test_kl = ev[1] / ev[2];
  }
  /* Data parallelism keeps every rank's parameters bit-identical; check it once an epoch. */
  if (!vae_dist_same_bytes(t->params, t->n_params * sizeof *t->params)) {
    if (t->d.rank == 0)
      fprintf(
          stderr,
          "vae_mpi: error: parameters differ between ranks after epoch %ld (an MPI or hardware fault); the last checkpoint is intact, rerun with --resume auto\n",
          t->st.epoch + 1);
    return 1;
  }
  if (!o->no_images && t->d.rank == 0)
    vae_train_images(o->out, rec.epoch, &o->model, &t->pv, o->seed, t->has_test ? &t->test : &t->train);
  /* The epoch is complete: the checkpoint records the start of the next one. */
  t->st.epoch++;
  t->st.epoch_step = 0;
  t->st.epoch_recon_sum = t->st.epoch_kl_sum = t->st.epoch_count = 0;
  t->st.epoch_skipped = 0;
  rec.checkpoint_seconds = vae_train_checkpoint(t, 0);
  rec.seconds = vae_dist_time() - e->t_epoch;
  rec.elapsed = vae_dist_time() - e->t_start;
  if (t->d.rank == 0) vae_metrics_epoch(&t->metrics, &rec);
  return 0;
}

static void print_start(const vae_trainer *t, long spe) {
  const vae_train_opts *o = &t->o;
  char desc[256];
  vae_describe(&o->model, desc, sizeof desc);
  char layout[64] = "";
  if (t->workers > 1) snprintf(layout, sizeof layout, " x %d worker threads", t->workers);
  printf(
      "vae_mpi train: %d ranks%s x %d images = global batch %d, %ld steps/epoch, model %s (%s decoder), %zu parameters, %d BLAS thread(s) per %s, %s\n",
      t->d.size, layout, o->batch_size, o->batch_size * vae_train_world_workers(t), spe, desc,
      vae_decoder_name(o->model.decoder), t->n_params, t->blas_threads, t->workers > 1 ? "worker" : "rank",
      vae_blas_describe());
  fflush(stdout);
}

static int settle_checkpoint(void *ctx, char *err) { return vae_checkpoint_settle(err); }

int vae_train_run(vae_trainer *t) {
  if (t->st.epoch >= t->o.epochs) return 0; /* a finished run, resumed: nothing to do */
  epoch_loop e = {0};
  e.perm = mallocCheck((t->train.count ? t->train.count : 1) * sizeof *e.perm);
  e.part_off = mallocCheck((size_t)t->workers * sizeof *e.part_off);
  e.part_n = mallocCheck((size_t)t->workers * sizeof *e.part_n);
  e.rows = mallocCheck((size_t)t->workers * sizeof *e.rows);
  e.n = mallocCheck((size_t)t->workers * sizeof *e.n);
  for (int k = 0; k < t->workers; k++)
    worker_part(t, &t->train, t->train_info.n, k, &e.part_off[k], &e.part_n[k]);
  e.spe = steps_per_epoch(t, &e);
  /* A checkpoint from another number of workers: the same place in the epoch, proportionally. */
  const int ck_workers = t->st.world_size * (t->st.threads_per_rank > 0 ? t->st.threads_per_rank : 1);
  if (t->st.world_size > 0 && ck_workers != vae_train_world_workers(t) && t->st.epoch_step > 0 &&
      t->st.epoch_steps_total > 0)
    t->st.epoch_step = t->st.epoch_step * e.spe / t->st.epoch_steps_total;
  if (t->d.rank == 0) print_start(t, e.spe);
  int status = 0;
  e.t_start = vae_dist_time();
  for (int ran = 0; status == 0 && t->st.epoch < t->o.epochs; ran = 1) {
    if ((status = stop_at_max_steps(t, e.spe, ran)) != 0) break;
    e.t_epoch = vae_dist_time();
    e.t_train = e.t_red = e.t_red_max = e.images = 0;
    status = run_steps(t, &e);
    if (status == 0) status = finish_epoch(t, &e);
  }
  free(e.perm);
  free(e.part_off);
  free(e.part_n);
  free(e.rows);
  free(e.n);
  /* The last checkpoint is on disk (renamed, folder synced) before the job reports or exits. */
  vae_dist_on_root(&t->d, settle_checkpoint, NULL);
  return status == VAE_STOPPED ? 0 : status;
}
