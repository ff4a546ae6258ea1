/* outdir.c: create the output folder and take its lock (rank 0 only). Never writes any other file. */
#include "outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

int vae_mkdir_p(const char *dir, char *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return vae_err(err, "--out path is too long");
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
  /* A POSIX record lock: released by the kernel when the holder exits however it exits, and its
   * holder's pid can be asked for, so nothing is ever written into the lock file. */
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    long pid = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : -1;
    close(fd);
    if (pid > 0)
      return vae_err(
          err, "another vae_mpi job (pid %ld) is training in %s; wait for it to end or pass another --out",
          pid, dir);
    return vae_err(
        err, "another vae_mpi job is training in %s (%s is locked); wait for it to end or pass another --out",
        dir, path);
  }
  return fd;
}
