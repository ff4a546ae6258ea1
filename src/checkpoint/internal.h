/* checkpoint/internal.h: INTERNAL to the checkpoint module. Only the files of src/checkpoint/ include it;
 * everything else uses the public include/checkpoint.h. It declares what more than one of those
 * files needs: the HDF5 attribute codec and the schema's shared tables (checkpoint/h5.c), the
 * header-only read (checkpoint/read.c) and the first half of the write (checkpoint/write.c). Names are
 * prefixed vae_ck_ / VAE_CK_ to keep them apart from the public vae_checkpoint_* API. */
#ifndef VAE_CHECKPOINT_INTERNAL_H
#define VAE_CHECKPOINT_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "durable_file.h"

/* Completes a refusal that means "not written by vae_mpi in this schema". */
#define VAE_CK_SCHEMA_HINT "it is not a complete vae_mpi checkpoint (schema: docs/CHECKPOINT.md)"

/* ======================================================================================
 * checkpoint/h5.c: HDF5 diagnostics
 * ====================================================================================== */

/* What HDF5's (silenced) error stack says: the errno of a failed system call, and whether the file
 * was found shorter than its superblock claims. */
typedef struct {
  int errnum;
  int truncated;
} vae_ck_diag;

/* Walks and then clears the current error stack. */
vae_ck_diag vae_ck_diagnose(void);

/* ======================================================================================
 * checkpoint/h5.c: the tensor tables
 * ====================================================================================== */

/* The three groups a layout's tensors are stored under, in the order params, m, v. */
extern const char *const vae_ck_tensor_groups[3];

/* "<grp>/<tensor name>", the tensor's dataset path, into name (VAE_CK_TENSOR_PATH_LEN bytes). */
#define VAE_CK_TENSOR_PATH_LEN 128
void vae_ck_tensor_path(char *name, const char *grp, const vae_tensor *t);

/* 0 when every value is finite; otherwise the first bad element's index and value. */
int vae_ck_scan_finite(const float *p, size_t n, size_t *where, float *val);

/* ======================================================================================
 * checkpoint/h5.c: the /config table: every field of vae_train_opts except the model (that is
 * /model)
 * ====================================================================================== */

typedef enum {
  VAE_CK_F_STR,
  VAE_CK_F_INT,
  VAE_CK_F_LONG,
  VAE_CK_F_DOUBLE,
  VAE_CK_F_U64,
  VAE_CK_F_LR_SCALE
} vae_ck_field_kind;

typedef struct {
  const char *name;
  vae_ck_field_kind kind;
  size_t off;   /* offsetof(vae_train_opts, member) */
  int optional; /* added after format 1 was first written: absent means the train default */
} vae_ck_opt_field;

extern const vae_ck_opt_field vae_ck_opt_fields[];
extern const size_t vae_ck_n_opt_fields;

/* ======================================================================================
 * checkpoint/h5.c: attribute writing
 * ====================================================================================== */

/* rank 0: scalar; rank 1: array of len. ftype is the stored type, mtype the type of buf. */
herr_t vae_ck_put_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, hsize_t len,
                       const void *buf);
/* Variable-length UTF-8: h5py returns it as a Python str. */
herr_t vae_ck_put_str(hid_t loc, const char *name, const char *s);
herr_t vae_ck_put_i32(hid_t loc, const char *name, int v);
herr_t vae_ck_put_i64(hid_t loc, const char *name, long long v);
herr_t vae_ck_put_u64(hid_t loc, const char *name, uint64_t v);
herr_t vae_ck_put_f64(hid_t loc, const char *name, double v);
herr_t vae_ck_put_f32(hid_t loc, const char *name, float v);

/* ======================================================================================
 * checkpoint/h5.c: attribute reading: every attribute is checked for presence, class, count and
 * range; each refusal is one line in err
 * ====================================================================================== */

/* Where messages point: the file, and the object whose attributes are read ("" is the root). */
typedef struct {
  const char *path;
  const char *obj;
  char *err;
} vae_ck_rctx;

typedef enum { VAE_CK_NUM_INT, VAE_CK_NUM_U64, VAE_CK_NUM_FLOAT } vae_ck_num_kind;

/* Reads attribute name as numbers: long long (NUM_INT), uint64_t (NUM_U64) or double (NUM_FLOAT)
 * into out. count NULL: exactly one value; else up to max (<= VAE_MAX_HIDDEN) and *count. */
int vae_ck_get_nums(hid_t loc, const char *name, vae_ck_num_kind k, void *out, int max, int *count,
                    const vae_ck_rctx *c);
/* One integer in [lo, hi]. */
int vae_ck_get_int(hid_t loc, const char *name, long long lo, long long hi, long long *v,
                   const vae_ck_rctx *c);
/* A string attribute, fixed-length or variable-length (h5py writes both), into out (n bytes). */
int vae_ck_get_str(hid_t loc, const char *name, char *out, size_t n, const vae_ck_rctx *c);

/* ======================================================================================
 * checkpoint/attr_check.c
 * ====================================================================================== */

/* 0 when every attribute message in obj's object header can be decoded by HDF5 1.10 without it
 * reading past the message (that library trusts the lengths a message declares); otherwise -1 and a
 * refusal naming the attribute. Call before any H5A function on obj. obj_name: "" for the root
 * group, else "/name", as in vae_ck_rctx. */
int vae_ck_check_attrs(hid_t obj, const char *path, const char *obj_name, char *err);

/* The file as attr_check.c reads it: HDF5's own descriptor, the base (userblock length) that
 * addresses count from, the file's length, and the widths of its addresses and lengths. */
typedef struct {
  int fd;
  uint64_t base, eof;
  unsigned sa, ss;
} vae_ck_raw;

/* len bytes (at most 64 MiB) at relative address addr, malloc'd; NULL when not all in the file. */
uint8_t *vae_ck_read_span(const vae_ck_raw *f, uint64_t addr, uint64_t len);

/* ======================================================================================
 * checkpoint/vlen_check.c
 * ====================================================================================== */

/* 0 when each of the points variable-length values at value (the attribute's datatype at dtype, dl
 * bytes, a vlen) can be read by HDF5 1.10: its global heap collection sound and the object it names
 * there as long as its length says. Else -1 and why (why_n bytes). */
int vae_ck_vlen_damage(const vae_ck_raw *f, const uint8_t *dtype, size_t dl, const uint8_t *value,
                       uint64_t points, char *why, size_t why_n);

/* ======================================================================================
 * checkpoint/read.c
 * ====================================================================================== */

/* Opens path and reads only its header (root attributes, /model, /config, /data) into cfg and st,
 * with the same refusals as vae_checkpoint_read; the tensors are not looked at. For --resume
 * auto's cheap pass. */
int vae_ck_read_header_only(const char *path, vae_config *cfg, vae_ckpt_state *st, char *err);

/* ======================================================================================
 * checkpoint/write.c: the first half of vae_checkpoint_write (the second is vae_durable_publish,
 * which checkpoint/async.c runs on its thread)
 * ====================================================================================== */

/* Every check, then the whole file under d's temporary name in path's folder, closed; d is then
 * ready for vae_durable_publish (with VAE_FAULT_CHECKPOINT's points hooked in). */
int vae_ck_write_temp(const char *path, const vae_config *cfg, const float *params, const float *m,
                      const float *v, const vae_ckpt_state *st, vae_durable *d, char *err);

#endif
