/* h5_chunks.c: shuffle + deflate of whole HDF5 chunks on worker threads (h5_chunks.h). Pure
 * computation: never calls HDF5, so it is safe beside the (not thread-safe) library. */
#include "h5_chunks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"

#define MAX_THREADS 256

typedef struct {
  unsigned char *const *chunk;
  size_t n, bytes, elem;
  int level;
  unsigned char **out;
  size_t *out_len;
  atomic_size_t next;
  atomic_int failed;
} job;

/* H5Z_filter_shuffle: out[k * m + i] = in[i * s + k] for m = bytes / s elements. */
static void shuffle(const unsigned char *in, unsigned char *out, size_t bytes, size_t s) {
  size_t m = bytes / s;
  for (size_t i = 0; i < m; i++)
    for (size_t k = 0; k < s; k++) out[k * m + i] = in[i * s + k];
  memcpy(out + m * s, in + m * s, bytes - m * s); /* HDF5 leaves a ragged tail as it is */
}

static void *work(void *arg) {
  job *j = arg;
  unsigned char *tmp = j->elem > 1 ? mallocCheck(j->bytes) : NULL;
  for (;;) {
    size_t i = atomic_fetch_add(&j->next, 1);
    if (i >= j->n) break;
    const unsigned char *src = j->chunk[i];
    if (tmp) {
      shuffle(src, tmp, j->bytes, j->elem);
      src = tmp;
    }
    uLongf len = compressBound((uLong)j->bytes);
    j->out[i] = mallocCheck(len);
    if (compress2(j->out[i], &len, src, (uLong)j->bytes, j->level) != Z_OK) atomic_store(&j->failed, 1);
    j->out_len[i] = len;
  }
  free(tmp);
  return NULL;
}

int vae_h5_compress_chunks(unsigned char *const *chunk, size_t n, size_t bytes, size_t elem_size, int level,
                           int threads, unsigned char **out, size_t *out_len) {
  job j = {.chunk = chunk,
           .n = n,
           .bytes = bytes,
           .elem = elem_size,
           .level = level,
           .out = out,
           .out_len = out_len};
  atomic_init(&j.next, 0);
  atomic_init(&j.failed, 0);
  for (size_t i = 0; i < n; i++) out[i] = NULL;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if ((size_t)threads > n) threads = (int)n;
  pthread_t tid[MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tid[started], NULL, work, &j) == 0) started++;
  work(&j);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  return atomic_load(&j.failed) ? -1 : 0;
}
