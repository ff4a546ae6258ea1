/* fuzz_checkpoint.c: libFuzzer harness for the checkpoint reader. Each input is written to a
 * temporary file and read with vae_checkpoint_read, as `--resume PATH` does. Contract: 0 with
 * finite tensors of vae_num_params floats and a config that matches itself, or -1 with a message and
 * nothing allocated; never a crash. */
#include "fuzz_common.h"

#include <math.h>

#include "checkpoint.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_temp(data, size, ".h5");
  char err[VAE_ERR_LEN] = "";
  vae_config cfg;
  float *p = NULL, *m = NULL, *v = NULL;
  vae_ckpt_state st;
  int rc = vae_checkpoint_read(path, &cfg, &p, &m, &v, &st, err);
  if (rc != 0) {
    FUZZ_ASSERT(rc == -1 && err[0] != '\0', "rc %d without a message", rc);
    FUZZ_ASSERT(p == NULL && m == NULL && v == NULL, "failure left buffers");
    return 0;
  }
  FUZZ_ASSERT(p != NULL && (m == NULL) == (v == NULL), "buffers");
  FUZZ_ASSERT(vae_config_validate(&cfg, err) == 0, "accepted config is invalid: %s", err);
  size_t n = vae_num_params(&cfg);
  for (size_t i = 0; i < n; i++) {
    FUZZ_ASSERT(isfinite(p[i]), "non-finite parameter %zu", i);
    if (m) FUZZ_ASSERT(isfinite(m[i]) && isfinite(v[i]), "non-finite moment %zu", i);
  }
  FUZZ_ASSERT(vae_checkpoint_match(&cfg, &cfg, err) == 0, "config does not match itself: %s", err);
  free(p);
  free(m);
  free(v);
  return 0;
}
