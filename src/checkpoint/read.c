/* checkpoint/read.c: vae_checkpoint_read. Opens a checkpoint with a precise word for a missing,
 * empty, foreign or truncated file, then validates everything the schema (docs/CHECKPOINT.md)
 * says: the root attributes, /model, /config and /data, and every tensor's presence, type, shape
 * and finiteness, with no extra datasets.
 * Must never: call MPI (rank 0 alone runs this), write or rename any file, hand back a model that
 * failed validation or a non-finite value, or let HDF5 print its error stack. */
#include <H5PLpublic.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "error.h"
#include "internal.h"

/* ======================================================================================
 * Reading the header: root attributes, /model, /config, /data
 * ====================================================================================== */

/* Opens group /name of a checkpoint, or says it is not a group. */
static hid_t open_group(hid_t fid, const char *name, const char *path, char *err) {
  hid_t g = H5Gopen2(fid, name, H5P_DEFAULT);
  if (g < 0) vae_err(err, "checkpoint %s: /%s is not a group; " VAE_CK_SCHEMA_HINT, path, name);
  return g;
}

/* The conv model's attributes (docs/CHECKPOINT.md): absent `conv` is the MLP (every checkpoint written
 * before them); present, it needs kernel, stride and padding. */
_Static_assert(VAE_MAX_CONV <= VAE_MAX_HIDDEN, "vae_ck_get_nums reads at most VAE_MAX_HIDDEN values");
static int read_conv_attrs(hid_t g, const vae_ck_rctx *c, vae_config *r) {
  r->n_conv = 0;
  if (H5Aexists(g, "conv") <= 0) return 0;
  long long conv[VAE_MAX_CONV], k, s, p;
  if (vae_ck_get_nums(g, "conv", VAE_CK_NUM_INT, conv, VAE_MAX_CONV, &r->n_conv, c) < 0) return -1;
  for (int i = 0; i < r->n_conv; i++) {
    if (conv[i] < 1 || conv[i] > INT_MAX)
      return vae_err(c->err, "checkpoint %s: /model/conv holds %lld, expected positive channel counts",
                     c->path, conv[i]);
    r->conv[i] = (int)conv[i];
  }
  if (r->n_conv == 0) return 0;
  if (vae_ck_get_int(g, "kernel", 1, INT_MAX, &k, c) < 0 ||
      vae_ck_get_int(g, "stride", 1, INT_MAX, &s, c) < 0 ||
      vae_ck_get_int(g, "padding", 0, INT_MAX, &p, c) < 0)
    return -1;
  r->kernel = (int)k, r->stride = (int)s, r->padding = (int)p;
  return 0;
}

static int read_model_attrs(hid_t fid, const char *path, vae_config *cfg, char *err) {
  if (H5Lexists(fid, "model", H5P_DEFAULT) <= 0)
    return vae_err(err, "checkpoint %s has no /model group; " VAE_CK_SCHEMA_HINT, path);
  hid_t g = open_group(fid, "model", path, err);
  if (g < 0) return -1;
  vae_ck_rctx c = {path, "/model", err};
  vae_config r;
  memset(&r, 0, sizeof r);
  char dec[64];
  double sigma, lvmin;
  long long latent, hidden[VAE_MAX_HIDDEN], shape[3];
  int nshape = 0;
  int rc = -1;
  if (vae_ck_get_str(g, "decoder", dec, sizeof dec, &c) < 0 ||
      vae_ck_get_nums(g, "sigma", VAE_CK_NUM_FLOAT, &sigma, 1, NULL, &c) < 0 ||
      vae_ck_get_nums(g, "logvar_min", VAE_CK_NUM_FLOAT, &lvmin, 1, NULL, &c) < 0 ||
      vae_ck_get_int(g, "latent", 1, INT_MAX, &latent, &c) < 0 ||
      vae_ck_get_nums(g, "hidden", VAE_CK_NUM_INT, hidden, VAE_MAX_HIDDEN, &r.n_hidden, &c) < 0 ||
      vae_ck_get_nums(g, "input_shape", VAE_CK_NUM_INT, shape, 3, &nshape, &c) < 0 ||
      read_conv_attrs(g, &c, &r) < 0)
    goto done;
  if (vae_decoder_parse(dec, &r.decoder) < 0) {
    char names[128];
    vae_decoder_names(names, sizeof names, ", ", " or ");
    vae_err(err, "checkpoint %s: /model/decoder is '%s', expected %s", path, dec, names);
    goto done;
  }
  if (nshape != 3) {
    vae_err(err, "checkpoint %s: /model/input_shape has %d values, expected 3 (H, W, C)", path, nshape);
    goto done;
  }
  for (int i = 0; i < 3; i++)
    if (shape[i] < 1 || shape[i] > INT_MAX) {
      vae_err(err, "checkpoint %s: /model/input_shape holds %lld, expected positive sizes", path, shape[i]);
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
  vae_ck_rctx c = {path, "/config", err};
  int rc = 0;
  /* A field added to the configuration after format 1 was first written may be absent from a
   * checkpoint: it keeps the default `vae_mpi train` would use. Every other field is required. */
  vae_train_opts_default(o);
  for (size_t i = 0; i < vae_ck_n_opt_fields && rc == 0; i++) {
    const vae_ck_opt_field *f = &vae_ck_opt_fields[i];
    char *p = (char *)o + f->off;
    if (f->optional && H5Aexists(g, f->name) == 0) continue;
    long long ll;
    char s[16];
    switch (f->kind) {
      case VAE_CK_F_STR: rc = vae_ck_get_str(g, f->name, p, VAE_PATH_LEN, &c); break;
      case VAE_CK_F_INT:
        rc = vae_ck_get_int(g, f->name, INT_MIN, INT_MAX, &ll, &c);
        if (rc == 0) *(int *)p = (int)ll;
        break;
      case VAE_CK_F_LONG:
        rc = vae_ck_get_int(g, f->name, LONG_MIN, LONG_MAX, &ll, &c);
        if (rc == 0) *(long *)p = (long)ll;
        break;
      case VAE_CK_F_DOUBLE: rc = vae_ck_get_nums(g, f->name, VAE_CK_NUM_FLOAT, p, 1, NULL, &c); break;
      case VAE_CK_F_U64: rc = vae_ck_get_nums(g, f->name, VAE_CK_NUM_U64, p, 1, NULL, &c); break;
      case VAE_CK_F_LR_SCALE:
        rc = vae_ck_get_str(g, f->name, s, sizeof s, &c);
        if (rc < 0) break;
        if (vae_lr_scale_parse(s, (vae_lr_scale *)p) < 0) {
          char names[128];
          vae_lr_scale_names(names, sizeof names, ", ", " or ");
          rc = vae_err(err, "checkpoint %s: /config/lr_scale is '%s', expected %s", path, s, names);
        }
        break;
    }
  }
  H5Gclose(g);
  return rc;
}

static int read_data_attrs(hid_t fid, const char *path, vae_ckpt_state *st, char *err) {
  hid_t g = open_group(fid, "data", path, err);
  if (g < 0) return -1;
  vae_ck_rctx c = {path, "/data", err};
  long long n, shape[VAE_CKPT_MAX_DATA_RANK];
  int rank = 0, rc = -1;
  if (vae_ck_get_str(g, "file", st->data_file, sizeof st->data_file, &c) == 0 &&
      vae_ck_get_str(g, "dataset", st->data_dataset, sizeof st->data_dataset, &c) == 0 &&
      vae_ck_get_int(g, "n", 0, LLONG_MAX, &n, &c) == 0 &&
      vae_ck_get_nums(g, "shape", VAE_CK_NUM_INT, shape, VAE_CKPT_MAX_DATA_RANK, &rank, &c) == 0 &&
      vae_ck_get_str(g, "dtype", st->data_dtype, sizeof st->data_dtype, &c) == 0) {
    if (rank < 1 || shape[0] != n)
      vae_err(err, "checkpoint %s: /data/shape must start with n = %lld (it has %d values)", path, n, rank);
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
  vae_ck_rctx c = {path, "", err};
  long long ver, step, epoch, estep, ws;
  if (H5Aexists(fid, "format_version") <= 0)
    return vae_err(err,
                   "checkpoint %s has no format_version attribute: it is not a vae_mpi checkpoint "
                   "(schema: docs/CHECKPOINT.md)",
                   path);
  if (vae_ck_get_int(fid, "format_version", LLONG_MIN, LLONG_MAX, &ver, &c) < 0) return -1;
  if (ver != VAE_CHECKPOINT_FORMAT)
    return vae_err(err,
                   "checkpoint %s has format_version %lld, this vae_mpi reads version %d: use the "
                   "vae_mpi that wrote it",
                   path, ver, VAE_CHECKPOINT_FORMAT);
  memset(st, 0, sizeof *st);
  if (vae_ck_get_int(fid, "step", 0, LONG_MAX, &step, &c) < 0 ||
      vae_ck_get_int(fid, "epoch", 0, LONG_MAX, &epoch, &c) < 0 ||
      vae_ck_get_int(fid, "epoch_step", 0, step, &estep, &c) < 0 ||
      vae_ck_get_nums(fid, "seed", VAE_CK_NUM_U64, &st->seed, 1, NULL, &c) < 0 ||
      vae_ck_get_int(fid, "world_size", 1, INT_MAX, &ws, &c) < 0)
    return -1;
  st->step = (long)step;
  st->epoch = (long)epoch;
  st->epoch_step = (long)estep;
  st->world_size = (int)ws;
  /* The epoch in progress: optional (a checkpoint written by other tools starts the epoch's sums
   * at 0). */
  long long esteps = 0, eskip = 0, astep = step, tpr = 1;
  double sums[3] = {0, 0, 0};
  const char *sum_names[3] = {"epoch_recon_sum", "epoch_kl_sum", "epoch_images"};
  if ((H5Aexists(fid, "epoch_steps") > 0 &&
       vae_ck_get_int(fid, "epoch_steps", 0, LONG_MAX, &esteps, &c) < 0) ||
      (H5Aexists(fid, "epoch_skipped") > 0 &&
       vae_ck_get_int(fid, "epoch_skipped", 0, LONG_MAX, &eskip, &c) < 0) ||
      (H5Aexists(fid, "adam_step") > 0 && vae_ck_get_int(fid, "adam_step", 0, step, &astep, &c) < 0) ||
      (H5Aexists(fid, "threads_per_rank") > 0 &&
       vae_ck_get_int(fid, "threads_per_rank", 1, INT_MAX, &tpr, &c) < 0))
    return -1;
  st->threads_per_rank = (int)tpr;
  for (int i = 0; i < 3; i++) {
    if (H5Aexists(fid, sum_names[i]) > 0 &&
        vae_ck_get_nums(fid, sum_names[i], VAE_CK_NUM_FLOAT, &sums[i], 1, NULL, &c) < 0)
      return -1;
    if (!isfinite(sums[i]) || sums[i] < (i == 2 ? 0 : -1e300))
      return vae_err(err, "checkpoint %s: attribute %s is not a finite number", path, sum_names[i]);
  }
  st->epoch_steps_total = (long)esteps;
  st->epoch_skipped = (long)eskip;
  st->adam_step = (long)astep;
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
  if (rank < 1 || rank > VAE_TENSOR_MAX_DIMS) {
    snprintf(buf, n, "(%d dimensions)", rank);
    return;
  }
  size_t used = (size_t)snprintf(buf, n, "(");
  for (int i = 0; i < rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
  if (used < n) snprintf(buf + used, n - used, ")");
}

/* Tensor t of the layout into the flat buffer buf (permuted from PyTorch's order where the inside
 * order differs: torch is scratch of vae_tensor_len(t) floats). */
static int read_one_tensor(hid_t fid, const char *path, const char *name, const vae_tensor *t, float *buf,
                           float *torch, char *err) {
  float *out = vae_tensor_permuted(t) ? torch : buf + t->offset;
  if (!path_exists(fid, name))
    return vae_err(err,
                   "checkpoint %s has no /%s; the file is incomplete or for another model "
                   "(schema: docs/CHECKPOINT.md)",
                   path, name);
  hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
  if (d < 0) return vae_err(err, "checkpoint %s: /%s is not a dataset", path, name);
  hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
  hsize_t dims[8] = {0};
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  if (rank >= 0 && rank <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
  hsize_t want[VAE_TENSOR_MAX_DIMS];
  int same = rank == t->ndim;
  for (int i = 0; i < t->ndim; i++) {
    want[i] = (hsize_t)t->dims[i];
    same = same && dims[i] == want[i];
  }
  char got_s[64], want_s[64];
  shape_str(got_s, sizeof got_s, rank, dims);
  shape_str(want_s, sizeof want_s, t->ndim, want);
  int rc = -1;
  if (ft < 0 || sp < 0)
    vae_err(err, "checkpoint %s: /%s cannot be read; the file is damaged", path, name);
  else if (H5Tget_class(ft) != H5T_FLOAT)
    vae_err(err, "checkpoint %s: /%s is not floating point; tensors must be float32", path, name);
  else if (!same)
    vae_err(err,
            "checkpoint %s: /%s has shape %s, expected %s for the model its /model attributes "
            "describe",
            path, name, got_s, want_s);
  else if (!vae_h5_type_is_standard(ft))
    vae_err(err, "checkpoint %s: /%s has a malformed float type; the file is damaged", path, name);
  else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    vae_err(err, "checkpoint %s: /%s cannot be read; the file is damaged", path, name);
  else {
    size_t k;
    float bad;
    rc = 0;
    if (vae_ck_scan_finite(out, vae_tensor_len(t), &k, &bad) < 0)
      rc = vae_err(err,
                   "checkpoint %s: /%s holds a non-finite value (%g at element %zu); resume "
                   "from an older checkpoint",
                   path, name, (double)bad, k);
    else if (out == torch)
      vae_tensor_from_torch(t, torch, buf);
  }
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Dclose(d);
  return rc;
}

/* Every tensor of the layout under group grp into buf, and nothing else in grp. */
static int read_tensors(hid_t fid, const char *path, const char *grp, const vae_config *cfg,
                        const vae_tensor *t, int nt, float *buf, char *err) {
  char name[VAE_CK_TENSOR_PATH_LEN];
  size_t longest = 1;
  for (int i = 0; i < nt; i++) longest = vae_tensor_len(&t[i]) > longest ? vae_tensor_len(&t[i]) : longest;
  float *torch = mallocCheck(longest * sizeof *torch);
  for (int i = 0; i < nt; i++) {
    vae_ck_tensor_path(name, grp, &t[i]);
    if (read_one_tensor(fid, path, name, &t[i], buf, torch, err) < 0) {
      free(torch);
      return -1;
    }
  }
  free(torch);
  int count = 0;
  hid_t g = H5Gopen2(fid, grp, H5P_DEFAULT);
  herr_t rc = g < 0 ? -1 : H5Lvisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_datasets_cb, &count);
  if (g >= 0) H5Gclose(g);
  if (rc < 0) return vae_err(err, "checkpoint %s: /%s cannot be listed; the file is damaged", path, grp);
  if (count != nt) {
    char desc[256];
    vae_describe(cfg, desc, sizeof desc);
    return vae_err(err,
                   "checkpoint %s: /%s holds %d datasets, a %s %s model has %d; remove the "
                   "extra ones or fix the /model attributes",
                   path, grp, count, desc, vae_decoder_name(cfg->decoder), nt);
  }
  return 0;
}

/* ======================================================================================
 * Opening, and the two entry points
 * ====================================================================================== */

/* Nothing in a checkpoint may reach outside its file: vae_mpi writes only groups, hard links and
 * datasets stored in the file. Refuses soft, external and user-defined links (before anything
 * follows them), and datasets whose data lives elsewhere (external storage, virtual datasets).
 * The same walk checks every object's attribute messages (checkpoint/attr_check.c) before any of
 * them is decoded. */
typedef struct {
  const char *path;
  char *err;
} outside_ctx;

static herr_t refuse_outside_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  const outside_ctx *c = data;
  if (info->type != H5L_TYPE_HARD) {
    vae_err(c->err,
            "checkpoint %s: /%s is a%s link; a vae_mpi checkpoint holds its tensors itself "
            "(links are never followed): use the checkpoint vae_mpi wrote",
            c->path, name,
            info->type == H5L_TYPE_SOFT       ? " soft"
            : info->type == H5L_TYPE_EXTERNAL ? "n external"
                                              : " user-defined");
    return 1;
  }
  hid_t o = H5Oopen(g, name, H5P_DEFAULT);
  if (o < 0) {
    vae_err(c->err, "cannot read checkpoint %s: /%s cannot be opened; the file is damaged", c->path, name);
    return 1;
  }
  char obj_name[256];
  snprintf(obj_name, sizeof obj_name, "/%s", name);
  herr_t rc = vae_ck_check_attrs(o, c->path, obj_name, c->err) < 0 ? 1 : 0;
  if (rc == 0 && H5Iget_type(o) == H5I_DATASET) {
    hid_t dcpl = H5Dget_create_plist(o);
    if (dcpl < 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL || H5Pget_external_count(dcpl) != 0) {
      vae_err(c->err,
              "checkpoint %s: /%s keeps its data outside the dataset (a virtual dataset or "
              "external storage); use the checkpoint vae_mpi wrote",
              c->path, name);
      rc = 1;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
  }
  H5Oclose(o);
  return rc;
}

static int refuse_outside(hid_t fid, const char *path, char *err) {
  outside_ctx c = {path, err};
  if (vae_ck_check_attrs(fid, path, "", err) < 0) return -1;
  herr_t rc = H5Lvisit(fid, H5_INDEX_NAME, H5_ITER_NATIVE, refuse_outside_cb, &c);
  if (rc > 0) return -1;
  if (rc < 0)
    return vae_err(err, "cannot read checkpoint %s: its groups cannot be listed; the file is damaged", path);
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
    return vae_err(err,
                   "checkpoint %s is empty (0 bytes); it was never completed: use an older "
                   "checkpoint",
                   path);
  vae_h5_quiet();
  if (H5PLset_loading_state(0) < 0) VAE_FAIL("H5PLset_loading_state");
  H5Eclear2(H5E_DEFAULT);
  htri_t is = H5Fis_hdf5(path);
  vae_ck_diag d = vae_ck_diagnose();
  if (is == 0)
    return vae_err(err, "checkpoint %s is not an HDF5 file; pass a checkpoint.h5 written by vae_mpi", path);
  if (is > 0) {
    *fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid >= 0) {
      if (refuse_outside(*fid, path, err) == 0) return 0;
      H5Fclose(*fid);
      return -1;
    }
    d = vae_ck_diagnose();
  }
  if (d.truncated)
    return vae_err(err,
                   "checkpoint %s is truncated (%lld bytes, shorter than its header says): it "
                   "was cut short by a crash or a full disk; use an older checkpoint",
                   path, (long long)sb.st_size);
  return vae_err(err, "cannot read checkpoint %s: HDF5 cannot open it (%s); the file is damaged", path,
                 d.errnum ? strerror(d.errnum) : "corrupt metadata");
}

int vae_ck_read_header_only(const char *path, vae_config *cfg, vae_ckpt_state *st, char *err) {
  hid_t fid;
  if (open_checkpoint(path, &fid, err) < 0) return -1;
  int rc = read_header(fid, path, cfg, st, err);
  H5Fclose(fid);
  H5Eclear2(H5E_DEFAULT);
  return rc;
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
    for (int b = 0; b < (has_opt ? 3 : 1) && rc == 0; b++) {
      bufs[b] = mallocCheck(np * sizeof(float));
      rc = read_tensors(fid, path, vae_ck_tensor_groups[b], &c, t, nt, bufs[b], err);
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
