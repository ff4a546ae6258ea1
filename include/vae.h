/* vae.h: the VAE. Configuration and its checks (model.c), the network as a list of layers over ONE flat
 * parameter buffer with the named tensor table and initialisation (net.c), and forward/backward of a
 * batch as one loop over the layers (vae.c).
 *
 * The flat buffer (params, grads, Adam m and v all share it) holds, layer by layer, each layer's
 * weight(s) then its bias(es). A layer with two heads stores both weights, then both biases, so that
 * the fused head is one GEMM: encoder/mu|logvar (2L, h) and, for gaussian-learned, decoder/out|logvar.
 * Linear weights are PyTorch nn.Linear (out, in). The tensor table (vae_tensors) names every tensor with
 * its PyTorch shape, as checkpoints store them (docs/CHECKPOINT.md).
 * Images are rows of D = H*W*C floats in (H, W, C) order, as h5py writes (N, H, W, C). */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#define VAE_MAX_HIDDEN 8
#define VAE_MAX_WIDTH 65536 /* of a hidden layer and of the latent */
/* encoder: hidden + head; decoder: hidden + head */
#define VAE_MAX_LAYERS (2 * VAE_MAX_HIDDEN + 2)
/* a weight and a bias per layer, two more of each for each of the two fused heads */
#define VAE_MAX_TENSORS (2 * VAE_MAX_LAYERS + 4)
#define VAE_TENSOR_MAX_DIMS 4

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

/* ---- the network: a list of layers ---- */

typedef enum { VAE_LAYER_LINEAR = 0 } vae_layer_kind;

/* One layer: its kind, shapes, activation and where its parameters live in the flat buffer. Shapes are
 * (H, W, C), channels last; a linear layer sees its input flattened (H*W*C values) and produces
 * out_h*out_w*out_c values per head (1 x 1 x width for hidden layers, H x W x C for the MLP's output). */
typedef struct {
  vae_layer_kind kind;
  int relu;                /* ReLU on the output (every layer but the two heads) */
  int heads;               /* 1, or 2 outputs fused along the output: [head 0 | head 1] per row */
  int in_h, in_w, in_c;    /* input */
  int out_h, out_w, out_c; /* output of one head */
  size_t w, b;             /* offsets (floats) of the weight and the bias; head h's follow head h-1's */
  char name[2][32];        /* per head: "encoder/mu", "encoder/logvar"; tensors add "/weight", "/bias" */
} vae_layer;

typedef struct {
  int n;     /* layers */
  int n_enc; /* layers [0, n_enc) map x to [mu | logvar]; [n_enc, n) map z to the decoder output */
  vae_layer layer[VAE_MAX_LAYERS];
  size_t n_params; /* floats in the flat buffer */
} vae_net;

/* A flat buffer (parameters, or gradients of the same layout) and the layer list that reads it. */
typedef struct {
  float *buf;
  vae_net net;
} vae_views;

/* One named tensor of the layout, for checkpoints: name like "encoder/mu/weight", shape as PyTorch's. */
typedef struct {
  char name[64];
  size_t offset; /* in floats, from the start of the flat buffer */
  int ndim;      /* 1 (bias) .. VAE_TENSOR_MAX_DIMS */
  int dims[VAE_TENSOR_MAX_DIMS];
} vae_tensor;

/* ---- model.c: configuration ---- */
size_t vae_input_dim(const vae_config *c);
/* Outputs of the decoder per value: 2 (mean and log-variance) for gaussian-learned, else 1. */
int vae_decoder_heads(const vae_config *c);
/* The checks of everything a flag sets (widths, latent, decoder, sigma, logvar_min): the one place
 * their ranges and messages live (the CLI calls it before any data is read). 0, or -1 and err. */
int vae_config_validate_flags(const vae_config *c, char *err);
/* vae_config_validate_flags and the input shape: the whole model. */
int vae_config_validate(const vae_config *c, char *err);
const char *vae_decoder_name(vae_decoder d);
int vae_decoder_parse(const char *s, vae_decoder *d); /* 0 ok, -1 unknown */
/* Writes "784-400-20-400-784" style. */
void vae_describe(const vae_config *c, char *buf, size_t n);

/* ---- net.c: the layer list, the tensor table, initialisation ---- */
/* The layer list of a valid config (vae_config_validate). */
void vae_net_build(const vae_config *c, vae_net *net);
size_t vae_layer_in_size(const vae_layer *l);  /* in_h * in_w * in_c */
size_t vae_layer_out_size(const vae_layer *l); /* heads * out_h * out_w * out_c: one row of its output */
size_t vae_num_params(const vae_config *c);
/* The layer list over buf, which holds vae_num_params(c) floats. */
void vae_views_init(const vae_config *c, float *buf, vae_views *v);
/* Fills t[0..n) (n <= VAE_MAX_TENSORS) in layout order, returns n. */
int vae_tensors(const vae_config *c, vae_tensor *t);
/* Number of floats of a tensor: the product of its dims. */
size_t vae_tensor_len(const vae_tensor *t);
/* PyTorch's default initialisation: weight and bias uniform in +-1/sqrt(fan_in), drawn from the seed. */
void vae_init_params(const vae_config *c, float *params, uint64_t seed);

/* ---- vae.c ---- */
/* Activations and scratch for batches of up to max_batch images; allocated once, reused each step. */
typedef struct {
  int max_batch;
  float *x;                   /* (B, D) scratch for the caller's batch (optional use) */
  float *act[VAE_MAX_LAYERS]; /* act[i]: (B, out size of layer i), after its activation */
  float *mulv;                /* = act[n_enc - 1], (B, 2L): mu in [:, :L], logvar in [:, L:] */
  float *eps;                 /* (B, L) scratch for the caller's noise (optional use) */
  float *z;                   /* (B, L) */
  float *out;                 /* = act[n - 1], (B, k*D): logits or mean [, raw log-variance] per row */
  double *recon;              /* (B): -log p(x|z) per image, nats */
  double *kl;                 /* (B): KL(q(z|x) || N(0, I)) per image, nats */
  float *dbuf[2];             /* backward scratch, (B, widest layer input) each */
  float *dout;                /* (B, k*D) gradient w.r.t. out */
  float *dmulv;               /* (B, 2L) */
} vae_workspace;

vae_workspace *vae_workspace_create(const vae_config *c, int max_batch);
void vae_workspace_free(vae_workspace *ws);

/* Encoder only: fills the encoder's activations and ws->mulv for x (B, D). */
void vae_encode(const vae_config *c, const vae_views *p, vae_workspace *ws, const float *x, int B);
/* Decoder only from z (B, L) (may be ws->z): fills the decoder's activations and ws->out. */
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
