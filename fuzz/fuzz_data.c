/* fuzz_data.c: libFuzzer harness for the HDF5 data validator and reader. Each input is written to a
 * temporary file and probed (vae_data_probe: sec2 driver, no MPI) as dataset "x" and "train/images";
 * when the probe accepts a small dataset, the shard is read with parallel HDF5 on MPI_COMM_SELF and
 * its values validated, as `vae_mpi train` does. Contract: 0 or -1 with a message, an accepted
 * dataset has a consistent shape, and nothing crashes. */
#include "fuzz_common.h"

#include <mpi.h>

#include "data.h"
#include "error.h"

static void finalize(void) { MPI_Finalize(); }

/* The parallel read needs MPI: a singleton MPI_Init once per process. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  int up = 0;
  MPI_Initialized(&up);
  if (!up) {
    MPI_Init(argc, argv);
    atexit(finalize);
  }
  return 0;
}

static void probe_one(const char *path, const char *dataset) {
  char err[VAE_ERR_LEN] = "";
  vae_data_info info;
  int rc = vae_data_probe(path, dataset, "--dataset", &info, err);
  if (rc != 0) {
    FUZZ_ASSERT(rc == -1 && err[0] != '\0', "rc %d without a message", rc);
    return;
  }
  FUZZ_ASSERT(info.ndims >= 2 && info.ndims <= 4 && info.n >= 1 && info.d >= 1, "shape");
  FUZZ_ASSERT(info.h * info.w * info.c == info.d, "h %zu w %zu c %zu d %zu", info.h, info.w, info.c, info.d);
  FUZZ_ASSERT(info.n == (size_t)info.dims[0], "n %zu", info.n);
  FUZZ_ASSERT(vae_data_exists(path, dataset) == 1, "probe accepted, exists says no");
  /* Read only what a fuzz input can plausibly hold (1 MiB in memory). */
  if (info.n > (1u << 20) / info.d / info.elem_bytes) return;
  vae_shard s;
  err[0] = '\0';
  rc = vae_data_read_shard(&info, MPI_COMM_SELF, &s, err);
  if (rc != 0) {
    FUZZ_ASSERT(rc == -1 && err[0] != '\0', "read rc %d without a message", rc);
    return;
  }
  FUZZ_ASSERT(s.count == info.n && s.offset == 0 && (s.u8 || s.f32), "shard");
  err[0] = '\0';
  rc = vae_shard_validate(&s, 1, err);
  FUZZ_ASSERT(rc == 0 || err[0] != '\0', "validate rc %d without a message", rc);
  vae_shard_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_temp(data, size, ".h5");
  probe_one(path, "x");
  probe_one(path, "train/images");
  return 0;
}
