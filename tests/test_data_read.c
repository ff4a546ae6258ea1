/* test_data_read.c (under mpirun, 1..4 ranks): probes and reads every file tests/make_data_files.py
 * wrote (argv[1] is its directory) and compares every value of every rank's shard with the expected
 * data; the shards must tile [0, N). Every bad file must be refused on every rank, with a message
 * holding the expected words: by the probe, by the collective read (damaged chunk: no hang), or by
 * value validation (NaN, Inf, outside [0, 1]). Also times the read of a 60000x28x28 uint8 dataset. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "dist.h"
#include "error.h"

#if defined(__SANITIZE_ADDRESS__)
/* Whole stacks for leak reports, so tests/lsan.supp can name Open MPI's setup functions (its
 * components are unloaded before LeakSanitizer symbolizes); ASAN_OPTIONS still override this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }
#endif

static vae_dist D;
static const char *DIR_;

/* 1 when every rank passes ok = 1. */
static int all_ranks(int ok) {
  int in = ok ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return out;
}

static void *load_file(const char *path, size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  FILE *f = fopen(path, "rb");
  size_t got = f ? fread(p, 1, bytes, f) : 0;
  if (f) fclose(f);
  CHECK(f && got == bytes, "expected-values file %s: %zu of %zu bytes", path, got, bytes);
  return p;
}

/* The value make_data_files.py puts at (row r, pixel j) of fmnist_sized.h5. */
static uint8_t formula(size_t r, size_t j) { return (uint8_t)((r * 31 + j * 7 + (r >> 3)) & 255); }

static void run_good(const char *name, const char *kind, size_t n, size_t h, size_t w, size_t c,
                     const char *file, const char *dset, const char *expected) {
  char err[VAE_ERR_LEN] = "";
  vae_data_info info;
  int rc = vae_data_probe(file, dset, "--dataset", &info, err);
  CHECK(all_ranks(rc == 0), "%s: probe failed: %s", name, err);
  if (rc != 0) return;
  int u8 = strcmp(kind, "u8") == 0;
  CHECK(info.n == n && info.h == h && info.w == w && info.c == c && info.d == h * w * c,
        "%s: shape n=%zu h=%zu w=%zu c=%zu d=%zu", name, info.n, info.h, info.w, info.c, info.d);
  CHECK((info.kind == VAE_DATA_UINT8) == u8 && info.elem_bytes == (u8 ? 1u : 4u), "%s: kind %d", name,
        (int)info.kind);
  CHECK(vae_data_check_shard_fits(&info, D.rank, D.size, (size_t)1 << 40, err) == 0, "%s: fits: %s", name,
        err);

  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  vae_shard s;
  rc = vae_data_read_shard(&info, MPI_COMM_WORLD, &s, err);
  double t = MPI_Wtime() - t0, tmax = 0;
  MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  CHECK(all_ranks(rc == 0), "%s: read failed: %s", name, err);
  if (rc != 0) return;
  if (strcmp(name, "fmnist_sized") == 0) {
    if (D.rank == 0)
      printf("collective read of %zux%zux%zu uint8 (%.1f MB) at np %d: %.1f ms (%.0f MB/s)\n", n, h, w,
             n * info.d / 1e6, D.size, tmax * 1e3, n * info.d / 1e6 / tmax);
    CHECK(tmax < 30.0, "read took %.1f s", tmax);
  }

  /* Tiny pieces (one to a few rows per collective call): ranks make different numbers of real
   * reads and must still agree on the calls; the result must be the same shard. */
  if (n < 1000) {
    vae_shard p;
    size_t piece = 1 + (size_t)D.rank * info.d * 4; /* 1 row per call on rank 0, more on others */
    rc = vae_data_read_shard_pieces(&info, MPI_COMM_WORLD, piece, &p, err);
    CHECK(all_ranks(rc == 0), "%s: piecewise read failed: %s", name, err);
    size_t bytes = s.count * info.d * info.elem_bytes;
    CHECK(rc == 0 && p.count == s.count && p.offset == s.offset &&
              (bytes == 0 ||
               memcmp(u8 ? (void *)p.u8 : (void *)p.f32, u8 ? (void *)s.u8 : (void *)s.f32, bytes) == 0),
          "%s: piecewise read differs", name);
    if (rc == 0) vae_shard_free(&p);
  }

  /* This rank's rows are exactly vae_shard_range's, and the ranks tile [0, N). */
  size_t off, cnt;
  vae_shard_range(n, D.rank, D.size, &off, &cnt);
  CHECK(s.offset == off && s.count == cnt && s.d == info.d, "%s: shard off %zu count %zu", name, s.offset,
        s.count);
  unsigned long long mine[2] = {s.offset, s.count}, *all = malloc(2 * sizeof *all * (size_t)D.size);
  MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
  unsigned long long next = 0;
  for (int r = 0; r < D.size; r++) {
    CHECK(all[2 * r] == next, "%s: rank %d starts at %llu, expected %llu", name, r, all[2 * r], next);
    next = all[2 * r] + all[2 * r + 1];
  }
  CHECK(next == n, "%s: shards cover %llu of %zu rows", name, next, n);
  free(all);

  /* Every value, against the expected data. */
  const size_t d = info.d, vals = cnt * d;
  size_t bad = 0;
  if (strcmp(expected, "formula") == 0) {
    for (size_t r = 0; r < cnt; r++)
      for (size_t j = 0; j < d; j++) bad += s.u8[r * d + j] != formula(off + r, j);
  } else {
    char path[2 * VAE_PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", DIR_, expected);
    void *exp = load_file(path, n * d * info.elem_bytes);
    const void *mine_v = u8 ? (const void *)s.u8 : (const void *)s.f32;
    const char *want = (const char *)exp + off * d * info.elem_bytes;
    for (size_t i = 0; i < vals * info.elem_bytes; i++)
      bad += ((const char *)mine_v)[i] != want[i]; /* bitwise: uint8 exact, float32 exact */
    free(exp);
  }
  CHECK(bad == 0, "%s: %zu of %zu bytes differ on rank %d", name, bad, vals * info.elem_bytes, D.rank);
  CHECK((u8 ? (void *)s.u8 : (void *)s.f32) != NULL || cnt == 0, "%s: no buffer", name);

  /* A batch of local rows in reverse order plus a repeat: value/255 within 1 ulp, floats exact. */
  if (cnt > 0) {
    int B = cnt < 9 ? (int)cnt + 1 : 10;
    uint32_t *rows = malloc((size_t)B * sizeof *rows);
    for (int b = 0; b < B - 1; b++) rows[b] = (uint32_t)(cnt - 1 - (size_t)b);
    rows[B - 1] = 0;
    float *out = malloc((size_t)B * d * sizeof *out);
    vae_shard_batch(&s, rows, B, out);
    size_t off_ulp = 0;
    for (int b = 0; b < B; b++)
      for (size_t j = 0; j < d; j++) {
        float got = out[(size_t)b * d + j];
        if (u8) {
          float want = (float)s.u8[(size_t)rows[b] * d + j] / 255.0f;
          off_ulp += !(got == want || got == nextafterf(want, 2.0f) || got == nextafterf(want, -1.0f));
          off_ulp += !(got >= 0.0f && got <= 1.0f);
        } else {
          off_ulp += got != s.f32[(size_t)rows[b] * d + j];
        }
      }
    CHECK(off_ulp == 0, "%s: %zu batch values wrong", name, off_ulp);
    free(rows);
    free(out);
  }
  CHECK(vae_shard_validate(&s, 0, err) == 0 && vae_shard_validate(&s, 1, err) == 0, "%s: validate: %s", name,
        err);
  vae_shard_free(&s);
  CHECK(s.u8 == NULL && s.f32 == NULL, "%s: free", name);
}

static void run_bad(const char *name, const char *stage, long row, const char *file, const char *dset,
                    const char *keyword) {
  char err[VAE_ERR_LEN] = "";
  vae_data_info info;
  int rc = vae_data_probe(file, dset, "--dataset", &info, err);
  if (strcmp(stage, "probe") == 0) {
    CHECK(all_ranks(rc == -1 && strstr(err, keyword)), "%s: probe rc %d, message '%s', want '%s'", name, rc,
          err, keyword);
    if (D.rank == 0 && getenv("VAE_TEST_VERBOSE")) printf("%-18s %s\n", name, err);
    return;
  }
  CHECK(all_ranks(rc == 0), "%s: probe failed: %s", name, err);
  if (rc != 0) return;
  vae_shard s;
  rc = vae_data_read_shard(&info, MPI_COMM_WORLD, &s, err);
  if (strcmp(stage, "read") == 0) {
    /* Every rank returns -1 with the same message: the failing rank's. */
    CHECK(all_ranks(rc == -1 && strstr(err, keyword)), "%s: read rc %d, message '%s'", name, rc, err);
    char root[VAE_ERR_LEN];
    memcpy(root, err, sizeof root);
    MPI_Bcast(root, VAE_ERR_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(all_ranks(strcmp(root, err) == 0), "%s: ranks disagree on the message", name);
    CHECK(s.u8 == NULL && s.f32 == NULL && s.count == 0, "%s: failed read left data", name);
    if (D.rank == 0 && getenv("VAE_TEST_VERBOSE")) printf("%-18s %s\n", name, err);
    return;
  }
  CHECK(all_ranks(rc == 0), "%s: read failed: %s", name, err);
  if (rc != 0) return;
  int unit = strcmp(stage, "unit") == 0;
  if (unit) /* fine for a gaussian decoder */
    CHECK(vae_shard_validate(&s, 0, err) == 0, "%s: finite check failed: %s", name, err);
  rc = vae_shard_validate(&s, unit, err);
  int holder = (size_t)row >= s.offset && (size_t)row < s.offset + s.count;
  char rowtxt[64];
  snprintf(rowtxt, sizeof rowtxt, "row %ld of ", row);
  if (holder)
    CHECK(rc == -1 && strstr(err, keyword) && strstr(err, rowtxt) && strstr(err, file),
          "%s: validate rc %d, message '%s'", name, rc, err);
  if (holder && D.rank == 0 && getenv("VAE_TEST_VERBOSE")) printf("%-18s %s\n", name, err);
  CHECK(vae_dist_any(rc != 0) == 1, "%s: no rank refused the values", name);
  vae_shard_free(&s);
}

int main(int argc, char **argv) {
  vae_dist_init(&argc, &argv, &D);
  if (argc < 2) {
    fprintf(stderr, "usage: test_data_read DATA_DIR\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  DIR_ = argv[1];
  char mpath[VAE_PATH_LEN];
  snprintf(mpath, sizeof mpath, "%s/manifest.txt", DIR_);
  FILE *mf = fopen(mpath, "r");
  CHECK(mf != NULL, "cannot open %s (run make_data_files.py first)", mpath);
  int goods = 0, bads = 0;
  char line[4 * VAE_PATH_LEN];
  while (mf && fgets(line, sizeof line, mf)) {
    line[strcspn(line, "\n")] = '\0';
    char name[64], kind[8], file[VAE_PATH_LEN], dset[VAE_PATH_LEN], expected[256], stage[16];
    char path[2 * VAE_PATH_LEN];
    size_t n, h, w, c;
    long row;
    int kw = 0;
    if (sscanf(line, "good %63s %7s %zu %zu %zu %zu %4095s %4095s %255s", name, kind, &n, &h, &w, &c, file,
               dset, expected) == 9) {
      snprintf(path, sizeof path, "%s/%s", DIR_, file);
      run_good(name, kind, n, h, w, c, path, dset, expected);
      goods++;
    } else if (sscanf(line, "bad %63s %15s %ld %4095s %4095s %n", name, stage, &row, file, dset, &kw) == 5 &&
               kw > 0) {
      snprintf(path, sizeof path, "%s/%s", DIR_, file);
      run_bad(name, stage, row, path, dset, line + kw);
      bads++;
    } else {
      CHECK(0, "bad manifest line '%s'", line);
    }
  }
  if (mf) fclose(mf);
  CHECK(goods >= 14 && bads >= 35, "manifest has %d good and %d bad entries", goods, bads);

  /* exists(): datasets only, never through an external link, silent on bad files. */
  struct {
    const char *file, *dset;
    int want;
  } ex[] = {{"u8_contig.h5", "train/images", 1},
            {"u8_contig.h5", "/train/labels", 1},
            {"u8_contig.h5", "test/images", 0},
            {"u8_contig.h5", "train", 0},
            {"soft.h5", "alias", 1},
            {"soft.h5", "to_ext", 0},
            {"extlink.h5", "ext", 0},
            {"text.h5", "x", 0},
            {"empty.h5", "x", 0},
            {"no_such_file.h5", "x", 0},
            {"truncated.h5", "train/images", 0},
            {"bad_types.h5", "i16", 1}};
  for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    char path[2 * VAE_PATH_LEN];
    snprintf(path, sizeof path, "%s/%s", DIR_, ex[i].file);
    CHECK(vae_data_exists(path, ex[i].dset) == ex[i].want, "exists(%s, %s) != %d", ex[i].file, ex[i].dset,
          ex[i].want);
  }

  /* Memory check: a limit below the shard refuses with the bytes and a rank count; 0 = no limit. */
  {
    char path[2 * VAE_PATH_LEN], err[VAE_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/fmnist_sized.h5", DIR_);
    vae_data_info info;
    CHECK(vae_data_probe(path, "train/images", "--dataset", &info, err) == 0, "probe: %s", err);
    /* 60000 rows of 784 bytes = 47,040,000 bytes; a 10 MB limit needs 5 ranks (12755 rows each). */
    int rc = vae_data_check_shard_fits(&info, 0, 1, 10000000, err);
    CHECK(rc == -1 && strstr(err, "needs 47040000 bytes") && strstr(err, "at least 5 ranks"),
          "fits at 10 MB: rc %d '%s'", rc, err);
    CHECK(vae_data_check_shard_fits(&info, 0, 5, 10000000, err) == 0, "5 ranks fit: %s", err);
    CHECK(vae_data_check_shard_fits(&info, 0, 1, 0, err) == 0, "no limit: %s", err);
    size_t lim = vae_data_mem_limit(MPI_COMM_WORLD);
    CHECK(lim > ((size_t)64 << 20), "memory limit %zu bytes", lim);
  }

  int rc = check_done("test_data_read"), worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return worst;
}
