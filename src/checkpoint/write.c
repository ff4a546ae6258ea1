/* checkpoint/write.c: vae_checkpoint_write. Refuses bad input (invalid model, non-finite values)
 * before touching any file, writes the whole schema (docs/CHECKPOINT.md) to a temporary file in the
 * target folder, fsyncs it, renames it over the final path and fsyncs the folder (core/durable_file.c);
 * fault injection (VAE_FAULT_CHECKPOINT) simulates a kill between those steps for the tests. Two
 * halves, the file (vae_ck_write_temp) and its publication (vae_durable_publish), so that
 * checkpoint/async.c can run the second on a background thread.
 * Must never: call MPI (rank 0 alone runs this), modify a final checkpoint path in place, write a
 * non-finite value, or let HDF5 print its error stack. */
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "durable_file.h"
#include "error.h"
#include "internal.h"

/* ======================================================================================
 * Fault injection
 * ====================================================================================== */

static const char *const fault_points[] = {"after-create", "mid-tensors", "before-fsync", "before-rename",
                                           "after-rename"};

static int fault_env_check(const char *path, char *err) {
  const char *f = getenv("VAE_FAULT_CHECKPOINT");
  if (!f || !*f) return 0;
  for (size_t i = 0; i < sizeof fault_points / sizeof fault_points[0]; i++)
    if (strcmp(f, fault_points[i]) == 0) return 0;
  return vae_err(err,
                 "cannot write checkpoint %s: VAE_FAULT_CHECKPOINT=%s is not a fault point "
                 "(after-create, mid-tensors, before-fsync, before-rename, after-rename); unset it",
                 path, f);
}

/* Simulates a kill at `point`: no cleanup, no atexit handlers, no HDF5 close. */
static void fault(const char *point) {
  const char *f = getenv("VAE_FAULT_CHECKPOINT");
  if (f && strcmp(f, point) == 0) _exit(77);
}

/* ======================================================================================
 * Writing the schema
 * ====================================================================================== */

static herr_t write_opts(hid_t fid, const vae_train_opts *o) {
  hid_t g = H5Gcreate2(fid, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  herr_t rc = 0;
  for (size_t i = 0; i < vae_ck_n_opt_fields && rc >= 0; i++) {
    const vae_ck_opt_field *f = &vae_ck_opt_fields[i];
    const char *p = (const char *)o + f->off;
    switch (f->kind) {
      case VAE_CK_F_STR: rc = vae_ck_put_str(g, f->name, p); break;
      case VAE_CK_F_INT: rc = vae_ck_put_i32(g, f->name, *(const int *)p); break;
      case VAE_CK_F_LONG: rc = vae_ck_put_i64(g, f->name, *(const long *)p); break;
      case VAE_CK_F_DOUBLE: rc = vae_ck_put_f64(g, f->name, *(const double *)p); break;
      case VAE_CK_F_U64: rc = vae_ck_put_u64(g, f->name, *(const uint64_t *)p); break;
      case VAE_CK_F_LR_SCALE: {
        const char *name = vae_lr_scale_name(*(const vae_lr_scale *)p);
        if (!name) VAE_FAIL("lr_scale %d out of range", (int)*(const vae_lr_scale *)p);
        rc = vae_ck_put_str(g, f->name, name);
        break;
      }
    }
  }
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

static herr_t write_tensors(hid_t fid, const char *prefix, const vae_tensor *t, int nt, const float *buf,
                            int fault_midway) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) return -1;
  herr_t rc = 0;
  char name[VAE_CK_TENSOR_PATH_LEN];
  /* a conv model's tensors go out in PyTorch's order (the buffer holds them permuted) */
  size_t longest = 0;
  for (int i = 0; i < nt; i++)
    if (vae_tensor_permuted(&t[i]) && vae_tensor_len(&t[i]) > longest) longest = vae_tensor_len(&t[i]);
  float *torch = longest ? mallocCheck(longest * sizeof *torch) : NULL;
  for (int i = 0; i < nt && rc >= 0; i++) {
    vae_ck_tensor_path(name, prefix, &t[i]);
    const float *src = buf + t[i].offset;
    if (vae_tensor_permuted(&t[i])) {
      vae_tensor_to_torch(&t[i], buf, torch);
      src = torch;
    }
    hsize_t dims[VAE_TENSOR_MAX_DIMS];
    for (int k = 0; k < t[i].ndim; k++) dims[k] = (hsize_t)t[i].dims[k];
    hid_t sp = H5Screate_simple(t[i].ndim, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    rc = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, src);
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    if (sp >= 0) H5Sclose(sp);
    if (fault_midway && i + 1 == nt / 2) fault("mid-tensors");
  }
  free(torch);
  H5Pclose(lcpl);
  return rc;
}

static herr_t write_model_group(hid_t fid, const vae_config *c) {
  hid_t g = H5Gcreate2(fid, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  int shape[3] = {c->in_h, c->in_w, c->in_c};
  herr_t rc = vae_ck_put_str(g, "decoder", vae_decoder_name(c->decoder));
  if (rc >= 0) rc = vae_ck_put_f32(g, "sigma", c->sigma);
  if (rc >= 0) rc = vae_ck_put_f32(g, "logvar_min", c->logvar_min);
  if (rc >= 0) rc = vae_ck_put_i32(g, "latent", c->latent);
  if (rc >= 0)
    rc = vae_ck_put_attr(g, "hidden", H5T_STD_I32LE, H5T_NATIVE_INT, 1, (hsize_t)c->n_hidden, c->hidden);
  if (rc >= 0) rc = vae_ck_put_attr(g, "input_shape", H5T_STD_I32LE, H5T_NATIVE_INT, 1, 3, shape);
  /* a conv model only: their absence means the MLP, so every MLP checkpoint stays as it was */
  if (rc >= 0 && c->n_conv > 0)
    rc = vae_ck_put_attr(g, "conv", H5T_STD_I32LE, H5T_NATIVE_INT, 1, (hsize_t)c->n_conv, c->conv);
  if (rc >= 0 && c->n_conv > 0) rc = vae_ck_put_i32(g, "kernel", c->kernel);
  if (rc >= 0 && c->n_conv > 0) rc = vae_ck_put_i32(g, "stride", c->stride);
  if (rc >= 0 && c->n_conv > 0) rc = vae_ck_put_i32(g, "padding", c->padding);
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

static herr_t write_data_group(hid_t fid, const vae_ckpt_state *st) {
  hid_t g = H5Gcreate2(fid, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  herr_t rc = vae_ck_put_str(g, "file", st->data_file);
  if (rc >= 0) rc = vae_ck_put_str(g, "dataset", st->data_dataset);
  if (rc >= 0) rc = vae_ck_put_i64(g, "n", st->data_n);
  if (rc >= 0)
    rc = vae_ck_put_attr(g, "shape", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, (hsize_t)st->data_rank,
                         st->data_shape);
  if (rc >= 0) rc = vae_ck_put_str(g, "dtype", st->data_dtype);
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

static herr_t write_contents(hid_t fid, const vae_config *cfg, const vae_tensor *t, int nt,
                             const float *params, const float *m, const float *v, const vae_ckpt_state *st) {
  herr_t rc = vae_ck_put_i32(fid, "format_version", VAE_CHECKPOINT_FORMAT);
  if (rc >= 0) rc = vae_ck_put_i64(fid, "step", st->step);
  if (rc >= 0) rc = vae_ck_put_i64(fid, "epoch", st->epoch);
  if (rc >= 0) rc = vae_ck_put_i64(fid, "epoch_step", st->epoch_step);
  if (rc >= 0) rc = vae_ck_put_u64(fid, "seed", st->seed);
  if (rc >= 0) rc = vae_ck_put_i32(fid, "world_size", st->world_size);
  if (rc >= 0)
    rc = vae_ck_put_i32(fid, "threads_per_rank", st->threads_per_rank > 0 ? st->threads_per_rank : 1);
  if (rc >= 0) rc = vae_ck_put_str(fid, "created_by", "vae_mpi");
  if (rc >= 0) rc = vae_ck_put_i64(fid, "epoch_steps", st->epoch_steps_total);
  if (rc >= 0) rc = vae_ck_put_f64(fid, "epoch_recon_sum", st->epoch_recon_sum);
  if (rc >= 0) rc = vae_ck_put_f64(fid, "epoch_kl_sum", st->epoch_kl_sum);
  if (rc >= 0) rc = vae_ck_put_f64(fid, "epoch_images", st->epoch_count);
  if (rc >= 0) rc = vae_ck_put_i64(fid, "epoch_skipped", st->epoch_skipped);
  if (rc >= 0) rc = vae_ck_put_i64(fid, "adam_step", st->adam_step);
  if (rc < 0 || write_model_group(fid, cfg) < 0) return -1;
  /* /model's tensors, then /optimizer/m and /optimizer/v when the Adam moments are given. */
  const float *bufs[3] = {params, m, v};
  for (int b = 0; b < (m ? 3 : 1); b++)
    if (write_tensors(fid, vae_ck_tensor_groups[b], t, nt, bufs[b], b == 0) < 0) return -1;
  if (st->has_opts && write_opts(fid, &st->opts) < 0) return -1;
  if (st->has_data && write_data_group(fid, st) < 0) return -1;
  return 0;
}

/* Checks what the caller hands in before any file is touched. */
static int check_before_write(const char *path, const vae_config *cfg, const vae_tensor *t, int nt,
                              const float *params, const float *m, const float *v, const vae_ckpt_state *st,
                              char *err) {
  char msg[VAE_ERR_LEN];
  if (vae_config_validate(cfg, msg) < 0)
    return vae_err(err, "cannot write checkpoint %s: invalid model: %s", path, msg);
  if (st->has_data && (st->data_rank < 1 || st->data_rank > VAE_CKPT_MAX_DATA_RANK))
    VAE_FAIL("checkpoint data_rank %d out of range", st->data_rank);
  if (st->adam_step < 0 || st->adam_step > st->step)
    VAE_FAIL("checkpoint adam_step %ld outside [0, step %ld]", st->adam_step, st->step);
  const float *bufs[3] = {params, m, v};
  for (int b = 0; b < 3; b++) {
    if (!bufs[b]) continue;
    for (int i = 0; i < nt; i++) {
      size_t k;
      float bad;
      if (vae_ck_scan_finite(bufs[b] + t[i].offset, vae_tensor_len(&t[i]), &k, &bad) < 0)
        return vae_err(err,
                       "refusing to write checkpoint %s: /%s/%s holds a non-finite value (%g at "
                       "element %zu); the training diverged, the previous checkpoint is kept",
                       path, vae_ck_tensor_groups[b], t[i].name, (double)bad, k);
    }
  }
  return 0;
}

/* ======================================================================================
 * The atomic write (core/durable_file.c: temporary file, fsync, rename, folder fsync)
 * ====================================================================================== */

int vae_ck_write_temp(const char *path, const vae_config *cfg, const float *params, const float *m,
                      const float *v, const vae_ckpt_state *st, vae_durable *d, char *err) {
  if ((m == NULL) != (v == NULL)) VAE_FAIL("checkpoint write needs both Adam moments or neither");
  if (fault_env_check(path, err) < 0) return -1;
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(cfg, t);
  if (check_before_write(path, cfg, t, nt, params, m, v, st, err) < 0) return -1;
  if (vae_durable_begin(d, path, "checkpoint", err) < 0) return -1;
  d->at_point = fault; /* VAE_FAULT_CHECKPOINT's before-fsync, before-rename, after-rename */

  vae_h5_quiet();
  H5Eclear2(H5E_DEFAULT);
  hid_t fid = H5Fcreate(d->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (fid < 0) return vae_durable_fail(d, vae_ck_diagnose().errnum, "cannot create the temporary file", err);
  fault("after-create");
  herr_t rc = write_contents(fid, cfg, t, nt, params, m, v, st);
  if (rc >= 0) rc = H5Fflush(fid, H5F_SCOPE_GLOBAL);
  if (H5Fclose(fid) < 0) rc = -1;
  if (rc < 0) return vae_durable_fail(d, vae_ck_diagnose().errnum, "HDF5 write failed", err);
  return 0;
}

int vae_checkpoint_write(const char *path, const vae_config *cfg, const float *params, const float *m,
                         const float *v, const vae_ckpt_state *st, char *err) {
  vae_durable d;
  if (vae_ck_write_temp(path, cfg, params, m, v, st, &d, err) < 0) return -1;
  return vae_durable_publish(&d, err);
}
