/* data.h: the training data. Validation of an HDF5 image dataset (every rank, before any collective:
 * data/probe.c), the collective read of this rank's shard through parallel HDF5 (data/read.c), and
 * the shard in memory: its range, values and float batches (data/shard.c).
 *
 * Accepted datasets: (N, D), (N, H, W) or (N, H, W, C), N >= 1, every dimension >= 1, stored as
 * uint8 or as 32/64-bit floats (any byte order), contiguous, compact or chunked with filters that
 * this HDF5 library has built in. An (N, D) dataset is a row of pixels per image: H = 1, W = D, C = 1
 * (as if it were (N, 1, D); a flat vector has no shape to guess). (N, H, W) has C = 1.
 * In memory, uint8 stays uint8 (1 byte a value, scaled by 1/255 per batch) and floats become float32.
 *
 * Refused: files that are not HDF5, empty or truncated; missing paths; groups; non-numeric types;
 * integers other than uint8; other float sizes; ranks other than 2..4; zero rows or dimensions;
 * sizes that overflow; datasets whose data lives outside the file (external storage, virtual
 * datasets, a path through an external link); filters not available here; datasets never written.
 * Soft links inside the file are followed (their targets are checked the same way). */
#ifndef VAE_DATA_H
#define VAE_DATA_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h" /* VAE_PATH_LEN */

typedef enum {
  VAE_DATA_UINT8 = 1,   /* stored uint8, kept as uint8 in memory */
  VAE_DATA_FLOAT32 = 2, /* stored 32-bit float, read as float32 */
  VAE_DATA_FLOAT64 = 3  /* stored 64-bit float, converted to float32 on read */
} vae_data_kind;

typedef struct {
  char file[VAE_PATH_LEN];
  char dataset[VAE_PATH_LEN]; /* as the user named it */
  char path[VAE_PATH_LEN];    /* absolute path with soft links resolved: what read_shard opens */
  int ndims;                  /* 2..4 */
  hsize_t dims[4];
  size_t n;       /* rows (images), dims[0] */
  size_t h, w, c; /* per-image shape, see the top of this file */
  size_t d;       /* h * w * c, at most INT_MAX */
  vae_data_kind kind;
  size_t elem_bytes; /* in memory: 1 for uint8, 4 for floats */
  char layout[16];   /* "contiguous", "chunked" or "compact" */
  int n_filters;
  char filters[256]; /* "deflate(1), shuffle(2)" or "none" */
} vae_data_info;

/* One rank's rows, [offset, offset + count) of the dataset, row-major (count, d). */
typedef struct {
  vae_data_info info; /* copy: messages name the file and dataset */
  size_t offset;      /* global index of the first row */
  size_t count;       /* rows held (may be 0) */
  size_t d;
  uint8_t *u8; /* kind == VAE_DATA_UINT8, else NULL */
  float *f32;  /* float kinds, else NULL */
} vae_shard;

/* Balanced split of n rows over size ranks: off = r*n/size, count = (r+1)*n/size - off, computed
 * without overflow for any n. Counts differ by at most 1; ranks cover [0, n) in order. */
void vae_shard_range(size_t n, int rank, int size, size_t *off, size_t *count);

/* NON-collective: opens file read-only (sec2 driver), checks dataset, fills info. 0, or -1 with an
 * actionable message in err (VAE_ERR_LEN bytes); `flag` is the option that named the dataset
 * ("--dataset", "--test-dataset"), for the message's hint. */
int vae_data_probe(const char *file, const char *dataset, const char *flag, vae_data_info *info, char *err);

/* NON-collective: 1 when dataset names a dataset in file (reached without an external link),
 * 0 otherwise (including a missing or unreadable file). Never prints, never fails. */
int vae_data_exists(const char *file, const char *dataset);

/* COLLECTIVE over comm: bytes of memory one rank may use for its shard: three quarters of the
 * physical memory divided by the ranks sharing this node (room is left for the model, activations
 * and MPI). 0 when the memory size is unknown. */
size_t vae_data_mem_limit(MPI_Comm comm);

/* NON-collective: -1 with a message (bytes needed, ranks suggested) when rank's shard would need
 * more than max_bytes (0 = no limit), or more rows than a uint32 batch index can address. */
int vae_data_check_shard_fits(const vae_data_info *info, int rank, int size, size_t max_bytes, char *err);

/* COLLECTIVE over comm: reads this rank's rows (vae_shard_range) with parallel HDF5 and collective
 * transfers. Every rank returns the same status: 0, or -1 with a message (the failing rank's own, or
 * a note that another rank failed); on -1 the shard holds nothing. info must come from vae_data_probe
 * on the same file, and vae_data_check_shard_fits should have passed. */
int vae_data_read_shard(const vae_data_info *info, MPI_Comm comm, vae_shard *shard, char *err);
/* The same, moving at most piece_bytes file bytes per rank per collective H5Dread (the default is
 * 256 MiB, far below MPI's 2 GiB count limits); ranks agree on the number of calls. For tests. */
int vae_data_read_shard_pieces(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, vae_shard *shard,
                               char *err);

/* COLLECTIVE over comm: like vae_data_read_shard, but only the dataset's first n_rows rows (all of
 * them when it holds fewer), split over comm's ranks: a few images out of a large file. */
int vae_data_read_first(const vae_data_info *info, MPI_Comm comm, size_t n_rows, vae_shard *shard, char *err);

/* NON-collective: every value finite, and in [0, 1] when require_unit_interval (Bernoulli decoder).
 * The message names the global row, the value's index in the row, the file and dataset. */
int vae_shard_validate(const vae_shard *s, int require_unit_interval, char *err);

/* Copies local rows rows[0..B) into out (B, d) as floats; uint8 values are scaled by 1/255. */
void vae_shard_batch(const vae_shard *s, const uint32_t *rows, int B, float *out);

void vae_shard_free(vae_shard *s);

#endif
