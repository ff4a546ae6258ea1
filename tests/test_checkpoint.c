/* test_checkpoint.c: checkpoints round-trip bit for bit, refuse damaged or foreign files with the
 * right words, never leave a broken checkpoint.h5 behind (fault injection in forked children, a
 * real ENOSPC through /dev/full), and --resume auto / --keep pick and keep the right files.
 * Modes for tests/test_checkpoint_h5py.py:
 *   test_checkpoint write PATH   writes the sample checkpoint, prints its tensor checksums
 *   test_checkpoint dump PATH    reads PATH, prints the same checksum lines and the state */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "error.h"
#include "vae.h"

/* ---------- fixtures ---------- */

static vae_config CFG_BERNOULLI; /* vae_mpi train's default model on 28 x 28 x 1 (set in main) */
static const vae_config CFG_LEARNED = {.in_h = 8,
                                       .in_w = 6,
                                       .in_c = 3,
                                       .n_hidden = 2,
                                       .hidden = {64, 32},
                                       .latent = 5,
                                       .decoder = VAE_DEC_GAUSSIAN_LEARNED,
                                       .sigma = 0.5f,
                                       .logvar_min = -4.5f};
/* colour, non-square, two conv layers, no hidden layer, two output heads: every permuted tensor kind */
static const vae_config CFG_CONV = {.in_h = 9,
                                    .in_w = 7,
                                    .in_c = 3,
                                    .n_conv = 2,
                                    .conv = {4, 5},
                                    .kernel = 3,
                                    .stride = 2,
                                    .padding = 1,
                                    .n_hidden = 0,
                                    .latent = 3,
                                    .decoder = VAE_DEC_GAUSSIAN_LEARNED,
                                    .sigma = 0.5f,
                                    .logvar_min = -4.5f};

static void sample_state(vae_ckpt_state *st, long step) {
  memset(st, 0, sizeof *st);
  st->step = step;
  st->epoch = step / 100;
  st->epoch_step = step % 100;
  st->adam_step = step - step / 7;  /* some steps skipped */
  st->seed = 0xfedcba9876543210ull; /* above INT64_MAX: must survive as uint64 */
  st->world_size = 4;
  st->has_opts = 1;
  vae_train_opts *o = &st->opts;
  snprintf(o->data, sizeof o->data, "/data/mnist.h5");
  snprintf(o->dataset, sizeof o->dataset, "train/images");
  snprintf(o->test_dataset, sizeof o->test_dataset, "test/images");
  o->test_dataset_given = 1;
  snprintf(o->out, sizeof o->out, "runs/a");
  snprintf(o->resume, sizeof o->resume, "auto");
  o->epochs = 30;
  o->batch_size = 128;
  o->lr = 1e-3;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->adam_eps = 1e-8;
  o->lr_warmup_steps = 500;
  o->lr_scale = VAE_LR_SCALE_SQRT;
  o->kl_warmup_steps = 10000;
  o->beta = 0.75;
  o->clip_grad_norm = 5.0;
  o->seed = st->seed;
  o->threads = 2;
  o->log_every = 50;
  o->checkpoint_every = 1000;
  o->keep = 3;
  o->no_images = 1;
  o->max_skips = 7;
  o->max_steps = 4321;
  st->has_data = 1;
  snprintf(st->data_file, sizeof st->data_file, "/data/mnist.h5");
  snprintf(st->data_dataset, sizeof st->data_dataset, "train/images");
  st->data_n = 60000;
  st->data_rank = 4;
  long long shape[4] = {60000, 28, 28, 1};
  memcpy(st->data_shape, shape, sizeof shape);
  snprintf(st->data_dtype, sizeof st->data_dtype, "uint8");
}

/* params from the model's init, m and v deterministic and distinct, all keyed by `salt`. */
static void sample_buffers(const vae_config *c, uint64_t salt, float **p, float **m, float **v) {
  size_t n = vae_num_params(c);
  *p = malloc(n * sizeof **p);
  *m = malloc(n * sizeof **m);
  *v = malloc(n * sizeof **v);
  vae_init_params(c, *p, 1000 + salt);
  vae_init_params(c, *m, 2000 + salt);
  for (size_t k = 0; k < n; k++) (*v)[k] = (*m)[k] * (*m)[k] + 1e-30f * (float)(k % 3);
}

static void free3(float *a, float *b, float *c) {
  free(a);
  free(b);
  free(c);
}

static unsigned char *read_bytes(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *len = 0;
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*len ? *len : 1);
  size_t got = fread(b, 1, *len, f);
  fclose(f);
  if (got != *len) *len = got;
  return b;
}

static void write_bytes(const char *path, const unsigned char *b, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(b, 1, len, f);
  fclose(f);
}

static int same_bytes(const unsigned char *a, size_t la, const char *path) {
  size_t lb;
  unsigned char *b = read_bytes(path, &lb);
  int same = b && la == lb && memcmp(a, b, la) == 0;
  free(b);
  return same;
}

/* Names in dir starting with '.' (temporary files). */
static int count_hidden(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  if (d) closedir(d);
  return n;
}

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[VAE_PATH_LEN];
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(dir);
}

static char *new_dir(char *buf, size_t n) {
  snprintf(buf, n, "ckpt-test-XXXXXX");
  if (!mkdtemp(buf)) {
    perror("mkdtemp");
    exit(1);
  }
  return buf;
}

static int same_config(const vae_config *a, const vae_config *b) {
  int same = a->in_h == b->in_h && a->in_w == b->in_w && a->in_c == b->in_c && a->n_hidden == b->n_hidden &&
             a->latent == b->latent && a->decoder == b->decoder && a->sigma == b->sigma &&
             a->logvar_min == b->logvar_min;
  for (int i = 0; same && i < a->n_hidden; i++) same = a->hidden[i] == b->hidden[i];
  same = same && a->n_conv == b->n_conv;
  for (int i = 0; same && i < a->n_conv; i++) same = a->conv[i] == b->conv[i];
  if (a->n_conv) same = same && a->kernel == b->kernel && a->stride == b->stride && a->padding == b->padding;
  return same;
}

static void check_state_equal(const vae_ckpt_state *a, const vae_ckpt_state *b) {
  CHECK(a->step == b->step && a->epoch == b->epoch && a->epoch_step == b->epoch_step,
        "step/epoch/epoch_step %ld/%ld/%ld vs %ld/%ld/%ld", a->step, a->epoch, a->epoch_step, b->step,
        b->epoch, b->epoch_step);
  CHECK(a->adam_step == b->adam_step, "adam_step %ld vs %ld", a->adam_step, b->adam_step);
  CHECK(a->seed == b->seed, "seed %llx vs %llx", (unsigned long long)a->seed, (unsigned long long)b->seed);
  CHECK(a->world_size == b->world_size, "world_size %d vs %d", a->world_size, b->world_size);
  CHECK(a->has_opts == b->has_opts && a->has_data == b->has_data, "has_opts %d/%d has_data %d/%d",
        a->has_opts, b->has_opts, a->has_data, b->has_data);
  if (a->has_data) {
    CHECK(!strcmp(a->data_file, b->data_file) && !strcmp(a->data_dataset, b->data_dataset) &&
              !strcmp(a->data_dtype, b->data_dtype) && a->data_n == b->data_n &&
              a->data_rank == b->data_rank &&
              !memcmp(a->data_shape, b->data_shape, (size_t)a->data_rank * sizeof a->data_shape[0]),
          "data identity differs: %s %s %s n=%lld rank=%d", b->data_file, b->data_dataset, b->data_dtype,
          b->data_n, b->data_rank);
  }
  const vae_train_opts *x = &a->opts, *y = &b->opts;
  if (!a->has_opts) return;
  CHECK(!strcmp(x->data, y->data) && !strcmp(x->dataset, y->dataset) &&
            !strcmp(x->test_dataset, y->test_dataset) && !strcmp(x->out, y->out) &&
            !strcmp(x->resume, y->resume),
        "opts strings differ: %s %s %s %s %s", y->data, y->dataset, y->test_dataset, y->out, y->resume);
  CHECK(x->test_dataset_given == y->test_dataset_given && x->epochs == y->epochs &&
            x->batch_size == y->batch_size && x->lr_warmup_steps == y->lr_warmup_steps &&
            x->lr_scale == y->lr_scale && x->kl_warmup_steps == y->kl_warmup_steps && x->seed == y->seed &&
            x->threads == y->threads && x->log_every == y->log_every &&
            x->checkpoint_every == y->checkpoint_every && x->keep == y->keep &&
            x->no_images == y->no_images && x->max_skips == y->max_skips && x->max_steps == y->max_steps,
        "opts integers differ (epochs %ld batch %d lr_scale %d keep %d max_skips %d)", y->epochs,
        y->batch_size, (int)y->lr_scale, y->keep, y->max_skips);
  CHECK(x->lr == y->lr && x->beta1 == y->beta1 && x->beta2 == y->beta2 && x->adam_eps == y->adam_eps &&
            x->beta == y->beta && x->clip_grad_norm == y->clip_grad_norm,
        "opts doubles differ (lr %g beta %g clip %g)", y->lr, y->beta, y->clip_grad_norm);
}

/* Writes dir/name at `step` with buffers and state keyed by the step. */
static void write_step(const char *dir, const char *name, long step, const vae_config *cfg) {
  char path[192], err[VAE_ERR_LEN];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  float *p, *m, *v;
  sample_buffers(cfg, (uint64_t)step, &p, &m, &v);
  vae_ckpt_state st;
  sample_state(&st, step);
  CHECK(vae_checkpoint_write(path, cfg, p, m, v, &st, err) == 0, "write %s: %s", path, err);
  free3(p, m, v);
}

/* ---------- round trips ---------- */

static void test_roundtrip(const vae_config *cfg, int with_opt, int with_extras) {
  char dir[64], path[128], err[VAE_ERR_LEN];
  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  float *p, *m, *v;
  sample_buffers(cfg, 1, &p, &m, &v);
  vae_ckpt_state st, got;
  sample_state(&st, 4321);
  st.has_opts = st.has_data = with_extras;
  int rc = vae_checkpoint_write(path, cfg, p, with_opt ? m : NULL, with_opt ? v : NULL, &st, err);
  CHECK(rc == 0, "write failed: %s", err);
  CHECK(count_hidden(dir) == 0, "temporary file left behind after a good write");
  vae_config rcfg;
  float *rp = NULL, *rm = NULL, *rv = NULL;
  rc = vae_checkpoint_read(path, &rcfg, &rp, &rm, &rv, &got, err);
  CHECK(rc == 0, "read failed: %s", err);
  if (rc == 0) {
    size_t n = vae_num_params(cfg);
    CHECK(same_config(cfg, &rcfg), "config differs after round trip");
    CHECK(memcmp(p, rp, n * sizeof *p) == 0, "params not bit-identical");
    if (with_opt) {
      CHECK(rm && rv && memcmp(m, rm, n * sizeof *m) == 0 && memcmp(v, rv, n * sizeof *v) == 0,
            "Adam moments not bit-identical");
    } else {
      CHECK(rm == NULL && rv == NULL, "model-only checkpoint returned moments");
    }
    check_state_equal(&st, &got);
    CHECK(same_config(&got.opts.model, cfg), "state opts.model is not the /model config");
  }
  free3(rp, rm, rv);
  free3(p, m, v);
  rm_tree(dir);
}

/* ---------- match ---------- */

static void expect_mismatch(const vae_config *ck, const vae_config *want, const char *w1, const char *w2) {
  char err[VAE_ERR_LEN] = "";
  int rc = vae_checkpoint_match(ck, want, err);
  CHECK(rc < 0 && strstr(err, w1) && strstr(err, w2) && strstr(err, "start a fresh --out"),
        "mismatch message '%s' lacks '%s' / '%s'", err, w1, w2);
}

static void test_match(void) {
  char err[VAE_ERR_LEN];
  vae_config a = CFG_BERNOULLI, b = a;
  CHECK(vae_checkpoint_match(&a, &b, err) == 0, "identical configs mismatch: %s", err);
  b.sigma = 0.3f; /* sigma does not enter the bernoulli loss */
  CHECK(vae_checkpoint_match(&a, &b, err) == 0, "bernoulli sigma compared: %s", err);
  b = a;
  b.decoder = VAE_DEC_GAUSSIAN;
  expect_mismatch(&a, &b, "checkpoint has decoder bernoulli, this run asks for gaussian",
                  "pass --decoder bernoulli");
  b = a;
  b.latent = 10;
  expect_mismatch(&a, &b, "checkpoint has latent 20, this run asks for 10", "--latent 20");
  b = a;
  b.n_hidden = 2;
  b.hidden[0] = 512;
  b.hidden[1] = 256;
  expect_mismatch(&a, &b, "checkpoint has hidden 400, this run asks for 512,256", "--hidden 400");
  b = a;
  b.n_hidden = 0;
  expect_mismatch(&a, &b, "this run asks for (none)", "--hidden 400");
  b = a;
  b.in_h = b.in_w = 32;
  b.in_c = 3;
  expect_mismatch(&a, &b, "trained on 28x28x1 images, this run's data has 32x32x3",
                  "the --data it was trained on");
  vae_config g = a, h;
  g.decoder = VAE_DEC_GAUSSIAN;
  g.sigma = 0.1f;
  h = g;
  h.sigma = 0.5f;
  expect_mismatch(&g, &h, "checkpoint has sigma 0.1, this run asks for 0.5", "--sigma 0.1");
  g = CFG_LEARNED;
  h = g;
  h.logvar_min = -6;
  expect_mismatch(&g, &h, "logvar_min -4.5, this run asks for -6", "--logvar-min -4.5");
  /* The conv trunk: its presence, channels, kernel, stride, padding. */
  vae_config cv = CFG_CONV, cw = cv;
  CHECK(vae_checkpoint_match(&cv, &cw, err) == 0, "identical conv configs mismatch: %s", err);
  cw.n_conv = 0;
  expect_mismatch(&cv, &cw, "checkpoint has conv 4,5, this run asks for (none)", "--conv 4,5");
  expect_mismatch(&cw, &cv, "checkpoint has conv (none), this run asks for 4,5", "--conv ''");
  cw = cv;
  cw.conv[1] = 6;
  expect_mismatch(&cv, &cw, "checkpoint has conv 4,5, this run asks for 4,6", "--conv 4,5");
  cw = cv;
  cw.kernel = 4, cw.padding = 0;
  expect_mismatch(&cv, &cw, "kernel 3, this run asks for 4; checkpoint has padding 1",
                  "--kernel 3, --padding 1");
  cw = cv;
  cw.stride = 1;
  expect_mismatch(&cv, &cw, "checkpoint has stride 2, this run asks for 1", "--stride 2");
  cw = CFG_BERNOULLI; /* the MLP's kernel, stride and padding never count */
  cw.kernel = 7;
  CHECK(vae_checkpoint_match(&CFG_BERNOULLI, &cw, err) == 0, "MLP kernel compared: %s", err);
  /* Several differences: every one is named. */
  b = a;
  b.latent = 10;
  b.decoder = VAE_DEC_GAUSSIAN_LEARNED;
  expect_mismatch(&a, &b, "latent 20, this run asks for 10; checkpoint has decoder bernoulli",
                  "--latent 20, --decoder bernoulli");
}

/* ---------- refusing to write ---------- */

static void test_write_refusals(void) {
  char dir[64], path[128], err[VAE_ERR_LEN];
  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  const vae_config *cfg = &CFG_LEARNED;
  write_step(dir, "checkpoint.h5", 100, cfg);
  float *p, *m, *v;
  sample_buffers(cfg, 2, &p, &m, &v);
  vae_ckpt_state st;
  sample_state(&st, 200);
  size_t len;
  unsigned char *before = read_bytes(path, &len);
  CHECK(before && len > 1000, "checkpoint is %zu bytes", len);

  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(cfg, t);
  const vae_tensor *mu_b = NULL, *out_w = NULL;
  for (int i = 0; i < nt; i++) {
    if (!strcmp(t[i].name, "encoder/mu/bias")) mu_b = &t[i];
    if (!strcmp(t[i].name, "decoder/out/weight")) out_w = &t[i];
  }
  st.step = 200;
  /* NaN in a parameter: refused, named, nothing written. */
  float keep = p[mu_b->offset + 3];
  p[mu_b->offset + 3] = NAN;
  int rc = vae_checkpoint_write(path, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "/model/encoder/mu/bias") && strstr(err, "non-finite") &&
            strstr(err, "element 3"),
        "NaN param: rc %d '%s'", rc, err);
  p[mu_b->offset + 3] = keep;
  /* Inf in Adam's m. */
  m[out_w->offset + 10] = INFINITY;
  rc = vae_checkpoint_write(path, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "/optimizer/m/decoder/out/weight") && strstr(err, "inf"),
        "Inf in m: rc %d '%s'", rc, err);
  m[out_w->offset + 10] = 0.5f;
  CHECK(same_bytes(before, len, path), "refused write changed the checkpoint");
  CHECK(count_hidden(dir) == 0, "refused write left a temporary file");

  /* Missing folder, and a parent that is a regular file. */
  char bad[192];
  snprintf(bad, sizeof bad, "%s/no-such-dir/checkpoint.h5", dir);
  rc = vae_checkpoint_write(bad, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "does not exist") && strstr(err, "no-such-dir"), "missing dir: '%s'", err);
  snprintf(bad, sizeof bad, "%s/plain.txt", dir);
  write_bytes(bad, (const unsigned char *)"x", 1);
  snprintf(bad, sizeof bad, "%s/plain.txt/checkpoint.h5", dir);
  rc = vae_checkpoint_write(bad, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "is not a folder"), "file as folder: '%s'", err);
  snprintf(bad, sizeof bad, "%s/plain.txt", dir);
  unlink(bad);

  /* A full disk, for real: the temporary name is a symlink to /dev/full, so every write the HDF5
   * library makes fails with ENOSPC. The old checkpoint must stay, the temporary must go. */
  char tmp[192];
  snprintf(tmp, sizeof tmp, "%s/.checkpoint.h5.tmp-%ld", dir, (long)getpid());
  CHECK(symlink("/dev/full", tmp) == 0, "symlink to /dev/full: %s", strerror(errno));
  rc = vae_checkpoint_write(path, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "No space left on device") && strstr(err, "free space"), "ENOSPC: rc %d '%s'",
        rc, err);
  struct stat sb;
  CHECK(lstat(tmp, &sb) != 0 && errno == ENOENT, "temporary file left after ENOSPC");
  CHECK(same_bytes(before, len, path), "failed write changed the checkpoint");

  /* A fault point name with a typo is refused, not ignored. */
  setenv("VAE_FAULT_CHECKPOINT", "before-renam", 1);
  rc = vae_checkpoint_write(path, cfg, p, m, v, &st, err);
  CHECK(rc < 0 && strstr(err, "VAE_FAULT_CHECKPOINT=before-renam"), "bad fault point: '%s'", err);
  unsetenv("VAE_FAULT_CHECKPOINT");
  CHECK(same_bytes(before, len, path), "refused write changed the checkpoint");

  /* And a good write still replaces it. */
  CHECK(vae_checkpoint_write(path, cfg, p, m, v, &st, err) == 0, "final write: %s", err);
  CHECK(!same_bytes(before, len, path), "successful write did not replace the checkpoint");
  free(before);
  free3(p, m, v);
  rm_tree(dir);
}

/* ---------- refusing to read ---------- */

typedef enum {
  BREAK_DELETE_TENSOR,
  BREAK_TRANSPOSE,
  BREAK_INT_DTYPE,
  BREAK_NAN,
  BREAK_DROP_STEP,
  BREAK_VERSION,
  BREAK_DECODER,
  BREAK_EXTRA,
  BREAK_DROP_V,
  BREAK_CONFIG_ATTR,
} breakage;

static void put_int_attr(hid_t loc, const char *name, int v) {
  if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT, &v);
  H5Aclose(a);
  H5Sclose(sp);
}

/* (Re)creates dataset name with the given type and shape, uninitialised (zeros). */
static void replace_dataset(hid_t f, const char *name, hid_t type, int rank, hsize_t d0, hsize_t d1) {
  if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
  hsize_t dims[2] = {d0, d1};
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(d >= 0, "cannot create %s", name);
  H5Dclose(d);
  H5Sclose(sp);
}

/* Copies good to out, then damages one thing with the HDF5 C API. */
static void make_broken(const char *good, const char *out, breakage b) {
  size_t len;
  unsigned char *bytes = read_bytes(good, &len);
  write_bytes(out, bytes, len);
  free(bytes);
  hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(f >= 0, "cannot reopen %s", out);
  hid_t sp, d, g;
  switch (b) {
    case BREAK_DELETE_TENSOR: H5Ldelete(f, "model/encoder/mu/bias", H5P_DEFAULT); break;
    case BREAK_TRANSPOSE: /* (784, 400) where (400, 784) belongs */
      replace_dataset(f, "model/encoder/hidden0/weight", H5T_IEEE_F32LE, 2, 784, 400);
      break;
    case BREAK_INT_DTYPE: replace_dataset(f, "model/decoder/out/bias", H5T_STD_I32LE, 1, 784, 0); break;
    case BREAK_NAN: {
      float nan = NAN;
      hsize_t start[2] = {7, 3}, one[2] = {1, 1};
      d = H5Dopen2(f, "optimizer/v/decoder/hidden0/weight", H5P_DEFAULT);
      sp = H5Dget_space(d);
      H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, one, NULL);
      hid_t ms = H5Screate_simple(2, one, NULL);
      H5Dwrite(d, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &nan);
      H5Sclose(ms);
      H5Sclose(sp);
      H5Dclose(d);
      break;
    }
    case BREAK_DROP_STEP: H5Adelete(f, "step"); break;
    case BREAK_VERSION: put_int_attr(f, "format_version", 2); break;
    case BREAK_DECODER:
      g = H5Gopen2(f, "model", H5P_DEFAULT);
      H5Adelete(g, "decoder");
      put_int_attr(g, "decoder", 3);
      H5Gclose(g);
      break;
    case BREAK_EXTRA: replace_dataset(f, "model/decoder/stray", H5T_IEEE_F32LE, 1, 784, 0); break;
    case BREAK_DROP_V: H5Ldelete(f, "optimizer/v", H5P_DEFAULT); break;
    case BREAK_CONFIG_ATTR:
      g = H5Gopen2(f, "config", H5P_DEFAULT);
      H5Adelete(g, "lr");
      H5Gclose(g);
      break;
  }
  H5Fclose(f);
}

static void expect_read_fails(const char *path, const char *w1, const char *w2) {
  char err[VAE_ERR_LEN] = "";
  vae_config c;
  float *p = NULL, *m = NULL, *v = NULL;
  vae_ckpt_state st;
  int rc = vae_checkpoint_read(path, &c, &p, &m, &v, &st, err);
  CHECK(rc < 0 && p == NULL && m == NULL && v == NULL, "%s loaded (rc %d)", path, rc);
  CHECK(strstr(err, w1) && strstr(err, w2) && strstr(err, path), "%s: message '%s' lacks '%s' / '%s'", path,
        err, w1, w2);
  free3(p, m, v);
}

static void test_read_refusals(void) {
  char dir[64], good[128], bad[160], err[VAE_ERR_LEN];
  new_dir(dir, sizeof dir);
  snprintf(good, sizeof good, "%s/checkpoint.h5", dir);
  write_step(dir, "checkpoint.h5", 100, &CFG_BERNOULLI);

  size_t len;
  unsigned char *bytes = read_bytes(good, &len);
  snprintf(bad, sizeof bad, "%s/half.h5", dir);
  write_bytes(bad, bytes, len / 2);
  expect_read_fails(bad, "is truncated", "use an older checkpoint");
  snprintf(bad, sizeof bad, "%s/empty.h5", dir);
  write_bytes(bad, bytes, 0);
  expect_read_fails(bad, "is empty", "0 bytes");
  snprintf(bad, sizeof bad, "%s/text.h5", dir);
  write_bytes(bad, (const unsigned char *)"step=100\nthis is not hdf5\n", 26);
  expect_read_fails(bad, "is not an HDF5 file", "written by vae_mpi");
  /* The first 4 KiB overwritten: the superblock is gone. */
  memset(bytes, 0xAB, len > 4096 ? 4096 : len);
  snprintf(bad, sizeof bad, "%s/scribbled.h5", dir);
  write_bytes(bad, bytes, len);
  expect_read_fails(bad, "checkpoint", "HDF5");
  free(bytes);
  snprintf(bad, sizeof bad, "%s/absent.h5", dir);
  expect_read_fails(bad, "cannot read checkpoint", "no such file");

  static const struct {
    breakage b;
    const char *w1, *w2;
  } cases[] = {
      {BREAK_DELETE_TENSOR, "has no /model/encoder/mu/bias", "incomplete"},
      {BREAK_TRANSPOSE, "/model/encoder/hidden0/weight has shape (784, 400)", "expected (400, 784)"},
      {BREAK_INT_DTYPE, "/model/decoder/out/bias is not floating point", "float32"},
      {BREAK_NAN, "/optimizer/v/decoder/hidden0/weight holds a non-finite value", "element 143"},
      {BREAK_DROP_STEP, "attribute /step is missing", "docs/CHECKPOINT.md"},
      {BREAK_VERSION, "format_version 2", "reads version 1"},
      {BREAK_DECODER, "/model/decoder must be a single string", "checkpoint"},
      {BREAK_EXTRA, "/model holds 11 datasets", "784-400-20-400-784 bernoulli model has 10"},
      {BREAK_DROP_V, "has no /optimizer/v/encoder/hidden0/weight", "incomplete"},
      {BREAK_CONFIG_ATTR, "attribute /config/lr is missing", "schema"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(bad, sizeof bad, "%s/broken-%zu.h5", dir, i);
    make_broken(good, bad, cases[i].b);
    expect_read_fails(bad, cases[i].w1, cases[i].w2);
  }
  /* The undamaged original still loads. */
  vae_config c;
  float *rp, *rm, *rv;
  CHECK(vae_checkpoint_read(good, &c, &rp, &rm, &rv, NULL, err) == 0, "good file: %s", err);
  if (rp) free3(rp, rm, rv);
  rm_tree(dir);
}

/* ---------- --resume auto ---------- */

static void test_find_latest(void) {
  char dir[64], path[256], notes[4096], err[VAE_ERR_LEN], want[192];
  const vae_config *cfg = &CFG_LEARNED;
  new_dir(dir, sizeof dir);
  CHECK(vae_checkpoint_find_latest(dir, path, sizeof path, notes, sizeof notes, err) == 0 && !path[0],
        "empty folder gave '%s' (%s)", path, err);
  CHECK(vae_checkpoint_find_latest("no-such-folder-xyz", path, sizeof path, notes, sizeof notes, err) == 0 &&
            !path[0],
        "missing folder gave '%s'", path);

  write_step(dir, "checkpoint-100.h5", 100, cfg);
  write_step(dir, "checkpoint-200.h5", 200, cfg);
  write_step(dir, "checkpoint.h5", 200, cfg);
  /* Newer but broken: a truncated copy at step 300, and a NaN inside a tensor at step 400 (its
   * header reads fine, only the full read finds it). */
  write_step(dir, "checkpoint-300.h5", 300, cfg);
  char p300[192], p400[192], junk[192];
  snprintf(p300, sizeof p300, "%s/checkpoint-300.h5", dir);
  size_t len;
  unsigned char *b = read_bytes(p300, &len);
  write_bytes(p300, b, len / 3);
  free(b);
  write_step(dir, "good-400.h5", 400, cfg);
  snprintf(junk, sizeof junk, "%s/good-400.h5", dir);
  snprintf(p400, sizeof p400, "%s/checkpoint-400.h5", dir);
  make_broken(junk, p400, BREAK_NAN);
  unlink(junk);
  /* Names that are not candidates. */
  snprintf(junk, sizeof junk, "%s/.checkpoint.h5.tmp-12345", dir);
  write_bytes(junk, (const unsigned char *)"partial", 7);
  snprintf(junk, sizeof junk, "%s/checkpoint-abc.h5", dir);
  write_bytes(junk, (const unsigned char *)"x", 1);

  int rc = vae_checkpoint_find_latest(dir, path, sizeof path, notes, sizeof notes, err);
  snprintf(want, sizeof want, "%s/checkpoint.h5", dir);
  CHECK(rc == 0 && !strcmp(path, want), "latest is '%s', expected %s (%s)", path, want, err);
  CHECK(strstr(notes, "skipping unreadable checkpoint") && strstr(notes, "checkpoint-300.h5: ") &&
            strstr(notes, "truncated") && strstr(notes, "checkpoint-400.h5: ") && strstr(notes, "non-finite"),
        "notes: '%s'", notes);
  CHECK(!strstr(notes, "tmp") && !strstr(notes, "abc") && !strstr(notes, "checkpoint-200"),
        "notes name non-candidates: '%s'", notes);
  /* checkpoint.h5 broken too: the numbered step 200 copy is next. */
  snprintf(junk, sizeof junk, "%s/checkpoint.h5", dir);
  write_bytes(junk, (const unsigned char *)"garbage", 7);
  rc = vae_checkpoint_find_latest(dir, path, sizeof path, notes, sizeof notes, err);
  snprintf(want, sizeof want, "%s/checkpoint-200.h5", dir);
  CHECK(rc == 0 && !strcmp(path, want), "latest is '%s', expected %s", path, want);
  CHECK(strstr(notes, "checkpoint.h5: ") && strstr(notes, "not an HDF5 file"), "notes: '%s'", notes);
  /* A path buffer too small is an error, not a truncated path. */
  char tiny[8];
  CHECK(vae_checkpoint_find_latest(dir, tiny, sizeof tiny, notes, sizeof notes, err) < 0 &&
            strstr(err, "longer than"),
        "tiny buffer: '%s'", err);
  rm_tree(dir);
}

/* ---------- --keep ---------- */

static int numbered_files(const char *dir, long *steps, int max) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  long s;
  char tail[8];
  while (d && (e = readdir(d)) != NULL)
    if (sscanf(e->d_name, "checkpoint-%ld%7s", &s, tail) == 2 && !strcmp(tail, ".h5") && n < max)
      steps[n++] = s;
  if (d) closedir(d);
  for (int i = 0; i < n; i++) /* sort ascending */
    for (int j = i + 1; j < n; j++)
      if (steps[j] < steps[i]) {
        long t = steps[i];
        steps[i] = steps[j];
        steps[j] = t;
      }
  return n;
}

static void test_rotate(void) {
  char dir[64], path[192], err[VAE_ERR_LEN];
  const vae_config *cfg = &CFG_LEARNED;
  new_dir(dir, sizeof dir);
  for (long step = 100; step <= 500; step += 100) {
    write_step(dir, "checkpoint.h5", step, cfg);
    CHECK(vae_checkpoint_rotate(dir, step, 3, err) == 0, "rotate %ld: %s", step, err);
  }
  long steps[16];
  int n = numbered_files(dir, steps, 16);
  CHECK(n == 3 && steps[0] == 300 && steps[1] == 400 && steps[2] == 500, "keep 3 left %d files (%ld %ld %ld)",
        n, steps[0], steps[1], steps[2]);
  CHECK(count_hidden(dir) == 0, "rotate left a temporary file");
  /* Each numbered file holds its own step (not a link that later writes changed). */
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/checkpoint-%ld.h5", dir, steps[i]);
    vae_config c;
    float *p, *m, *v;
    vae_ckpt_state st;
    int rc = vae_checkpoint_read(path, &c, &p, &m, &v, &st, err);
    CHECK(rc == 0 && st.step == steps[i], "%s: rc %d step %ld (%s)", path, rc, rc == 0 ? st.step : -1, err);
    if (rc == 0) free3(p, m, v);
  }
  /* Rotating the same step twice replaces, it does not fail. */
  CHECK(vae_checkpoint_rotate(dir, 500, 3, err) == 0, "rotate again: %s", err);
  /* keep 1: only the current step; keep 0: none. */
  write_step(dir, "checkpoint.h5", 600, cfg);
  CHECK(vae_checkpoint_rotate(dir, 600, 1, err) == 0, "rotate keep 1: %s", err);
  n = numbered_files(dir, steps, 16);
  CHECK(n == 1 && steps[0] == 600, "keep 1 left %d files (first %ld)", n, steps[0]);
  CHECK(vae_checkpoint_rotate(dir, 600, 0, err) == 0, "rotate keep 0: %s", err);
  n = numbered_files(dir, steps, 16);
  CHECK(n == 0, "keep 0 left %d numbered files", n);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  CHECK(access(path, F_OK) == 0, "rotate removed checkpoint.h5");
  CHECK(vae_checkpoint_rotate(dir, 600, -1, err) < 0 && strstr(err, "--keep"), "keep -1: '%s'", err);
  rm_tree(dir);
}

/* ---------- deferred: the fsync, rename and rotation on a background thread ---------- */

static void test_deferred(void) {
  char dir[64], path[192], err[VAE_ERR_LEN];
  const vae_config *cfg = &CFG_LEARNED;
  float *p, *m, *v;
  sample_buffers(cfg, 21, &p, &m, &v);
  vae_ckpt_state st;
  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  CHECK(vae_checkpoint_settle(err) == 0, "settle with nothing in flight: %s", err);
  /* Two writes in a row: the second settles the first; after settle both steps' files are there,
   * checkpoint.h5 holds the second, and no temporary file is left. */
  for (long step = 10; step <= 20; step += 10) {
    sample_state(&st, step);
    CHECK(vae_checkpoint_write_deferred(dir, step, 2, cfg, p, m, v, &st, err) == 0, "deferred %ld: %s", step,
          err);
  }
  CHECK(vae_checkpoint_settle(err) == 0, "settle: %s", err);
  long steps[8];
  int n = numbered_files(dir, steps, 8);
  CHECK(n == 2 && steps[0] == 10 && steps[1] == 20, "deferred keep 2: %d numbered files", n);
  CHECK(count_hidden(dir) == 0, "deferred writes left a temporary file");
  vae_config c;
  float *rp, *rm, *rv;
  vae_ckpt_state rst;
  int rc = vae_checkpoint_read(path, &c, &rp, &rm, &rv, &rst, err);
  CHECK(rc == 0 && rst.step == 20 && !memcmp(rp, p, vae_num_params(cfg) * sizeof *p),
        "deferred checkpoint.h5: rc %d step %ld (%s)", rc, rc == 0 ? rst.step : -1, err);
  if (rc == 0) free3(rp, rm, rv);
  /* A refusal comes at once, from the caller's thread, and nothing is in flight after it. */
  sample_state(&st, 30);
  float keep = p[3];
  p[3] = NAN;
  CHECK(vae_checkpoint_write_deferred(dir, 30, 2, cfg, p, m, v, &st, err) < 0 && strstr(err, "non-finite"),
        "deferred write of a NaN: '%s'", err);
  p[3] = keep;
  CHECK(vae_checkpoint_settle(err) == 0, "settle after a refusal: %s", err);
  /* A failure on the thread (the rename: checkpoint.h5 is now a folder) is reported by settle, with
   * the temporary file removed and the numbered checkpoints untouched. */
  rm_tree(dir);
  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
  char inner[256];
  snprintf(inner, sizeof inner, "%s/x", path);
  write_bytes(inner, (const unsigned char *)"x", 1); /* a non-empty folder: rename cannot replace it */
  sample_state(&st, 40);
  CHECK(vae_checkpoint_write_deferred(dir, 40, 1, cfg, p, m, v, &st, err) == 0, "deferred 40: %s", err);
  err[0] = '\0';
  CHECK(vae_checkpoint_settle(err) < 0 && strstr(err, "cannot write checkpoint") && strstr(err, path),
        "settle of a failed rename: '%s'", err);
  CHECK(count_hidden(dir) == 0, "the failed deferred write left its temporary file");
  CHECK(numbered_files(dir, steps, 8) == 0, "a failed write rotated");
  CHECK(vae_checkpoint_settle(err) == 0, "settle twice: %s", err);
  free3(p, m, v);
  unlink(inner);
  rmdir(path);
  rm_tree(dir);
}

/* ---------- killed mid-write ---------- */

static void test_faults(void) {
  static const char *points[] = {"after-create", "mid-tensors", "before-fsync", "before-rename",
                                 "after-rename"};
  char dir[64], path[128], tmp[192], found[256], notes[4096], err[VAE_ERR_LEN];
  const vae_config *cfg = &CFG_BERNOULLI;
  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
  write_step(dir, "checkpoint.h5", 100, cfg);
  long current = 100;
  for (int i = 0; i < 5; i++) {
    long next = 1000 + i;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      setenv("VAE_FAULT_CHECKPOINT", points[i], 1);
      float *p, *m, *v;
      sample_buffers(cfg, (uint64_t)next, &p, &m, &v);
      vae_ckpt_state st;
      sample_state(&st, next);
      int rc = vae_checkpoint_write(path, cfg, p, m, v, &st, err);
      _exit(rc == 0 ? 0 : 1); /* reaching here means the fault point never fired */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 77, "%s: child status %d", points[i], status);
    int after = !strcmp(points[i], "after-rename");
    if (after) current = next;
    snprintf(tmp, sizeof tmp, "%s/.checkpoint.h5.tmp-%ld", dir, (long)pid);
    CHECK((access(tmp, F_OK) == 0) == !after, "%s: temporary file %s", points[i],
          after ? "still there" : "missing (the child did not die mid-write)");
    /* checkpoint.h5 loads and is exactly the old or (after the rename) the new one. */
    vae_config c;
    float *p = NULL, *m = NULL, *v = NULL, *ep, *em, *ev;
    vae_ckpt_state st;
    int rc = vae_checkpoint_read(path, &c, &p, &m, &v, &st, err);
    CHECK(rc == 0, "%s: checkpoint.h5 broken: %s", points[i], err);
    sample_buffers(cfg, (uint64_t)current, &ep, &em, &ev);
    if (rc == 0) {
      size_t np = vae_num_params(cfg);
      CHECK(st.step == current && !memcmp(p, ep, np * sizeof *p) && !memcmp(v, ev, np * sizeof *v),
            "%s: checkpoint.h5 has step %ld, expected %ld", points[i], st.step, current);
      free3(p, m, v);
    }
    free3(ep, em, ev);
    rc = vae_checkpoint_find_latest(dir, found, sizeof found, notes, sizeof notes, err);
    CHECK(rc == 0 && !strcmp(found, path) && !notes[0], "%s: find_latest '%s' notes '%s'", points[i], found,
          notes);
  }
  rm_tree(dir);
}

/* ---------- modes for the h5py test ---------- */

static void print_checksums(const vae_config *cfg, const char *group, const float *buf) {
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(cfg, t);
  for (int i = 0; i < nt; i++) {
    uint64_t sum = 0, wsum = 0;
    size_t n = vae_tensor_len(&t[i]);
    float *torch = malloc(n * sizeof *torch); /* the tensor as the file holds it: PyTorch's order */
    vae_tensor_to_torch(&t[i], buf, torch);
    for (size_t k = 0; k < n; k++) {
      uint32_t bits;
      memcpy(&bits, torch + k, 4);
      sum += bits;
      wsum += (uint64_t)bits * (uint64_t)(k + 1);
    }
    free(torch);
    char shape[64];
    size_t used = 0;
    for (int d = 0; d < t[i].ndim; d++)
      used += (size_t)snprintf(shape + used, sizeof shape - used, d ? "x%d" : "%d", t[i].dims[d]);
    printf("tensor %s/%s %s %llu %llu\n", group, t[i].name, shape, (unsigned long long)sum,
           (unsigned long long)wsum);
  }
}

static void print_all(const vae_config *cfg, const float *p, const float *m, const float *v,
                      const vae_ckpt_state *st) {
  char desc[256];
  vae_describe(cfg, desc, sizeof desc);
  printf("model %s %s %.9g %.9g\n", desc, vae_decoder_name(cfg->decoder), (double)cfg->sigma,
         (double)cfg->logvar_min);
  printf("state %ld %ld %ld %llu %d %d %d %d %ld\n", st->step, st->epoch, st->epoch_step,
         (unsigned long long)st->seed, st->world_size, m != NULL, st->has_opts, st->has_data, st->adam_step);
  print_checksums(cfg, "model", p);
  if (m) {
    print_checksums(cfg, "optimizer/m", m);
    print_checksums(cfg, "optimizer/v", v);
  }
}

int main(int argc, char **argv) {
  char err[VAE_ERR_LEN];
  CFG_BERNOULLI = vae_config_default(28, 28, 1);
  if (argc == 3 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "write-conv"))) {
    const vae_config *cfg = !strcmp(argv[1], "write") ? &CFG_LEARNED : &CFG_CONV;
    float *p, *m, *v;
    sample_buffers(cfg, 9, &p, &m, &v);
    vae_ckpt_state st;
    sample_state(&st, 4321);
    if (vae_checkpoint_write(argv[2], cfg, p, m, v, &st, err) < 0) {
      fprintf(stderr, "vae_mpi: error: %s\n", err);
      return 1;
    }
    print_all(cfg, p, m, v, &st);
    free3(p, m, v);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "dump")) {
    vae_config c;
    float *p, *m, *v;
    vae_ckpt_state *st = calloc(1, sizeof *st);
    if (vae_checkpoint_read(argv[2], &c, &p, &m, &v, st, err) < 0) {
      fprintf(stderr, "vae_mpi: error: %s\n", err);
      free(st);
      return 1;
    }
    print_all(&c, p, m, v, st);
    if (st->has_opts)
      printf("opts %.17g %ld %d %d %s\n", st->opts.lr, st->opts.epochs, st->opts.batch_size,
             (int)st->opts.lr_scale, st->opts.data);
    if (st->has_data)
      printf("data %s %s %lld %s %d\n", st->data_file, st->data_dataset, st->data_n, st->data_dtype,
             st->data_rank);
    free3(p, m, v);
    free(st);
    return 0;
  }
  if (argc != 1) {
    fprintf(stderr, "usage: test_checkpoint [write PATH | write-conv PATH | dump PATH]\n");
    return 2;
  }
  unsetenv("VAE_FAULT_CHECKPOINT");
  test_roundtrip(&CFG_BERNOULLI, 1, 1);
  test_roundtrip(&CFG_LEARNED, 1, 1);
  test_roundtrip(&CFG_LEARNED, 0, 0);
  test_roundtrip(&CFG_BERNOULLI, 0, 1);
  vae_config flat = {.in_h = 4,
                     .in_w = 3,
                     .in_c = 2,
                     .n_hidden = 0,
                     .latent = 2,
                     .decoder = VAE_DEC_GAUSSIAN,
                     .sigma = 0.25f,
                     .logvar_min = -6}; /* empty hidden */
  test_roundtrip(&flat, 1, 0);
  test_roundtrip(&CFG_CONV, 1, 1);
  test_roundtrip(&CFG_CONV, 0, 0);
  test_match();
  test_write_refusals();
  test_read_refusals();
  test_find_latest();
  test_rotate();
  test_deferred();
  test_faults();
  return check_done("test_checkpoint");
}
