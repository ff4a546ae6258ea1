/* checkpoint.h: HDF5 checkpoints (write atomically, read and validate, match against a run's
 * config, find the latest for --resume auto, rotate --keep K numbered copies). The schema is in
 * docs/CHECKPOINT.md. Rank 0 only: nothing here calls MPI; files are opened with HDF5's default
 * (sec2) driver. Every user-caused failure returns -1 with a one-line message in err
 * (VAE_ERR_LEN bytes); HDF5's error stack is never printed.
 *
 * Fault injection (tests only): VAE_FAULT_CHECKPOINT=<point> makes vae_checkpoint_write call
 * _exit(77) at that point, as if the process were killed there. Points, in write order:
 *   after-create   the temporary file was just created
 *   mid-tensors    half of the /model tensors are written
 *   before-fsync   the temporary file is complete and closed, not yet fsync'ed
 *   before-rename  the temporary file is fsync'ed, not yet renamed over the final path
 *   after-rename   the rename is done, the folder is not yet fsync'ed
 * Any other non-empty value is refused by vae_checkpoint_write (a typo must not pass silently). */
#ifndef VAE_CHECKPOINT_H
#define VAE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "options.h"
#include "vae.h"

#define VAE_CHECKPOINT_FORMAT 1
#define VAE_CKPT_MAX_DATA_RANK 4

/* Everything a checkpoint holds besides the model's configuration and tensors. */
typedef struct {
  long step;       /* optimizer steps taken */
  long epoch;      /* completed epochs */
  long epoch_step; /* steps done inside the current epoch */
  long adam_step;  /* Adam updates applied (its bias-correction t): step minus the skipped steps.
                     * Root attribute, optional on read: absent means step (every step applied) */
  /* The epoch in progress, so that a resumed run reports exactly what the uninterrupted one would
   * (root attributes, optional on read: absent means 0): */
  long epoch_steps_total; /* steps per epoch of the run that wrote it (resume at another np) */
  double epoch_recon_sum; /* training recon summed over the epoch's images so far */
  double epoch_kl_sum;    /* training KL summed likewise */
  double epoch_count;     /* images so far */
  long epoch_skipped;     /* non-finite steps skipped so far */
  uint64_t seed;
  int world_size;       /* MPI ranks of the run */
  int threads_per_rank; /* its worker threads per rank (root attribute, optional on read: absent means 1) */
  int has_opts;         /* /config present (on write: 1 writes it) */
  vae_train_opts opts;  /* opts.model is ignored on write and set to the /model config on read */
  int has_data;         /* /data present (on write: 1 writes it) */
  char data_file[VAE_PATH_LEN];
  char data_dataset[VAE_PATH_LEN];
  long long data_n; /* images: data_shape[0] */
  int data_rank;    /* 1 .. VAE_CKPT_MAX_DATA_RANK */
  long long data_shape[VAE_CKPT_MAX_DATA_RANK];
  char data_dtype[16]; /* uint8, float32 or float64 */
} vae_ckpt_state;

/* Writes a checkpoint to path atomically: a temporary file `.<name>.tmp-<pid>` in the same
 * folder, fsync'ed, renamed over path, then the folder fsync'ed. params, m, v hold
 * vae_num_params(cfg) floats each; m and v may both be NULL (a model-only checkpoint) but not one
 * alone. Refuses non-finite values (naming the tensor) before creating any file. On failure the
 * temporary file is removed and an existing file at path is left untouched. */
int vae_checkpoint_write(const char *path, const vae_config *cfg, const float *params, const float *m,
                         const float *v, const vae_ckpt_state *st, char *err);

/* Reads and validates a checkpoint. On success *params (and *m, *v when /optimizer is present,
 * else NULL) are fresh malloc'ed buffers of vae_num_params(cfg) floats in layout order, for the
 * caller to free; st may be NULL. On failure nothing is allocated and the outputs are untouched
 * except err. */
int vae_checkpoint_read(const char *path, vae_config *cfg, float **params, float **m, float **v,
                        vae_ckpt_state *st, char *err);

/* Reads a checkpoint to run its model (eval, sample, reconstruct): as vae_checkpoint_read, but only
 * the parameters are kept (*params: fresh, for the caller to free), and with `data` non-NULL a model
 * whose input shape (H x W x C) differs from the data's images is refused. st may be NULL. */
int vae_checkpoint_read_model(const char *path, const vae_data_info *data, vae_config *cfg, float **params,
                              vae_ckpt_state *st, char *err);

/* 0 when a checkpoint's model can continue under the run's config `want` (same input shape, hidden
 * widths, latent, decoder, and sigma for gaussian / logvar_min for gaussian-learned); otherwise
 * -1 with every difference and the flags that would make them agree. */
int vae_checkpoint_match(const vae_config *ckpt, const vae_config *want, char *err);

/* For --resume auto: among dir/checkpoint.h5 and dir/checkpoint-<step>.h5 finds the loadable one
 * (vae_checkpoint_read succeeds) with the highest stored step (checkpoint.h5 wins a tie) and
 * writes its path to path_out (n bytes). Each unloadable candidate it passes over adds a line
 * "skipping unreadable checkpoint X: reason" to notes (notes_len bytes, "" when none; when notes
 * is NULL the line goes to stderr as "vae_mpi: warning: ..."). No candidate, or no dir at all:
 * returns 0 with path_out "". -1 when dir cannot be listed or path_out is too small. */
int vae_checkpoint_find_latest(const char *dir, char *path_out, size_t n, char *notes, size_t notes_len,
                               char *err);
/* The same search, keeping what the winning read returned (as vae_checkpoint_read: fresh buffers
 * for the caller to free, *m and *v NULL for a model-only file) so that the file is read once.
 * params NULL: nothing is kept (vae_checkpoint_find_latest). With path_out "" nothing is set. */
int vae_checkpoint_load_latest(const char *dir, char *path_out, size_t n, vae_config *cfg, float **params,
                               float **m, float **v, vae_ckpt_state *st, char *notes, size_t notes_len,
                               char *err);

/* After dir/checkpoint.h5 was written at `step`: with keep > 0 makes dir/checkpoint-<step>.h5 a
 * copy of it (a hard link, or a byte copy where links are not supported; replaced atomically),
 * then deletes numbered checkpoints until the `keep` highest steps remain (this step always
 * stays). keep == 0 deletes every numbered checkpoint. */
int vae_checkpoint_rotate(const char *dir, long step, int keep, char *err);

/* dir/checkpoint.h5 at `step` with its slow end in the background (checkpoint/async.c): returns once
 * the temporary file is written and closed (every check and message of vae_checkpoint_write happens
 * before that); a thread then fsyncs it, renames it into place, fsyncs the folder and runs
 * vae_checkpoint_rotate(dir, step, keep), while the caller goes on training. One write is in flight
 * at most: this call first settles the previous one, and returns its error if it failed. Falls back
 * to doing everything here when no thread can be started. */
int vae_checkpoint_write_deferred(const char *dir, long step, int keep, const vae_config *cfg,
                                  const float *params, const float *m, const float *v,
                                  const vae_ckpt_state *st, char *err);
/* Waits for the write in flight, if any: 0 when it is on disk (renamed, folder synced), or -1 with
 * its message (the previous checkpoint is then untouched). Also run at exit(). */
int vae_checkpoint_settle(char *err);

#endif
