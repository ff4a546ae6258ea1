/* image_import.c: import-images' parallel passes (image_import.h). Each worker thread takes files in
 * list order from an atomic counter, reads each whole, and writes only its own slots of the outputs;
 * bad files are appended under a mutex and sorted into file order at the end. HDF5 and printing stay
 * on the main thread. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "image_import.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define MAX_THREADS 256

int vae_images_threads(int t) {
  if (t > 0) return t > MAX_THREADS ? MAX_THREADS : t;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set) > MAX_THREADS ? MAX_THREADS : CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

void vae_bad_files_free(vae_bad_files *b) {
  for (size_t i = 0; i < b->n; i++) free(b->reason[i]);
  free(b->file);
  free(b->reason);
  memset(b, 0, sizeof *b);
}

/* ---- one file ---- */

typedef struct {
  uint8_t *buf;
  size_t cap, len;
  vae_pixels px;
  uint8_t *conv; /* the image at C channels, before the resize */
  size_t conv_cap;
  double *scratch;
  size_t scratch_cap;
} worker_mem;

static void *grow(void *p, size_t *cap, size_t n) {
  if (n <= *cap) return p;
  free(p);
  *cap = n;
  return mallocCheck(n);
}

/* Reads path whole into m->buf. Only regular files: a FIFO would block, a device never end. */
static int read_file(const char *path, worker_mem *m, char *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    struct stat st;
    if (e == ENOENT && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
      return vae_err(err, "cannot read: a symbolic link to a file that does not exist");
    return vae_err(err, "cannot read: %s", strerror(e));
  }
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) {
    rc = vae_err(err, "cannot read: %s", strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    rc = vae_err(err, "not a regular file (a FIFO, socket or device): only PNG and JPEG files are read");
  } else {
    m->buf = grow(m->buf, &m->cap, (size_t)st.st_size + 1);
    m->len = 0;
    while (m->len < (size_t)st.st_size) {
      ssize_t r = read(fd, m->buf + m->len, (size_t)st.st_size - m->len);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        rc = vae_err(err, "cannot read: %s", strerror(errno));
        break;
      }
      if (r == 0) break; /* shrank while we read: decode what is there */
      m->len += (size_t)r;
    }
  }
  close(fd);
  return rc;
}

static int decode_one(const char *path, const vae_image_spec *s, worker_mem *m, uint8_t *dst, char *err) {
  if (read_file(path, m, err) < 0 || vae_image_decode(m->buf, m->len, &m->px, err) < 0) return -1;
  const vae_pixels *p = &m->px;
  if (!s->resize && (p->w != s->w || p->h != s->h))
    return vae_err(err, "is %dx%d (width x height), not %dx%d", p->w, p->h, s->w, s->h);
  if (!s->resize || (p->w == s->w && p->h == s->h)) {
    vae_pixels_to_channels(p, s->c, s->background, dst);
    return 0;
  }
  size_t n = (size_t)p->w * (size_t)p->h * (size_t)s->c;
  m->conv = grow(m->conv, &m->conv_cap, n);
  vae_pixels_to_channels(p, s->c, s->background, m->conv);
  int top, left, ch, cw;
  vae_center_crop(p->h, p->w, s->h, s->w, &top, &left, &ch, &cw);
  size_t need = (size_t)ch * (size_t)s->w * (size_t)s->c * sizeof(double);
  m->scratch = grow(m->scratch, &m->scratch_cap, need);
  vae_resize(m->conv, p->w, s->c, top, left, ch, cw, dst, s->h, s->w, m->scratch);
  return 0;
}

/* ---- the pool ---- */

typedef struct {
  const vae_image_list *l;
  const size_t *idx; /* NULL: probe pass over every file */
  size_t n;
  const vae_image_spec *spec;
  vae_image_info *info;
  unsigned char *bad, *ok;
  uint8_t *out;
  int stop_early;
  atomic_size_t next, first_bad;
  pthread_mutex_t lock;
  vae_bad_files *b;
} pass;

void vae_bad_files_add(vae_bad_files *b, size_t file, const char *reason) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 16;
    size_t *f = realloc(b->file, b->cap * sizeof *f);
    if (f) b->file = f;
    char **r = f ? realloc(b->reason, b->cap * sizeof *r) : NULL;
    if (!r) VAE_FAIL("out of memory recording bad files");
    b->reason = r;
  }
  b->file[b->n] = file;
  b->reason[b->n] = mallocCheck(strlen(reason) + 1);
  strcpy(b->reason[b->n++], reason);
}

static int cmp_pair(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

void vae_bad_files_sort(vae_bad_files *b) {
  /* (file, position) pairs sorted by file, then the reasons moved along. */
  size_t n = b->n, *order = mallocCheck((n ? n : 1) * 2 * sizeof *order);
  for (size_t i = 0; i < n; i++) order[2 * i] = b->file[i], order[2 * i + 1] = i;
  qsort(order, n, 2 * sizeof *order, cmp_pair);
  char **reasons = mallocCheck((n ? n : 1) * sizeof *reasons);
  for (size_t i = 0; i < n; i++) reasons[i] = b->reason[order[2 * i + 1]];
  for (size_t i = 0; i < n; i++) b->file[i] = order[2 * i], b->reason[i] = reasons[i];
  free(reasons);
  free(order);
}

static void record(pass *ps, size_t file, const char *reason) {
  pthread_mutex_lock(&ps->lock);
  vae_bad_files_add(ps->b, file, reason);
  pthread_mutex_unlock(&ps->lock);
}

static void *work(void *arg) {
  pass *ps = arg;
  worker_mem m = {0};
  char err[VAE_ERR_LEN];
  const size_t frame = ps->spec ? (size_t)ps->spec->h * (size_t)ps->spec->w * (size_t)ps->spec->c : 0;
  for (;;) {
    size_t k = atomic_fetch_add(&ps->next, 1);
    if (k >= ps->n) break;
    size_t file = ps->idx ? ps->idx[k] : k;
    if (ps->stop_early && k > atomic_load(&ps->first_bad)) {
      if (ps->bad) ps->bad[k] = 2;
      continue;
    }
    int rc;
    if (ps->idx) {
      rc = decode_one(ps->l->path[file], ps->spec, &m, ps->out + k * frame, err);
      ps->ok[k] = rc == 0;
    } else {
      rc = read_file(ps->l->path[file], &m, err);
      if (rc == 0) rc = vae_image_probe(m.buf, m.len, &ps->info[k], err);
      ps->bad[k] = rc != 0;
    }
    if (rc != 0) {
      record(ps, file, err);
      size_t cur = atomic_load(&ps->first_bad);
      while (k < cur && !atomic_compare_exchange_weak(&ps->first_bad, &cur, k)) {
      }
    }
  }
  free(m.buf);
  free(m.conv);
  free(m.scratch);
  vae_pixels_free(&m.px);
  return NULL;
}

/* Runs the pass on `threads` threads (the calling one among them) and sorts the bad files. */
static void run(pass *ps, int threads) {
  atomic_init(&ps->next, 0);
  atomic_init(&ps->first_bad, (size_t)-1);
  pthread_mutex_init(&ps->lock, NULL);
  if ((size_t)threads > ps->n) threads = ps->n ? (int)ps->n : 1;
  pthread_t tid[MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tid[started], NULL, work, ps) == 0) started++;
  work(ps);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  pthread_mutex_destroy(&ps->lock);
  vae_bad_files_sort(ps->b);
}

void vae_images_probe(const vae_image_list *l, int threads, int stop_early, vae_image_info *info,
                      unsigned char *bad, vae_bad_files *b) {
  pass ps = {.l = l, .n = l->n, .info = info, .bad = bad, .stop_early = stop_early, .b = b};
  memset(bad, 0, l->n);
  run(&ps, threads);
}

void vae_images_decode(const vae_image_list *l, const size_t *idx, size_t n, const vae_image_spec *spec,
                       int threads, uint8_t *out, unsigned char *ok, vae_bad_files *b) {
  pass ps = {.l = l, .idx = idx, .n = n, .spec = spec, .ok = ok, .out = out, .b = b};
  run(&ps, threads);
}
