/* layers.c: linear layers (cblas_sgemm), the bias/ReLU pass and bias gradient every layer kind shares,
 * ReLU's backward, the reparameterization, and the naive triple-loop references the tests compare them
 * with. Never allocates and never knows about the model's shape or the loss: vae.c wires these
 * together, conv.c holds the convolutions, loss.c owns the decoders' likelihoods. */
#include "layers.h"

#include "clones.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- linear ---- */

/* OpenBLAS 0.3.21 implements beta 0 by zeroing C first in its gemm_beta kernel, one scalar store at a
 * time (perf: 2% of the MLP step at np 1, 5% of the conv model's kernels), where memset uses vector
 * stores; the kernel then adds the products to the zeros exactly as it would have, so the bits are
 * the same (layers.h). */
void vae_gemm_overwrite(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
                        const float *b, int ldb, float *c) {
  memset(c, 0, (size_t)M * (size_t)N * sizeof *c);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, a, lda, b, ldb, 1.0f, c, N);
}

/* Y = X W^T: X (B, IN), W (OUT, IN), Y (B, OUT), overwritten. */
static void gemm_xwt(float *out, const float *inp, const float *w, int B, int IN, int OUT) {
  vae_gemm_overwrite(0, 1, B, OUT, IN, 1.0f, inp, IN, w, IN, out);
}

VAE_CLONES void vae_bias_act(float *y, const float *b, int rows, int n, int relu) {
  for (int r = 0; r < rows; r++) {
    float *yr = y + (size_t)r * (size_t)n;
    if (relu)
      for (int o = 0; o < n; o++) {
        float v = yr[o] + b[o];
        yr[o] = v < 0.0f ? 0.0f : v; /* not fmaxf, nor v > 0 ? v : 0: NaN must pass, as torch.relu's */
      }
    else
      for (int o = 0; o < n; o++) yr[o] += b[o];
  }
}

VAE_CLONES void vae_bias_backward(float *db, const float *dy, float alpha, int rows, int n) {
  /* row-wise so the inner loop is contiguous and vectorizes */
  for (int r = 0; r < rows; r++) {
    const float *d = dy + (size_t)r * (size_t)n;
    for (int o = 0; o < n; o++) db[o] += alpha * d[o];
  }
}

void vae_linear_forward(float *out, const float *inp, const float *w, const float *b, int B, int IN,
                        int OUT) {
  gemm_xwt(out, inp, w, B, IN, OUT);
  vae_bias_act(out, b, B, OUT, 0);
}

void vae_linear_relu_forward(float *out, const float *inp, const float *w, const float *b, int B, int IN,
                             int OUT) {
  gemm_xwt(out, inp, w, B, IN, OUT);
  vae_bias_act(out, b, B, OUT, 1);
}

void vae_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float alpha, int B, int IN, int OUT) {
  /* dX (B, IN) = alpha dY (B, OUT) W (OUT, IN) */
  if (dinp) vae_gemm_overwrite(0, 0, B, IN, OUT, alpha, dout, OUT, w, IN, dinp);
  /* dW (OUT, IN) += alpha dY^T (OUT, B) X (B, IN) */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, alpha, dout, OUT, inp, IN, 1.0f, dw, IN);
  vae_bias_backward(db, dout, alpha, B, OUT);
}

VAE_CLONES void vae_relu_backward(float *dh, const float *h, size_t n) {
  for (size_t i = 0; i < n; i++) dh[i] = h[i] > 0.0f ? dh[i] : 0.0f;
}

/* ---- reparameterization ---- */

void vae_reparam_forward(float *z, const float *mulv, const float *eps, int B, int L) {
  for (int r = 0; r < B; r++) {
    const float *mu = mulv + (size_t)r * 2 * (size_t)L, *lv = mu + L;
    const float *e = eps + (size_t)r * (size_t)L;
    float *zr = z + (size_t)r * (size_t)L;
    for (int j = 0; j < L; j++) zr[j] = mu[j] + expf(0.5f * lv[j]) * e[j];
  }
}

void vae_reparam_backward(float *dmulv, const float *dz, const float *mulv, const float *eps, int B, int L) {
  for (int r = 0; r < B; r++) {
    const float *lv = mulv + (size_t)r * 2 * (size_t)L + L;
    const float *e = eps + (size_t)r * (size_t)L, *d = dz + (size_t)r * (size_t)L;
    float *dmu = dmulv + (size_t)r * 2 * (size_t)L, *dlv = dmu + L;
    for (int j = 0; j < L; j++) {
      dmu[j] += d[j];
      dlv[j] += d[j] * e[j] * 0.5f * expf(0.5f * lv[j]);
    }
  }
}

/* ---- naive references ---- */

void vae_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int B, int IN,
                            int OUT) {
  for (int r = 0; r < B; r++)
    for (int o = 0; o < OUT; o++) {
      double s = b[o];
      for (int i = 0; i < IN; i++) s += (double)inp[(size_t)r * IN + i] * w[(size_t)o * IN + i];
      out[(size_t)r * OUT + o] = (float)s;
    }
}

void vae_linear_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, float alpha, int B, int IN, int OUT) {
  if (dinp)
    for (int r = 0; r < B; r++)
      for (int i = 0; i < IN; i++) {
        double s = 0;
        for (int o = 0; o < OUT; o++) s += (double)dout[(size_t)r * OUT + o] * w[(size_t)o * IN + i];
        dinp[(size_t)r * IN + i] = (float)(alpha * s);
      }
  for (int o = 0; o < OUT; o++) {
    for (int i = 0; i < IN; i++) {
      double s = 0;
      for (int r = 0; r < B; r++) s += (double)dout[(size_t)r * OUT + o] * inp[(size_t)r * IN + i];
      dw[(size_t)o * IN + i] += (float)(alpha * s);
    }
    double s = 0;
    for (int r = 0; r < B; r++) s += dout[(size_t)r * OUT + o];
    db[o] += (float)(alpha * s);
  }
}
