/* signals.c: async-signal-safe flag setting for SIGUSR1/SIGTERM. Never does anything else in a
 * handler. */
#include "signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending = 0;

static void on_signal(int sig) { pending = sig; }

void vae_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int vae_signal_pending(void) { return (int)pending; }
