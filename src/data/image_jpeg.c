/* image_jpeg.c: JPEG files from memory through libjpeg-turbo (image.h): greyscale or RGB pixels with
 * libjpeg's defaults (accurate integer DCT, fancy upsampling), the settings Pillow decodes with.
 * Never exits on a bad file: libjpeg's fatal errors come back through setjmp, and its warnings about
 * damaged data (a truncated file above all, which libjpeg would fill with grey) are errors too; only
 * "extraneous bytes before a marker", which changes no pixel, is let through. */
#include <setjmp.h>
#include <stdio.h>
/* jpeglib.h needs size_t and FILE first */
#include <jerror.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
  jpeg_err *e = (jpeg_err *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, e->msg);
  longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0 || cinfo->err->msg_code == JWRN_EXTRANEOUS_DATA) return; /* trace, or harmless */
  on_error(cinfo);
}

static int jpeg_run(const uint8_t *buf, size_t len, vae_image_info *info, vae_pixels *out, char *err) {
  struct jpeg_decompress_struct cinfo;
  jpeg_err e;
  memset(&e, 0, sizeof e);
  cinfo.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = on_error;
  e.pub.emit_message = on_message;
  if (setjmp(e.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return vae_err(err, "corrupt JPEG (libjpeg: %s)", e.msg);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, buf, (unsigned long)len);
  jpeg_read_header(&cinfo, TRUE);
  info->format = VAE_IMAGE_JPEG;
  info->width = (int)cinfo.image_width;
  info->height = (int)cinfo.image_height;
  info->alpha = 0;
  J_COLOR_SPACE cs = cinfo.jpeg_color_space;
  info->colour = cs != JCS_GRAYSCALE;
  int rc = 0;
  if (cs == JCS_CMYK || cs == JCS_YCCK)
    rc = vae_err(err,
                 "a %s JPEG (4 ink channels): only greyscale and RGB JPEGs are read; convert it to RGB "
                 "(for example: convert FILE -colorspace sRGB FILE)",
                 cs == JCS_CMYK ? "CMYK" : "YCCK");
  else if (cs != JCS_GRAYSCALE && cs != JCS_YCbCr && cs != JCS_RGB)
    rc = vae_err(err,
                 "a JPEG with %d colour components in an unknown colour space: only greyscale and RGB "
                 "JPEGs are read",
                 cinfo.num_components);
  else if ((long)info->width * (long)info->height > VAE_IMAGE_MAX_PIXELS)
    rc = vae_err(err, "the JPEG is %dx%d pixels, more than the %ld million vae_mpi decodes; shrink it first",
                 info->width, info->height, VAE_IMAGE_MAX_PIXELS / 1000000);
  if (rc == 0 && out) {
    cinfo.out_color_space = cs == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    vae_pixels_reserve(out, stride * cinfo.output_height);
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out->px + (size_t)cinfo.output_scanline * stride;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    out->w = (int)cinfo.output_width;
    out->h = (int)cinfo.output_height;
    out->ch = cinfo.output_components;
    jpeg_finish_decompress(&cinfo); /* reads to EOI: a file cut after the last scan is caught here */
  }
  jpeg_destroy_decompress(&cinfo);
  return rc;
}

int vae_jpeg_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err) {
  return jpeg_run(buf, len, info, NULL, err);
}

int vae_jpeg_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err) {
  vae_image_info info;
  return jpeg_run(buf, len, &info, out, err);
}
