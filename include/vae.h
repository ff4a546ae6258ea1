/* vae.h: the MLP VAE. Configuration, the flat parameter layout with named views, initialisation
 * (model.c), and forward/backward of a batch (vae.c).
 *
 * Layout of one flat buffer (params, grads, Adam m and v all share it), PyTorch nn.Linear (out, in):
 *   encoder/hidden{i}/weight (h_i, in_i), encoder/hidden{i}/bias (h_i)          i = 0 .. n_hidden-1
 *   encoder/mu/weight (L, h_last), encoder/logvar/weight (L, h_last)   <- adjacent: one (2L, h) GEMM
 *   encoder/mu/bias (L), encoder/logvar/bias (L)                       <- adjacent: one (2L) bias
 *   decoder/hidden{i}/weight, decoder/hidden{i}/bias                   widths reversed: h_last .. h_0
 *   decoder/out/weight (D, h_0) [, decoder/logvar/weight (D, h_0)]     <- adjacent for gaussian-learned
 *   decoder/out/bias (D) [, decoder/logvar/bias (D)]
 * Images are rows of D = H*W*C floats in (H, W, C) order, as h5py writes (N, H, W, C). */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#define VAE_MAX_HIDDEN 8
#define VAE_MAX_TENSORS (4 * VAE_MAX_HIDDEN + 8)

typedef enum {
  VAE_DEC_BERNOULLI = 0,       /* logits; recon = BCE with logits */
  VAE_DEC_GAUSSIAN = 1,        /* mean, fixed sigma; recon = full Gaussian NLL */
  VAE_DEC_GAUSSIAN_LEARNED = 2 /* mean and per-pixel log-variance (soft floor at logvar_min) */
} vae_decoder;

typedef struct {
  int in_h, in_w, in_c;       /* input image shape; D = in_h * in_w * in_c */
  int n_hidden;               /* number of hidden layers in the encoder (and decoder) */
  int hidden[VAE_MAX_HIDDEN]; /* encoder widths; the decoder uses them reversed */
  int latent;                 /* L */
  vae_decoder decoder;
  float sigma;      /* fixed sigma of the gaussian decoder */
  float logvar_min; /* soft floor of the learned per-pixel log-variance */
} vae_config;

#define VAE_DEFAULT_LOGVAR_MIN (-6.0f)

/* One linear layer's view into a flat buffer: w is (out, in) row-major, b is (out). */
typedef struct {
  float *w;
  float *b;
  int in, out;
} vae_linear;

/* Named views of one flat buffer (parameters, or gradients of the same layout). */
typedef struct {
  int n_hidden;
  vae_linear enc[VAE_MAX_HIDDEN]; /* enc[i]: (hidden[i], in_i) */
  vae_linear enc_head;            /* mu and logvar fused: w (2L, h_last), rows [0,L) mu, [L,2L) logvar */
  vae_linear dec[VAE_MAX_HIDDEN]; /* dec[i]: widths reversed; dec[0] takes z */
  vae_linear dec_head;            /* out (D) or out+logvar (2D) fused: w (k*D, h_0) */
} vae_views;

/* One named tensor of the layout, for checkpoints: name like "encoder/mu/weight". */
typedef struct {
  char name[64];
  size_t offset; /* in floats, from the start of the flat buffer */
  int ndim;      /* 1 (bias) or 2 (weight) */
  int dims[2];   /* (out, in) or (out) */
} vae_tensor;

/* ---- model.c ---- */
size_t vae_input_dim(const vae_config *c);
/* Checks sizes and the decoder; writes a user-facing message and returns -1 when invalid. */
int vae_config_validate(const vae_config *c, char *err);
size_t vae_num_params(const vae_config *c);
/* Points every view into buf, which holds vae_num_params(c) floats. */
void vae_views_init(const vae_config *c, float *buf, vae_views *v);
/* Fills t[0..n) (n <= VAE_MAX_TENSORS) in layout order, returns n. */
int vae_tensors(const vae_config *c, vae_tensor *t);
/* PyTorch nn.Linear default: weight and bias uniform in +-1/sqrt(fan_in), drawn from the seed. */
void vae_init_params(const vae_config *c, float *params, uint64_t seed);
const char *vae_decoder_name(vae_decoder d);
int vae_decoder_parse(const char *s, vae_decoder *d); /* 0 ok, -1 unknown */
/* Writes "784-400-20-400-784" style. */
void vae_describe(const vae_config *c, char *buf, size_t n);

/* ---- vae.c ---- */
/* Activations and scratch for batches of up to max_batch images; allocated once, reused each step. */
typedef struct {
  int max_batch;
  float *x;                     /* (B, D) scratch for the caller's batch (optional use) */
  float *h_enc[VAE_MAX_HIDDEN]; /* (B, hidden[i]) after ReLU */
  float *mulv;                  /* (B, 2L): mu in [:, :L], logvar in [:, L:] */
  float *eps;                   /* (B, L) scratch for the caller's noise (optional use) */
  float *z;                     /* (B, L) */
  float *h_dec[VAE_MAX_HIDDEN]; /* (B, width) after ReLU */
  float *out;                   /* (B, k*D): logits or mean [, raw log-variance] per row */
  double *recon;                /* (B): -log p(x|z) per image, nats */
  double *kl;                   /* (B): KL(q(z|x) || N(0, I)) per image, nats */
  float *dbuf[2];               /* backward scratch, (B, max width) each */
  float *dout;                  /* (B, k*D) gradient w.r.t. out */
  float *dmulv;                 /* (B, 2L) */
} vae_workspace;

vae_workspace *vae_workspace_create(const vae_config *c, int max_batch);
void vae_workspace_free(vae_workspace *ws);

/* Encoder only: fills ws->h_enc and ws->mulv for x (B, D). */
void vae_encode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int B);
/* Decoder only from z (B, L) (may be ws->z): fills ws->h_dec and ws->out. */
void vae_decode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *z, int B);
/* Decoder mean image in data space from ws->out after vae_decode: sigmoid(logits) or the mean. */
void vae_output_mean(const vae_config *c, const vae_workspace *ws, int B, float *mean);
/* After vae_decode: ws->recon[b] = -log p(x_b | out_b) for the B rows of ws->out, and the unscaled
 * d recon / d out in ws->dout. */
void vae_decoder_nll(const vae_config *c, vae_workspace *ws, const float *x, int B);
/* Full forward: encode, z = mu + exp(0.5 logvar) * eps, decode, and per-image ws->recon, ws->kl. */
void vae_forward(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, const float *eps,
                 int B);
/* After vae_forward on the same inputs: accumulates (+=) into g the gradient of
 *   scale * sum_b (recon_b + kl_weight * kl_b). */
void vae_backward(const vae_config *c, const vae_views *p, const vae_views *g, vae_workspace *ws,
                  const float *x, const float *eps, int B, float kl_weight, float scale);

#endif
