/* idx.h: the IDX file format (MNIST, Fashion-MNIST), unsigned-byte element type only (idx.c).
 * Layout: bytes 0 0 TYPE NDIM, then NDIM big-endian uint32 dimensions, then the elements row-major.
 * The parser validates everything (magic, type, ndim, dims, exact length) and never trusts a size
 * before checking it against the bytes actually present. */
#ifndef VAE_IDX_H
#define VAE_IDX_H

#include <stddef.h>

#define VAE_IDX_MAX_DIMS 4
#define VAE_IDX_UBYTE 0x08 /* the one element type accepted */

typedef struct {
  int ndim;                      /* 1 .. VAE_IDX_MAX_DIMS */
  size_t dims[VAE_IDX_MAX_DIMS]; /* dims[0] is N; unused entries are 0 */
  size_t count;                  /* product of dims = bytes in data */
  unsigned char *data;           /* count bytes, row-major, owned (vae_idx_free) */
} vae_idx;

/* Parses an IDX image held in memory (already decompressed). On success fills out (data is a fresh
 * copy) and returns 0; on a malformed buffer writes a one-line message into err (VAE_ERR_LEN bytes)
 * and returns -1, leaving out empty. Never reads outside buf[0..len). */
int vae_idx_parse(const unsigned char *buf, size_t len, vae_idx *out, char *err);

/* Reads and parses an IDX file, gzip-compressed (magic 1f 8b) or plain, through zlib.
 * Returns 0, or -1 with a message naming the file and the problem (missing file, truncated gzip
 * stream, corrupt gzip data, or any vae_idx_parse error). */
int vae_idx_read(const char *path, vae_idx *out, char *err);

/* Frees out->data and empties the struct; safe on an empty or already freed struct. */
void vae_idx_free(vae_idx *out);

/* Writes the shape as "(60000, 28, 28)" into buf (n bytes). */
void vae_idx_shape_str(const vae_idx *x, char *buf, size_t n);

#endif
