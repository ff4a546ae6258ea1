/* data/probe.c: the HDF5 dataset a run is given, checked on each rank alone before any collective
 * call: the file, the path to the dataset (soft links followed, nothing outside the file), its
 * storage, filters, type and shape; and whether a rank's shard fits its memory. Must never follow a
 * link or a storage reference out of the named file, load HDF5 plugins, let HDF5 print its error
 * stack, or make a collective call. */
#include <H5PLpublic.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "dist.h"
#include "error.h"
#include "internal.h"

#define MAX_SOFT_HOPS 16

/* ---------------------------------------------------------------- library setup */

void vae_data_lib_init(void) {
  static int done = 0;
  if (done) return;
  h5Check(H5PLset_loading_state(0));
  vae_h5_quiet();
  done = 1;
}

herr_t vae_data_deny_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                   const char *child_object, unsigned *acc_flags, hid_t fapl_id,
                                   void *op_data) {
  return -1;
}

/* ---------------------------------------------------------------- small helpers */

static void format_shape(const hsize_t *dims, int nd, char *buf, size_t n) {
  size_t used = 0;
  used += (size_t)snprintf(buf, n, "(");
  for (int i = 0; i < nd && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (used < n) snprintf(buf + used, n - used, ")");
}

/* Names in group gpath ("" = root), comma-separated, at most 12 then "...". */
static void list_group(hid_t file, const char *gpath, char *buf, size_t n) {
  buf[0] = '\0';
  hid_t g = H5Gopen2(file, gpath[0] ? gpath : "/", H5P_DEFAULT);
  if (g < 0) return;
  H5G_info_t gi;
  if (H5Gget_info(g, &gi) >= 0) {
    size_t used = 0;
    for (hsize_t i = 0; i < gi.nlinks && used + 1 < n; i++) {
      if (i == 12) {
        snprintf(buf + used, n - used, ", ...");
        break;
      }
      char name[256];
      if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
        break;
      used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", name);
    }
    if (gi.nlinks == 0) snprintf(buf, n, "nothing");
  }
  H5Gclose(g);
}

static const char *type_class_name(H5T_class_t c) {
  switch (c) {
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound (record)";
    case H5T_ENUM: return "enum (or boolean)";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    case H5T_TIME: return "time";
    default: return "non-numeric";
  }
}

/* ---------------------------------------------------------------- path resolution */

/* Is the object at absolute path p (hard links only) a group? */
static int is_group(hid_t file, const char *p) {
  hid_t o = H5Oopen(file, p[0] ? p : "/", H5P_DEFAULT);
  if (o < 0) return 0;
  int g = H5Iget_type(o) == H5I_GROUP;
  H5Oclose(o);
  return g;
}

/* Walks `dataset` one component at a time from the root, following soft links (their targets walk
 * the same way) and refusing external and user-defined links, so nothing outside `fname` is ever
 * opened. Writes the absolute hard-link path into out (VAE_PATH_LEN). */
static int resolve_path(hid_t file, const char *fname, const char *dataset, const char *flag, char *out,
                        char *err) {
  char rest[VAE_PATH_LEN], cur[VAE_PATH_LEN] = "", cand[VAE_PATH_LEN];
  if (snprintf(rest, sizeof rest, "%s", dataset) >= (int)sizeof rest)
    return vae_err(err, "dataset path '%.64s...' is too long", dataset);
  char last_link[256] = "", last_target[256] = ""; /* for the message on a dangling soft link */
  int hops = 0;
  for (;;) {
    char *p = rest;
    while (*p == '/') p++;
    if (!*p) break;
    char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    char comp[VAE_PATH_LEN];
    memcpy(comp, p, len);
    comp[len] = '\0';
    memmove(rest, p + len, strlen(p + len) + 1);
    if (strcmp(comp, ".") == 0) continue;
    if (cur[0] && !is_group(file, cur))
      return vae_err(err, "dataset '%s' not found in %s: '%s' is not a group", dataset, fname, cur);
    if (snprintf(cand, sizeof cand, "%s/%s", cur, comp) >= (int)sizeof cand)
      return vae_err(err, "dataset path '%.64s...' is too long", dataset);
    if (H5Lexists(file, cand, H5P_DEFAULT) <= 0) {
      if (hops > 0)
        return vae_err(err,
                       "dataset '%s' not found in %s: the soft link '%s' points to '%s', "
                       "and '%s' does not exist; name an existing dataset with %s",
                       dataset, fname, last_link, last_target, cand, flag);
      char names[512];
      list_group(file, cur, names, sizeof names);
      return vae_err(err,
                     "dataset '%s' not found in %s (%s contains: %s); name an existing "
                     "dataset with %s",
                     dataset, fname, cur[0] ? cur : "the top level", names, flag);
    }
    H5L_info_t li;
    if (H5Lget_info(file, cand, &li, H5P_DEFAULT) < 0)
      return vae_err(err, "cannot read the link '%s' in %s (damaged file?)", cand, fname);
    if (li.type == H5L_TYPE_HARD) {
      memcpy(cur, cand, sizeof cur);
    } else if (li.type == H5L_TYPE_SOFT) {
      if (++hops > MAX_SOFT_HOPS)
        return vae_err(err, "dataset '%s' in %s: more than %d soft links to follow (a loop?)", dataset, fname,
                       MAX_SOFT_HOPS);
      char target[VAE_PATH_LEN];
      if (li.u.val_size == 0 || li.u.val_size > sizeof target ||
          H5Lget_val(file, cand, target, sizeof target, H5P_DEFAULT) < 0)
        return vae_err(err, "cannot read the soft link '%s' in %s", cand, fname);
      target[sizeof target - 1] = '\0';
      snprintf(last_link, sizeof last_link, "%.200s", cand);
      snprintf(last_target, sizeof last_target, "%.200s", target);
      char joined[VAE_PATH_LEN];
      if (snprintf(joined, sizeof joined, "%s/%s", target, rest) >= (int)sizeof joined)
        return vae_err(err, "dataset path '%.64s...' is too long", dataset);
      memcpy(rest, joined, sizeof rest);
      if (target[0] == '/') cur[0] = '\0'; /* absolute target; relative stays in cur's group */
    } else if (li.type == H5L_TYPE_EXTERNAL) {
      const char *efile = "?", *eobj = "?";
      char val[VAE_PATH_LEN];
      unsigned flags = 0;
      if (li.u.val_size <= sizeof val && H5Lget_val(file, cand, val, sizeof val, H5P_DEFAULT) >= 0)
        H5Lunpack_elink_val(val, li.u.val_size, &flags, &efile, &eobj);
      return vae_err(err,
                     "'%s' in %s is an external link to file '%s', object '%s'; vae_mpi "
                     "reads data only from the file it is given: pass that file and dataset with "
                     "--data and %s, or copy the data in",
                     cand, fname, efile, eobj, flag);
    } else {
      return vae_err(err,
                     "'%s' in %s is a user-defined link (type %d), which vae_mpi does not "
                     "follow; name the dataset itself",
                     cand, fname, (int)li.type);
    }
  }
  if (!cur[0]) return vae_err(err, "'%s' names the root group of %s, not a dataset", dataset, fname);
  memcpy(out, cur, VAE_PATH_LEN);
  return 0;
}

/* ---------------------------------------------------------------- probe */

/* Where the data lives: only inside this file (no virtual dataset, no external storage). */
static int check_storage(hid_t dcpl, vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  H5D_layout_t layout = H5Pget_layout(dcpl);
  switch (layout) {
    case H5D_CONTIGUOUS: snprintf(info->layout, sizeof info->layout, "contiguous"); break;
    case H5D_CHUNKED: snprintf(info->layout, sizeof info->layout, "chunked"); break;
    case H5D_COMPACT: snprintf(info->layout, sizeof info->layout, "compact"); break;
    case H5D_VIRTUAL:
      return vae_err(err,
                     "%s:%s is a virtual dataset (its data is mapped from other datasets or files); "
                     "vae_mpi reads data stored in the dataset itself: copy it into a regular dataset "
                     "(e.g. h5py: f['new'] = f['%s'][...])",
                     f, ds, ds);
    default: return vae_err(err, "%s:%s has an unknown storage layout (%d)", f, ds, (int)layout);
  }
  int n_ext = H5Pget_external_count(dcpl);
  if (n_ext != 0) {
    char name[256] = "?";
    off_t eoff;
    hsize_t esize;
    if (n_ext > 0) H5Pget_external(dcpl, 0, sizeof name, name, &eoff, &esize);
    return vae_err(err,
                   "%s:%s keeps its data in %d external file(s) (first: '%s'), outside the HDF5 "
                   "file; vae_mpi reads only data stored inside the file: copy it into a regular "
                   "dataset (e.g. h5py: f['new'] = f['%s'][...])",
                   f, ds, n_ext, name, ds);
  }
  return 0;
}

/* Filters: each must be built into this library (plugins are off) and able to decode. */
static int check_filters(hid_t dcpl, vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  int nf = H5Pget_nfilters(dcpl);
  info->n_filters = nf > 0 ? nf : 0;
  snprintf(info->filters, sizeof info->filters, "none");
  size_t used = 0;
  for (int i = 0; i < nf; i++) {
    unsigned flags = 0, config = 0;
    size_t ncd = 0;
    char name[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, sizeof name, name, &config);
    if (id < 0) {
      return vae_err(err, "cannot read filter %d of %s:%s (damaged file?)", i, f, ds);
    }
    unsigned zinfo = 0;
    if (H5Zfilter_avail(id) <= 0 || H5Zget_filter_info(id, &zinfo) < 0 ||
        !(zinfo & H5Z_FILTER_CONFIG_DECODE_ENABLED)) {
      return vae_err(err,
                     "%s:%s is compressed with HDF5 filter %d ('%s'), which this HDF5 library "
                     "cannot decode (filter plugins are not loaded for input files); rewrite it with "
                     "gzip or without compression, e.g. h5repack -f GZIP=4 %s out.h5",
                     f, ds, (int)id, name[0] ? name : "unnamed", f);
    }
    if (used < sizeof info->filters)
      used += (size_t)snprintf(info->filters + used, sizeof info->filters - used, "%s%s(%d)", i ? ", " : "",
                               name[0] ? name : "filter", (int)id);
  }
  return 0;
}

/* Element type: uint8 or a 32/64-bit float; sets kind and elem_bytes. */
static int type_kind(hid_t type, vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  H5T_class_t cls = H5Tget_class(type);
  size_t tsize = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    H5T_sign_t sign = H5Tget_sign(type);
    if (tsize != 1 || sign != H5T_SGN_NONE) {
      return vae_err(err,
                     "%s:%s holds %zu-bit %s integers; vae_mpi reads uint8 (0..255, scaled to "
                     "[0, 1]) or float32/float64: convert it, e.g. numpy .astype('uint8') when the "
                     "values are 0..255, else .astype('float32')",
                     f, ds, tsize * 8, sign == H5T_SGN_NONE ? "unsigned" : "signed");
    }
    info->kind = VAE_DATA_UINT8;
    info->elem_bytes = 1;
  } else if (cls == H5T_FLOAT) {
    if (tsize != 4 && tsize != 8) {
      return vae_err(err,
                     "%s:%s holds %zu-bit floats; vae_mpi reads float32 or float64: convert it, "
                     "e.g. numpy .astype('float32')",
                     f, ds, tsize * 8);
    }
    info->kind = tsize == 4 ? VAE_DATA_FLOAT32 : VAE_DATA_FLOAT64;
    info->elem_bytes = 4;
  } else {
    return vae_err(err,
                   "%s:%s holds %s values, not numbers; vae_mpi reads images stored as uint8 or "
                   "float32/float64 arrays",
                   f, ds, type_class_name(cls));
  }
  if (!vae_h5_type_is_standard(type)) {
    return vae_err(err,
                   "%s:%s has a malformed numeric type (its precision, offset or fields do not fit its "
                   "%zu bytes; damaged file?)",
                   f, ds, tsize);
  }
  return 0;
}

/* Shape: (N, D), (N, H, W) or (N, H, W, C), nothing empty, sizes that fit; sets the shape fields. */
static int shape_fits(hid_t space, vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  int nd =
      space >= 0 && H5Sget_simple_extent_type(space) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : 0;
  hsize_t dims[H5S_MAX_RANK];
  char shape[160] = "()";
  if (nd > 0 && H5Sget_simple_extent_dims(space, dims, NULL) == nd)
    format_shape(dims, nd, shape, sizeof shape);
  if (nd < 2 || nd > 4) {
    return vae_err(err,
                   "%s:%s has %d dimension(s), shape %s; expected (N, D), (N, H, W) or "
                   "(N, H, W, C) with one image per row",
                   f, ds, nd, shape);
  }
  if (dims[0] == 0) {
    return vae_err(err, "%s:%s has 0 rows, shape %s: no images to read", f, ds, shape);
  }
  size_t d = 1;
  for (int i = 1; i < nd; i++) {
    if (dims[i] == 0) {
      return vae_err(err, "%s:%s has a zero dimension, shape %s: images must have at least one value", f, ds,
                     shape);
    }
    if (dims[i] > SIZE_MAX || !vae_data_mul_ok(d, (size_t)dims[i], &d)) {
      return vae_err(err, "%s:%s has shape %s: the image size overflows (damaged file?)", f, ds, shape);
    }
  }
  size_t total;
  if (dims[0] > SIZE_MAX || !vae_data_mul_ok((size_t)dims[0], d, &total) ||
      !vae_data_mul_ok(total, info->elem_bytes, &total)) {
    return vae_err(err, "%s:%s has shape %s: its size in bytes overflows (damaged file?)", f, ds, shape);
  }
  if (d > (size_t)INT_MAX) {
    return vae_err(err, "%s:%s has shape %s: %zu values per image, more than the %d vae_mpi supports", f, ds,
                   shape, d, INT_MAX);
  }
  info->ndims = nd;
  for (int i = 0; i < nd; i++) info->dims[i] = dims[i];
  info->n = (size_t)dims[0];
  info->d = d;
  info->h = nd == 2 ? 1 : (size_t)dims[1];
  info->w = nd == 2 ? (size_t)dims[1] : (size_t)dims[2];
  info->c = nd == 4 ? (size_t)dims[3] : 1;
  return 0;
}

/* A dataset created but never written reads back as fill values: surely a mistake. */
static int check_written(hid_t dset, const vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  H5D_space_status_t st;
  if (H5Dget_space_status(dset, &st) < 0 || st == H5D_SPACE_STATUS_NOT_ALLOCATED) {
    return vae_err(err,
                   "%s:%s has no data written (its storage was never allocated); re-create the "
                   "file and write the images",
                   f, ds);
  }
  return 0;
}

/* Every check of an opened dataset, in the order a user would fix them; fills info from dims onward. */
static int probe_dataset(hid_t dset, vae_data_info *info, char *err) {
  hid_t dcpl = H5Dget_create_plist(dset);
  if (dcpl < 0)
    return vae_err(err, "cannot read the storage properties of %s:%s (damaged file?)", info->file,
                   info->dataset);
  int rc = check_storage(dcpl, info, err);
  if (rc == 0) rc = check_filters(dcpl, info, err);
  H5Pclose(dcpl);
  if (rc < 0) return -1;
  hid_t type = H5Dget_type(dset);
  if (type < 0)
    return vae_err(err, "cannot read the type of %s:%s (damaged file?)", info->file, info->dataset);
  rc = type_kind(type, info, err);
  H5Tclose(type);
  if (rc < 0) return -1;
  hid_t space = H5Dget_space(dset);
  rc = shape_fits(space, info, err);
  if (space >= 0) H5Sclose(space);
  if (rc < 0) return -1;
  return check_written(dset, info, err);
}

/* Opens file read-only with the sec2 driver after checks that give our own words for the usual
 * mistakes. Returns the file id or -1 with err. */
static hid_t open_input(const char *file, char *err) {
  struct stat sb;
  if (stat(file, &sb) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return vae_err(err, "data file %s not found; check the --data path", file);
    return vae_err(err, "cannot access data file %s: %s", file, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode))
    return vae_err(err, "data file %s is a directory; pass an HDF5 file with --data", file);
  if (!S_ISREG(sb.st_mode))
    return vae_err(err, "data file %s is not a regular file; pass an HDF5 file with --data", file);
  if (sb.st_size == 0)
    return vae_err(err, "data file %s is empty (0 bytes); re-create or re-download it", file);
  if (access(file, R_OK) != 0) return vae_err(err, "cannot read data file %s: %s", file, strerror(errno));
#if H5_VERSION_GE(1, 12, 0)
  htri_t is = H5Fis_accessible(file, H5P_DEFAULT);
#else
  htri_t is = H5Fis_hdf5(file);
#endif
  if (is == 0)
    return vae_err(err,
                   "data file %s is not an HDF5 file (no HDF5 signature); IDX files are "
                   "converted with `vae_mpi import-idx`",
                   file);
  if (is < 0) return vae_err(err, "cannot read data file %s", file);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  h5Check(fapl);
  h5Check(H5Pset_fapl_sec2(fapl));
  hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (fid < 0)
    return vae_err(err,
                   "data file %s has an HDF5 signature but cannot be opened: it is "
                   "truncated or damaged (copied incompletely? still being written by another "
                   "program?); re-create or re-download it",
                   file);
  return fid;
}

/* Opens the resolved dataset with external links denied; -1 with err when it is not a dataset. */
static hid_t open_dataset(hid_t fid, const char *fname, const char *dataset, const char *flag,
                          const char *path, char *err) {
  hid_t lapl = H5Pcreate(H5P_LINK_ACCESS);
  h5Check(lapl);
  h5Check(H5Pset_elink_cb(lapl, vae_data_deny_external_link, NULL));
  hid_t obj = H5Oopen(fid, path, lapl);
  H5Pclose(lapl);
  if (obj < 0) return vae_err(err, "cannot open '%s' in %s (damaged file?)", dataset, fname);
  H5I_type_t t = H5Iget_type(obj);
  if (t == H5I_DATASET) return obj;
  if (t == H5I_GROUP) {
    char names[512];
    list_group(fid, path, names, sizeof names);
    vae_err(err, "'%s' in %s is a group, not a dataset (it contains: %s); name the dataset with %s", dataset,
            fname, names, flag);
  } else {
    vae_err(err, "'%s' in %s is not a dataset", dataset, fname);
  }
  H5Oclose(obj);
  return -1;
}

int vae_data_probe(const char *file, const char *dataset, const char *flag, vae_data_info *info, char *err) {
  vae_data_lib_init();
  memset(info, 0, sizeof *info);
  if (strlen(file) >= sizeof info->file) return vae_err(err, "data file path '%.64s...' is too long", file);
  if (strlen(dataset) >= sizeof info->dataset)
    return vae_err(err, "dataset path '%.64s...' is too long", dataset);
  memcpy(info->file, file, strlen(file) + 1);
  memcpy(info->dataset, dataset, strlen(dataset) + 1);
  hid_t fid = open_input(file, err);
  if (fid < 0) return -1;
  int rc = -1;
  hid_t dset = H5I_INVALID_HID;
  if (resolve_path(fid, file, dataset, flag, info->path, err) == 0 &&
      (dset = open_dataset(fid, file, dataset, flag, info->path, err)) >= 0)
    rc = probe_dataset(dset, info, err);
  if (dset >= 0) H5Dclose(dset);
  H5Fclose(fid);
  return rc;
}

int vae_data_exists(const char *file, const char *dataset) {
  vae_data_lib_init();
  char err[VAE_ERR_LEN], path[VAE_PATH_LEN];
  hid_t fid = open_input(file, err);
  if (fid < 0) return 0;
  int found = 0;
  if (resolve_path(fid, file, dataset, "--dataset", path, err) == 0) {
    hid_t dset = open_dataset(fid, file, dataset, "--dataset", path, err);
    if (dset >= 0) {
      found = 1;
      H5Dclose(dset);
    }
  }
  H5Fclose(fid);
  return found;
}
