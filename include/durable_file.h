/* durable_file.h: the one way vae_mpi writes a file, so that a crash at any moment leaves either the
 * old file (or none) or the new one complete, never a half-written one. The checkpoint's standard,
 * for every file: the caller writes a temporary file ".<name>.tmp-<pid>" in the final path's folder;
 * publishing it fsyncs it, renames it over the final path, and fsyncs the folder (so the rename
 * itself survives a power cut).
 *
 * Two halves, so that any writer fits and the slow end can run elsewhere:
 *   vae_durable d;
 *   if (vae_durable_begin(&d, path, "PNG", err) < 0) return -1;   names d.tmp, checks the folder
 *   ... write d.tmp with anything: H5Fcreate(d.tmp, ...), fopen, link(2), a byte copy ...
 *   on a failure while writing: return vae_durable_fail(&d, errno, "what failed", err);
 *   return vae_durable_publish(&d, err);                            fsync, rename, fsync the folder
 * and for stdio writers the shorthand vae_durable_fopen / vae_durable_fclose_publish.
 * vae_durable_publish is plain POSIX (no HDF5, no MPI, no stdio): it may run on another thread
 * (checkpoint/async.c publishes a checkpoint in the background). One write per final path at a time
 * in a process (the temporary name holds only the pid).
 *
 * Messages are one line in err (VAE_ERR_LEN bytes) naming `what` and the path, e.g. "cannot write
 * checkpoint runs/x/checkpoint.h5: No space left on device; free space or pass --out elsewhere
 * (any earlier checkpoint there is untouched)". Users of it: the checkpoint and its --keep copies
 * (src/checkpoint), the PNG grids (src/eval/image_grid.c), metrics.jsonl's rewrite on resume
 * (src/core/metrics.c), the HDF5 files of the import commands (src/cmd/import_*.c).
 * Must never: modify the final path before the rename, leave the temporary file behind on a failure
 * it reports, or call MPI or HDF5. */
#ifndef VAE_DURABLE_FILE_H
#define VAE_DURABLE_FILE_H

#include <stdio.h>

#include "options.h" /* VAE_PATH_LEN */

typedef struct {
  char path[VAE_PATH_LEN]; /* the final path, as given */
  char tmp[VAE_PATH_LEN];  /* "<dir>/.<name>.tmp-<pid>": what the caller writes */
  char dir[VAE_PATH_LEN];  /* the folder of path ("." when path has no slash), fsync'ed last */
  const char *what;        /* a noun for messages: "checkpoint", "PNG", "metrics file" (static string) */
  /* Test hook, NULL normally: called at "before-fsync", "before-rename" and "after-rename" inside
   * vae_durable_publish, so a test can simulate a kill there (the checkpoint's
   * VAE_FAULT_CHECKPOINT points use it). */
  void (*at_point)(const char *point);
} vae_durable;

/* Fills d for writing `path`: the temporary name and the folder. Creates nothing. -1 with a message
 * when the path is empty, ends in '/', is too long, or its folder is missing or not a folder. */
int vae_durable_begin(vae_durable *d, const char *path, const char *what, char *err);

/* fsync d->tmp, rename it over d->path, fsync d->dir. On a failure before the rename the temporary
 * file is removed and d->path is untouched; after it (the folder's fsync) the new file is in place
 * and the message says so. */
int vae_durable_publish(vae_durable *d, char *err);

/* The write of d->tmp failed: removes it and returns -1 with "cannot write <what> <path>: <why>"
 * (strerror(e) when e != 0, else why) and what the user can do. */
int vae_durable_fail(vae_durable *d, int e, const char *why, char *err);

/* Removes d->tmp (a write given up without a message). */
void vae_durable_abandon(vae_durable *d);

/* stdio shorthand: vae_durable_begin, then d->tmp opened for writing ("wb"); NULL with err. */
FILE *vae_durable_fopen(vae_durable *d, const char *path, const char *what, char *err);
/* Flushes and closes f (a stream from vae_durable_fopen), then vae_durable_publish; any write error
 * the stream saw fails the whole write (temporary removed, d->path untouched). f is closed always. */
int vae_durable_fclose_publish(vae_durable *d, FILE *f, char *err);

/* fsync of a file (is_dir 0) or a folder (is_dir 1) by path: 0 or the errno. A folder that its file
 * system cannot fsync (EINVAL) counts as done. */
int vae_fsync_path(const char *path, int is_dir);

/* What the user can do about errno e met while writing a file (free space, permissions, ...). */
const char *vae_write_hint(int e);

#endif
