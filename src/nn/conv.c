/* conv.c: Conv2d and ConvTranspose2d on channels-last images as OpenBLAS GEMMs over im2col/col2im
 * (layers.h has the layouts). A convolution is an nn.Linear over its input's im2col rows; its input
 * gradient is a GEMM then col2im; a transposed convolution swaps the two. The batch goes through in
 * chunks of images whose im2col rows fit the caller's cols buffer (the workspace bound, allocated once by
 * vae_workspace_create). Never allocates; the direct references the tests use are in conv_ref.c. */
#include <cblas.h>
#include <string.h>

#include "clones.h"
#include "error.h"
#include "layers.h"

size_t vae_conv_cols_per_image(const vae_conv_shape *s) {
  return (size_t)s->gh * (size_t)s->gw * (size_t)s->heads * (size_t)s->k * (size_t)s->k * (size_t)s->c;
}

/* ---- im2col / col2im ---- */

/* Patch (gy, gx) row kh covers kw in [*lo, *hi): the pixels x0 + lo .. x0 + hi - 1 of image row
 * y = gy*s - p + kh, contiguous in a channels-last row; the kernel columns outside are padding. */
static int patch_row(const vae_conv_shape *s, int gy, int gx, int kh, int *y, int *x0, int *lo, int *hi) {
  *y = gy * s->s - s->p + kh;
  if (*y < 0 || *y >= s->h) return 0;
  *x0 = gx * s->s - s->p;
  *lo = *x0 < 0 ? -*x0 : 0;
  *hi = s->w - *x0 < s->k ? s->w - *x0 : s->k;
  return *hi > *lo;
}

/* One patch row: src's floats [a, e) of krow, zeros outside. A short row (a one-channel image's k
 * floats) is one select loop, as GCC cannot turn it into memset/memcpy calls whose overhead would be
 * most of its cost (im2col of the 28x28x1 layer: 1.30 ms per 128 images with calls, 0.54 without);
 * a long one is faster as the calls (c = 32: 0.44 ms with them, 0.89 as the select loop). */
static inline void patch_copy(float *restrict dst, const float *restrict src, size_t a, size_t e,
                              size_t krow) {
  if (krow < 32) {
    for (size_t j = 0; j < krow; j++) dst[j] = j >= a && j < e ? src[j - a] : 0.0f;
    return;
  }
  memset(dst, 0, a * sizeof *dst);
  memcpy(dst + a, src, (e - a) * sizeof *dst);
  memset(dst + e, 0, (krow - e) * sizeof *dst);
}

VAE_CLONES void vae_im2col(float *cols, size_t ldc, const float *img, size_t img_stride, int nb,
                           const vae_conv_shape *s) {
  const size_t c = (size_t)s->c, krow = (size_t)s->k * c;
  for (int b = 0; b < nb; b++) {
    const float *im = img + (size_t)b * img_stride;
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++) {
        float *row = cols + (((size_t)b * (size_t)s->gh + (size_t)gy) * (size_t)s->gw + (size_t)gx) * ldc;
        for (int kh = 0; kh < s->k; kh++) {
          const float *src = im;
          int y, x0, lo, hi;
          size_t a = 0, e = 0; /* a row above or below the image: all padding */
          if (patch_row(s, gy, gx, kh, &y, &x0, &lo, &hi)) {
            src = im + ((size_t)y * (size_t)s->w + (size_t)(x0 + lo)) * c;
            a = (size_t)lo * c, e = (size_t)hi * c;
          }
          patch_copy(row + (size_t)kh * krow, src, a, e, krow);
        }
      }
  }
}

VAE_CLONES void vae_col2im(float *img, size_t img_stride, const float *cols, size_t ldc, int nb,
                           const vae_conv_shape *s) {
  const size_t c = (size_t)s->c, krow = (size_t)s->k * c;
  for (int b = 0; b < nb; b++) {
    float *im = img + (size_t)b * img_stride;
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++) {
        const float *row =
            cols + (((size_t)b * (size_t)s->gh + (size_t)gy) * (size_t)s->gw + (size_t)gx) * ldc;
        for (int kh = 0; kh < s->k; kh++) {
          int y, x0, lo, hi;
          if (!patch_row(s, gy, gx, kh, &y, &x0, &lo, &hi)) continue;
          float *restrict d = im + ((size_t)y * (size_t)s->w + (size_t)(x0 + lo)) * c;
          const float *restrict src = row + (size_t)kh * krow + (size_t)lo * c;
          const size_t n = (size_t)(hi - lo) * c;
          for (size_t j = 0; j < n; j++) d[j] += src[j];
        }
      }
  }
}

/* ---- shared pieces ---- */

/* Images per chunk: as many as cols holds, at most B. */
static int chunk_images(const vae_conv_shape *s, int B, size_t cols_len) {
  size_t per = vae_conv_cols_per_image(s);
  if (cols_len < per) VAE_FAIL("conv workspace of %zu floats < one image's %zu", cols_len, per);
  size_t nb = cols_len / per;
  return nb < (size_t)B ? (int)nb : B;
}

/* A 1x1 kernel at stride 1 without padding reads each pixel once: its im2col rows are the image. */
static int is_pointwise(const vae_conv_shape *s) { return s->k == 1 && s->s == 1 && s->p == 0; }

/* ---- Conv2d ---- */

void vae_conv2d_forward(float *out, const float *inp, const float *w, const float *b, int relu,
                        const vae_conv_shape *s, int B, float *cols, size_t cols_len) {
  const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->gh * s->gw * s->n;
  const int Kd = s->k * s->k * s->c, nb = chunk_images(s, B, cols_len);
  for (int b0 = 0; b0 < B; b0 += nb) {
    const int m = B - b0 < nb ? B - b0 : nb, M = m * s->gh * s->gw;
    const float *x = inp + (size_t)b0 * in_img, *A = x;
    if (!is_pointwise(s)) {
      vae_im2col(cols, (size_t)Kd, x, in_img, m, s);
      A = cols;
    }
    float *y = out + (size_t)b0 * out_img;
    /* Y (M, n) = cols (M, Kd) W^T, W (n, Kd) */
    vae_gemm_overwrite(0, 1, M, s->n, Kd, 1.0f, A, Kd, w, Kd, y);
    vae_bias_act(y, b, M, s->n, relu);
  }
}

void vae_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float alpha, const float *relu_mask, const vae_conv_shape *s, int B,
                         float *cols, size_t cols_len) {
  const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->gh * s->gw * s->n;
  const int Kd = s->k * s->k * s->c, nb = chunk_images(s, B, cols_len), pw = is_pointwise(s);
  for (int b0 = 0; b0 < B; b0 += nb) {
    const int m = B - b0 < nb ? B - b0 : nb, M = m * s->gh * s->gw;
    const float *x = inp + (size_t)b0 * in_img, *dy = dout + (size_t)b0 * out_img, *A = x;
    if (!pw) {
      vae_im2col(cols, (size_t)Kd, x, in_img, m, s);
      A = cols;
    }
    /* dW (n, Kd) += alpha dY^T (n, M) cols (M, Kd) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->n, Kd, M, alpha, dy, s->n, A, Kd, 1.0f, dw, Kd);
    vae_bias_backward(db, dy, alpha, M, s->n);
    if (!dinp) continue;
    /* dcols (M, Kd) = alpha dY W; col2im adds each patch back where it was read */
    float *dx = dinp + (size_t)b0 * in_img, *dc = pw ? dx : cols;
    vae_gemm_overwrite(0, 0, M, Kd, s->n, alpha, dy, s->n, w, Kd, dc);
    if (!pw) {
      memset(dx, 0, (size_t)m * in_img * sizeof *dx);
      vae_col2im(dx, in_img, cols, (size_t)Kd, m, s);
    }
    /* the ReLU below, on the chunk while it is in cache */
    if (relu_mask) vae_relu_backward(dx, relu_mask + (size_t)b0 * in_img, (size_t)m * in_img);
  }
}

/* ---- ConvTranspose2d ---- */

void vae_convt2d_forward(float *out, const float *inp, const float *w, const float *b, int relu,
                         const vae_conv_shape *s, int B, float *cols, size_t cols_len) {
  const size_t hwc = (size_t)s->h * s->w * s->c, out_img = (size_t)s->heads * hwc;
  const size_t in_img = (size_t)s->gh * s->gw * s->n, kkc = (size_t)s->k * s->k * s->c;
  const int KdO = (int)((size_t)s->heads * kkc), nb = chunk_images(s, B, cols_len);
  for (int b0 = 0; b0 < B; b0 += nb) {
    const int m = B - b0 < nb ? B - b0 : nb, M = m * s->gh * s->gw;
    /* cols (M, heads*k*k*c) = X (M, n) W^T, W (heads*k*k*c, n) */
    vae_gemm_overwrite(0, 1, M, KdO, s->n, 1.0f, inp + (size_t)b0 * in_img, s->n, w, s->n, cols);
    float *y = out + (size_t)b0 * out_img;
    /* the patches add up in a zeroed output, then each head's bias and the ReLU in one pass */
    memset(y, 0, (size_t)m * out_img * sizeof *y);
    for (int hd = 0; hd < s->heads; hd++)
      vae_col2im(y + (size_t)hd * hwc, out_img, cols + (size_t)hd * kkc, (size_t)KdO, m, s);
    for (int i = 0; i < m; i++)
      for (int hd = 0; hd < s->heads; hd++)
        vae_bias_act(y + (size_t)i * out_img + (size_t)hd * hwc, b + (size_t)hd * s->c, s->h * s->w, s->c,
                     relu);
  }
}

void vae_convt2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float alpha, const float *relu_mask, const vae_conv_shape *s, int B,
                          float *cols, size_t cols_len) {
  const size_t hwc = (size_t)s->h * s->w * s->c, out_img = (size_t)s->heads * hwc;
  const size_t in_img = (size_t)s->gh * s->gw * s->n, kkc = (size_t)s->k * s->k * s->c;
  const int KdO = (int)((size_t)s->heads * kkc), nb = chunk_images(s, B, cols_len);
  for (int b0 = 0; b0 < B; b0 += nb) {
    const int m = B - b0 < nb ? B - b0 : nb, M = m * s->gh * s->gw;
    const float *x = inp + (size_t)b0 * in_img, *dy = dout + (size_t)b0 * out_img;
    /* dcols: the output gradient read through the same patches col2im wrote */
    for (int hd = 0; hd < s->heads; hd++)
      vae_im2col(cols + (size_t)hd * kkc, (size_t)KdO, dy + (size_t)hd * hwc, out_img, m, s);
    /* dW (heads*k*k*c, n) += alpha dcols^T X */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KdO, s->n, M, alpha, cols, KdO, x, s->n, 1.0f, dw,
                s->n);
    for (int i = 0; i < m; i++)
      for (int hd = 0; hd < s->heads; hd++)
        vae_bias_backward(db + (size_t)hd * s->c, dy + (size_t)i * out_img + (size_t)hd * hwc, alpha,
                          s->h * s->w, s->c);
    /* dX (M, n) = alpha dcols W, then the ReLU below on the chunk */
    if (!dinp) continue;
    float *dx = dinp + (size_t)b0 * in_img;
    vae_gemm_overwrite(0, 0, M, s->n, KdO, alpha, cols, KdO, w, s->n, dx);
    if (relu_mask) vae_relu_backward(dx, relu_mask + (size_t)b0 * in_img, (size_t)m * in_img);
  }
}
