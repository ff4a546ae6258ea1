/* h5_group_writer.c: the importers' one way to add groups to an HDF5 file (h5_group_writer.h).
 * Must never change the output path before commit, never leave a temporary file behind on failure,
 * and never call MPI. Every HDF5 failure here is on a file we write, so it is a user-level error
 * (disk full, permissions), reported in err, never an abort. */
#include "h5_group_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable_file.h"
#include "error.h"
#include "h5_chunks.h"

typedef struct {
  char group[256], name[64];
  hid_t d;
  hid_t mem_type;
  int nd;
  hsize_t dims[VAE_H5W_MAX_RANK];
  size_t row_bytes;
  hsize_t chunk_rows; /* 0: contiguous */
  hsize_t written;    /* rows handed to HDF5 */
  size_t elem;        /* bytes per element */
  unsigned char *buf; /* chunked: `threads` chunks of pending rows */
  hsize_t buffered;
} w_dataset;

struct vae_h5_writer {
  vae_durable dur; /* dur.path: the output; dur.tmp: what is written */
  const char *out, *tmp;
  hid_t file;
  int overwrite, threads;
  w_dataset ds[VAE_H5W_MAX_DATASETS];
  int n;
};

/* ---- the temporary file: a new one, or a byte copy of the existing output ---- */

/* Copies src to dst (created, must not exist) with src's permission bits. */
static int copy_file(const char *src, const char *dst, char *err) {
  int in = open(src, O_RDONLY), out = -1, rc = -1;
  struct stat st;
  if (in < 0 || fstat(in, &st) != 0) {
    vae_err(err, "cannot read %s: %s", src, strerror(errno));
    goto done;
  }
  if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL, st.st_mode & 07777)) < 0) {
    vae_err(err, "cannot create %s (is the folder writable?): %s", dst, strerror(errno));
    goto done;
  }
  static char block[1 << 20];
  ssize_t r;
  while ((r = read(in, block, sizeof block)) > 0)
    for (ssize_t off = 0; off < r;) {
      ssize_t w = write(out, block + off, (size_t)(r - off));
      if (w < 0) {
        vae_err(err, "cannot copy %s to %s: %s", src, dst, strerror(errno));
        goto done;
      }
      off += w;
    }
  if (r < 0) {
    vae_err(err, "cannot read %s: %s", src, strerror(errno));
    goto done;
  }
  rc = 0;
done:
  if (out >= 0 && close(out) != 0 && rc == 0) rc = vae_err(err, "cannot write %s: %s", dst, strerror(errno));
  if (in >= 0) close(in);
  return rc;
}

/* ---- refusing before anything is written ---- */

static int has_link(hid_t loc, const char *name) {
  htri_t e = H5Lexists(loc, name, H5P_DEFAULT);
  return e < 0 ? -1 : (int)(e > 0);
}

/* Checks one group of an open file: absent, or a group without the datasets (unless overwrite). */
static int check_group(hid_t file, const char *out, const char *group, const char *const *datasets, int nds,
                       int overwrite, char *err) {
  int e = has_link(file, group);
  if (e < 0) return vae_err(err, "%s: cannot look up /%s (damaged file?)", out, group);
  if (!e) return 0;
  /* H5Oopen + H5Iget_type: the portable way to ask "is it a group" across HDF5 1.10 .. 1.14. */
  hid_t g = H5Oopen(file, group, H5P_DEFAULT);
  if (g < 0) return vae_err(err, "%s: cannot open /%s", out, group);
  int rc = 0;
  if (H5Iget_type(g) != H5I_GROUP) {
    rc = vae_err(err, "%s: /%s exists and is not a group; choose another --group", out, group);
  } else {
    for (int i = 0; i < nds && rc == 0; i++) {
      int h = has_link(g, datasets[i]);
      if (h < 0) rc = vae_err(err, "%s: cannot look inside group /%s", out, group);
      if (h > 0 && !overwrite)
        rc = vae_err(
            err,
            "%s: /%s/%s already exists; pass --overwrite to replace it, or choose another --group or --out",
            out, group, datasets[i]);
    }
  }
  H5Oclose(g);
  return rc;
}

static int check_existing(const char *out, const char *const *groups, int ngroups,
                          const char *const *datasets, int nds, int overwrite, char *err) {
#if H5_VERSION_GE(1, 12, 0)
  htri_t ok = H5Fis_accessible(out, H5P_DEFAULT);
#else
  htri_t ok = H5Fis_hdf5(out);
#endif
  if (ok <= 0)
    return vae_err(err, "%s exists and is not an HDF5 file; remove it or choose another --out", out);
  hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return vae_err(err, "cannot open %s (damaged, or open for writing in another program?)", out);
  int rc = 0;
  for (int i = 0; i < ngroups && rc == 0; i++)
    rc = check_group(f, out, groups[i], datasets, nds, overwrite, err);
  H5Fclose(f);
  return rc;
}

/* ---- attributes ---- */

static int write_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf) {
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return -1;
  int rc = H5Awrite(a, type, buf) < 0 ? -1 : 0;
  H5Aclose(a);
  return rc;
}

/* Variable-length UTF-8 strings: h5py reads them back as str. n < 0: a scalar. */
static int strings_attr(hid_t obj, const char *name, const char *const *values, int n) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5I_INVALID_HID;
  int rc = -1;
  if (t < 0) return -1;
  hsize_t dim = (hsize_t)(n < 0 ? 1 : n);
  if (H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
      (s = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL)) >= 0)
    rc = write_attr(obj, name, t, s, values);
  if (s >= 0) H5Sclose(s);
  H5Tclose(t);
  return rc;
}

static w_dataset *get(vae_h5_writer *w, int id) { return id >= 0 && id < w->n ? &w->ds[id] : NULL; }

int vae_h5w_attr_string(vae_h5_writer *w, int id, const char *name, const char *value, char *err) {
  w_dataset *d = get(w, id);
  if (!d || strings_attr(d->d, name, &value, -1) < 0)
    return vae_err(err, "%s: cannot write the attribute %s (disk full?)", w->out, name);
  return 0;
}

int vae_h5w_attr_strings(vae_h5_writer *w, int id, const char *name, const char *const *values, int n,
                         char *err) {
  w_dataset *d = get(w, id);
  if (!d || n < 1 || strings_attr(d->d, name, values, n) < 0)
    return vae_err(err, "%s: cannot write the attribute %s (disk full?)", w->out, name);
  return 0;
}

int vae_h5w_attr_longs(vae_h5_writer *w, int id, const char *name, const long *values, int n, char *err) {
  w_dataset *d = get(w, id);
  hsize_t dim = (hsize_t)n;
  hid_t s = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5I_INVALID_HID;
  int rc = d && s >= 0 ? write_attr(d->d, name, H5T_NATIVE_LONG, s, values) : -1;
  if (s >= 0) H5Sclose(s);
  return rc < 0 ? vae_err(err, "%s: cannot write the attribute %s (disk full?)", w->out, name) : 0;
}

int vae_h5w_attr_double(vae_h5_writer *w, int id, const char *name, double value, char *err) {
  w_dataset *d = get(w, id);
  hid_t s = H5Screate(H5S_SCALAR);
  int rc = d && s >= 0 ? write_attr(d->d, name, H5T_NATIVE_DOUBLE, s, &value) : -1;
  if (s >= 0) H5Sclose(s);
  return rc < 0 ? vae_err(err, "%s: cannot write the attribute %s (disk full?)", w->out, name) : 0;
}

/* ---- open, datasets, appends ---- */

vae_h5_writer *vae_h5w_open(const char *out, const char *const *groups, int ngroups,
                            const char *const *datasets, int ndatasets, int overwrite, const char *creator,
                            char *err) {
  struct stat st;
  int fresh = stat(out, &st) != 0;
  if (fresh && errno != ENOENT) return vae_err(err, "cannot use --out %s: %s", out, strerror(errno)), NULL;
  if (!fresh && !S_ISREG(st.st_mode)) return vae_err(err, "--out %s exists and is not a file", out), NULL;
  if (!fresh && check_existing(out, groups, ngroups, datasets, ndatasets, overwrite, err) < 0) return NULL;

  vae_h5_writer *w = callocCheck(1, sizeof *w);
  if (vae_durable_begin(&w->dur, out, "HDF5 file", err) < 0) {
    free(w);
    return NULL;
  }
  w->out = w->dur.path, w->tmp = w->dur.tmp;
  w->overwrite = overwrite;
  w->threads = 1;
  w->file = H5I_INVALID_HID;
  if (fresh) {
    w->file = H5Fcreate(w->tmp, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
      vae_err(err, "cannot create %s (does the folder exist and is it writable?)", w->tmp);
      free(w);
      return NULL;
    }
  } else {
    if (copy_file(out, w->tmp, err) < 0) {
      vae_durable_abandon(&w->dur);
      free(w);
      return NULL;
    }
    if ((w->file = H5Fopen(w->tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) {
      vae_err(err, "cannot open the copy %s of %s for writing", w->tmp, out);
      vae_h5w_abort(w);
      return NULL;
    }
  }
  /* Root attribute: always on a new file; on an existing one only if nobody set it before us. */
  htri_t has = H5Aexists(w->file, "created_by");
  if (has < 0 || ((fresh || !has) && strings_attr(w->file, "created_by", &creator, -1) < 0)) {
    vae_err(err, "%s: cannot write the root attribute created_by", out);
    vae_h5w_abort(w);
    return NULL;
  }
  return w;
}

void vae_h5w_threads(vae_h5_writer *w, int threads) {
  w->threads = threads < 1 ? 1 : threads > 256 ? 256 : threads;
}

int vae_h5w_dataset(vae_h5_writer *w, const char *group, const char *name, vae_h5w_type type, int nd,
                    const uint64_t *dims, long chunk_rows, int *id, char *err) {
  if (w->n == VAE_H5W_MAX_DATASETS || nd < 1 || nd > VAE_H5W_MAX_RANK)
    return vae_err(err, "internal: h5 writer: too many datasets or dimensions");
  w_dataset *d = &w->ds[w->n];
  memset(d, 0, sizeof *d);
  snprintf(d->group, sizeof d->group, "%s", group);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->nd = nd;
  d->mem_type = type == VAE_H5W_U8 ? H5T_NATIVE_UCHAR : H5T_NATIVE_UINT32;
  d->row_bytes = d->elem = type == VAE_H5W_U8 ? 1 : 4;
  for (int i = 0; i < nd; i++) d->dims[i] = dims[i];
  for (int i = 1; i < nd; i++) d->row_bytes *= dims[i];
  hid_t space = H5Screate_simple(nd, d->dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  int ok = space >= 0 && dcpl >= 0;
  if (ok && chunk_rows > 0 && dims[0] > 0) {
    /* HDF5 chunks must stay under 4 GiB; keep them under 1 GiB (large images, large --chunk). */
    hsize_t rows = (hsize_t)chunk_rows, max_rows = ((hsize_t)1 << 30) / d->row_bytes;
    if (rows > max_rows) rows = max_rows ? max_rows : 1;
    if (rows > d->dims[0]) rows = d->dims[0];
    hsize_t cd[VAE_H5W_MAX_RANK];
    for (int i = 0; i < nd; i++) cd[i] = i ? d->dims[i] : rows;
    d->chunk_rows = rows;
    ok = H5Pset_chunk(dcpl, nd, cd) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
         H5Pset_deflate(dcpl, VAE_H5W_GZIP) >= 0;
    d->buf = mallocCheck((size_t)w->threads * rows * d->row_bytes);
  }
  hid_t ftype = type == VAE_H5W_U8 ? H5T_STD_U8LE : H5T_STD_U32LE;
  d->d = ok ? H5Dcreate_anon(w->file, ftype, space, dcpl, H5P_DEFAULT) : H5I_INVALID_HID;
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  if (d->d < 0) {
    free(d->buf);
    return vae_err(err, "%s: cannot create the dataset /%s/%s (disk full?)", w->out, group, name);
  }
  *id = w->n++;
  return 0;
}

/* Hands rows [written, written + n) to HDF5. */
static int write_rows(vae_h5_writer *w, w_dataset *d, const void *rows, hsize_t n, char *err) {
  hsize_t start[VAE_H5W_MAX_RANK] = {d->written}, count[VAE_H5W_MAX_RANK] = {n};
  for (int i = 1; i < d->nd; i++) count[i] = d->dims[i];
  hid_t fs = H5Dget_space(d->d), ms = H5Screate_simple(d->nd, count, NULL);
  int ok = fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
           H5Dwrite(d->d, d->mem_type, ms, fs, H5P_DEFAULT, rows) >= 0;
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (!ok) return vae_err(err, "%s: cannot write /%s/%s (disk full?)", w->out, d->group, d->name);
  d->written += n;
  return 0;
}

/* Compresses the buffered rows (whole chunks; the last one zero-padded, as HDF5 stores an edge
 * chunk full-size) on the writer's threads and writes them with H5Dwrite_chunk, in order. */
static int flush_chunks(vae_h5_writer *w, w_dataset *d, char *err) {
  if (!d->buffered) return 0;
  const size_t cbytes = d->chunk_rows * d->row_bytes, n = (d->buffered + d->chunk_rows - 1) / d->chunk_rows;
  memset(d->buf + d->buffered * d->row_bytes, 0, n * cbytes - d->buffered * d->row_bytes);
  unsigned char *in[256], *out[256];
  size_t len[256];
  for (size_t i = 0; i < n; i++) in[i] = d->buf + i * cbytes;
  int rc = vae_h5_compress_chunks(in, n, cbytes, d->elem, VAE_H5W_GZIP, w->threads, out, len);
  if (rc < 0) vae_err(err, "%s: compressing /%s/%s failed (out of memory?)", w->out, d->group, d->name);
  for (size_t i = 0; i < n && rc == 0; i++) {
    hsize_t off[VAE_H5W_MAX_RANK] = {d->written + i * d->chunk_rows, 0, 0, 0};
    if (H5Dwrite_chunk(d->d, H5P_DEFAULT, 0, off, len[i], out[i]) < 0)
      rc = vae_err(err, "%s: cannot write /%s/%s (disk full?)", w->out, d->group, d->name);
  }
  for (size_t i = 0; i < n; i++) free(out[i]);
  if (rc == 0) d->written += d->buffered, d->buffered = 0;
  return rc;
}

int vae_h5w_append(vae_h5_writer *w, int id, const void *rows, uint64_t n, char *err) {
  w_dataset *d = get(w, id);
  if (!d) return vae_err(err, "internal: h5 writer: no dataset %d", id);
  if (d->written + d->buffered + n > d->dims[0])
    return vae_err(err, "internal: h5 writer: more rows than /%s/%s holds", d->group, d->name);
  const unsigned char *p = rows;
  if (!d->chunk_rows) return n ? write_rows(w, d, p, n, err) : 0;
  const hsize_t cap = (hsize_t)w->threads * d->chunk_rows;
  while (n > 0) {
    hsize_t k = cap - d->buffered < n ? cap - d->buffered : n;
    memcpy(d->buf + d->buffered * d->row_bytes, p, k * d->row_bytes);
    d->buffered += k;
    p += k * d->row_bytes;
    n -= k;
    if (d->buffered == cap && flush_chunks(w, d, err) < 0) return -1;
  }
  return 0;
}

/* ---- commit ---- */

static int finish_dataset(vae_h5_writer *w, w_dataset *d, char *err) {
  if (flush_chunks(w, d, err) < 0) return -1;
  if (d->written == d->dims[0]) return 0;
  if (!d->chunk_rows)
    return vae_err(err, "internal: h5 writer: /%s/%s got %llu of %llu rows", d->group, d->name,
                   (unsigned long long)d->written, (unsigned long long)d->dims[0]);
  hsize_t dims[VAE_H5W_MAX_RANK];
  memcpy(dims, d->dims, sizeof dims);
  dims[0] = d->written;
  if (H5Dset_extent(d->d, dims) < 0)
    return vae_err(err, "%s: cannot resize /%s/%s", w->out, d->group, d->name);
  return 0;
}

/* Links dataset d in as /group/name: the first change any reader of the file could see. */
static int link_dataset(vae_h5_writer *w, w_dataset *d, char *err) {
  int e = has_link(w->file, d->group);
  hid_t g = e > 0    ? H5Gopen2(w->file, d->group, H5P_DEFAULT)
            : e == 0 ? H5Gcreate2(w->file, d->group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                     : H5I_INVALID_HID;
  if (g < 0) return vae_err(err, "%s: cannot create group /%s", w->out, d->group);
  int rc = 0;
  if (w->overwrite && has_link(g, d->name) > 0 && H5Ldelete(g, d->name, H5P_DEFAULT) < 0)
    rc = vae_err(err, "%s: cannot remove the old /%s/%s", w->out, d->group, d->name);
  if (rc == 0 && H5Olink(d->d, g, d->name, H5P_DEFAULT, H5P_DEFAULT) < 0)
    rc = vae_err(err, "%s: cannot link the new /%s/%s", w->out, d->group, d->name);
  H5Gclose(g);
  return rc;
}

static void close_all(vae_h5_writer *w) {
  for (int i = 0; i < w->n; i++) {
    if (w->ds[i].d >= 0) H5Dclose(w->ds[i].d);
    free(w->ds[i].buf);
    w->ds[i].d = H5I_INVALID_HID;
    w->ds[i].buf = NULL;
  }
}

int vae_h5w_commit(vae_h5_writer *w, char *err) {
  int rc = 0;
  for (int i = 0; i < w->n && rc == 0; i++) rc = finish_dataset(w, &w->ds[i], err);
  for (int i = 0; i < w->n && rc == 0; i++) rc = link_dataset(w, &w->ds[i], err);
  close_all(w);
  if (H5Fclose(w->file) < 0 && rc == 0) rc = vae_err(err, "%s: closing the file failed (disk full?)", w->tmp);
  w->file = H5I_INVALID_HID;
  if (rc == 0) {
    rc = vae_durable_publish(&w->dur, err);
  } else {
    vae_durable_abandon(&w->dur);
  }
  free(w);
  return rc;
}

void vae_h5w_abort(vae_h5_writer *w) {
  if (!w) return;
  close_all(w);
  if (w->file >= 0) H5Fclose(w->file);
  vae_durable_abandon(&w->dur);
  free(w);
}
