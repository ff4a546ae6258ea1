/* data.c: the HDF5 data reader. Validates a dataset on each rank (no collectives), reads each rank's
 * rows with parallel HDF5, checks values, and builds float batches. Must never follow a link or a
 * storage reference out of the named file, never load HDF5 plugins, never let HDF5 print its error
 * stack, and never let one rank leave a collective read while the others are still in it. */
#include "data.h"

#include <H5PLpublic.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clones.h"
#include "dist.h"
#include "error.h"

#define MAX_SOFT_HOPS 16
/* One collective H5Dread moves at most this many file bytes per rank: bounds HDF5's buffers (a
 * collective read of filtered chunks holds them all, compressed and decoded, for the call: with one
 * call for the whole shard the peak RSS was the shard plus ~35 MiB for Fashion-MNIST, with 8 MiB
 * pieces it is the shard plus ~5 MiB, at the same speed) and stays far from MPI's 2 GiB count
 * limits. Ranks agree on the number of calls. */
#define READ_PIECE_BYTES ((size_t)8 << 20)

/* ---------------------------------------------------------------- library setup */

/* Input files never load plugins (a filter plugin is code from outside this program), and HDF5's
 * error stack is ours to translate. Idempotent; probe may run before MPI and dist_init. */
static void data_lib_init(void) {
  static int done = 0;
  if (done) return;
  h5Check(H5PLset_loading_state(0));
  vae_h5_quiet();
  done = 1;
}

/* Link-access callback: any external link met while opening is refused. */
static herr_t deny_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                 const char *child_object, unsigned *acc_flags, hid_t fapl_id,
                                 void *op_data) {
  return -1;
}

/* ---------------------------------------------------------------- shard ranges */

void vae_shard_range(size_t n, int rank, int size, size_t *off, size_t *count) {
  /* r*n/P without forming r*n: n = q*P + m, r*n/P = r*q + r*m/P, and r*m < P*P fits. */
  size_t P = (size_t)size, q = n / P, m = n % P;
  size_t r = (size_t)rank;
  size_t begin = r * q + r * m / P;
  size_t end = (r + 1) * q + (r + 1) * m / P;
  *off = begin;
  *count = end - begin;
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

/* a * b into *out, 0 when it would overflow size_t. */
static int mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
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

/* Every check of an opened dataset; fills info from dims onward. */
static int probe_dataset(hid_t dset, vae_data_info *info, char *err) {
  const char *f = info->file, *ds = info->dataset;
  int rc = -1;
  hid_t dcpl = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;

  /* Where the data lives: only inside this file. */
  dcpl = H5Dget_create_plist(dset);
  if (dcpl < 0) {
    vae_err(err, "cannot read the storage properties of %s:%s (damaged file?)", f, ds);
    goto done;
  }
  H5D_layout_t layout = H5Pget_layout(dcpl);
  switch (layout) {
    case H5D_CONTIGUOUS: snprintf(info->layout, sizeof info->layout, "contiguous"); break;
    case H5D_CHUNKED: snprintf(info->layout, sizeof info->layout, "chunked"); break;
    case H5D_COMPACT: snprintf(info->layout, sizeof info->layout, "compact"); break;
    case H5D_VIRTUAL:
      vae_err(err,
              "%s:%s is a virtual dataset (its data is mapped from other datasets or files); "
              "vae_mpi reads data stored in the dataset itself: copy it into a regular dataset "
              "(e.g. h5py: f['new'] = f['%s'][...])",
              f, ds, ds);
      goto done;
    default: vae_err(err, "%s:%s has an unknown storage layout (%d)", f, ds, (int)layout); goto done;
  }
  int n_ext = H5Pget_external_count(dcpl);
  if (n_ext != 0) {
    char name[256] = "?";
    off_t eoff;
    hsize_t esize;
    if (n_ext > 0) H5Pget_external(dcpl, 0, sizeof name, name, &eoff, &esize);
    vae_err(err,
            "%s:%s keeps its data in %d external file(s) (first: '%s'), outside the HDF5 "
            "file; vae_mpi reads only data stored inside the file: copy it into a regular "
            "dataset (e.g. h5py: f['new'] = f['%s'][...])",
            f, ds, n_ext, name, ds);
    goto done;
  }

  /* Filters: each must be built into this library (plugins are off) and able to decode. */
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
      vae_err(err, "cannot read filter %d of %s:%s (damaged file?)", i, f, ds);
      goto done;
    }
    unsigned zinfo = 0;
    if (H5Zfilter_avail(id) <= 0 || H5Zget_filter_info(id, &zinfo) < 0 ||
        !(zinfo & H5Z_FILTER_CONFIG_DECODE_ENABLED)) {
      vae_err(err,
              "%s:%s is compressed with HDF5 filter %d ('%s'), which this HDF5 library "
              "cannot decode (filter plugins are not loaded for input files); rewrite it with "
              "gzip or without compression, e.g. h5repack -f GZIP=4 %s out.h5",
              f, ds, (int)id, name[0] ? name : "unnamed", f);
      goto done;
    }
    if (used < sizeof info->filters)
      used += (size_t)snprintf(info->filters + used, sizeof info->filters - used, "%s%s(%d)", i ? ", " : "",
                               name[0] ? name : "filter", (int)id);
  }

  /* Element type: uint8 or a 32/64-bit float. */
  type = H5Dget_type(dset);
  if (type < 0) {
    vae_err(err, "cannot read the type of %s:%s (damaged file?)", f, ds);
    goto done;
  }
  H5T_class_t cls = H5Tget_class(type);
  size_t tsize = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    H5T_sign_t sign = H5Tget_sign(type);
    if (tsize != 1 || sign != H5T_SGN_NONE) {
      vae_err(err,
              "%s:%s holds %zu-bit %s integers; vae_mpi reads uint8 (0..255, scaled to "
              "[0, 1]) or float32/float64: convert it, e.g. numpy .astype('uint8') when the "
              "values are 0..255, else .astype('float32')",
              f, ds, tsize * 8, sign == H5T_SGN_NONE ? "unsigned" : "signed");
      goto done;
    }
    info->kind = VAE_DATA_UINT8;
    info->elem_bytes = 1;
  } else if (cls == H5T_FLOAT) {
    if (tsize != 4 && tsize != 8) {
      vae_err(err,
              "%s:%s holds %zu-bit floats; vae_mpi reads float32 or float64: convert it, "
              "e.g. numpy .astype('float32')",
              f, ds, tsize * 8);
      goto done;
    }
    info->kind = tsize == 4 ? VAE_DATA_FLOAT32 : VAE_DATA_FLOAT64;
    info->elem_bytes = 4;
  } else {
    vae_err(err,
            "%s:%s holds %s values, not numbers; vae_mpi reads images stored as uint8 or "
            "float32/float64 arrays",
            f, ds, type_class_name(cls));
    goto done;
  }
  if (!vae_h5_type_is_standard(type)) {
    vae_err(err,
            "%s:%s has a malformed numeric type (its precision, offset or fields do not fit its "
            "%zu bytes; damaged file?)",
            f, ds, tsize);
    goto done;
  }

  /* Shape: (N, D), (N, H, W) or (N, H, W, C), nothing empty, sizes that fit. */
  space = H5Dget_space(dset);
  int nd =
      space >= 0 && H5Sget_simple_extent_type(space) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : 0;
  hsize_t dims[H5S_MAX_RANK];
  char shape[160] = "()";
  if (nd > 0 && H5Sget_simple_extent_dims(space, dims, NULL) == nd)
    format_shape(dims, nd, shape, sizeof shape);
  if (nd < 2 || nd > 4) {
    vae_err(err,
            "%s:%s has %d dimension(s), shape %s; expected (N, D), (N, H, W) or "
            "(N, H, W, C) with one image per row",
            f, ds, nd, shape);
    goto done;
  }
  if (dims[0] == 0) {
    vae_err(err, "%s:%s has 0 rows, shape %s: no images to read", f, ds, shape);
    goto done;
  }
  size_t d = 1;
  for (int i = 1; i < nd; i++) {
    if (dims[i] == 0) {
      vae_err(err, "%s:%s has a zero dimension, shape %s: images must have at least one value", f, ds, shape);
      goto done;
    }
    if (dims[i] > SIZE_MAX || !mul_ok(d, (size_t)dims[i], &d)) {
      vae_err(err, "%s:%s has shape %s: the image size overflows (damaged file?)", f, ds, shape);
      goto done;
    }
  }
  size_t total;
  if (dims[0] > SIZE_MAX || !mul_ok((size_t)dims[0], d, &total) || !mul_ok(total, info->elem_bytes, &total)) {
    vae_err(err, "%s:%s has shape %s: its size in bytes overflows (damaged file?)", f, ds, shape);
    goto done;
  }
  if (d > (size_t)INT_MAX) {
    vae_err(err, "%s:%s has shape %s: %zu values per image, more than the %d vae_mpi supports", f, ds, shape,
            d, INT_MAX);
    goto done;
  }
  info->ndims = nd;
  for (int i = 0; i < nd; i++) info->dims[i] = dims[i];
  info->n = (size_t)dims[0];
  info->d = d;
  info->h = nd == 2 ? 1 : (size_t)dims[1];
  info->w = nd == 2 ? (size_t)dims[1] : (size_t)dims[2];
  info->c = nd == 4 ? (size_t)dims[3] : 1;

  /* A dataset created but never written reads back as fill values: surely a mistake. */
  H5D_space_status_t st;
  if (H5Dget_space_status(dset, &st) < 0 || st == H5D_SPACE_STATUS_NOT_ALLOCATED) {
    vae_err(err,
            "%s:%s has no data written (its storage was never allocated); re-create the "
            "file and write the images",
            f, ds);
    goto done;
  }
  rc = 0;
done:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  return rc;
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
  h5Check(H5Pset_elink_cb(lapl, deny_external_link, NULL));
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
  data_lib_init();
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
  data_lib_init();
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

/* ---------------------------------------------------------------- memory */

size_t vae_data_mem_limit(MPI_Comm comm) {
  int local = vae_dist_node_ranks(comm);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t total;
  if (pages <= 0 || page <= 0 || !mul_ok((size_t)pages, (size_t)page, &total)) return 0;
  return total / (size_t)local / 4 * 3;
}

int vae_data_check_shard_fits(const vae_data_info *info, int rank, int size, size_t max_bytes, char *err) {
  size_t off, cnt, row = info->d * info->elem_bytes, bytes;
  vae_shard_range(info->n, rank, size, &off, &cnt);
  if (cnt > (size_t)UINT32_MAX)
    return vae_err(err, "rank %d would hold %zu rows of %s:%s, more than %u; run with more ranks", rank, cnt,
                   info->file, info->dataset, UINT32_MAX);
  if (max_bytes == 0) return 0;
  int fits = mul_ok(cnt, row, &bytes) && bytes <= max_bytes;
  if (fits) return 0;
  size_t rows_fit = max_bytes / row;
  if (rows_fit == 0)
    return vae_err(err,
                   "one image of %s:%s needs %zu bytes, more than the %zu bytes a rank may "
                   "use here; use nodes with more memory or fewer ranks per node",
                   info->file, info->dataset, row, max_bytes);
  size_t need_ranks = info->n / rows_fit + (info->n % rows_fit != 0);
  return vae_err(err,
                 "rank %d's shard of %s:%s needs %.0f bytes (%.2f GiB: %zu rows x %zu values "
                 "x %zu byte(s)) but a rank may use %zu bytes (%.2f GiB) here; run with at least "
                 "%zu ranks, or on nodes with more memory",
                 rank, info->file, info->dataset, (double)cnt * (double)row,
                 (double)cnt * (double)row / 1073741824.0, cnt, info->d, info->elem_bytes, max_bytes,
                 (double)max_bytes / 1073741824.0, need_ranks);
}

/* ---------------------------------------------------------------- collective read */

static int read_rows(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, size_t n_rows,
                     vae_shard *shard, char *err);

int vae_data_read_shard(const vae_data_info *info, MPI_Comm comm, vae_shard *shard, char *err) {
  return read_rows(info, comm, READ_PIECE_BYTES, info->n, shard, err);
}

int vae_data_read_shard_pieces(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, vae_shard *shard,
                               char *err) {
  return read_rows(info, comm, piece_bytes, info->n, shard, err);
}

int vae_data_read_first(const vae_data_info *info, MPI_Comm comm, size_t n_rows, vae_shard *shard,
                        char *err) {
  return read_rows(info, comm, READ_PIECE_BYTES, n_rows < info->n ? n_rows : info->n, shard, err);
}

/* Rows [0, n_rows) of the dataset, split over comm's ranks by vae_shard_range. */
static int read_rows(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, size_t n_rows,
                     vae_shard *shard, char *err) {
  data_lib_init();
  memset(shard, 0, sizeof *shard);
  memset(err, 0, VAE_ERR_LEN); /* broadcast whole: no uninitialised bytes */
  int rank, size;
  vae_dist_comm_info(comm, &rank, &size);
  const char *f = info->file, *ds = info->dataset;
  size_t off, cnt;
  vae_shard_range(n_rows, rank, size, &off, &cnt);
  const size_t d = info->d;
  int failed = 0, rc = -1;
  hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID, dapl = H5I_INVALID_HID;
  hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  void *buf = NULL;

  /* Open: metadata is read by one rank and broadcast (collective metadata ops), so every rank sees
   * the same outcome. A failure on some ranks only (MPI-IO itself failing unevenly) cannot be
   * undone safely and would hang in H5Fclose; it is not seen on a file every rank just probed. */
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  h5Check(fapl);
  h5Check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
  h5Check(H5Pset_all_coll_metadata_ops(fapl, 1));
  h5Check(H5Pset_coll_metadata_write(fapl, 1));
  file = H5Fopen(f, H5F_ACC_RDONLY, fapl);
  if (file < 0) {
    failed = 1;
    vae_err(err,
            "cannot open %s with parallel HDF5 (MPI-IO) on rank %d; is it on a file "
            "system every rank can read?",
            f, rank);
  }
  if (vae_dist_agree_failure(comm, failed, err)) goto done;

  dapl = H5Pcreate(H5P_DATASET_ACCESS);
  h5Check(dapl);
  h5Check(H5Pset_elink_cb(dapl, deny_external_link, NULL));
  dset = H5Dopen2(file, info->path, dapl);
  if (dset < 0) {
    failed = 1;
    vae_err(err, "cannot open %s:%s for the parallel read (changed since it was checked?)", f, ds);
  }
  if (!failed) {
    /* The file may have changed between probe and read: the shape and type must still match. */
    hsize_t dims[H5S_MAX_RANK];
    fspace = H5Dget_space(dset);
    hid_t type = H5Dget_type(dset);
    int nd = fspace >= 0 ? H5Sget_simple_extent_ndims(fspace) : -1;
    int same = nd == info->ndims && H5Sget_simple_extent_dims(fspace, dims, NULL) == nd && type >= 0 &&
               H5Tget_class(type) == (info->kind == VAE_DATA_UINT8 ? H5T_INTEGER : H5T_FLOAT);
    for (int i = 0; same && i < nd; i++) same = dims[i] == info->dims[i];
    if (type >= 0) H5Tclose(type);
    if (!same) {
      failed = 1;
      vae_err(err, "%s:%s changed since it was checked (shape or type differ); run again", f, ds);
    }
  }
  if (vae_dist_agree_failure(comm, failed, err)) goto done;

  /* Read in pieces of at most piece_bytes file bytes per rank; every rank makes the same
   * number of collective H5Dread calls, selecting nothing once its rows are done.
   * Filtered (chunked, compressed) datasets read collectively too: parallel HDF5 >= 1.10.2 supports
   * collective reads of filtered data (each chunk is read and decoded by the ranks that select it),
   * and tests/test_data_read covers gzip+shuffle at 1..4 ranks, so no independent fallback.
   * Measured with H5Pget_mpio_actual_io_mode on HDF5 1.10.8: uint8 and float32 read collectively
   * (contiguous and chunked); float64 -> float32 makes HDF5 itself switch to independent I/O
   * (cause: datatype conversion), which is correct, just without MPI-IO aggregation. */
  const size_t file_elem = info->kind == VAE_DATA_FLOAT64 ? 8 : info->kind == VAE_DATA_FLOAT32 ? 4 : 1;
  size_t piece_rows = piece_bytes / (d * file_elem);
  if (piece_rows == 0) piece_rows = 1;
  long calls = vae_dist_max_long(comm, (long)((cnt + piece_rows - 1) / piece_rows));
  if (cnt > 0) buf = mallocCheck(cnt * d * info->elem_bytes);
  float dummy[1];
  hid_t memtype = info->kind == VAE_DATA_UINT8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  dxpl = H5Pcreate(H5P_DATASET_XFER);
  h5Check(dxpl);
  h5Check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
  size_t bad_row = 0;
  for (long call = 0; call < calls; call++) {
    size_t r0 = (size_t)call * piece_rows;
    size_t rows = r0 < cnt ? (cnt - r0 < piece_rows ? cnt - r0 : piece_rows) : 0;
    hsize_t start[4] = {0, 0, 0, 0}, count[4];
    start[0] = (hsize_t)(off + r0);
    count[0] = (hsize_t)rows;
    for (int i = 1; i < info->ndims; i++) count[i] = info->dims[i];
    /* The memory space has the selection's own shape: with a flat (rows * d) one HDF5 maps every
     * element between the two shapes one by one (seconds for Fashion-MNIST instead of milliseconds). */
    hsize_t one = 1;
    hid_t mspace = rows ? H5Screate_simple(info->ndims, count, NULL) : H5Screate_simple(1, &one, NULL);
    h5Check(mspace);
    if (rows) {
      h5Check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    } else {
      h5Check(H5Sselect_none(fspace));
      h5Check(H5Sselect_none(mspace));
    }
    void *dst = rows ? (char *)buf + r0 * d * info->elem_bytes : (void *)dummy;
    if (H5Dread(dset, memtype, mspace, fspace, dxpl, dst) < 0 && !failed) {
      failed = 1;
      bad_row = off + r0;
    }
    H5Sclose(mspace);
  }
  if (failed)
    vae_err(err,
            "reading rows %zu..%zu of %s:%s failed on rank %d (damaged data, a compressed "
            "chunk that does not decode, or an I/O error); check the file with h5dump, or "
            "re-create it",
            bad_row, off + cnt - 1, f, ds, rank);
  if (vae_dist_agree_failure(comm, failed, err)) goto done;

  shard->info = *info;
  shard->offset = off;
  shard->count = cnt;
  shard->d = d;
  if (info->kind == VAE_DATA_UINT8)
    shard->u8 = buf;
  else
    shard->f32 = buf;
  buf = NULL;
  rc = 0;
done:
  free(buf);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (fspace >= 0) H5Sclose(fspace);
  if (dset >= 0) H5Dclose(dset);
  if (dapl >= 0) H5Pclose(dapl);
  if (file >= 0) H5Fclose(file);
  if (fapl >= 0) H5Pclose(fapl);
  return rc;
}

/* ---------------------------------------------------------------- values and batches */

int vae_shard_validate(const vae_shard *s, int require_unit_interval, char *err) {
  if (!s->f32) return 0; /* uint8: always finite and, once scaled, in [0, 1] */
  const size_t d = s->d;
  for (size_t r = 0; r < s->count; r++) {
    const float *x = s->f32 + r * d;
    /* Branch-free per row (vectorizes); NaN fails every comparison. */
    int bad = 0;
    if (require_unit_interval)
      for (size_t j = 0; j < d; j++) bad |= !(x[j] >= 0.0f && x[j] <= 1.0f);
    else
      for (size_t j = 0; j < d; j++) bad |= !(fabsf(x[j]) <= FLT_MAX);
    if (!bad) continue;
    size_t j = 0;
    while (j < d && isfinite(x[j]) && (!require_unit_interval || (x[j] >= 0.0f && x[j] <= 1.0f))) j++;
    size_t row = s->offset + r;
    if (isnan(x[j]))
      return vae_err(err,
                     "row %zu of %s:%s has a NaN at value %zu (of %zu per image); fix or "
                     "remove that image",
                     row, s->info.file, s->info.dataset, j, d);
    if (isinf(x[j]))
      return vae_err(err,
                     "row %zu of %s:%s has an infinite value (%cInf) at value %zu (of %zu per "
                     "image); fix or remove that image",
                     row, s->info.file, s->info.dataset, x[j] > 0 ? '+' : '-', j, d);
    return vae_err(err,
                   "row %zu of %s:%s has the value %g at %zu (of %zu per image), outside "
                   "[0, 1], which the bernoulli decoder needs; rescale the data to [0, 1] or use "
                   "--decoder gaussian",
                   row, s->info.file, s->info.dataset, (double)x[j], j, d);
  }
  return 0;
}

VAE_CLONES void vae_shard_batch(const vae_shard *s, const uint32_t *rows, int B, float *out) {
  const size_t d = s->d;
  const float scale = 1.0f / 255.0f;
  for (int b = 0; b < B; b++) {
    if ((size_t)rows[b] >= s->count) VAE_FAIL("batch row %u outside this rank's %zu rows", rows[b], s->count);
    float *dst = out + (size_t)b * d;
    if (s->u8) {
      const uint8_t *src = s->u8 + (size_t)rows[b] * d;
      for (size_t j = 0; j < d; j++) dst[j] = (float)src[j] * scale;
    } else {
      memcpy(dst, s->f32 + (size_t)rows[b] * d, d * sizeof *dst);
    }
  }
}

void vae_shard_free(vae_shard *s) {
  free(s->u8);
  free(s->f32);
  s->u8 = NULL;
  s->f32 = NULL;
  s->count = 0;
}
