/* team.h: a team of T threads that run one function together, over and over (src/core/team.c): the
 * calling thread is member 0, T - 1 helper threads are started once and wait between runs. Made for
 * the training step's phases (train/step.c: each worker's gradient, the on-node sum, Adam), which are
 * short (0.1-10 ms) and come back to back: a waiting helper spins briefly, then sleeps on a condition
 * variable, so a long pause (evaluation, a checkpoint, MPI between nodes) costs no CPU.
 *
 *   vae_team *team = vae_team_create(T);
 *   vae_team_run(team, fn, ctx);     fn(ctx, k) on every member k = 0..T-1, returns when all are done
 *   vae_team_free(team);
 *
 * A run is a full barrier: what any member wrote before returning from fn is visible to every member
 * (and to the caller) after vae_team_run returns. Never calls MPI. Only the thread that created the
 * team may run it. */
#ifndef VAE_TEAM_H
#define VAE_TEAM_H

#include <stddef.h>

typedef struct vae_team vae_team;

/* A team of `size` >= 1 members (size 1: no thread is started and runs are plain calls). Ends the
 * process with a message when a thread cannot be started. */
vae_team *vae_team_create(int size);
int vae_team_size(const vae_team *team);
/* fn(ctx, k) on every member k, member 0 on the calling thread; returns when every member is done. */
void vae_team_run(vae_team *team, void (*fn)(void *ctx, int k), void *ctx);
/* Stops and joins the helpers; NULL is allowed. */
void vae_team_free(vae_team *team);

/* Member k's share [lo, hi) of n items split in `parts` pieces aligned to `align` items (the last
 * piece takes the remainder): pieces differ by at most `align` items, and cover [0, n) in order. */
void vae_team_slice(size_t n, int parts, int k, size_t align, size_t *lo, size_t *hi);

#endif
