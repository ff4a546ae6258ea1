/* conv_ref.c: direct Conv2d and ConvTranspose2d, written from PyTorch's definitions as loops over
 * every (output pixel, kernel tap, channel) with double accumulation, in the layouts of conv.c. For the
 * tests only: they are what conv.c's GEMMs, im2col and col2im are compared with. Never called by
 * training. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layers.h"

/* Pixel (y, x) of the image that patch (gy, gx) tap (kh, kw) reads, or 0 when it is padding. */
static int tap(const vae_conv_shape *s, int gy, int gx, int kh, int kw, int *y, int *x) {
  *y = gy * s->s - s->p + kh;
  *x = gx * s->s - s->p + kw;
  return *y >= 0 && *y < s->h && *x >= 0 && *x < s->w;
}

static size_t img_at(const vae_conv_shape *s, int y, int x) {
  return ((size_t)y * (size_t)s->w + (size_t)x) * (size_t)s->c;
}
static size_t grid_at(const vae_conv_shape *s, int gy, int gx) {
  return ((size_t)gy * (size_t)s->gw + (size_t)gx) * (size_t)s->n;
}
/* weight index of (grid channel o, tap, image channel ci): conv (n, k, k, c); convt per head (k, k, c, n) */
static size_t conv_w(const vae_conv_shape *s, int o, int kh, int kw, int ci) {
  return (((size_t)o * (size_t)s->k + (size_t)kh) * (size_t)s->k + (size_t)kw) * (size_t)s->c + (size_t)ci;
}
static size_t convt_w(const vae_conv_shape *s, int hd, int kh, int kw, int co, int ci) {
  return ((((size_t)hd * (size_t)s->k + (size_t)kh) * (size_t)s->k + (size_t)kw) * (size_t)s->c +
          (size_t)co) *
             (size_t)s->n +
         (size_t)ci;
}

static double *zeros(size_t n) { return callocCheck(n ? n : 1, sizeof(double)); }

void vae_conv2d_forward_ref(float *out, const float *inp, const float *w, const float *b, int relu,
                            const vae_conv_shape *s, int B) {
  const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->gh * s->gw * s->n;
  for (int i = 0; i < B; i++)
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++)
        for (int o = 0; o < s->n; o++) {
          double acc = b[o];
          for (int kh = 0; kh < s->k; kh++)
            for (int kw = 0; kw < s->k; kw++) {
              int y, x;
              if (!tap(s, gy, gx, kh, kw, &y, &x)) continue;
              for (int ci = 0; ci < s->c; ci++)
                acc += (double)inp[(size_t)i * in_img + img_at(s, y, x) + ci] * w[conv_w(s, o, kh, kw, ci)];
            }
          out[(size_t)i * out_img + grid_at(s, gy, gx) + o] = (float)(relu && acc < 0 ? 0 : acc);
        }
}

void vae_conv2d_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, float alpha, const vae_conv_shape *s, int B) {
  const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->gh * s->gw * s->n;
  const size_t nw = (size_t)s->n * s->k * s->k * s->c;
  double *gx_ = zeros((size_t)B * in_img), *gw = zeros(nw), *gb = zeros((size_t)s->n);
  for (int i = 0; i < B; i++)
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++)
        for (int o = 0; o < s->n; o++) {
          double g = dout[(size_t)i * out_img + grid_at(s, gy, gx) + o];
          gb[o] += g;
          for (int kh = 0; kh < s->k; kh++)
            for (int kw = 0; kw < s->k; kw++) {
              int y, x;
              if (!tap(s, gy, gx, kh, kw, &y, &x)) continue;
              for (int ci = 0; ci < s->c; ci++) {
                size_t xi = (size_t)i * in_img + img_at(s, y, x) + ci, wi = conv_w(s, o, kh, kw, ci);
                gw[wi] += g * inp[xi];
                gx_[xi] += g * w[wi];
              }
            }
        }
  for (size_t j = 0; j < nw; j++) dw[j] += (float)(alpha * gw[j]);
  for (int o = 0; o < s->n; o++) db[o] += (float)(alpha * gb[o]);
  if (dinp)
    for (size_t j = 0; j < (size_t)B * in_img; j++) dinp[j] = (float)(alpha * gx_[j]);
  free(gx_), free(gw), free(gb);
}

void vae_convt2d_forward_ref(float *out, const float *inp, const float *w, const float *b, int relu,
                             const vae_conv_shape *s, int B) {
  const size_t hwc = (size_t)s->h * s->w * s->c, out_img = (size_t)s->heads * hwc;
  const size_t in_img = (size_t)s->gh * s->gw * s->n;
  double *acc = zeros(out_img);
  for (int i = 0; i < B; i++) {
    for (int hd = 0; hd < s->heads; hd++)
      for (size_t px = 0; px < (size_t)s->h * s->w; px++)
        for (int co = 0; co < s->c; co++) acc[hd * hwc + px * s->c + co] = b[hd * s->c + co];
    /* each input pixel scatters its kernel-weighted channels onto the output pixels it covers */
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++)
        for (int kh = 0; kh < s->k; kh++)
          for (int kw = 0; kw < s->k; kw++) {
            int y, x;
            if (!tap(s, gy, gx, kh, kw, &y, &x)) continue;
            for (int hd = 0; hd < s->heads; hd++)
              for (int co = 0; co < s->c; co++) {
                double sum = 0;
                for (int ci = 0; ci < s->n; ci++)
                  sum += (double)inp[(size_t)i * in_img + grid_at(s, gy, gx) + ci] *
                         w[convt_w(s, hd, kh, kw, co, ci)];
                acc[hd * hwc + img_at(s, y, x) + co] += sum;
              }
          }
    for (size_t j = 0; j < out_img; j++)
      out[(size_t)i * out_img + j] = (float)(relu && acc[j] < 0 ? 0 : acc[j]);
  }
  free(acc);
}

void vae_convt2d_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                              const float *w, float alpha, const vae_conv_shape *s, int B) {
  const size_t hwc = (size_t)s->h * s->w * s->c, out_img = (size_t)s->heads * hwc;
  const size_t in_img = (size_t)s->gh * s->gw * s->n, nw = (size_t)s->heads * s->k * s->k * s->c * s->n;
  double *gx_ = zeros((size_t)B * in_img), *gw = zeros(nw), *gb = zeros((size_t)s->heads * s->c);
  for (int i = 0; i < B; i++) {
    for (int hd = 0; hd < s->heads; hd++)
      for (size_t px = 0; px < (size_t)s->h * s->w; px++)
        for (int co = 0; co < s->c; co++)
          gb[hd * s->c + co] += dout[(size_t)i * out_img + hd * hwc + px * s->c + co];
    for (int gy = 0; gy < s->gh; gy++)
      for (int gx = 0; gx < s->gw; gx++)
        for (int kh = 0; kh < s->k; kh++)
          for (int kw = 0; kw < s->k; kw++) {
            int y, x;
            if (!tap(s, gy, gx, kh, kw, &y, &x)) continue;
            for (int hd = 0; hd < s->heads; hd++)
              for (int co = 0; co < s->c; co++) {
                double g = dout[(size_t)i * out_img + hd * hwc + img_at(s, y, x) + co];
                for (int ci = 0; ci < s->n; ci++) {
                  size_t xi = (size_t)i * in_img + grid_at(s, gy, gx) + ci,
                         wi = convt_w(s, hd, kh, kw, co, ci);
                  gw[wi] += g * inp[xi];
                  gx_[xi] += g * w[wi];
                }
              }
          }
  }
  for (size_t j = 0; j < nw; j++) dw[j] += (float)(alpha * gw[j]);
  for (int j = 0; j < s->heads * s->c; j++) db[j] += (float)(alpha * gb[j]);
  if (dinp)
    for (size_t j = 0; j < (size_t)B * in_img; j++) dinp[j] = (float)(alpha * gx_[j]);
  free(gx_), free(gw), free(gb);
}
