/* train/trace.h: the VAE_TRACE test hook of the training step (train/trace.c), private to src/train. */
#ifndef VAE_TRAIN_TRACE_H
#define VAE_TRAIN_TRACE_H

#include <stdint.h>

#include "data.h"
#include "trainer.h"

/* With VAE_TRACE set, appends this step's rows, eps and (rank 0) parameters to the trace; else nothing
 * (one getenv, on the first call). */
void vae_train_trace(const vae_trainer *t, const vae_shard *s, const uint32_t *rows, int n);

#endif
