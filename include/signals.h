/* signals.h: SIGUSR1 and SIGTERM only set a flag; the trainer polls it at step boundaries, the ranks
 * agree on it, rank 0 checkpoints, and the job exits with VAE_EXIT_PREEMPTED (rank 0 carries it). */
#ifndef VAE_SIGNALS_H
#define VAE_SIGNALS_H

/* Exit status of a run stopped by SIGUSR1/SIGTERM after its checkpoint was written (EX_TEMPFAIL:
 * "try again later"); scripts/slurm/train.sbatch requeues the job on it. */
#define VAE_EXIT_PREEMPTED 75

void vae_signals_install(void);
/* The signal received (SIGUSR1 or SIGTERM), or 0. */
int vae_signal_pending(void);

#endif
