/* image_grid.c: image grids rendered to 8-bit pixels and written as PNG through libpng.
 * Never crashes or exits on a libpng failure (setjmp catches it) and never leaves a partial file at
 * the final path (core/durable_file.c: temporary name, fsync, rename, folder fsync). */
#include "image_grid.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable_file.h"
#include "error.h"

#define GRID_MAX_SIDE 1000000 /* libpng's default user limit on width and height */

void vae_grid_tile_shape(int in_h, int in_w, int in_c, int *h, int *w) {
  *h = in_h;
  *w = in_w;
  if (in_h == 1) {
    int r = (int)lround(sqrt((double)in_w));
    if ((long)r * r == in_w) *h = *w = r;
  }
  (void)in_c;
}

void vae_grid_size(int n, int cols, int h, int w, int *width, int *height) {
  int rows = (n + cols - 1) / cols;
  *width = cols * (w + 1) + 1;
  *height = rows * (h + 1) + 1;
}

int vae_grid_cols(int n) {
  int c = (int)ceil(sqrt((double)n));
  return c < 1 ? 1 : c;
}

static uint8_t to_byte(float v) {
  if (!(v > 0.0f)) return 0; /* also NaN */
  if (v >= 1.0f) return 255;
  return (uint8_t)(v * 255.0f + 0.5f);
}

void vae_grid_render(uint8_t *pixels, const float *const *tiles, int n, int cols, int h, int w, int c) {
  int width, height;
  vae_grid_size(n, cols, h, w, &width, &height);
  const int ch = c == 3 ? 3 : 1;
  memset(pixels, VAE_GRID_BORDER, (size_t)width * (size_t)height * (size_t)ch);
  for (int i = 0; i < n; i++) {
    if (!tiles[i]) continue;
    size_t x0 = (size_t)(i % cols) * (size_t)(w + 1) + 1, y0 = (size_t)(i / cols) * (size_t)(h + 1) + 1;
    for (int y = 0; y < h; y++) {
      uint8_t *dst = pixels + ((y0 + (size_t)y) * (size_t)width + x0) * (size_t)ch;
      const float *src = tiles[i] + (size_t)y * (size_t)w * (size_t)c;
      for (int x = 0; x < w; x++)
        for (int k = 0; k < ch; k++) dst[(size_t)x * ch + k] = to_byte(src[(size_t)x * c + k]);
    }
  }
}

/* libpng reports errors here: keep the message, jump back to vae_grid_write_png's setjmp. */
static void png_error_fn(png_structp png, png_const_charp msg) {
  char *err = png_get_error_ptr(png);
  snprintf(err, 256, "%s", msg);
  png_longjmp(png, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Writes width x height pixels to an open file; 0, or -1 with libpng's message in msg (256 bytes). */
static int write_png_file(FILE *f, const uint8_t *pixels, int width, int height, int ch, png_bytep *rows,
                          char *msg) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, png_error_fn, png_warning_fn);
  if (!png) return -1;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)width * (size_t)ch);
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

int vae_grid_write_png(const char *path, const float *const *tiles, int n, int cols, int h, int w, int c,
                       char *err) {
  if (n < 1 || cols < 1 || h < 1 || w < 1 || c < 1)
    return vae_err(err, "cannot write %s: an image grid needs at least one tile of at least 1x1 pixels",
                   path);
  int rows_n = (n + cols - 1) / cols;
  if ((long)cols * (w + 1) + 1 > GRID_MAX_SIDE || (long)rows_n * (h + 1) + 1 > GRID_MAX_SIDE)
    return vae_err(
        err,
        "cannot write %s: a grid of %d x %d tiles of %dx%d pixels exceeds PNG's %d-pixel side limit; ask for fewer images",
        path, rows_n, cols, h, w, GRID_MAX_SIDE);
  int width, height;
  vae_grid_size(n, cols, h, w, &width, &height);
  const int ch = c == 3 ? 3 : 1;
  vae_durable d;
  FILE *f = vae_durable_fopen(&d, path, "PNG", err);
  if (!f) return -1;
  uint8_t *pixels = mallocCheck((size_t)width * (size_t)height * (size_t)ch);
  png_bytep *rows = mallocCheck((size_t)height * sizeof *rows);
  vae_grid_render(pixels, tiles, n, cols, h, w, c);
  char msg[256] = "libpng could not start";
  int rc = write_png_file(f, pixels, width, height, ch, rows, msg);
  free(rows);
  free(pixels);
  if (rc != 0) { /* libpng's message; a failed write of the stream says its errno instead */
    int e = ferror(f) ? errno : 0;
    fclose(f);
    return vae_durable_fail(&d, e, msg, err);
  }
  return vae_durable_fclose_publish(&d, f, err);
}
