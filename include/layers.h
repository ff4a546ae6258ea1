/* layers.h: the building blocks of the network: linear layers on top of cblas_sgemm (layers.c),
 * convolutions and transposed convolutions as GEMMs over im2col/col2im (conv.c), ReLU, the
 * reparameterization, and naive references of every BLAS product (layers.c, conv_ref.c; for the tests).
 * Conventions (llm.c style): outputs first, sizes last, a `d` prefix for gradients. Activations are
 * batch-major row-major: (B, features), images (B, H, W, C) channels last; linear weights are PyTorch
 * nn.Linear (OUT, IN) row-major; convolution weights are channels last (see vae_conv_shape). */
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
/* C (M, N), row-major with row stride N, = alpha op(A) op(B), op transposing when trans_a / trans_b,
 * overwritten: cblas_sgemm with beta 0, but C zeroed with memset and beta 1 (faster with OpenBLAS
 * 0.3.21, the same bits; layers.c). */
void vae_gemm_overwrite(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
                        const float *b, int ldb, float *c);
/* y (rows, n) += b per row, then ReLU when relu: the elementwise pass after a layer's GEMM. */
void vae_bias_act(float *y, const float *b, int rows, int n, int relu);
/* db (n) += alpha * column sums of dy (rows, n): every layer's bias gradient. */
void vae_bias_backward(float *db, const float *dy, float alpha, int rows, int n);
/* In place, after the GEMM that produced dh = dL/d relu-output: dh[i] = 0 where h[i] <= 0. */
void vae_relu_backward(float *dh, const float *h, size_t n);

/* ---- convolutions (conv.c) ----
 * A k x k patch grid over an image, channels last: the gh x gw patches at stride s with zero padding p
 * cover the image (h, w, c); patch (gy, gx) reads pixels (gy*s - p + kh, gx*s - p + kw). A Conv2d reads
 * its input image through the grid of its output pixels; a ConvTranspose2d writes its output image
 * through the grid of its input pixels (the same geometry as the Conv2d it mirrors).
 *   conv2d:  in (B, h, w, c), out (B, gh, gw, n), weight (n, k, k, c) = an (n, k*k*c) nn.Linear over
 *            the im2col rows, bias (n). PyTorch's Conv2d weight (n, c, k, k), permuted.
 *   convt2d: in (B, gh, gw, n), out rows [head 0 (h, w, c) | head 1 ...], weight per head (k, k, c, n)
 *            stacked over the heads = a (heads*k*k*c, n) nn.Linear whose outputs col2im scatters, bias
 *            (heads, c). PyTorch's ConvTranspose2d weight (n, c, k, k), permuted.
 * The kernels process the batch in chunks of images whose im2col rows fit in cols (cols_len floats,
 * at least one image's vae_conv_cols_per_image): the workspace bound. */
typedef struct {
  int h, w, c; /* the image */
  int gh, gw;  /* the patch grid */
  int k, s, p; /* kernel, stride, zero padding */
  int n;       /* channels on the grid side: a conv's output, a transposed conv's input */
  int heads;   /* 1; or 2 for a transposed conv with two fused outputs */
} vae_conv_shape;

/* Floats of one image's im2col rows: gh * gw * heads * k * k * c. */
size_t vae_conv_cols_per_image(const vae_conv_shape *s);
/* cols (nb*gh*gw rows of k*k*c, row stride ldc) = the patches of nb images (image stride img_stride). */
void vae_im2col(float *cols, size_t ldc, const float *img, size_t img_stride, int nb,
                const vae_conv_shape *s);
/* The adjoint: img += the patches in cols, each added where im2col read it. */
void vae_col2im(float *img, size_t img_stride, const float *cols, size_t ldc, int nb,
                const vae_conv_shape *s);

/* out = conv(in) + bias [then ReLU]. */
void vae_conv2d_forward(float *out, const float *inp, const float *w, const float *b, int relu,
                        const vae_conv_shape *s, int B, float *cols, size_t cols_len);
/* As vae_linear_backward: dinp OVERWRITTEN (skipped when NULL), dw and db accumulated, all times alpha;
 * then, when relu_mask is not NULL, dinp zeroed where relu_mask <= 0 (vae_relu_backward with the ReLU
 * output below, relu_mask (B, in size), done chunk by chunk while dinp is in cache). */
void vae_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float alpha, const float *relu_mask, const vae_conv_shape *s, int B,
                         float *cols, size_t cols_len);
void vae_convt2d_forward(float *out, const float *inp, const float *w, const float *b, int relu,
                         const vae_conv_shape *s, int B, float *cols, size_t cols_len);
void vae_convt2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float alpha, const float *relu_mask, const vae_conv_shape *s, int B,
                          float *cols, size_t cols_len);

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
/* Direct convolutions from PyTorch's definitions (conv_ref.c), double accumulation, the same contracts
 * and layouts as the GEMM kernels above (no cols). */
void vae_conv2d_forward_ref(float *out, const float *inp, const float *w, const float *b, int relu,
                            const vae_conv_shape *s, int B);
void vae_conv2d_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, float alpha, const vae_conv_shape *s, int B);
void vae_convt2d_forward_ref(float *out, const float *inp, const float *w, const float *b, int relu,
                             const vae_conv_shape *s, int B);
void vae_convt2d_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, float alpha, const vae_conv_shape *s, int B);

#endif
