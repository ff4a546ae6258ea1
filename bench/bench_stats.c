/* bench_stats.c: the timing summaries the bench programs share (bench_stats.h); never used by the
 * trainer itself. */
#include "bench_stats.h"

int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
