/* image_png.c: PNG files from memory through libpng (image.h): the header, and the pixels expanded to
 * 8 bits per value. Never exits on a bad file: libpng's errors come back through setjmp as a message.
 * Warnings (an incorrect colour profile, a bad ancillary chunk) are ignored, as Pillow does. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"

typedef struct {
  const uint8_t *buf;
  size_t len, pos;
  char msg[200];
} png_src;

static void on_error(png_structp png, png_const_charp msg) {
  png_src *s = png_get_error_ptr(png);
  if (!s->msg[0]) snprintf(s->msg, sizeof s->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void on_read(png_structp png, png_bytep out, size_t n) {
  png_src *s = png_get_io_ptr(png);
  if (n > s->len - s->pos) {
    snprintf(s->msg, sizeof s->msg, "truncated file (%zu bytes; it ends inside the image)", s->len);
    png_error(png, s->msg);
  }
  memcpy(out, s->buf + s->pos, n);
  s->pos += n;
}

/* Reads the header of s into (png, info) and fills *info. Called after setjmp by both entry points. */
static int read_header(png_structp png, png_infop pinfo, vae_image_info *info, char *err) {
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_read_info(png, pinfo);
  png_uint_32 w = png_get_image_width(png, pinfo), h = png_get_image_height(png, pinfo);
  int type = png_get_color_type(png, pinfo);
  info->format = VAE_IMAGE_PNG;
  info->width = (int)w;
  info->height = (int)h;
  info->colour = (type & PNG_COLOR_MASK_COLOR) != 0;
  info->alpha = (type & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, pinfo, PNG_INFO_tRNS);
  if ((long)w * (long)h > VAE_IMAGE_MAX_PIXELS)
    return vae_err(err, "the PNG is %ux%u pixels, more than the %ld million vae_mpi decodes; shrink it first",
                   (unsigned)w, (unsigned)h, VAE_IMAGE_MAX_PIXELS / 1000000);
  return 0;
}

/* One function for probe (out == NULL) and decode: the setjmp must stay in the frame that calls libpng. */
static int png_run(const uint8_t *buf, size_t len, vae_image_info *info, vae_pixels *out, char *err) {
  png_src s = {buf, len, 0, ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
  png_infop pinfo = png ? png_create_info_struct(png) : NULL;
  png_bytep *volatile rows = NULL;
  if (!pinfo) {
    png_destroy_read_struct(&png, NULL, NULL);
    return vae_err(err, "out of memory starting libpng");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(rows);
    return vae_err(err, "corrupt PNG (libpng: %s)", s.msg[0] ? s.msg : "unknown error");
  }
  png_set_read_fn(png, &s, on_read);
  int rc = read_header(png, pinfo, info, err);
  if (rc == 0 && out) {
    png_set_expand(png);   /* palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha */
    png_set_scale_16(png); /* 16 bits -> 8, rounded: (v * 255 + 32895) >> 16 */
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    int w = info->width, h = info->height, ch = png_get_channels(png, pinfo);
    size_t stride = png_get_rowbytes(png, pinfo);
    if (stride != (size_t)w * (size_t)ch) {
      png_destroy_read_struct(&png, &pinfo, NULL);
      return vae_err(err, "internal: libpng row of %zu bytes for %d pixels of %d values", stride, w, ch);
    }
    vae_pixels_reserve(out, stride * (size_t)h);
    rows = mallocCheck((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = out->px + (size_t)y * stride;
    png_read_image(png, rows); /* the passes of an interlaced image are combined here */
    out->w = w;
    out->h = h;
    out->ch = ch;
  }
  png_destroy_read_struct(&png, &pinfo, NULL);
  free(rows);
  return rc;
}

int vae_png_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err) {
  return png_run(buf, len, info, NULL, err);
}

int vae_png_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err) {
  vae_image_info info;
  return png_run(buf, len, &info, out, err);
}
