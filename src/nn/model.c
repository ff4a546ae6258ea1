/* model.c: the VAE's configuration: its checks, the decoder's names, a one-line description. Never
 * lays out parameters (net.c) and never computes activations (vae.c). */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

size_t vae_input_dim(const vae_config *c) { return (size_t)c->in_h * (size_t)c->in_w * (size_t)c->in_c; }

int vae_decoder_heads(const vae_config *c) { return c->decoder == VAE_DEC_GAUSSIAN_LEARNED ? 2 : 1; }

vae_config vae_config_default(int in_h, int in_w, int in_c) {
  return (vae_config){.in_h = in_h,
                      .in_w = in_w,
                      .in_c = in_c,
                      .kernel = 4,
                      .stride = 2,
                      .padding = 1,
                      .n_hidden = 1,
                      .hidden = {400},
                      .latent = 20,
                      .decoder = VAE_DEC_BERNOULLI,
                      .sigma = 1.0f,
                      .logvar_min = VAE_DEFAULT_LOGVAR_MIN};
}

int vae_config_validate_flags(const vae_config *c, char *err) {
  if (c->n_hidden < 0 || c->n_hidden > VAE_MAX_HIDDEN)
    return vae_err(err, "--hidden takes 0 to %d widths, got %d", VAE_MAX_HIDDEN, c->n_hidden);
  for (int i = 0; i < c->n_hidden; i++)
    if (c->hidden[i] < 1 || c->hidden[i] > VAE_MAX_WIDTH)
      return vae_err(err, "--hidden widths must be from 1 to %d, got %d", VAE_MAX_WIDTH, c->hidden[i]);
  if (c->latent < 1 || c->latent > VAE_MAX_WIDTH)
    return vae_err(err, "--latent must be from 1 to %d, got %d", VAE_MAX_WIDTH, c->latent);
  if (c->decoder != VAE_DEC_BERNOULLI && c->decoder != VAE_DEC_GAUSSIAN &&
      c->decoder != VAE_DEC_GAUSSIAN_LEARNED)
    return vae_err(err, "unknown decoder %d", (int)c->decoder);
  if (!(c->sigma > 0.0f) || !isfinite(c->sigma))
    return vae_err(err, "--sigma must be a positive number, got %g", (double)c->sigma);
  /* the learned-variance loss needs exp(-logvar_min) as a finite float (loss.c) */
  if (!(c->logvar_min >= -80.0f && c->logvar_min <= 80.0f))
    return vae_err(err, "--logvar-min must be in [-80, 80], got %g", (double)c->logvar_min);
  if (c->n_conv < 0 || c->n_conv > VAE_MAX_CONV)
    return vae_err(err, "--conv takes 0 to %d layers, got %d", VAE_MAX_CONV, c->n_conv);
  for (int i = 0; i < c->n_conv; i++)
    if (c->conv[i] < 1 || c->conv[i] > VAE_MAX_WIDTH)
      return vae_err(err, "--conv channel counts must be from 1 to %d, got %d", VAE_MAX_WIDTH, c->conv[i]);
  if (c->n_conv == 0) return 0; /* the MLP: kernel, stride and padding unused */
  if (c->kernel < 1 || c->kernel > VAE_MAX_KERNEL)
    return vae_err(err, "--kernel must be from 1 to %d, got %d", VAE_MAX_KERNEL, c->kernel);
  if (c->stride < 1 || c->stride > VAE_MAX_KERNEL)
    return vae_err(err, "--stride must be from 1 to %d, got %d", VAE_MAX_KERNEL, c->stride);
  if (c->padding < 0 || c->padding >= c->kernel)
    return vae_err(err, "--padding must be from 0 to --kernel - 1 = %d, got %d", c->kernel - 1, c->padding);
  return 0;
}

int vae_conv_out_size(const vae_config *c, int in) {
  int span = in + 2 * c->padding - c->kernel;
  return span < 0 ? 0 : span / c->stride + 1;
}

int vae_convt_out_pad(const vae_config *c, int big, int small) {
  return big - ((small - 1) * c->stride - 2 * c->padding + c->kernel);
}

/* The conv trunk's sizes, layer by layer, from the image down: each conv's output at least 1 x 1, and
 * the transposed conv mirroring it able to give its input size back (output_padding < stride, as
 * PyTorch requires). */
static int validate_conv_geometry(const vae_config *c, char *err) {
  int h = c->in_h, w = c->in_w;
  for (int i = 0; i < c->n_conv; i++) {
    int oh = vae_conv_out_size(c, h), ow = vae_conv_out_size(c, w);
    if (oh < 1 || ow < 1)
      return vae_err(
          err,
          "--conv layer %d gets a %dx%d input, too small for --kernel %d with --padding %d (its output "
          "would be below 1x1): use fewer --conv layers, a smaller --kernel or more --padding",
          i + 1, h, w, c->kernel, c->padding);
    int ph = vae_convt_out_pad(c, h, oh), pw = vae_convt_out_pad(c, w, ow);
    if (ph < 0 || ph >= c->stride || pw < 0 || pw >= c->stride)
      return vae_err(
          err,
          "--conv layer %d (%dx%d -> %dx%d): the mirroring transposed conv would need output_padding "
          "%dx%d, outside 0 to --stride - 1 = %d; change --kernel, --stride or --padding",
          i + 1, h, w, oh, ow, ph, pw, c->stride - 1);
    h = oh, w = ow;
  }
  size_t flat = (size_t)h * (size_t)w * (size_t)c->conv[c->n_conv - 1];
  if (flat > (1u << 24))
    return vae_err(err, "the last --conv layer gives %dx%dx%d = %zu values, more than the 16M supported", h,
                   w, c->conv[c->n_conv - 1], flat);
  /* the widest im2col row set of one image must stay a GEMM dimension (int) */
  size_t rows = 0;
  h = c->in_h, w = c->in_w;
  for (int i = 0; i < c->n_conv; i++) {
    int oh = vae_conv_out_size(c, h), ow = vae_conv_out_size(c, w), cin = i ? c->conv[i - 1] : c->in_c;
    size_t r =
        (size_t)oh * ow * (size_t)c->kernel * c->kernel * (size_t)(cin > c->conv[i] ? cin : c->conv[i]);
    rows = r > rows ? r : rows;
    h = oh, w = ow;
  }
  if (rows * (size_t)vae_decoder_heads(c) > (1u << 28))
    return vae_err(err,
                   "the --conv layers need %zu im2col values per image, more than the 256M supported; use a "
                   "smaller --kernel or fewer channels",
                   rows);
  return 0;
}

int vae_config_validate(const vae_config *c, char *err) {
  if (c->in_h < 1 || c->in_w < 1 || c->in_c < 1)
    return vae_err(err, "input shape %dx%dx%d is not positive", c->in_h, c->in_w, c->in_c);
  if (vae_input_dim(c) > (1u << 24))
    return vae_err(err, "input of %zu values per image is larger than the 16M this model supports",
                   vae_input_dim(c));
  if (vae_config_validate_flags(c, err) < 0) return -1;
  return c->n_conv > 0 ? validate_conv_geometry(c, err) : 0;
}

const char *vae_decoder_name(vae_decoder d) {
  switch (d) {
    case VAE_DEC_BERNOULLI: return "bernoulli";
    case VAE_DEC_GAUSSIAN: return "gaussian";
    case VAE_DEC_GAUSSIAN_LEARNED: return "gaussian-learned";
  }
  return "unknown";
}

int vae_decoder_parse(const char *s, vae_decoder *d) {
  static const vae_decoder all[3] = {VAE_DEC_BERNOULLI, VAE_DEC_GAUSSIAN, VAE_DEC_GAUSSIAN_LEARNED};
  for (int i = 0; i < 3; i++)
    if (strcmp(s, vae_decoder_name(all[i])) == 0) {
      *d = all[i];
      return 0;
    }
  return -1;
}

void vae_describe(const vae_config *c, char *buf, size_t n) {
  size_t used = 0;
#define PUT(...) \
  if (used < n) used += (size_t)snprintf(buf + used, n - used, __VA_ARGS__)
  if (c->n_conv > 0) {
    PUT("%dx%dx%d", c->in_h, c->in_w, c->in_c);
    for (int i = 0; i < c->n_conv; i++) PUT("-c%d", c->conv[i]);
  } else {
    PUT("%zu", vae_input_dim(c));
  }
  for (int i = 0; i < c->n_hidden; i++) PUT("-%d", c->hidden[i]);
  PUT("-%d", c->latent);
  for (int i = c->n_hidden - 1; i >= 0; i--) PUT("-%d", c->hidden[i]);
  if (c->n_conv > 0) {
    for (int i = c->n_conv - 1; i >= 0; i--) PUT("-t%d", i ? c->conv[i - 1] : c->in_c);
    PUT("-%dx%dx%d (k%d s%d p%d)", c->in_h, c->in_w, c->in_c, c->kernel, c->stride, c->padding);
  } else {
    PUT("-%zu", vae_input_dim(c));
  }
#undef PUT
}
