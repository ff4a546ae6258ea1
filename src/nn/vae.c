/* vae.c: forward and backward of a batch through the VAE (the "vae.c" part of vae.h): workspace,
 * encoder, reparameterization, decoder, per-image loss terms, and backpropagation into a gradient
 * buffer, as one loop over the layer list (net.c) with one switch on the layer's kind. Never allocates
 * after vae_workspace_create and never owns parameters: the caller passes views of its flat buffers.
 * The kernels live in layers.c and loss.c. */
#include "vae.h"

#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "error.h"
#include "layers.h"
#include "loss.h"

static float *alloc_floats(size_t rows, size_t cols) { return mallocCheck(rows * cols * sizeof(float)); }

vae_workspace *vae_workspace_create(const vae_config *c, int max_batch) {
  if (max_batch < 1) VAE_FAIL("vae_workspace_create: max_batch %d < 1", max_batch);
  vae_workspace *ws = callocCheck(1, sizeof *ws);
  vae_net net;
  vae_net_build(c, &net);
  size_t B = (size_t)max_batch, D = vae_input_dim(c), L = (size_t)c->latent;
  size_t widest = L; /* dbuf holds the gradient of every layer's input but x's, and dz */
  for (int i = 1; i < net.n; i++) {
    size_t in = vae_layer_in_size(&net.layer[i]);
    widest = in > widest ? in : widest;
  }
  ws->max_batch = max_batch;
  ws->x = alloc_floats(B, D);
  for (int i = 0; i < net.n; i++) ws->act[i] = alloc_floats(B, vae_layer_out_size(&net.layer[i]));
  ws->mulv = ws->act[net.n_enc - 1];
  ws->out = ws->act[net.n - 1];
  ws->eps = alloc_floats(B, L);
  ws->z = alloc_floats(B, L);
  ws->recon = mallocCheck(B * sizeof(double));
  ws->kl = mallocCheck(B * sizeof(double));
  ws->dbuf[0] = alloc_floats(B, widest);
  ws->dbuf[1] = alloc_floats(B, widest);
  ws->dout = alloc_floats(B, (size_t)vae_decoder_heads(c) * D);
  ws->dmulv = alloc_floats(B, 2 * L);
  for (int i = 0; i < net.n; i++) {
    size_t n = vae_layer_cols_len(&net.layer[i], max_batch);
    ws->cols_len = n > ws->cols_len ? n : ws->cols_len;
  }
  ws->cols = ws->cols_len ? alloc_floats(ws->cols_len, 1) : NULL;
  return ws;
}

void vae_workspace_free(vae_workspace *ws) {
  if (!ws) return;
  free(ws->x);
  for (int i = 0; i < VAE_MAX_LAYERS; i++) free(ws->act[i]);
  free(ws->eps);
  free(ws->z);
  free(ws->recon);
  free(ws->kl);
  free(ws->dbuf[0]);
  free(ws->dbuf[1]);
  free(ws->dout);
  free(ws->dmulv);
  free(ws->cols);
  free(ws);
}

static void check_batch(const vae_workspace *ws, int B) {
  if (B < 1 || B > ws->max_batch) VAE_FAIL("batch of %d images, workspace holds 1 to %d", B, ws->max_batch);
}

/* ---- one layer: the one switch on the kind ---- */

/* out (B, out size) = the layer applied to in (B, in size), with its activation. */
static void layer_forward(const vae_layer *l, const float *P, float *out, const float *in, int B,
                          vae_workspace *ws) {
  const int IN = (int)vae_layer_in_size(l), OUT = (int)vae_layer_out_size(l);
  vae_conv_shape s = vae_layer_conv_shape(l);
  const size_t nc = vae_layer_cols_len(l, B);
  switch (l->kind) {
    case VAE_LAYER_CONV2D:
      vae_conv2d_forward(out, in, P + l->w, P + l->b, l->relu, &s, B, ws->cols, nc);
      break;
    case VAE_LAYER_CONVT2D:
      vae_convt2d_forward(out, in, P + l->w, P + l->b, l->relu, &s, B, ws->cols, nc);
      break;
    case VAE_LAYER_LINEAR:
      if (l->relu)
        vae_linear_relu_forward(out, in, P + l->w, P + l->b, B, IN, OUT);
      else
        vae_linear_forward(out, in, P + l->w, P + l->b, B, IN, OUT);
      break;
  }
}

/* Given dy = dL/d(layer output) (B, out size), accumulates alpha * the weight and bias gradients into G
 * and writes alpha * dL/d(input) into dx (skipped when dx is NULL); then, when relu_below, zeroes dx
 * where in <= 0 (the ReLU of the layer below; the conv kernels do it chunk by chunk). */
static void layer_backward(const vae_layer *l, const float *P, float *G, float *dx, const float *dy,
                           const float *in, float alpha, int relu_below, int B, vae_workspace *ws) {
  const int IN = (int)vae_layer_in_size(l), OUT = (int)vae_layer_out_size(l);
  vae_conv_shape s = vae_layer_conv_shape(l);
  const size_t nc = vae_layer_cols_len(l, B);
  switch (l->kind) {
    case VAE_LAYER_CONV2D:
      vae_conv2d_backward(dx, G + l->w, G + l->b, dy, in, P + l->w, alpha, relu_below ? in : NULL, &s, B,
                          ws->cols, nc);
      break;
    case VAE_LAYER_CONVT2D:
      vae_convt2d_backward(dx, G + l->w, G + l->b, dy, in, P + l->w, alpha, relu_below ? in : NULL, &s, B,
                           ws->cols, nc);
      break;
    case VAE_LAYER_LINEAR:
      vae_linear_backward(dx, G + l->w, G + l->b, dy, in, P + l->w, alpha, B, IN, OUT);
      if (relu_below) vae_relu_backward(dx, in, (size_t)B * (size_t)IN);
      break;
  }
}

/* ---- forward ---- */

/* Layers [lo, hi) on in; layer i writes ws->act[i]. */
static void forward_layers(const vae_views *p, vae_workspace *ws, int lo, int hi, const float *in, int B) {
  for (int i = lo; i < hi; i++) {
    layer_forward(&p->net.layer[i], p->buf, ws->act[i], in, B, ws);
    in = ws->act[i];
  }
}

void vae_encode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int B) {
  check_batch(ws, B);
  forward_layers(p, ws, 0, p->net.n_enc, x, B); /* ends in the fused mu|logvar head: ws->mulv */
}

void vae_decode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *z, int B) {
  check_batch(ws, B);
  forward_layers(p, ws, p->net.n_enc, p->net.n, z, B); /* ends in the output head: ws->out */
}

void vae_output_mean(const vae_config *c, const vae_workspace *ws, int B, float *mean) {
  check_batch(ws, B);
  size_t D = vae_input_dim(c);
  switch (c->decoder) {
    case VAE_DEC_BERNOULLI: vae_sigmoid(mean, ws->out, (size_t)B * D); break;
    case VAE_DEC_GAUSSIAN: memcpy(mean, ws->out, (size_t)B * D * sizeof *mean); break;
    case VAE_DEC_GAUSSIAN_LEARNED:
      for (int b = 0; b < B; b++) memcpy(mean + (size_t)b * D, ws->out + (size_t)b * 2 * D, D * sizeof *mean);
      break;
  }
}

void vae_decoder_nll(const vae_config *c, vae_workspace *ws, const float *x, int B) {
  /* One pass over the output gives the per-image recon and d recon / d out (kept in ws->dout for
   * vae_backward, unscaled: the scale enters as the GEMM alpha of the output layer). */
  size_t D = vae_input_dim(c);
  switch (c->decoder) {
    case VAE_DEC_BERNOULLI: vae_bernoulli_loss(ws->recon, ws->dout, ws->out, x, B, D); break;
    case VAE_DEC_GAUSSIAN: vae_gaussian_loss(ws->recon, ws->dout, ws->out, x, B, D, c->sigma); break;
    case VAE_DEC_GAUSSIAN_LEARNED:
      vae_gaussian_learned_loss(ws->recon, ws->dout, ws->out, x, B, D, c->logvar_min);
      break;
  }
}

void vae_forward(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, const float *eps,
                 int B) {
  vae_encode(c, p, ws, x, B);
  vae_reparam_forward(ws->z, ws->mulv, eps, B, c->latent);
  vae_kl_forward(ws->kl, ws->mulv, B, c->latent);
  vae_decode(c, p, ws, ws->z, B);
  vae_decoder_nll(c, ws, x, B);
}

/* ---- backward ---- */

/* Layers [lo, hi) backwards from dy (the gradient of layer hi-1's output); layer lo's input is in0.
 * alpha scales the last layer's gradients (and so every one below it). Returns the gradient of in0,
 * or NULL when want_din0 is 0 (the encoder's first layer: x needs none). */
static const float *backward_layers(const vae_views *p, const vae_views *g, vae_workspace *ws, int lo, int hi,
                                    const float *in0, const float *dy, float alpha, int want_din0, int B,
                                    size_t *sq_end) {
  int cur = 0;
  for (int i = hi - 1; i >= lo; i--) {
    const vae_layer *l = &p->net.layer[i];
    const float *in = i > lo ? ws->act[i - 1] : in0;
    float *dx = i > lo || want_din0 ? ws->dbuf[cur] : NULL;
    layer_backward(l, p->buf, g->buf, dx, dy, in, alpha, i > lo && p->net.layer[i - 1].relu, B, ws);
    /* layers i.. are done: g from layer i's weights on is final (layers lie in buffer order) */
    if (ws->sq_blocks) vae_sum_squares_tail(g->buf, g->net.n_params, l->w, ws->sq_blocks, sq_end);
    dy = dx;
    cur ^= 1;
    alpha = 1.0f;
  }
  return dy;
}

void vae_backward(const vae_config *c, const vae_views *p, const vae_views *g, vae_workspace *ws,
                  const float *x, const float *eps, int B, float kl_weight, float scale) {
  check_batch(ws, B);
  const int L = c->latent;
  /* Decoder, output layer first. dout is d recon / d out; alpha = scale makes every gradient below
   * (including dz) the gradient of scale * loss. */
  size_t sq_end = (g->net.n_params + VAE_SQ_BLOCK - 1) / VAE_SQ_BLOCK; /* blocks from here on: summed */
  const float *dz = backward_layers(p, g, ws, p->net.n_enc, p->net.n, ws->z, ws->dout, scale, 1, B, &sq_end);
  /* d[mu | logvar] = scale kl_weight dKL + reparameterization share of dz. dz lives in a dbuf that
   * the encoder's backward may overwrite only after dmulv is formed. */
  vae_kl_backward(ws->dmulv, ws->mulv, scale * kl_weight, B, L);
  vae_reparam_backward(ws->dmulv, dz, ws->mulv, eps, B, L);
  /* Encoder, head first; the first layer's input gradient (w.r.t. x) is not needed. */
  backward_layers(p, g, ws, 0, p->net.n_enc, x, ws->dmulv, 1.0f, 0, B, &sq_end);
}
