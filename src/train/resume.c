/* train/resume.c: where a run starts (a checkpoint's parameters, Adam state and position, or a fresh
 * initialisation from the seed, the same on every rank) and the run's checkpoints (rank 0 writes,
 * every rank agrees on the outcome).
 * Must never: let a rank train from parameters other than rank 0's, or resume from a checkpoint
 * that does not match the model, the data, or lacks Adam's state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dist.h"
#include "error.h"
#include "trainer.h"

/* ======================================================================================
 * Resume
 * ====================================================================================== */

/* What resuming at this run's layout (ranks x worker threads) means for a checkpoint of another. */
static const char *layout_note(const vae_trainer *t, const vae_ckpt_state *st) {
  static char note[160];
  const int threads = st->threads_per_rank > 0 ? st->threads_per_rank : 1;
  if (st->world_size == t->d.size && threads == t->workers) return "";
  if (st->world_size * threads == vae_train_world_workers(t))
    snprintf(
        note, sizeof note,
        " (trained at %d ranks x %d threads: the same %d workers, shards, shuffles and noise; the float sums may run in another order)",
        st->world_size, threads, st->world_size * threads);
  else
    snprintf(note, sizeof note,
             " (trained at another number of ranks or threads, %d x %d: the trajectory will differ)",
             st->world_size, threads);
  return note;
}

/* Rank 0 (vae_dist_on_root): finds and reads the checkpoint to resume from; 1 when it did, 0 for a
 * fresh start. The buffers and position are broadcast afterwards. */
static int load_resume(void *ctx, char *err) {
  vae_trainer *t = ctx;
  const vae_train_opts *o = &t->o;
  if (o->resume[0] == '\0') return 0;
  char path[VAE_PATH_LEN + 64];
  vae_config ck;
  float *p = NULL, *m = NULL, *v = NULL;
  vae_ckpt_state st;
  if (strcmp(o->resume, "auto") == 0) {
    if (vae_checkpoint_load_latest(o->out, path, sizeof path, &ck, &p, &m, &v, &st, NULL, 0, err) < 0)
      return -1;
    if (path[0] == '\0') {
      printf("resume: no checkpoint in %s, starting fresh\n", o->out);
      return 0;
    }
  } else {
    snprintf(path, sizeof path, "%s", o->resume);
    if (vae_checkpoint_read(path, &ck, &p, &m, &v, &st, err) < 0) return -1;
  }
  int bad = vae_checkpoint_match(&ck, &o->model, err) < 0;
  if (!bad && st.has_data &&
      ((size_t)st.data_n != t->train_info.n || strcmp(st.data_dataset, o->dataset) != 0))
    bad =
        vae_err(
            err,
            "checkpoint %s was trained on %s (%lld images of %s), this run reads %zu images of %s; resume with the same data or start a fresh --out",
            path, st.data_file, st.data_n, st.data_dataset, t->train_info.n, o->dataset) < 0;
  if (!bad && (!m || !v))
    bad = vae_err(err, "checkpoint %s has no optimizer state (model only); it cannot resume training", path) <
          0;
  if (!bad) {
    memcpy(t->params, p, t->n_params * sizeof *p);
    memcpy(t->m, m, t->n_params * sizeof *m);
    memcpy(t->v, v, t->n_params * sizeof *v);
    t->st = st;
    printf("resume: %s at epoch %ld, step %ld%s\n", path, st.epoch, st.step, layout_note(t, &st));
  }
  free(p);
  free(m);
  free(v);
  return bad ? -1 : 1;
}

int vae_train_start(vae_trainer *t) {
  t->resumed = vae_dist_on_root(&t->d, load_resume, t);
  if (!t->resumed && t->d.rank == 0) vae_init_params(&t->o.model, t->params, t->o.seed);
  /* Rank 0's parameters, moments and position to every rank. */
  vae_dist_bcast_floats(t->params, t->n_params);
  if (t->resumed) {
    vae_dist_bcast_floats(t->m, t->n_params);
    vae_dist_bcast_floats(t->v, t->n_params);
    vae_dist_bcast_bytes(&t->st, sizeof t->st);
  }
  return t->resumed;
}

/* ======================================================================================
 * Checkpoints
 * ====================================================================================== */

/* What a checkpoint says about the run besides the position: seed, ranks, options, the data. */
static void fill_state_identity(vae_trainer *t) {
  vae_ckpt_state *st = &t->st;
  st->seed = t->o.seed;
  st->world_size = t->d.size;
  st->threads_per_rank = t->workers;
  st->opts = t->o;
  st->has_opts = 1;
  st->has_data = 1;
  snprintf(st->data_file, sizeof st->data_file, "%s", t->o.data);
  snprintf(st->data_dataset, sizeof st->data_dataset, "%s", t->o.dataset);
  st->data_n = (long long)t->train_info.n;
  st->data_rank = t->train_info.ndims;
  for (int i = 0; i < 4; i++)
    st->data_shape[i] = i < t->train_info.ndims ? (long long)t->train_info.dims[i] : 0;
  const vae_data_kind k = t->train_info.kind;
  snprintf(st->data_dtype, sizeof st->data_dtype, "%s",
           k == VAE_DATA_UINT8     ? "uint8"
           : k == VAE_DATA_FLOAT32 ? "float32"
                                   : "float64");
}

typedef struct {
  vae_trainer *t;
  int durable;
} checkpoint_job;

static int write_checkpoint(void *ctx, char *err) {
  checkpoint_job *j = ctx;
  vae_trainer *t = j->t;
  fill_state_identity(t);
  if (vae_checkpoint_write_deferred(t->o.out, t->st.step, t->o.keep, &t->o.model, t->params, t->m, t->v,
                                    &t->st, err) < 0)
    return -1;
  return j->durable ? vae_checkpoint_settle(err) : 0;
}

/* The file is written on rank 0's thread, its fsync and rename finish in the background
 * (vae_checkpoint_write_deferred), settled by the next checkpoint or the end of vae_train_run;
 * `durable` waits for them here. */
double vae_train_checkpoint(vae_trainer *t, int durable) {
  double t0 = vae_dist_time();
  checkpoint_job j = {t, durable};
  vae_dist_on_root(&t->d, write_checkpoint, &j);
  return vae_dist_time() - t0;
}
