/* model.c: the VAE's configuration: its checks, the decoder's names, a one-line description. Never
 * lays out parameters (net.c) and never computes activations (vae.c). */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

size_t vae_input_dim(const vae_config *c) { return (size_t)c->in_h * (size_t)c->in_w * (size_t)c->in_c; }

int vae_decoder_heads(const vae_config *c) { return c->decoder == VAE_DEC_GAUSSIAN_LEARNED ? 2 : 1; }

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
  return 0;
}

int vae_config_validate(const vae_config *c, char *err) {
  if (c->in_h < 1 || c->in_w < 1 || c->in_c < 1)
    return vae_err(err, "input shape %dx%dx%d is not positive", c->in_h, c->in_w, c->in_c);
  if (vae_input_dim(c) > (1u << 24))
    return vae_err(err, "input of %zu values per image is larger than the 16M this model supports",
                   vae_input_dim(c));
  return vae_config_validate_flags(c, err);
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
  size_t used = (size_t)snprintf(buf, n, "%zu", vae_input_dim(c));
  for (int i = 0; i < c->n_hidden && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "-%d", c->hidden[i]);
  if (used < n) used += (size_t)snprintf(buf + used, n - used, "-%d", c->latent);
  for (int i = c->n_hidden - 1; i >= 0 && used < n; i--)
    used += (size_t)snprintf(buf + used, n - used, "-%d", c->hidden[i]);
  if (used < n) snprintf(buf + used, n - used, "-%zu", vae_input_dim(c));
}
