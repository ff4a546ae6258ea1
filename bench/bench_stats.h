/* bench_stats.h: what the by-hand benchmarks in bench/ share to summarise their timings (bench_stats.c).
 * Not part of vae_core and not public: only the bench programs link it (CMakeLists.txt, vae_bench). */
#ifndef VAE_BENCH_STATS_H
#define VAE_BENCH_STATS_H

/* qsort comparator for doubles, ascending (a median is t[n / 2] of the sorted times). */
int cmp_double(const void *a, const void *b);

#endif
