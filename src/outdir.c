/* outdir.c: create the output folder and take its lock (rank 0 only). Never writes any other file. */
#include "outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

int vae_mkdir_p(const char *dir, char *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return vae_err(err, "--out path is too long");
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
      return vae_err(err, "cannot create folder %s: %s", path, strerror(errno));
    *p = '/';
  }
  if (mkdir(path, 0777) != 0 && errno != EEXIST)
    return vae_err(err, "cannot create output folder %s: %s", path, strerror(errno));
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return vae_err(err, "--out %s exists and is not a folder; pass another --out", dir);
  return 0;
}

int vae_outdir_lock(const char *dir, char *err) {
  if (vae_mkdir_p(dir, err) < 0) return -1;
  char path[4200];
  snprintf(path, sizeof path, "%s/.vae_mpi.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return vae_err(err, "cannot create the lock file %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[64] = "?";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    if (n > 0) holder[n] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    close(fd);
    return vae_err(err, "another vae_mpi job (pid %s) is training in %s; wait for it to end or pass another --out",
                   holder, dir);
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    /* The lock is held; the pid is only for the message of a job that is refused. */
  }
  return fd;
}
