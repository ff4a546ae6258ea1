/* layers.h: the building blocks of the MLP: linear layers on top of cblas_sgemm, ReLU, the
 * reparameterization, and naive triple-loop references of every BLAS product (for the tests).
 * Conventions (llm.c style): outputs first, sizes last, a `d` prefix for gradients. Activations are
 * batch-major (B, features) row-major; weights are PyTorch nn.Linear (OUT, IN) row-major. */
#ifndef VAE_LAYERS_H
#define VAE_LAYERS_H

#include <stddef.h>

/* out (B, OUT) = inp (B, IN) W^T + b. */
void vae_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int IN, int OUT);
/* out = relu(inp W^T + b), the bias and the ReLU applied in one pass after the GEMM. */
void vae_linear_relu_forward(float *out, const float *inp, const float *w, const float *b, int B, int IN,
                             int OUT);
/* Gradients of alpha * L given dout = dL/dout (B, OUT):
 *   dinp (B, IN) = alpha * dout W        OVERWRITTEN (skipped when dinp is NULL: the first layer)
 *   dw (OUT, IN) += alpha * dout^T inp   accumulated
 *   db (OUT)     += alpha * column sums of dout   accumulated
 * dinp must not alias dout. */
void vae_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float alpha, int B, int IN, int OUT);
/* In place, after the GEMM that produced dh = dL/d relu-output: dh[i] = 0 where h[i] <= 0. */
void vae_relu_backward(float *dh, const float *h, size_t n);

/* z (B, L) = mu + exp(0.5 logvar) * eps, with mulv (B, 2L) holding [mu | logvar] per row. */
void vae_reparam_forward(float *z, const float *mulv, const float *eps, int B, int L);
/* dmulv (B, 2L) += the reparameterization's share of dz (B, L):
 *   dmu += dz,  dlogvar += dz * eps * 0.5 * exp(0.5 logvar). */
void vae_reparam_backward(float *dmulv, const float *dz, const float *mulv, const float *eps, int B, int L);

/* Naive references (double accumulation, no BLAS), same contracts as above; for tests only. */
void vae_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int B, int IN,
                            int OUT);
void vae_linear_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, float alpha, int B, int IN, int OUT);

#endif
