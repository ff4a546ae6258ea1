/* dist.h: the MPI layer. Setup and teardown, agreement on errors and flags, the gradient allreduce,
 * and reductions of metric sums. Every function here is collective over MPI_COMM_WORLD unless it
 * says otherwise. */
#ifndef VAE_DIST_H
#define VAE_DIST_H

#include <stddef.h>

typedef struct {
  int rank;
  int size;
} vae_dist;

/* MPI_Init, rank and size. Also asks Linux to end this rank if its launcher dies (no orphans). */
void vae_dist_init(int *argc, char ***argv, vae_dist *d);
void vae_dist_finalize(void);

/* Agreement on a user error: `failed` and `msg` are this rank's; if any rank failed, rank 0 prints
 * the lowest failing rank's message as one "vae_mpi: error:" line and every rank exits: rank 0
 * with status 1, the others with 0 (so that mpirun's abort never cuts off rank 0's line; the job's
 * status is 1). Returns only when no rank failed. */
void vae_dist_check(const vae_dist *d, int failed, const char *msg);

/* Logical OR of a flag over all ranks. */
int vae_dist_any(int flag);
/* Sum of n doubles over all ranks, in place. */
void vae_dist_sum_doubles(double *v, int n);
/* Sum of a float buffer over all ranks, in place (chunks of at most INT_MAX elements). */
void vae_dist_sum_floats(float *v, size_t n);
/* Rank 0's buffer to every rank. */
void vae_dist_bcast_floats(float *v, size_t n);
/* 1 when the n bytes at p are identical on every rank (a 64-bit hash compared by min and max). */
int vae_dist_same_bytes(const void *p, size_t n);
/* BLAS threads per rank: `requested` when positive, else the cores this rank is bound to, or the
 * node's cores shared among the ranks on it. Collective (counts the ranks on this node). */
int vae_dist_blas_threads(int requested);
/* Minimum of a long over all ranks. */
long vae_dist_min_long(long v);

#endif
