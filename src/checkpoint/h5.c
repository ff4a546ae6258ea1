/* checkpoint/h5.c: the checkpoint schema's HDF5 attribute codec (put and checked get of each
 * attribute kind), the tables write and read share (/config fields, tensor groups), finite-value
 * scanning, and reading HDF5's silenced error stack. Internal: declared in src/checkpoint/internal.h.
 * Must never: open or close a file, call MPI, or let HDF5 print its error stack. */
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "internal.h"

/* ======================================================================================
 * HDF5 diagnostics
 * ====================================================================================== */

static herr_t diag_cb(unsigned n, const H5E_error2_t *e, void *data) {
  vae_ck_diag *d = data;
  if (e->desc) {
    const char *p = strstr(e->desc, "errno = ");
    if (p && !d->errnum) d->errnum = (int)strtol(p + 8, NULL, 10);
    if (strstr(e->desc, "truncated")) d->truncated = 1;
  }
  return 0;
}

vae_ck_diag vae_ck_diagnose(void) {
  vae_ck_diag d = {0, 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, diag_cb, &d);
  H5Eclear2(H5E_DEFAULT);
  return d;
}

/* ======================================================================================
 * Tensors
 * ====================================================================================== */

const char *const vae_ck_tensor_groups[3] = {"model", "optimizer/m", "optimizer/v"};

void vae_ck_tensor_path(char *name, const char *grp, const vae_tensor *t) {
  if (snprintf(name, VAE_CK_TENSOR_PATH_LEN, "%s/%s", grp, t->name) >= VAE_CK_TENSOR_PATH_LEN)
    VAE_FAIL("tensor name %s/%s too long", grp, t->name);
}

int vae_ck_scan_finite(const float *p, size_t n, size_t *where, float *val) {
  for (size_t k = 0; k < n; k++)
    if (!isfinite(p[k])) {
      *where = k;
      *val = p[k];
      return -1;
    }
  return 0;
}

/* ======================================================================================
 * The /config table
 * ====================================================================================== */

#define OPT(name, kind, member) \
  { name, VAE_CK_F_##kind, offsetof(vae_train_opts, member), 0 }
#define OPT_ADDED(name, kind, member) \
  { name, VAE_CK_F_##kind, offsetof(vae_train_opts, member), 1 }
const vae_ck_opt_field vae_ck_opt_fields[] = {
    OPT("data", STR, data),
    OPT("dataset", STR, dataset),
    OPT("test_dataset", STR, test_dataset),
    OPT("test_dataset_given", INT, test_dataset_given),
    OPT("out", STR, out),
    OPT("resume", STR, resume),
    OPT("epochs", LONG, epochs),
    OPT_ADDED("max_steps", LONG, max_steps),
    OPT("batch_size", INT, batch_size),
    OPT("lr", DOUBLE, lr),
    OPT("beta1", DOUBLE, beta1),
    OPT("beta2", DOUBLE, beta2),
    OPT("adam_eps", DOUBLE, adam_eps),
    OPT("lr_warmup_steps", LONG, lr_warmup_steps),
    OPT("lr_scale", LR_SCALE, lr_scale),
    OPT("kl_warmup_steps", LONG, kl_warmup_steps),
    OPT("beta", DOUBLE, beta),
    OPT("clip_grad_norm", DOUBLE, clip_grad_norm),
    OPT("seed", U64, seed),
    OPT("threads", INT, threads),
    OPT("log_every", LONG, log_every),
    OPT("checkpoint_every", LONG, checkpoint_every),
    OPT("keep", INT, keep),
    OPT("no_images", INT, no_images),
    OPT("max_skips", INT, max_skips),
};
#undef OPT
#undef OPT_ADDED
const size_t vae_ck_n_opt_fields = sizeof vae_ck_opt_fields / sizeof vae_ck_opt_fields[0];

/* ======================================================================================
 * Attribute writing
 * ====================================================================================== */

herr_t vae_ck_put_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, hsize_t len,
                       const void *buf) {
  hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &len, NULL);
  if (sp < 0) return -1;
  hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, buf);
  if (a >= 0 && H5Aclose(a) < 0) rc = -1;
  H5Sclose(sp);
  return rc;
}

herr_t vae_ck_put_str(hid_t loc, const char *name, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  herr_t rc = -1;
  if (H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
    rc = vae_ck_put_attr(loc, name, t, t, 0, 0, &s);
  H5Tclose(t);
  return rc;
}

herr_t vae_ck_put_i32(hid_t loc, const char *name, int v) {
  return vae_ck_put_attr(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, 0, 0, &v);
}
herr_t vae_ck_put_i64(hid_t loc, const char *name, long long v) {
  return vae_ck_put_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, 0, &v);
}
herr_t vae_ck_put_u64(hid_t loc, const char *name, uint64_t v) {
  unsigned long long u = v;
  return vae_ck_put_attr(loc, name, H5T_STD_U64LE, H5T_NATIVE_ULLONG, 0, 0, &u);
}
herr_t vae_ck_put_f64(hid_t loc, const char *name, double v) {
  return vae_ck_put_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, 0, &v);
}
herr_t vae_ck_put_f32(hid_t loc, const char *name, float v) {
  return vae_ck_put_attr(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, 0, &v);
}

/* ======================================================================================
 * Attribute reading
 * ====================================================================================== */

/* Opens attribute name; its type and element count (a scalar is 1, an H5S_NULL space 0). */
static int attr_open(hid_t loc, const char *name, const vae_ck_rctx *c, hid_t *a, hid_t *ft, long long *n) {
  if (H5Aexists(loc, name) <= 0)
    return vae_err(c->err, "checkpoint %s: attribute %s/%s is missing; " VAE_CK_SCHEMA_HINT, c->path, c->obj,
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
    return vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged", c->path,
                   c->obj, name);
  }
  if (rank > 1) {
    H5Tclose(*ft);
    H5Aclose(*a);
    return vae_err(c->err,
                   "checkpoint %s: attribute %s/%s has %d dimensions, expected a scalar or "
                   "a 1-D array",
                   c->path, c->obj, name, rank);
  }
  return 0;
}

int vae_ck_get_nums(hid_t loc, const char *name, vae_ck_num_kind k, void *out, int max, int *count,
                    const vae_ck_rctx *c) {
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
    vae_err(c->err, "checkpoint %s: attribute %s/%s has %lld values, expected %s%d", c->path, c->obj, name, n,
            count ? "at most " : "", count ? max : 1);
  else if (n > 0 && cls != H5T_INTEGER && !(k == VAE_CK_NUM_FLOAT && cls == H5T_FLOAT))
    vae_err(c->err, "checkpoint %s: attribute %s/%s must be %s", c->path, c->obj, name,
            k == VAE_CK_NUM_FLOAT ? "a number" : "an integer");
  else if (n == 0)
    rc = 0;
  else if (!vae_h5_type_is_standard(ft))
    vae_err(c->err, "checkpoint %s: attribute %s/%s has a malformed numeric type; the file is damaged",
            c->path, c->obj, name);
  else if (H5Aread(a,
                   k == VAE_CK_NUM_FLOAT ? H5T_NATIVE_DOUBLE
                   : uns                 ? H5T_NATIVE_ULLONG
                                         : H5T_NATIVE_LLONG,
                   k == VAE_CK_NUM_FLOAT ? out
                   : uns                 ? (void *)u
                                         : (void *)s) < 0)
    vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged", c->path, c->obj,
            name);
  else {
    rc = 0;
    for (long long i = 0; i < n && k != VAE_CK_NUM_FLOAT && rc == 0; i++) {
      if (k == VAE_CK_NUM_U64 && !uns && s[i] < 0)
        rc =
            vae_err(c->err, "checkpoint %s: attribute %s/%s is negative (%lld)", c->path, c->obj, name, s[i]);
      else if (k == VAE_CK_NUM_INT && uns && u[i] > (unsigned long long)LLONG_MAX)
        rc = vae_err(c->err, "checkpoint %s: attribute %s/%s is too large (%llu)", c->path, c->obj, name,
                     u[i]);
      else if (k == VAE_CK_NUM_U64)
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

int vae_ck_get_int(hid_t loc, const char *name, long long lo, long long hi, long long *v,
                   const vae_ck_rctx *c) {
  if (vae_ck_get_nums(loc, name, VAE_CK_NUM_INT, v, 1, NULL, c) < 0) return -1;
  if (*v < lo || *v > hi)
    return vae_err(c->err, "checkpoint %s: attribute %s/%s is %lld, expected %lld to %lld", c->path, c->obj,
                   name, *v, lo, hi);
  return 0;
}

int vae_ck_get_str(hid_t loc, const char *name, char *out, size_t n, const vae_ck_rctx *c) {
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
      vae_err(c->err, "checkpoint %s: attribute %s/%s cannot be read; the file is damaged", c->path, c->obj,
              name);
    if (rc > 0)
      rc = vae_err(c->err, "checkpoint %s: attribute %s/%s is longer than %zu bytes", c->path, c->obj, name,
                   n - 1);
  }
  H5Tclose(ft);
  H5Aclose(a);
  return rc;
}
