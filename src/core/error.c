/* error.c: the `vae_mpi: error:` path and the checked-call helpers.
 * Never used to report a user error from one rank alone while others run: see dist.c. */
#include "error.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

int vae_err(char *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, VAE_ERR_LEN, fmt, ap);
  va_end(ap);
  /* One line: a message never carries its own newline. */
  for (char *p = err; *p; p++)
    if (*p == '\n') *p = ' ';
  return -1;
}

void vae_exit_error(const char *msg) {
  fprintf(stderr, "vae_mpi: error: %s\n", msg);
  fflush(stderr);
  vae_dist_exit(1, 0);
}

void vae_fail(const char *file, int line, const char *fmt, ...) {
  char msg[VAE_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int rank, size;
  vae_dist_active(&rank, &size);
  fprintf(stderr, "[rank %d] vae_mpi: error: %s (%s:%d)\n", rank, msg, file, line);
  fflush(stderr);
  vae_dist_exit(1, 1);
}

void *vae_malloc_check(size_t n, const char *file, int line) {
  void *p = malloc(n ? n : 1);
  if (!p) vae_fail(file, line, "out of memory allocating %zu bytes", n);
  return p;
}

void *vae_calloc_check(size_t n, size_t size, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) vae_fail(file, line, "out of memory allocating %zu x %zu bytes", n, size);
  return p;
}

FILE *vae_fopen_check(const char *path, const char *mode, const char *file, int line) {
  FILE *f = fopen(path, mode);
  if (!f) vae_fail(file, line, "cannot open %s (mode %s)", path, mode);
  return f;
}

void vae_h5_quiet(void) {
  const char *dbg = getenv("VAE_DEBUG_HDF5");
  if (dbg && strcmp(dbg, "1") == 0) return;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int vae_h5_type_is_standard(hid_t type) {
  const hid_t std[] = {H5T_STD_U8LE,  H5T_STD_U8BE,   H5T_STD_I8LE,   H5T_STD_I8BE,   H5T_STD_U16LE,
                       H5T_STD_U16BE, H5T_STD_I16LE,  H5T_STD_I16BE,  H5T_STD_U32LE,  H5T_STD_U32BE,
                       H5T_STD_I32LE, H5T_STD_I32BE,  H5T_STD_U64LE,  H5T_STD_U64BE,  H5T_STD_I64LE,
                       H5T_STD_I64BE, H5T_IEEE_F32LE, H5T_IEEE_F32BE, H5T_IEEE_F64LE, H5T_IEEE_F64BE};
  for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
    if (H5Tequal(type, std[i]) > 0) return 1;
  return 0;
}
