/* checkpoint.c: HDF5 checkpoints. Atomic write (temporary file, fsync, rename, folder fsync), read
 * with validation of every attribute and tensor, config matching, --resume auto discovery, and
 * --keep rotation. Schema: docs/CHECKPOINT.md.
 * Must never: call MPI (rank 0 alone runs this), modify a final checkpoint path in place, write a
 * non-finite value, or let HDF5 print its error stack. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <H5PLpublic.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define MAIN_NAME "checkpoint.h5"

/* ======================================================================================
 * Fault injection and HDF5 diagnostics
 * ====================================================================================== */

static const char *const fault_points[] = {"after-create", "mid-tensors", "before-fsync",
                                           "before-rename", "after-rename"};

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

/* What HDF5's (silenced) error stack says: the errno of a failed system call, and whether the file
 * was found shorter than its superblock claims. */
typedef struct {
  int errnum;
  int truncated;
} h5_diag;

static herr_t diag_cb(unsigned n, const H5E_error2_t *e, void *data) {
  h5_diag *d = data;
  if (e->desc) {
    const char *p = strstr(e->desc, "errno = ");
    if (p && !d->errnum) d->errnum = (int)strtol(p + 8, NULL, 10);
    if (strstr(e->desc, "truncated")) d->truncated = 1;
  }
  return 0;
}

static h5_diag h5_diagnose(void) {
  h5_diag d = {0, 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, diag_cb, &d);
  H5Eclear2(H5E_DEFAULT);
  return d;
}

/* ======================================================================================
 * Paths and POSIX helpers
 * ====================================================================================== */

/* dir of path ("." when it has no slash) and its last component. */
static int split_path(const char *path, char *dir, char *base, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, n, ".");
    return snprintf(base, n, "%s", path) >= (int)n ? -1 : 0;
  }
  size_t dlen = slash == path ? 1 : (size_t)(slash - path);
  if (dlen >= n) return -1;
  memcpy(dir, path, dlen);
  dir[dlen] = 0;
  return snprintf(base, n, "%s", slash + 1) >= (int)n ? -1 : 0;
}

static int fsync_path(const char *p, int flags) {
  int fd = open(p, flags);
  if (fd < 0) return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  /* Some filesystems cannot fsync a folder; the rename is then as durable as they allow. */
  if (rc == EINVAL && (flags & O_DIRECTORY)) rc = 0;
  return rc;
}

static const char *write_hint(int e) {
  if (e == ENOSPC || e == EDQUOT) return "free space or pass --out elsewhere";
  if (e == EACCES || e == EPERM || e == EROFS) return "make the folder writable or pass --out elsewhere";
  return "check the folder or pass --out elsewhere";
}

/* "checkpoint-<digits>.h5" -> step; -1 for any other name. */
static long numbered_step(const char *name) {
  const char *pre = "checkpoint-";
  size_t lp = strlen(pre), ln = strlen(name);
  if (ln <= lp + 3 || strncmp(name, pre, lp) != 0 || strcmp(name + ln - 3, ".h5") != 0) return -1;
  if (name[lp] < '0' || name[lp] > '9' || ln - lp - 3 > 18) return -1;
  char *end;
  long s = strtol(name + lp, &end, 10);
  return end == name + ln - 3 ? s : -1;
}

/* The steps of dir's numbered checkpoints (malloc'ed, caller frees) and whether checkpoint.h5 is
 * there. A missing folder has none. */
static int list_checkpoints(const char *dir, long **steps, int *count, int *has_main, char *err) {
  *steps = NULL;
  *count = 0;
  *has_main = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return vae_err(err, "cannot list checkpoint folder %s: %s; check --out", dir, strerror(errno));
  }
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, MAIN_NAME) == 0) *has_main = 1;
    long s = numbered_step(e->d_name);
    if (s < 0) continue;
    if (*count == cap) {
      cap = cap ? 2 * cap : 16;
      long *grown = realloc(*steps, (size_t)cap * sizeof **steps);
      if (!grown) VAE_FAIL("out of memory listing %s", dir);
      *steps = grown;
    }
    (*steps)[(*count)++] = s;
  }
  closedir(d);
  return 0;
}

static int cmp_long_desc(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

/* ======================================================================================
 * Attribute writing
 * ====================================================================================== */

/* rank 0: scalar; rank 1: array of len. ftype is the stored type, mtype the type of buf. */
static herr_t put_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, hsize_t len,
                       const void *buf) {
  hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &len, NULL);
  if (sp < 0) return -1;
  hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, buf);
  if (a >= 0 && H5Aclose(a) < 0) rc = -1;
  H5Sclose(sp);
  return rc;
}

/* Variable-length UTF-8: h5py returns it as a Python str. */
static herr_t put_str(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  herr_t rc = -1;
  if (H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
    rc = put_attr(loc, name, t, t, 0, 0, &s);
  H5Tclose(t);
  return rc;
}

static herr_t put_i32(hid_t loc, const char *name, int v) {
  return put_attr(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, 0, 0, &v);
}
static herr_t put_i64(hid_t loc, const char *name, long long v) {
  return put_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, 0, &v);
}
static herr_t put_u64(hid_t loc, const char *name, uint64_t v) {
  unsigned long long u = v;
  return put_attr(loc, name, H5T_STD_U64LE, H5T_NATIVE_ULLONG, 0, 0, &u);
}
static herr_t put_f64(hid_t loc, const char *name, double v) {
  return put_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, 0, &v);
}
static herr_t put_f32(hid_t loc, const char *name, float v) {
  return put_attr(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, 0, &v);
}

/* ======================================================================================
 * The /config table: every field of vae_train_opts except the model (that is /model)
 * ====================================================================================== */

typedef enum { F_STR, F_INT, F_LONG, F_DOUBLE, F_U64, F_LR_SCALE } field_kind;
typedef struct {
  const char *name;
  field_kind kind;
  size_t off;
} opt_field;

#define OPT(name, kind, member) {name, kind, offsetof(vae_train_opts, member)}
static const opt_field opt_fields[] = {
    OPT("data", F_STR, data),
    OPT("dataset", F_STR, dataset),
    OPT("test_dataset", F_STR, test_dataset),
    OPT("test_dataset_given", F_INT, test_dataset_given),
    OPT("out", F_STR, out),
    OPT("resume", F_STR, resume),
    OPT("epochs", F_LONG, epochs),
    OPT("batch_size", F_INT, batch_size),
    OPT("lr", F_DOUBLE, lr),
    OPT("beta1", F_DOUBLE, beta1),
    OPT("beta2", F_DOUBLE, beta2),
    OPT("adam_eps", F_DOUBLE, adam_eps),
    OPT("lr_warmup_steps", F_LONG, lr_warmup_steps),
    OPT("lr_scale", F_LR_SCALE, lr_scale),
    OPT("kl_warmup_steps", F_LONG, kl_warmup_steps),
    OPT("beta", F_DOUBLE, beta),
    OPT("clip_grad_norm", F_DOUBLE, clip_grad_norm),
    OPT("seed", F_U64, seed),
    OPT("threads", F_INT, threads),
    OPT("log_every", F_LONG, log_every),
    OPT("checkpoint_every", F_LONG, checkpoint_every),
    OPT("keep", F_INT, keep),
    OPT("no_images", F_INT, no_images),
    OPT("max_skips", F_INT, max_skips),
};
#define N_OPT_FIELDS (sizeof opt_fields / sizeof opt_fields[0])

static const char *const lr_scale_names[] = {"none", "linear", "sqrt"}; /* by vae_lr_scale value */

static herr_t write_opts(hid_t fid, const vae_train_opts *o) {
  hid_t g = H5Gcreate2(fid, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  herr_t rc = 0;
  for (size_t i = 0; i < N_OPT_FIELDS && rc >= 0; i++) {
    const opt_field *f = &opt_fields[i];
    const char *p = (const char *)o + f->off;
    switch (f->kind) {
      case F_STR: rc = put_str(g, f->name, p); break;
      case F_INT: rc = put_i32(g, f->name, *(const int *)p); break;
      case F_LONG: rc = put_i64(g, f->name, *(const long *)p); break;
      case F_DOUBLE: rc = put_f64(g, f->name, *(const double *)p); break;
      case F_U64: rc = put_u64(g, f->name, *(const uint64_t *)p); break;
      case F_LR_SCALE: {
        unsigned s = (unsigned)*(const vae_lr_scale *)p;
        if (s >= 3) VAE_FAIL("lr_scale %u out of range", s);
        rc = put_str(g, f->name, lr_scale_names[s]);
        break;
      }
    }
  }
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

/* ======================================================================================
 * Writing
 * ====================================================================================== */

static size_t tensor_len(const vae_tensor *t) {
  return (size_t)t->dims[0] * (t->ndim == 2 ? (size_t)t->dims[1] : 1);
}

/* 0 when every value is finite; otherwise the first bad element's index and value. */
static int scan_finite(const float *p, size_t n, size_t *where, float *val) {
  for (size_t k = 0; k < n; k++)
    if (!isfinite(p[k])) {
      *where = k;
      *val = p[k];
      return -1;
    }
  return 0;
}

static herr_t write_tensors(hid_t fid, const char *prefix, const vae_tensor *t, int nt,
                            const float *buf, int fault_midway) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) return -1;
  herr_t rc = 0;
  char name[128];
  for (int i = 0; i < nt && rc >= 0; i++) {
    snprintf(name, sizeof name, "%s/%s", prefix, t[i].name);
    hsize_t dims[2] = {(hsize_t)t[i].dims[0], (hsize_t)t[i].dims[1]};
    hid_t sp = H5Screate_simple(t[i].ndim, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    rc = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf + t[i].offset);
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    if (sp >= 0) H5Sclose(sp);
    if (fault_midway && i + 1 == nt / 2) fault("mid-tensors");
  }
  H5Pclose(lcpl);
  return rc;
}

static herr_t write_model_group(hid_t fid, const vae_config *c) {
  hid_t g = H5Gcreate2(fid, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  int shape[3] = {c->in_h, c->in_w, c->in_c};
  herr_t rc = put_str(g, "decoder", vae_decoder_name(c->decoder));
  if (rc >= 0) rc = put_f32(g, "sigma", c->sigma);
  if (rc >= 0) rc = put_f32(g, "logvar_min", c->logvar_min);
  if (rc >= 0) rc = put_i32(g, "latent", c->latent);
  if (rc >= 0)
    rc = put_attr(g, "hidden", H5T_STD_I32LE, H5T_NATIVE_INT, 1, (hsize_t)c->n_hidden, c->hidden);
  if (rc >= 0) rc = put_attr(g, "input_shape", H5T_STD_I32LE, H5T_NATIVE_INT, 1, 3, shape);
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

static herr_t write_data_group(hid_t fid, const vae_ckpt_state *st) {
  hid_t g = H5Gcreate2(fid, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return -1;
  herr_t rc = put_str(g, "file", st->data_file);
  if (rc >= 0) rc = put_str(g, "dataset", st->data_dataset);
  if (rc >= 0) rc = put_i64(g, "n", st->data_n);
  if (rc >= 0)
    rc = put_attr(g, "shape", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, (hsize_t)st->data_rank,
                  st->data_shape);
  if (rc >= 0) rc = put_str(g, "dtype", st->data_dtype);
  if (H5Gclose(g) < 0) rc = -1;
  return rc;
}

static herr_t write_contents(hid_t fid, const vae_config *cfg, const vae_tensor *t, int nt,
                             const float *params, const float *m, const float *v,
                             const vae_ckpt_state *st) {
  if (put_i32(fid, "format_version", VAE_CHECKPOINT_FORMAT) < 0 || put_i64(fid, "step", st->step) < 0 ||
      put_i64(fid, "epoch", st->epoch) < 0 || put_i64(fid, "epoch_step", st->epoch_step) < 0 ||
      put_u64(fid, "seed", st->seed) < 0 || put_i32(fid, "world_size", st->world_size) < 0 ||
      put_str(fid, "created_by", "vae_mpi") < 0 || put_i64(fid, "epoch_steps", st->epoch_steps_total) < 0 ||
      put_f64(fid, "epoch_recon_sum", st->epoch_recon_sum) < 0 ||
      put_f64(fid, "epoch_kl_sum", st->epoch_kl_sum) < 0 || put_f64(fid, "epoch_images", st->epoch_count) < 0 ||
      put_i64(fid, "epoch_skipped", st->epoch_skipped) < 0)
    return -1;
  if (write_model_group(fid, cfg) < 0 || write_tensors(fid, "model", t, nt, params, 1) < 0) return -1;
  if (m && (write_tensors(fid, "optimizer/m", t, nt, m, 0) < 0 ||
            write_tensors(fid, "optimizer/v", t, nt, v, 0) < 0))
    return -1;
  if (st->has_opts && write_opts(fid, &st->opts) < 0) return -1;
  if (st->has_data && write_data_group(fid, st) < 0) return -1;
  return 0;
}

/* Checks what the caller hands in before any file is touched. */
static int check_before_write(const char *path, const vae_config *cfg, const vae_tensor *t, int nt,
                              const float *params, const float *m, const float *v,
                              const vae_ckpt_state *st, char *err) {
  char msg[VAE_ERR_LEN];
  if (vae_config_validate(cfg, msg) < 0)
    return vae_err(err, "cannot write checkpoint %s: invalid model: %s", path, msg);
  if (st->has_data && (st->data_rank < 1 || st->data_rank > VAE_CKPT_MAX_DATA_RANK))
    VAE_FAIL("checkpoint data_rank %d out of range", st->data_rank);
  const float *bufs[3] = {params, m, v};
  const char *groups[3] = {"model", "optimizer/m", "optimizer/v"};
  for (int b = 0; b < 3; b++) {
    if (!bufs[b]) continue;
    for (int i = 0; i < nt; i++) {
      size_t k;
      float bad;
      if (scan_finite(bufs[b] + t[i].offset, tensor_len(&t[i]), &k, &bad) < 0)
        return vae_err(err,
                       "refusing to write checkpoint %s: /%s/%s holds a non-finite value (%g at "
                       "element %zu); the training diverged, the previous checkpoint is kept",
                       path, groups[b], t[i].name, (double)bad, k);
    }
  }
  return 0;
}

int vae_checkpoint_write(const char *path, const vae_config *cfg, const float *params,
                         const float *m, const float *v, const vae_ckpt_state *st, char *err) {
  if ((m == NULL) != (v == NULL)) VAE_FAIL("checkpoint write needs both Adam moments or neither");
  if (fault_env_check(path, err) < 0) return -1;
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(cfg, t);
  if (check_before_write(path, cfg, t, nt, params, m, v, st, err) < 0) return -1;

  char dir[VAE_PATH_LEN], base[VAE_PATH_LEN], tmp[VAE_PATH_LEN];
  if (split_path(path, dir, base, sizeof dir) < 0 || !*base ||
      snprintf(tmp, sizeof tmp, "%s/.%s.tmp-%ld", dir, base, (long)getpid()) >= (int)sizeof tmp)
    return vae_err(err, "cannot write checkpoint %s: the path is empty, ends in '/' or is too long",
                   path);
  struct stat sb;
  if (stat(dir, &sb) != 0)
    return vae_err(err, "cannot write checkpoint %s: folder %s %s; create it or pass --out elsewhere",
                   path, dir, errno == ENOENT ? "does not exist" : strerror(errno));
  if (!S_ISDIR(sb.st_mode))
    return vae_err(err, "cannot write checkpoint %s: %s is not a folder; pass --out elsewhere", path,
                   dir);

  vae_h5_quiet();
  H5Eclear2(H5E_DEFAULT);
  hid_t fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  int e = 0;
  const char *what = "HDF5 write failed";
  if (fid < 0) {
    e = h5_diagnose().errnum;
    what = "cannot create the temporary file";
    goto fail;
  }
  fault("after-create");
  herr_t rc = write_contents(fid, cfg, t, nt, params, m, v, st);
  if (rc >= 0) rc = H5Fflush(fid, H5F_SCOPE_GLOBAL);
  if (H5Fclose(fid) < 0) rc = -1;
  if (rc < 0) {
    e = h5_diagnose().errnum;
    goto fail;
  }
  fault("before-fsync");
  what = "fsync failed";
  if ((e = fsync_path(tmp, O_RDONLY)) != 0) goto fail;
  fault("before-rename");
  what = "rename failed";
  if (rename(tmp, path) != 0) {
    e = errno;
    goto fail;
  }
  fault("after-rename");
  if ((e = fsync_path(dir, O_RDONLY | O_DIRECTORY)) != 0)
    return vae_err(err, "checkpoint %s was renamed into place but fsync of folder %s failed: %s; %s",
                   path, dir, strerror(e), write_hint(e));
  return 0;

fail:
  unlink(tmp);
  if (e)
    return vae_err(err, "cannot write checkpoint %s: %s; %s (the previous checkpoint is untouched)",
                   path, strerror(e), write_hint(e));
  return vae_err(err, "cannot write checkpoint %s: %s; %s (the previous checkpoint is untouched)",
                 path, what, write_hint(e));
}

/* ======================================================================================
 * Attribute reading: every attribute is checked for presence, class, count and range
 * ====================================================================================== */

/* Where messages point: the file, and the object whose attributes are read ("" is the root). */
typedef struct {
  const char *path;
  const char *obj;
  char *err;
} rctx;

#define SCHEMA_HINT "it is not a complete vae_mpi checkpoint (schema: docs/CHECKPOINT.md)"

/* Opens attribute name; its type and element count (a scalar is 1, an H5S_NULL space 0). */
static int attr_open(hid_t loc, const char *name, const rctx *c, hid_t *a, hid_t *ft, long long *n) {
  if (H5Aexists(loc, name) <= 0)
    return vae_err(c->err, "checkpoint %s: attribute %s/%s is missing; " SCHEMA_HINT, c->path, c->obj,
                   name);
  *a = H5Aopen(loc, name, H5P_DEFAULT);
  hid_t sp = *a < 0 ? -1 : H5Aget_space(*a);
  *ft = *a < 0 ? -1 : H5Aget_type(*a);
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  *n = sp < 0 ? -1 : (long long)H5Sget_simple_extent_npoints(sp);
  if (sp >= 0) H5Sclose(sp);
  if (*a < 0 || *ft < 0 || rank < 0 || *n < 0) {
    if (*ft >= 0) H5Tclose(*ft);
    if (*a >= 0) H5Aclose(*a);
    return vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged",
                   c->path, c->obj, name);
  }
  if (rank > 1) {
    H5Tclose(*ft);
    H5Aclose(*a);
    return vae_err(c->err, "checkpoint %s: attribute %s/%s has %d dimensions, expected a scalar or "
                   "a 1-D array", c->path, c->obj, name, rank);
  }
  return 0;
}

typedef enum { NUM_INT, NUM_U64, NUM_FLOAT } num_kind;

/* Reads attribute name as numbers: long long (NUM_INT), uint64_t (NUM_U64) or double (NUM_FLOAT)
 * into out. count NULL: exactly one value; else up to max (<= VAE_MAX_HIDDEN) and *count. */
static int get_nums(hid_t loc, const char *name, num_kind k, void *out, int max, int *count,
                    const rctx *c) {
  hid_t a, ft;
  long long n;
  if (attr_open(loc, name, c, &a, &ft, &n) < 0) return -1;
  H5T_class_t cls = H5Tget_class(ft);
  int uns = cls == H5T_INTEGER && H5Tget_sign(ft) == H5T_SGN_NONE;
  long long s[VAE_MAX_HIDDEN];
  unsigned long long u[VAE_MAX_HIDDEN];
  int rc = -1;
  if (max > VAE_MAX_HIDDEN) VAE_FAIL("get_nums max %d", max);
  if (count ? n > max : n != 1)
    vae_err(c->err, "checkpoint %s: attribute %s/%s has %lld values, expected %s%d", c->path, c->obj,
            name, n, count ? "at most " : "", count ? max : 1);
  else if (n > 0 && cls != H5T_INTEGER && !(k == NUM_FLOAT && cls == H5T_FLOAT))
    vae_err(c->err, "checkpoint %s: attribute %s/%s must be %s", c->path, c->obj, name,
            k == NUM_FLOAT ? "a number" : "an integer");
  else if (n == 0)
    rc = 0;
  else if (!vae_h5_type_is_standard(ft))
    vae_err(c->err, "checkpoint %s: attribute %s/%s has a malformed numeric type; the file is damaged",
            c->path, c->obj, name);
  else if (H5Aread(a, k == NUM_FLOAT ? H5T_NATIVE_DOUBLE : uns ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG,
                   k == NUM_FLOAT ? out : uns ? (void *)u : (void *)s) < 0)
    vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged", c->path,
            c->obj, name);
  else {
    rc = 0;
    for (long long i = 0; i < n && k != NUM_FLOAT && rc == 0; i++) {
      if (k == NUM_U64 && !uns && s[i] < 0)
        rc = vae_err(c->err, "checkpoint %s: attribute %s/%s is negative (%lld)", c->path, c->obj,
                     name, s[i]);
      else if (k == NUM_INT && uns && u[i] > (unsigned long long)LLONG_MAX)
        rc = vae_err(c->err, "checkpoint %s: attribute %s/%s is too large (%llu)", c->path, c->obj,
                     name, u[i]);
      else if (k == NUM_U64)
        ((uint64_t *)out)[i] = uns ? u[i] : (uint64_t)s[i];
      else
        ((long long *)out)[i] = uns ? (long long)u[i] : s[i];
    }
  }
  if (count) *count = (int)n;
  H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

/* One integer in [lo, hi]. */
static int get_int(hid_t loc, const char *name, long long lo, long long hi, long long *v, const rctx *c) {
  if (get_nums(loc, name, NUM_INT, v, 1, NULL, c) < 0) return -1;
  if (*v < lo || *v > hi)
    return vae_err(c->err, "checkpoint %s: attribute %s/%s is %lld, expected %lld to %lld", c->path,
                   c->obj, name, *v, lo, hi);
  return 0;
}

/* A string attribute, fixed-length or variable-length (h5py writes both), into out (n bytes). */
static int get_str(hid_t loc, const char *name, char *out, size_t n, const rctx *c) {
  hid_t a, ft;
  long long cnt;
  if (attr_open(loc, name, c, &a, &ft, &cnt) < 0) return -1;
  int rc = -1;
  if (H5Tget_class(ft) != H5T_STRING || cnt != 1) {
    vae_err(c->err, "checkpoint %s: attribute %s/%s must be a single string", c->path, c->obj, name);
  } else {
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (mt < 0) VAE_FAIL("H5Tcopy");
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (H5Tis_variable_str(ft) > 0) {
      char *s = NULL;
      H5Tset_size(mt, H5T_VARIABLE);
      if (H5Aread(a, mt, &s) >= 0) {
        rc = snprintf(out, n, "%s", s ? s : "") >= (int)n ? 1 : 0;
        H5free_memory(s);
      }
    } else {
      size_t len = H5Tget_size(ft);
      char *s = callocCheck(len + 1, 1);
      H5Tset_size(mt, len + 1);
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      if (H5Aread(a, mt, s) >= 0) rc = snprintf(out, n, "%s", s) >= (int)n ? 1 : 0;
      free(s);
    }
    H5Tclose(mt);
    if (rc < 0)
      vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged", c->path,
              c->obj, name);
    if (rc > 0)
      rc = vae_err(c->err, "checkpoint %s: attribute %s/%s is longer than %zu bytes", c->path, c->obj,
                   name, n - 1);
  }
  H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

/* ======================================================================================
 * Reading the header: root attributes, /model, /config, /data
 * ====================================================================================== */

/* Opens group /name of a checkpoint, or says it is not a group. */
static hid_t open_group(hid_t fid, const char *name, const char *path, char *err) {
  hid_t g = H5Gopen2(fid, name, H5P_DEFAULT);
  if (g < 0) vae_err(err, "checkpoint %s: /%s is not a group; " SCHEMA_HINT, path, name);
  return g;
}

static int read_model_attrs(hid_t fid, const char *path, vae_config *cfg, char *err) {
  if (H5Lexists(fid, "model", H5P_DEFAULT) <= 0)
    return vae_err(err, "checkpoint %s has no /model group; " SCHEMA_HINT, path);
  hid_t g = open_group(fid, "model", path, err);
  if (g < 0) return -1;
  rctx c = {path, "/model", err};
  vae_config r;
  memset(&r, 0, sizeof r);
  char dec[64];
  double sigma, lvmin;
  long long latent, hidden[VAE_MAX_HIDDEN], shape[3];
  int nshape = 0;
  int rc = -1;
  if (get_str(g, "decoder", dec, sizeof dec, &c) < 0 ||
      get_nums(g, "sigma", NUM_FLOAT, &sigma, 1, NULL, &c) < 0 ||
      get_nums(g, "logvar_min", NUM_FLOAT, &lvmin, 1, NULL, &c) < 0 ||
      get_int(g, "latent", 1, INT_MAX, &latent, &c) < 0 ||
      get_nums(g, "hidden", NUM_INT, hidden, VAE_MAX_HIDDEN, &r.n_hidden, &c) < 0 ||
      get_nums(g, "input_shape", NUM_INT, shape, 3, &nshape, &c) < 0)
    goto done;
  if (vae_decoder_parse(dec, &r.decoder) < 0) {
    vae_err(err, "checkpoint %s: /model/decoder is '%s', expected bernoulli, gaussian or "
            "gaussian-learned", path, dec);
    goto done;
  }
  if (nshape != 3) {
    vae_err(err, "checkpoint %s: /model/input_shape has %d values, expected 3 (H, W, C)", path, nshape);
    goto done;
  }
  for (int i = 0; i < 3; i++)
    if (shape[i] < 1 || shape[i] > INT_MAX) {
      vae_err(err, "checkpoint %s: /model/input_shape holds %lld, expected positive sizes", path,
              shape[i]);
      goto done;
    }
  for (int i = 0; i < r.n_hidden; i++) {
    if (hidden[i] < 1 || hidden[i] > INT_MAX) {
      vae_err(err, "checkpoint %s: /model/hidden holds %lld, expected positive widths", path, hidden[i]);
      goto done;
    }
    r.hidden[i] = (int)hidden[i];
  }
  r.in_h = (int)shape[0];
  r.in_w = (int)shape[1];
  r.in_c = (int)shape[2];
  r.latent = (int)latent;
  r.sigma = (float)sigma;
  r.logvar_min = (float)lvmin;
  char msg[VAE_ERR_LEN];
  if (vae_config_validate(&r, msg) < 0) {
    vae_err(err, "checkpoint %s: /model attributes describe an invalid model: %s", path, msg);
    goto done;
  }
  *cfg = r;
  rc = 0;
done:
  H5Gclose(g);
  return rc;
}

static int read_opts(hid_t fid, const char *path, vae_train_opts *o, char *err) {
  hid_t g = open_group(fid, "config", path, err);
  if (g < 0) return -1;
  rctx c = {path, "/config", err};
  int rc = 0;
  for (size_t i = 0; i < N_OPT_FIELDS && rc == 0; i++) {
    const opt_field *f = &opt_fields[i];
    char *p = (char *)o + f->off;
    long long ll;
    char s[16];
    switch (f->kind) {
      case F_STR: rc = get_str(g, f->name, p, VAE_PATH_LEN, &c); break;
      case F_INT:
        rc = get_int(g, f->name, INT_MIN, INT_MAX, &ll, &c);
        if (rc == 0) *(int *)p = (int)ll;
        break;
      case F_LONG:
        rc = get_int(g, f->name, LONG_MIN, LONG_MAX, &ll, &c);
        if (rc == 0) *(long *)p = (long)ll;
        break;
      case F_DOUBLE: rc = get_nums(g, f->name, NUM_FLOAT, p, 1, NULL, &c); break;
      case F_U64: rc = get_nums(g, f->name, NUM_U64, p, 1, NULL, &c); break;
      case F_LR_SCALE:
        rc = get_str(g, f->name, s, sizeof s, &c);
        if (rc < 0) break;
        unsigned k = 0;
        while (k < 3 && strcmp(s, lr_scale_names[k]) != 0) k++;
        if (k == 3)
          rc = vae_err(err, "checkpoint %s: /config/lr_scale is '%s', expected none, linear or sqrt",
                       path, s);
        else
          *(vae_lr_scale *)p = (vae_lr_scale)k;
        break;
    }
  }
  H5Gclose(g);
  return rc;
}

static int read_data_attrs(hid_t fid, const char *path, vae_ckpt_state *st, char *err) {
  hid_t g = open_group(fid, "data", path, err);
  if (g < 0) return -1;
  rctx c = {path, "/data", err};
  long long n, shape[VAE_CKPT_MAX_DATA_RANK];
  int rank = 0, rc = -1;
  if (get_str(g, "file", st->data_file, sizeof st->data_file, &c) == 0 &&
      get_str(g, "dataset", st->data_dataset, sizeof st->data_dataset, &c) == 0 &&
      get_int(g, "n", 0, LLONG_MAX, &n, &c) == 0 &&
      get_nums(g, "shape", NUM_INT, shape, VAE_CKPT_MAX_DATA_RANK, &rank, &c) == 0 &&
      get_str(g, "dtype", st->data_dtype, sizeof st->data_dtype, &c) == 0) {
    if (rank < 1 || shape[0] != n)
      vae_err(err, "checkpoint %s: /data/shape must start with n = %lld (it has %d values)", path, n,
              rank);
    else if (strcmp(st->data_dtype, "uint8") && strcmp(st->data_dtype, "float32") &&
             strcmp(st->data_dtype, "float64"))
      vae_err(err, "checkpoint %s: /data/dtype is '%s', expected uint8, float32 or float64", path,
              st->data_dtype);
    else
      rc = 0;
  }
  if (rc == 0) {
    st->data_n = n;
    st->data_rank = rank;
    for (int i = 0; i < rank; i++) st->data_shape[i] = shape[i];
  }
  H5Gclose(g);
  return rc;
}

static int read_header(hid_t fid, const char *path, vae_config *cfg, vae_ckpt_state *st, char *err) {
  rctx c = {path, "", err};
  long long ver, step, epoch, estep, ws;
  if (H5Aexists(fid, "format_version") <= 0)
    return vae_err(err, "checkpoint %s has no format_version attribute: it is not a vae_mpi checkpoint "
                   "(schema: docs/CHECKPOINT.md)", path);
  if (get_int(fid, "format_version", LLONG_MIN, LLONG_MAX, &ver, &c) < 0) return -1;
  if (ver != VAE_CHECKPOINT_FORMAT)
    return vae_err(err, "checkpoint %s has format_version %lld, this vae_mpi reads version %d: use the "
                   "vae_mpi that wrote it", path, ver, VAE_CHECKPOINT_FORMAT);
  memset(st, 0, sizeof *st);
  if (get_int(fid, "step", 0, LONG_MAX, &step, &c) < 0 || get_int(fid, "epoch", 0, LONG_MAX, &epoch, &c) < 0 ||
      get_int(fid, "epoch_step", 0, step, &estep, &c) < 0 ||
      get_nums(fid, "seed", NUM_U64, &st->seed, 1, NULL, &c) < 0 ||
      get_int(fid, "world_size", 1, INT_MAX, &ws, &c) < 0)
    return -1;
  st->step = (long)step;
  st->epoch = (long)epoch;
  st->epoch_step = (long)estep;
  st->world_size = (int)ws;
  /* The epoch in progress: optional (a checkpoint written by other tools starts the epoch's sums at 0). */
  long long esteps = 0, eskip = 0;
  double sums[3] = {0, 0, 0};
  const char *sum_names[3] = {"epoch_recon_sum", "epoch_kl_sum", "epoch_images"};
  if ((H5Aexists(fid, "epoch_steps") > 0 && get_int(fid, "epoch_steps", 0, LONG_MAX, &esteps, &c) < 0) ||
      (H5Aexists(fid, "epoch_skipped") > 0 && get_int(fid, "epoch_skipped", 0, LONG_MAX, &eskip, &c) < 0))
    return -1;
  for (int i = 0; i < 3; i++) {
    if (H5Aexists(fid, sum_names[i]) > 0 && get_nums(fid, sum_names[i], NUM_FLOAT, &sums[i], 1, NULL, &c) < 0)
      return -1;
    if (!isfinite(sums[i]) || sums[i] < (i == 2 ? 0 : -1e300))
      return vae_err(err, "checkpoint %s: attribute %s is not a finite number", path, sum_names[i]);
  }
  st->epoch_steps_total = (long)esteps;
  st->epoch_skipped = (long)eskip;
  st->epoch_recon_sum = sums[0];
  st->epoch_kl_sum = sums[1];
  st->epoch_count = sums[2];
  if (read_model_attrs(fid, path, cfg, err) < 0) return -1;
  st->has_opts = H5Lexists(fid, "config", H5P_DEFAULT) > 0;
  if (st->has_opts && read_opts(fid, path, &st->opts, err) < 0) return -1;
  st->opts.model = *cfg;
  st->has_data = H5Lexists(fid, "data", H5P_DEFAULT) > 0;
  if (st->has_data && read_data_attrs(fid, path, st, err) < 0) return -1;
  return 0;
}

/* ======================================================================================
 * Reading tensors
 * ====================================================================================== */

/* H5Lexists checks only the last component: walk the path so a missing group is "missing". */
static int path_exists(hid_t fid, const char *p) {
  char buf[160];
  snprintf(buf, sizeof buf, "%s", p);
  for (char *s = buf;; s++) {
    if (*s == '/' || *s == 0) {
      char ch = *s;
      *s = 0;
      if (H5Lexists(fid, buf, H5P_DEFAULT) <= 0) return 0;
      if (!ch) return 1;
      *s = ch;
    }
  }
}

static herr_t count_datasets_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  if (info->type != H5L_TYPE_HARD) return 0;
  hid_t o = H5Oopen(g, name, H5P_DEFAULT);
  if (o < 0) return -1;
  if (H5Iget_type(o) == H5I_DATASET) (*(int *)data)++;
  H5Oclose(o);
  return 0;
}

static void shape_str(char *buf, size_t n, int rank, const hsize_t *d) {
  if (rank == 1) snprintf(buf, n, "(%llu)", (unsigned long long)d[0]);
  else if (rank == 2) snprintf(buf, n, "(%llu, %llu)", (unsigned long long)d[0], (unsigned long long)d[1]);
  else snprintf(buf, n, "(%d dimensions)", rank);
}

static int read_one_tensor(hid_t fid, const char *path, const char *name, const vae_tensor *t,
                           float *out, char *err) {
  if (!path_exists(fid, name))
    return vae_err(err, "checkpoint %s has no /%s; the file is incomplete or for another model "
                   "(schema: docs/CHECKPOINT.md)", path, name);
  hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
  if (d < 0) return vae_err(err, "checkpoint %s: /%s is not a dataset", path, name);
  hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
  hsize_t dims[8] = {0};
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  if (rank >= 0 && rank <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
  hsize_t want[2] = {(hsize_t)t->dims[0], (hsize_t)t->dims[1]};
  char got_s[64], want_s[64];
  shape_str(got_s, sizeof got_s, rank, dims);
  shape_str(want_s, sizeof want_s, t->ndim, want);
  int rc = -1;
  if (ft < 0 || sp < 0)
    vae_err(err, "checkpoint %s: /%s cannot be read; the file is damaged", path, name);
  else if (H5Tget_class(ft) != H5T_FLOAT)
    vae_err(err, "checkpoint %s: /%s is not floating point; tensors must be float32", path, name);
  else if (rank != t->ndim || dims[0] != want[0] || (rank == 2 && dims[1] != want[1]))
    vae_err(err, "checkpoint %s: /%s has shape %s, expected %s for the model its /model attributes "
            "describe", path, name, got_s, want_s);
  else if (!vae_h5_type_is_standard(ft))
    vae_err(err, "checkpoint %s: /%s has a malformed float type; the file is damaged", path, name);
  else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    vae_err(err, "checkpoint %s: /%s cannot be read; the file is damaged", path, name);
  else {
    size_t k;
    float bad;
    rc = 0;
    if (scan_finite(out, tensor_len(t), &k, &bad) < 0)
      rc = vae_err(err, "checkpoint %s: /%s holds a non-finite value (%g at element %zu); resume "
                   "from an older checkpoint", path, name, (double)bad, k);
  }
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Dclose(d);
  return rc;
}

/* Every tensor of the layout under group grp into buf, and nothing else in grp. */
static int read_tensors(hid_t fid, const char *path, const char *grp, const vae_config *cfg,
                        const vae_tensor *t, int nt, float *buf, char *err) {
  char name[128];
  for (int i = 0; i < nt; i++) {
    if (snprintf(name, sizeof name, "%s/%s", grp, t[i].name) >= (int)sizeof name)
      VAE_FAIL("tensor name %s/%s too long", grp, t[i].name);
    if (read_one_tensor(fid, path, name, &t[i], buf + t[i].offset, err) < 0) return -1;
  }
  int count = 0;
  hid_t g = H5Gopen2(fid, grp, H5P_DEFAULT);
  herr_t rc = g < 0 ? -1 : H5Lvisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_datasets_cb, &count);
  if (g >= 0) H5Gclose(g);
  if (rc < 0) return vae_err(err, "checkpoint %s: /%s cannot be listed; the file is damaged", path, grp);
  if (count != nt) {
    char desc[256];
    vae_describe(cfg, desc, sizeof desc);
    return vae_err(err, "checkpoint %s: /%s holds %d datasets, a %s %s model has %d; remove the extra "
                   "ones or fix the /model attributes", path, grp, count, desc,
                   vae_decoder_name(cfg->decoder), nt);
  }
  return 0;
}

/* Nothing in a checkpoint may reach outside its file: vae_mpi writes only groups, hard links and
 * datasets stored in the file. Refuses soft, external and user-defined links (before anything
 * follows them), and datasets whose data lives elsewhere (external storage, virtual datasets). */
typedef struct {
  const char *path;
  char *err;
} outside_ctx;

static herr_t refuse_outside_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  const outside_ctx *c = data;
  if (info->type != H5L_TYPE_HARD) {
    vae_err(c->err, "checkpoint %s: /%s is a%s link; a vae_mpi checkpoint holds its tensors itself "
            "(links are never followed): use the checkpoint vae_mpi wrote", c->path, name,
            info->type == H5L_TYPE_SOFT ? " soft" : info->type == H5L_TYPE_EXTERNAL ? "n external"
                                                                                   : " user-defined");
    return 1;
  }
  hid_t o = H5Oopen(g, name, H5P_DEFAULT);
  if (o < 0) {
    vae_err(c->err, "cannot read checkpoint %s: /%s cannot be opened; the file is damaged", c->path, name);
    return 1;
  }
  herr_t rc = 0;
  if (H5Iget_type(o) == H5I_DATASET) {
    hid_t dcpl = H5Dget_create_plist(o);
    if (dcpl < 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL || H5Pget_external_count(dcpl) != 0) {
      vae_err(c->err, "checkpoint %s: /%s keeps its data outside the dataset (a virtual dataset or "
              "external storage); use the checkpoint vae_mpi wrote", c->path, name);
      rc = 1;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
  }
  H5Oclose(o);
  return rc;
}

static int refuse_outside(hid_t fid, const char *path, char *err) {
  outside_ctx c = {path, err};
  herr_t rc = H5Lvisit(fid, H5_INDEX_NAME, H5_ITER_NATIVE, refuse_outside_cb, &c);
  if (rc > 0) return -1;
  if (rc < 0) return vae_err(err, "cannot read checkpoint %s: its groups cannot be listed; the file is damaged", path);
  return 0;
}

/* Opens a checkpoint read-only with a precise message for a missing, empty, foreign or truncated
 * file, or one that reaches outside itself. Filter plugins are never loaded (code from outside). */
static int open_checkpoint(const char *path, hid_t *fid, char *err) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return vae_err(err, "cannot read checkpoint %s: %s", path,
                   errno == ENOENT ? "no such file" : strerror(errno));
  if (!S_ISREG(sb.st_mode)) return vae_err(err, "checkpoint %s is not a regular file", path);
  if (sb.st_size == 0)
    return vae_err(err, "checkpoint %s is empty (0 bytes); it was never completed: use an older "
                   "checkpoint", path);
  vae_h5_quiet();
  if (H5PLset_loading_state(0) < 0) VAE_FAIL("H5PLset_loading_state");
  H5Eclear2(H5E_DEFAULT);
  htri_t is = H5Fis_hdf5(path);
  h5_diag d = h5_diagnose();
  if (is == 0)
    return vae_err(err, "checkpoint %s is not an HDF5 file; pass a checkpoint.h5 written by vae_mpi",
                   path);
  if (is > 0) {
    *fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid >= 0) {
      if (refuse_outside(*fid, path, err) == 0) return 0;
      H5Fclose(*fid);
      return -1;
    }
    d = h5_diagnose();
  }
  if (d.truncated)
    return vae_err(err, "checkpoint %s is truncated (%lld bytes, shorter than its header says): it "
                   "was cut short by a crash or a full disk; use an older checkpoint",
                   path, (long long)sb.st_size);
  return vae_err(err, "cannot read checkpoint %s: HDF5 cannot open it (%s); the file is damaged",
                 path, d.errnum ? strerror(d.errnum) : "corrupt metadata");
}

int vae_checkpoint_read(const char *path, vae_config *cfg, float **params, float **m, float **v,
                        vae_ckpt_state *st, char *err) {
  hid_t fid;
  if (open_checkpoint(path, &fid, err) < 0) return -1;
  vae_ckpt_state *s = callocCheck(1, sizeof *s);
  vae_config c;
  float *bufs[3] = {NULL, NULL, NULL};
  int rc = read_header(fid, path, &c, s, err);
  if (rc == 0) {
    vae_tensor t[VAE_MAX_TENSORS];
    int nt = vae_tensors(&c, t);
    size_t np = vae_num_params(&c);
    int has_opt = H5Lexists(fid, "optimizer", H5P_DEFAULT) > 0;
    const char *grp[3] = {"model", "optimizer/m", "optimizer/v"};
    for (int b = 0; b < (has_opt ? 3 : 1) && rc == 0; b++) {
      bufs[b] = mallocCheck(np * sizeof(float));
      rc = read_tensors(fid, path, grp[b], &c, t, nt, bufs[b], err);
    }
  }
  H5Fclose(fid);
  H5Eclear2(H5E_DEFAULT);
  if (rc < 0) {
    for (int b = 0; b < 3; b++) free(bufs[b]);
    free(s);
    return -1;
  }
  *cfg = c;
  *params = bufs[0];
  *m = bufs[1];
  *v = bufs[2];
  if (st) *st = *s;
  free(s);
  return 0;
}

/* ======================================================================================
 * Matching a checkpoint's model against a run's
 * ====================================================================================== */

static void append(char *buf, size_t n, const char *sep, const char *s) {
  size_t used = strlen(buf);
  if (used < n) snprintf(buf + used, n - used, "%s%s", used ? sep : "", s);
}

static void hidden_str(const vae_config *c, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < c->n_hidden && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%d", i ? "," : "", c->hidden[i]);
  if (c->n_hidden == 0) snprintf(buf, n, "(none)");
}

int vae_checkpoint_match(const vae_config *ck, const vae_config *want, char *err) {
  char diffs[VAE_ERR_LEN] = "", fixes[VAE_ERR_LEN] = "", a[256], b[256], line[600];
  if (ck->in_h != want->in_h || ck->in_w != want->in_w || ck->in_c != want->in_c) {
    snprintf(line, sizeof line, "checkpoint was trained on %dx%dx%d images, this run's data has "
             "%dx%dx%d", ck->in_h, ck->in_w, ck->in_c, want->in_h, want->in_w, want->in_c);
    append(diffs, sizeof diffs, "; ", line);
    append(fixes, sizeof fixes, ", ", "the --data it was trained on");
  }
  int same_hidden = ck->n_hidden == want->n_hidden;
  for (int i = 0; same_hidden && i < ck->n_hidden; i++) same_hidden = ck->hidden[i] == want->hidden[i];
  if (!same_hidden) {
    hidden_str(ck, a, sizeof a);
    hidden_str(want, b, sizeof b);
    snprintf(line, sizeof line, "checkpoint has hidden %s, this run asks for %s", a, b);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--hidden %s", a);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (ck->latent != want->latent) {
    snprintf(line, sizeof line, "checkpoint has latent %d, this run asks for %d", ck->latent, want->latent);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--latent %d", ck->latent);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (ck->decoder != want->decoder) {
    snprintf(line, sizeof line, "checkpoint has decoder %s, this run asks for %s",
             vae_decoder_name(ck->decoder), vae_decoder_name(want->decoder));
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--decoder %s", vae_decoder_name(ck->decoder));
    append(fixes, sizeof fixes, ", ", line);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN && ck->sigma != want->sigma) {
    /* sigma only enters the loss of the fixed-sigma gaussian decoder */
    snprintf(line, sizeof line, "checkpoint has sigma %g, this run asks for %g", (double)ck->sigma,
             (double)want->sigma);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--sigma %g", (double)ck->sigma);
    append(fixes, sizeof fixes, ", ", line);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN_LEARNED && ck->logvar_min != want->logvar_min) {
    snprintf(line, sizeof line, "checkpoint has logvar_min %g, this run asks for %g",
             (double)ck->logvar_min, (double)want->logvar_min);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--logvar-min %g", (double)ck->logvar_min);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (!diffs[0]) return 0;
  return vae_err(err, "%s: pass %s or start a fresh --out", diffs, fixes);
}

/* ======================================================================================
 * --resume auto and --keep
 * ====================================================================================== */

static void skip_note(char *notes, size_t len, const char *path, const char *why) {
  if (!notes) {
    fprintf(stderr, "vae_mpi: warning: skipping unreadable checkpoint %s: %s\n", path, why);
    return;
  }
  size_t used = strlen(notes);
  if (used + 1 < len)
    snprintf(notes + used, len - used, "skipping unreadable checkpoint %s: %s\n", path, why);
}

typedef struct {
  long step;
  int is_main;
  char path[VAE_PATH_LEN];
} candidate;

/* Highest step first; checkpoint.h5 before a numbered copy of the same step. */
static int cmp_candidate(const void *pa, const void *pb) {
  const candidate *a = pa, *b = pb;
  if (a->step != b->step) return (a->step < b->step) - (a->step > b->step);
  return b->is_main - a->is_main;
}

int vae_checkpoint_find_latest(const char *dir, char *path_out, size_t n, char *notes,
                               size_t notes_len, char *err) {
  if (n) path_out[0] = 0;
  if (notes && notes_len) notes[0] = 0;
  long *steps;
  int count, has_main;
  if (list_checkpoints(dir, &steps, &count, &has_main, err) < 0) return -1;
  int total = count + has_main;
  candidate *c = callocCheck((size_t)(total ? total : 1), sizeof *c);
  for (int i = 0; i < total; i++) {
    c[i].is_main = i == count;
    if (c[i].is_main) snprintf(c[i].path, VAE_PATH_LEN, "%s/" MAIN_NAME, dir);
    else snprintf(c[i].path, VAE_PATH_LEN, "%s/checkpoint-%ld.h5", dir, steps[i]);
  }
  free(steps);
  /* Cheap pass: header only, for the stored step (the name of checkpoint.h5 does not say it). */
  char why[VAE_ERR_LEN];
  vae_ckpt_state *st = callocCheck(1, sizeof *st);
  int good = 0;
  for (int i = 0; i < total; i++) {
    hid_t fid;
    vae_config cfg;
    int ok = open_checkpoint(c[i].path, &fid, why) == 0;
    if (ok) {
      ok = read_header(fid, c[i].path, &cfg, st, why) == 0;
      H5Fclose(fid);
      H5Eclear2(H5E_DEFAULT);
    }
    if (!ok) {
      skip_note(notes, notes_len, c[i].path, why);
      continue;
    }
    c[i].step = st->step;
    if (good != i) c[good] = c[i];
    good++;
  }
  free(st);
  qsort(c, (size_t)good, sizeof *c, cmp_candidate);
  /* Full pass in that order: the first that loads completely wins. */
  int rc = 0;
  for (int i = 0; i < good; i++) {
    vae_config cfg;
    float *p, *m, *v;
    if (vae_checkpoint_read(c[i].path, &cfg, &p, &m, &v, NULL, why) < 0) {
      skip_note(notes, notes_len, c[i].path, why);
      continue;
    }
    free(p);
    free(m);
    free(v);
    if (strlen(c[i].path) >= n)
      rc = vae_err(err, "checkpoint path %s is longer than %zu bytes", c[i].path, n);
    else
      snprintf(path_out, n, "%s", c[i].path);
    break;
  }
  free(c);
  return rc;
}

/* Byte copy of src to dst (created), fsync'ed: for filesystems without hard links. */
static int copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY);
  if (in < 0) return errno;
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (out < 0) {
    int e = errno;
    close(in);
    return e;
  }
  char *buf = mallocCheck(1 << 20);
  int e = 0;
  for (;;) {
    ssize_t r = read(in, buf, 1 << 20);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      e = r < 0 ? errno : 0;
      break;
    }
    for (ssize_t off = 0; off < r && !e;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0 && errno != EINTR) e = errno;
      if (w > 0) off += w;
    }
    if (e) break;
  }
  free(buf);
  if (!e && fsync(out) != 0) e = errno;
  if (close(out) != 0 && !e) e = errno;
  close(in);
  return e;
}

int vae_checkpoint_rotate(const char *dir, long step, int keep, char *err) {
  if (keep < 0 || step < 0) return vae_err(err, "--keep %d (step %ld) must not be negative", keep, step);
  char main_path[VAE_PATH_LEN], num[VAE_PATH_LEN], tmp[VAE_PATH_LEN];
  if (snprintf(main_path, sizeof main_path, "%s/" MAIN_NAME, dir) >= (int)sizeof main_path ||
      snprintf(num, sizeof num, "%s/checkpoint-%ld.h5", dir, step) >= (int)sizeof num ||
      snprintf(tmp, sizeof tmp, "%s/.checkpoint-%ld.h5.tmp-%ld", dir, step, (long)getpid()) >=
          (int)sizeof tmp)
    return vae_err(err, "checkpoint folder path %s is too long", dir);
  if (keep > 0) {
    /* link() refuses an existing name: link to a temporary, then rename over (atomic). */
    unlink(tmp);
    int e = link(main_path, tmp) == 0 ? 0 : errno;
    if (e == EPERM || e == EXDEV || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS)
      e = copy_file(main_path, tmp);
    if (!e && rename(tmp, num) != 0) e = errno;
    if (e) {
      unlink(tmp);
      return vae_err(err, "cannot keep checkpoint %s as %s: %s; %s", main_path, num, strerror(e),
                     write_hint(e));
    }
  }
  long *steps;
  int count, has_main;
  if (list_checkpoints(dir, &steps, &count, &has_main, err) < 0) return -1;
  qsort(steps, (size_t)count, sizeof *steps, cmp_long_desc);
  /* This step always stays (it may be lower than stale numbered files of an abandoned run). */
  int kept = keep > 0 ? 1 : 0, rc = 0;
  for (int i = 0; i < count && rc == 0; i++) {
    if (keep > 0 && steps[i] == step) continue;
    if (kept < keep) {
      kept++;
      continue;
    }
    snprintf(num, sizeof num, "%s/checkpoint-%ld.h5", dir, steps[i]);
    if (unlink(num) != 0 && errno != ENOENT)
      rc = vae_err(err, "cannot delete old checkpoint %s: %s; delete it by hand or raise --keep", num,
                   strerror(errno));
  }
  free(steps);
  int e = fsync_path(dir, O_RDONLY | O_DIRECTORY);
  if (rc == 0 && e)
    rc = vae_err(err, "cannot fsync checkpoint folder %s: %s; %s", dir, strerror(e), write_hint(e));
  return rc;
}
