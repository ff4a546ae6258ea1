/* checkpoint/attr_check.c: vae_ck_check_attrs: an object's attribute messages checked byte by byte,
 * read from the file itself, before HDF5 decodes any of them.
 *
 * Why: HDF5 1.10 (Debian 12 ships 1.10.8) decodes an attribute message trusting the lengths it
 * declares for its name, datatype, dataspace and value; HDF5 1.14 checks each against the message
 * (the H5_IS_BUFFER_OVERFLOW checks in H5O__attr_decode). A checkpoint whose /config/lr message, 56
 * bytes long, declared an 8200-byte dataspace made H5Aexists copy lr's value from past the end of the
 * header chunk (fuzz_checkpoint; fuzz/regressions/checkpoint/crash-20e9fee0*): a heap-buffer-overflow
 * under ASan, and without ASan a wrong lr accepted in silence. A lookup by name (H5Aexists, H5Aopen)
 * decodes every attribute message before the one it finds, and an absent name all of them, so no
 * order of calls avoids a damaged message: it has to be refused before the object's first H5A call.
 *
 * Checked (HDF5 File Format Specification 3.0, IV.A.1 object headers, IV.A.2.b dataspace, IV.A.2.d
 * datatype, IV.A.2.m attribute): the header's chunks lie in the file and its messages in their
 * chunks; in each attribute message the name (its NUL exactly where its length says), the datatype
 * (every byte HDF5 1.10's H5O_dtype_decode_helper reads, members and base types included), the
 * dataspace (rank and dimensions) and the value (elements x element size) each lie in the message.
 * Not checked: attributes in dense storage (a fractal heap, 1.8 format and later: HDF5 verifies the
 * checksums of its blocks before decoding), a message kept in the shared-message heap, and the value
 * length of an attribute whose datatype or dataspace is shared (that lives in another object header).
 * Must never: trust a byte of the file, or call an H5A function. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"

typedef vae_ck_raw raw_file;

#define MAX_TYPE_DEPTH 16           /* nested vlen/array/compound/enum types; HDF5 writes a few */
#define MAX_CHUNKS 4096             /* object header chunks followed; a loop of continuations ends */
#define MAX_CHUNK_BYTES (64u << 20) /* HDF5 keeps a chunk well under this */

static unsigned u16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static uint32_t u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A little-endian number of n bytes; -1 when it does not fit in 64 bits. */
static int get_le(const uint8_t *p, unsigned n, uint64_t *v) {
  *v = 0;
  for (unsigned i = n; i-- > 0;) {
    if (i >= 8 && p[i]) return -1;
    if (i < 8) *v = *v << 8 | p[i];
  }
  return 0;
}

/* ======================================================================================
 * Datatypes and dataspaces, as HDF5 1.10 decodes them
 * ====================================================================================== */

static size_t type_len(const uint8_t *b, size_t n, int depth, uint32_t *size);

/* A compound member's or enum value's name at b: its encoded length (padded to 8 bytes before
 * datatype version 3), or 0 when it has no NUL within n bytes (HDF5 1.10 strdup()s it). */
static size_t member_name_len(const uint8_t *b, size_t n, unsigned ver) {
  const uint8_t *z = memchr(b, 0, n);
  if (!z) return 0;
  size_t len = (size_t)(z - b), enc = ver >= 3 ? len + 1 : (len + 8) / 8 * 8;
  return enc <= n ? enc : 0;
}

/* The members of a compound type (the bytes after its 8-byte header): their encoded length, or 0. */
static size_t compound_len(const uint8_t *b, size_t n, unsigned ver, unsigned nmemb, uint32_t size,
                           int depth) {
  unsigned bits = 0;
  while (bits < 31 && (size >> (bits + 1))) bits++;
  /* Member offsets: 4 bytes, or from version 3 the fewest that hold the size (H5VM_limit_enc_size);
   * version 1 adds 28 bytes of array dimensions (at most 4) per member. */
  size_t off_bytes = ver >= 3 ? bits / 8 + 1 : 4, k = 0;
  if (nmemb == 0) return 0;
  for (unsigned i = 0; i < nmemb; i++) {
    size_t l = member_name_len(b + k, n - k, ver);
    if (!l) return 0;
    k += l;
    size_t fixed = off_bytes + (ver == 1 ? 28 : 0);
    if (n - k < fixed || (ver == 1 && b[k + off_bytes] > 4)) return 0;
    k += fixed;
    uint32_t msize;
    size_t t = type_len(b + k, n - k, depth + 1, &msize);
    if (!t) return 0;
    k += t;
  }
  return k;
}

/* An enum's base type, names and values (the bytes after its header): their length, or 0. */
static size_t enum_len(const uint8_t *b, size_t n, unsigned ver, unsigned nmemb, int depth) {
  uint32_t bsize;
  size_t k = type_len(b, n, depth + 1, &bsize);
  if (!k) return 0;
  for (unsigned i = 0; i < nmemb; i++) {
    size_t l = member_name_len(b + k, n - k, ver);
    if (!l) return 0;
    k += l;
  }
  if (bsize && nmemb > (n - k) / bsize) return 0;
  return k + (size_t)nmemb * bsize;
}

/* A vlen's or array's base type at b + k: the whole type's length, or 0. */
static size_t base_len(const uint8_t *b, size_t n, size_t k, int depth) {
  uint32_t bsize;
  size_t t = type_len(b + k, n - k, depth + 1, &bsize);
  return t ? k + t : 0;
}

/* The number of bytes HDF5 1.10 reads decoding the datatype at b, or 0 when that passes n bytes or
 * the encoding is one it refuses. *size: the element size as stored (what the value's length is
 * computed from). */
static size_t type_len(const uint8_t *b, size_t n, int depth, uint32_t *size) {
  if (n < 8 || depth > MAX_TYPE_DEPTH) return 0;
  unsigned cls = b[0] & 0x0f, ver = b[0] >> 4, flags = (unsigned)b[1] | (unsigned)b[2] << 8;
  *size = u32(b + 4);
  if (ver < 1 || ver > 3) return 0;
  size_t k = 8, props = 0;
  switch (cls) {
    case H5T_INTEGER:
    case H5T_BITFIELD: props = 4; break; /* bit offset, precision */
    case H5T_FLOAT: props = 12; break;   /* offset, precision, exponent and mantissa fields, bias */
    case H5T_TIME: props = 2; break;
    case H5T_STRING:
    case H5T_REFERENCE: props = 0; break;
    case H5T_OPAQUE: props = flags & 0xff; break; /* the tag */
    case H5T_COMPOUND:
      props = compound_len(b + k, n - k, ver, flags, *size, depth);
      return props ? k + props : 0;
    case H5T_ENUM: props = enum_len(b + k, n - k, ver, flags, depth); return props ? k + props : 0;
    case H5T_ARRAY: /* rank, dims (and before version 3 reserved bytes and a permutation), base */
      if (n < 9 || b[8] > 32) return 0;
      k = 9 + (ver < 3 ? 3 + 8 * (size_t)b[8] : 4 * (size_t)b[8]);
      return k < n ? base_len(b, n, k, depth) : 0;
    case H5T_VLEN: return base_len(b, n, k, depth);
    default: return 0;
  }
  return props <= n - k ? k + props : 0;
}

/* The element count of the dataspace encoded at b (n bytes); -1 when it passes n or is malformed. */
static int space_points(const uint8_t *b, size_t n, unsigned ss, uint64_t *points) {
  if (n < 4) return -1;
  unsigned ver = b[0], rank = b[1], flags = b[2];
  if (ver < 1 || ver > 2 || rank > 32) return -1;
  unsigned type = ver >= 2 ? b[3] : rank ? 1u : 0u; /* scalar, simple, null */
  size_t k = ver == 1 ? 8 : 4, dims = (size_t)rank * ss * ((flags & 1) ? 2 : 1);
  if (type > 2 || k > n || dims > n - k) return -1;
  uint64_t p = 1;
  for (unsigned i = 0; i < rank; i++) {
    uint64_t d;
    if (get_le(b + k + (size_t)i * ss, ss, &d) < 0 || (d && p > UINT64_MAX / d)) return -1;
    p *= d;
  }
  *points = type == 2 ? 0 : p;
  return 0;
}

/* ======================================================================================
 * Attribute messages
 * ====================================================================================== */

/* 0 when HDF5 1.10 decodes the attribute message b (n bytes) without reading outside it; else -1
 * and why into why (why_n bytes). The attribute's name into name, left empty while it is in doubt. */
static int attr_damage(const raw_file *f, const uint8_t *b, size_t n, char *name, size_t name_n, char *why,
                       size_t why_n) {
  unsigned ss = f->ss;
  name[0] = '\0';
  unsigned ver = n >= 2 ? b[0] : 0, flags = ver >= 2 ? b[1] : 0;
  size_t k = ver >= 3 ? 9 : 8;
  if (ver < 1 || ver > 3 || (flags & ~3u) || n < k)
    return snprintf(why, why_n, "its %zu-byte message has an unknown version or flag, or is too short", n),
           -1;
  size_t nl = u16(b + 2), dl = u16(b + 4), sl = u16(b + 6);
#define PAD(x) (ver == 1 ? ((x) + 7) / 8 * 8 : (x)) /* version 1 pads each part to 8 bytes */
#define PAST(part, len)                                                                                    \
  (snprintf(why, why_n, "its %s claims %zu bytes, %zu are left in its %zu-byte message", part, len, n - k, \
            n),                                                                                            \
   -1)
  if (nl == 0 || PAD(nl) > n - k) return PAST("name", nl);
  if (memchr(b + k, 0, nl) != b + k + nl - 1)
    return snprintf(why, why_n, "its name does not end where its length (%zu bytes) says", nl), -1;
  snprintf(name, name_n, "%s", (const char *)(b + k));
  k += PAD(nl);
  uint32_t esize = 0;
  const uint8_t *dtype = b + k;
  if (PAD(dl) > n - k) return PAST("datatype", dl);
  if (!(flags & 1) && type_len(b + k, dl, 0, &esize) == 0)
    return snprintf(why, why_n, "its datatype is malformed or longer than its %zu bytes", dl), -1;
  k += PAD(dl);
  uint64_t points = 0;
  if (PAD(sl) > n - k) return PAST("dataspace", sl);
  if (!(flags & 2) && space_points(b + k, sl, ss, &points) < 0)
    return snprintf(why, why_n, "its dataspace is malformed or longer than its %zu bytes", sl), -1;
  k += PAD(sl);
  /* A shared datatype's or dataspace's sizes are in another object header: the value is not checked. */
  if (!(flags & 3) && esize && points > (n - k) / esize)
    return snprintf(why, why_n,
                    "its value claims %llu values of %u bytes, %zu bytes are left in its %zu-byte message",
                    (unsigned long long)points, (unsigned)esize, n - k, n),
           -1;
  /* Variable-length values point into global heap collections, which H5Aread decodes. */
  if (!(flags & 3) && (dtype[0] & 0x0f) == H5T_VLEN && points &&
      vae_ck_vlen_damage(f, dtype, dl, b + k, points, why, why_n) < 0)
    return -1;
#undef PAST
#undef PAD
  return 0;
}

/* ======================================================================================
 * Object headers: the chunks (version 1, or 2 "OHDR"/"OCHK"), their messages
 * ====================================================================================== */

typedef struct {
  uint64_t addr, len;
} span;

typedef struct {
  const raw_file *f;
  int v2, crt_order; /* version 2; its messages carry a 2-byte creation index */
  span *todo;
  int n_todo, n_done;
  int in_attr;    /* the damage is inside an attribute message */
  char name[256]; /* its attribute's name, if that could be read */
  char why[160];
} walk;

uint8_t *vae_ck_read_span(const vae_ck_raw *f, uint64_t addr, uint64_t len) {
  if (len == 0 || len > MAX_CHUNK_BYTES || f->base > f->eof || addr > f->eof - f->base ||
      len > f->eof - f->base - addr)
    return NULL;
  uint8_t *buf = mallocCheck((size_t)len);
  if (pread(f->fd, buf, (size_t)len, (off_t)(f->base + addr)) != (ssize_t)len) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* The first chunk's messages, from the header prefix at addr; -1 when the prefix is damaged. */
static int read_prefix(walk *w, uint64_t addr) {
  uint8_t p[40] = {0};
  uint64_t room = w->f->eof > w->f->base ? w->f->eof - w->f->base : 0, avail = room > addr ? room - addr : 0;
  uint8_t *b = vae_ck_read_span(w->f, addr, avail < sizeof p ? avail : sizeof p);
  if (!b) return -1;
  memcpy(p, b, avail < sizeof p ? (size_t)avail : sizeof p);
  free(b);
  span s;
  if (p[0] == 1) { /* version 1: 16-byte prefix, chunk 0's length at byte 8 */
    s = (span){addr + 16, u32(p + 8)};
  } else if (memcmp(p, "OHDR", 4) == 0 && p[4] == 2) {
    unsigned flags = p[5], k = 6 + ((flags & 0x20) ? 16 : 0) + ((flags & 0x10) ? 4 : 0),
             width = 1u << (flags & 3);
    uint64_t len;
    get_le(p + k, width, &len);
    w->v2 = 1;
    w->crt_order = (flags & 0x04) != 0;
    s = (span){addr + k + width, len};
  } else {
    return -1;
  }
  w->todo = mallocCheck(sizeof *w->todo);
  w->todo[0] = s;
  w->n_todo = 1;
  return 0;
}

/* The messages of one chunk (buf, len bytes, from its first message): each attribute checked, each
 * continuation queued. Returns why the header or an attribute is damaged, or NULL. */
static const char *scan_chunk(walk *w, const uint8_t *buf, size_t len) {
  size_t hdr = w->v2 ? 4 + (w->crt_order ? 2 : 0) : 8;
  for (size_t k = 0; len - k >= hdr;) {
    unsigned type = w->v2 ? buf[k] : u16(buf + k);
    size_t size = w->v2 ? u16(buf + k + 1) : u16(buf + k + 2);
    unsigned mflags = w->v2 ? buf[k + 3] : buf[k + 4];
    const uint8_t *body = buf + k + hdr;
    if (size > len - k - hdr) return "a message runs past the end of its chunk";
    if (type == 0x0C && !(mflags & 0x02)) { /* an attribute, not one in the shared-message heap */
      if (attr_damage(w->f, body, size, w->name, sizeof w->name, w->why, sizeof w->why) < 0) {
        w->in_attr = 1;
        return w->why;
      }
    } else if (type == 0x10) { /* continuation: where the next chunk is, and its length */
      uint64_t a, l;
      if (size < w->f->sa + w->f->ss || get_le(body, w->f->sa, &a) < 0 ||
          get_le(body + w->f->sa, w->f->ss, &l) < 0 || w->n_todo >= MAX_CHUNKS)
        return "a continuation message is damaged";
      w->todo = realloc(w->todo, (size_t)(w->n_todo + 1) * sizeof *w->todo);
      if (!w->todo) VAE_FAIL("out of memory");
      w->todo[w->n_todo++] = (span){a, l};
    }
    k += hdr + size;
  }
  return NULL;
}

/* Every chunk of the header at addr, in order; why it is damaged, or NULL. */
static const char *scan_header(walk *w, uint64_t addr) {
  if (read_prefix(w, addr) < 0) return "its header prefix is damaged";
  for (; w->n_done < w->n_todo; w->n_done++) {
    span s = w->todo[w->n_done];
    uint8_t *buf = vae_ck_read_span(w->f, s.addr, s.len);
    if (!buf) return "a header chunk lies outside the file";
    /* Version 2: continuation chunks start with "OCHK"; every chunk ends with a 4-byte checksum. */
    size_t skip = w->v2 && w->n_done > 0 ? 4 : 0, tail = w->v2 && w->n_done > 0 ? 4 : 0;
    const char *why = NULL;
    if (skip && (s.len < skip + tail || memcmp(buf, "OCHK", 4) != 0))
      why = "a continuation chunk is damaged";
    else
      why = scan_chunk(w, buf + skip, (size_t)s.len - skip - tail);
    free(buf);
    if (why) return why;
  }
  return NULL;
}

int vae_ck_check_attrs(hid_t obj, const char *path, const char *obj_name, char *err) {
  hid_t fid = H5Iget_file_id(obj);
  hid_t fcpl = fid < 0 ? -1 : H5Fget_create_plist(fid);
  hsize_t ub = 0;
  size_t sa = 0, ss = 0;
  void *handle = NULL;
  hid_t fapl = fid < 0 ? -1 : H5Fget_access_plist(fid);
  H5O_info_t oi;
  struct stat sb;
  /* The reader opens checkpoints with the default (sec2) driver, whose handle is a descriptor. */
  if (fcpl < 0 || fapl < 0 || H5Pget_driver(fapl) != H5FD_SEC2 || H5Pget_userblock(fcpl, &ub) < 0 ||
      H5Pget_sizes(fcpl, &sa, &ss) < 0 || H5Fget_vfd_handle(fid, H5P_DEFAULT, &handle) < 0 || !handle ||
      fstat(*(int *)handle, &sb) != 0)
    VAE_FAIL("checkpoint %s: the file's address sizes or descriptor cannot be had", path);
  H5Pclose(fapl);
  H5Pclose(fcpl);
  H5Fclose(fid);
  if (H5Oget_info2(obj, &oi, H5O_INFO_BASIC) < 0)
    return vae_err(err, "checkpoint %s: %s cannot be read; the file is damaged: use an older checkpoint",
                   path, obj_name[0] ? obj_name : "/");
  raw_file f = {*(int *)handle, ub, (uint64_t)sb.st_size, (unsigned)sa, (unsigned)ss};
  walk w = {&f, 0, 0, NULL, 0, 0, 0, "", ""};
  const char *why = scan_header(&w, oi.addr);
  free(w.todo);
  if (!why) return 0;
  const char *where = obj_name[0] ? obj_name : "/";
  if (!w.in_attr)
    return vae_err(err, "checkpoint %s: the object header of %s is damaged (%s); use an older checkpoint",
                   path, where, why);
  if (w.name[0])
    return vae_err(err, "checkpoint %s: attribute %s/%s is damaged (%s); use an older checkpoint", path,
                   obj_name, w.name, why);
  return vae_err(err, "checkpoint %s: an attribute of %s is damaged (%s); use an older checkpoint", path,
                 where, why);
}
