/* data/shard.c: a rank's rows in memory: the balanced split of a dataset over the ranks, whether a
 * shard fits the memory a rank may use, the check of the values (finite; in [0, 1] for the Bernoulli
 * decoder), and float batches from the rows. Never touches a file; the one collective call is
 * vae_data_mem_limit's count of the ranks on the node. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clones.h"
#include "data.h"
#include "dist.h"
#include "error.h"
#include "internal.h"

/* ---------------------------------------------------------------- shard ranges */

void vae_shard_range(size_t n, int rank, int size, size_t *off, size_t *count) {
  /* r*n/P without forming r*n: n = q*P + m, r*n/P = r*q + r*m/P, and r*m < P*P fits. */
  size_t P = (size_t)size, q = n / P, m = n % P;
  size_t r = (size_t)rank;
  size_t begin = r * q + r * m / P;
  size_t end = (r + 1) * q + (r + 1) * m / P;
  *off = begin;
  *count = end - begin;
}

/* ---------------------------------------------------------------- memory */

size_t vae_data_mem_limit(MPI_Comm comm) {
  int local = vae_dist_node_ranks(comm);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t total;
  if (pages <= 0 || page <= 0 || !vae_data_mul_ok((size_t)pages, (size_t)page, &total)) return 0;
  return total / (size_t)local / 4 * 3;
}

int vae_data_check_shard_fits(const vae_data_info *info, int rank, int size, size_t max_bytes, char *err) {
  size_t off, cnt, row = info->d * info->elem_bytes, bytes;
  vae_shard_range(info->n, rank, size, &off, &cnt);
  if (cnt > (size_t)UINT32_MAX)
    return vae_err(err, "rank %d would hold %zu rows of %s:%s, more than %u; run with more ranks", rank, cnt,
                   info->file, info->dataset, UINT32_MAX);
  if (max_bytes == 0) return 0;
  int fits = vae_data_mul_ok(cnt, row, &bytes) && bytes <= max_bytes;
  if (fits) return 0;
  size_t rows_fit = max_bytes / row;
  if (rows_fit == 0)
    return vae_err(err,
                   "one image of %s:%s needs %zu bytes, more than the %zu bytes a rank may "
                   "use here; use nodes with more memory or fewer ranks per node",
                   info->file, info->dataset, row, max_bytes);
  size_t need_ranks = info->n / rows_fit + (info->n % rows_fit != 0);
  return vae_err(err,
                 "rank %d's shard of %s:%s needs %.0f bytes (%.2f GiB: %zu rows x %zu values "
                 "x %zu byte(s)) but a rank may use %zu bytes (%.2f GiB) here; run with at least "
                 "%zu ranks, or on nodes with more memory",
                 rank, info->file, info->dataset, (double)cnt * (double)row,
                 (double)cnt * (double)row / 1073741824.0, cnt, info->d, info->elem_bytes, max_bytes,
                 (double)max_bytes / 1073741824.0, need_ranks);
}

/* ---------------------------------------------------------------- values and batches */

int vae_shard_validate(const vae_shard *s, int require_unit_interval, char *err) {
  if (!s->f32) return 0; /* uint8: always finite and, once scaled, in [0, 1] */
  const size_t d = s->d;
  for (size_t r = 0; r < s->count; r++) {
    const float *x = s->f32 + r * d;
    /* Branch-free per row (vectorizes); NaN fails every comparison. */
    int bad = 0;
    if (require_unit_interval)
      for (size_t j = 0; j < d; j++) bad |= !(x[j] >= 0.0f && x[j] <= 1.0f);
    else
      for (size_t j = 0; j < d; j++) bad |= !(fabsf(x[j]) <= FLT_MAX);
    if (!bad) continue;
    size_t j = 0;
    while (j < d && isfinite(x[j]) && (!require_unit_interval || (x[j] >= 0.0f && x[j] <= 1.0f))) j++;
    size_t row = s->offset + r;
    if (isnan(x[j]))
      return vae_err(err,
                     "row %zu of %s:%s has a NaN at value %zu (of %zu per image); fix or "
                     "remove that image",
                     row, s->info.file, s->info.dataset, j, d);
    if (isinf(x[j]))
      return vae_err(err,
                     "row %zu of %s:%s has an infinite value (%cInf) at value %zu (of %zu per "
                     "image); fix or remove that image",
                     row, s->info.file, s->info.dataset, x[j] > 0 ? '+' : '-', j, d);
    return vae_err(err,
                   "row %zu of %s:%s has the value %g at %zu (of %zu per image), outside "
                   "[0, 1], which the bernoulli decoder needs; rescale the data to [0, 1] or use "
                   "--decoder gaussian",
                   row, s->info.file, s->info.dataset, (double)x[j], j, d);
  }
  return 0;
}

VAE_CLONES void vae_shard_batch(const vae_shard *s, const uint32_t *rows, int B, float *out) {
  const size_t d = s->d;
  const float scale = 1.0f / 255.0f;
  for (int b = 0; b < B; b++) {
    if ((size_t)rows[b] >= s->count) VAE_FAIL("batch row %u outside this rank's %zu rows", rows[b], s->count);
    float *dst = out + (size_t)b * d;
    if (s->u8) {
      const uint8_t *src = s->u8 + (size_t)rows[b] * d;
      for (size_t j = 0; j < d; j++) dst[j] = (float)src[j] * scale;
    } else {
      memcpy(dst, s->f32 + (size_t)rows[b] * d, d * sizeof *dst);
    }
  }
}

void vae_shard_free(vae_shard *s) {
  free(s->u8);
  free(s->f32);
  s->u8 = NULL;
  s->f32 = NULL;
  s->count = 0;
}
