/* vae.h: the VAE. Configuration and its checks (model.c), the network as a list of layers over ONE flat
 * parameter buffer with the named tensor table and initialisation (net.c), and forward/backward of a
 * batch as one loop over the layers (vae.c).
 *
 * Two families, one code path: the MLP (n_conv = 0: linear layers) and the convolutional VAE (encoder
 * Conv2d + ReLU per --conv channel count, flatten, the hidden linear layers, mu|logvar; decoder: hidden
 * layers reversed, a linear "project" to the last conv's (C, h, w), ConvTranspose2d + ReLU back up, and
 * a ConvTranspose2d output head), exactly PyTorch's module of docs/CHECKPOINT.md.
 *
 * The flat buffer (params, grads, Adam m and v all share it) holds, layer by layer, each layer's
 * weight(s) then its bias(es). A layer with two heads stores both weights, then both biases, so that
 * the fused head is one GEMM: encoder/mu|logvar (2L, h) and, for gaussian-learned, decoder/out|logvar.
 * Inside, every activation is channels last (the data's (N, H, W, C)) and the weights are laid out for
 * that (layers.h); the tensor table (vae_tensors) names every tensor with its PyTorch shape and says how
 * the inside order permutes it, so checkpoints store PyTorch's layouts (docs/CHECKPOINT.md). For the
 * MLP inside and PyTorch orders are the same (nn.Linear (out, in)).
 * Images are rows of D = H*W*C floats in (H, W, C) order, as h5py writes (N, H, W, C). */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"

#define VAE_MAX_HIDDEN 8
#define VAE_MAX_CONV 8
#define VAE_MAX_WIDTH 65536 /* of a hidden layer, the latent and a conv layer's channels */
#define VAE_MAX_KERNEL 32   /* --kernel and --stride */
/* encoder: conv + hidden + head; decoder: hidden + project + transposed conv (the last is the head) */
#define VAE_MAX_LAYERS (2 * (VAE_MAX_CONV + VAE_MAX_HIDDEN) + 3)
/* a weight and a bias per layer, two more of each for each of the two fused heads */
#define VAE_MAX_TENSORS (2 * VAE_MAX_LAYERS + 4)
#define VAE_TENSOR_MAX_DIMS 4

typedef enum {
  VAE_DEC_BERNOULLI = 0,       /* logits; recon = BCE with logits */
  VAE_DEC_GAUSSIAN = 1,        /* mean, fixed sigma; recon = full Gaussian NLL */
  VAE_DEC_GAUSSIAN_LEARNED = 2 /* mean and per-pixel log-variance (soft floor at logvar_min) */
} vae_decoder;

typedef struct {
  int in_h, in_w, in_c;        /* input image shape; D = in_h * in_w * in_c */
  int n_conv;                  /* conv layers of the encoder; 0 = the MLP */
  int conv[VAE_MAX_CONV];      /* their output channels C_1 .. C_k (C_0 = in_c) */
  int kernel, stride, padding; /* of every Conv2d and ConvTranspose2d (used when n_conv > 0) */
  int n_hidden;                /* number of hidden layers in the encoder (and decoder) */
  int hidden[VAE_MAX_HIDDEN];  /* encoder widths; the decoder uses them reversed */
  int latent;                  /* L */
  vae_decoder decoder;
  float sigma;      /* fixed sigma of the gaussian decoder */
  float logvar_min; /* soft floor of the learned per-pixel log-variance */
} vae_config;

#define VAE_DEFAULT_LOGVAR_MIN (-6.0f)

/* ---- the network: a list of layers ---- */

typedef enum { VAE_LAYER_LINEAR = 0, VAE_LAYER_CONV2D = 1, VAE_LAYER_CONVT2D = 2 } vae_layer_kind;

/* One layer: its kind, shapes, activation and where its parameters live in the flat buffer. Shapes are
 * (H, W, C), channels last; a linear layer sees its input flattened (H*W*C values) and produces
 * out_h*out_w*out_c values per head (1 x 1 x width for hidden layers, H x W x C for the MLP's output,
 * the last conv's h x w x C for the decoder's project). A conv layer's geometry is k, stride, pad and,
 * for a transposed one, the out_pad that restores its mirror conv's input size. */
typedef struct {
  vae_layer_kind kind;
  int relu;                /* ReLU on the output (every layer but the two heads) */
  int heads;               /* 1, or 2 outputs fused along the output: [head 0 | head 1] per row */
  int in_h, in_w, in_c;    /* input */
  int out_h, out_w, out_c; /* output of one head */
  int k, stride, pad, out_pad;
  int chw_in, chw_out; /* linear: PyTorch flattens this input / unflattens this output as (C, H, W) */
  size_t w, b;         /* offsets (floats) of the weight and the bias; head h's follow head h-1's */
  char name[2][32];    /* per head: "encoder/mu", "encoder/logvar"; tensors add "/weight", "/bias" */
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
  size_t offset;                 /* in floats, from the start of the flat buffer */
  int ndim;                      /* 1 (bias) .. VAE_TENSOR_MAX_DIMS */
  int dims[VAE_TENSOR_MAX_DIMS]; /* PyTorch's shape (unused dims 1) */
  /* The inside order: the flat buffer holds a permutation of the PyTorch tensor, whose axis j is axis
   * perm[j] of `view`, a 4-d reshape of dims. Identity (view = dims, perm = 0 1 2 3) for the MLP. */
  int view[4], perm[4];
} vae_tensor;

/* ---- model.c: configuration ---- */
size_t vae_input_dim(const vae_config *c);
/* Outputs of the decoder per value: 2 (mean and log-variance) for gaussian-learned, else 1. */
int vae_decoder_heads(const vae_config *c);
/* `vae_mpi train`'s default model for an in_h x in_w x in_c input, the flags' defaults set once: PyTorch's
 * examples/vae (one hidden layer of 400, latent 20, Bernoulli), sigma 1, the learned variance's floor,
 * and the conv geometry --conv uses unless told (kernel 4, stride 2, padding 1). */
vae_config vae_config_default(int in_h, int in_w, int in_c);
/* The checks of everything a flag sets (widths, latent, decoder, sigma, logvar_min): the one place
 * their ranges and messages live (the CLI calls it before any data is read). 0, or -1 and err. */
int vae_config_validate_flags(const vae_config *c, char *err);
/* vae_config_validate_flags and the input shape: the whole model. */
int vae_config_validate(const vae_config *c, char *err);
const char *vae_decoder_name(vae_decoder d);
int vae_decoder_parse(const char *s, vae_decoder *d); /* 0 ok, -1 unknown */
/* Output size of a conv layer over an input of size `in` with the config's kernel, stride and padding
 * (below 1 when the input is too small). */
int vae_conv_out_size(const vae_config *c, int in);
/* The output_padding of the ConvTranspose2d that maps size `small` back to its mirror's input `big`. */
int vae_convt_out_pad(const vae_config *c, int big, int small);
/* Writes "784-400-20-400-784" style; a conv model as "28x28x1-c32-c64-256-20-256-t32-t1-28x28x1
 * (k4 s2 p1)". */
void vae_describe(const vae_config *c, char *buf, size_t n);

/* ---- net.c: the layer list, the tensor table, initialisation ---- */
/* The layer list of a valid config (vae_config_validate). */
void vae_net_build(const vae_config *c, vae_net *net);
size_t vae_layer_in_size(const vae_layer *l);  /* in_h * in_w * in_c */
size_t vae_layer_out_size(const vae_layer *l); /* heads * out_h * out_w * out_c: one row of its output */
/* A conv layer's patch grid (layers.h): a Conv2d reads its input through its output's grid, a
 * ConvTranspose2d writes its output through its input's grid. */
vae_conv_shape vae_layer_conv_shape(const vae_layer *l);
/* Floats of im2col rows a layer works in at batch B (0 for a linear layer): whole chunks of images
 * within the workspace budget, at least one image; the workspace holds the largest over the layers. */
size_t vae_layer_cols_len(const vae_layer *l, int B);
size_t vae_num_params(const vae_config *c);
/* The layer list over buf, which holds vae_num_params(c) floats. */
void vae_views_init(const vae_config *c, float *buf, vae_views *v);
/* Fills t[0..n) (n <= VAE_MAX_TENSORS) in layout order, returns n. */
int vae_tensors(const vae_config *c, vae_tensor *t);
/* Number of floats of a tensor: the product of its dims. */
size_t vae_tensor_len(const vae_tensor *t);
/* Whether the inside order differs from PyTorch's (then a checkpoint converts it). */
int vae_tensor_permuted(const vae_tensor *t);
/* torch (vae_tensor_len floats, PyTorch's order) = tensor t of the flat buffer buf, and back. */
void vae_tensor_to_torch(const vae_tensor *t, const float *buf, float *torch);
void vae_tensor_from_torch(const vae_tensor *t, const float *torch, float *buf);
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
  float *cols;                /* im2col/col2im rows of the conv layers, cols_len floats (NULL: MLP) */
  size_t cols_len;
  /* When set (NULL from vae_workspace_create): vae_backward also writes g's sums of squares by block
   * of VAE_SQ_BLOCK floats (adam.h), each block's as soon as the layers writing it are done, while the
   * gradient is still in cache; the same values vae_sum_squares_block gives on g afterwards. */
  double *sq_blocks;
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
 *   scale * sum_b (recon_b + kl_weight * kl_b)
 * (and with ws->sq_blocks set, g's block sums of squares after it). */
void vae_backward(const vae_config *c, const vae_views *p, const vae_views *g, vae_workspace *ws,
                  const float *x, const float *eps, int B, float kl_weight, float scale);

#endif
