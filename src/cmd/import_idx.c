/* import_idx.c: `vae_mpi import-idx`, IDX images + labels into one group of an HDF5 file, the layout
 * vae_mpi train reads (datasets/README.md): /NAME/images uint8 (N, H, W, C), /NAME/labels uint8 (N,).
 * Single process: must never call MPI_Init or need mpirun (the default sec2 file driver works
 * without MPI), must never leave a half-written new file, and must never damage groups already in an
 * existing file. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "error.h"
#include "idx.h"

#define IMPORT_DEFAULT_CHUNK 1024L /* images per HDF5 chunk */
#define IMPORT_GZIP_LEVEL 4

typedef struct {
  const char *images, *labels, *out, *group;
  long chunk;
  int overwrite;
} import_opts;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: vae_mpi import-idx --images FILE --labels FILE --out FILE.h5 --group NAME\n"
      "                          [--chunk N] [--overwrite]\n"
      "\n"
      "Imports IDX files (MNIST / Fashion-MNIST, gzipped or plain, unsigned bytes) into FILE.h5:\n"
      "  /NAME/images  uint8 (N, H, W, C), C = 1 for 3-d IDX; chunked, gzip %d + shuffle\n"
      "  /NAME/labels  uint8 (N,)\n"
      "FILE.h5 is created if absent (atomically: written to a temporary name, then renamed);\n"
      "an existing file keeps its other groups.\n"
      "\n"
      "  --images FILE   IDX images, 3-d (N, H, W) or 4-d (N, H, W, C)\n"
      "  --labels FILE   IDX labels, 1-d (N); N must match the images\n"
      "  --out FILE.h5   output HDF5 file\n"
      "  --group NAME    group to write, e.g. train or test (one name, no '/')\n"
      "  --chunk N       images per HDF5 chunk (default %ld)\n"
      "  --overwrite     replace /NAME/images and /NAME/labels if they exist\n"
      "  --help          this text\n"
      "\n"
      "example: vae_mpi import-idx --images /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \\\n"
      "           --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz \\\n"
      "           --out datasets/fashion-mnist.h5 --group test\n",
      IMPORT_GZIP_LEVEL, IMPORT_DEFAULT_CHUNK);
}

/* A usage error: one line, exit status 2. */
static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "vae_mpi: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see vae_mpi import-idx --help)\n");
  return 2;
}

/* Returns 0 (run), 1 (--help printed), or 2 (usage error printed). */
static int parse_args(int argc, char **argv, import_opts *o) {
  memset(o, 0, sizeof *o);
  o->chunk = IMPORT_DEFAULT_CHUNK;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 1;
    }
    if (strcmp(a, "--overwrite") == 0) {
      o->overwrite = 1;
      continue;
    }
    const char **slot = NULL;
    if (strcmp(a, "--images") == 0)
      slot = &o->images;
    else if (strcmp(a, "--labels") == 0)
      slot = &o->labels;
    else if (strcmp(a, "--out") == 0)
      slot = &o->out;
    else if (strcmp(a, "--group") == 0)
      slot = &o->group;
    else if (strcmp(a, "--chunk") != 0)
      return usage_error("unknown option '%s'", a);
    if (i + 1 >= argc || argv[i + 1][0] == '\0') return usage_error("option %s needs a value", a);
    const char *v = argv[++i];
    if (slot) {
      *slot = v;
      continue;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < 1 || n > 1000000)
      return usage_error("--chunk '%s' must be a whole number of images from 1 to 1000000", v);
    o->chunk = n;
  }
  if (!o->images) return usage_error("%s is required", "--images FILE");
  if (!o->labels) return usage_error("%s is required", "--labels FILE");
  if (!o->out) return usage_error("%s is required", "--out FILE.h5");
  if (!o->group) return usage_error("%s is required", "--group NAME");
  if (strchr(o->group, '/') || strcmp(o->group, ".") == 0)
    return usage_error("--group '%s' must be one plain name such as train or test, without '/'", o->group);
  return 0;
}

/* Reads both IDX files and checks they fit together: images 3-d or 4-d, labels 1-d, same N. */
static int load_inputs(const import_opts *o, vae_idx *img, vae_idx *lab, char *err) {
  if (vae_idx_read(o->images, img, err) != 0) return -1;
  char shape[64];
  vae_idx_shape_str(img, shape, sizeof shape);
  if (img->ndim != 3 && img->ndim != 4)
    return vae_err(err, "%s: images must be 3-d (N, H, W) or 4-d (N, H, W, C), this file is %s", o->images,
                   shape);
  if (vae_idx_read(o->labels, lab, err) != 0) return -1;
  char lshape[64];
  vae_idx_shape_str(lab, lshape, sizeof lshape);
  if (lab->ndim != 1)
    return vae_err(err,
                   "%s: labels must be 1-d (N,), this file is %s; did you swap --images and "
                   "--labels?",
                   o->labels, lshape);
  if (lab->dims[0] != img->dims[0])
    return vae_err(err, "%s has %zu labels but %s has %zu images; pass the matching pair", o->labels,
                   lab->dims[0], o->images, img->dims[0]);
  return 0;
}

/* ---- HDF5 helpers: every failure here is on a file we opened for writing, so it is reported as
 * a user-level error (disk full, permissions), never as an abort. ---- */

static int write_string_attr(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5I_INVALID_HID, a = H5I_INVALID_HID;
  int rc = -1;
  if (t < 0) return -1;
  /* Variable-length UTF-8: h5py reads it back as str. */
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) goto done;
  if ((s = H5Screate(H5S_SCALAR)) < 0) goto done;
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) goto done;
  if ((a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
  if (H5Awrite(a, t, &value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  H5Tclose(t);
  return rc;
}

/* Writes x as an anonymous (not yet linked) uint8 dataset of shape dims[0..nd), chunked along N
 * with gzip + shuffle when chunk_n > 0. Returns the open dataset, or a negative id. */
static hid_t write_anon(hid_t file, const vae_idx *x, const hsize_t *dims, int nd, long chunk_n) {
  hid_t space = H5Screate_simple(nd, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t d = H5I_INVALID_HID;
  if (space < 0 || dcpl < 0) goto done;
  if (chunk_n > 0) {
    hsize_t cd[4], row = 1;
    for (int i = 0; i < nd; i++) cd[i] = dims[i];
    for (int i = 1; i < nd; i++) row *= dims[i];
    /* HDF5 chunks must stay under 4 GiB; keep them under 1 GiB (large images, large --chunk). */
    hsize_t rows = (hsize_t)chunk_n, max_rows = ((hsize_t)1 << 30) / row;
    if (rows > max_rows) rows = max_rows ? max_rows : 1;
    cd[0] = rows < dims[0] ? rows : dims[0];
    if (H5Pset_chunk(dcpl, nd, cd) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, IMPORT_GZIP_LEVEL) < 0)
      goto done;
  }
  d = H5Dcreate_anon(file, H5T_STD_U8LE, space, dcpl, H5P_DEFAULT);
  if (d >= 0 && H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->data) < 0) {
    H5Dclose(d);
    d = H5I_INVALID_HID;
  }
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return d;
}

/* 1 if path names an existing link under loc, 0 if not, -1 on error. */
static int has_link(hid_t loc, const char *name) {
  htri_t e = H5Lexists(loc, name, H5P_DEFAULT);
  return e < 0 ? -1 : (int)(e > 0);
}

/* Writes /group/images and /group/labels into an open file.
 * Atomicity on an existing file: HDF5 has no transactions, but it does have anonymous objects. Both
 * datasets are created with H5Dcreate_anon and written in full, with their attributes, while no link
 * points at them; only then are they linked in (H5Olink). A failure before that point leaves the
 * file's existing groups untouched (the unlinked datasets are freed when closed; their space stays
 * allocated in the file until h5repack). With --overwrite the old links are deleted just before the
 * new ones are made. */
static int write_group(hid_t file, const import_opts *o, const vae_idx *img, const vae_idx *lab, int fresh,
                       char *err) {
  hid_t g = H5I_INVALID_HID, di = H5I_INVALID_HID, dl = H5I_INVALID_HID;
  int rc = -1;
  /* Refuse before writing anything. */
  int gexists = has_link(file, o->group);
  if (gexists < 0) {
    vae_err(err, "%s: cannot look up /%s", o->out, o->group);
    goto done;
  }
  if (gexists) {
    /* H5Oopen + H5Iget_type: the portable way to ask "is it a group" across HDF5 1.10 .. 1.14. */
    if ((g = H5Oopen(file, o->group, H5P_DEFAULT)) < 0) {
      vae_err(err, "%s: cannot open /%s", o->out, o->group);
      goto done;
    }
    if (H5Iget_type(g) != H5I_GROUP) {
      vae_err(err, "%s: /%s exists and is not a group; choose another --group", o->out, o->group);
      goto done;
    }
    int hi = has_link(g, "images"), hl = has_link(g, "labels");
    if (hi < 0 || hl < 0) {
      vae_err(err, "%s: cannot look inside group /%s", o->out, o->group);
      goto done;
    }
    if ((hi || hl) && !o->overwrite) {
      vae_err(err,
              "%s: /%s/%s already exists; pass --overwrite to replace it, or choose another "
              "--group or --out",
              o->out, o->group, hi ? "images" : "labels");
      goto done;
    }
  }

  hsize_t idims[4] = {img->dims[0], img->dims[1], img->dims[2], img->ndim == 4 ? img->dims[3] : 1};
  hsize_t ldims[1] = {lab->dims[0]};
  if ((di = write_anon(file, img, idims, 4, o->chunk)) < 0 || (dl = write_anon(file, lab, ldims, 1, 0)) < 0) {
    vae_err(err, "%s: cannot write the datasets (disk full or no permission?)", o->out);
    goto done;
  }
  if (write_string_attr(di, "source", o->images) < 0 || write_string_attr(di, "format", "idx") < 0 ||
      write_string_attr(dl, "source", o->labels) < 0 || write_string_attr(dl, "format", "idx") < 0) {
    vae_err(err, "%s: cannot write the dataset attributes", o->out);
    goto done;
  }
  /* Root attribute: always on a new file; on an existing one only if nobody set it before us. */
  htri_t has_created = H5Aexists(file, "created_by");
  if (has_created < 0 ||
      ((fresh || !has_created) && write_string_attr(file, "created_by", "vae_mpi import-idx") < 0)) {
    vae_err(err, "%s: cannot write the root attribute created_by", o->out);
    goto done;
  }

  /* Link everything in: the first change any existing reader could see. */
  if (g < 0 && (g = H5Gcreate2(file, o->group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
    vae_err(err, "%s: cannot create group /%s", o->out, o->group);
    goto done;
  }
  if (o->overwrite) {
    if ((has_link(g, "images") > 0 && H5Ldelete(g, "images", H5P_DEFAULT) < 0) ||
        (has_link(g, "labels") > 0 && H5Ldelete(g, "labels", H5P_DEFAULT) < 0)) {
      vae_err(err, "%s: cannot remove the old /%s datasets", o->out, o->group);
      goto done;
    }
  }
  if (H5Olink(di, g, "images", H5P_DEFAULT, H5P_DEFAULT) < 0 ||
      H5Olink(dl, g, "labels", H5P_DEFAULT, H5P_DEFAULT) < 0) {
    vae_err(err, "%s: cannot link the new datasets into /%s", o->out, o->group);
    goto done;
  }
  rc = 0;
done:
  if (dl >= 0) H5Dclose(dl);
  if (di >= 0) H5Dclose(di);
  if (g >= 0) H5Oclose(g);
  return rc;
}

/* Opens (or creates, under a temporary name) the output, writes the group, closes, renames. */
static int write_output(const import_opts *o, const vae_idx *img, const vae_idx *lab, char *err) {
  struct stat st;
  int fresh = stat(o->out, &st) != 0;
  char tmp[4096 + 32];
  hid_t file;
  if (fresh) {
    if (errno != ENOENT) return vae_err(err, "cannot use --out %s: %s", o->out, strerror(errno));
    int w = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->out, (long)getpid());
    if (w < 0 || (size_t)w >= sizeof tmp) return vae_err(err, "--out path is too long: %s", o->out);
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return vae_err(err, "cannot create %s (does the directory exist and is it writable?)", tmp);
  } else {
#if H5_VERSION_GE(1, 12, 0)
    htri_t ok = H5Fis_accessible(o->out, H5P_DEFAULT);
#else
    htri_t ok = H5Fis_hdf5(o->out);
#endif
    if (ok <= 0)
      return vae_err(err, "%s exists and is not an HDF5 file; remove it or choose another --out", o->out);
    file = H5Fopen(o->out, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0)
      return vae_err(err, "cannot open %s for writing (permissions, or open in another program?)", o->out);
  }
  int rc = write_group(file, o, img, lab, fresh, err);
  if (H5Fclose(file) < 0 && rc == 0)
    rc = vae_err(err, "%s: closing the file failed (disk full?)", fresh ? tmp : o->out);
  if (fresh) {
    if (rc == 0 && rename(tmp, o->out) != 0)
      rc = vae_err(err, "cannot rename %s to %s: %s", tmp, o->out, strerror(errno));
    if (rc != 0) unlink(tmp);
  }
  return rc;
}

int vae_cmd_import_idx(int argc, char **argv) {
  vae_h5_quiet();
  import_opts o;
  int pr = parse_args(argc, argv, &o);
  if (pr == 1) return 0;
  if (pr != 0) return pr;

  char err[VAE_ERR_LEN];
  vae_idx img = {0}, lab = {0};
  int rc = load_inputs(&o, &img, &lab, err);
  if (rc == 0) rc = write_output(&o, &img, &lab, err);
  if (rc == 0) {
    printf(
        "import-idx: wrote %s: /%s/images uint8 (%zu, %zu, %zu, %zu), /%s/labels uint8 (%zu,)"
        " from %s and %s\n",
        o.out, o.group, img.dims[0], img.dims[1], img.dims[2], img.ndim == 4 ? img.dims[3] : (size_t)1,
        o.group, lab.dims[0], o.images, o.labels);
  } else {
    fprintf(stderr, "vae_mpi: error: %s\n", err);
  }
  vae_idx_free(&img);
  vae_idx_free(&lab);
  return rc == 0 ? 0 : 1;
}
