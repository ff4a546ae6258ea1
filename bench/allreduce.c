/* allreduce.c: by-hand timing of what the gradient sum costs on a network, not a test. Under mpirun:
 *   - ping-pong between ranks 0 and 1 (the others idle): 8 bytes gives the latency alpha (half the round
 *     trip), BYTES bytes the bandwidth (beta = (half round trip - alpha) / BYTES);
 *   - MPI_Allreduce(MPI_SUM) of float buffers of the sizes given (default: 8 B, 64 KiB, 1 MiB and the
 *     default MLP's gradient, 652,824 floats), each timed REPS times after a barrier; a repetition's time
 *     is the slowest rank's.
 *   mpirun -np 2 build/vae_allreduce [--reps R] [--bytes N] [--floats N,N,...]
 * Prints one JSON object per line from rank 0 (scripts/cluster/bench-comm.sh reads them): the minimum,
 * median and mean in milliseconds. Statistics, not a single run: the minimum is what the link allows,
 * the median what a training step sees on a busy machine. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "error.h"

/* min, median, mean of t[0..n) in milliseconds, as a JSON fragment. */
static void stats(const char *what, double bytes, double *t, int n, int ranks) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += t[i];
  printf(
      "{\"what\":\"%s\",\"ranks\":%d,\"bytes\":%.0f,\"reps\":%d,\"min_ms\":%.4f,\"median_ms\":%.4f,"
      "\"mean_ms\":%.4f}\n",
      what, ranks, bytes, n, t[0] * 1e3, t[n / 2] * 1e3, sum / n * 1e3);
  fflush(stdout);
}

/* Half round trips of `bytes` between ranks 0 and 1. */
static void pingpong(int rank, size_t bytes, int reps, double *t) {
  char *buf = callocCheck(bytes ? bytes : 1, 1);
  for (int r = -3; r < reps; r++) { /* 3 warm-up rounds */
    mpiCheck(MPI_Barrier(MPI_COMM_WORLD));
    double t0 = MPI_Wtime();
    if (rank == 0) {
      mpiCheck(MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD));
      mpiCheck(MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    } else if (rank == 1) {
      mpiCheck(MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
      mpiCheck(MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD));
    }
    if (r >= 0) t[r] = (MPI_Wtime() - t0) / 2;
  }
  free(buf);
}

static void allreduce(size_t floats, int reps, double *t) {
  float *buf = callocCheck(floats, sizeof *buf);
  for (int r = -3; r < reps; r++) {
    mpiCheck(MPI_Barrier(MPI_COMM_WORLD));
    double t0 = MPI_Wtime();
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, (int)floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    double dt = MPI_Wtime() - t0;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    if (r >= 0) t[r] = dt;
  }
  free(buf);
}

int main(int argc, char **argv) {
  mpiCheck(MPI_Init(&argc, &argv));
  int rank, size;
  mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &size));
  int reps = 50;
  size_t bytes = 4u << 20;
  long floats[16] = {2, 16384, 262144, 652824};
  int nf = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--bytes") == 0)
      bytes = (size_t)atol(argv[i + 1]);
    else if (strcmp(argv[i], "--floats") == 0) {
      nf = 0;
      for (char *s = argv[i + 1], *end; *s && nf < 16; s = *end ? end + 1 : end)
        floats[nf++] = strtol(s, &end, 10);
    }
  }
  if (reps < 1 || size < 2) {
    if (rank == 0) fprintf(stderr, "vae_allreduce: needs at least 2 ranks and --reps >= 1\n");
    MPI_Finalize();
    return 1;
  }
  double *t = mallocCheck((size_t)reps * sizeof *t);
  pingpong(rank, 8, reps, t);
  if (rank == 0) stats("pingpong", 8, t, reps, size);
  pingpong(rank, bytes, reps, t);
  if (rank == 0) stats("pingpong", (double)bytes, t, reps, size);
  for (int i = 0; i < nf; i++) {
    if (floats[i] < 1) continue;
    allreduce((size_t)floats[i], reps, t);
    if (rank == 0) stats("allreduce", 4.0 * (double)floats[i], t, reps, size);
  }
  free(t);
  MPI_Finalize();
  return 0;
}
