/* fuzz_idx.c: libFuzzer harness for the IDX parser. Every input goes to vae_idx_parse (memory), and
 * through vae_idx_read (a file: plain or gzip through zlib). Contract checked: success means the
 * shape's product equals the bytes copied and the data equals the input after the header; failure
 * means a message and an empty struct. Never an abort, a sanitizer report or a read out of bounds. */
#include "fuzz_common.h"

#include "error.h"
#include "idx.h"

static void check_result(int rc, const vae_idx *x, const char *err, const uint8_t *buf, size_t len) {
  if (rc != 0) {
    FUZZ_ASSERT(rc == -1 && err[0] != '\0', "rc %d without a message", rc);
    FUZZ_ASSERT(x->data == NULL && x->count == 0 && x->ndim == 0, "failure left data behind");
    return;
  }
  FUZZ_ASSERT(x->ndim >= 1 && x->ndim <= VAE_IDX_MAX_DIMS, "ndim %d", x->ndim);
  size_t prod = 1;
  for (int i = 0; i < x->ndim; i++) prod *= x->dims[i];
  FUZZ_ASSERT(prod == x->count, "product %zu != count %zu", prod, x->count);
  if (buf) {
    size_t hdr = 4 + 4 * (size_t)x->ndim;
    FUZZ_ASSERT(hdr + x->count == len, "header %zu + count %zu != length %zu", hdr, x->count, len);
    FUZZ_ASSERT(memcmp(x->data, buf + hdr, x->count) == 0, "data differs from the input");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[VAE_ERR_LEN] = "";
  vae_idx x;
  int rc = vae_idx_parse(data, size, &x, err);
  check_result(rc, &x, err, data, size);
  vae_idx_free(&x);
  /* The file path: gzip'd inputs exercise zlib and the growth of the read buffer. Inputs above
   * 1 MiB are skipped here (libFuzzer's -max_len keeps them small anyway). */
  if (size <= (1u << 20)) {
    const char *path = fuzz_write_temp(data, size, ".idx");
    err[0] = '\0';
    vae_idx y;
    rc = vae_idx_read(path, &y, err);
    check_result(rc, &y, err, NULL, 0);
    vae_idx_free(&y);
  }
  return 0;
}
