/* model.c: the VAE's configuration, its flat parameter layout (views and the named tensor table),
 * and PyTorch-style initialisation. Never computes activations: that is vae.c. */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "rng.h"

size_t vae_input_dim(const vae_config *c) { return (size_t)c->in_h * (size_t)c->in_w * (size_t)c->in_c; }

static int head_k(const vae_config *c) { return c->decoder == VAE_DEC_GAUSSIAN_LEARNED ? 2 : 1; }

int vae_config_validate(const vae_config *c, char *err) {
  if (c->in_h < 1 || c->in_w < 1 || c->in_c < 1)
    return vae_err(err, "input shape %dx%dx%d is not positive", c->in_h, c->in_w, c->in_c);
  if (vae_input_dim(c) > (1u << 24))
    return vae_err(err, "input of %zu values per image is larger than the 16M this MLP supports",
                   vae_input_dim(c));
  if (c->n_hidden < 0 || c->n_hidden > VAE_MAX_HIDDEN)
    return vae_err(err, "--hidden takes 0 to %d widths, got %d", VAE_MAX_HIDDEN, c->n_hidden);
  for (int i = 0; i < c->n_hidden; i++)
    if (c->hidden[i] < 1 || c->hidden[i] > 65536)
      return vae_err(err, "--hidden width %d is out of range (1 to 65536)", c->hidden[i]);
  if (c->latent < 1 || c->latent > 65536)
    return vae_err(err, "--latent %d is out of range (1 to 65536)", c->latent);
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

/* Walks the layout once; every consumer (views, tensor table, size) is derived from this walk so
 * the three can never disagree. */
typedef struct {
  vae_views *v;  /* may be NULL */
  float *buf;    /* may be NULL */
  vae_tensor *t; /* may be NULL */
  int nt;
  size_t off;
} layout_walk;

static void add_tensor(layout_walk *w, const char *name, int rows, int cols) {
  size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
  if (w->t) {
    vae_tensor *t = &w->t[w->nt];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = w->off;
    t->ndim = cols ? 2 : 1;
    t->dims[0] = rows;
    t->dims[1] = cols;
  }
  w->nt++;
  w->off += n;
}

/* A linear layer whose weight rows are split into named heads stacked in one (sum rows, in)
 * matrix, followed by the heads' biases in the same order. */
static void add_linear(layout_walk *w, vae_linear *lin, const char *prefix, const char *const *heads,
                       int nheads, int rows_each, int in) {
  char name[64];
  size_t w_off = w->off;
  for (int h = 0; h < nheads; h++) {
    snprintf(name, sizeof name, "%s%s/weight", prefix, heads[h]);
    add_tensor(w, name, rows_each, in);
  }
  size_t b_off = w->off;
  for (int h = 0; h < nheads; h++) {
    snprintf(name, sizeof name, "%s%s/bias", prefix, heads[h]);
    add_tensor(w, name, rows_each, 0);
  }
  if (lin) {
    lin->w = w->buf ? w->buf + w_off : NULL;
    lin->b = w->buf ? w->buf + b_off : NULL;
    lin->in = in;
    lin->out = rows_each * nheads;
  }
}

static void walk_layout(const vae_config *c, layout_walk *w) {
  int D = (int)vae_input_dim(c), L = c->latent, nh = c->n_hidden;
  vae_views *v = w->v;
  char name[32];
  int in = D;
  for (int i = 0; i < nh; i++) {
    snprintf(name, sizeof name, "hidden%d", i);
    const char *heads[1] = {name};
    add_linear(w, v ? &v->enc[i] : NULL, "encoder/", heads, 1, c->hidden[i], in);
    in = c->hidden[i];
  }
  const char *enc_heads[2] = {"mu", "logvar"};
  add_linear(w, v ? &v->enc_head : NULL, "encoder/", enc_heads, 2, L, in);
  in = L;
  for (int i = 0; i < nh; i++) {
    int width = c->hidden[nh - 1 - i];
    snprintf(name, sizeof name, "hidden%d", i);
    const char *heads[1] = {name};
    add_linear(w, v ? &v->dec[i] : NULL, "decoder/", heads, 1, width, in);
    in = width;
  }
  const char *dec_heads[2] = {"out", "logvar"};
  add_linear(w, v ? &v->dec_head : NULL, "decoder/", dec_heads, head_k(c), D, in);
  if (v) v->n_hidden = nh;
}

size_t vae_num_params(const vae_config *c) {
  layout_walk w = {0};
  walk_layout(c, &w);
  return w.off;
}

void vae_views_init(const vae_config *c, float *buf, vae_views *v) {
  memset(v, 0, sizeof *v);
  layout_walk w = {.v = v, .buf = buf};
  walk_layout(c, &w);
}

int vae_tensors(const vae_config *c, vae_tensor *t) {
  layout_walk w = {.t = t};
  walk_layout(c, &w);
  return w.nt;
}

void vae_init_params(const vae_config *c, float *params, uint64_t seed) {
  vae_tensor t[VAE_MAX_TENSORS];
  int n = vae_tensors(c, t);
  for (int i = 0; i < n; i++) {
    /* fan_in is the layer's input width: dims[1] of a weight; a bias takes its weight's fan_in,
     * found as the most recent weight with the same head prefix. */
    int fan_in = t[i].ndim == 2 ? t[i].dims[1] : 0;
    if (t[i].ndim == 1) {
      for (int j = i - 1; j >= 0; j--)
        if (t[j].ndim == 2 && t[j].dims[0] == t[i].dims[0]) {
          fan_in = t[j].dims[1];
          break;
        }
    }
    size_t len = (size_t)t[i].dims[0] * (size_t)(t[i].ndim == 2 ? t[i].dims[1] : 1);
    float *p = params + t[i].offset;
    vae_rng_uniform(p, len, seed, VAE_RNG_INIT, 0, (uint64_t)i, 0);
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t k = 0; k < len; k++) p[k] = (2.0f * p[k] - 1.0f) * bound;
  }
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
