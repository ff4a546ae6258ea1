/* dist.c: the MPI layer, and every MPI call of vae_mpi: setup and teardown, agreement on errors and
 * flags, reductions and broadcasts, the node's rank count. Never decides anything on one rank that the
 * others must follow without a collective call. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#endif

#include "error.h"

void vae_dist_init(int *argc, char ***argv, vae_dist *d) {
#ifdef __linux__
  /* If the launcher (our parent, mpirun or orted) dies, the kernel kills this rank at once: an
   * orphaned rank must never go on writing into a folder that a resumed job is using. Checked again
   * after prctl in case the parent died before we asked. */
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);
#endif
  /* FUNNELED: other threads exist (the checkpoint's background fsync, BLAS) but only this one
   * calls MPI. Open MPI gives at least that; a library that gives less still works, as none of
   * those threads ever calls MPI. */
  int provided;
  mpiCheck(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
  mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &d->size));
  vae_h5_quiet();
}

void vae_dist_finalize(void) { MPI_Finalize(); }

double vae_dist_time(void) { return MPI_Wtime(); }

void vae_dist_comm_info(MPI_Comm comm, int *rank, int *size) {
  mpiCheck(MPI_Comm_rank(comm, rank));
  mpiCheck(MPI_Comm_size(comm, size));
}

int vae_dist_active(int *rank, int *size) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  *rank = 0;
  *size = 1;
  if (!inited || finalized) return 0;
  /* No mpiCheck here: this runs on the error path, where a failing call must not recurse. */
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return 1;
}

void vae_dist_exit(int status, int abort_job) {
  int rank, size;
  if (vae_dist_active(&rank, &size)) {
    if (abort_job && size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
  }
  exit(status);
}

int vae_dist_agree_failure(MPI_Comm comm, int failed, char *err) {
  int rank, size;
  vae_dist_comm_info(comm, &rank, &size);
  /* Lowest failing rank, or size when none failed. */
  int mine = failed ? rank : size, first = size;
  mpiCheck(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == size) return 0;
  char buf[VAE_ERR_LEN];
  memset(buf, 0, sizeof buf); /* broadcast whole: no uninitialised bytes */
  if (rank == first) snprintf(buf, sizeof buf, "%s", err[0] ? err : "unknown error");
  mpiCheck(MPI_Bcast(buf, VAE_ERR_LEN, MPI_CHAR, first, comm));
  memcpy(err, buf, VAE_ERR_LEN);
  return 1;
}

void vae_dist_check(const vae_dist *d, int failed, const char *msg) {
  char buf[VAE_ERR_LEN] = "";
  if (failed && msg) snprintf(buf, sizeof buf, "%s", msg);
  if (!vae_dist_agree_failure(MPI_COMM_WORLD, failed, buf)) return;
  if (d->rank == 0) {
    fprintf(stderr, "vae_mpi: error: %s\n", buf);
    fflush(stderr);
  }
  /* Only rank 0 exits non-zero: mpirun aborts the job at the first non-zero exit it sees, and if that
   * were another rank's it could cut off rank 0's error line still in flight. The job's status is 1. */
  vae_dist_exit(d->rank == 0 ? 1 : 0, 0);
}

int vae_dist_on_root(const vae_dist *d, int (*fn)(void *ctx, char *err), void *ctx) {
  char err[VAE_ERR_LEN] = "";
  int rc = d->rank == 0 ? fn(ctx, err) : 0;
  vae_dist_check(d, rc < 0, err);
  mpiCheck(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
  return rc;
}

int vae_dist_any(int flag) {
  int in = flag ? 1 : 0, out = 0;
  mpiCheck(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return out;
}

void vae_dist_sum_doubles(double *v, int n) {
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}

void vae_dist_max_doubles(double *v, int n) {
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
}

void vae_dist_sum_floats(float *v, size_t n) {
  for (size_t off = 0; off < n;) {
    int chunk = (int)((n - off) > (size_t)INT_MAX ? INT_MAX : (n - off));
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, v + off, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    off += (size_t)chunk;
  }
}

void vae_dist_bcast_floats(float *v, size_t n) {
  for (size_t off = 0; off < n;) {
    int chunk = (int)((n - off) > (size_t)INT_MAX ? INT_MAX : (n - off));
    mpiCheck(MPI_Bcast(v + off, chunk, MPI_FLOAT, 0, MPI_COMM_WORLD));
    off += (size_t)chunk;
  }
}

void vae_dist_bcast_bytes(void *p, size_t n) {
  for (size_t off = 0; off < n;) {
    int chunk = (int)((n - off) > (size_t)INT_MAX ? INT_MAX : (n - off));
    mpiCheck(MPI_Bcast((char *)p + off, chunk, MPI_BYTE, 0, MPI_COMM_WORLD));
    off += (size_t)chunk;
  }
}

long vae_dist_max_long(MPI_Comm comm, long v) {
  long out = v;
  mpiCheck(MPI_Allreduce(&v, &out, 1, MPI_LONG, MPI_MAX, comm));
  return out;
}

int vae_dist_same_bytes(const void *p, size_t n) {
  /* FNV-1a over 8-byte words, then the tail. */
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  uint64_t lo = h, hi = h;
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD));
  return lo == hi;
}

int vae_dist_node_ranks(MPI_Comm comm) {
  MPI_Comm node;
  int local = 1;
  mpiCheck(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  mpiCheck(MPI_Comm_size(node, &local));
  mpiCheck(MPI_Comm_free(&node));
  return local;
}

int vae_dist_rank_cores(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < cores)
    return CPU_COUNT(&set);
#endif
  return cores > 0 ? (int)cores : 1;
}

int vae_dist_blas_threads(int requested) {
  if (requested > 0) return requested;
  int local = vae_dist_node_ranks(MPI_COMM_WORLD);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int mine = vae_dist_rank_cores();
  /* Bound to fewer cores than the node has (mpirun binds ranks to cores): those are ours alone. */
  if (mine < cores) return mine;
  long per = cores / local;
  return per > 0 ? (int)per : 1;
}
