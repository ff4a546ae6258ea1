/* image_pixels.c: which decoder a file's bytes need (by their signature, never the file name), and the
 * pixel operations of import-images (image.h): alpha compositing, RGB or grey, centre crop, resize.
 * Pure functions of their inputs: no I/O, no globals, safe on any thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* What a non-image looks like, for the error message. */
static const char *what_it_is(const uint8_t *b, size_t n) {
  if (n == 0) return "an empty file";
  if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return "a GIF image";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "a BMP image";
  if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return "a WebP image";
  if (n >= 4 && (memcmp(b, "II*", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) return "a TIFF image";
  if (n >= 8 && memcmp(b + 4, "Bud1", 4) == 0) return "a macOS .DS_Store file";
  if (n >= 4 && memcmp(b, PNG_SIG, 4) == 0) return "a damaged PNG signature";
  size_t text = 0, k = n < 512 ? n : 512;
  for (size_t i = 0; i < k; i++)
    text += (b[i] >= 32 && b[i] < 127) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t';
  return text == k ? "a text file" : "not a PNG or JPEG";
}

static int not_an_image(const uint8_t *b, size_t n, char *err) {
  const char *what = what_it_is(b, n);
  return vae_err(err, "%s%s: only PNG and JPEG images are read",
                 strncmp(what, "not", 3) ? "not an image, " : "", what);
}

int vae_image_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err) {
  if (len >= 8 && memcmp(buf, PNG_SIG, 8) == 0) return vae_png_probe(buf, len, info, err);
  if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
    return vae_jpeg_probe(buf, len, info, err);
  return not_an_image(buf, len, err);
}

int vae_image_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err) {
  if (len >= 8 && memcmp(buf, PNG_SIG, 8) == 0) return vae_png_decode(buf, len, out, err);
  if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
    return vae_jpeg_decode(buf, len, out, err);
  return not_an_image(buf, len, err);
}

void vae_pixels_reserve(vae_pixels *out, size_t n) {
  if (n <= out->cap) return;
  free(out->px);
  out->px = mallocCheck(n);
  out->cap = n;
}

void vae_pixels_free(vae_pixels *p) {
  free(p->px);
  memset(p, 0, sizeof *p);
}

/* ---- channels ---- */

static inline uint8_t over(unsigned v, unsigned a, unsigned bg) {
  return (uint8_t)((a * v + (255 - a) * bg + 127) / 255);
}
static inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
}

void vae_pixels_to_channels(const vae_pixels *in, int c, uint8_t bg, uint8_t *out) {
  const size_t n = (size_t)in->w * (size_t)in->h;
  const uint8_t *p = in->px;
  for (size_t i = 0; i < n; i++, p += in->ch) {
    unsigned r, g, b;
    switch (in->ch) {
      case 1: r = g = b = p[0]; break;
      case 2: r = g = b = over(p[0], p[1], bg); break;
      case 3: r = p[0], g = p[1], b = p[2]; break;
      default: r = over(p[0], p[3], bg), g = over(p[1], p[3], bg), b = over(p[2], p[3], bg); break;
    }
    if (c == 1) {
      out[i] = in->ch <= 2 ? (uint8_t)r : luma(r, g, b);
    } else {
      out[3 * i] = (uint8_t)r;
      out[3 * i + 1] = (uint8_t)g;
      out[3 * i + 2] = (uint8_t)b;
    }
  }
}

/* ---- crop and resize ---- */

void vae_center_crop(int h, int w, int H, int W, int *top, int *left, int *ch, int *cw) {
  *ch = h;
  *cw = w;
  if ((long)w * H > (long)h * W) { /* wider than the target: crop the width */
    *cw = (int)((2L * h * W + H) / (2L * H));
  } else if ((long)w * H < (long)h * W) {
    *ch = (int)((2L * w * H + W) / (2L * W));
  }
  if (*cw < 1) *cw = 1;
  if (*ch < 1) *ch = 1;
  *top = (int)lrint((h - *ch) / 2.0); /* rint: ties to even, as Python's round in CenterCrop */
  *left = (int)lrint((w - *cw) / 2.0);
}

/* The input pixels and weights output pixel i of an axis of m pixels takes from n input pixels:
 * at most n entries. Area average (m < n): pixel i covers [i n / m, (i + 1) n / m); input pixel j
 * weighs its overlap with that interval over its length n / m, in exact integers (units of 1 / m).
 * Bilinear (m > n): the centre of i sits at x = ((2i + 1) n - m) / (2m), clamped to [0, n - 1]. */
static int axis_weights(int i, int n, int m, int *j, double *wt) {
  if (m == n) {
    j[0] = i, wt[0] = 1.0;
    return 1;
  }
  if (m < n) {
    long lo = (long)i * n, hi = (long)(i + 1) * n; /* in units of 1/m */
    int k = 0;
    for (long p = lo / m; p * m < hi; p++) {
      long a = p * m > lo ? p * m : lo, b = (p + 1) * m < hi ? (p + 1) * m : hi;
      j[k] = (int)p, wt[k++] = (double)(b - a) / (double)n;
    }
    return k;
  }
  long num = (2L * i + 1) * n - m, den = 2L * m;
  if (num <= 0) {
    j[0] = 0, wt[0] = 1.0;
    return 1;
  }
  long j0 = num / den;
  if (j0 >= n - 1) {
    j[0] = n - 1, wt[0] = 1.0;
    return 1;
  }
  double t = (double)(num % den) / (double)den;
  j[0] = (int)j0, wt[0] = 1.0 - t;
  j[1] = (int)j0 + 1, wt[1] = t;
  return 2;
}

void vae_resize(const uint8_t *in, int w, int c, int top, int left, int ch, int cw, uint8_t *out, int H,
                int W, double *scratch) {
  int nmax = (ch > cw ? ch : cw) + 2;
  int *j = mallocCheck((size_t)nmax * sizeof *j);
  double *wt = mallocCheck((size_t)nmax * sizeof *wt);
  /* Rows: each of the ch cropped rows to W pixels, into scratch (ch, W, c). */
  for (int x = 0; x < W; x++) {
    int k = axis_weights(x, cw, W, j, wt);
    for (int y = 0; y < ch; y++) {
      const uint8_t *row = in + ((size_t)(top + y) * (size_t)w + (size_t)left) * (size_t)c;
      double *dst = scratch + ((size_t)y * (size_t)W + (size_t)x) * (size_t)c;
      for (int q = 0; q < c; q++) {
        double s = 0;
        for (int t = 0; t < k; t++) s += wt[t] * row[(size_t)j[t] * (size_t)c + (size_t)q];
        dst[q] = s;
      }
    }
  }
  /* Columns: ch rows to H, rounded. */
  for (int y = 0; y < H; y++) {
    int k = axis_weights(y, ch, H, j, wt);
    for (size_t x = 0; x < (size_t)W * (size_t)c; x++) {
      double s = 0;
      for (int t = 0; t < k; t++) s += wt[t] * scratch[(size_t)j[t] * (size_t)W * (size_t)c + x];
      long v = lround(s);
      out[(size_t)y * (size_t)W * (size_t)c + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
  free(wt);
  free(j);
}
