/* test_dist.c (under mpirun): reductions, broadcast, and agreement on flags give the same answer on
 * every rank; run at 2 and 3 ranks. */
#include <mpi.h>
#include <stdlib.h>

#include "check.h"
#include "dist.h"

int main(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  enum { N = 1000 };
  float *v = malloc(N * sizeof *v);
  for (int i = 0; i < N; i++) v[i] = (float)(d.rank + 1) * (float)i;
  vae_dist_sum_floats(v, N);
  float factor = (float)(d.size * (d.size + 1) / 2);
  int ok = 1;
  for (int i = 0; i < N; i++) ok &= v[i] == factor * (float)i;
  CHECK(ok, "float sum wrong on rank %d", d.rank);
  double s[2] = {1.5, (double)d.rank};
  vae_dist_sum_doubles(s, 2);
  CHECK(s[0] == 1.5 * d.size && s[1] == d.size * (d.size - 1) / 2.0, "double sums %g %g", s[0], s[1]);
  CHECK(vae_dist_any(d.rank == d.size - 1) == 1, "any() missed the last rank's flag");
  CHECK(vae_dist_any(0) == 0, "any() of no flags");
  CHECK(vae_dist_max_long(MPI_COMM_WORLD, 100 + d.rank) == 100 + (d.size - 1), "max");
  for (int i = 0; i < N; i++) v[i] = d.rank == 0 ? (float)i * 0.5f : -1.0f;
  vae_dist_bcast_floats(v, N);
  ok = 1;
  for (int i = 0; i < N; i++) ok &= v[i] == (float)i * 0.5f;
  CHECK(ok, "broadcast wrong on rank %d", d.rank);
  vae_dist_check(&d, 0, NULL); /* no rank failed: returns */
  CHECK(vae_dist_same_bytes(v, N * sizeof *v) == 1, "identical buffers reported different");
  if (d.rank == d.size - 1) v[N / 2] += 1.0f;
  CHECK(vae_dist_same_bytes(v, N * sizeof *v) == 0, "one changed float on the last rank not detected");
  free(v);
  int rc = check_done("test_dist");
  int all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return all;
}
