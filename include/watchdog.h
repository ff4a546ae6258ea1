/* watchdog.h: ends this process when a watched operation (the gradient sum of a training step) has not
 * completed within a timeout, so that a lost node or a partition ends the job instead of hanging it.
 * A thread checks the armed operation a few times per timeout; arming and disarming are two atomic
 * stores (no lock, no system call), cheap enough for every step. Time the whole process spends stopped
 * (SIGSTOP, SLURM's scontrol suspend) does not count towards the timeout. On expiry it prints one line,
 *   vae_mpi: error: rank R on HOST: WHAT N did not complete in T s; a node or the network is down;
 *   resume with --resume auto
 * and ends the process with _exit(VAE_EXIT_COMM_TIMEOUT) from the watchdog thread (the main thread is
 * blocked inside MPI; exit() would run atexit handlers of a library in use), so that mpirun (or srun
 * --kill-on-bad-exit) tears the whole job down. Never calls MPI. */
#ifndef VAE_WATCHDOG_H
#define VAE_WATCHDOG_H

/* The exit status of a rank ended by the watchdog (EX_UNAVAILABLE: a service the job needs, the
 * network or a peer, is gone; the newest checkpoint is intact). */
#define VAE_EXIT_COMM_TIMEOUT 69

/* Default of --comm-timeout, seconds: longer than Open MPI's own detection of a silent node with its default
 * keepalive (300 + 9 x 20 = 480 s), so that mpirun, which can name the lost node, acts first; the same
 * as PyTorch's NCCL process-group timeout (10 minutes). */
#define VAE_DEFAULT_COMM_TIMEOUT 600.0

/* Starts the watchdog thread for this rank (rank and host name go into its message). timeout_s <= 0
 * turns the watchdog off: arm/disarm still record what they time, nothing ever fires. Returns 0, or -1
 * with a message in err (VAE_ERR_LEN) when the thread cannot be started. */
int vae_watchdog_start(double timeout_s, int rank, char *err);
/* Watches the operation about to start: `what` is a static string ("the gradient sum of step"),
 * `number` is printed after it. */
void vae_watchdog_arm(const char *what, long number);
/* The operation completed: stops watching it. Returns how long it was armed, in seconds. */
double vae_watchdog_disarm(void);
/* The longest armed interval since start: what the watchdog measured, to compare with its timeout. */
double vae_watchdog_longest(void);
/* Stops and joins the thread (idempotent). */
void vae_watchdog_stop(void);

#endif
