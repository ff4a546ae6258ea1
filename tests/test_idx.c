/* test_idx.c: the IDX parser, from memory and from disk (plain and gzipped): good files parse with
 * the right dims and bytes, every kind of corruption is refused with a message naming the problem. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "error.h"
#include "idx.h"

/* Builds an IDX buffer: magic 00 00 type ndim, big-endian dims, then `ndata` bytes of pattern
 * (i * 7 + 3) & 255. Returns its length; buf must be large enough. */
static size_t build(unsigned char *buf, int type, int ndim, const uint32_t *dims, size_t ndata) {
  size_t n = 0;
  buf[n++] = 0;
  buf[n++] = 0;
  buf[n++] = (unsigned char)type;
  buf[n++] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++) {
    buf[n++] = (unsigned char)(dims[i] >> 24);
    buf[n++] = (unsigned char)(dims[i] >> 16);
    buf[n++] = (unsigned char)(dims[i] >> 8);
    buf[n++] = (unsigned char)dims[i];
  }
  for (size_t i = 0; i < ndata; i++) buf[n++] = (unsigned char)((i * 7 + 3) & 255);
  return n;
}

static int pattern_ok(const vae_idx *x) {
  for (size_t i = 0; i < x->count; i++)
    if (x->data[i] != (unsigned char)((i * 7 + 3) & 255)) return 0;
  return 1;
}

/* Expects a refusal whose message contains `needle`, and an empty struct afterwards. */
static void expect_refused(const unsigned char *buf, size_t len, const char *needle, const char *what) {
  vae_idx x;
  char err[VAE_ERR_LEN] = "";
  int rc = vae_idx_parse(buf, len, &x, err);
  CHECK(rc == -1, "%s: accepted", what);
  CHECK(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", what, err, needle);
  CHECK(x.data == NULL && x.count == 0, "%s: struct not emptied", what);
  vae_idx_free(&x);
}

static void write_file(const char *path, const unsigned char *buf, size_t len, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb6");
    CHECK(f != NULL, "gzopen %s", path);
    if (!f) return;
    CHECK(gzwrite(f, buf, (unsigned)len) == (int)len, "gzwrite %s", path);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "fopen %s", path);
    if (!f) return;
    CHECK(fwrite(buf, 1, len, f) == len, "fwrite %s", path);
    fclose(f);
  }
}

static void test_memory(unsigned char *buf) {
  char err[VAE_ERR_LEN];
  vae_idx x;

  /* Good 3-d images (5, 4, 3) and 1-d labels (5), and a 4-d (2, 3, 2, 3). */
  uint32_t d3[3] = {5, 4, 3};
  size_t n = build(buf, 0x08, 3, d3, 60);
  CHECK(vae_idx_parse(buf, n, &x, err) == 0, "3-d refused: %s", err);
  CHECK(x.ndim == 3 && x.dims[0] == 5 && x.dims[1] == 4 && x.dims[2] == 3 && x.dims[3] == 0,
        "3-d dims %d (%zu, %zu, %zu, %zu)", x.ndim, x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
  CHECK(x.count == 60 && pattern_ok(&x), "3-d count %zu or bytes wrong", x.count);
  char shape[64];
  vae_idx_shape_str(&x, shape, sizeof shape);
  CHECK(strcmp(shape, "(5, 4, 3)") == 0, "shape string '%s'", shape);
  vae_idx_free(&x);
  CHECK(x.data == NULL && x.count == 0, "free empties the struct");
  vae_idx_free(&x); /* twice is safe */

  uint32_t d1[1] = {5};
  n = build(buf, 0x08, 1, d1, 5);
  CHECK(vae_idx_parse(buf, n, &x, err) == 0, "1-d refused: %s", err);
  CHECK(x.ndim == 1 && x.dims[0] == 5 && x.count == 5 && pattern_ok(&x), "1-d parse");
  vae_idx_shape_str(&x, shape, sizeof shape);
  CHECK(strcmp(shape, "(5,)") == 0, "1-d shape string '%s'", shape);
  vae_idx_free(&x);

  uint32_t d4[4] = {2, 3, 2, 3};
  n = build(buf, 0x08, 4, d4, 36);
  CHECK(vae_idx_parse(buf, n, &x, err) == 0, "4-d refused: %s", err);
  CHECK(x.ndim == 4 && x.dims[3] == 3 && x.count == 36 && pattern_ok(&x), "4-d parse");
  vae_idx_free(&x);

  /* Corruptions, one per row: the buffer built from (type, ndim, dims, ndata), then byte `poke`
   * set to `val` (poke < 0: none), cut to `len` bytes (0: keep the whole), must be refused with a
   * message containing `needle`. */
  static const struct {
    const char *what;
    int type, ndim;
    uint32_t dims[5];
    size_t ndata;
    int poke, val;
    size_t len;
    const char *needle;
  } bad[] = {
      {"bad magic byte 0", 0x08, 3, {5, 4, 3}, 60, 0, 0x12, 0, "bad magic"},
      {"bad magic byte 1", 0x08, 3, {5, 4, 3}, 60, 1, 0x01, 0, "bad magic"},
      {"float32 type", 0x0D, 3, {5, 4, 3}, 60, -1, 0, 0, "0x0d (float32) is not supported"},
      {"unknown type", 0x42, 3, {5, 4, 3}, 60, -1, 0, 0, "0x42 (unknown) is not supported"},
      {"ndim 0", 0x08, 0, {0}, 0, -1, 0, 0, "ndim 0 is out of range"},
      {"ndim 5", 0x08, 5, {1, 1, 1, 1, 1}, 1, -1, 0, 0, "ndim 5 is out of range"},
      {"zero dimension", 0x08, 3, {5, 0, 3}, 0, -1, 0, 0, "dimension 1 is zero"},
      {"truncated",
       0x08,
       3,
       {5, 4, 3},
       59,
       -1,
       0,
       0,
       "truncated IDX data: shape (5, 4, 3) needs 60 bytes, only 59"},
      {"trailing bytes", 0x08, 3, {5, 4, 3}, 62, -1, 0, 0, "2 trailing bytes"},
      {"short header", 0x08, 3, {5, 4, 3}, 0, -1, 0, 13, "header is 13 bytes, shorter than the 16"},
      {"3 bytes", 0x08, 3, {5, 4, 3}, 0, -1, 0, 3, "shorter than the 4-byte magic"},
      {"dims product overflow",
       0x08,
       4,
       {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu},
       0,
       -1,
       0,
       0,
       "dimensions overflow"},
      /* Declared size huge but not overflowing: refused as truncated without allocating it. */
      {"huge declared size", 0x08, 3, {0xFFFFFFFFu, 28, 28}, 10, -1, 0, 0, "truncated IDX data"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    n = build(buf, bad[i].type, bad[i].ndim, bad[i].dims, bad[i].ndata);
    if (bad[i].poke >= 0) buf[bad[i].poke] = (unsigned char)bad[i].val;
    expect_refused(buf, bad[i].len ? bad[i].len : n, bad[i].needle, bad[i].what);
  }
  expect_refused(buf, 0, "shorter than the 4-byte magic", "empty");
}

static void test_files(unsigned char *buf) {
  char err[VAE_ERR_LEN];
  vae_idx x;
  char plain[64], gz[64], cut[64];
  snprintf(plain, sizeof plain, "test_idx_%ld.idx", (long)getpid());
  snprintf(gz, sizeof gz, "test_idx_%ld.idx.gz", (long)getpid());
  snprintf(cut, sizeof cut, "test_idx_%ld_cut.idx.gz", (long)getpid());

  /* A bigger file (spans several zlib reads): (300, 28, 28) = 235200 bytes. */
  uint32_t d3[3] = {300, 28, 28};
  size_t n = build(buf, 0x08, 3, d3, 300 * 28 * 28);
  for (int gzipped = 0; gzipped <= 1; gzipped++) {
    const char *path = gzipped ? gz : plain;
    write_file(path, buf, n, gzipped);
    int rc = vae_idx_read(path, &x, err);
    CHECK(rc == 0, "%s refused: %s", path, err);
    CHECK(x.ndim == 3 && x.dims[0] == 300 && x.dims[1] == 28 && x.dims[2] == 28, "%s dims", path);
    CHECK(x.count == 235200 && pattern_ok(&x), "%s bytes", path);
    vae_idx_free(&x);
  }
  /* The file really is gzip: starts with 1f 8b. */
  FILE *f = fopen(gz, "rb");
  unsigned char m[2] = {0, 0};
  CHECK(f && fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b, "gz magic %02x %02x", m[0], m[1]);
  if (f) fclose(f);

  /* A gzip stream cut in half. */
  f = fopen(gz, "rb");
  unsigned char *z = malloc(1 << 20);
  size_t zn = f ? fread(z, 1, 1 << 20, f) : 0;
  if (f) fclose(f);
  CHECK(zn > 100, "gz size %zu", zn);
  write_file(cut, z, zn / 2, 0);
  CHECK(vae_idx_read(cut, &x, err) == -1, "truncated gzip accepted");
  CHECK(strstr(err, "gzip stream is truncated") && strstr(err, cut), "truncated gzip message: %s", err);
  CHECK(x.data == NULL, "truncated gzip leaves data");
  /* The same, missing only its 8-byte trailer (CRC + length): still refused. */
  write_file(cut, z, zn - 8, 0);
  CHECK(vae_idx_read(cut, &x, err) == -1, "gzip without trailer accepted");
  CHECK(strstr(err, "truncated") != NULL, "gzip without trailer message: %s", err);
  /* A flipped byte in the compressed data: refused as corrupt (CRC or inflate error). */
  z[zn / 2] ^= 0x55;
  write_file(cut, z, zn, 0);
  CHECK(vae_idx_read(cut, &x, err) == -1, "corrupt gzip accepted");
  CHECK(strstr(err, cut) != NULL, "corrupt gzip message names the file: %s", err);
  free(z);

  /* On-disk corruption goes through the same checks and names the path. */
  n = build(buf, 0x08, 3, d3, 300 * 28 * 28 - 1);
  write_file(gz, buf, n, 1);
  CHECK(vae_idx_read(gz, &x, err) == -1, "truncated data in gzip accepted");
  CHECK(strstr(err, gz) && strstr(err, "truncated IDX data"), "message: %s", err);
  n = build(buf, 0x09, 3, d3, 300 * 28 * 28);
  write_file(plain, buf, n, 0);
  CHECK(vae_idx_read(plain, &x, err) == -1 && strstr(err, "signed byte"), "signed type: %s", err);

  /* Missing file. */
  CHECK(vae_idx_read("no/such/file.idx", &x, err) == -1, "missing file accepted");
  CHECK(strstr(err, "cannot open IDX file no/such/file.idx") && strstr(err, "No such file"),
        "missing file message: %s", err);

  remove(plain);
  remove(gz);
  remove(cut);
}

int main(void) {
  unsigned char *buf = malloc(300 * 28 * 28 + 64);
  test_memory(buf);
  test_files(buf);
  free(buf);
  return check_done("test_idx");
}
