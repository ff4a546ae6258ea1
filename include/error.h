/* error.h: the one way vae_mpi reports failure.
 * Two kinds of failure:
 *  - user errors (bad file, bad flag, mismatched checkpoint): functions write a message into a
 *    caller's buffer and return -1; the driver agrees on it across ranks (vae_dist_check) and every
 *    rank exits cleanly after rank 0 prints one "vae_mpi: error: ..." line.
 *  - internal failures (out of memory, an MPI or HDF5 call that cannot fail on valid input): the
 *    checked-call macros below print "[rank N] vae_mpi: error: ..." with file and line and abort
 *    the whole job (MPI_Abort once MPI is up), so that no rank waits forever in a collective. */
#ifndef VAE_ERROR_H
#define VAE_ERROR_H

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>

#define VAE_ERR_LEN 1024

/* Writes "fmt ..." into err (VAE_ERR_LEN bytes) and returns -1, for `return vae_err(err, ...)`. */
int vae_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "vae_mpi: error: MSG" on stderr and exits with status 1. Only for a single process, or once
 * every rank knows of the error (see vae_dist_check). */
void vae_exit_error(const char *msg) __attribute__((noreturn));

/* Internal failure: prints where and why, then MPI_Abort (or exit when MPI is not running). */
void vae_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

void *vae_malloc_check(size_t n, const char *file, int line);
void *vae_calloc_check(size_t n, size_t size, const char *file, int line);
FILE *vae_fopen_check(const char *path, const char *mode, const char *file, int line);

#define mallocCheck(n) vae_malloc_check((n), __FILE__, __LINE__)
#define callocCheck(n, s) vae_calloc_check((n), (s), __FILE__, __LINE__)
#define fopenCheck(p, m) vae_fopen_check((p), (m), __FILE__, __LINE__)
#define VAE_FAIL(...) vae_fail(__FILE__, __LINE__, __VA_ARGS__)

/* MPI calls: the default error handler already aborts, this adds our file:line message. */
#define mpiCheck(call)                                                                          \
  do {                                                                                          \
    int mpi_rc_ = (call);                                                                       \
    if (mpi_rc_ != 0) vae_fail(__FILE__, __LINE__, "MPI call failed (%d): %s", mpi_rc_, #call); \
  } while (0)

/* HDF5 calls that cannot fail on a validated file: a negative result is an internal failure. */
#define h5Check(call)                                                            \
  do {                                                                           \
    if ((call) < 0) vae_fail(__FILE__, __LINE__, "HDF5 call failed: %s", #call); \
  } while (0)

/* Turns off HDF5's automatic error-stack printing (we say what went wrong in our own words).
 * VAE_DEBUG_HDF5=1 in the environment keeps the stack, for debugging. */
void vae_h5_quiet(void);

/* 1 when an HDF5 numeric type is one of the standard ones (8/16/32/64-bit integers, IEEE 32/64-bit
 * floats, either byte order), 0 otherwise. Check before H5Dread/H5Aread of a file's numbers: the
 * library's conversions trust the type's precision, offset and fields, and a damaged type (say a
 * 32-bit integer with 28524 bits of precision) makes them read out of bounds. */
int vae_h5_type_is_standard(hid_t type);

#endif
