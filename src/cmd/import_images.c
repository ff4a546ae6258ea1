/* import_images.c: `vae_mpi import-images`, a folder of PNG and JPEG files laid out as torchvision's
 * ImageFolder (ROOT/<class>/<file>) into /NAME/images uint8 (N, H, W, C) and /NAME/labels of an HDF5
 * file, optionally split per class into /train and /test. The steps: list (image_folder.h), probe
 * every header and decide size and channels, split, decode in blocks on every core
 * (image_import.h), append, commit (h5_group_writer.h). Single process, never MPI; nothing at
 * --out changes unless every image was written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "h5_group_writer.h"
#include "image_import.h"
#include "rng.h"

#define DEFAULT_CHUNK 1024L     /* images per HDF5 chunk, as import-idx */
#define BLOCK_BYTES (64L << 20) /* decoded images held at once */
#define SHOW_BAD 5              /* bad files named by --skip-bad's warning */

typedef struct {
  char dir[VAE_PATH_LEN], out[VAE_PATH_LEN], group[VAE_PATH_LEN], size[VAE_PATH_LEN];
  char channels[VAE_PATH_LEN], background[VAE_PATH_LEN];
  double test_fraction;
  uint64_t seed;
  long chunk;
  int threads, skip_bad, overwrite, group_given;
  vae_image_spec spec; /* from --size, --channels (c = 0: decided by the images), --background */
} opts;

#define USAGE                                                                                         \
  "vae_mpi import-images --dir ROOT --out FILE.h5 [--group NAME] [--size HxW] [--channels auto|1|3] " \
  "[--background white|black] [--test-fraction F] [--seed S] [--skip-bad] [--overwrite]"

static int parse_size(const char *s, vae_image_spec *spec, char *err) {
  char *end = NULL;
  long h = strtol(s, &end, 10), w = h;
  if (end != s && *end == 'x') {
    const char *p = end + 1;
    w = strtol(p, &end, 10);
    if (end == p) end = (char *)p - 1;
  }
  if (end == s || *end != '\0' || h < 1 || w < 1 || h > 16384 || w > 16384)
    return vae_err(
        err, "--size expects HxW (height x width, 1 to 16384 each, e.g. 64x64) or one side N, got '%s'", s);
  spec->h = (int)h, spec->w = (int)w, spec->resize = 1;
  return 0;
}

static int validate(opts *o, char *err) {
  if (!o->dir[0])
    return vae_err(err, "import-images needs --dir ROOT (a folder of ROOT/<class>/<image> files)");
  if (!o->out[0]) return vae_err(err, "import-images needs --out FILE.h5");
  if (strchr(o->group, '/') || !o->group[0] || strcmp(o->group, ".") == 0)
    return vae_err(err, "--group '%s' must be one plain name such as train, without '/'", o->group);
  if (o->size[0] && parse_size(o->size, &o->spec, err) < 0) return -1;
  if (strcmp(o->channels, "auto") && strcmp(o->channels, "1") && strcmp(o->channels, "3"))
    return vae_err(err, "--channels must be auto, 1 (grey) or 3 (RGB), got '%s'", o->channels);
  o->spec.c = strcmp(o->channels, "auto") ? atoi(o->channels) : 0;
  if (strcmp(o->background, "white") && strcmp(o->background, "black"))
    return vae_err(err, "--background must be white or black, got '%s'", o->background);
  o->spec.background = strcmp(o->background, "white") ? 0 : 255;
  if (!(o->test_fraction >= 0 && o->test_fraction < 1))
    return vae_err(err,
                   "--test-fraction must be at least 0 and below 1 (0.1 keeps a tenth of each class), got %g",
                   o->test_fraction);
  if (o->test_fraction > 0 && o->group_given)
    return vae_err(err, "--test-fraction writes the groups train and test; drop --group %s", o->group);
  if (o->chunk < 1 || o->chunk > 1000000)
    return vae_err(err, "--chunk must be a whole number of images from 1 to 1000000, got %ld", o->chunk);
  if (o->threads < 0 || o->threads > 256)
    return vae_err(err, "--threads must be from 0 (every core) to 256, got %d", o->threads);
  return 0;
}

static int parse(int argc, char **argv, opts *o, char *err) {
  memset(o, 0, sizeof *o);
  strcpy(o->group, "train");
  strcpy(o->channels, "auto");
  strcpy(o->background, "white");
  o->chunk = DEFAULT_CHUNK;
  o->seed = 1;
  const vae_flag flags[] = {
      {"--dir", VAE_FLAG_STRING, o->dir, "ROOT",
       "ROOT/<class>/<file>, classes sorted by name become labels 0..K-1; files of ROOT itself: one class (required)",
       NULL},
      {"--out", VAE_FLAG_STRING, o->out, "FILE.h5", "HDF5 file to create or add the group(s) to (required)",
       NULL},
      {"--group", VAE_FLAG_STRING, o->group, "NAME",
       "group to write: /NAME/images (N, H, W, C), /NAME/labels (N,)", &o->group_given},
      {"--size", VAE_FLAG_STRING, o->size, "HxW",
       "centre-crop each image to H:W, then resize (area average / bilinear); without: all must be one size",
       NULL},
      {"--channels", VAE_FLAG_STRING, o->channels, "auto|1|3",
       "3 = RGB, 1 = grey (ITU-R 601 luma); auto: 3 if any image has colour", NULL},
      {"--background", VAE_FLAG_STRING, o->background, "white|black",
       "what transparent pixels are composited onto", NULL},
      {"--test-fraction", VAE_FLAG_DOUBLE, &o->test_fraction, "F",
       "put round(F n) of each class's n images in /test, the rest in /train", NULL},
      {"--seed", VAE_FLAG_U64, &o->seed, "S", "seed of the train/test split", NULL},
      {"--skip-bad", VAE_FLAG_BOOL, &o->skip_bad, NULL,
       "leave out bad files (not an image, damaged, unreadable, another size) instead of stopping", NULL},
      {"--overwrite", VAE_FLAG_BOOL, &o->overwrite, NULL,
       "replace the group's images and labels if they exist", NULL},
      {"--chunk", VAE_FLAG_LONG, &o->chunk, "N", "images per HDF5 chunk (gzip 4 + shuffle)", NULL},
      {"--threads", VAE_FLAG_INT, &o->threads, "T", "decoding threads; 0 = one per core", NULL},
  };
  int rc = vae_cli_parse(USAGE, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
  return rc != 0 ? rc : validate(o, err);
}

/* ---- what is imported: per file its group (-1: left out) ---- */

typedef struct {
  vae_image_list l;
  vae_image_info *info;
  unsigned char *bad;
  signed char *group; /* 0 train (or --group), 1 test, -1 left out */
  vae_bad_files b;
  size_t nstray_skipped;
  int ngroups;
} plan;

static void plan_free(plan *p) {
  vae_image_list_free(&p->l);
  free(p->info);
  free(p->bad);
  free(p->group);
  vae_bad_files_free(&p->b);
}

static int bad_error(const char *path, const char *reason, char *err) {
  return vae_err(err, "%s: %s; fix or remove it, or pass --skip-bad to leave such files out", path, reason);
}

/* Without --size every image must have one size: the first image's, or with --skip-bad the most
 * common one (ties: the earliest); the others are bad. */
static int choose_size(plan *p, opts *o, char *err) {
  size_t best = p->l.n, best_n = 0;
  for (size_t i = 0; i < p->l.n && best == p->l.n; i++)
    if (!p->bad[i]) best = i;
  if (best == p->l.n) return 0;
  for (size_t i = best; o->skip_bad && i < p->l.n && best_n * 2 <= p->l.n; i++) {
    if (p->bad[i]) continue;
    size_t n = 0; /* quadratic only in the number of distinct sizes before a majority is found */
    for (size_t k = 0; k < p->l.n; k++)
      n += !p->bad[k] && p->info[k].width == p->info[i].width && p->info[k].height == p->info[i].height;
    if (n > best_n) best = i, best_n = n;
  }
  o->spec.w = p->info[best].width, o->spec.h = p->info[best].height;
  for (size_t i = 0; i < p->l.n; i++) {
    if (p->bad[i] || (p->info[i].width == o->spec.w && p->info[i].height == o->spec.h)) continue;
    char why[VAE_ERR_LEN];
    snprintf(why, sizeof why, "is %dx%d (width x height) but %s is %dx%d", p->info[i].width,
             p->info[i].height, p->l.path[best], o->spec.w, o->spec.h);
    if (!o->skip_bad)
      return vae_err(err, "%s %s; pass --size HxW to crop and resize every image to one size", p->l.path[i],
                     why);
    p->bad[i] = 1;
    vae_bad_files_add(&p->b, i, why);
  }
  vae_bad_files_sort(&p->b);
  return 0;
}

/* A class left without any image is an error even with --skip-bad: dropping it would renumber the
 * labels of every later class. */
static int check_classes(const plan *p, const opts *o, const unsigned char *gone, char *err) {
  for (int c = 0; c < p->l.nclasses; c++) {
    size_t n = 0, have = 0;
    for (size_t i = 0; i < p->l.n; i++)
      if (p->l.label[i] == c) n++, have += !gone[i];
    if (n && !have)
      return vae_err(
          err, "class '%s' (%s) has %zu file(s) and none is a readable image; fix them, or remove the folder",
          p->l.classes[c], o->dir, n);
  }
  return 0;
}

/* Lists, probes every header, decides size and channels. */
static int survey(plan *p, opts *o, int threads, char *err) {
  if (vae_image_list_scan(o->dir, &p->l, err) < 0) return -1;
  if (p->l.nstray && !o->skip_bad)
    return vae_err(
        err,
        "%s: a file beside the class folders (the layout is ROOT/<class>/<image>); move or remove it, or pass --skip-bad",
        p->l.stray[0]);
  p->nstray_skipped = p->l.nstray;
  p->info = callocCheck(p->l.n, sizeof *p->info);
  p->bad = mallocCheck(p->l.n);
  p->group = mallocCheck(p->l.n);
  vae_images_probe(&p->l, threads, !o->skip_bad, p->info, p->bad, &p->b);
  if (p->b.n && !o->skip_bad) return bad_error(p->l.path[p->b.file[0]], p->b.reason[0], err);
  if (!o->spec.resize && choose_size(p, o, err) < 0) return -1;
  if (check_classes(p, o, p->bad, err) < 0) return -1;
  if (!o->spec.c) {
    o->spec.c = 1;
    for (size_t i = 0; i < p->l.n; i++)
      if (!p->bad[i] && p->info[i].colour) o->spec.c = 3;
  }
  return 0;
}

/* Each class's readable files: round(F n) of them to test (1), chosen by a seeded shuffle per class. */
static void split(plan *p, const opts *o) {
  p->ngroups = o->test_fraction > 0 ? 2 : 1;
  uint32_t *perm = mallocCheck((p->l.n ? p->l.n : 1) * sizeof *perm);
  size_t *files = mallocCheck((p->l.n ? p->l.n : 1) * sizeof *files);
  for (int c = 0; c < p->l.nclasses; c++) {
    size_t n = 0;
    for (size_t i = 0; i < p->l.n; i++)
      if (p->l.label[i] == c) {
        p->group[i] = p->bad[i] ? -1 : 0;
        if (!p->bad[i]) files[n++] = i;
      }
    if (p->ngroups == 1) continue;
    size_t ntest = (size_t)floor(o->test_fraction * (double)n + 0.5);
    vae_rng_shuffle(perm, (uint32_t)n, o->seed, VAE_RNG_SPLIT, 0, (uint64_t)c);
    for (size_t k = 0; k < ntest; k++) p->group[files[perm[k]]] = 1;
  }
  free(files);
  free(perm);
}

/* ---- writing ---- */

typedef struct {
  vae_h5_writer *w;
  int images[2], labels[2];
  size_t n[2];
  long *counts[2]; /* per class */
} output;

static int open_output(const plan *p, const opts *o, int threads, output *out, char *err) {
  const char *groups[2] = {p->ngroups == 2 ? "train" : o->group, "test"}, *names[] = {"images", "labels"};
  out->w = vae_h5w_open(o->out, groups, p->ngroups, names, 2, o->overwrite, "vae_mpi import-images", err);
  if (!out->w) return -1;
  vae_h5w_threads(out->w, threads);
  for (size_t i = 0; i < p->l.n; i++)
    if (p->group[i] >= 0) out->n[p->group[i]]++;
  for (int g = 0; g < p->ngroups; g++) {
    uint64_t dims[4] = {out->n[g], (uint64_t)o->spec.h, (uint64_t)o->spec.w, (uint64_t)o->spec.c};
    out->counts[g] = callocCheck((size_t)p->l.nclasses, sizeof(long));
    if (vae_h5w_dataset(out->w, groups[g], "images", VAE_H5W_U8, 4, dims, o->chunk, &out->images[g], err) <
            0 ||
        vae_h5w_dataset(out->w, groups[g], "labels", p->l.nclasses <= 256 ? VAE_H5W_U8 : VAE_H5W_U32, 1, dims,
                        1L << 16, &out->labels[g], err) < 0)
      return -1;
  }
  return 0;
}

static void size_policy(const opts *o, char *s, size_t n) {
  if (o->spec.resize)
    snprintf(
        s, n,
        "centre-cropped to the aspect ratio %d:%d, then resized to %dx%d (height x width): area average when shrinking, bilinear when enlarging",
        o->spec.h, o->spec.w, o->spec.h, o->spec.w);
  else
    snprintf(s, n, "as found: every image %dx%d (height x width)%s", o->spec.h, o->spec.w,
             o->skip_bad ? ", other sizes left out (--skip-bad)" : "");
}

static int write_attributes(const plan *p, const opts *o, output *out, char *err) {
  char policy[512];
  size_policy(o, policy, sizeof policy);
  const char *chans = o->spec.c == 3 ? "RGB" : "grey (ITU-R 601 luma of RGB)";
  const long seed = (long)o->seed;
  for (int g = 0; g < p->ngroups; g++) {
    int im = out->images[g], lb = out->labels[g];
    if (vae_h5w_attr_string(out->w, im, "source", o->dir, err) < 0 ||
        vae_h5w_attr_string(out->w, im, "format", "image-folder", err) < 0 ||
        vae_h5w_attr_string(out->w, im, "size_policy", policy, err) < 0 ||
        vae_h5w_attr_string(out->w, im, "channels", chans, err) < 0 ||
        vae_h5w_attr_string(out->w, im, "background", o->background, err) < 0 ||
        vae_h5w_attr_string(out->w, lb, "source", o->dir, err) < 0 ||
        vae_h5w_attr_string(out->w, lb, "format", "image-folder", err) < 0 ||
        vae_h5w_attr_strings(out->w, lb, "classes", (const char *const *)p->l.classes, p->l.nclasses, err) <
            0 ||
        vae_h5w_attr_longs(out->w, lb, "class_counts", out->counts[g], p->l.nclasses, err) < 0)
      return -1;
    if (p->ngroups == 2 && (vae_h5w_attr_double(out->w, im, "test_fraction", o->test_fraction, err) < 0 ||
                            vae_h5w_attr_longs(out->w, im, "split_seed", &seed, 1, err) < 0))
      return -1;
  }
  return 0;
}

/* Decodes the chosen files in blocks on every thread and appends them in file order. */
static int decode_and_append(plan *p, const opts *o, int threads, output *out, char *err) {
  const size_t frame = (size_t)o->spec.h * (size_t)o->spec.w * (size_t)o->spec.c;
  size_t block = BLOCK_BYTES / frame < 16 ? 16 : BLOCK_BYTES / frame, n = 0;
  size_t *idx = mallocCheck((p->l.n ? p->l.n : 1) * sizeof *idx);
  for (size_t i = 0; i < p->l.n; i++)
    if (p->group[i] >= 0) idx[n++] = i;
  uint8_t *pix = mallocCheck((block < n ? block : n ? n : 1) * frame);
  unsigned char *ok = mallocCheck(block);
  int rc = 0;
  for (size_t k = 0; k < n && rc == 0; k += block) {
    size_t nb = n - k < block ? n - k : block, before = p->b.n;
    vae_images_decode(&p->l, idx + k, nb, &o->spec, threads, pix, ok, &p->b);
    if (p->b.n > before && !o->skip_bad) { /* the block's first failure, in file order */
      size_t first = before;
      for (size_t r = before; r < p->b.n; r++)
        if (p->b.file[r] < p->b.file[first]) first = r;
      rc = bad_error(p->l.path[p->b.file[first]], p->b.reason[first], err);
      break;
    }
    for (size_t j = 0; j < nb && rc == 0; j++) {
      size_t f = idx[k + j];
      int g = p->group[f];
      if (!ok[j]) {
        p->bad[f] = 1, p->group[f] = -1;
        continue;
      }
      uint32_t lab = (uint32_t)p->l.label[f];
      uint8_t lab8 = (uint8_t)lab;
      out->counts[g][lab]++;
      rc = vae_h5w_append(out->w, out->images[g], pix + j * frame, 1, err);
      if (rc == 0)
        rc = vae_h5w_append(out->w, out->labels[g], p->l.nclasses <= 256 ? (void *)&lab8 : (void *)&lab, 1,
                            err);
    }
  }
  free(ok);
  free(pix);
  free(idx);
  vae_bad_files_sort(&p->b);
  return rc == 0 ? check_classes(p, o, p->bad, err) : rc;
}

static int write_all(plan *p, const opts *o, int threads, output *out, char *err) {
  int rc = open_output(p, o, threads, out, err);
  if (rc == 0) rc = decode_and_append(p, o, threads, out, err);
  if (rc == 0 && out->n[0] + out->n[1] == 0) rc = vae_err(err, "%s: no readable image at all", o->dir);
  if (rc == 0) rc = write_attributes(p, o, out, err);
  if (rc == 0) {
    rc = vae_h5w_commit(out->w, err);
  } else {
    vae_h5w_abort(out->w);
  }
  out->w = NULL;
  return rc;
}

/* ---- the report ---- */

static void warn_skipped(const plan *p) {
  size_t n = p->b.n + p->nstray_skipped;
  if (!n) return;
  fprintf(stderr, "vae_mpi: warning: --skip-bad left out %zu file(s):", n);
  size_t shown = 0;
  for (size_t i = 0; i < p->nstray_skipped && shown < SHOW_BAD; i++, shown++)
    fprintf(stderr, "%s %s (a file beside the class folders)", shown ? ";" : "", p->l.stray[i]);
  for (size_t i = 0; i < p->b.n && shown < SHOW_BAD; i++, shown++)
    fprintf(stderr, "%s %s (%s)", shown ? ";" : "", p->l.path[p->b.file[i]], p->b.reason[i]);
  if (n > shown) fprintf(stderr, "; and %zu more", n - shown);
  fprintf(stderr, "\n");
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void report(const plan *p, const opts *o, const output *out, int threads, double seconds) {
  const char *groups[2] = {p->ngroups == 2 ? "train" : o->group, "test"};
  printf("import-images: %s: %zu files, %d %s -> %dx%dx%d (%s)\n", o->dir, p->l.n, p->l.nclasses,
         p->l.labelled ? "classes" : "class (unlabelled: the files of the folder itself)", o->spec.h,
         o->spec.w, o->spec.c, o->spec.resize ? "centre-cropped and resized" : "as found");
  for (int g = 0; g < p->ngroups; g++)
    printf("import-images: wrote %s: /%s/images uint8 (%zu, %d, %d, %d), /%s/labels (%zu,)\n", o->out,
           groups[g], out->n[g], o->spec.h, o->spec.w, o->spec.c, groups[g], out->n[g]);
  printf("import-images: %zu files in %.2f s: %.0f files/s on %d thread%s\n", p->l.n, seconds,
         seconds > 0 ? (double)p->l.n / seconds : 0.0, threads, threads == 1 ? "" : "s");
}

int vae_cmd_import_images(int argc, char **argv) {
  vae_h5_quiet();
  opts o;
  char err[VAE_ERR_LEN];
  int rc = parse(argc, argv, &o, err);
  if (rc == 1) return 0;
  if (rc < 0) vae_exit_error(err);
  double t0 = now();
  int threads = vae_images_threads(o.threads);
  plan p = {0};
  output out = {0};
  rc = survey(&p, &o, threads, err);
  if (rc == 0) {
    split(&p, &o);
    rc = write_all(&p, &o, threads, &out, err);
  }
  if (rc == 0) {
    warn_skipped(&p);
    report(&p, &o, &out, threads, now() - t0);
  }
  free(out.counts[0]);
  free(out.counts[1]);
  plan_free(&p);
  if (rc < 0) vae_exit_error(err);
  return 0;
}
