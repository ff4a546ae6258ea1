/* h5_chunks.h: HDF5 chunks compressed on several threads into the format HDF5's own shuffle and
 * deflate filters store and read (a zlib stream of the shuffled bytes), so that the group writer can hand them to H5Dwrite_chunk and
 * the single-threaded HDF5 library never compresses (import-images' slowest step otherwise). */
#ifndef VAE_H5_CHUNKS_H
#define VAE_H5_CHUNKS_H

#include <stddef.h>

/* Compresses chunk[0..n), each `bytes` long of elements `elem_size` bytes wide: the shuffle filter
 * (byte k of every element together, k = 0..elem_size-1; nothing to do for 1-byte elements), then
 * zlib's compress2 at `level` (the deflate filter's format). out[i] (malloc'd, the caller frees) and
 * out_len[i]. On `threads` threads. 0, or -1 if zlib failed (out of memory). */
int vae_h5_compress_chunks(unsigned char *const *chunk, size_t n, size_t bytes, size_t elem_size, int level,
                           int threads, unsigned char **out, size_t *out_len);

#endif
