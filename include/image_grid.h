/* image_grid.h: grids of images written as 8-bit PNG files through libpng (atomically: a temporary
 * file in the same folder, renamed into place).
 *
 * Tiles are (h, w, c) float images in (H, W, C) order, values clipped to [0, 1] and scaled to 0..255
 * rounding to nearest (NaN counts as 0). c == 1 writes grayscale, c == 3 RGB; any other c shows its
 * first channel as grayscale. Every tile is framed by a 1-pixel border of grey VAE_GRID_BORDER (also
 * around the outside), so a grid of R x C tiles is (C (w + 1) + 1) x (R (h + 1) + 1) pixels; an
 * empty slot (a NULL tile, or the slots after the last tile) is filled with the border grey. */
#ifndef VAE_IMAGE_GRID_H
#define VAE_IMAGE_GRID_H

#include <stdint.h>

#define VAE_GRID_BORDER 128 /* grey level of borders and empty slots, every channel */

/* The tile shape for images of input shape (in_h, in_w, in_c): the same, except that a flat
 * (N, D) dataset (in_h == 1) whose D is a perfect square is shown as sqrt(D) x sqrt(D). */
void vae_grid_tile_shape(int in_h, int in_w, int in_c, int *h, int *w);

/* Pixel size of a grid of n tiles, cols per row. */
void vae_grid_size(int n, int cols, int h, int w, int *width, int *height);

/* A good number of columns for n tiles: ceil(sqrt(n)). */
int vae_grid_cols(int n);

/* Renders the grid into rgb (width * height * channels bytes, channels = 3 when c == 3 else 1),
 * tiles[i] in row-major slot order (NULL = empty slot). For tests and for vae_grid_write_png. */
void vae_grid_render(uint8_t *pixels, const float *const *tiles, int n, int cols, int h, int w, int c);

/* Writes the grid to path as a PNG. 0, or -1 with a one-line message in err (VAE_ERR_LEN bytes):
 * bad sizes, a folder that cannot be written, or any libpng failure (caught with setjmp). On failure
 * nothing is left at path that was not there before. */
int vae_grid_write_png(const char *path, const float *const *tiles, int n, int cols, int h, int w, int c,
                       char *err);

#endif
