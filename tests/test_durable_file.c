/* test_durable_file.c: the one durable-write path (core/durable_file.c). A published file has exactly
 * the bytes written and replaces the old one; a process killed at each point of the publish leaves
 * the old file or the new one, whole; a failed write (a full disk, for real: the temporary name is a
 * symlink to /dev/full) removes its temporary file and leaves the old file untouched; refusals name
 * the path. Runs in a fresh folder under the working directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "durable_file.h"
#include "error.h"

static char dir[64];

/* The whole content of path into buf (n bytes, NUL-terminated); -1 when it cannot be read. */
static int slurp(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t got = fread(buf, 1, n - 1, f);
  buf[got] = '\0';
  fclose(f);
  return 0;
}

/* Files in dir whose name starts with '.' (temporary files), . and .. excepted. */
static int count_hidden(void) {
  char cmd[128], line[64];
  snprintf(cmd, sizeof cmd, "ls -A %s | grep -c '^\\.' || true", dir);
  FILE *p = popen(cmd, "r");
  int n = p && fgets(line, sizeof line, p) ? atoi(line) : -1;
  if (p) pclose(p);
  return n;
}

static int write_text(const char *path, const char *text, char *err) {
  vae_durable d;
  FILE *f = vae_durable_fopen(&d, path, "test file", err);
  if (!f) return -1;
  fputs(text, f);
  return vae_durable_fclose_publish(&d, f, err);
}

static const char *points_seen[4];
static int n_points;
static void record_point(const char *p) {
  if (n_points < 4) points_seen[n_points++] = p;
}

static const char *kill_at;
static void kill_point(const char *p) {
  if (strcmp(p, kill_at) == 0) _exit(77);
}

int main(void) {
  snprintf(dir, sizeof dir, "durable-%ld", (long)getpid());
  CHECK(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
  char path[128], buf[256], err[VAE_ERR_LEN] = "";
  snprintf(path, sizeof path, "%s/out.txt", dir);

  /* Write, then replace: the bytes are the new ones, no temporary file is left. */
  CHECK(write_text(path, "first\n", err) == 0, "first write: %s", err);
  CHECK(slurp(path, buf, sizeof buf) == 0 && strcmp(buf, "first\n") == 0, "first content '%s'", buf);
  CHECK(write_text(path, "second\n", err) == 0, "second write: %s", err);
  CHECK(slurp(path, buf, sizeof buf) == 0 && strcmp(buf, "second\n") == 0, "second content '%s'", buf);
  CHECK(count_hidden() == 0, "temporary files left: %d", count_hidden());

  /* The split form: the temporary name is in the folder, and the hook sees the three points in order. */
  vae_durable d;
  CHECK(vae_durable_begin(&d, path, "test file", err) == 0, "begin: %s", err);
  char want_tmp[160];
  snprintf(want_tmp, sizeof want_tmp, "%s/.out.txt.tmp-%ld", dir, (long)getpid());
  CHECK(strcmp(d.tmp, want_tmp) == 0 && strcmp(d.dir, dir) == 0, "tmp '%s' dir '%s'", d.tmp, d.dir);
  FILE *f = fopen(d.tmp, "w");
  fputs("third\n", f);
  fclose(f);
  d.at_point = record_point;
  CHECK(vae_durable_publish(&d, err) == 0, "publish: %s", err);
  CHECK(n_points == 3 && !strcmp(points_seen[0], "before-fsync") &&
            !strcmp(points_seen[1], "before-rename") && !strcmp(points_seen[2], "after-rename"),
        "points: %d", n_points);
  CHECK(slurp(path, buf, sizeof buf) == 0 && strcmp(buf, "third\n") == 0, "third content '%s'", buf);

  /* Killed at each point: before the rename the old file stands (and the temporary is there for a
   * later cleanup), after it the new one. */
  static const char *points[] = {"before-fsync", "before-rename", "after-rename"};
  for (int i = 0; i < 3; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      vae_durable c;
      char e2[VAE_ERR_LEN];
      FILE *g = vae_durable_fopen(&c, path, "test file", e2);
      if (!g) _exit(2);
      fprintf(g, "killed at %s\n", points[i]);
      fclose(g);
      kill_at = points[i];
      c.at_point = kill_point;
      vae_durable_publish(&c, e2);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 77, "%s: child status %d", points[i], status);
    char expect[64];
    snprintf(expect, sizeof expect, i < 2 ? "third\n" : "killed at %s\n", points[i]);
    CHECK(slurp(path, buf, sizeof buf) == 0 && strcmp(buf, expect) == 0, "%s: content '%s'", points[i], buf);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s/.out.txt.tmp-%ld", dir, (long)pid);
    CHECK((access(tmp, F_OK) == 0) == (i < 2), "%s: temporary file %s", points[i], i < 2 ? "gone" : "left");
    unlink(tmp);
  }
  CHECK(write_text(path, "third\n", err) == 0, "rewrite: %s", err);

  /* A full disk: the write fails with ENOSPC, the temporary goes, the old file stays. */
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s/.out.txt.tmp-%ld", dir, (long)getpid());
  CHECK(symlink("/dev/full", tmp) == 0, "symlink: %s", strerror(errno));
  char big[8192];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  int rc = write_text(path, big, err);
  CHECK(rc < 0 && strstr(err, "No space left on device") && strstr(err, "free space") && strstr(err, path),
        "ENOSPC: rc %d '%s'", rc, err);
  struct stat sb;
  CHECK(lstat(tmp, &sb) != 0 && errno == ENOENT, "temporary left after ENOSPC");
  CHECK(slurp(path, buf, sizeof buf) == 0 && strcmp(buf, "third\n") == 0, "ENOSPC changed the file: '%s'",
        buf);

  /* A caller's own failure: vae_durable_fail removes the temporary and says why. */
  f = vae_durable_fopen(&d, path, "test file", err);
  CHECK(f != NULL, "fopen: %s", err);
  if (f) fclose(f);
  rc = vae_durable_fail(&d, 0, "the encoder gave up", err);
  CHECK(rc < 0 && strstr(err, "cannot write test file") && strstr(err, "the encoder gave up"), "fail: '%s'",
        err);
  CHECK(count_hidden() == 0, "vae_durable_fail left a temporary file");

  /* Refusals before anything is created. */
  char bad[160];
  snprintf(bad, sizeof bad, "%s/no-such-dir/x.txt", dir);
  CHECK(write_text(bad, "x", err) < 0 && strstr(err, "does not exist") && strstr(err, bad), "missing: '%s'",
        err);
  snprintf(bad, sizeof bad, "%s/out.txt/x.txt", dir);
  CHECK(write_text(bad, "x", err) < 0 && strstr(err, "is not a folder"), "file as folder: '%s'", err);
  snprintf(bad, sizeof bad, "%s/", dir);
  CHECK(write_text(bad, "x", err) < 0 && strstr(err, "ends in '/'"), "trailing slash: '%s'", err);
  CHECK(write_text("", "x", err) < 0 && strstr(err, "empty"), "empty path: '%s'", err);
  /* A path without a folder is written in the working directory. */
  char here[64];
  snprintf(here, sizeof here, "durable-here-%ld.txt", (long)getpid());
  CHECK(write_text(here, "here\n", err) == 0 && slurp(here, buf, sizeof buf) == 0 && !strcmp(buf, "here\n"),
        "relative path: %s", err);
  unlink(here);

  CHECK(vae_fsync_path(dir, 1) == 0 && vae_fsync_path(path, 0) == 0, "fsync of folder and file");
  CHECK(vae_fsync_path("no-such-file-here", 0) == ENOENT, "fsync of a missing file");
  unlink(path);
  rmdir(dir);
  return check_done("test_durable_file");
}
