/* idx.c: the IDX format parser (see idx.h), gzip through zlib.
 * Must never trust a declared size before checking it against the bytes present, never read outside
 * the buffer, and never abort on bad input: a malformed file is a user error (-1 and a message).
 * Knows nothing about HDF5 or MPI. */
#include "idx.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"

static const char *type_name(unsigned t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
  }
}

static size_t be32(const unsigned char *p) {
  return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
}

/* Validates the header and the total length of buf; fills out's ndim/dims/count (not data) and the
 * header length. `what` names the source in messages (a path, or "IDX buffer"). */
static int idx_check(const unsigned char *buf, size_t len, const char *what, vae_idx *out, size_t *hdr_len,
                     char *err) {
  memset(out, 0, sizeof *out);
  if (len < 4)
    return vae_err(err, "%s: not an IDX file: %zu bytes, shorter than the 4-byte magic", what, len);
  if (buf[0] != 0 || buf[1] != 0)
    return vae_err(err,
                   "%s: not an IDX file: bad magic, first bytes %02x %02x must be 00 00 "
                   "(pass an *-idx?-ubyte or *-idx?-ubyte.gz file)",
                   what, buf[0], buf[1]);
  if (buf[2] != VAE_IDX_UBYTE)
    return vae_err(err,
                   "%s: IDX element type 0x%02x (%s) is not supported; only 0x08 (unsigned byte) "
                   "images and labels can be imported",
                   what, buf[2], type_name(buf[2]));
  int ndim = buf[3];
  if (ndim < 1 || ndim > VAE_IDX_MAX_DIMS)
    return vae_err(err, "%s: IDX ndim %d is out of range 1..%d", what, ndim, VAE_IDX_MAX_DIMS);
  size_t hdr = 4 + 4 * (size_t)ndim;
  if (len < hdr)
    return vae_err(err, "%s: IDX header is %zu bytes, shorter than the %zu that ndim %d declares", what, len,
                   hdr, ndim);
  size_t count = 1;
  for (int i = 0; i < ndim; i++) {
    size_t d = be32(buf + 4 + 4 * (size_t)i);
    if (d == 0) return vae_err(err, "%s: IDX dimension %d is zero", what, i);
    if (count > SIZE_MAX / d)
      return vae_err(err, "%s: IDX dimensions overflow: their product does not fit in memory sizes", what);
    count *= d;
    out->dims[i] = d;
  }
  out->ndim = ndim;
  char shape[128];
  vae_idx_shape_str(out, shape, sizeof shape);
  size_t have = len - hdr;
  if (have < count) {
    memset(out, 0, sizeof *out);
    return vae_err(err, "%s: truncated IDX data: shape %s needs %zu bytes, only %zu present", what, shape,
                   count, have);
  }
  if (have > count) {
    memset(out, 0, sizeof *out);
    return vae_err(err, "%s: %zu trailing bytes after the %zu data bytes of shape %s", what, have - count,
                   count, shape);
  }
  out->count = count;
  *hdr_len = hdr;
  return 0;
}

int vae_idx_parse(const unsigned char *buf, size_t len, vae_idx *out, char *err) {
  size_t hdr = 0;
  if (idx_check(buf, len, "IDX buffer", out, &hdr, err) != 0) return -1;
  out->data = mallocCheck(out->count);
  memcpy(out->data, buf + hdr, out->count);
  return 0;
}

int vae_idx_read(const char *path, vae_idx *out, char *err) {
  memset(out, 0, sizeof *out);
  /* Open once with stdio for a clear "no such file" message and to tell gzip from plain data. */
  FILE *f = fopen(path, "rb");
  if (!f) return vae_err(err, "cannot open IDX file %s: %s", path, strerror(errno));
  unsigned char magic[2] = {0, 0};
  size_t nmagic = fread(magic, 1, 2, f);
  fclose(f);
  int gzipped = nmagic == 2 && magic[0] == 0x1f && magic[1] == 0x8b;

  gzFile gz = gzopen(path, "rb");
  if (!gz) return vae_err(err, "cannot open IDX file %s: %s", path, strerror(errno));
  gzbuffer(gz, 1 << 17);
  size_t cap = 1 << 20, len = 0;
  unsigned char *buf = mallocCheck(cap);
  for (;;) {
    if (cap - len < (1u << 20)) {
      if (cap > SIZE_MAX / 2) VAE_FAIL("IDX file %s is too large to hold in memory", path);
      cap *= 2;
      unsigned char *nb = realloc(buf, cap);
      if (!nb) VAE_FAIL("out of memory reading %s (%zu bytes)", path, cap);
      buf = nb;
    }
    int n = gzread(gz, buf + len, 1u << 20);
    if (n < 0) {
      int code = 0;
      const char *msg = gzerror(gz, &code);
      vae_err(err, "%s: corrupt %s data: %s; re-download the file", path, gzipped ? "gzip" : "file", msg);
      free(buf);
      gzclose(gz);
      return -1;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  /* gzread stops quietly at a cut-off gzip stream; gzerror says Z_BUF_ERROR then. */
  int code = Z_OK;
  gzerror(gz, &code);
  gzclose(gz);
  if (code == Z_BUF_ERROR && gzipped) {
    free(buf);
    return vae_err(err,
                   "%s: gzip stream is truncated (ends after %zu decompressed bytes); re-download "
                   "the file",
                   path, len);
  }
  if (code != Z_OK && code != Z_BUF_ERROR) {
    free(buf);
    return vae_err(err, "%s: read error (zlib code %d); re-download the file", path, code);
  }

  size_t hdr = 0;
  if (idx_check(buf, len, path, out, &hdr, err) != 0) {
    free(buf);
    return -1;
  }
  /* Keep the buffer: slide the elements to its front and give back the spare capacity. */
  memmove(buf, buf + hdr, out->count);
  unsigned char *shrunk = realloc(buf, out->count);
  out->data = shrunk ? shrunk : buf;
  return 0;
}

void vae_idx_free(vae_idx *out) {
  if (!out) return;
  free(out->data);
  memset(out, 0, sizeof *out);
}

void vae_idx_shape_str(const vae_idx *x, char *buf, size_t n) {
  /* At most 4 dims of up to 10 digits: 64 bytes always suffice; a shorter buffer is truncated. */
  char tmp[64] = "(";
  size_t used = 1;
  for (int i = 0; i < x->ndim; i++)
    used += (size_t)snprintf(tmp + used, sizeof tmp - used, "%s%zu", i ? ", " : "", x->dims[i]);
  snprintf(tmp + used, sizeof tmp - used, "%s)", x->ndim == 1 ? "," : "");
  if (n) snprintf(buf, n, "%s", tmp);
}
