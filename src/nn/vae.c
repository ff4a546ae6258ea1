/* vae.c: forward and backward of a batch through the MLP VAE (the "vae.c" part of vae.h): workspace,
 * encoder, reparameterization, decoder, per-image loss terms, and backpropagation into a gradient
 * view. Never allocates after vae_workspace_create and never owns parameters: the caller passes
 * views (model.c) of its flat buffers. The kernels live in layers.c and loss.c. */
#include "vae.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layers.h"
#include "loss.h"

static int head_k(const vae_config *c) { return c->decoder == VAE_DEC_GAUSSIAN_LEARNED ? 2 : 1; }

static float *alloc_floats(size_t rows, size_t cols) { return mallocCheck(rows * cols * sizeof(float)); }

vae_workspace *vae_workspace_create(const vae_config *c, int max_batch) {
  if (max_batch < 1) VAE_FAIL("vae_workspace_create: max_batch %d < 1", max_batch);
  vae_workspace *ws = callocCheck(1, sizeof *ws);
  size_t B = (size_t)max_batch, D = vae_input_dim(c), L = (size_t)c->latent;
  size_t widest = L; /* dbuf holds d(hidden activations) and dz */
  for (int i = 0; i < c->n_hidden; i++)
    widest = (size_t)c->hidden[i] > widest ? (size_t)c->hidden[i] : widest;
  ws->max_batch = max_batch;
  ws->x = alloc_floats(B, D);
  for (int i = 0; i < c->n_hidden; i++) {
    ws->h_enc[i] = alloc_floats(B, (size_t)c->hidden[i]);
    ws->h_dec[i] = alloc_floats(B, (size_t)c->hidden[c->n_hidden - 1 - i]);
  }
  ws->mulv = alloc_floats(B, 2 * L);
  ws->eps = alloc_floats(B, L);
  ws->z = alloc_floats(B, L);
  ws->out = alloc_floats(B, (size_t)head_k(c) * D);
  ws->recon = mallocCheck(B * sizeof(double));
  ws->kl = mallocCheck(B * sizeof(double));
  ws->dbuf[0] = alloc_floats(B, widest);
  ws->dbuf[1] = alloc_floats(B, widest);
  ws->dout = alloc_floats(B, (size_t)head_k(c) * D);
  ws->dmulv = alloc_floats(B, 2 * L);
  return ws;
}

void vae_workspace_free(vae_workspace *ws) {
  if (!ws) return;
  free(ws->x);
  for (int i = 0; i < VAE_MAX_HIDDEN; i++) {
    free(ws->h_enc[i]);
    free(ws->h_dec[i]);
  }
  free(ws->mulv);
  free(ws->eps);
  free(ws->z);
  free(ws->out);
  free(ws->recon);
  free(ws->kl);
  free(ws->dbuf[0]);
  free(ws->dbuf[1]);
  free(ws->dout);
  free(ws->dmulv);
  free(ws);
}

static void check_batch(const vae_workspace *ws, int B) {
  if (B < 1 || B > ws->max_batch) VAE_FAIL("batch of %d images, workspace holds 1 to %d", B, ws->max_batch);
}

/* ---- forward ---- */

void vae_encode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int B) {
  check_batch(ws, B);
  const float *in = x;
  for (int i = 0; i < c->n_hidden; i++) {
    const vae_linear *l = &p->enc[i];
    vae_linear_relu_forward(ws->h_enc[i], in, l->w, l->b, B, l->in, l->out);
    in = ws->h_enc[i];
  }
  /* mu and logvar: one (2L, h) GEMM into mulv (B, 2L) */
  vae_linear_forward(ws->mulv, in, p->enc_head.w, p->enc_head.b, B, p->enc_head.in, p->enc_head.out);
}

void vae_decode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *z, int B) {
  check_batch(ws, B);
  const float *in = z;
  for (int i = 0; i < c->n_hidden; i++) {
    const vae_linear *l = &p->dec[i];
    vae_linear_relu_forward(ws->h_dec[i], in, l->w, l->b, B, l->in, l->out);
    in = ws->h_dec[i];
  }
  vae_linear_forward(ws->out, in, p->dec_head.w, p->dec_head.b, B, p->dec_head.in, p->dec_head.out);
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

void vae_backward(const vae_config *c, const vae_views *p, const vae_views *g, vae_workspace *ws,
                  const float *x, const float *eps, int B, float kl_weight, float scale) {
  check_batch(ws, B);
  int nh = c->n_hidden, L = c->latent, cur = 0;
  /* Decoder, output layer first. dout is d recon / d out; alpha = scale makes every gradient below
   * (including dz) the gradient of scale * loss. */
  const float *dy = ws->dout;
  float alpha = scale;
  for (int i = nh; i >= 0; i--) {
    const vae_linear *l = i == nh ? &p->dec_head : &p->dec[i];
    const vae_linear *gl = i == nh ? &g->dec_head : &g->dec[i];
    const float *in = i > 0 ? ws->h_dec[i - 1] : ws->z;
    float *dx = ws->dbuf[cur];
    vae_linear_backward(dx, gl->w, gl->b, dy, in, l->w, alpha, B, l->in, l->out);
    if (i > 0) vae_relu_backward(dx, in, (size_t)B * (size_t)l->in);
    dy = dx;
    cur ^= 1;
    alpha = 1.0f;
  }
  /* dy is now dz (B, L). d[mu | logvar] = scale kl_weight dKL + reparameterization share of dz. */
  vae_kl_backward(ws->dmulv, ws->mulv, scale * kl_weight, B, L);
  vae_reparam_backward(ws->dmulv, dy, ws->mulv, eps, B, L);
  dy = ws->dmulv;
  /* Encoder, head first; the first layer's input gradient (w.r.t. x) is not needed. */
  for (int i = nh; i >= 0; i--) {
    const vae_linear *l = i == nh ? &p->enc_head : &p->enc[i];
    const vae_linear *gl = i == nh ? &g->enc_head : &g->enc[i];
    const float *in = i > 0 ? ws->h_enc[i - 1] : x;
    float *dx = i > 0 ? ws->dbuf[cur] : NULL;
    vae_linear_backward(dx, gl->w, gl->b, dy, in, l->w, 1.0f, B, l->in, l->out);
    if (dx) vae_relu_backward(dx, in, (size_t)B * (size_t)l->in);
    dy = dx;
    cur ^= 1;
  }
}
