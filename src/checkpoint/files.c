/* checkpoint/files.c: the checkpoint folder. --resume auto's choice of the newest loadable
 * checkpoint, --keep's numbered copies (written through core/durable_file.c) and their rotation.
 * Must never: call MPI (rank 0 alone runs this), open or modify checkpoint.h5 itself (it is only
 * read, linked or copied), delete anything but numbered checkpoint-<step>.h5 files, or let HDF5
 * print its error stack. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "durable_file.h"
#include "error.h"
#include "internal.h"

#define MAIN_NAME "checkpoint.h5"

/* ======================================================================================
 * Listing the folder
 * ====================================================================================== */

/* dir/checkpoint.h5 (step < 0) or dir/checkpoint-<step>.h5 into buf (VAE_PATH_LEN bytes); -1 when
 * it does not fit (buf then holds it truncated). */
static int checkpoint_path(char *buf, const char *dir, long step) {
  int len = step < 0 ? snprintf(buf, VAE_PATH_LEN, "%s/" MAIN_NAME, dir)
                     : snprintf(buf, VAE_PATH_LEN, "%s/checkpoint-%ld.h5", dir, step);
  return len >= VAE_PATH_LEN ? -1 : 0;
}

/* "checkpoint-<digits>.h5" -> step; -1 for any other name. */
static long numbered_step(const char *name) {
  const char *pre = "checkpoint-";
  size_t lp = strlen(pre), ln = strlen(name);
  if (ln <= lp + 3 || strncmp(name, pre, lp) != 0 || strcmp(name + ln - 3, ".h5") != 0) return -1;
  if (name[lp] < '0' || name[lp] > '9' || ln - lp - 3 > 18) return -1;
  char *end;
  long s = strtol(name + lp, &end, 10);
  return end == name + ln - 3 ? s : -1;
}

/* The steps of dir's numbered checkpoints (malloc'ed, caller frees) and whether checkpoint.h5 is
 * there. A missing folder has none. */
static int list_checkpoints(const char *dir, long **steps, int *count, int *has_main, char *err) {
  *steps = NULL;
  *count = 0;
  *has_main = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return vae_err(err, "cannot list checkpoint folder %s: %s; check --out", dir, strerror(errno));
  }
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, MAIN_NAME) == 0) *has_main = 1;
    long s = numbered_step(e->d_name);
    if (s < 0) continue;
    if (*count == cap) {
      cap = cap ? 2 * cap : 16;
      long *grown = realloc(*steps, (size_t)cap * sizeof **steps);
      if (!grown) VAE_FAIL("out of memory listing %s", dir);
      *steps = grown;
    }
    (*steps)[(*count)++] = s;
  }
  closedir(d);
  return 0;
}

static int cmp_long_desc(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

/* ======================================================================================
 * --resume auto and --keep
 * ====================================================================================== */

static void skip_note(char *notes, size_t len, const char *path, const char *why) {
  if (!notes) {
    fprintf(stderr, "vae_mpi: warning: skipping unreadable checkpoint %s: %s\n", path, why);
    return;
  }
  size_t used = strlen(notes);
  if (used + 1 < len)
    snprintf(notes + used, len - used, "skipping unreadable checkpoint %s: %s\n", path, why);
}

typedef struct {
  long step;
  int is_main;
  char path[VAE_PATH_LEN];
} candidate;

/* Highest step first; checkpoint.h5 before a numbered copy of the same step. */
static int cmp_candidate(const void *pa, const void *pb) {
  const candidate *a = pa, *b = pb;
  if (a->step != b->step) return (a->step < b->step) - (a->step > b->step);
  return b->is_main - a->is_main;
}

int vae_checkpoint_find_latest(const char *dir, char *path_out, size_t n, char *notes, size_t notes_len,
                               char *err) {
  return vae_checkpoint_load_latest(dir, path_out, n, NULL, NULL, NULL, NULL, NULL, notes, notes_len, err);
}

int vae_checkpoint_load_latest(const char *dir, char *path_out, size_t n, vae_config *cfg_out, float **params,
                               float **m_out, float **v_out, vae_ckpt_state *st_out, char *notes,
                               size_t notes_len, char *err) {
  if (n) path_out[0] = 0;
  if (notes && notes_len) notes[0] = 0;
  long *steps;
  int count, has_main;
  if (list_checkpoints(dir, &steps, &count, &has_main, err) < 0) return -1;
  int total = count + has_main;
  candidate *c = callocCheck((size_t)(total ? total : 1), sizeof *c);
  for (int i = 0; i < total; i++) {
    c[i].is_main = i == count;
    checkpoint_path(c[i].path, dir, c[i].is_main ? -1 : steps[i]);
  }
  free(steps);
  /* Cheap pass: header only, for the stored step (the name of checkpoint.h5 does not say it). */
  char why[VAE_ERR_LEN];
  vae_ckpt_state *st = callocCheck(1, sizeof *st);
  int good = 0;
  for (int i = 0; i < total; i++) {
    vae_config cfg;
    if (vae_ck_read_header_only(c[i].path, &cfg, st, why) < 0) {
      skip_note(notes, notes_len, c[i].path, why);
      continue;
    }
    c[i].step = st->step;
    if (good != i) c[good] = c[i];
    good++;
  }
  free(st);
  if (good > 1) qsort(c, (size_t)good, sizeof *c, cmp_candidate);
  /* Full pass in that order: the first that loads completely wins. */
  int rc = 0;
  for (int i = 0; i < good; i++) {
    vae_config cfg;
    float *p, *m, *v;
    if (vae_checkpoint_read(c[i].path, &cfg, &p, &m, &v, st_out, why) < 0) {
      skip_note(notes, notes_len, c[i].path, why);
      continue;
    }
    if (strlen(c[i].path) >= n) {
      rc = vae_err(err, "checkpoint path %s is longer than %zu bytes", c[i].path, n);
    } else {
      snprintf(path_out, n, "%s", c[i].path);
      if (params) { /* the caller keeps what was read: no second read of the same file */
        *cfg_out = cfg;
        *params = p, *m_out = m, *v_out = v;
        p = m = v = NULL;
      }
    }
    free(p);
    free(m);
    free(v);
    break;
  }
  free(c);
  return rc;
}

/* Byte copy of src to dst (created): for file systems without hard links. 0 or the errno. */
static int copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY);
  if (in < 0) return errno;
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (out < 0) {
    int e = errno;
    close(in);
    return e;
  }
  char *buf = mallocCheck(1 << 20);
  int e = 0;
  for (;;) {
    ssize_t r = read(in, buf, 1 << 20);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      e = r < 0 ? errno : 0;
      break;
    }
    for (ssize_t off = 0; off < r && !e;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0 && errno != EINTR) e = errno;
      if (w > 0) off += w;
    }
    if (e) break;
  }
  free(buf);
  if (close(out) != 0 && !e) e = errno;
  close(in);
  return e;
}

/* dir/checkpoint-<step>.h5 as a copy of dir/checkpoint.h5, published durably (a hard link to the
 * temporary name, or a byte copy where links are not supported, then fsync, rename, folder fsync). */
static int keep_copy(const char *dir, long step, char *err) {
  char main_path[VAE_PATH_LEN], num[VAE_PATH_LEN];
  if (checkpoint_path(main_path, dir, -1) < 0 || checkpoint_path(num, dir, step) < 0)
    return vae_err(err, "checkpoint folder path %s is too long", dir);
  vae_durable d;
  if (vae_durable_begin(&d, num, "checkpoint copy", err) < 0) return -1;
  unlink(d.tmp); /* link() refuses an existing name */
  int e = link(main_path, d.tmp) == 0 ? 0 : errno;
  if (e == EPERM || e == EXDEV || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS)
    e = copy_file(main_path, d.tmp);
  if (e) return vae_durable_fail(&d, e, NULL, err);
  return vae_durable_publish(&d, err);
}

int vae_checkpoint_rotate(const char *dir, long step, int keep, char *err) {
  if (keep < 0 || step < 0) return vae_err(err, "--keep %d (step %ld) must not be negative", keep, step);
  if (keep > 0 && keep_copy(dir, step, err) < 0) return -1;
  long *steps;
  int count, has_main;
  if (list_checkpoints(dir, &steps, &count, &has_main, err) < 0) return -1;
  if (count > 1)
    qsort(steps, (size_t)count, sizeof *steps, cmp_long_desc); /* steps may be NULL when count is 0 */
  /* This step always stays (it may be lower than stale numbered files of an abandoned run). */
  int kept = keep > 0 ? 1 : 0, rc = 0, deleted = 0;
  char num[VAE_PATH_LEN];
  for (int i = 0; i < count && rc == 0; i++) {
    if (keep > 0 && steps[i] == step) continue;
    if (kept < keep) {
      kept++;
      continue;
    }
    checkpoint_path(num, dir, steps[i]);
    if (unlink(num) != 0 && errno != ENOENT)
      rc = vae_err(err, "cannot delete old checkpoint %s: %s; delete it by hand or raise --keep", num,
                   strerror(errno));
    deleted++;
  }
  free(steps);
  /* The deletions reach the disk too (the copy's publish already synced the folder for itself). */
  int e = deleted ? vae_fsync_path(dir, 1) : 0;
  if (rc == 0 && e)
    rc = vae_err(err, "cannot fsync checkpoint folder %s: %s; %s", dir, strerror(e), vae_write_hint(e));
  return rc;
}
