/* train/trace.c: the VAE_TRACE test hook (tests/test_torch_train.py replays the steps in PyTorch).
 * With VAE_TRACE=PREFIX set, every rank writes PREFIX.RANK: first "VAETRC02", int32 T and, per tensor
 * of the layout (vae_tensors' order), char name[64], int32 ndim, int32 dims[4] (PyTorch's shape);
 * then for each step int64 step, int32 n, int32 latent, int64 P (the parameter count on rank 0, 0 on
 * the others), uint32 dataset rows[n], float32 eps[n * latent], and on rank 0 float32 params[P] as
 * they were before the step: each tensor in PyTorch's layout, one after the other in the table's
 * order (what a checkpoint would hold). Off when unset; the file stays open until exit. */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "vae.h"

static FILE *open_trace(const vae_trainer *t) {
  const char *prefix = getenv("VAE_TRACE");
  if (!prefix || !*prefix) return NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s.%d", prefix, t->d.rank);
  FILE *f = fopenCheck(path, "wb");
  vae_tensor tt[VAE_MAX_TENSORS];
  const int32_t nt = vae_tensors(&t->o.model, tt);
  fwrite("VAETRC02", 1, 8, f);
  fwrite(&nt, sizeof nt, 1, f);
  for (int i = 0; i < nt; i++) {
    const int32_t shape[1 + VAE_TENSOR_MAX_DIMS] = {tt[i].ndim, tt[i].dims[0], tt[i].dims[1], tt[i].dims[2],
                                                    tt[i].dims[3]};
    fwrite(tt[i].name, 1, sizeof tt[i].name, f);
    fwrite(shape, sizeof shape[0], 1 + VAE_TENSOR_MAX_DIMS, f);
  }
  return f;
}

/* The parameters in PyTorch's layouts, tensor after tensor. */
static void write_params(FILE *f, const vae_trainer *t) {
  vae_tensor tt[VAE_MAX_TENSORS];
  const int nt = vae_tensors(&t->o.model, tt);
  float *torch = mallocCheck(t->n_params * sizeof *torch);
  size_t at = 0;
  for (int i = 0; i < nt; i++) {
    if (at + vae_tensor_len(&tt[i]) > t->n_params) VAE_FAIL("VAE_TRACE: the tensors overrun the parameters");
    vae_tensor_to_torch(&tt[i], t->params, torch + at);
    at += vae_tensor_len(&tt[i]);
  }
  if (at != t->n_params) VAE_FAIL("VAE_TRACE: the tensors hold %zu of %zu parameters", at, t->n_params);
  fwrite(torch, sizeof *torch, t->n_params, f);
  free(torch);
}

void vae_train_trace(const vae_trainer *t, const vae_shard *s, const uint32_t *rows, int n) {
  static int state; /* 0 unknown, 1 tracing, -1 off */
  static FILE *f;
  if (state == 0) {
    f = open_trace(t);
    state = f ? 1 : -1;
  }
  if (state < 0) return;
  const int64_t step = t->st.step, P = t->d.rank == 0 ? (int64_t)t->n_params : 0;
  const int32_t head[2] = {n, t->o.model.latent};
  fwrite(&step, sizeof step, 1, f);
  fwrite(head, sizeof head[0], 2, f);
  fwrite(&P, sizeof P, 1, f);
  for (int b = 0; b < n; b++) {
    const uint32_t row = (uint32_t)(s->offset + rows[b]);
    fwrite(&row, sizeof row, 1, f);
  }
  fwrite(t->ws->eps, sizeof(float), (size_t)n * (size_t)t->o.model.latent, f);
  if (P > 0) write_params(f, t);
  if (fflush(f) != 0) VAE_FAIL("VAE_TRACE: writing the trace failed");
}
