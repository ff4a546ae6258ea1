/* fuzz_image.c: libFuzzer harness for import-images' decoders (image.h): every input is probed and
 * decoded as a PNG or JPEG from memory, then converted to grey and RGB and resized to 5x7 and 40x24.
 * Contract checked: decoding succeeds only where probing did, with the probed size, 1..4 values per
 * pixel and at most VAE_IMAGE_MAX_PIXELS; every failure carries a message. Never an abort, a
 * sanitizer report, a read out of bounds, or a hang (libjpeg's warnings are errors, libpng's limits on). */
#include "fuzz_common.h"

#include "error.h"
#include "image.h"

static void convert_and_resize(const vae_pixels *px) {
  static const int target[2][2] = {{5, 7}, {40, 24}};
  size_t n = (size_t)px->w * (size_t)px->h;
  for (int c = 1; c <= 3; c += 2) {
    uint8_t *conv = malloc(n * (size_t)c);
    FUZZ_ASSERT(conv != NULL, "out of memory for %zu pixels", n);
    vae_pixels_to_channels(px, c, 255, conv);
    for (int t = 0; t < 2; t++) {
      int H = target[t][0], W = target[t][1], top, left, ch, cw;
      vae_center_crop(px->h, px->w, H, W, &top, &left, &ch, &cw);
      FUZZ_ASSERT(top >= 0 && left >= 0 && ch >= 1 && cw >= 1 && top + ch <= px->h && left + cw <= px->w,
                  "crop (%d, %d, %d, %d) outside %dx%d", top, left, ch, cw, px->h, px->w);
      uint8_t *out = malloc((size_t)H * (size_t)W * (size_t)c);
      double *scratch = malloc((size_t)ch * (size_t)W * (size_t)c * sizeof *scratch);
      FUZZ_ASSERT(out && scratch, "out of memory");
      vae_resize(conv, px->w, c, top, left, ch, cw, out, H, W, scratch);
      free(scratch);
      free(out);
    }
    free(conv);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)fuzz_write_temp; /* the decoders read memory: no temporary file */
  char err[VAE_ERR_LEN] = "";
  vae_image_info info;
  int probed = vae_image_probe(data, size, &info, err);
  FUZZ_ASSERT(probed == 0 || (probed == -1 && err[0]), "probe rc %d without a message", probed);
  if (probed == 0)
    FUZZ_ASSERT(info.width >= 1 && info.height >= 1 && (long)info.width * info.height <= VAE_IMAGE_MAX_PIXELS,
                "probed size %dx%d", info.width, info.height);
  vae_pixels px = {0};
  err[0] = '\0';
  int rc = vae_image_decode(data, size, &px, err);
  FUZZ_ASSERT(rc == 0 || (rc == -1 && err[0]), "decode rc %d without a message", rc);
  if (rc == 0) {
    FUZZ_ASSERT(probed == 0, "decoded what the probe refused (%s)", err);
    FUZZ_ASSERT(px.w == info.width && px.h == info.height, "decoded %dx%d, probed %dx%d", px.w, px.h,
                info.width, info.height);
    FUZZ_ASSERT(px.ch >= 1 && px.ch <= 4, "%d values per pixel", px.ch);
    FUZZ_ASSERT(px.ch == 1 + 2 * info.colour + info.alpha, "%d values per pixel for colour %d alpha %d",
                px.ch, info.colour, info.alpha);
    convert_and_resize(&px);
  }
  vae_pixels_free(&px);
  return 0;
}
