/* import_idx.c: `vae_mpi import-idx`, IDX images + labels into one group of an HDF5 file, the layout
 * vae_mpi train reads (datasets/README.md): /NAME/images uint8 (N, H, W, C), /NAME/labels uint8 (N,).
 * Single process: must never call MPI_Init or need mpirun. The file is written through
 * h5_group_writer.h, so a failure never leaves a half-written file or a half-replaced group. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "h5_group_writer.h"
#include "idx.h"

#define IMPORT_DEFAULT_CHUNK 1024L /* images per HDF5 chunk */

typedef struct {
  char images[VAE_PATH_LEN], labels[VAE_PATH_LEN], out[VAE_PATH_LEN], group[VAE_PATH_LEN];
  long chunk;
  int overwrite;
} import_opts;

#define USAGE \
  "vae_mpi import-idx --images FILE --labels FILE --out FILE.h5 --group NAME [--chunk N] [--overwrite]"

/* Flags, then the checks the flag table cannot make. 0 run, 1 --help printed, -1 error in err. */
static int parse_args(int argc, char **argv, import_opts *o, char *err) {
  memset(o, 0, sizeof *o);
  o->chunk = IMPORT_DEFAULT_CHUNK;
  const vae_flag flags[] = {
      {"--images", VAE_FLAG_STRING, o->images, "FILE",
       "IDX images (MNIST-style, gzipped or plain, unsigned bytes), 3-d (N, H, W) or 4-d (N, H, W, C) -> /NAME/images uint8 (N, H, W, C) (required)",
       NULL},
      {"--labels", VAE_FLAG_STRING, o->labels, "FILE",
       "IDX labels, 1-d (N); N must match the images -> /NAME/labels uint8 (N,) (required)", NULL},
      {"--out", VAE_FLAG_STRING, o->out, "FILE.h5",
       "HDF5 file to create, or to add the group to (its other groups are kept; written to a temporary name, then renamed) (required)",
       NULL},
      {"--group", VAE_FLAG_STRING, o->group, "NAME", "group to write, e.g. train or test (required)", NULL},
      {"--chunk", VAE_FLAG_LONG, &o->chunk, "N", "images per HDF5 chunk (gzip 4 + shuffle)", NULL},
      {"--overwrite", VAE_FLAG_BOOL, &o->overwrite, NULL,
       "replace /NAME/images and /NAME/labels if they exist", NULL},
  };
  int rc = vae_cli_parse(USAGE, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
  if (rc != 0) return rc;
  if (!o->images[0]) return vae_err(err, "import-idx needs --images FILE (an IDX images file)");
  if (!o->labels[0]) return vae_err(err, "import-idx needs --labels FILE (an IDX labels file)");
  if (!o->out[0]) return vae_err(err, "import-idx needs --out FILE.h5");
  if (!o->group[0]) return vae_err(err, "import-idx needs --group NAME (train or test, say)");
  if (strchr(o->group, '/') || strcmp(o->group, ".") == 0)
    return vae_err(err, "--group '%s' must be one plain name such as train or test, without '/'", o->group);
  if (o->chunk < 1 || o->chunk > 1000000)
    return vae_err(err, "--chunk must be a whole number of images from 1 to 1000000, got %ld", o->chunk);
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
    return vae_err(err, "%s: labels must be 1-d (N,), this file is %s; did you swap --images and --labels?",
                   o->labels, lshape);
  if (lab->dims[0] != img->dims[0])
    return vae_err(err, "%s has %zu labels but %s has %zu images; pass the matching pair", o->labels,
                   lab->dims[0], o->images, img->dims[0]);
  return 0;
}

/* One dataset: created, filled, its source and format attributes. */
static int put(vae_h5_writer *w, const import_opts *o, const char *name, const vae_idx *x, int nd,
               const uint64_t *dims, long chunk, const char *source, char *err) {
  int id;
  if (vae_h5w_dataset(w, o->group, name, VAE_H5W_U8, nd, dims, chunk, &id, err) < 0 ||
      vae_h5w_append(w, id, x->data, dims[0], err) < 0 ||
      vae_h5w_attr_string(w, id, "source", source, err) < 0 ||
      vae_h5w_attr_string(w, id, "format", "idx", err) < 0)
    return -1;
  return 0;
}

static int write_output(const import_opts *o, const vae_idx *img, const vae_idx *lab, char *err) {
  const char *groups[] = {o->group}, *names[] = {"images", "labels"};
  vae_h5_writer *w = vae_h5w_open(o->out, groups, 1, names, 2, o->overwrite, "vae_mpi import-idx", err);
  if (!w) return -1;
  uint64_t idims[4] = {img->dims[0], img->dims[1], img->dims[2], img->ndim == 4 ? img->dims[3] : 1};
  uint64_t ldims[1] = {lab->dims[0]};
  if (put(w, o, "images", img, 4, idims, o->chunk, o->images, err) < 0 ||
      put(w, o, "labels", lab, 1, ldims, 0, o->labels, err) < 0) {
    vae_h5w_abort(w);
    return -1;
  }
  return vae_h5w_commit(w, err);
}

int vae_cmd_import_idx(int argc, char **argv) {
  vae_h5_quiet();
  import_opts o;
  char err[VAE_ERR_LEN];
  int rc = parse_args(argc, argv, &o, err);
  if (rc == 1) return 0;
  if (rc < 0) vae_exit_error(err);

  vae_idx img = {0}, lab = {0};
  rc = load_inputs(&o, &img, &lab, err);
  if (rc == 0) rc = write_output(&o, &img, &lab, err);
  if (rc == 0)
    printf(
        "import-idx: wrote %s: /%s/images uint8 (%zu, %zu, %zu, %zu), /%s/labels uint8 (%zu,) from %s and %s\n",
        o.out, o.group, img.dims[0], img.dims[1], img.dims[2], img.ndim == 4 ? img.dims[3] : (size_t)1,
        o.group, lab.dims[0], o.images, o.labels);
  vae_idx_free(&img);
  vae_idx_free(&lab);
  if (rc < 0) vae_exit_error(err);
  return 0;
}
