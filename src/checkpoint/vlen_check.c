/* checkpoint/vlen_check.c: vae_ck_vlen_damage: an attribute's variable-length values (h5py's str)
 * checked in the file's bytes before H5Aread decodes them.
 *
 * Why: a variable-length value is a length and a global heap ID (a collection's address, an object
 * index); H5Aread loads the whole collection and copies the object into a buffer sized by the
 * length. HDF5 1.10 trusts all of it: a collection whose object claims 0 bytes made
 * H5HG__cache_heap_deserialize loop for ever (fuzz_checkpoint: fuzz/regressions/checkpoint/timeout-*),
 * an object longer than the length overflows the buffer, an index with no object reads through a
 * NULL pointer (H5HG_read only asserts it).
 *
 * Checked (HDF5 File Format Specification 3.0, III.E global heap; IV.A.2.d variable-length type):
 * each element is 4 + address + 4 bytes; for each with a non-zero address: the collection ("GCOL",
 * version 1, at least 4096 bytes) lies in the file, its objects are walked as HDF5 1.10 walks them
 * (each one's header and padded data inside the collection, none of 0 bytes), and the object named
 * is one of them (index above 0) holding exactly length x base-type-size bytes.
 * Must never: trust a byte of the file, or call an HDF5 function. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GCOL_MIN 4096u                /* H5HG_MINSIZE: HDF5 never writes a smaller one */
#define ALIGN8(x) (((x) + 7) / 8 * 8) /* H5HG_ALIGN */
#define CACHE_COLLECTIONS 8           /* collections remembered (a checkpoint has 1) */

static uint64_t le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = n; i-- > 0;) v = v << 8 | p[i];
  return v;
}

/* The object index idx of the collection at buf (len bytes): its data size into *size. 1 found, 0
 * absent, -1 the collection is damaged (why says how). Mirrors H5HG__cache_heap_deserialize. */
static int find_object(const uint8_t *buf, uint64_t len, unsigned ss, unsigned idx, uint64_t *size,
                       const char **why) {
  uint64_t hdr = ALIGN8(8u + ss), objhdr = ALIGN8(8u + ss), p = hdr;
  int found = 0;
  while (p < len) {
    if (len - p < objhdr) break; /* too small for an object: free space */
    unsigned i = (unsigned)buf[p] | (unsigned)buf[p + 1] << 8;
    uint64_t osize = le(buf + p + 8, ss);
    uint64_t room = len - p;
    /* Object 0 is the free space, its size counting its header; the others are padded to 8. */
    if (i > 0 && osize > room - objhdr) {
      *why = "has an object running past its end";
      return -1;
    }
    uint64_t need = i > 0 ? objhdr + ALIGN8(osize) : osize;
    if (need == 0 || need > room) {
      *why = need == 0 ? "has an object of 0 bytes" : "has an object running past its end";
      return -1;
    }
    if (i == idx) {
      *size = osize;
      found = 1; /* a later object of the same index replaces it, as in HDF5 */
    }
    p += need;
  }
  return found;
}

typedef struct {
  uint64_t addr, len;
  uint8_t *buf;
} collection;

/* The collection at addr, read once into cache (n entries in use); NULL and why when damaged. */
static const collection *load(const vae_ck_raw *f, collection *cache, int *n, uint64_t addr,
                              const char **why) {
  for (int i = 0; i < *n; i++)
    if (cache[i].addr == addr) return &cache[i];
  uint8_t *h = vae_ck_read_span(f, addr, 8u + f->ss);
  uint64_t len = h ? le(h + 8, f->ss) : 0;
  int ok = h && memcmp(h, "GCOL", 4) == 0 && h[4] == 1 && len >= GCOL_MIN;
  free(h);
  uint8_t *buf = ok ? vae_ck_read_span(f, addr, len) : NULL;
  if (!buf) {
    *why = ok ? "runs past the end of the file"
              : "is missing or damaged (no GCOL version 1 header of 4096 bytes or more)";
    return NULL;
  }
  if (*n == CACHE_COLLECTIONS) { /* full: drop the oldest */
    free(cache[0].buf);
    memmove(cache, cache + 1, (CACHE_COLLECTIONS - 1) * sizeof *cache);
    (*n)--;
  }
  cache[*n] = (collection){addr, len, buf};
  return &cache[(*n)++];
}

/* One element (4-byte length, heap ID): 0 sound, -1 with why. */
static int element_damage(const vae_ck_raw *f, const uint8_t *e, uint32_t base_size, collection *cache,
                          int *n, char *why, size_t why_n) {
  uint64_t count = le(e, 4), addr = le(e + 4, f->sa), size = 0;
  unsigned idx = (unsigned)le(e + 4 + f->sa, 4);
  if (addr == 0) return 0; /* a null (empty) value: HDF5 reads nothing */
  const char *what = NULL;
  const collection *c = load(f, cache, n, addr, &what);
  int found = c ? find_object(c->buf, c->len, f->ss, idx, &size, &what) : -1;
  if (found < 0) return snprintf(why, why_n, "its string's global heap collection %s", what), -1;
  if (!found || idx == 0)
    return snprintf(why, why_n, "its string names object %u, which its global heap collection lacks", idx),
           -1;
  if (size != count * base_size)
    return snprintf(why, why_n, "its string claims %llu bytes, its global heap object holds %llu",
                    (unsigned long long)(count * base_size), (unsigned long long)size),
           -1;
  return 0;
}

int vae_ck_vlen_damage(const vae_ck_raw *f, const uint8_t *dtype, size_t dl, const uint8_t *value,
                       uint64_t points, char *why, size_t why_n) {
  /* The caller checked the type's bytes (its base type included) lie within dl and the value's
   * points x element-size bytes within the message. */
  uint32_t esize = (uint32_t)le(dtype + 4, 4), base_size = dl >= 16 ? (uint32_t)le(dtype + 12, 4) : 0;
  if (esize != 8u + f->sa || base_size == 0)
    return snprintf(why, why_n,
                    "its variable-length type claims %u-byte values (HDF5 stores %u) of %u-byte items",
                    (unsigned)esize, 8u + f->sa, (unsigned)base_size),
           -1;
  collection cache[CACHE_COLLECTIONS];
  int n = 0, rc = 0;
  for (uint64_t i = 0; i < points && rc == 0; i++)
    rc = element_damage(f, value + i * esize, base_size, cache, &n, why, why_n);
  for (int i = 0; i < n; i++) free(cache[i].buf);
  return rc;
}
