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

  /* Corruptions. */
  n = build(buf, 0x08, 3, d3, 60);
  buf[0] = 0x12;
  expect_refused(buf, n, "bad magic", "bad magic byte 0");
  n = build(buf, 0x08, 3, d3, 60);
  buf[1] = 0x01;
  expect_refused(buf, n, "bad magic", "bad magic byte 1");
  n = build(buf, 0x0D, 3, d3, 60);
  expect_refused(buf, n, "0x0d (float32) is not supported", "float32 type");
  n = build(buf, 0x42, 3, d3, 60);
  expect_refused(buf, n, "0x42 (unknown) is not supported", "unknown type");
  n = build(buf, 0x08, 0, d3, 0);
  expect_refused(buf, n, "ndim 0 is out of range", "ndim 0");
  uint32_t d5[5] = {1, 1, 1, 1, 1};
  n = build(buf, 0x08, 5, d5, 1);
  expect_refused(buf, n, "ndim 5 is out of range", "ndim 5");
  uint32_t dz[3] = {5, 0, 3};
  n = build(buf, 0x08, 3, dz, 0);
  expect_refused(buf, n, "dimension 1 is zero", "zero dimension");
  n = build(buf, 0x08, 3, d3, 59);
  expect_refused(buf, n, "truncated IDX data: shape (5, 4, 3) needs 60 bytes, only 59", "truncated");
  n = build(buf, 0x08, 3, d3, 62);
  expect_refused(buf, n, "2 trailing bytes", "trailing bytes");
  n = build(buf, 0x08, 3, d3, 0);
  expect_refused(buf, 4 + 4 * 2 + 1, "header is 13 bytes, shorter than the 16", "short header");
  expect_refused(buf, 3, "shorter than the 4-byte magic", "3 bytes");
  expect_refused(buf, 0, "shorter than the 4-byte magic", "empty");
  uint32_t dbig[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  n = build(buf, 0x08, 4, dbig, 0);
  expect_refused(buf, n, "dimensions overflow", "dims product overflow");
  /* Declared size huge but not overflowing: refused as truncated without allocating it. */
  uint32_t dhuge[3] = {0xFFFFFFFFu, 28, 28};
  n = build(buf, 0x08, 3, dhuge, 10);
  expect_refused(buf, n, "truncated IDX data", "huge declared size");
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
