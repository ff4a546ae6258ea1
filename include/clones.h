/* clones.h: VAE_CLONES marks a hot elementwise loop to be compiled twice, for AVX2 and for baseline
 * x86-64, with the version picked when the program loads (GCC's target_clones: one binary runs on any
 * x86-64 and uses 256-bit vectors where the CPU has them). No FMA is enabled, so both versions do the
 * same IEEE operations on every element in the same order: results are bit-identical whichever runs.
 * Only for loops without floating-point reductions across vector lanes. Off under the sanitizers and
 * on other compilers and architectures. */
#ifndef VAE_CLONES_H
#define VAE_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VAE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VAE_CLONES
#endif

#endif
