/* dist.h: the MPI layer; every MPI call of vae_mpi is in src/core/dist.c (parallel HDF5 is handed a
 * communicator, src/data/read.c, but calls MPI itself). Setup and teardown, agreement on errors and
 * flags ("rank 0 acts, all agree"), the gradient allreduce, broadcasts from rank 0, and reductions of
 * metric sums. Every function here is collective over MPI_COMM_WORLD (or over the communicator it
 * takes) unless it says otherwise. */
#ifndef VAE_DIST_H
#define VAE_DIST_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
  int rank;
  int size;
} vae_dist;

/* MPI_Init, rank and size. Also asks Linux to end this rank if its launcher dies (no orphans). */
void vae_dist_init(int *argc, char ***argv, vae_dist *d);
void vae_dist_finalize(void);

/* ---- not collective ---- */

/* Seconds on a monotonic clock (MPI_Wtime). */
double vae_dist_time(void);
/* This process's rank and the size of comm. */
void vae_dist_comm_info(MPI_Comm comm, int *rank, int *size);
/* For error paths (error.c): 1 and MPI_COMM_WORLD's rank and size while MPI is up; 0 (rank 0, size 1)
 * before MPI_Init or after MPI_Finalize. */
int vae_dist_active(int *rank, int *size);
/* Ends this process with status: MPI_Abort of the whole job when abort_job and more than one rank is
 * up, else MPI_Finalize when MPI is up, then exit(status). */
void vae_dist_exit(int status, int abort_job) __attribute__((noreturn));

/* ---- agreement ---- */

/* Over comm: 1 when any rank failed; every rank's err (VAE_ERR_LEN bytes) then holds the lowest
 * failing rank's message. 0 when none failed (err untouched). */
int vae_dist_agree_failure(MPI_Comm comm, int failed, char *err);

/* Agreement on a user error: `failed` and `msg` are this rank's; if any rank failed, rank 0 prints
 * the lowest failing rank's message as one "vae_mpi: error:" line and every rank exits: rank 0
 * with status 1, the others with 0 (so that mpirun's abort never cuts off rank 0's line; the job's
 * status is 1). Returns only when no rank failed. */
void vae_dist_check(const vae_dist *d, int failed, const char *msg);

/* Rank 0 acts, all agree, the outcome is broadcast: rank 0 runs fn(ctx, err); a negative result ends
 * the job on every rank with its message (vae_dist_check); otherwise every rank returns rank 0's
 * result. The other ranks do not call fn. Data fn produced on rank 0 goes out with the broadcasts
 * below. */
int vae_dist_on_root(const vae_dist *d, int (*fn)(void *ctx, char *err), void *ctx);

/* Logical OR of a flag over all ranks. */
int vae_dist_any(int flag);

/* ---- reductions and broadcasts ---- */

/* Sum of n doubles over all ranks, in place. */
void vae_dist_sum_doubles(double *v, int n);
/* Maximum of each of n doubles over all ranks, in place. */
void vae_dist_max_doubles(double *v, int n);
/* Sum of a float buffer over all ranks, in place (chunks of at most INT_MAX elements): the gradient
 * allreduce. */
void vae_dist_sum_floats(float *v, size_t n);
/* Maximum of a long over comm's ranks. */
long vae_dist_max_long(MPI_Comm comm, long v);
/* Rank 0's buffer to every rank. */
void vae_dist_bcast_floats(float *v, size_t n);
/* Rank 0's n bytes to every rank (plain structs: options, configs, positions). */
void vae_dist_bcast_bytes(void *p, size_t n);
/* 1 when the n bytes at p are identical on every rank (a 64-bit hash compared by min and max). */
int vae_dist_same_bytes(const void *p, size_t n);

/* ---- the node ---- */

/* Ranks of comm on this node (sharing memory with this one). */
int vae_dist_node_ranks(MPI_Comm comm);
/* Not collective: the cores this process may run on (its affinity mask, or every online core). */
int vae_dist_rank_cores(void);
/* BLAS threads per rank: `requested` when positive, else the cores this rank is bound to, or the
 * node's cores shared among the ranks on it. Collective (counts the ranks on this node). */
int vae_dist_blas_threads(int requested);

#endif
