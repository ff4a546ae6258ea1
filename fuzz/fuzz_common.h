/* fuzz_common.h: what the libFuzzer harnesses share: one temporary file that each input is written
 * to (the HDF5 readers take paths), and FUZZ_ASSERT, which aborts so that a broken contract is a
 * finding under libFuzzer and a failure under the replay driver (replay_main.c). */
#ifndef VAE_FUZZ_COMMON_H
#define VAE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond, ...)                                                           \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz contract broken at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                      \
      fputc('\n', stderr);                                                               \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

/* A damaged file's sizes can make HDF5 malloc() far more than the machine has (an object header
 * chunk claiming 7 EiB in H5C_protect: fuzz/regressions/checkpoint/crash-beb28d4b*). Without ASan,
 * malloc returns NULL and HDF5 reports an error: the product's one error line. ASan aborts instead
 * (allocation-size-too-big) unless told to return NULL as libc does; so it is told, in every harness
 * and replay, and the contract checked is the product's. vae_mpi's own allocations go through
 * mallocCheck, which fails loudly on NULL (a finding still). ASAN_OPTIONS overrides this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* The path of this process's temporary file (created on first use, removed at exit), holding
 * exactly data[0..size) on return. */
static char fuzz_path_[64];

static void fuzz_cleanup_(void) {
  if (fuzz_path_[0]) unlink(fuzz_path_);
}

static const char *fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix) {
  if (!fuzz_path_[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(fuzz_path_, sizeof fuzz_path_, "%.32s/vae_fuzz_%ld%s", dir && *dir ? dir : "/tmp",
             (long)getpid(), suffix);
    atexit(fuzz_cleanup_);
  }
  FILE *f = fopen(fuzz_path_, "wb");
  FUZZ_ASSERT(f != NULL, "cannot create %s", fuzz_path_);
  FUZZ_ASSERT(size == 0 || fwrite(data, 1, size, f) == size, "cannot write %s", fuzz_path_);
  FUZZ_ASSERT(fclose(f) == 0, "cannot close %s", fuzz_path_);
  return fuzz_path_;
}

#endif
