/* durable_file.c: temporary file in the same folder, fsync, rename, fsync the folder: the one durable
 * write path every file vae_mpi writes goes through (see durable_file.h for the contract).
 * Must never: touch the final path before the rename, leave the temporary file behind on a reported
 * failure, or call MPI, HDF5 or stdio in vae_durable_publish (it runs on the checkpoint's thread). */
#include "durable_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

int vae_fsync_path(const char *path, int is_dir) {
  int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  /* Some file systems cannot fsync a folder; the rename is then as durable as they allow. */
  if (rc == EINVAL && is_dir) rc = 0;
  return rc;
}

const char *vae_write_hint(int e) {
  if (e == ENOSPC || e == EDQUOT) return "free space or pass --out elsewhere";
  if (e == EACCES || e == EPERM || e == EROFS) return "make the folder writable or pass --out elsewhere";
  return "check the folder or pass --out elsewhere";
}

/* dir of path ("." when it has no slash) and its last component, each n bytes. */
static int split_path(const char *path, char *dir, char *base, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, n, ".");
    return snprintf(base, n, "%s", path) >= (int)n ? -1 : 0;
  }
  size_t dlen = slash == path ? 1 : (size_t)(slash - path);
  if (dlen >= n) return -1;
  memcpy(dir, path, dlen);
  dir[dlen] = 0;
  return snprintf(base, n, "%s", slash + 1) >= (int)n ? -1 : 0;
}

int vae_durable_begin(vae_durable *d, const char *path, const char *what, char *err) {
  d->what = what;
  d->at_point = NULL;
  d->tmp[0] = '\0';
  char base[VAE_PATH_LEN];
  if (snprintf(d->path, sizeof d->path, "%s", path) >= (int)sizeof d->path ||
      split_path(path, d->dir, base, sizeof base) < 0 || !*base ||
      snprintf(d->tmp, sizeof d->tmp, "%s/.%s.tmp-%ld", d->dir, base, (long)getpid()) >= (int)sizeof d->tmp) {
    d->tmp[0] = '\0';
    return vae_err(err, "cannot write %s %s: the path is empty, ends in '/' or is too long", what, path);
  }
  struct stat sb;
  if (stat(d->dir, &sb) != 0)
    return vae_err(err, "cannot write %s %s: folder %s %s; create it or pass --out elsewhere", what, path,
                   d->dir, errno == ENOENT ? "does not exist" : strerror(errno));
  if (!S_ISDIR(sb.st_mode))
    return vae_err(err, "cannot write %s %s: %s is not a folder; pass --out elsewhere", what, path, d->dir);
  return 0;
}

void vae_durable_abandon(vae_durable *d) {
  if (d->tmp[0]) unlink(d->tmp);
}

int vae_durable_fail(vae_durable *d, int e, const char *why, char *err) {
  vae_durable_abandon(d);
  return vae_err(err, "cannot write %s %s: %s; %s (any earlier %s there is untouched)", d->what, d->path,
                 e     ? strerror(e)
                 : why ? why
                       : "write failed",
                 vae_write_hint(e), d->what);
}

static void point(const vae_durable *d, const char *name) {
  if (d->at_point) d->at_point(name);
}

int vae_durable_publish(vae_durable *d, char *err) {
  int e;
  point(d, "before-fsync");
  if ((e = vae_fsync_path(d->tmp, 0)) != 0) return vae_durable_fail(d, e, NULL, err);
  point(d, "before-rename");
  if (rename(d->tmp, d->path) != 0) return vae_durable_fail(d, errno, NULL, err);
  point(d, "after-rename");
  if ((e = vae_fsync_path(d->dir, 1)) != 0)
    return vae_err(err, "%s %s was renamed into place but fsync of folder %s failed: %s; %s", d->what,
                   d->path, d->dir, strerror(e), vae_write_hint(e));
  return 0;
}

FILE *vae_durable_fopen(vae_durable *d, const char *path, const char *what, char *err) {
  if (vae_durable_begin(d, path, what, err) < 0) return NULL;
  FILE *f = fopen(d->tmp, "wb");
  if (!f) vae_durable_fail(d, errno, NULL, err);
  return f;
}

int vae_durable_fclose_publish(vae_durable *d, FILE *f, char *err) {
  /* A write that failed earlier left its errno (stdio keeps only the error flag): the last failing
   * call on the stream set it, so it is read before anything else runs. */
  int e = 0;
  if (ferror(f))
    e = errno ? errno : EIO;
  else if (fflush(f) != 0)
    e = errno;
  if (fclose(f) != 0 && !e) e = errno;
  if (e) return vae_durable_fail(d, e, NULL, err);
  return vae_durable_publish(d, err);
}
