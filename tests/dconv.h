/* dconv.h: Conv2d and ConvTranspose2d in double precision, written from PyTorch's documentation in
 * PyTorch's own layouts (images (B, C, H, W); Conv2d weight (out, in, k, k), ConvTranspose2d weight
 * (in, out, k, k)), and the layout changes between them and vae_mpi's channels-last data. The tests'
 * independent reference: it shares no code or layout with src/nn. */
#ifndef VAE_TEST_DCONV_H
#define VAE_TEST_DCONV_H

#include <stddef.h>

/* out (B, O, OH, OW) = conv2d(x (B, C, H, W)), OH = (H + 2p - k) / s + 1. */
static void dconv2d(double *out, const double *x, const double *w, const double *b, int B, int C, int H,
                    int W, int O, int k, int s, int p) {
  const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  for (int n = 0; n < B; n++)
    for (int o = 0; o < O; o++)
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          double acc = b[o];
          for (int c = 0; c < C; c++)
            for (int kh = 0; kh < k; kh++)
              for (int kw = 0; kw < k; kw++) {
                int y = oy * s - p + kh, xx = ox * s - p + kw;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                acc += x[(((size_t)n * C + c) * H + y) * W + xx] * w[(((size_t)o * C + c) * k + kh) * k + kw];
              }
          out[(((size_t)n * O + o) * OH + oy) * OW + ox] = acc;
        }
}

/* out (B, O, OH, OW) = conv_transpose2d(x (B, C, H, W)), OH = (H - 1) s - 2p + k + op (op per axis). */
static void dconvt2d(double *out, const double *x, const double *w, const double *b, int B, int C, int H,
                     int W, int O, int k, int s, int p, int oph, int opw) {
  const int OH = (H - 1) * s - 2 * p + k + oph, OW = (W - 1) * s - 2 * p + k + opw;
  for (int n = 0; n < B; n++)
    for (int o = 0; o < O; o++)
      for (size_t i = 0; i < (size_t)OH * OW; i++) out[((size_t)n * O + o) * OH * OW + i] = b[o];
  for (int n = 0; n < B; n++)
    for (int c = 0; c < C; c++)
      for (int iy = 0; iy < H; iy++)
        for (int ix = 0; ix < W; ix++) {
          double v = x[(((size_t)n * C + c) * H + iy) * W + ix];
          for (int o = 0; o < O; o++)
            for (int kh = 0; kh < k; kh++)
              for (int kw = 0; kw < k; kw++) {
                int y = iy * s - p + kh, xx = ix * s - p + kw;
                if (y < 0 || y >= OH || xx < 0 || xx >= OW) continue;
                out[(((size_t)n * O + o) * OH + y) * OW + xx] +=
                    v * w[(((size_t)c * O + o) * k + kh) * k + kw];
              }
        }
}

/* (B, H, W, C) channels last <-> (B, C, H, W). */
static void nhwc_to_nchw(double *dst, const double *src, int B, int H, int W, int C) {
  for (int n = 0; n < B; n++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < C; c++)
          dst[(((size_t)n * C + c) * H + y) * W + x] = src[(((size_t)n * H + y) * W + x) * C + c];
}

static void nchw_to_nhwc(double *dst, const double *src, int B, int H, int W, int C) {
  for (int n = 0; n < B; n++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < C; c++)
          dst[(((size_t)n * H + y) * W + x) * C + c] = src[(((size_t)n * C + c) * H + y) * W + x];
}

#endif
