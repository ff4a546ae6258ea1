/* outdir.h: the output folder: created with its parents, and held by one job at a time through an
 * advisory lock that dies with the process (so a lock left by a killed job never blocks the next). */
#ifndef VAE_OUTDIR_H
#define VAE_OUTDIR_H

/* mkdir -p dir. Returns 0 or -1 with a message. */
int vae_mkdir_p(const char *dir, char *err);
/* Creates dir and takes DIR/.vae_mpi.lock. On success returns the lock's file descriptor (keep it
 * open for the life of the job); -1 with a message when another live job holds it. */
int vae_outdir_lock(const char *dir, char *err);

#endif
