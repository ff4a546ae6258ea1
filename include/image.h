/* image.h: one PNG or JPEG file, from its bytes to 8-bit pixels, and the pixel operations of
 * `vae_mpi import-images`: alpha compositing, RGB or grey, centre crop and resize.
 *
 * Decoding (image_png.c through libpng, image_jpeg.c through libjpeg-turbo) works on a file's bytes in
 * memory and never exits or crashes on a bad file: every failure is a one-line message in err
 * (VAE_ERR_LEN bytes) without the file name (the caller adds it). Decoded pixels are 8 bits per
 * value, rows top to bottom, ch values per pixel: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. PNG: every
 * bit depth and colour type (palettes and tRNS transparency expanded, 16 bits scaled to 8 as
 * round(v / 257), interlaced or not; gamma and colour profiles are not applied, as Pillow). JPEG:
 * greyscale and YCbCr/RGB colour; CMYK and YCCK are refused. Thread-safe: no shared state. */
#ifndef VAE_IMAGE_H
#define VAE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest image decoded: width x height (Pillow warns at 89 million pixels and refuses twice that). */
#define VAE_IMAGE_MAX_PIXELS (1L << 27)

typedef enum { VAE_IMAGE_PNG = 1, VAE_IMAGE_JPEG = 2 } vae_image_format;

typedef struct {
  vae_image_format format;
  int width, height;
  int colour; /* PNG RGB, RGBA or palette; JPEG with 3 components. 0: greyscale */
  int alpha;  /* an alpha channel or tRNS transparency */
} vae_image_info;

typedef struct {
  uint8_t *px; /* w * h * ch bytes, owned (grown by the decoders; free with vae_pixels_free) */
  size_t cap;
  int w, h, ch;
} vae_pixels;

/* The header only: format (from the bytes, never the file name), size and colour. A file that is not
 * a PNG or a JPEG is named for what it looks like (text, GIF, an empty file, ...). */
int vae_image_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err);
/* The whole image. */
int vae_image_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err);
void vae_pixels_free(vae_pixels *p);

/* The format decoders behind the two calls above (buf starts with the format's signature). */
int vae_png_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err);
int vae_png_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err);
int vae_jpeg_probe(const uint8_t *buf, size_t len, vae_image_info *info, char *err);
int vae_jpeg_decode(const uint8_t *buf, size_t len, vae_pixels *out, char *err);
/* Grows out->px to n bytes (internal to the decoders). */
void vae_pixels_reserve(vae_pixels *out, size_t n);

/* ---- pixel operations (image_pixels.c) ---- */

/* in (ch 1..4) to out (w * h * c bytes, c 1 or 3): alpha composited onto the grey level bg as
 * round((a v + (255 - a) bg) / 255); grey to RGB by copying, RGB to grey by ITU-R 601 luma
 * round(0.299 R + 0.587 G + 0.114 B). */
void vae_pixels_to_channels(const vae_pixels *in, int c, uint8_t bg, uint8_t *out);

/* The largest centred region of an h x w image with the aspect ratio of H x W: its height ch and
 * width cw (the other side rounded to nearest), and its corner as torchvision's CenterCrop places it,
 * top = round((h - ch) / 2) with ties to even. */
void vae_center_crop(int h, int w, int H, int W, int *top, int *left, int *ch, int *cw);

/* Resizes the region (top, left, ch, cw) of in (h x w, c channels, rows of w * c bytes) to out
 * (H x W x c): per axis, an area average when shrinking (each output pixel is the mean of the input
 * area it covers, partial pixels weighted by their overlap), bilinear interpolation between pixel
 * centres when enlarging (half-pixel centres, edges clamped: PyTorch's align_corners=False), a copy
 * when equal; computed in double precision and rounded to nearest. scratch: ch * W * c doubles. */
void vae_resize(const uint8_t *in, int w, int c, int top, int left, int ch, int cw, uint8_t *out, int H,
                int W, double *scratch);

#endif
