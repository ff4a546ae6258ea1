/* test_image_grid.c: PNG grids written by image_grid.c and read back with libpng's own reader:
 * size, color type and bit depth, border and empty-slot pixels, and every tile pixel exactly
 * (clipping to [0, 1], round to nearest, NaN as 0); the tile shape of flat data; the refusals. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "image_grid.h"

/* The value a test tile holds at (i, y, x, k): every byte value, out-of-range values and NaN. */
static float tile_value(int i, int y, int x, int k) {
  int v = (i * 37 + y * 11 + x * 5 + k * 101) % 300;
  if (v == 299) return NAN;
  if (v >= 256) return v == 298 ? -0.25f : 1.0f + (float)(v - 256) * 0.1f; /* clipped */
  return (float)v / 255.0f + (v % 3 == 0 ? 0.45f / 255.0f : v % 3 == 1 ? -0.45f / 255.0f : 0.0f);
}

/* The expected byte, computed independently in double. */
static int expected_byte(float f) {
  if (isnan(f) || f <= 0) return 0;
  if (f >= 1) return 255;
  return (int)floor((double)f * 255.0 + 0.5);
}

/* Reads path with libpng; returns pixels (caller frees) and the header fields. */
static unsigned char *read_png(const char *path, int *w, int *h, int *color, int *depth) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return NULL;
  }
  png_init_io(png, f);
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  *w = (int)png_get_image_width(png, info);
  *h = (int)png_get_image_height(png, info);
  *color = png_get_color_type(png, info);
  *depth = png_get_bit_depth(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  png_bytepp rows = png_get_rows(png, info);
  unsigned char *px = malloc(rowbytes * (size_t)*h);
  for (int y = 0; y < *h; y++) memcpy(px + (size_t)y * rowbytes, rows[y], rowbytes);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
  return px;
}

/* Writes n tiles of (th, tw, c) in cols columns (tile `hole` left empty) and checks every pixel. */
static void roundtrip(const char *path, int n, int cols, int th, int tw, int c, int hole) {
  size_t tsz = (size_t)th * tw * c;
  float *data = malloc((size_t)n * tsz * sizeof *data);
  const float **tiles = malloc((size_t)n * sizeof *tiles);
  for (int i = 0; i < n; i++) {
    for (int y = 0; y < th; y++)
      for (int x = 0; x < tw; x++)
        for (int k = 0; k < c; k++) data[i * tsz + ((size_t)y * tw + x) * c + k] = tile_value(i, y, x, k);
    tiles[i] = i == hole ? NULL : data + i * tsz;
  }
  char err[1024] = "";
  int rc = vae_grid_write_png(path, tiles, n, cols, th, tw, c, err);
  CHECK(rc == 0, "write %s: %s", path, err);
  int W, H, color, depth;
  unsigned char *px = read_png(path, &W, &H, &color, &depth);
  CHECK(px != NULL, "%s: libpng could not read it back", path);
  if (!px) return;
  int rows = (n + cols - 1) / cols, ch = c == 3 ? 3 : 1;
  CHECK(W == cols * (tw + 1) + 1 && H == rows * (th + 1) + 1, "%s: %dx%d for %d x %d tiles of %dx%d", path, W,
        H, rows, cols, th, tw);
  CHECK(color == (c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY) && depth == 8,
        "%s: color type %d depth %d", path, color, depth);
  int bad_border = 0, bad_tile = 0, bad_empty = 0, first_bad = -1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int k = 0; k < ch; k++) {
        int got = px[((size_t)y * W + x) * ch + k];
        int tx = (x - 1) % (tw + 1), ty = (y - 1) % (th + 1);
        int slot = ((y - 1) / (th + 1)) * cols + (x - 1) / (tw + 1);
        if (x == 0 || y == 0 || tx == tw || ty == th) {
          bad_border += got != VAE_GRID_BORDER;
        } else if (slot >= n || slot == hole) {
          bad_empty += got != VAE_GRID_BORDER;
        } else {
          int want = expected_byte(data[slot * tsz + ((size_t)ty * tw + tx) * c + k]); /* k < c */
          if (got != want && first_bad < 0) first_bad = (y * W + x) * ch + k;
          bad_tile += got != want;
        }
      }
  CHECK(bad_border == 0, "%s: %d border pixels not %d", path, bad_border, VAE_GRID_BORDER);
  CHECK(bad_empty == 0, "%s: %d empty-slot pixels not %d", path, bad_empty, VAE_GRID_BORDER);
  CHECK(bad_tile == 0, "%s: %d tile values wrong (first at byte %d)", path, bad_tile, first_bad);
  free(px);
  free(tiles);
  free(data);
}

int main(void) {
  /* Grayscale, an odd count (7 tiles in 3 columns: two empty slots at the end, one NULL tile). */
  roundtrip("grid_gray.png", 7, 3, 5, 4, 1, 2);
  /* RGB, odd count and non-square tiles. */
  roundtrip("grid_rgb.png", 5, vae_grid_cols(5), 3, 6, 3, -1);
  /* C = 2: the first channel as grayscale. */
  roundtrip("grid_c2.png", 3, 2, 4, 4, 2, -1);
  /* One tile of 1x1. */
  roundtrip("grid_one.png", 1, 1, 1, 1, 1, -1);
  /* The expected values include clipping, NaN and both rounding directions. */
  CHECK(expected_byte(tile_value(0, 0, 0, 0)) == 0, "tile value 0");
  CHECK(expected_byte(1.7f) == 255 && expected_byte(-0.25f) == 0 && expected_byte(NAN) == 0, "clips");
  CHECK(expected_byte(3.45f / 255.0f) == 3 && expected_byte(3.55f / 255.0f) == 4, "rounding");

  /* Tile shapes: a flat (N, D) row with D a perfect square becomes sqrt(D) x sqrt(D). */
  int h, w;
  vae_grid_tile_shape(1, 784, 1, &h, &w);
  CHECK(h == 28 && w == 28, "784 -> %dx%d", h, w);
  vae_grid_tile_shape(1, 10, 1, &h, &w);
  CHECK(h == 1 && w == 10, "10 -> %dx%d", h, w);
  vae_grid_tile_shape(32, 32, 3, &h, &w);
  CHECK(h == 32 && w == 32, "32x32x3 -> %dx%d", h, w);
  CHECK(vae_grid_cols(64) == 8 && vae_grid_cols(65) == 9 && vae_grid_cols(1) == 1 && vae_grid_cols(3) == 2,
        "cols %d %d %d", vae_grid_cols(64), vae_grid_cols(65), vae_grid_cols(3));
  int W, H;
  vae_grid_size(64, 8, 28, 28, &W, &H);
  CHECK(W == 233 && H == 233, "64 tiles of 28x28: %dx%d", W, H);

  /* Refusals: a folder that does not exist, zero tiles, an absurd size; nothing is left behind. */
  float one = 0.5f;
  const float *t1[1] = {&one};
  char err[1024] = "";
  CHECK(vae_grid_write_png("no-such-dir/x.png", t1, 1, 1, 1, 1, 1, err) == -1 &&
            strstr(err, "no-such-dir/x.png"),
        "missing folder: '%s'", err);
  CHECK(vae_grid_write_png("zero.png", t1, 0, 1, 1, 1, 1, err) == -1 && access("zero.png", F_OK) != 0,
        "zero tiles");
  CHECK(vae_grid_write_png("huge.png", t1, 1, 1, 2000000, 1, 1, err) == -1 && strstr(err, "limit") &&
            access("huge.png", F_OK) != 0,
        "huge: '%s'", err);
  /* A read-only folder (skipped when running as root, which may write anyway). */
  mkdir("ro_dir", 0755);
  chmod("ro_dir", 0555);
  if (access("ro_dir", W_OK) != 0)
    CHECK(vae_grid_write_png("ro_dir/x.png", t1, 1, 1, 1, 1, 1, err) == -1 && strstr(err, "ro_dir/x.png"),
          "read-only");
  chmod("ro_dir", 0755);
  return check_done("test_image_grid");
}
